//! Ed25519 keys (ring): one signer type shared by checkpoints and identity proofs, the key id,
//! and the public key's text form.
//!
//! * **key id**: lowercase hex of the first 8 bytes of `SHA-256(public key)` (16 characters).
//! * **public key text**: `ed25519:` followed by the 32-byte key in base64url without padding
//!   (43 characters). [`parse_public_key`] also accepts the bare base64url form.
//!
//! One key may sign both checkpoints and identity proofs without cross-protocol confusion: a
//! checkpoint's signed text starts with `passbind-audit-checkpoint/v1\n`, and a JWS signing
//! input starts with the base64url of `{"alg":...`, i.e. `eyJ`; neither can be read as the
//! other. Operators who prefer separate keys simply make two signers.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use ring::digest::{digest, SHA256};
use ring::signature::{Ed25519KeyPair, KeyPair, UnparsedPublicKey, ED25519};

/// Prefix of the public key text form.
pub const PUBLIC_KEY_PREFIX: &str = "ed25519:";

/// Key handling errors.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// ring refused the seed (cannot happen for a 32-byte seed; kept so nothing panics).
    #[error("the Ed25519 seed was rejected: {0}")]
    Rejected(String),
    /// A public key text that is not `ed25519:<43 base64url chars>` (or the bare base64url).
    #[error("not an Ed25519 public key (expected ed25519:<base64url of 32 bytes>)")]
    BadPublicKey,
}

/// An Ed25519 signing key (from a 32-byte seed). `Debug` shows only the key id.
pub struct Ed25519Signer {
    key_pair: Ed25519KeyPair,
    public_key: [u8; 32],
    key_id: String,
}

impl std::fmt::Debug for Ed25519Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ed25519Signer")
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

impl Ed25519Signer {
    /// The signer whose RFC 8032 private key (seed) is `seed`.
    pub fn from_seed(seed: [u8; 32]) -> Result<Self, KeyError> {
        let key_pair = Ed25519KeyPair::from_seed_unchecked(&seed)
            .map_err(|e| KeyError::Rejected(e.to_string()))?;
        let mut public_key = [0u8; 32];
        let pk = key_pair.public_key().as_ref();
        if pk.len() != 32 {
            return Err(KeyError::Rejected("public key is not 32 bytes".into()));
        }
        public_key.copy_from_slice(pk);
        Ok(Self {
            key_pair,
            key_id: key_id(&public_key),
            public_key,
        })
    }

    /// The 32-byte public key.
    pub fn public_key(&self) -> [u8; 32] {
        self.public_key
    }

    /// The public key as `ed25519:<base64url>`.
    pub fn public_key_text(&self) -> String {
        encode_public_key(&self.public_key)
    }

    /// The key id (see the module documentation).
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// Sign `message`; returns the 64-byte signature.
    pub fn sign_bytes(&self, message: &[u8]) -> [u8; 64] {
        let sig = self.key_pair.sign(message);
        let mut out = [0u8; 64];
        let bytes = sig.as_ref();
        if bytes.len() == 64 {
            out.copy_from_slice(bytes);
        }
        out
    }
}

/// Key id of a public key: hex of the first 8 bytes of its SHA-256.
pub fn key_id(public_key: &[u8; 32]) -> String {
    let d = digest(&SHA256, public_key);
    hex::encode(d.as_ref().get(..8).unwrap_or_default())
}

/// `ed25519:<base64url without padding>`.
pub fn encode_public_key(public_key: &[u8; 32]) -> String {
    format!("{PUBLIC_KEY_PREFIX}{}", URL_SAFE_NO_PAD.encode(public_key))
}

/// Parse `ed25519:<base64url>` or bare `<base64url>` (no padding, canonical encoding).
pub fn parse_public_key(text: &str) -> Result<[u8; 32], KeyError> {
    let b64 = text.trim();
    let b64 = b64.strip_prefix(PUBLIC_KEY_PREFIX).unwrap_or(b64);
    let bytes = URL_SAFE_NO_PAD
        .decode(b64)
        .map_err(|_| KeyError::BadPublicKey)?;
    bytes.try_into().map_err(|_| KeyError::BadPublicKey)
}

/// Verify an Ed25519 signature.
pub fn verify_signature(public_key: &[u8; 32], message: &[u8], signature: &[u8]) -> bool {
    UnparsedPublicKey::new(&ED25519, public_key)
        .verify(message, signature)
        .is_ok()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[test]
    fn rfc8032_test_vector_1() {
        // RFC 8032 §7.1, TEST 1 (empty message).
        let seed: [u8; 32] =
            hex::decode("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
                .unwrap()
                .try_into()
                .unwrap();
        let s = Ed25519Signer::from_seed(seed).unwrap();
        assert_eq!(
            hex::encode(s.public_key()),
            "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
        );
        let sig = s.sign_bytes(b"");
        assert_eq!(
            hex::encode(sig),
            "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e06522490155\
             5fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"
        );
        assert!(verify_signature(&s.public_key(), b"", &sig));
        assert!(!verify_signature(&s.public_key(), b"x", &sig));
    }

    #[test]
    fn public_key_text_round_trip() {
        let s = Ed25519Signer::from_seed([7u8; 32]).unwrap();
        let text = s.public_key_text();
        assert!(text.starts_with("ed25519:"));
        assert_eq!(text.len(), 8 + 43);
        assert_eq!(parse_public_key(&text).unwrap(), s.public_key());
        assert_eq!(
            parse_public_key(text.trim_start_matches("ed25519:")).unwrap(),
            s.public_key()
        );
        assert!(parse_public_key("ed25519:").is_err());
        assert!(parse_public_key("ed25519:AAAA").is_err());
        assert!(parse_public_key(&format!("{text}=")).is_err());
        assert_eq!(s.key_id().len(), 16);
        assert_eq!(key_id(&s.public_key()), s.key_id());
        assert!(!format!("{s:?}").contains(&hex::encode([7u8; 32])));
    }
}
