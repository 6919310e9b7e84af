//! The engine: the flows' entry points, wired to their ports.

use crate::auth::{self, NewApiKey};
use crate::crypto::{keyed_hash, KeyRing};
use crate::error::CoreError;
use crate::flows::common::Preloaded;
use crate::machine::{self, effective_state, Event};
use crate::model::*;
use crate::ports::{Clock, IdvProvider, RelyingParty, Rng, Store};
use passbind_audit::Actor;
use passbind_proto::session::{Flow, IdvView, SessionState, SessionView};
use std::collections::BTreeMap;
use std::sync::Arc;
use zeroize::Zeroizing;

/// Who verifies WebAuthn.
#[derive(Clone)]
pub enum RpMode {
    /// Passbind is the relying party: it issues options and verifies attestations/assertions.
    BuiltIn(Arc<dyn RelyingParty>),
    /// The integrator's IDP verifies WebAuthn; Passbind gates completion on the IDV verdict.
    External,
}

/// The secret keys the engine needs.
#[derive(Clone)]
pub struct Keys {
    /// Wraps the per-user data keys of biometric tokens.
    pub ebt: KeyRing,
    /// Keys the hash of external user ids sent to providers and written to the audit trail.
    pub user_ref_key: Zeroizing<[u8; 32]>,
    /// Signs audit checkpoints and identity proofs (Ed25519; its public key is published).
    pub signer: Arc<passbind_audit::CheckpointSigner>,
}

/// Policy knobs of the flows.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    pub session_ttl_default_secs: u64,
    pub session_ttl_min_secs: u64,
    pub session_ttl_max_secs: u64,
    /// The provider new sessions use.
    pub idv_provider: String,
    /// Step-up flows: live captures that may fail before the session fails.
    pub step_up_max_captures: u32,
    /// Step-up face mismatches (across sessions) within the window that lock step-up.
    pub lockout_threshold: u32,
    pub lockout_window_secs: u64,
    /// How long step-up stays locked after the last counted mismatch.
    pub lockout_duration_secs: u64,
    /// Cross-platform handoff token lifetime.
    pub handoff_ttl_secs: u64,
    /// Recovery continuation context lifetime.
    pub continuation_ttl_secs: u64,
    /// Revoke the user's other credentials when a recovery completes.
    pub revoke_on_recovery: bool,
    /// Refuse an assertion whose signature counter went backwards (default: record only, so
    /// that synced and counter-less authenticators keep working).
    pub reject_counter_regression: bool,
    /// When audit checkpoints are signed.
    pub audit: crate::audit::AuditConfig,
    /// How long an API key read from the store is trusted without reading it again, in
    /// milliseconds (0: read it on every request). A revocation through this engine takes
    /// effect at once; one through another replica within this bound.
    pub api_key_cache_ms: i64,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            session_ttl_default_secs: 900,
            session_ttl_min_secs: 30,
            session_ttl_max_secs: 3600,
            idv_provider: "simulator".to_owned(),
            step_up_max_captures: 3,
            lockout_threshold: 5,
            lockout_window_secs: 900,
            lockout_duration_secs: 900,
            handoff_ttl_secs: 180,
            continuation_ttl_secs: 300,
            revoke_on_recovery: true,
            reject_counter_regression: false,
            audit: crate::audit::AuditConfig::default(),
            api_key_cache_ms: 1000,
        }
    }
}

pub struct Engine {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) rng: Arc<dyn Rng>,
    pub(crate) idv: BTreeMap<String, Arc<dyn IdvProvider>>,
    pub(crate) rp: RpMode,
    pub(crate) keys: Keys,
    pub(crate) config: EngineConfig,
    pub(crate) api_keys: crate::auth::ApiKeyCache,
    /// Webhook refusals of callers that did not authenticate, summarised into the audit log.
    pub(crate) webhook_refusals: crate::flows::idv_verdict::RefusalSummary,
}

impl Engine {
    pub fn new(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        rng: Arc<dyn Rng>,
        idv: Vec<Arc<dyn IdvProvider>>,
        rp: RpMode,
        keys: Keys,
        config: EngineConfig,
    ) -> Result<Self, CoreError> {
        let idv: BTreeMap<_, _> = idv.into_iter().map(|p| (p.name().to_owned(), p)).collect();
        if !idv.contains_key(&config.idv_provider) {
            return Err(CoreError::UnknownIdvProvider(config.idv_provider.clone()));
        }
        Ok(Self {
            store,
            clock,
            rng,
            idv,
            rp,
            keys,
            config,
            api_keys: crate::auth::ApiKeyCache::default(),
            webhook_refusals: Default::default(),
        })
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    pub fn now(&self) -> Millis {
        self.clock.now()
    }

    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    pub fn rp_mode(&self) -> &RpMode {
        &self.rp
    }

    pub(crate) fn provider(&self, name: &str) -> Result<&Arc<dyn IdvProvider>, CoreError> {
        self.idv
            .get(name)
            .ok_or_else(|| CoreError::UnknownIdvProvider(name.to_owned()))
    }

    /// The keyed hash of an external user id, as providers and the audit trail see it.
    pub fn user_ref(&self, external_user_id: &str) -> String {
        hex::encode(keyed_hash(
            &*self.keys.user_ref_key,
            "passbind/user-ref/v1",
            external_user_id.as_bytes(),
        ))
    }

    pub(crate) fn ttl_ms(&self, requested: Option<u64>) -> Result<i64, CoreError> {
        let c = &self.config;
        let secs = requested.unwrap_or(c.session_ttl_default_secs);
        if secs < c.session_ttl_min_secs || secs > c.session_ttl_max_secs {
            return Err(CoreError::Validation {
                field: "ttl_seconds".to_owned(),
                message: format!(
                    "must be between {} and {} seconds",
                    c.session_ttl_min_secs, c.session_ttl_max_secs
                ),
            });
        }
        i64::try_from(secs)
            .map(|s| s * 1000)
            .map_err(|_| CoreError::validation("ttl_seconds", "too large"))
    }

    // ---- API keys -------------------------------------------------------------------------

    /// Creates an API key; the returned token is shown once and never stored.
    pub async fn create_api_key(
        &self,
        actor: &Actor,
        name: &str,
        scopes: &[String],
    ) -> Result<NewApiKey, CoreError> {
        let r = self.create_api_key_inner(actor, name, scopes).await;
        self.audited(actor, "create_api_key", None, r).await
    }

    async fn create_api_key_inner(
        &self,
        actor: &Actor,
        name: &str,
        scopes: &[String],
    ) -> Result<NewApiKey, CoreError> {
        let key = auth::new_api_key(&*self.rng, name, scopes, self.now())?;
        self.commit(actor, vec![Write::InsertApiKey(key.record.clone())])
            .await?;
        Ok(key)
    }

    pub async fn revoke_api_key(&self, actor: &Actor, id: &str) -> Result<(), CoreError> {
        let r = self.revoke_api_key_inner(actor, id).await;
        self.audited(actor, "revoke_api_key", Some(id), r).await
    }

    async fn revoke_api_key_inner(&self, actor: &Actor, id: &str) -> Result<(), CoreError> {
        // Forgotten before and after the commit: no request of this replica that starts after
        // the revocation is answered uses the key read before it.
        self.api_keys.forget(id);
        let r = match self
            .commit(
                actor,
                vec![Write::RevokeApiKey {
                    id: id.to_owned(),
                    at: self.now(),
                }],
            )
            .await
        {
            Err(StoreError::Conflict(Conflict::NotFound)) => Err(CoreError::validation(
                "id",
                "no active API key with this id",
            )),
            other => other.map_err(CoreError::from),
        };
        self.api_keys.forget(id);
        r
    }

    /// Resolves a bearer token to its key record, or `Unauthorized`. A key read from the store
    /// is kept for `api_key_cache_ms` (see [`crate::auth::ApiKeyCache`]); the secret is checked
    /// against it on every request.
    pub async fn authenticate_api_key(&self, token: &str) -> Result<ApiKeyRecord, CoreError> {
        let (id, secret) = auth::parse_token(token).ok_or(CoreError::Unauthorized)?;
        let now = self.now();
        let record = match self.api_keys.get(id, now, self.config.api_key_cache_ms) {
            Some(r) => r,
            None => {
                let r = self
                    .store
                    .api_key(id)
                    .await?
                    .ok_or(CoreError::Unauthorized)?;
                if self.config.api_key_cache_ms > 0 {
                    self.api_keys.put(&r, now);
                }
                r
            }
        };
        auth::check(&record, &secret)?;
        Ok(record)
    }

    // ---- sessions, common to every flow ------------------------------------------------------

    pub(crate) async fn load_session(
        &self,
        id: &str,
        flow: Flow,
    ) -> Result<SessionRecord, CoreError> {
        if !crate::validate::is_record_id(id) {
            return Err(CoreError::SessionNotFound);
        }
        match self.store.session(id).await? {
            Some(s) if s.flow == flow => Ok(s),
            _ => Err(CoreError::SessionNotFound),
        }
    }

    /// Like [`Engine::load_session`], and reads with the session the credential that
    /// `assertion` names in its `id` member, with its owner (one read instead of three, for
    /// the completions that verify an assertion).
    pub(crate) async fn load_session_with_credential(
        &self,
        id: &str,
        flow: Flow,
        assertion: Option<&serde_json::Value>,
    ) -> Result<(SessionRecord, Preloaded), CoreError> {
        let named = assertion
            .and_then(|a| a.get("id"))
            .and_then(|v| v.as_str())
            .filter(|c| !c.is_empty() && c.len() <= 1366);
        let Some(credential_id) = named else {
            return Ok((self.load_session(id, flow).await?, Preloaded::default()));
        };
        if !crate::validate::is_record_id(id) {
            return Err(CoreError::SessionNotFound);
        }
        match self
            .store
            .session_with_credential(id, credential_id)
            .await?
        {
            Some(read) if read.session.flow == flow => Ok((
                read.session,
                Preloaded {
                    credential_id: Some(credential_id.to_owned()),
                    credential: read.credential,
                    owner: read.owner,
                },
            )),
            _ => Err(CoreError::SessionNotFound),
        }
    }

    /// Reads a session of the given flow.
    pub async fn session_view(&self, id: &str, flow: Flow) -> Result<SessionView, CoreError> {
        let s = self.load_session(id, flow).await?;
        Ok(self.view(&s, None))
    }

    /// Cancels a live session of the given flow.
    pub async fn cancel(
        &self,
        actor: &Actor,
        id: &str,
        flow: Flow,
    ) -> Result<SessionView, CoreError> {
        let r = self.cancel_inner(actor, id, flow).await;
        self.audited(actor, "cancel", Some(id), r).await
    }

    async fn cancel_inner(
        &self,
        actor: &Actor,
        id: &str,
        flow: Flow,
    ) -> Result<SessionView, CoreError> {
        let s = self.load_session(id, flow).await?;
        let now = self.now();
        let state = effective_state(s.state, s.expires_at, now);
        if state == SessionState::Expired {
            return Err(CoreError::SessionExpired);
        }
        let to = machine::next(s.flow, state, Event::Cancel)
            .map_err(|_| CoreError::invalid_state(state, "only a live session can be cancelled"))?;
        let updated = SessionRecord {
            state: to,
            version: s.version + 1,
            updated_at: now,
            ..s.clone()
        };
        self.commit_session_change(
            actor,
            &s,
            vec![Write::UpdateSession {
                record: updated.clone(),
                expected_version: s.version,
            }],
        )
        .await?;
        Ok(self.view(&updated, None))
    }

    /// Commits a change to a session; a lost race is reported as what the winner did.
    pub(crate) async fn commit_session_change(
        &self,
        actor: &Actor,
        read: &SessionRecord,
        writes: Vec<Write>,
    ) -> Result<(), CoreError> {
        match self.commit(actor, writes).await {
            Ok(()) => Ok(()),
            Err(StoreError::Conflict(Conflict::SessionVersion)) => {
                let now_state = self
                    .store
                    .session(&read.id)
                    .await?
                    .map(|s| effective_state(s.state, s.expires_at, self.now()));
                match now_state {
                    Some(state) if state != read.state => Err(CoreError::invalid_state(
                        state,
                        "the session changed concurrently",
                    )),
                    _ => Err(CoreError::Conflict),
                }
            }
            Err(e) => Err(e.into()),
        }
    }

    pub(crate) fn view(
        &self,
        s: &SessionRecord,
        fresh: Option<&crate::ports::StartedRun>,
    ) -> SessionView {
        use passbind_proto::session::{CaptureCount, CrossPlatformStatus};
        let state = effective_state(s.state, s.expires_at, self.now());
        let data = crate::flows::data::SessionData::of(s).unwrap_or_default();
        let idv = match (&s.idv_provider, &s.idv_run_id) {
            (Some(provider), Some(run_id)) => Some(IdvView {
                provider: provider.clone(),
                run_id: run_id.clone(),
                sdk_token: fresh.map(|r| r.sdk_token.clone()).filter(|t| !t.is_empty()),
                capture_url: fresh.and_then(|r| r.capture_url.clone()),
                verdict: data
                    .idv_verdict
                    .clone()
                    .unwrap_or_else(|| "pending".to_owned()),
                failure_reason: s.idv_failure,
                face_only: s.flow != Flow::Registration || data.face_only,
            }),
            _ => None,
        };
        let step_up = matches!(s.flow, Flow::StepUp | Flow::CrossPlatform);
        let status = (s.flow == Flow::CrossPlatform).then_some(match state {
            SessionState::Created => CrossPlatformStatus::Created,
            SessionState::IdvPending | SessionState::CaptureFailed => {
                CrossPlatformStatus::HandedOff
            }
            SessionState::IdvPassed => CrossPlatformStatus::Verifying,
            SessionState::Completed => CrossPlatformStatus::Completed,
            SessionState::IdvFailed => CrossPlatformStatus::Failed,
            SessionState::Expired => CrossPlatformStatus::Expired,
            SessionState::Cancelled => CrossPlatformStatus::Cancelled,
        });
        SessionView {
            id: s.id.clone(),
            flow: s.flow,
            state,
            external_user_id: s.external_user_id.clone(),
            created_at: rfc3339(s.created_at),
            expires_at: rfc3339(s.expires_at),
            idv,
            webauthn: data.webauthn_options.clone(),
            credential_id: s.credential_id.clone(),
            transaction_context_hash: if step_up { data.tx_hash.clone() } else { None },
            captures: step_up.then_some(CaptureCount {
                failed: data.failed_captures,
                max: data.max_captures,
            }),
            status,
            handoff: None,
            continuation: None,
            assertion: data.assertion.clone(),
            version: s.version,
        }
    }
}

/// Formats epoch milliseconds as RFC 3339 (UTC).
pub fn rfc3339(ms: Millis) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}
