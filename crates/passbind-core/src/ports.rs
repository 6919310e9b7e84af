//! The ports through which the core reaches the outside world.

use crate::model::*;
use async_trait::async_trait;
use zeroize::Zeroizing;

/// The wall clock, in milliseconds since the Unix epoch.
pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> Millis;
}

/// A cryptographically secure random source.
pub trait Rng: Send + Sync + 'static {
    fn fill(&self, buf: &mut [u8]);
}

/// Persistent storage, in narrow parts: each adapter (and a fake) implements the parts; the
/// engine holds a [`Store`], which is all of them. Reads are plain queries; every change goes
/// through [`Changes::commit`], which applies a list of writes atomically.
pub trait Store:
    Changes + SessionStore + UserStore + AuditStore + OperatorStore + ManagementReads
{
}

impl<T> Store for T where
    T: Changes + SessionStore + UserStore + AuditStore + OperatorStore + ManagementReads
{
}

/// Every change goes through [`Changes::commit`], which applies a list of writes atomically.
#[async_trait]
pub trait Changes: Send + Sync + 'static {
    async fn commit(&self, writes: Vec<Write>) -> Result<(), StoreError>;

    /// Whether the database answers.
    async fn ping(&self) -> Result<(), StoreError>;
}

/// Sessions and what belongs to them: single-use secrets, counted failures.
#[async_trait]
pub trait SessionStore: Send + Sync + 'static {
    async fn session(&self, id: &str) -> Result<Option<SessionRecord>, StoreError>;

    /// The session `id` and, in the same read, the credential `credential_id` with its owner:
    /// what completing a ceremony with an assertion needs, read at once. `None` if there is
    /// no such session.
    async fn session_with_credential(
        &self,
        id: &str,
        credential_id: &str,
    ) -> Result<Option<SessionWithCredential>, StoreError>;

    async fn session_by_idv_run(
        &self,
        provider: &str,
        run_id: &str,
    ) -> Result<Option<SessionRecord>, StoreError>;

    async fn sessions_of_user(
        &self,
        user_id: &str,
        limit: u32,
    ) -> Result<Vec<SessionRecord>, StoreError>;

    /// Sessions waiting for an identity-verification verdict: state `idv_pending`, a run id
    /// set, not expired at `now` (`expires_at > now`), and unchanged since `updated_before`
    /// (`updated_at <= updated_before`: the run is at least that old). Ordered by
    /// `(updated_at, id)`; with `after`, only the sessions that sort after it (keyset paging).
    /// At most `limit`.
    async fn sessions_awaiting_idv(
        &self,
        now: Millis,
        updated_before: Millis,
        after: Option<&SessionCursor>,
        limit: u32,
    ) -> Result<Vec<SessionRecord>, StoreError>;

    async fn secret(&self, hash: &[u8]) -> Result<Option<SecretRecord>, StoreError>;

    /// Times (oldest first) of the user's failures of this kind at or after `since`.
    async fn failures_since(
        &self,
        user_id: &str,
        kind: &str,
        since: Millis,
    ) -> Result<Vec<Millis>, StoreError>;
}

/// Users, their biometric tokens, credentials and identity proofs; API keys.
#[async_trait]
pub trait UserStore: Send + Sync + 'static {
    async fn user(&self, id: &str) -> Result<Option<UserRecord>, StoreError>;

    async fn user_by_external_id(
        &self,
        external_user_id: &str,
    ) -> Result<Option<UserRecord>, StoreError>;

    async fn user_by_handle(&self, user_handle: &[u8]) -> Result<Option<UserRecord>, StoreError>;

    /// The user with this external id and, in the same read, all their credentials (revoked
    /// ones included, oldest first).
    async fn user_with_credentials(
        &self,
        external_user_id: &str,
    ) -> Result<Option<(UserRecord, Vec<CredentialRecord>)>, StoreError>;

    async fn ebt(&self, user_id: &str) -> Result<Option<EbtRecord>, StoreError>;

    /// Every stored biometric token wrapped with a key version other than `current`.
    async fn ebts_not_under_key(&self, current: u32) -> Result<Vec<EbtRecord>, StoreError>;

    async fn credential(&self, credential_id: &str)
        -> Result<Option<CredentialRecord>, StoreError>;

    /// All credentials of the user, revoked ones included, oldest first.
    async fn credentials_of_user(&self, user_id: &str)
        -> Result<Vec<CredentialRecord>, StoreError>;

    async fn api_key(&self, id: &str) -> Result<Option<ApiKeyRecord>, StoreError>;

    async fn api_keys(&self) -> Result<Vec<ApiKeyRecord>, StoreError>;

    async fn identity_proofs_of_credential(
        &self,
        credential_id: &str,
    ) -> Result<Vec<IdentityProofRecord>, StoreError>;

    async fn identity_proofs_of_session(
        &self,
        session_id: &str,
    ) -> Result<Vec<IdentityProofRecord>, StoreError>;
}

/// The tamper-evident audit log: the sequencer, events, checkpoints.
#[async_trait]
pub trait AuditStore: Send + Sync + 'static {
    /// The audit chain head: the last sequence number and its hash (0 and 64 zeros if empty).
    async fn audit_head(&self) -> Result<(u64, String), StoreError>;

    /// The audit sequencer: integrates the pending audit events (written by `AppendAudit`
    /// with their changes) into the log, oldest first, until none is left; returns how many it
    /// integrated. One sequencer runs at a time, across replicas: with `wait`, this call waits
    /// for one running elsewhere and then integrates what is left (so that a caller sees the
    /// events of every change committed before the call); without, it returns 0 at once when
    /// another is at work.
    async fn integrate_audit(&self, wait: bool) -> Result<u64, StoreError>;

    /// Audit events written but not integrated yet: how many, and the time of the oldest.
    async fn audit_pending(&self) -> Result<(u64, Option<Millis>), StoreError>;

    async fn audit_events(
        &self,
        query: &AuditQuery,
    ) -> Result<Vec<passbind_audit::AuditEvent>, StoreError>;

    /// The hashes (hex) of events `1..=upto`, in order.
    async fn audit_hashes(&self, upto: u64) -> Result<Vec<String>, StoreError>;

    /// Every checkpoint, oldest first.
    async fn audit_checkpoints(&self) -> Result<Vec<passbind_audit::Checkpoint>, StoreError>;

    /// The newest checkpoint and its Merkle frontier (hex hashes).
    async fn latest_audit_checkpoint(
        &self,
    ) -> Result<Option<(passbind_audit::Checkpoint, Vec<String>)>, StoreError>;
}

/// The management dashboard's operators, their passkeys, sessions and ceremonies
/// (see `crate::operators`).
#[async_trait]
pub trait OperatorStore: Send + Sync + 'static {
    /// Applies operator writes and then `writes` (audit appends last) in one transaction, like
    /// [`Changes::commit`]: all or nothing, the first failed precondition is the conflict.
    async fn commit_operator(
        &self,
        operator_writes: Vec<crate::operators::OperatorWrite>,
        writes: Vec<Write>,
    ) -> Result<(), StoreError>;

    async fn operator_count(&self) -> Result<u64, StoreError>;

    async fn operator(
        &self,
        id: &str,
    ) -> Result<Option<crate::operators::OperatorRecord>, StoreError>;

    async fn operator_by_name(
        &self,
        name: &str,
    ) -> Result<Option<crate::operators::OperatorRecord>, StoreError>;

    async fn operator_credential(
        &self,
        credential_id: &str,
    ) -> Result<Option<crate::operators::OperatorCredentialRecord>, StoreError>;

    async fn operator_session(
        &self,
        id_hash: &[u8],
    ) -> Result<Option<crate::operators::OperatorSessionRecord>, StoreError>;

    async fn setup_token(
        &self,
        hash: &[u8],
    ) -> Result<Option<crate::operators::SetupTokenRecord>, StoreError>;

    async fn operator_challenge(
        &self,
        id: &str,
    ) -> Result<Option<crate::operators::ChallengeRecord>, StoreError>;
}

/// Reads of the management dashboard (see `crate::management`).
#[async_trait]
pub trait ManagementReads: Send + Sync + 'static {
    /// Sessions matching the filter, newest first (`created_at DESC, id DESC`), at most
    /// `filter.limit`.
    async fn list_sessions(
        &self,
        filter: &crate::management::SessionFilter,
    ) -> Result<Vec<SessionRecord>, StoreError>;

    /// Sessions created in `[since, until)`, counted by bucket (`created_at - created_at %
    /// bucket_ms`), flow, outcome (judged at `now`) and failure reason; ordered by bucket, flow,
    /// outcome, reason. Outcomes: `completed`, `failed` (`idv_failed`, with its reason),
    /// `cancelled`, `expired` (stored, or live past `expires_at`), `passed` (`idv_passed`,
    /// live) and `pending` (any other live state).
    async fn session_counts(
        &self,
        since: Millis,
        until: Millis,
        bucket_ms: i64,
        now: Millis,
    ) -> Result<Vec<crate::management::SessionCount>, StoreError>;

    /// Users whose external id starts with `prefix` (case-sensitive; empty: all), ordered by
    /// external id, only those after `after`; at most `limit`.
    async fn search_users(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<crate::management::UserSummary>, StoreError>;

    /// Counts of users, credentials, API keys and operators.
    async fn management_totals(&self) -> Result<passbind_proto::management::Totals, StoreError>;
}

/// A position in the list of [`SessionStore::sessions_awaiting_idv`]: the last session read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionCursor {
    pub updated_at: Millis,
    pub id: String,
}

impl SessionCursor {
    pub fn of(s: &SessionRecord) -> Self {
        Self {
            updated_at: s.updated_at,
            id: s.id.clone(),
        }
    }
}

/// What an identity-verification run is for. Each maps to one configured workflow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdvPurpose {
    Registration,
    StepUp,
    Recovery,
}

impl IdvPurpose {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Registration => "registration",
            Self::StepUp => "step_up",
            Self::Recovery => "recovery",
        }
    }
}

/// A request to start a workflow run.
pub struct StartRun {
    pub purpose: IdvPurpose,
    /// Passbind's session id, for the provider's tags and logs.
    pub session_id: String,
    /// A keyed hash of the external user id: the provider never sees the id itself.
    pub customer_user_ref: String,
    /// The workflow input `encrypted_biometric_token`: empty for a new user's registration,
    /// the stored (decrypted in memory only) or supplied token otherwise.
    pub biometric_token: Option<Zeroizing<String>>,
    /// The integrator's `workflow_input.custom_data`, passed through.
    pub custom_data: serde_json::Map<String, serde_json::Value>,
}

/// A run the provider created.
#[derive(Debug, Clone)]
pub struct StartedRun {
    pub run_id: String,
    /// For the device SDK; Passbind returns it once and never stores it.
    pub sdk_token: String,
    pub capture_url: Option<String>,
}

/// The status of a workflow run as the provider reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunStatus {
    Processing,
    AwaitingInput,
    Approved,
    Declined,
    Review,
    Abandoned,
    Error,
    Other(String),
}

impl RunStatus {
    pub fn parse(s: &str) -> Self {
        match s {
            "processing" => Self::Processing,
            "awaiting_input" | "awaiting_client_input" => Self::AwaitingInput,
            "approved" => Self::Approved,
            "declined" => Self::Declined,
            "review" => Self::Review,
            "abandoned" => Self::Abandoned,
            "error" => Self::Error,
            other => Self::Other(other.to_owned()),
        }
    }

    pub fn is_terminal(&self) -> bool {
        !matches!(self, Self::Processing | Self::AwaitingInput)
    }

    /// The provider's status string (`awaiting_input` for both waiting statuses).
    pub fn as_str(&self) -> &str {
        match self {
            Self::Processing => "processing",
            Self::AwaitingInput => "awaiting_input",
            Self::Approved => "approved",
            Self::Declined => "declined",
            Self::Review => "review",
            Self::Abandoned => "abandoned",
            Self::Error => "error",
            Self::Other(s) => s,
        }
    }
}

/// The replay-protection key of a run's completion: `{run_id}:workflow_run.completed:{status}`.
/// A webhook delivery and a reconciled read of the same outcome share it, so whichever comes
/// second is a duplicate.
pub fn run_completed_event_key(run_id: &str, status: &str) -> String {
    format!("{run_id}:workflow_run.completed:{status}")
}

/// The authoritative state of a run, read from the provider.
#[derive(Debug, Clone)]
pub struct RunOutcome {
    pub run_id: String,
    pub status: RunStatus,
    /// `output.encrypted_biometric_token`, if the run produced one.
    pub biometric_token: Option<Zeroizing<String>>,
    /// The identity result of the run (`output.identity`, personal data): normalised,
    /// keyed-hashed into an identity proof, then dropped. Never stored or logged.
    pub identity: Option<Zeroizing<String>>,
}

/// A verified inbound webhook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WebhookEvent {
    /// A run reached a terminal status; `event_key` identifies this delivery's content for
    /// replay protection.
    RunCompleted { run_id: String, event_key: String },
    /// A valid, signed event of a kind Passbind does not act on.
    Ignored { action: String },
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum IdvError {
    #[error("webhook signature missing or invalid")]
    InvalidSignature,
    #[error("malformed provider message: {0}")]
    Malformed(String),
    #[error("provider unavailable: {0}")]
    Unavailable(String),
    #[error("provider refused the request: {0}")]
    Rejected(String),
}

/// An identity-verification provider (simulator, Entrust/Onfido Studio, witness).
#[async_trait]
pub trait IdvProvider: Send + Sync + 'static {
    /// The provider's name in URLs and records (`simulator`, `onfido`, ...).
    fn name(&self) -> &str;

    /// Whether a run's verdict is known as soon as it starts (witness mode: the integrator's
    /// webhook answers synchronously), so the engine settles the session at once.
    fn settles_at_start(&self) -> bool {
        false
    }

    /// Whether the provider matches faces against a biometric token. A provider that does not
    /// (witness mode) neither needs nor produces one.
    fn uses_biometrics(&self) -> bool {
        true
    }
    async fn start_run(&self, req: StartRun) -> Result<StartedRun, IdvError>;
    /// Checks the signature over the raw body (before any parsing) and parses the event.
    /// `header` looks a header up by lower-case name.
    fn verify_webhook(
        &self,
        header: &(dyn Fn(&str) -> Option<String> + Sync),
        body: &[u8],
    ) -> Result<WebhookEvent, IdvError>;
    /// Reads a run from the provider: the only source of truth for its outcome.
    async fn fetch_run(&self, run_id: &str) -> Result<RunOutcome, IdvError>;
    /// The event key under which an outcome read by polling (the reconciler) is recorded: the
    /// key the provider's completion webhook for that outcome carries.
    fn completion_event_key(&self, outcome: &RunOutcome) -> String {
        run_completed_event_key(&outcome.run_id, outcome.status.as_str())
    }
}

/// A credential the relying party verified at registration.
#[derive(Debug, Clone)]
pub struct NewCredential {
    pub credential_id: Vec<u8>,
    pub public_key_cose: Vec<u8>,
    pub alg: i64,
    pub sign_count: u32,
    pub aaguid: [u8; 16],
    pub transports: Vec<String>,
    pub backup_eligible: bool,
    pub backed_up: bool,
    pub user_verified: bool,
    pub attestation_format: String,
}

/// A WebAuthn verification failure, with a stable reason for `details.reason`.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{reason}: {message}")]
pub struct RpError {
    pub reason: &'static str,
    pub message: String,
}

/// Options and the state to keep until completion.
pub struct Creation {
    /// `{"publicKey": PublicKeyCredentialCreationOptions}` as JSON.
    pub options: serde_json::Value,
    /// Opaque state for [`RelyingParty::verify_registration`].
    pub state: serde_json::Value,
}

/// A decoded assertion response (`AuthenticationResponseJSON`): plain WebAuthn data.
#[derive(Debug, Clone)]
pub struct AssertionParts {
    pub credential_id: Vec<u8>,
    pub client_data_json: Vec<u8>,
    pub authenticator_data: Vec<u8>,
    pub signature: Vec<u8>,
    pub user_handle: Option<Vec<u8>>,
}

/// The signature counter, compared with the stored one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CounterStatus {
    Advanced,
    /// Stored and received are both zero: the authenticator keeps no counter (synced passkeys).
    NotSupported,
    /// Not greater than the stored value: a possible clone.
    Regressed,
}

impl CounterStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Advanced => "advanced",
            Self::NotSupported => "not_supported",
            Self::Regressed => "regressed",
        }
    }
}

/// A verified assertion.
#[derive(Debug, Clone)]
pub struct VerifiedAssertion {
    pub new_sign_count: u32,
    pub counter: CounterStatus,
    pub user_verified: bool,
    pub backup_eligible: bool,
    pub backed_up: bool,
}

/// The built-in WebAuthn relying party.
pub trait RelyingParty: Send + Sync + 'static {
    /// `{"publicKey": PublicKeyCredentialRequestOptions}`; an empty allow list asks for a
    /// discoverable credential.
    fn request_options(
        &self,
        challenge: [u8; 32],
        allow_credentials: &[(Vec<u8>, Vec<String>)],
    ) -> serde_json::Value;

    /// Decodes an assertion response, without verifying it.
    fn parse_assertion(&self, response: &serde_json::Value) -> Result<AssertionParts, RpError>;

    /// Verifies an assertion against the expected challenge and the stored credential (WebAuthn
    /// L3 §7.2). A regressed counter is reported, not refused: the caller applies policy.
    fn verify_assertion(
        &self,
        challenge: &[u8],
        credential_id: &[u8],
        public_key_cose: &[u8],
        stored_sign_count: u32,
        assertion: AssertionParts,
    ) -> Result<VerifiedAssertion, RpError>;

    fn creation_options(
        &self,
        user_handle: &[u8],
        user_name: &str,
        display_name: &str,
        challenge: [u8; 32],
        exclude_credential_ids: &[Vec<u8>],
    ) -> Result<Creation, RpError>;

    fn verify_registration(
        &self,
        state: &serde_json::Value,
        response: &serde_json::Value,
    ) -> Result<NewCredential, RpError>;
}

/// Every part of the store port, for `use passbind_core::ports::store::*`: the methods of a
/// `dyn Store` are those of its parts, which must be in scope to be called.
pub mod store {
    pub use super::{
        AuditStore, Changes, ManagementReads, OperatorStore, SessionStore, Store, UserStore,
    };
}
