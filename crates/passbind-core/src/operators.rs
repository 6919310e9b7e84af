//! Operators of the management dashboard: who they are, how they enrol and sign in, and their
//! sessions. No I/O: storage, time, randomness and WebAuthn come in through the ports; the OIDC
//! network exchange is the server's (it hands the verified subject to [`Operators::oidc_sign_in`]).
//!
//! - **Setup tokens**: one-time links that enrol an operator's passkey. The first one is issued
//!   at start while no operator exists; a signed-in operator can issue more (invitations).
//!   256-bit, stored as SHA-256, expiring, consumed in the same commit that creates the
//!   operator, so a link works once even when several replicas race.
//! - **Passkeys**: the built-in relying party with the dashboard's own origin. Enrolment asks
//!   for a discoverable credential, so sign-in needs no name (an empty allow list).
//! - **Sessions**: a random 256-bit cookie value, stored as SHA-256, expiring. The CSRF token
//!   is derived from the cookie value (another hash domain): the page learns it from
//!   `GET .../auth/status` and echoes it in a header on every state-changing request; a
//!   cross-site attacker can read neither.
//! - Every sign-in, enrolment, invitation and sign-out is an audit event whose actor is the
//!   operator's subject, committed with the change it describes.

use crate::crypto::{b64url, b64url_decode, ct_eq, random_bytes, random_id, sha256};
use crate::error::CoreError;
use crate::model::{AuditDraft, Conflict, Millis, StoreError, Write};
use crate::ports::{Clock, RelyingParty, Rng, RpError, Store};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// An operator enrolled with a passkey.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperatorRecord {
    pub id: String,
    /// Unique; the operator's subject is `local:<name>`.
    pub name: String,
    /// The WebAuthn user handle (32 random bytes).
    pub user_handle: Vec<u8>,
    pub created_at: Millis,
    pub disabled_at: Option<Millis>,
}

/// An operator's passkey.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperatorCredentialRecord {
    /// base64url (no padding).
    pub credential_id: String,
    pub operator_id: String,
    /// COSE public key.
    pub public_key: Vec<u8>,
    pub sign_count: i64,
    pub aaguid: Option<String>,
    pub backup_eligible: bool,
    pub backed_up: bool,
    pub created_at: Millis,
    pub last_used_at: Option<Millis>,
    pub revoked_at: Option<Millis>,
}

/// A signed-in operator's session, stored by the hash of its cookie value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperatorSessionRecord {
    pub id_hash: Vec<u8>,
    /// `local:<name>` (passkey) or the OIDC `sub` claim prefixed by `oidc:`.
    pub subject: String,
    pub display_name: String,
    /// `passkey` or `oidc`.
    pub method: String,
    pub created_at: Millis,
    pub expires_at: Millis,
    pub revoked_at: Option<Millis>,
}

/// A one-time setup link's token, by hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetupTokenRecord {
    pub hash: Vec<u8>,
    /// `system` (first start) or the subject of the operator who issued it.
    pub created_by: String,
    pub created_at: Millis,
    pub expires_at: Millis,
    pub consumed_at: Option<Millis>,
}

/// The state of a sign-in ceremony between its two requests (single use).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChallengeRecord {
    pub id: String,
    /// `enrol`, `passkey` or `oidc`.
    pub kind: String,
    pub state: serde_json::Value,
    pub created_at: Millis,
    pub expires_at: Millis,
    pub consumed_at: Option<Millis>,
}

/// The operator writes of [`OperatorStore::commit_operator`](crate::ports::OperatorStore::commit_operator).
#[derive(Debug, Clone, PartialEq)]
pub enum OperatorWrite {
    /// Conflict `DuplicateUser` if the name is taken, `DuplicateId` if the id or handle is.
    InsertOperator(OperatorRecord),
    /// Conflict `DuplicateCredential` if the id exists; `NotFound` if the operator does not.
    InsertCredential(OperatorCredentialRecord),
    /// Conflict `NotFound` if the credential is absent or revoked.
    UpdateCredentialUse {
        credential_id: String,
        sign_count: i64,
        backed_up: bool,
        at: Millis,
    },
    /// Conflict `DuplicateId` if the hash exists.
    InsertSession(OperatorSessionRecord),
    /// Ends a session. No conflict.
    RevokeSession { id_hash: Vec<u8>, at: Millis },
    /// Conflict `DuplicateId` if the hash exists.
    InsertSetupToken(SetupTokenRecord),
    /// Conflict `NotFound` if the token is absent, consumed, or expired at `at`.
    ConsumeSetupToken { hash: Vec<u8>, at: Millis },
    /// Conflict `DuplicateId` if the id exists.
    InsertChallenge(ChallengeRecord),
    /// Conflict `NotFound` if the challenge is absent, consumed, or expired at `at`.
    ConsumeChallenge { id: String, at: Millis },
}

/// Lifetimes of operator secrets.
#[derive(Debug, Clone)]
pub struct OperatorConfig {
    pub session_ttl_secs: u64,
    pub setup_token_ttl_secs: u64,
    pub challenge_ttl_secs: u64,
}

impl Default for OperatorConfig {
    fn default() -> Self {
        Self {
            session_ttl_secs: 8 * 3600,
            setup_token_ttl_secs: 24 * 3600,
            challenge_ttl_secs: 300,
        }
    }
}

/// Who is signed in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OperatorIdentity {
    pub subject: String,
    pub display_name: String,
    pub method: String,
    pub expires_at: Millis,
}

/// A new session: the cookie value (set once, HttpOnly) and its CSRF token.
pub struct NewOperatorSession {
    pub cookie_value: String,
    pub csrf_token: String,
    pub identity: OperatorIdentity,
}

/// A WebAuthn ceremony in progress: its id and the options for the browser.
#[derive(Debug, Clone, Serialize)]
pub struct Ceremony {
    pub challenge_id: String,
    pub options: serde_json::Value,
}

/// A one-time setup link's token and when it expires.
pub struct SetupToken {
    pub token: String,
    pub expires_at: Millis,
}

const TOKEN_PREFIX: &str = "pbs_";

/// Operator enrolment, sign-in and sessions.
pub struct Operators {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    rng: Arc<dyn Rng>,
    /// The relying party for the dashboard's origin (`None`: passkey sign-in is unavailable).
    rp: Option<Arc<dyn RelyingParty>>,
    config: OperatorConfig,
}

fn secs_ms(secs: u64) -> i64 {
    i64::try_from(secs.saturating_mul(1000)).unwrap_or(i64::MAX)
}

/// An audit event caused by an operator (or by the system, for the first setup link).
pub fn operator_audit(
    at: Millis,
    event_type: &str,
    outcome: &str,
    actor_id: Option<&str>,
    details: serde_json::Map<String, serde_json::Value>,
) -> AuditDraft {
    AuditDraft {
        time_ms: at,
        event_type: event_type.to_owned(),
        outcome: outcome.to_owned(),
        actor_kind: if actor_id.is_some() {
            "operator".to_owned()
        } else {
            "system".to_owned()
        },
        actor_id: actor_id.map(str::to_owned),
        details,
        ..AuditDraft::default()
    }
}

fn details(pairs: &[(&str, &str)]) -> serde_json::Map<String, serde_json::Value> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), serde_json::Value::String((*v).to_owned())))
        .collect()
}

/// An operator name: 1 to 64 characters from `A-Z a-z 0-9 . _ - @`.
pub fn validate_name(name: &str) -> Result<(), CoreError> {
    let ok = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@');
    if name.is_empty() || name.len() > 64 || !name.chars().all(ok) {
        return Err(CoreError::validation(
            "name",
            "1 to 64 characters from A-Z a-z 0-9 . _ - @",
        ));
    }
    Ok(())
}

/// The CSRF token of a session: `b64url(SHA-256("passbind/operator-csrf/v1" 0x00 cookie))`.
pub fn csrf_token(cookie_value: &str) -> String {
    let mut buf = b"passbind/operator-csrf/v1\0".to_vec();
    buf.extend_from_slice(cookie_value.as_bytes());
    b64url(&sha256(&buf))
}

/// Whether a presented CSRF token is the session's (constant time).
pub fn csrf_matches(cookie_value: &str, presented: &str) -> bool {
    ct_eq(csrf_token(cookie_value).as_bytes(), presented.as_bytes())
}

fn session_hash(cookie_value: &str) -> Vec<u8> {
    let mut buf = b"passbind/operator-session/v1\0".to_vec();
    buf.extend_from_slice(cookie_value.as_bytes());
    sha256(&buf).to_vec()
}

fn setup_hash(token: &str) -> Vec<u8> {
    let mut buf = b"passbind/operator-setup/v1\0".to_vec();
    buf.extend_from_slice(token.as_bytes());
    sha256(&buf).to_vec()
}

/// The shape of a setup token (checked before any lookup).
fn is_setup_token(token: &str) -> bool {
    token
        .strip_prefix(TOKEN_PREFIX)
        .and_then(b64url_decode)
        .is_some_and(|b| b.len() == 32)
}

fn store_conflict(e: StoreError, on_not_found: CoreError) -> CoreError {
    match e {
        StoreError::Conflict(Conflict::NotFound) => on_not_found,
        other => other.into(),
    }
}

#[derive(Serialize, Deserialize)]
struct EnrolState {
    setup_hash: String,
    operator_id: String,
    name: String,
    user_handle: String,
    rp_state: serde_json::Value,
}

#[derive(Serialize, Deserialize)]
struct PasskeyState {
    challenge: String,
}

impl Operators {
    pub fn new(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        rng: Arc<dyn Rng>,
        rp: Option<Arc<dyn RelyingParty>>,
        config: OperatorConfig,
    ) -> Self {
        Self {
            store,
            clock,
            rng,
            rp,
            config,
        }
    }

    pub fn config(&self) -> &OperatorConfig {
        &self.config
    }

    pub fn passkeys_enabled(&self) -> bool {
        self.rp.is_some()
    }

    fn rp(&self) -> Result<&Arc<dyn RelyingParty>, CoreError> {
        self.rp.as_ref().ok_or(CoreError::NotSupported(
            "passkey sign-in is not configured for the dashboard",
        ))
    }

    fn now(&self) -> Millis {
        self.clock.now()
    }

    /// Whether any operator has enrolled a passkey.
    pub async fn any_operator(&self) -> Result<bool, CoreError> {
        Ok(self.store.operator_count().await? > 0)
    }

    /// At start: while no operator exists, issues a setup link's token for the first one.
    pub async fn first_start_token(&self) -> Result<Option<SetupToken>, CoreError> {
        if self.any_operator().await? || self.rp.is_none() {
            return Ok(None);
        }
        self.issue_setup_token(None).await.map(Some)
    }

    /// Issues a setup token; `by` is the inviting operator (`None`: the system at first start).
    pub async fn issue_setup_token(
        &self,
        by: Option<&OperatorIdentity>,
    ) -> Result<SetupToken, CoreError> {
        self.rp()?;
        let now = self.now();
        let token = format!("{TOKEN_PREFIX}{}", b64url(&random_bytes::<32>(&*self.rng)));
        let expires_at = now.saturating_add(secs_ms(self.config.setup_token_ttl_secs));
        let by_subject = by.map(|o| o.subject.as_str());
        self.store
            .commit_operator(
                vec![OperatorWrite::InsertSetupToken(SetupTokenRecord {
                    hash: setup_hash(&token),
                    created_by: by_subject.unwrap_or("system").to_owned(),
                    created_at: now,
                    expires_at,
                    consumed_at: None,
                })],
                vec![Write::AppendAudit(operator_audit(
                    now,
                    "operator.setup_link_issued",
                    "success",
                    by_subject,
                    serde_json::Map::new(),
                ))],
            )
            .await?;
        Ok(SetupToken { token, expires_at })
    }

    async fn valid_setup_token(&self, token: &str) -> Result<Vec<u8>, CoreError> {
        let invalid = || CoreError::Unauthorized;
        if !is_setup_token(token) {
            return Err(invalid());
        }
        let hash = setup_hash(token);
        match self.store.setup_token(&hash).await? {
            Some(t) if t.consumed_at.is_none() && t.expires_at > self.now() => Ok(hash),
            _ => Err(invalid()),
        }
    }

    /// Enrolment, step 1: checks the setup token and returns WebAuthn creation options.
    pub async fn begin_enrolment(&self, token: &str, name: &str) -> Result<Ceremony, CoreError> {
        let rp = self.rp()?;
        let hash = self.valid_setup_token(token).await?;
        validate_name(name)?;
        if self.store.operator_by_name(name).await?.is_some() {
            return Err(CoreError::validation("name", "an operator has this name"));
        }
        let handle: [u8; 32] = random_bytes(&*self.rng);
        let challenge: [u8; 32] = random_bytes(&*self.rng);
        let creation = rp
            .creation_options(&handle, name, name, challenge, &[])
            .map_err(CoreError::Webauthn)?;
        let mut options = creation.options;
        // A discoverable credential: sign-in then needs no name.
        if let Some(sel) = options
            .get_mut("publicKey")
            .and_then(|p| p.get_mut("authenticatorSelection"))
            .and_then(|s| s.as_object_mut())
        {
            sel.insert("residentKey".into(), "required".into());
            sel.insert("requireResidentKey".into(), true.into());
        }
        let state = EnrolState {
            setup_hash: b64url(&hash),
            operator_id: random_id(&*self.rng, "opr"),
            name: name.to_owned(),
            user_handle: b64url(&handle),
            rp_state: creation.state,
        };
        let id = self
            .insert_challenge("enrol", serde_json::to_value(&state).map_err(internal)?)
            .await?;
        Ok(Ceremony {
            challenge_id: id,
            options,
        })
    }

    /// Enrolment, step 2: verifies the attestation; creates the operator, their passkey and a
    /// session, and consumes the setup token, all in one commit.
    pub async fn finish_enrolment(
        &self,
        challenge_id: &str,
        credential: &serde_json::Value,
    ) -> Result<NewOperatorSession, CoreError> {
        let rp = self.rp()?;
        let ch = self.live_challenge(challenge_id, "enrol").await?;
        let state: EnrolState = serde_json::from_value(ch.state).map_err(internal)?;
        let setup = b64url_decode(&state.setup_hash).ok_or_else(|| internal("setup hash"))?;
        let handle = b64url_decode(&state.user_handle).ok_or_else(|| internal("handle"))?;
        let c = rp
            .verify_registration(&state.rp_state, credential)
            .map_err(CoreError::Webauthn)?;
        let now = self.now();
        let subject = format!("local:{}", state.name);
        let (session, mut ops, mut writes) =
            self.session_writes(&subject, &state.name, "passkey", now);
        ops.extend([
            OperatorWrite::ConsumeChallenge {
                id: challenge_id.to_owned(),
                at: now,
            },
            OperatorWrite::ConsumeSetupToken {
                hash: setup,
                at: now,
            },
            OperatorWrite::InsertOperator(OperatorRecord {
                id: state.operator_id.clone(),
                name: state.name.clone(),
                user_handle: handle,
                created_at: now,
                disabled_at: None,
            }),
            OperatorWrite::InsertCredential(OperatorCredentialRecord {
                credential_id: b64url(&c.credential_id),
                operator_id: state.operator_id,
                public_key: c.public_key_cose,
                sign_count: i64::from(c.sign_count),
                aaguid: Some(hex::encode(c.aaguid)),
                backup_eligible: c.backup_eligible,
                backed_up: c.backed_up,
                created_at: now,
                last_used_at: None,
                revoked_at: None,
            }),
        ]);
        writes.insert(
            0,
            Write::AppendAudit(operator_audit(
                now,
                "operator.enrolled",
                "success",
                Some(&subject),
                details(&[("method", "passkey")]),
            )),
        );
        match self.store.commit_operator(ops, writes).await {
            Ok(()) => Ok(session),
            Err(StoreError::Conflict(Conflict::NotFound)) => Err(CoreError::Unauthorized),
            Err(StoreError::Conflict(Conflict::DuplicateUser)) => {
                Err(CoreError::validation("name", "an operator has this name"))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Sign-in, step 1: request options for a discoverable credential.
    pub async fn begin_sign_in(&self) -> Result<Ceremony, CoreError> {
        let rp = self.rp()?;
        let challenge: [u8; 32] = random_bytes(&*self.rng);
        let options = rp.request_options(challenge, &[]);
        let state = PasskeyState {
            challenge: b64url(&challenge),
        };
        let id = self
            .insert_challenge("passkey", serde_json::to_value(&state).map_err(internal)?)
            .await?;
        Ok(Ceremony {
            challenge_id: id,
            options,
        })
    }

    /// Sign-in, step 2: verifies the assertion against the operator's stored passkey.
    pub async fn finish_sign_in(
        &self,
        challenge_id: &str,
        assertion: &serde_json::Value,
    ) -> Result<NewOperatorSession, CoreError> {
        let rp = self.rp()?;
        let ch = self.live_challenge(challenge_id, "passkey").await?;
        let state: PasskeyState = serde_json::from_value(ch.state).map_err(internal)?;
        let challenge = b64url_decode(&state.challenge).ok_or_else(|| internal("challenge"))?;
        let parts = rp.parse_assertion(assertion).map_err(CoreError::Webauthn)?;
        let fail = |reason: &'static str, message: &str| {
            CoreError::Webauthn(RpError {
                reason,
                message: message.to_owned(),
            })
        };
        let cid = b64url(&parts.credential_id);
        let cred = match self.store.operator_credential(&cid).await? {
            Some(c) if c.revoked_at.is_none() => c,
            _ => return Err(fail("unknown_credential", "no such operator passkey")),
        };
        let op = self
            .store
            .operator(&cred.operator_id)
            .await?
            .filter(|o| o.disabled_at.is_none())
            .ok_or_else(|| fail("unknown_credential", "no such operator"))?;
        if let Some(h) = &parts.user_handle {
            if !ct_eq(h, &op.user_handle) {
                return Err(fail(
                    "user_handle_mismatch",
                    "the user handle does not match",
                ));
            }
        }
        let stored = u32::try_from(cred.sign_count).unwrap_or(u32::MAX);
        let raw_id = parts.credential_id.clone();
        let v = rp
            .verify_assertion(&challenge, &raw_id, &cred.public_key, stored, parts)
            .map_err(CoreError::Webauthn)?;
        let now = self.now();
        let subject = format!("local:{}", op.name);
        let (session, mut ops, writes) = self.session_writes(&subject, &op.name, "passkey", now);
        ops.extend([
            OperatorWrite::ConsumeChallenge {
                id: challenge_id.to_owned(),
                at: now,
            },
            OperatorWrite::UpdateCredentialUse {
                credential_id: cid,
                sign_count: cred.sign_count.max(i64::from(v.new_sign_count)),
                backed_up: v.backed_up,
                at: now,
            },
        ]);
        self.store
            .commit_operator(ops, writes)
            .await
            .map_err(|e| store_conflict(e, CoreError::Unauthorized))?;
        Ok(session)
    }

    /// OIDC, before the redirect: keeps the nonce and PKCE verifier under the state's hash.
    pub async fn begin_oidc(&self, state: &str, data: serde_json::Value) -> Result<(), CoreError> {
        let now = self.now();
        self.store
            .commit_operator(
                vec![OperatorWrite::InsertChallenge(ChallengeRecord {
                    id: oidc_challenge_id(state),
                    kind: "oidc".to_owned(),
                    state: data,
                    created_at: now,
                    expires_at: now.saturating_add(secs_ms(self.config.challenge_ttl_secs)),
                    consumed_at: None,
                })],
                Vec::new(),
            )
            .await?;
        Ok(())
    }

    /// OIDC, at the callback: consumes the state (once) and returns what `begin_oidc` kept.
    pub async fn take_oidc(&self, state: &str) -> Result<serde_json::Value, CoreError> {
        let id = oidc_challenge_id(state);
        let ch = self.live_challenge(&id, "oidc").await?;
        self.store
            .commit_operator(
                vec![OperatorWrite::ConsumeChallenge { id, at: self.now() }],
                Vec::new(),
            )
            .await
            .map_err(|e| store_conflict(e, CoreError::Unauthorized))?;
        Ok(ch.state)
    }

    /// OIDC, after the server verified the ID token: a session for `oidc:<sub>`.
    pub async fn oidc_sign_in(
        &self,
        sub: &str,
        display_name: &str,
    ) -> Result<NewOperatorSession, CoreError> {
        if sub.is_empty() || sub.len() > 255 || sub.chars().any(char::is_control) {
            return Err(CoreError::Unauthorized);
        }
        let name: String = display_name
            .chars()
            .filter(|c| !c.is_control())
            .take(128)
            .collect();
        let subject = format!("oidc:{sub}");
        let (session, ops, writes) = self.session_writes(&subject, &name, "oidc", self.now());
        self.store.commit_operator(ops, writes).await?;
        Ok(session)
    }

    /// A session for `subject` and the writes that create it (with its audit event).
    fn session_writes(
        &self,
        subject: &str,
        display_name: &str,
        method: &str,
        now: Millis,
    ) -> (NewOperatorSession, Vec<OperatorWrite>, Vec<Write>) {
        let cookie_value = b64url(&random_bytes::<32>(&*self.rng));
        let expires_at = now.saturating_add(secs_ms(self.config.session_ttl_secs));
        let identity = OperatorIdentity {
            subject: subject.to_owned(),
            display_name: display_name.to_owned(),
            method: method.to_owned(),
            expires_at,
        };
        let ops = vec![OperatorWrite::InsertSession(OperatorSessionRecord {
            id_hash: session_hash(&cookie_value),
            subject: subject.to_owned(),
            display_name: display_name.to_owned(),
            method: method.to_owned(),
            created_at: now,
            expires_at,
            revoked_at: None,
        })];
        let writes = vec![Write::AppendAudit(operator_audit(
            now,
            "operator.signed_in",
            "success",
            Some(subject),
            details(&[("method", method)]),
        ))];
        (
            NewOperatorSession {
                csrf_token: csrf_token(&cookie_value),
                cookie_value,
                identity,
            },
            ops,
            writes,
        )
    }

    /// The operator a session cookie belongs to, or `Unauthorized`.
    pub async fn authenticate(&self, cookie_value: &str) -> Result<OperatorIdentity, CoreError> {
        if cookie_value.is_empty() || cookie_value.len() > 128 {
            return Err(CoreError::Unauthorized);
        }
        match self
            .store
            .operator_session(&session_hash(cookie_value))
            .await?
        {
            Some(s) if s.revoked_at.is_none() && s.expires_at > self.now() => {
                Ok(OperatorIdentity {
                    subject: s.subject,
                    display_name: s.display_name,
                    method: s.method,
                    expires_at: s.expires_at,
                })
            }
            _ => Err(CoreError::Unauthorized),
        }
    }

    /// Ends the session (audited).
    pub async fn sign_out(
        &self,
        cookie_value: &str,
        who: &OperatorIdentity,
    ) -> Result<(), CoreError> {
        let now = self.now();
        self.store
            .commit_operator(
                vec![OperatorWrite::RevokeSession {
                    id_hash: session_hash(cookie_value),
                    at: now,
                }],
                vec![Write::AppendAudit(operator_audit(
                    now,
                    "operator.signed_out",
                    "success",
                    Some(&who.subject),
                    serde_json::Map::new(),
                ))],
            )
            .await?;
        Ok(())
    }

    async fn insert_challenge(
        &self,
        kind: &str,
        state: serde_json::Value,
    ) -> Result<String, CoreError> {
        let now = self.now();
        let id = random_id(&*self.rng, "och");
        self.store
            .commit_operator(
                vec![OperatorWrite::InsertChallenge(ChallengeRecord {
                    id: id.clone(),
                    kind: kind.to_owned(),
                    state,
                    created_at: now,
                    expires_at: now.saturating_add(secs_ms(self.config.challenge_ttl_secs)),
                    consumed_at: None,
                })],
                Vec::new(),
            )
            .await?;
        Ok(id)
    }

    /// A challenge of this kind that is neither consumed nor expired.
    async fn live_challenge(&self, id: &str, kind: &str) -> Result<ChallengeRecord, CoreError> {
        if !crate::validate::is_record_id(id) {
            return Err(CoreError::Unauthorized);
        }
        match self.store.operator_challenge(id).await? {
            Some(c) if c.kind == kind && c.consumed_at.is_none() && c.expires_at > self.now() => {
                Ok(c)
            }
            _ => Err(CoreError::Unauthorized),
        }
    }
}

/// The challenge id under which an OIDC `state` is kept (a hash: the state itself is not stored).
fn oidc_challenge_id(state: &str) -> String {
    format!("oidc_{}", hex::encode(&sha256(state.as_bytes())[..24]))
}

fn internal(e: impl std::fmt::Display) -> CoreError {
    CoreError::Internal(format!("operator ceremony state: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csrf_tokens_are_bound_to_the_session() {
        let a = csrf_token("cookie-a");
        assert!(csrf_matches("cookie-a", &a));
        assert!(!csrf_matches("cookie-b", &a));
        assert!(!csrf_matches("cookie-a", ""));
        assert_ne!(b64url(&session_hash("cookie-a")), a);
    }

    #[test]
    fn names_and_token_shapes() {
        assert!(validate_name("alice@example.com").is_ok());
        for bad in ["", "a b", "ü", &"x".repeat(65), "a/b"] {
            assert!(validate_name(bad).is_err(), "{bad:?}");
        }
        assert!(is_setup_token(&format!("pbs_{}", b64url(&[7u8; 32]))));
        assert!(!is_setup_token("pbs_short"));
        assert!(!is_setup_token(&b64url(&[7u8; 32])));
    }
}
