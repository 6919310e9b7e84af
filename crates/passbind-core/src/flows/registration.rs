//! Registration (seed 001, "Registration"): a new user is identity-verified (document + live
//! face, or face-only against an existing token) and gets a device-bound passkey bound to them;
//! their encrypted biometric token arrives by the provider's webhook and is stored once.

use super::data::SessionData;
use crate::crypto::{b64url, b64url_decode, random_bytes, random_id, sha256};
use crate::engine::{Engine, RpMode};
use crate::error::CoreError;
use crate::machine::{self, effective_state, Event};
use crate::model::*;
use crate::ports::{IdvPurpose, StartRun};
use crate::validate;
use passbind_audit::Actor;
use passbind_proto::registration::{CompleteRegistration, OpenRegistration};
use passbind_proto::session::{Flow, IdvFailureReason, SessionState, SessionView};
use zeroize::Zeroizing;

fn prior_context(session_id: &str) -> String {
    format!("prior-ebt/session={session_id}")
}

impl Engine {
    /// Opens a registration: validates, starts the identity-verification run and (built-in
    /// relying party) issues the WebAuthn creation options.
    pub async fn open_registration(
        &self,
        actor: &Actor,
        req: OpenRegistration,
    ) -> Result<SessionView, CoreError> {
        let r = self.open_registration_inner(actor, req).await;
        self.audited(actor, "open_registration", None, r).await
    }

    async fn open_registration_inner(
        &self,
        actor: &Actor,
        req: OpenRegistration,
    ) -> Result<SessionView, CoreError> {
        // First opens racing for one new user: the losers' commit of the user is refused (the
        // external id is unique) and nothing of theirs is stored; each opens once more, now for
        // the user that won, as an integrator would after a 409.
        match self.open_registration_once(actor, &req).await {
            Err(CoreError::Conflict) => self.open_registration_once(actor, &req).await,
            other => other,
        }
    }

    async fn open_registration_once(
        &self,
        actor: &Actor,
        req: &OpenRegistration,
    ) -> Result<SessionView, CoreError> {
        validate::external_user_id(&req.external_user_id)?;
        validate::short_text("display_name", req.display_name.as_deref(), 128)?;
        let custom_data = validate::custom_data(
            req.workflow_input
                .as_ref()
                .and_then(|w| w.custom_data.as_ref()),
        )?;
        let prior = match &req.prior_biometric {
            Some(p) => {
                let t = p.encrypted_biometric_token.trim();
                if t.is_empty() || t.len() > 16 * 1024 {
                    return Err(CoreError::validation(
                        "prior_biometric.encrypted_biometric_token",
                        "must be 1 to 16384 characters",
                    ));
                }
                Some(Zeroizing::new(t.to_owned()))
            }
            None => None,
        };
        let ttl = self.ttl_ms(req.ttl_seconds)?;
        let now = self.now();

        // The user: existing, or new with a random WebAuthn user handle.
        let existing = self
            .store
            .user_by_external_id(&req.external_user_id)
            .await?;
        let (user, new_user_write) = match existing {
            Some(u) if u.erased_at.is_some() => {
                return Err(CoreError::invalid_state(
                    SessionState::Created,
                    "this user was erased; use a new external_user_id",
                ))
            }
            Some(u) => (u, None),
            None => {
                let u = UserRecord {
                    id: random_id(&*self.rng, "usr"),
                    external_user_id: req.external_user_id.clone(),
                    user_handle: random_bytes::<32>(&*self.rng).to_vec(),
                    created_at: now,
                    erased_at: None,
                };
                (u.clone(), Some(Write::InsertUser(u)))
            }
        };

        // The workflow input: the supplied prior token, else the stored one, else nothing.
        let stored = match new_user_write {
            Some(_) => None,
            None => self.store.ebt(&user.id).await?,
        };
        let input_token = match (&prior, &stored) {
            (Some(p), _) => Some(p.clone()),
            (None, Some(rec)) => Some(self.keys.ebt.open_ebt(rec)?),
            (None, None) => None,
        };
        let face_only = input_token.is_some();

        let session_id = random_id(&*self.rng, "reg");
        let mut data = SessionData {
            face_only,
            ..SessionData::default()
        };
        if let (Some(p), None) = (&prior, &stored) {
            data.prior_token_sealed = Some(self.keys.ebt.seal_blob(
                &*self.rng,
                &prior_context(&session_id),
                p.as_bytes(),
            )?);
        }
        let mut fresh_options = None;
        if let RpMode::BuiltIn(rp) = &self.rp {
            let exclude: Vec<Vec<u8>> = self
                .store
                .credentials_of_user(&user.id)
                .await?
                .into_iter()
                .filter(|c| c.revoked_at.is_none())
                .filter_map(|c| b64url_decode(&c.credential_id))
                .collect();
            let display = req
                .display_name
                .clone()
                .unwrap_or_else(|| req.external_user_id.clone());
            let challenge = sha256(&random_bytes::<32>(&*self.rng));
            let creation = rp
                .creation_options(
                    &user.user_handle,
                    &req.external_user_id,
                    &display,
                    challenge,
                    &exclude,
                )
                .map_err(CoreError::Webauthn)?;
            data.webauthn_state = Some(creation.state);
            // The stored copy (served again on reads) carries no display name: that is the
            // integrator's data, shown by the authenticator once, not Passbind's to keep.
            let mut stored = creation.options.clone();
            if let Some(u) = stored
                .get_mut("publicKey")
                .and_then(|p| p.get_mut("user"))
                .and_then(serde_json::Value::as_object_mut)
            {
                u.insert(
                    "displayName".into(),
                    serde_json::Value::String(req.external_user_id.clone()),
                );
            }
            data.webauthn_options = Some(stored);
            fresh_options = Some(creation.options);
        }

        let provider_name = self.config.idv_provider.clone();
        let provider = self.provider(&provider_name)?;
        let run = provider
            .start_run(StartRun {
                purpose: IdvPurpose::Registration,
                session_id: session_id.clone(),
                customer_user_ref: self.user_ref(&user.external_user_id),
                biometric_token: input_token,
                custom_data,
            })
            .await
            .map_err(CoreError::provider_call)?;

        let state = machine::next(Flow::Registration, SessionState::Created, Event::IdvStarted)
            .map_err(|e| CoreError::Internal(e.to_string()))?;
        let record = SessionRecord {
            id: session_id,
            flow: Flow::Registration,
            state,
            version: 0,
            user_id: user.id.clone(),
            external_user_id: user.external_user_id.clone(),
            created_at: now,
            updated_at: now,
            expires_at: now + ttl,
            idv_provider: Some(provider_name),
            idv_run_id: Some(run.run_id.clone()),
            idv_failure: None,
            credential_id: None,
            data: data.to_value()?,
        };
        let mut writes = Vec::with_capacity(2);
        writes.extend(new_user_write);
        writes.push(Write::InsertSession(record.clone()));
        match self.commit(actor, writes).await {
            Ok(()) => {}
            // Two first registrations of one new user raced: the other created the user.
            Err(StoreError::Conflict(Conflict::DuplicateUser)) => return Err(CoreError::Conflict),
            Err(e) => return Err(e.into()),
        }
        tracing::info!(session = %record.id, flow = "registration", face_only, "session opened");
        let record = self.settle_if_synchronous(record).await?;
        let mut view = self.view(&record, Some(&run));
        if fresh_options.is_some() {
            view.webauthn = fresh_options;
        }
        Ok(view)
    }

    /// Completes a registration: refused unless this session's identity verification passed;
    /// binds the credential (verified here in built-in mode) to the user. Succeeds once.
    pub async fn complete_registration(
        &self,
        actor: &Actor,
        id: &str,
        req: CompleteRegistration,
    ) -> Result<SessionView, CoreError> {
        let r = self.complete_registration_inner(actor, id, req).await;
        self.audited(actor, "complete_registration", Some(id), r)
            .await
    }

    async fn complete_registration_inner(
        &self,
        actor: &Actor,
        id: &str,
        req: CompleteRegistration,
    ) -> Result<SessionView, CoreError> {
        validate::short_text("device_label", req.device_label.as_deref(), 64)?;
        let s = self.load_session(id, Flow::Registration).await?;
        let now = self.now();
        let state = effective_state(s.state, s.expires_at, now);
        match state {
            SessionState::IdvPassed => {}
            SessionState::Expired => return Err(CoreError::SessionExpired),
            SessionState::IdvFailed => {
                return Err(match s.idv_failure {
                    Some(IdvFailureReason::Declined) | None => CoreError::BiometricMismatch,
                    Some(r) => CoreError::IdvFailed(r.as_str()),
                })
            }
            SessionState::Created | SessionState::IdvPending | SessionState::CaptureFailed => {
                return Err(CoreError::invalid_state(
                    state,
                    "the identity verification has not passed yet",
                ))
            }
            SessionState::Completed | SessionState::Cancelled => {
                return Err(CoreError::invalid_state(state, "the session is closed"))
            }
        }
        let data = SessionData::of(&s)?;

        let credential = self.credential_from_attestation(&s, &data, &req, now)?;
        let to = machine::next(s.flow, state, Event::Complete)
            .map_err(|_| CoreError::invalid_state(state, "cannot complete"))?;
        let mut done = SessionData {
            webauthn_state: None,
            ..data
        };
        done.prior_token_sealed = None;
        let updated = SessionRecord {
            state: to,
            version: s.version + 1,
            updated_at: now,
            credential_id: Some(credential.credential_id.clone()),
            data: done.to_value()?,
            ..s.clone()
        };
        let credential_id = credential.credential_id.clone();
        let mut writes = vec![
            Write::UpdateSession {
                record: updated.clone(),
                expected_version: s.version,
            },
            Write::InsertCredential(credential),
        ];
        writes.extend(self.binding_proof_write(&s, &credential_id).await?);
        self.commit_session_change(actor, &s, writes).await?;
        tracing::info!(session = %s.id, flow = "registration", credential = %credential_id, "credential bound");
        Ok(self.view(&updated, None))
    }

    /// Verifies the attestation (built-in relying party) or takes the IDP's credential id
    /// (external), and builds the credential record to bind to the session's user.
    pub(crate) fn credential_from_attestation(
        &self,
        s: &SessionRecord,
        data: &SessionData,
        req: &CompleteRegistration,
        now: Millis,
    ) -> Result<CredentialRecord, CoreError> {
        let c = match &self.rp {
            RpMode::BuiltIn(rp) => {
                if req.credential_id.is_some() {
                    return Err(CoreError::validation(
                        "credential_id",
                        "built-in relying-party mode takes `credential`, not `credential_id`",
                    ));
                }
                let response = req.credential.as_ref().ok_or_else(|| {
                    CoreError::validation("credential", "the PublicKeyCredential JSON is required")
                })?;
                let rp_state = data
                    .webauthn_state
                    .as_ref()
                    .ok_or_else(|| CoreError::Internal("registration without RP state".into()))?;
                let c = rp
                    .verify_registration(rp_state, response)
                    .map_err(CoreError::Webauthn)?;
                CredentialRecord {
                    credential_id: b64url(&c.credential_id),
                    user_id: s.user_id.clone(),
                    public_key: Some(c.public_key_cose),
                    alg: Some(c.alg),
                    sign_count: i64::from(c.sign_count),
                    aaguid: Some(hex::encode(c.aaguid)),
                    transports: c.transports,
                    backup_eligible: c.backup_eligible,
                    backed_up: c.backed_up,
                    attestation_format: Some(c.attestation_format),
                    device_label: req.device_label.clone(),
                    registration_session_id: s.id.clone(),
                    created_at: now,
                    last_used_at: None,
                    revoked_at: None,
                }
            }
            RpMode::External => {
                if req.credential.is_some() {
                    return Err(CoreError::validation(
                        "credential",
                        "external relying-party mode takes `credential_id`",
                    ));
                }
                let cid = req.credential_id.as_deref().unwrap_or_default();
                let raw = b64url_decode(cid).filter(|r| !r.is_empty() && r.len() <= 1023);
                if raw.is_none() {
                    return Err(CoreError::validation(
                        "credential_id",
                        "base64url (no padding), 1 to 1023 bytes",
                    ));
                }
                CredentialRecord {
                    credential_id: cid.to_owned(),
                    user_id: s.user_id.clone(),
                    public_key: None,
                    alg: None,
                    sign_count: 0,
                    aaguid: None,
                    transports: Vec::new(),
                    backup_eligible: false,
                    backed_up: false,
                    attestation_format: None,
                    device_label: req.device_label.clone(),
                    registration_session_id: s.id.clone(),
                    created_at: now,
                    last_used_at: None,
                    revoked_at: None,
                }
            }
        };
        Ok(c)
    }

    /// Applies a registration run's verdict: what to write besides the session update.
    pub(crate) fn registration_verdict_writes(
        &self,
        s: &SessionRecord,
        passed_token: Option<&Zeroizing<String>>,
        user_has_ebt: bool,
    ) -> Result<(Vec<Write>, Option<IdvFailureReason>), CoreError> {
        let data = SessionData::of(s)?;
        if user_has_ebt {
            // One token per user: a later device's run never replaces it.
            return Ok((Vec::new(), None));
        }
        let token: Option<Zeroizing<String>> = match (&data.prior_token_sealed, passed_token) {
            (Some(sealed), _) => {
                let b = self.keys.ebt.open_blob(&prior_context(&s.id), sealed)?;
                Some(Zeroizing::new(String::from_utf8_lossy(&b).into_owned()))
            }
            (None, Some(t)) => Some(t.clone()),
            (None, None) => None,
        };
        match token {
            Some(t) => {
                let rec = self
                    .keys
                    .ebt
                    .seal_ebt(&*self.rng, &s.user_id, &t, self.now())?;
                Ok((vec![Write::InsertEbt(rec)], None))
            }
            None => Ok((Vec::new(), Some(IdvFailureReason::MissingBiometricToken))),
        }
    }
}
