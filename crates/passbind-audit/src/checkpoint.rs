//! Signed checkpoints: an Ed25519 signature over (tree size, Merkle root, time).
//!
//! # Signed text (exact)
//!
//! ```text
//! passbind-audit-checkpoint/v1\n
//! <key_id>\n
//! <tree_size in decimal>\n
//! <root hash, 64 lowercase hex>\n
//! <time_ms in decimal, '-' if negative>\n
//! ```
//!
//! i.e. `format!("passbind-audit-checkpoint/v1\n{key_id}\n{tree_size}\n{root_hex}\n{time_ms}\n")`
//! as UTF-8 (all ASCII), each line ending in a single LF, no other whitespace. The signature is
//! Ed25519 (RFC 8032, pure) over those bytes, stored as base64url without padding.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde::{Deserialize, Serialize};

use crate::event::parse_hash_hex;
use crate::merkle::Hash;
use crate::signing::{key_id, verify_signature, Ed25519Signer, KeyError};

/// First line of the signed text.
pub const CHECKPOINT_DOMAIN: &str = "passbind-audit-checkpoint/v1";

/// A signed statement that the log had `tree_size` events whose Merkle root was `root_hash`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Checkpoint {
    /// Number of events covered (events 1..=tree_size).
    pub tree_size: u64,
    /// RFC 9162 Merkle root of the events' hashes, lowercase hex.
    pub root_hash: String,
    /// When it was signed, Unix milliseconds.
    pub time_ms: i64,
    /// Id of the signing key (see [`crate::signing::key_id`]).
    pub key_id: String,
    /// Ed25519 signature over [`Checkpoint::signed_text`], base64url without padding.
    pub signature: String,
}

/// Why a checkpoint does not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckpointError {
    /// `key_id` is not the id of the trusted key.
    #[error("checkpoint key id {found} is not the trusted key {trusted}")]
    UnknownKey {
        /// The checkpoint's key id.
        found: String,
        /// The trusted key's id.
        trusted: String,
    },
    /// The signature does not verify (or does not decode).
    #[error("checkpoint signature does not verify")]
    BadSignature,
    /// `root_hash` is not 64 lowercase hex.
    #[error("checkpoint root_hash is not 64 lowercase hex characters")]
    BadRoot,
}

/// Build the signed text (see the module documentation).
pub fn checkpoint_signed_text(
    key_id: &str,
    tree_size: u64,
    root_hex: &str,
    time_ms: i64,
) -> String {
    format!("{CHECKPOINT_DOMAIN}\n{key_id}\n{tree_size}\n{root_hex}\n{time_ms}\n")
}

impl Checkpoint {
    /// The exact bytes the signature covers.
    pub fn signed_text(&self) -> String {
        checkpoint_signed_text(&self.key_id, self.tree_size, &self.root_hash, self.time_ms)
    }

    /// The root, parsed.
    pub fn root(&self) -> Option<Hash> {
        parse_hash_hex(&self.root_hash)
    }

    /// Check key id, root format and signature against `public_key`.
    pub fn check(&self, public_key: &[u8; 32]) -> Result<(), CheckpointError> {
        let trusted = key_id(public_key);
        if self.key_id != trusted {
            return Err(CheckpointError::UnknownKey {
                found: self.key_id.clone(),
                trusted,
            });
        }
        if self.root().is_none() {
            return Err(CheckpointError::BadRoot);
        }
        let sig = URL_SAFE_NO_PAD
            .decode(&self.signature)
            .map_err(|_| CheckpointError::BadSignature)?;
        if !verify_signature(public_key, self.signed_text().as_bytes(), &sig) {
            return Err(CheckpointError::BadSignature);
        }
        Ok(())
    }

    /// Whether the checkpoint is validly signed by `public_key`.
    pub fn verify(&self, public_key: &[u8; 32]) -> bool {
        self.check(public_key).is_ok()
    }
}

/// The checkpoint signing key.
#[derive(Debug)]
pub struct CheckpointSigner {
    signer: Ed25519Signer,
}

impl CheckpointSigner {
    /// From a 32-byte Ed25519 seed.
    pub fn from_seed(seed: [u8; 32]) -> Result<Self, KeyError> {
        Ok(Self {
            signer: Ed25519Signer::from_seed(seed)?,
        })
    }

    /// Wrap an existing signer.
    pub fn new(signer: Ed25519Signer) -> Self {
        Self { signer }
    }

    /// The underlying Ed25519 signer (to sign identity proofs with the same key).
    pub fn signer(&self) -> &Ed25519Signer {
        &self.signer
    }

    /// The public key.
    pub fn public_key(&self) -> [u8; 32] {
        self.signer.public_key()
    }

    /// The public key as `ed25519:<base64url>`.
    pub fn public_key_text(&self) -> String {
        self.signer.public_key_text()
    }

    /// The key id.
    pub fn key_id(&self) -> &str {
        self.signer.key_id()
    }

    /// Sign a checkpoint for a tree of `tree_size` events with root `root` at `time_ms`.
    pub fn sign(&self, tree_size: u64, root: &Hash, time_ms: i64) -> Checkpoint {
        let root_hash = hex::encode(root);
        let key_id = self.key_id().to_owned();
        let text = checkpoint_signed_text(&key_id, tree_size, &root_hash, time_ms);
        let signature = URL_SAFE_NO_PAD.encode(self.signer.sign_bytes(text.as_bytes()));
        Checkpoint {
            tree_size,
            root_hash,
            time_ms,
            key_id,
            signature,
        }
    }
}

/// When to sign the next checkpoint: after `every_events` new events, or when `every_ms` has
/// passed since the last checkpoint and at least one event is new. A server calls
/// [`CheckpointPolicy::due`] after each append (and from a timer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckpointPolicy {
    /// Sign once this many events are not yet covered (0 disables the count trigger).
    pub every_events: u64,
    /// Sign once this much time has passed with uncovered events (0 disables the time trigger).
    pub every_ms: i64,
}

impl Default for CheckpointPolicy {
    fn default() -> Self {
        Self {
            every_events: 100,
            every_ms: 60_000,
        }
    }
}

impl CheckpointPolicy {
    /// Whether a checkpoint is due, given the last checkpoint (`None` if there is none), the
    /// current log size and the current time.
    pub fn due(&self, last: Option<&Checkpoint>, tree_size: u64, now_ms: i64) -> bool {
        let (covered, last_time) = match last {
            Some(cp) => (cp.tree_size, Some(cp.time_ms)),
            None => (0, None),
        };
        let uncovered = tree_size.saturating_sub(covered);
        if uncovered == 0 {
            return false;
        }
        if self.every_events > 0 && uncovered >= self.every_events {
            return true;
        }
        match last_time {
            Some(t) => self.every_ms > 0 && now_ms.saturating_sub(t) >= self.every_ms,
            None => self.every_ms > 0,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[test]
    fn sign_and_verify() {
        let s = CheckpointSigner::from_seed([1u8; 32]).unwrap();
        let root = [0xabu8; 32];
        let cp = s.sign(42, &root, 1_700_000_000_123);
        assert_eq!(
            cp.signed_text(),
            format!(
                "passbind-audit-checkpoint/v1\n{}\n42\n{}\n1700000000123\n",
                s.key_id(),
                "ab".repeat(32)
            )
        );
        assert!(cp.verify(&s.public_key()));
        assert_eq!(cp.root(), Some(root));
        let other = CheckpointSigner::from_seed([2u8; 32]).unwrap();
        assert!(matches!(
            cp.check(&other.public_key()),
            Err(CheckpointError::UnknownKey { .. })
        ));
        for m in [
            |c: &mut Checkpoint| c.tree_size += 1,
            |c: &mut Checkpoint| c.time_ms -= 1,
            |c: &mut Checkpoint| c.root_hash = "cd".repeat(32),
            |c: &mut Checkpoint| c.signature.push('A'),
            |c: &mut Checkpoint| c.signature = "!!".into(),
        ] {
            let mut c = cp.clone();
            m(&mut c);
            assert_eq!(c.check(&s.public_key()), Err(CheckpointError::BadSignature));
        }
        let mut c = cp.clone();
        c.root_hash = "AB".repeat(32);
        assert_eq!(c.check(&s.public_key()), Err(CheckpointError::BadRoot));
        // a forger who copies the trusted key id but signs with another key
        let mut forged = other.sign(42, &root, 1);
        forged.key_id = s.key_id().to_owned();
        assert_eq!(
            forged.check(&s.public_key()),
            Err(CheckpointError::BadSignature)
        );
    }

    #[test]
    fn policy() {
        let s = CheckpointSigner::from_seed([1u8; 32]).unwrap();
        let p = CheckpointPolicy {
            every_events: 10,
            every_ms: 1000,
        };
        assert!(!p.due(None, 0, 0));
        assert!(p.due(None, 1, 0));
        let cp = s.sign(10, &[0u8; 32], 5000);
        assert!(!p.due(Some(&cp), 10, 9999));
        assert!(!p.due(Some(&cp), 15, 5999));
        assert!(p.due(Some(&cp), 15, 6000));
        assert!(p.due(Some(&cp), 20, 5000));
        let count_only = CheckpointPolicy {
            every_events: 10,
            every_ms: 0,
        };
        assert!(!count_only.due(Some(&cp), 19, i64::MAX));
    }
}
