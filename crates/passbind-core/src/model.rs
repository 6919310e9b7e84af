//! The records Passbind keeps, and the writes a flow asks the store to apply atomically.
//!
//! Times are milliseconds since the Unix epoch (UTC). Nothing here holds personal data: users
//! are known by the integrator's opaque `external_user_id`, and the biometric token is kept
//! only as ciphertext.

use passbind_proto::session::{Flow, IdvFailureReason, SessionState};
use serde::{Deserialize, Serialize};

/// Milliseconds since the Unix epoch.
pub type Millis = i64;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRecord {
    /// Internal id (random), never shown to the user's devices.
    pub id: String,
    /// The integrator's opaque id.
    pub external_user_id: String,
    /// The WebAuthn user handle: 32 random bytes, independent of the external id.
    pub user_handle: Vec<u8>,
    pub created_at: Millis,
    /// Set when the user was erased (biometric token shredded, credentials revoked).
    pub erased_at: Option<Millis>,
}

/// One user's encrypted biometric token (EBT), sealed by envelope encryption: a per-user data
/// key encrypts the token, the key ring's key `key_version` wraps the data key. Destroying the
/// wrapped data key crypto-shreds the token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EbtRecord {
    pub user_id: String,
    pub key_version: u32,
    /// nonce (12 bytes) || AES-256-GCM(KEK, data key)
    pub wrapped_dek: Vec<u8>,
    /// nonce (12 bytes) || AES-256-GCM(data key, token)
    pub ciphertext: Vec<u8>,
    pub created_at: Millis,
}

/// A session and, read with it, the credential an assertion names and that credential's
/// owner ([`crate::ports::SessionStore::session_with_credential`]).
#[derive(Debug, Clone, PartialEq)]
pub struct SessionWithCredential {
    pub session: SessionRecord,
    /// `None` if there is no such credential.
    pub credential: Option<CredentialRecord>,
    /// The credential's user; `None` without a credential.
    pub owner: Option<UserRecord>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredentialRecord {
    /// base64url (no padding) of the raw credential id.
    pub credential_id: String,
    pub user_id: String,
    /// The COSE public key (built-in relying-party mode only).
    pub public_key: Option<Vec<u8>>,
    pub alg: Option<i64>,
    pub sign_count: i64,
    /// Lower-case hex, 32 characters.
    pub aaguid: Option<String>,
    pub transports: Vec<String>,
    pub backup_eligible: bool,
    pub backed_up: bool,
    pub attestation_format: Option<String>,
    pub device_label: Option<String>,
    /// The registration session that bound it.
    pub registration_session_id: String,
    pub created_at: Millis,
    pub last_used_at: Option<Millis>,
    pub revoked_at: Option<Millis>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRecord {
    pub id: String,
    pub flow: Flow,
    pub state: SessionState,
    /// Incremented by every update; updates name the version they read.
    pub version: i64,
    pub user_id: String,
    pub external_user_id: String,
    pub created_at: Millis,
    pub updated_at: Millis,
    pub expires_at: Millis,
    pub idv_provider: Option<String>,
    pub idv_run_id: Option<String>,
    pub idv_failure: Option<IdvFailureReason>,
    pub credential_id: Option<String>,
    /// Flow-specific data (see `flows::*::Data`), as JSON.
    pub data: serde_json::Value,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKeyRecord {
    /// The public part of the key (`pbk_<id>_<secret>`).
    pub id: String,
    pub name: String,
    /// SHA-256 of the secret part.
    pub secret_hash: Vec<u8>,
    pub scopes: Vec<String>,
    pub created_at: Millis,
    pub revoked_at: Option<Millis>,
}

/// A single-use secret (handoff token, continuation context), stored by its hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretRecord {
    /// SHA-256 of the secret.
    pub hash: Vec<u8>,
    /// `handoff` or `continuation`.
    pub kind: String,
    pub session_id: String,
    pub created_at: Millis,
    pub expires_at: Millis,
    pub consumed_at: Option<Millis>,
}

/// An audit event to append: the store gives it its sequence number and chains it to the
/// previous event (see `passbind-audit`). Never personal data: users appear only as the keyed
/// hash `user_ref`, transactions only as their hash.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct AuditDraft {
    pub time_ms: Millis,
    /// e.g. `session.transition`, `webhook.received`, `credential.bound`, `credential.revoked`,
    /// `api_key.created`, `api_key.revoked`, `user.erased`, `security.refused`,
    /// `operator.signed_in`, `management.*`.
    pub event_type: String,
    /// `success`, `failure` or `refused`.
    pub outcome: String,
    /// A stable reason code (an error code, a failure reason).
    pub reason: Option<String>,
    pub session_id: Option<String>,
    pub flow: Option<String>,
    /// `api_key`, `operator`, `idv_provider` or `system`.
    pub actor_kind: String,
    /// The API key id, the operator's subject, the provider's name.
    pub actor_id: Option<String>,
    /// Keyed hash of the external user id.
    pub user_ref: Option<String>,
    /// Hash of the transaction context.
    pub tx_hash: Option<String>,
    /// Small, never personal data; integers only (no floats).
    pub details: serde_json::Map<String, serde_json::Value>,
}

/// A stored, signed identity proof (a compact JWS; see `passbind_audit::identity`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityProofRecord {
    pub id: String,
    pub session_id: String,
    pub user_id: String,
    /// Set on the proof issued when the session bound or used a credential.
    pub credential_id: Option<String>,
    pub jws: String,
    pub created_at: Millis,
}

/// A filter over the audit log, newest first unless `ascending`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditQuery {
    pub session_id: Option<String>,
    pub event_type: Option<String>,
    pub since_ms: Option<Millis>,
    pub until_ms: Option<Millis>,
    /// Only events with a smaller sequence number (keyset pagination, newest first).
    pub before_seq: Option<u64>,
    /// Only events with a larger sequence number (keyset pagination, oldest first).
    pub after_seq: Option<u64>,
    pub ascending: bool,
    pub limit: u32,
}

/// One write of an atomic change. A store applies a `Vec<Write>` in one transaction: all or
/// nothing. A write whose precondition fails makes the whole change fail with a [`Conflict`].
/// Preconditions are checked in the order of the writes, and the first that fails is the
/// conflict reported: flows put the session's `UpdateSession` first, so that a lost race on
/// the session is reported as such before any other precondition is looked at.
#[derive(Debug, Clone, PartialEq)]
pub enum Write {
    /// Conflict `DuplicateUser` if the external id is taken.
    InsertUser(UserRecord),
    MarkUserErased {
        user_id: String,
        at: Millis,
    },
    InsertSession(SessionRecord),
    /// Conflict `SessionVersion` unless the stored version is `expected_version`; the stored
    /// version becomes `record.version`, which must be `expected_version + 1`.
    UpdateSession {
        record: SessionRecord,
        expected_version: i64,
    },
    /// Conflict `DuplicateEbt` if the user already has one.
    InsertEbt(EbtRecord),
    /// Re-wraps a user's data key (key rotation). Conflict `NotFound` if there is none.
    ReplaceEbtKey {
        user_id: String,
        key_version: u32,
        wrapped_dek: Vec<u8>,
    },
    /// Removes the wrapped data key and the ciphertext (crypto-shredding). No conflict if none.
    DeleteEbt {
        user_id: String,
    },
    /// Conflict `DuplicateCredential` if the id exists (for any user).
    InsertCredential(CredentialRecord),
    /// After a successful sign-in. Conflict `NotFound` if the credential is absent or revoked.
    ///
    /// The stored counter becomes the larger of the stored and the given one, decided by the
    /// database against the committed row (never a maximum computed from an earlier read), so
    /// two concurrent sign-ins cannot move it backwards. With `require_advance`, the change is
    /// refused with conflict `CounterRegressed` unless `sign_count` is greater than the stored
    /// counter at commit time (or both are zero: an authenticator without a counter).
    UpdateCredentialUse {
        credential_id: String,
        sign_count: i64,
        backed_up: bool,
        last_used_at: Millis,
        require_advance: bool,
    },
    /// Conflict `NotFound` if the credential is absent or already revoked.
    RevokeCredential {
        credential_id: String,
        at: Millis,
    },
    /// Revokes every active credential of the user except `keep` (if given). No conflict.
    RevokeUserCredentials {
        user_id: String,
        keep: Option<String>,
        at: Millis,
    },
    /// Clears what the user gave their credentials (the device label, often a phone's name
    /// with the owner's in it): part of erasure. No conflict.
    EraseCredentialLabels {
        user_id: String,
    },
    /// Conflict `DuplicateIdvEvent` if this provider already recorded this event key.
    RecordIdvEvent {
        provider: String,
        event_key: String,
        received_at: Millis,
    },
    InsertApiKey(ApiKeyRecord),
    /// Conflict `NotFound` if the key is absent or already revoked.
    RevokeApiKey {
        id: String,
        at: Millis,
    },
    InsertSecret(SecretRecord),
    /// Appends an event to the tamper-evident audit log, in the same transaction as the change
    /// it describes. Never conflicts.
    AppendAudit(AuditDraft),
    /// Appends a signed checkpoint. `previous_tree_size` is the tree size of the newest
    /// checkpoint the signer read (0 if none). Checkpoint signers are serialised by the store,
    /// and the insert is refused with conflict `StaleCheckpoint` unless the newest stored
    /// checkpoint is still that one, the new tree is larger and its time is not earlier: the
    /// stored checkpoints thereby increase strictly in size and never go back in time, also
    /// when several replicas sign at once. `frontier` is the Merkle frontier after
    /// `tree_size` events (hex).
    InsertCheckpoint {
        checkpoint: passbind_audit::Checkpoint,
        frontier: Vec<String>,
        previous_tree_size: u64,
    },
    InsertIdentityProof(IdentityProofRecord),
    /// A failure that counts towards a lockout (for example a step-up face mismatch).
    RecordFailure {
        user_id: String,
        kind: String,
        at: Millis,
    },
    /// Conflict `NotFound` if the secret is absent or already consumed.
    ConsumeSecret {
        hash: Vec<u8>,
        at: Millis,
    },
}

/// Why a change was refused by the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Conflict {
    #[error("the session changed since it was read")]
    SessionVersion,
    #[error("the external user id is taken")]
    DuplicateUser,
    #[error("the user already has a biometric token")]
    DuplicateEbt,
    #[error("the credential id is already registered")]
    DuplicateCredential,
    #[error("the identity-verification event was already recorded")]
    DuplicateIdvEvent,
    #[error("the record to change is absent or already in the requested state")]
    NotFound,
    #[error("a record with this id exists")]
    DuplicateId,
    #[error("the signature counter did not advance")]
    CounterRegressed,
    #[error("another checkpoint was signed since the newest one was read")]
    StaleCheckpoint,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    #[error("conflict: {0}")]
    Conflict(Conflict),
    /// The database failed. The message is for logs: it carries no secrets.
    #[error("storage backend: {0}")]
    Backend(String),
}
