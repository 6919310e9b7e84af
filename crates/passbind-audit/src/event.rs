//! Audit events, their canonical encoding and their hash.
//!
//! # Canonical encoding of an event (`passbind-audit/v1`)
//!
//! The canonical bytes of an event are the [canonical JSON](crate::canonical) of the object
//! with **exactly these twelve members** (every field but `hash`; `null` where a field is
//! absent, never omitted):
//!
//! ```text
//! actor       {"id": string|null, "kind": string}
//! details     object (integers only as numbers; may be {})
//! event_type  string
//! flow        string|null
//! outcome     string
//! prev_hash   string (64 lowercase hex)
//! reason      string|null
//! seq         integer (1-based)
//! session_id  string|null
//! time_ms     integer (Unix time in milliseconds)
//! tx_hash     string|null
//! user_ref    string|null
//! ```
//!
//! Members are sorted (RFC 8785 order; all these keys are ASCII so this is byte order) and
//! there is no whitespace. Example (seq 1):
//!
//! ```text
//! {"actor":{"id":null,"kind":"system"},"details":{},"event_type":"api_key.created","flow":null,"outcome":"success","prev_hash":"0000000000000000000000000000000000000000000000000000000000000000","reason":null,"seq":1,"session_id":null,"time_ms":1700000000000,"tx_hash":null,"user_ref":null}
//! ```
//!
//! The **event hash** is `SHA-256(0x00 || canonical bytes)`, written as 64 lowercase hex
//! characters: exactly the RFC 9162 leaf hash of the canonical bytes, so the events are at the
//! same time a hash chain (each `prev_hash` is the previous event's `hash`; the first event's
//! is 64 zeros) and the leaves of the Merkle tree that checkpoints sign.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::canonical::{map_to_canonical_json, CanonicalError, MAX_SAFE_INTEGER};
use crate::merkle::{leaf_hash, Hash};

/// `prev_hash` of the first event: 64 zeros.
pub const GENESIS_PREV_HASH: &str =
    "0000000000000000000000000000000000000000000000000000000000000000";

/// The outcomes an event may have.
pub const OUTCOMES: [&str; 3] = ["success", "failure", "refused"];

/// The actor kinds.
pub const ACTOR_KINDS: [&str; 4] = ["api_key", "operator", "idv_provider", "system"];

/// Largest accepted canonical encoding of `details`, in bytes.
pub const MAX_DETAILS_BYTES: usize = 8 * 1024;

/// Largest accepted length of any string field, in bytes.
pub const MAX_FIELD_BYTES: usize = 512;

/// Who caused an event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Actor {
    /// `api_key` | `operator` | `idv_provider` | `system`.
    pub kind: String,
    /// The API key id, operator subject or provider name; `None` for `system`.
    pub id: Option<String>,
}

impl Actor {
    /// The server itself.
    pub fn system() -> Self {
        Self {
            kind: "system".into(),
            id: None,
        }
    }

    /// An actor of `kind` with an id.
    pub fn new(kind: &str, id: impl Into<String>) -> Self {
        Self {
            kind: kind.into(),
            id: Some(id.into()),
        }
    }
}

/// An event before it is placed in the log: everything but `seq`, `prev_hash` and `hash`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventDraft {
    /// Unix time in milliseconds.
    pub time_ms: i64,
    /// Dotted type, e.g. `session.transition`, `webhook.received`, `credential.bound`.
    pub event_type: String,
    /// `success` | `failure` | `refused`.
    pub outcome: String,
    /// Stable reason code (e.g. an error code), if any.
    pub reason: Option<String>,
    /// The session concerned.
    pub session_id: Option<String>,
    /// The flow (`registration`, `step_up`, ...).
    pub flow: Option<String>,
    /// Who caused it.
    pub actor: Actor,
    /// Keyed hash (hex) of the external user id; never the id itself.
    pub user_ref: Option<String>,
    /// Hash of the transaction context, if any.
    pub tx_hash: Option<String>,
    /// Small structured details; never personal data. Numbers must be integers.
    #[serde(default)]
    pub details: Map<String, Value>,
}

impl EventDraft {
    /// A draft with the required fields and everything optional empty.
    pub fn new(time_ms: i64, event_type: &str, outcome: &str, actor: Actor) -> Self {
        Self {
            time_ms,
            event_type: event_type.into(),
            outcome: outcome.into(),
            reason: None,
            session_id: None,
            flow: None,
            actor,
            user_ref: None,
            tx_hash: None,
            details: Map::new(),
        }
    }
}

/// One entry of the log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditEvent {
    /// Position in the log, 1-based, gap-free.
    pub seq: u64,
    /// Unix time in milliseconds.
    pub time_ms: i64,
    /// See [`EventDraft::event_type`].
    pub event_type: String,
    /// `success` | `failure` | `refused`.
    pub outcome: String,
    /// Stable reason code, if any.
    pub reason: Option<String>,
    /// The session concerned.
    pub session_id: Option<String>,
    /// The flow.
    pub flow: Option<String>,
    /// Who caused it.
    pub actor: Actor,
    /// Keyed hash (hex) of the external user id.
    pub user_ref: Option<String>,
    /// Hash of the transaction context.
    pub tx_hash: Option<String>,
    /// Small structured details.
    pub details: Map<String, Value>,
    /// The previous event's `hash` ([`GENESIS_PREV_HASH`] for seq 1).
    pub prev_hash: String,
    /// `SHA-256(0x00 || canonical bytes)`, lowercase hex.
    pub hash: String,
}

/// Why an event cannot be sealed or hashed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventError {
    /// `seq` is 0 or above 2^53-1.
    #[error("seq {0} is out of range (1..=2^53-1)")]
    BadSeq(u64),
    /// `time_ms` outside the canonical integer range.
    #[error("time_ms {0} is out of range")]
    BadTime(i64),
    /// `prev_hash` is not 64 lowercase hex, or is not the genesis value for seq 1.
    #[error("prev_hash is invalid: {0}")]
    BadPrevHash(String),
    /// A field fails validation.
    #[error("field {field} is invalid: {reason}")]
    BadField {
        /// The field.
        field: &'static str,
        /// Why.
        reason: String,
    },
    /// `details` has no canonical encoding.
    #[error("details: {0}")]
    Details(#[from] CanonicalError),
}

/// Parse 64 lowercase hex characters.
pub fn parse_hash_hex(s: &str) -> Option<Hash> {
    if s.len() != 64
        || !s
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return None;
    }
    hex::decode(s).ok()?.try_into().ok()
}

fn opt(v: &Option<String>) -> Value {
    match v {
        Some(s) => Value::String(s.clone()),
        None => Value::Null,
    }
}

fn check_len(field: &'static str, v: &str) -> Result<(), EventError> {
    if v.len() > MAX_FIELD_BYTES {
        return Err(EventError::BadField {
            field,
            reason: format!("longer than {MAX_FIELD_BYTES} bytes"),
        });
    }
    Ok(())
}

fn check_opt_len(field: &'static str, v: &Option<String>) -> Result<(), EventError> {
    v.as_deref().map_or(Ok(()), |s| check_len(field, s))
}

impl AuditEvent {
    /// Place `draft` in the log at `seq` after the event whose hash is `prev_hash`
    /// ([`GENESIS_PREV_HASH`] for seq 1), and compute its hash.
    ///
    /// Validates: `seq` in `1..=2^53-1`; `prev_hash` 64 lowercase hex, the genesis value iff
    /// `seq == 1`; `time_ms` within ±(2^53-1); `event_type` non-empty `[a-z0-9._-]`; `outcome`
    /// one of [`OUTCOMES`]; `actor.kind` one of [`ACTOR_KINDS`]; `user_ref` lowercase hex if
    /// present; no string above [`MAX_FIELD_BYTES`]; `details` canonically encodable (integer
    /// numbers only) in at most [`MAX_DETAILS_BYTES`].
    pub fn seal(draft: EventDraft, seq: u64, prev_hash: &str) -> Result<AuditEvent, EventError> {
        if seq == 0 || seq > MAX_SAFE_INTEGER {
            return Err(EventError::BadSeq(seq));
        }
        if parse_hash_hex(prev_hash).is_none() {
            return Err(EventError::BadPrevHash(
                "not 64 lowercase hex characters".into(),
            ));
        }
        if (seq == 1) != (prev_hash == GENESIS_PREV_HASH) {
            return Err(EventError::BadPrevHash(
                "seq 1, and only seq 1, has the all-zero prev_hash".into(),
            ));
        }
        if draft.time_ms.unsigned_abs() > MAX_SAFE_INTEGER {
            return Err(EventError::BadTime(draft.time_ms));
        }
        let et = &draft.event_type;
        if et.is_empty()
            || !et.bytes().all(|b| {
                b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-')
            })
        {
            return Err(EventError::BadField {
                field: "event_type",
                reason: "must be non-empty [a-z0-9._-]".into(),
            });
        }
        if !OUTCOMES.contains(&draft.outcome.as_str()) {
            return Err(EventError::BadField {
                field: "outcome",
                reason: format!("must be one of {OUTCOMES:?}"),
            });
        }
        if !ACTOR_KINDS.contains(&draft.actor.kind.as_str()) {
            return Err(EventError::BadField {
                field: "actor.kind",
                reason: format!("must be one of {ACTOR_KINDS:?}"),
            });
        }
        if let Some(u) = &draft.user_ref {
            if u.is_empty()
                || !u
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
            {
                return Err(EventError::BadField {
                    field: "user_ref",
                    reason: "must be lowercase hex".into(),
                });
            }
        }
        check_len("event_type", et)?;
        check_opt_len("reason", &draft.reason)?;
        check_opt_len("session_id", &draft.session_id)?;
        check_opt_len("flow", &draft.flow)?;
        check_opt_len("actor.id", &draft.actor.id)?;
        check_opt_len("user_ref", &draft.user_ref)?;
        check_opt_len("tx_hash", &draft.tx_hash)?;
        let details_len = map_to_canonical_json(&draft.details)?.len();
        if details_len > MAX_DETAILS_BYTES {
            return Err(EventError::BadField {
                field: "details",
                reason: format!("canonical encoding longer than {MAX_DETAILS_BYTES} bytes"),
            });
        }
        let mut event = AuditEvent {
            seq,
            time_ms: draft.time_ms,
            event_type: draft.event_type,
            outcome: draft.outcome,
            reason: draft.reason,
            session_id: draft.session_id,
            flow: draft.flow,
            actor: draft.actor,
            user_ref: draft.user_ref,
            tx_hash: draft.tx_hash,
            details: draft.details,
            prev_hash: prev_hash.to_owned(),
            hash: String::new(),
        };
        event.hash = hex::encode(event.compute_hash()?);
        Ok(event)
    }

    /// The canonical bytes (see the module documentation). Fails only when `details` (or
    /// `seq`/`time_ms`) is outside the canonical domain.
    pub fn canonical_bytes(&self) -> Result<Vec<u8>, EventError> {
        if self.seq > MAX_SAFE_INTEGER {
            return Err(EventError::BadSeq(self.seq));
        }
        if self.time_ms.unsigned_abs() > MAX_SAFE_INTEGER {
            return Err(EventError::BadTime(self.time_ms));
        }
        let mut actor = Map::new();
        actor.insert("kind".into(), Value::String(self.actor.kind.clone()));
        actor.insert("id".into(), opt(&self.actor.id));
        let mut m = Map::new();
        m.insert("actor".into(), Value::Object(actor));
        m.insert("details".into(), Value::Object(self.details.clone()));
        m.insert("event_type".into(), Value::String(self.event_type.clone()));
        m.insert("flow".into(), opt(&self.flow));
        m.insert("outcome".into(), Value::String(self.outcome.clone()));
        m.insert("prev_hash".into(), Value::String(self.prev_hash.clone()));
        m.insert("reason".into(), opt(&self.reason));
        m.insert("seq".into(), Value::from(self.seq));
        m.insert("session_id".into(), opt(&self.session_id));
        m.insert("time_ms".into(), Value::from(self.time_ms));
        m.insert("tx_hash".into(), opt(&self.tx_hash));
        m.insert("user_ref".into(), opt(&self.user_ref));
        Ok(map_to_canonical_json(&m)?)
    }

    /// Recompute the event hash from the fields (ignores the stored `hash`).
    pub fn compute_hash(&self) -> Result<Hash, EventError> {
        Ok(leaf_hash(&self.canonical_bytes()?))
    }

    /// The stored `hash`, parsed; `None` if it is not 64 lowercase hex.
    pub fn stored_hash(&self) -> Option<Hash> {
        parse_hash_hex(&self.hash)
    }

    /// Whether the stored hash equals the recomputed one.
    pub fn hash_is_valid(&self) -> bool {
        matches!((self.stored_hash(), self.compute_hash()), (Some(a), Ok(b)) if a == b)
    }
}

/// The head of the chain: what a writer needs to seal the next event. A database writer reads
/// the last event's `(seq, hash)` under the same lock/transaction in which it inserts the new
/// event (e.g. `SELECT ... ORDER BY seq DESC LIMIT 1 FOR UPDATE` on a one-row head table), so
/// concurrent replicas serialise and the log stays gap-free.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainHead {
    /// Seq of the last event (0 for an empty log).
    pub last_seq: u64,
    /// Hash of the last event ([`GENESIS_PREV_HASH`] for an empty log).
    pub last_hash: String,
}

impl Default for ChainHead {
    fn default() -> Self {
        Self::genesis()
    }
}

impl ChainHead {
    /// The head of an empty log.
    pub fn genesis() -> Self {
        Self {
            last_seq: 0,
            last_hash: GENESIS_PREV_HASH.to_owned(),
        }
    }

    /// The head after `event`.
    pub fn after(event: &AuditEvent) -> Self {
        Self {
            last_seq: event.seq,
            last_hash: event.hash.clone(),
        }
    }

    /// Seal `draft` as the next event (does not advance the head; see [`ChainHead::after`]).
    pub fn seal_next(&self, draft: EventDraft) -> Result<AuditEvent, EventError> {
        let seq = self
            .last_seq
            .checked_add(1)
            .ok_or(EventError::BadSeq(u64::MAX))?;
        AuditEvent::seal(draft, seq, &self.last_hash)
    }

    /// Seal `draft` as the next event and advance the head to it.
    pub fn append(&mut self, draft: EventDraft) -> Result<AuditEvent, EventError> {
        let event = self.seal_next(draft)?;
        *self = Self::after(&event);
        Ok(event)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use serde_json::json;

    fn draft() -> EventDraft {
        EventDraft::new(
            1_700_000_000_000,
            "api_key.created",
            "success",
            Actor::system(),
        )
    }

    #[test]
    fn canonical_example_is_exact() {
        let e = AuditEvent::seal(draft(), 1, GENESIS_PREV_HASH).unwrap();
        let c = String::from_utf8(e.canonical_bytes().unwrap()).unwrap();
        assert_eq!(
            c,
            r#"{"actor":{"id":null,"kind":"system"},"details":{},"event_type":"api_key.created","flow":null,"outcome":"success","prev_hash":"0000000000000000000000000000000000000000000000000000000000000000","reason":null,"seq":1,"session_id":null,"time_ms":1700000000000,"tx_hash":null,"user_ref":null}"#
        );
        // hash = SHA-256(0x00 || canonical)
        let mut pre = vec![0u8];
        pre.extend_from_slice(c.as_bytes());
        let d = ring::digest::digest(&ring::digest::SHA256, &pre);
        assert_eq!(e.hash, hex::encode(d.as_ref()));
        assert!(e.hash_is_valid());
    }

    #[test]
    fn every_field_is_covered() {
        let mut d = draft();
        d.reason = Some("r".into());
        d.session_id = Some("s".into());
        d.flow = Some("registration".into());
        d.actor = Actor::new("api_key", "k1");
        d.user_ref = Some("ab".into());
        d.tx_hash = Some("t".into());
        d.details.insert("n".into(), json!(1));
        let e = AuditEvent::seal(d, 1, GENESIS_PREV_HASH).unwrap();
        type Mutation = Box<dyn Fn(&mut AuditEvent)>;
        let mutations: Vec<Mutation> = vec![
            Box::new(|e| e.seq = 2),
            Box::new(|e| e.time_ms += 1),
            Box::new(|e| e.event_type.push('x')),
            Box::new(|e| e.outcome = "failure".into()),
            Box::new(|e| e.reason = None),
            Box::new(|e| e.session_id = Some("s2".into())),
            Box::new(|e| e.flow = None),
            Box::new(|e| e.actor.kind = "operator".into()),
            Box::new(|e| e.actor.id = None),
            Box::new(|e| e.user_ref = Some("ac".into())),
            Box::new(|e| e.tx_hash = None),
            Box::new(|e| {
                e.details.insert("n".into(), json!(2));
            }),
            Box::new(|e| e.prev_hash = "1".repeat(64)),
        ];
        for (i, m) in mutations.iter().enumerate() {
            let mut x = e.clone();
            m(&mut x);
            assert!(!x.hash_is_valid(), "mutation {i} not detected");
        }
        let mut x = e.clone();
        x.hash = x.hash.to_uppercase();
        assert!(!x.hash_is_valid());
    }

    #[test]
    fn seal_validates() {
        assert!(AuditEvent::seal(draft(), 0, GENESIS_PREV_HASH).is_err());
        assert!(AuditEvent::seal(draft(), 2, GENESIS_PREV_HASH).is_err());
        assert!(AuditEvent::seal(draft(), 1, &"a".repeat(64)).is_err());
        assert!(AuditEvent::seal(draft(), 2, &"A".repeat(64)).is_err());
        assert!(AuditEvent::seal(draft(), 2, &"a".repeat(63)).is_err());
        assert!(AuditEvent::seal(draft(), 2, &"a".repeat(64)).is_ok());
        let mut d = draft();
        d.outcome = "ok".into();
        assert!(AuditEvent::seal(d, 1, GENESIS_PREV_HASH).is_err());
        let mut d = draft();
        d.actor.kind = "root".into();
        assert!(AuditEvent::seal(d, 1, GENESIS_PREV_HASH).is_err());
        let mut d = draft();
        d.event_type = "Session Transition".into();
        assert!(AuditEvent::seal(d, 1, GENESIS_PREV_HASH).is_err());
        let mut d = draft();
        d.details.insert("f".into(), json!(0.5));
        assert!(matches!(
            AuditEvent::seal(d, 1, GENESIS_PREV_HASH),
            Err(EventError::Details(_))
        ));
        let mut d = draft();
        d.details
            .insert("big".into(), json!("x".repeat(MAX_DETAILS_BYTES)));
        assert!(AuditEvent::seal(d, 1, GENESIS_PREV_HASH).is_err());
        let mut d = draft();
        d.user_ref = Some("alice".into());
        assert!(AuditEvent::seal(d, 1, GENESIS_PREV_HASH).is_err());
    }

    #[test]
    fn chain_head_appends() {
        let mut head = ChainHead::genesis();
        let a = head.append(draft()).unwrap();
        let b = head.append(draft()).unwrap();
        assert_eq!((a.seq, b.seq), (1, 2));
        assert_eq!(a.prev_hash, GENESIS_PREV_HASH);
        assert_eq!(b.prev_hash, a.hash);
        assert_ne!(a.hash, b.hash);
        assert_eq!(head, ChainHead::after(&b));
    }

    #[test]
    fn serde_round_trip_keeps_the_hash() {
        let mut d = draft();
        d.details
            .insert("z".into(), json!({"b": [1, "two"], "a": null}));
        let e = AuditEvent::seal(d, 1, GENESIS_PREV_HASH).unwrap();
        let text = serde_json::to_string(&e).unwrap();
        let back: AuditEvent = serde_json::from_str(&text).unwrap();
        assert_eq!(back, e);
        assert!(back.hash_is_valid());
    }
}
