//! Passbind's tamper-evident audit log and identity proofs. Pure: no I/O, no database, no
//! clock; everything takes and returns plain values, so a store can persist them and an HTTP
//! API can serve them.
//!
//! * [`event`]: audit events, their canonical encoding and hash; the log is a hash chain
//!   (`prev_hash`) *and* the leaves of a Merkle tree (event hash = RFC 9162 leaf hash).
//! * [`merkle`]: RFC 9162 Merkle tree hash, inclusion and consistency proofs, and a
//!   [`merkle::Frontier`] that keeps the root of a growing log in O(log n) state.
//! * [`checkpoint`]: Ed25519-signed checkpoints (tree size, root, time) and when to sign them.
//! * [`export`]: the JSON Lines export format.
//! * [`verify`]: the offline verifier, which reports the first break precisely.
//! * [`identity`]: normalised, keyed-hashed, signed identity proofs (a compact JWS).
//! * [`signing`]: the Ed25519 signer shared by checkpoints and identity proofs.
//! * [`canonical`]: the canonical JSON encoding (RFC 8785 restricted to integer numbers).
//!
//! # Writing the log (for the store and server)
//!
//! In the database transaction that makes a state change: lock the chain head, read the last
//! event's `(seq, hash)` as an [`event::ChainHead`], [`event::ChainHead::seal_next`] the draft,
//! insert it (a unique index on `seq` turns any race into a retry, never a gap or a fork),
//! and commit. After commit (or in the same transaction), if
//! [`checkpoint::CheckpointPolicy::due`], compute the root (from a stored
//! [`merkle::Frontier`], or [`merkle::root`] over all event hashes) and store
//! [`checkpoint::CheckpointSigner::sign`]'s checkpoint. Inclusion proofs:
//! [`merkle::inclusion_proof`] over the hashes of events `1..=tree_size` of a checkpoint;
//! consistency proofs: [`merkle::consistency_proof`] over the hashes of events `1..=new_size`.

pub mod canonical;
pub mod checkpoint;
pub mod event;
pub mod export;
pub mod identity;
pub mod merkle;
pub mod signing;
mod strict_json;
pub mod verify;

pub use checkpoint::{Checkpoint, CheckpointPolicy, CheckpointSigner};
pub use event::{Actor, AuditEvent, ChainHead, EventDraft, GENESIS_PREV_HASH};
pub use export::{
    parse_export, write_export, write_export_with_pending, Export, ExportEntry, ExportError,
    ExportHeader, Record,
};
pub use identity::{
    normalise, proof_hash, sign_identity_proof, verify_identity_proof, IdentityProofClaims,
    Normalised, ProofError,
};
pub use merkle::Frontier;
pub use signing::{encode_public_key, key_id, parse_public_key, Ed25519Signer};
pub use verify::{
    verify, verify_text, verify_text_with, verify_with, Break, BreakKind, ChainBreak, Report,
    VerifyOptions,
};
