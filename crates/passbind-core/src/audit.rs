//! The tamper-evident audit trail, seen from the engine: events written in the transaction of
//! the change they describe, refusals that matter for security, signed checkpoints, proofs,
//! export and verification, and identity proofs.

use crate::crypto::{keyed_hash, random_id};
use crate::engine::Engine;
use crate::error::CoreError;
use crate::model::*;
use passbind_audit::merkle::{self, Hash};
use passbind_audit::{Actor, AuditEvent, Checkpoint, Frontier, IdentityProofClaims, Report};
use passbind_proto::ErrorCode;
use serde::Serialize;
use serde_json::{json, Map, Value};

/// When checkpoints are signed.
#[derive(Debug, Clone, Copy)]
pub struct AuditConfig {
    /// Sign after this many new events...
    pub checkpoint_every_events: u64,
    /// ...or when this much time passed since the last checkpoint and there are new events.
    pub checkpoint_every_ms: i64,
}

impl Default for AuditConfig {
    fn default() -> Self {
        Self {
            checkpoint_every_events: 1000,
            checkpoint_every_ms: 60_000,
        }
    }
}

/// An inclusion proof of one event in the tree of a checkpoint.
#[derive(Debug, Clone, Serialize)]
pub struct InclusionProof {
    pub seq: u64,
    /// Hex; the event's `hash` (its RFC 9162 leaf hash).
    pub leaf_hash: String,
    /// The leaf index is `seq - 1`.
    pub tree_size: u64,
    /// Hex hashes, RFC 9162 §2.1.3 order.
    pub proof: Vec<String>,
    pub checkpoint: Checkpoint,
}

/// A consistency proof between two checkpoints.
#[derive(Debug, Clone, Serialize)]
pub struct ConsistencyProof {
    pub from: Checkpoint,
    pub to: Checkpoint,
    /// Hex hashes, RFC 9162 §2.1.4 order.
    pub proof: Vec<String>,
}

/// An identity proof with its decoded claims.
#[derive(Debug, Clone, Serialize)]
pub struct IdentityProofView {
    pub jws: String,
    pub claims: IdentityProofClaims,
}

fn hex32(s: &str) -> Result<Hash, CoreError> {
    passbind_audit::event::parse_hash_hex(s)
        .ok_or_else(|| CoreError::Internal("audit: malformed stored hash".into()))
}

/// Whether a refused request is worth an audit event (it says something about an attack or
/// a misuse, not just a malformed body).
fn security_relevant(code: ErrorCode) -> bool {
    matches!(
        code,
        ErrorCode::InvalidSignature
            | ErrorCode::UnknownIdvRun
            | ErrorCode::BiometricMismatch
            | ErrorCode::RecoveryBiometricMismatch
            | ErrorCode::IdvFailed
            | ErrorCode::WebauthnVerificationFailed
            | ErrorCode::HandoffTokenInvalid
            | ErrorCode::ContinuationInvalid
            | ErrorCode::RateLimited
            | ErrorCode::InvalidState
            | ErrorCode::SessionExpired
            | ErrorCode::CredentialExists
    )
}

impl Engine {
    /// A draft event about `session` (if any), caused by `actor`.
    pub(crate) fn audit_draft(
        &self,
        actor: &Actor,
        event_type: &str,
        outcome: &str,
        session: Option<&SessionRecord>,
    ) -> AuditDraft {
        AuditDraft {
            time_ms: self.now(),
            event_type: event_type.to_owned(),
            outcome: outcome.to_owned(),
            reason: None,
            session_id: session.map(|s| s.id.clone()),
            flow: session.map(|s| s.flow.as_str().to_owned()),
            actor_kind: actor.kind.clone(),
            actor_id: actor.id.clone(),
            user_ref: session
                .filter(|s| !s.external_user_id.is_empty())
                .map(|s| self.user_ref(&s.external_user_id)),
            tx_hash: session.and_then(|s| {
                s.data
                    .get("tx_hash")
                    .and_then(Value::as_str)
                    .map(str::to_owned)
            }),
            details: Map::new(),
        }
    }

    /// The audit events that describe a change, derived from its writes, so that no change is
    /// committed without its events (and no event without its change: they share the
    /// transaction).
    pub(crate) fn events_for(&self, actor: &Actor, writes: &[Write]) -> Vec<Write> {
        let mut out = Vec::new();
        // Every event of a change that concerns a session carries that session's context.
        let context = writes.iter().find_map(|w| match w {
            Write::InsertSession(s) | Write::UpdateSession { record: s, .. } => Some(s),
            _ => None,
        });
        let mut push = |event_type: &str, session: Option<&SessionRecord>, details: Value| {
            let mut d = self.audit_draft(actor, event_type, "success", session.or(context));
            if let Value::Object(m) = details {
                d.details = m;
            }
            if let Some(s) = session {
                if let Some(r) = s.idv_failure {
                    d.reason = Some(r.as_str().to_owned());
                }
            }
            out.push(Write::AppendAudit(d));
        };
        for w in writes {
            match w {
                Write::InsertUser(u) => push("user.created", None, json!({ "user": u.id })),
                Write::MarkUserErased { user_id, .. } => {
                    push("user.erased", None, json!({ "user": user_id }))
                }
                Write::InsertSession(s) => push(
                    "session.opened",
                    Some(s),
                    json!({ "state": s.state.as_str() }),
                ),
                Write::UpdateSession { record, .. } => push(
                    "session.transition",
                    Some(record),
                    json!({ "state": record.state.as_str(), "version": record.version }),
                ),
                Write::InsertEbt(e) => push(
                    "biometric_reference.stored",
                    None,
                    json!({ "user": e.user_id, "key_version": e.key_version }),
                ),
                Write::ReplaceEbtKey {
                    user_id,
                    key_version,
                    ..
                } => push(
                    "biometric_reference.rewrapped",
                    None,
                    json!({ "user": user_id, "key_version": key_version }),
                ),
                Write::DeleteEbt { user_id } => push(
                    "biometric_reference.shredded",
                    None,
                    json!({ "user": user_id }),
                ),
                Write::InsertCredential(c) => push(
                    "credential.bound",
                    None,
                    json!({ "credential_id": c.credential_id, "user": c.user_id,
                            "session": c.registration_session_id,
                            "aaguid": c.aaguid, "attestation_format": c.attestation_format }),
                ),
                Write::UpdateCredentialUse { credential_id, .. } => push(
                    "credential.used",
                    None,
                    json!({ "credential_id": credential_id }),
                ),
                Write::RevokeCredential { credential_id, .. } => push(
                    "credential.revoked",
                    None,
                    json!({ "credential_id": credential_id }),
                ),
                Write::RevokeUserCredentials { user_id, keep, .. } => push(
                    "credentials.revoked",
                    None,
                    json!({ "user": user_id, "kept": keep }),
                ),
                // Part of the erasure, which `user.erased` records.
                Write::EraseCredentialLabels { .. } => {}
                Write::RecordIdvEvent {
                    provider,
                    event_key,
                    ..
                } => push(
                    "webhook.received",
                    None,
                    json!({ "provider": provider, "event_key": event_key, "result": "applied" }),
                ),
                Write::InsertApiKey(k) => push(
                    "api_key.created",
                    None,
                    json!({ "api_key": k.id, "name": k.name, "scopes": k.scopes }),
                ),
                Write::RevokeApiKey { id, .. } => {
                    push("api_key.revoked", None, json!({ "api_key": id }))
                }
                Write::InsertSecret(x) => push(
                    "secret.issued",
                    None,
                    json!({ "kind": x.kind, "session": x.session_id, "expires_at_ms": x.expires_at }),
                ),
                Write::ConsumeSecret { .. } => push("secret.consumed", None, json!({})),
                Write::RecordFailure { user_id, kind, .. } => push(
                    "security.failure_counted",
                    None,
                    json!({ "user": user_id, "kind": kind }),
                ),
                Write::InsertIdentityProof(p) => push(
                    "identity_proof.issued",
                    None,
                    json!({ "proof": p.id, "session": p.session_id, "credential_id": p.credential_id }),
                ),
                Write::AppendAudit(_) | Write::InsertCheckpoint { .. } => {}
            }
        }
        out
    }

    /// Commits a change together with the audit events that describe it.
    pub(crate) async fn commit(
        &self,
        actor: &Actor,
        mut writes: Vec<Write>,
    ) -> Result<(), StoreError> {
        let events = self.events_for(actor, &writes);
        writes.extend(events);
        self.store.commit(writes).await
    }

    /// Records a plain event (no state change), in its own transaction. Best effort.
    pub(crate) async fn record_event(&self, d: AuditDraft) {
        if let Err(e) = self.store.commit(vec![Write::AppendAudit(d)]).await {
            tracing::error!(error = %e, "could not write an audit event");
        }
    }

    /// Records a refusal that matters for security, in its own transaction. Best effort: a
    /// failure to record it is logged, and the caller's error stands.
    pub(crate) async fn record_refusal(
        &self,
        actor: &Actor,
        what: &str,
        session: Option<&SessionRecord>,
        err: &CoreError,
    ) {
        let code = err.code();
        if !security_relevant(code) {
            return;
        }
        let mut d = self.audit_draft(actor, "security.refused", "refused", session);
        d.reason = Some(code.as_str().to_owned());
        d.details.insert("operation".into(), json!(what));
        if let CoreError::Webauthn(e) = err {
            d.details.insert("webauthn_reason".into(), json!(e.reason));
        }
        if let Err(e) = self.store.commit(vec![Write::AppendAudit(d)]).await {
            tracing::error!(error = %e, "could not record a refusal in the audit log");
        }
    }

    /// Passes `r` through, recording it first if it is a refusal that matters for security.
    pub(crate) async fn audited<T>(
        &self,
        actor: &Actor,
        operation: &str,
        session_id: Option<&str>,
        r: Result<T, CoreError>,
    ) -> Result<T, CoreError> {
        if let Err(e) = &r {
            self.refusal_for(actor, operation, session_id, e).await;
        }
        r
    }

    /// Records a refusal for a session known only by id.
    pub(crate) async fn refusal_for(
        &self,
        actor: &Actor,
        what: &str,
        session_id: Option<&str>,
        err: &CoreError,
    ) {
        if !security_relevant(err.code()) {
            return;
        }
        let session = match session_id {
            Some(id) if crate::validate::is_record_id(id) => {
                self.store.session(id).await.ok().flatten()
            }
            _ => None,
        };
        self.record_refusal(actor, what, session.as_ref(), err)
            .await;
    }

    // ---- reading ---------------------------------------------------------------------------

    /// The public key that signs checkpoints and identity proofs, as `ed25519:<base64url>`.
    pub fn audit_public_key(&self) -> String {
        self.keys.signer.public_key_text()
    }

    /// Events of the log. The pending events of every change committed before the call are
    /// integrated first, so a caller always finds the events of what it just did.
    pub async fn audit_events(&self, q: &AuditQuery) -> Result<Vec<AuditEvent>, CoreError> {
        self.store.integrate_audit(true).await?;
        Ok(self.store.audit_events(q).await?)
    }

    /// One run of the audit sequencer (see [`crate::ports::AuditStore::integrate_audit`]): the
    /// server calls it every `PASSBIND_AUDIT_INTEGRATE_MS`; with `wait` false it returns at once
    /// when another replica is integrating.
    pub async fn integrate_audit(&self, wait: bool) -> Result<u64, CoreError> {
        Ok(self.store.integrate_audit(wait).await?)
    }

    /// How many audit events wait for the sequencer, and how long the oldest has waited (ms).
    pub async fn audit_backlog(&self) -> Result<(u64, i64), CoreError> {
        let (n, oldest) = self.store.audit_pending().await?;
        let age = oldest.map_or(0, |t| (self.now() - t).max(0));
        Ok((n, age))
    }

    pub async fn audit_checkpoints(&self) -> Result<Vec<Checkpoint>, CoreError> {
        Ok(self.store.audit_checkpoints().await?)
    }

    /// Signs a checkpoint when the policy says one is due (or always, with `force`, when there
    /// are events after the last one). Several replicas may race: one insert wins.
    pub async fn checkpoint(&self, force: bool) -> Result<Option<Checkpoint>, CoreError> {
        // What is pending goes into the tree first (a forced checkpoint waits for a sequencer
        // at work on another replica, so that it covers every change committed before it).
        self.store.integrate_audit(force).await?;
        let (head_seq, _) = self.store.audit_head().await?;
        let latest = self.store.latest_audit_checkpoint().await?;
        // Never earlier than the checkpoint before it, whatever this replica's clock says.
        let (last_size, last_time, frontier) = match &latest {
            Some((c, f)) => {
                let hashes = f.iter().map(|h| hex32(h)).collect::<Result<Vec<_>, _>>()?;
                let frontier = Frontier::from_parts(c.tree_size, hashes)
                    .ok_or_else(|| CoreError::Internal("audit: corrupt frontier".into()))?;
                (c.tree_size, c.time_ms, frontier)
            }
            None => (0, 0, Frontier::new()),
        };
        if head_seq <= last_size {
            return Ok(None);
        }
        let now = self.now().max(last_time);
        let due = force
            || head_seq - last_size >= self.config.audit.checkpoint_every_events
            || now - last_time >= self.config.audit.checkpoint_every_ms;
        if !due {
            return Ok(None);
        }
        let mut frontier = frontier;
        let mut after = last_size;
        while after < head_seq {
            let batch = self
                .store
                .audit_events(&AuditQuery {
                    after_seq: Some(after),
                    ascending: true,
                    limit: 5000,
                    ..AuditQuery::default()
                })
                .await?;
            if batch.is_empty() {
                break;
            }
            for e in &batch {
                if e.seq > head_seq {
                    break;
                }
                frontier.append(hex32(&e.hash)?);
                after = e.seq;
            }
        }
        if frontier.size() != head_seq {
            return Err(CoreError::Internal(
                "audit: events missing below the head".into(),
            ));
        }
        let checkpoint = self.keys.signer.sign(head_seq, &frontier.root(), now);
        let hashes = frontier.hashes().iter().map(hex::encode).collect();
        match self
            .store
            .commit(vec![Write::InsertCheckpoint {
                checkpoint: checkpoint.clone(),
                frontier: hashes,
                previous_tree_size: last_size,
            }])
            .await
        {
            Ok(()) => Ok(Some(checkpoint)),
            // Another replica signed first: its checkpoint stands, the next tick goes on from it.
            Err(StoreError::Conflict(Conflict::StaleCheckpoint | Conflict::DuplicateId)) => {
                Ok(None)
            }
            Err(e) => Err(e.into()),
        }
    }

    async fn leaf_hashes(&self, upto: u64) -> Result<Vec<Hash>, CoreError> {
        self.store
            .audit_hashes(upto)
            .await?
            .iter()
            .map(|h| hex32(h))
            .collect()
    }

    /// An inclusion proof for event `seq` in the tree of the checkpoint of `tree_size` (default:
    /// the newest checkpoint).
    pub async fn inclusion_proof(
        &self,
        seq: u64,
        tree_size: Option<u64>,
    ) -> Result<InclusionProof, CoreError> {
        let checkpoints = self.store.audit_checkpoints().await?;
        let checkpoint = match tree_size {
            Some(n) => checkpoints.into_iter().find(|c| c.tree_size == n),
            None => checkpoints.into_iter().next_back(),
        }
        .ok_or_else(|| CoreError::validation("tree_size", "no checkpoint of this size"))?;
        if seq == 0 || seq > checkpoint.tree_size {
            return Err(CoreError::validation(
                "seq",
                "the event is not covered by this checkpoint",
            ));
        }
        let leaves = self.leaf_hashes(checkpoint.tree_size).await?;
        let proof = merkle::inclusion_proof(&leaves, seq - 1)
            .map_err(|e| CoreError::Internal(format!("audit: {e}")))?;
        let leaf = leaves
            .get(usize::try_from(seq - 1).unwrap_or(usize::MAX))
            .copied()
            .ok_or_else(|| CoreError::Internal("audit: missing leaf".into()))?;
        Ok(InclusionProof {
            seq,
            leaf_hash: hex::encode(leaf),
            tree_size: checkpoint.tree_size,
            proof: proof.iter().map(hex::encode).collect(),
            checkpoint,
        })
    }

    /// A consistency proof between the checkpoints of sizes `from` and `to`.
    pub async fn consistency_proof(
        &self,
        from: u64,
        to: u64,
    ) -> Result<ConsistencyProof, CoreError> {
        let checkpoints = self.store.audit_checkpoints().await?;
        let find = |n: u64, field: &str| {
            checkpoints
                .iter()
                .find(|c| c.tree_size == n)
                .cloned()
                .ok_or_else(|| CoreError::validation(field, "no checkpoint of this size"))
        };
        let (a, b) = (find(from, "from")?, find(to, "to")?);
        if from > to {
            return Err(CoreError::validation("from", "must not exceed `to`"));
        }
        let leaves = self.leaf_hashes(to).await?;
        let proof = merkle::consistency_proof(&leaves, from)
            .map_err(|e| CoreError::Internal(format!("audit: {e}")))?;
        Ok(ConsistencyProof {
            from: a,
            to: b,
            proof: proof.iter().map(hex::encode).collect(),
        })
    }

    /// The whole log and its checkpoints as JSON Lines (`passbind-audit/v1`).
    pub async fn export_audit_log(&self) -> Result<String, CoreError> {
        export_log(&*self.store, &self.keys.signer.public_key(), self.now()).await
    }

    /// Verifies the stored log as an auditor would verify an export.
    pub async fn verify_audit_log(&self) -> Result<Report, CoreError> {
        let text = self.export_audit_log().await?;
        Ok(passbind_audit::verify_text(
            &text,
            &self.keys.signer.public_key(),
        ))
    }

    // ---- identity proofs -------------------------------------------------------------------

    /// A signed identity proof for a verdict: the normalised identity result is keyed-hashed
    /// and discarded; only the proof is kept.
    pub(crate) fn identity_proof_write(
        &self,
        s: &SessionRecord,
        identity: Option<&Value>,
        verdict: &str,
        credential_id: Option<&str>,
        proof_hash_hex: Option<String>,
    ) -> Result<(Write, String), CoreError> {
        let proof_hash = match (proof_hash_hex, identity) {
            (Some(h), _) => h,
            (None, Some(id)) => match passbind_audit::normalise(id) {
                Ok(n) => hex::encode(passbind_audit::proof_hash(&self.proof_key(), &n)),
                Err(_) => hex::encode(keyed_hash(&self.proof_key(), "passbind/no-identity", b"")),
            },
            (None, None) => hex::encode(keyed_hash(&self.proof_key(), "passbind/no-identity", b"")),
        };
        let claims = IdentityProofClaims {
            proof_hash: proof_hash.clone(),
            verdict: verdict.to_owned(),
            provider: s.idv_provider.clone().unwrap_or_default(),
            run_id: s.idv_run_id.clone().unwrap_or_default(),
            trace_id: s.id.clone(),
            session_id: s.id.clone(),
            credential_id: credential_id.map(str::to_owned),
            issued_at_ms: self.now(),
        };
        let jws = passbind_audit::sign_identity_proof(self.keys.signer.signer(), &claims)
            .map_err(|e| CoreError::Internal(format!("identity proof: {e}")))?;
        Ok((
            Write::InsertIdentityProof(IdentityProofRecord {
                id: random_id(&*self.rng, "idp"),
                session_id: s.id.clone(),
                user_id: s.user_id.clone(),
                credential_id: credential_id.map(str::to_owned),
                jws,
                created_at: self.now(),
            }),
            proof_hash,
        ))
    }

    /// A second proof that binds the session's verified identity to the credential it bound.
    pub(crate) async fn binding_proof_write(
        &self,
        s: &SessionRecord,
        credential_id: &str,
    ) -> Result<Option<Write>, CoreError> {
        let proofs = self.store.identity_proofs_of_session(&s.id).await?;
        let Some(first) = proofs.into_iter().find(|p| p.credential_id.is_none()) else {
            return Ok(None);
        };
        let claims =
            passbind_audit::verify_identity_proof(&first.jws, &self.keys.signer.public_key())
                .map_err(|e| CoreError::Internal(format!("stored identity proof: {e}")))?;
        let (w, _) = self.identity_proof_write(
            s,
            None,
            &claims.verdict,
            Some(credential_id),
            Some(claims.proof_hash),
        )?;
        Ok(Some(w))
    }

    /// The identity proofs of one of a user's credentials.
    pub async fn identity_proofs(
        &self,
        external_user_id: &str,
        credential_id: &str,
    ) -> Result<Vec<IdentityProofView>, CoreError> {
        crate::validate::external_user_id(external_user_id)?;
        let user = self
            .store
            .user_by_external_id(external_user_id)
            .await?
            .ok_or(CoreError::UserNotFound)?;
        if crate::crypto::b64url_decode(credential_id).is_none() {
            return Err(CoreError::CredentialNotFound);
        }
        match self.store.credential(credential_id).await? {
            Some(c) if c.user_id == user.id => {}
            _ => return Err(CoreError::CredentialNotFound),
        }
        let key = self.keys.signer.public_key();
        self.store
            .identity_proofs_of_credential(credential_id)
            .await?
            .into_iter()
            .map(|p| {
                let claims = passbind_audit::verify_identity_proof(&p.jws, &key)
                    .map_err(|e| CoreError::Internal(format!("stored identity proof: {e}")))?;
                Ok(IdentityProofView { jws: p.jws, claims })
            })
            .collect()
    }

    fn proof_key(&self) -> [u8; 32] {
        keyed_hash(
            &*self.keys.user_ref_key,
            "passbind/identity-proof-key/v1",
            b"",
        )
    }
}

/// Exports a store's audit log and checkpoints as JSON Lines, with `public_key` in the header.
pub async fn export_log(
    store: &dyn crate::ports::Store,
    public_key: &[u8; 32],
    now: Millis,
) -> Result<String, CoreError> {
    // Everything committed before the export is in it; what commits meanwhile is counted as
    // pending in the header.
    store.integrate_audit(true).await?;
    let mut events = Vec::new();
    let mut after = 0;
    loop {
        let batch = store
            .audit_events(&AuditQuery {
                after_seq: Some(after),
                ascending: true,
                limit: 5000,
                ..AuditQuery::default()
            })
            .await?;
        let Some(last) = batch.last() else { break };
        after = last.seq;
        events.extend(batch);
    }
    let checkpoints = store.audit_checkpoints().await?;
    let (pending, _) = store.audit_pending().await?;
    passbind_audit::write_export_with_pending(&events, &checkpoints, public_key, now, pending)
        .map_err(|e| CoreError::Internal(format!("audit export: {e}")))
}

/// The actor for calls made with an API key.
pub fn api_key_actor(id: &str) -> Actor {
    Actor::new("api_key", id)
}
