//! Cryptographic helpers of the core, all on `ring` (audited, constant-time primitives, and
//! the fastest ECDSA verification measured on this class of machine; see docs/crypto.md).
//!
//! Randomness always comes from the [`Rng`] port so that tests can pin it.

use crate::model::EbtRecord;
use crate::ports::Rng;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use ring::{digest, hmac};
use std::collections::BTreeMap;
use zeroize::Zeroizing;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    #[error("no key with version {0} in the key ring")]
    UnknownKeyVersion(u32),
    #[error("decryption failed (wrong key, wrong user, or tampered ciphertext)")]
    Decrypt,
    #[error("encryption failed")]
    Encrypt,
    #[error("key ring is empty")]
    EmptyKeyRing,
}

/// A versioned set of 256-bit key-encryption keys. New data is sealed with the highest
/// version; older versions stay readable until every record is re-wrapped.
#[derive(Clone)]
pub struct KeyRing {
    keys: BTreeMap<u32, Zeroizing<[u8; 32]>>,
}

impl std::fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyRing")
            .field("versions", &self.keys.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl KeyRing {
    pub fn new(keys: impl IntoIterator<Item = (u32, [u8; 32])>) -> Result<Self, CryptoError> {
        let keys: BTreeMap<_, _> = keys
            .into_iter()
            .map(|(v, k)| (v, Zeroizing::new(k)))
            .collect();
        if keys.is_empty() {
            return Err(CryptoError::EmptyKeyRing);
        }
        Ok(Self { keys })
    }

    pub fn current_version(&self) -> u32 {
        self.keys.keys().next_back().copied().unwrap_or(0)
    }

    pub fn versions(&self) -> Vec<u32> {
        self.keys.keys().copied().collect()
    }

    fn key(&self, version: u32) -> Result<&[u8; 32], CryptoError> {
        self.keys
            .get(&version)
            .map(|k| &**k)
            .ok_or(CryptoError::UnknownKeyVersion(version))
    }

    /// Seals a user's biometric token: a fresh data key encrypts it (AAD binds the user), and
    /// the current key-encryption key wraps the data key (AAD binds user and version).
    pub fn seal_ebt(
        &self,
        rng: &dyn Rng,
        user_id: &str,
        token: &str,
        now: i64,
    ) -> Result<EbtRecord, CryptoError> {
        let version = self.current_version();
        let mut dek = Zeroizing::new([0u8; 32]);
        rng.fill(&mut *dek);
        let ciphertext = seal(rng, &dek[..], &ebt_aad(user_id), token.as_bytes())?;
        let wrapped_dek = seal(rng, self.key(version)?, &dek_aad(user_id, version), &*dek)?;
        Ok(EbtRecord {
            user_id: user_id.to_owned(),
            key_version: version,
            wrapped_dek,
            ciphertext,
            created_at: now,
        })
    }

    /// Opens a sealed biometric token, in memory only.
    pub fn open_ebt(&self, rec: &EbtRecord) -> Result<Zeroizing<String>, CryptoError> {
        let dek = self.unwrap_dek(rec)?;
        let plain = open(&dek, &ebt_aad(&rec.user_id), &rec.ciphertext)?;
        String::from_utf8(plain.to_vec())
            .map(Zeroizing::new)
            .map_err(|_| CryptoError::Decrypt)
    }

    /// Re-wraps the data key under the current key version (key rotation); the token's
    /// ciphertext is untouched.
    pub fn rewrap(&self, rng: &dyn Rng, rec: &EbtRecord) -> Result<(u32, Vec<u8>), CryptoError> {
        let dek = self.unwrap_dek(rec)?;
        let version = self.current_version();
        let wrapped = seal(
            rng,
            self.key(version)?,
            &dek_aad(&rec.user_id, version),
            &dek[..],
        )?;
        Ok((version, wrapped))
    }

    fn unwrap_dek(&self, rec: &EbtRecord) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        let kek = self.key(rec.key_version)?;
        open(
            kek,
            &dek_aad(&rec.user_id, rec.key_version),
            &rec.wrapped_dek,
        )
    }

    /// Seals a small secret bound to a context string (for example a supplied prior biometric
    /// token kept in a session until its verdict), under the current key.
    pub fn seal_blob(
        &self,
        rng: &dyn Rng,
        context: &str,
        plain: &[u8],
    ) -> Result<String, CryptoError> {
        let version = self.current_version();
        let sealed = seal(rng, self.key(version)?, &blob_aad(context, version), plain)?;
        Ok(format!("{version}.{}", URL_SAFE_NO_PAD.encode(sealed)))
    }

    pub fn open_blob(
        &self,
        context: &str,
        sealed: &str,
    ) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        let (v, b) = sealed.split_once('.').ok_or(CryptoError::Decrypt)?;
        let version: u32 = v.parse().map_err(|_| CryptoError::Decrypt)?;
        let bytes = URL_SAFE_NO_PAD
            .decode(b)
            .map_err(|_| CryptoError::Decrypt)?;
        open(self.key(version)?, &blob_aad(context, version), &bytes)
    }
}

fn ebt_aad(user_id: &str) -> Vec<u8> {
    format!("passbind/ebt/v1/user={user_id}").into_bytes()
}

fn dek_aad(user_id: &str, version: u32) -> Vec<u8> {
    format!("passbind/dek/v1/user={user_id}/kek={version}").into_bytes()
}

fn blob_aad(context: &str, version: u32) -> Vec<u8> {
    format!("passbind/blob/v1/{context}/kek={version}").into_bytes()
}

fn seal(rng: &dyn Rng, key: &[u8], aad: &[u8], plain: &[u8]) -> Result<Vec<u8>, CryptoError> {
    let key =
        LessSafeKey::new(UnboundKey::new(&AES_256_GCM, key).map_err(|_| CryptoError::Encrypt)?);
    let mut nonce = [0u8; NONCE_LEN];
    rng.fill(&mut nonce);
    let mut buf = plain.to_vec();
    key.seal_in_place_append_tag(
        Nonce::assume_unique_for_key(nonce),
        Aad::from(aad),
        &mut buf,
    )
    .map_err(|_| CryptoError::Encrypt)?;
    let mut out = nonce.to_vec();
    out.extend_from_slice(&buf);
    Ok(out)
}

fn open(key: &[u8], aad: &[u8], sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
    let key =
        LessSafeKey::new(UnboundKey::new(&AES_256_GCM, key).map_err(|_| CryptoError::Decrypt)?);
    let (nonce, body) = sealed
        .split_at_checked(NONCE_LEN)
        .ok_or(CryptoError::Decrypt)?;
    let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| CryptoError::Decrypt)?;
    let mut buf = Zeroizing::new(body.to_vec());
    let plain_len = key
        .open_in_place(nonce, Aad::from(aad), &mut buf)
        .map_err(|_| CryptoError::Decrypt)?
        .len();
    buf.truncate(plain_len);
    Ok(buf)
}

/// SHA-256.
pub fn sha256(data: &[u8]) -> [u8; 32] {
    let d = digest::digest(&digest::SHA256, data);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

/// HMAC-SHA256 under `key`, for keyed hashes of identifiers (never reversible without the key).
pub fn keyed_hash(key: &[u8], domain: &str, data: &[u8]) -> [u8; 32] {
    let k = hmac::Key::new(hmac::HMAC_SHA256, key);
    let mut ctx = hmac::Context::with_key(&k);
    ctx.update(domain.as_bytes());
    ctx.update(&[0]);
    ctx.update(data);
    let tag = ctx.sign();
    let mut out = [0u8; 32];
    out.copy_from_slice(tag.as_ref());
    out
}

/// Constant-time equality.
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

/// `n` random bytes.
pub fn random_bytes<const N: usize>(rng: &dyn Rng) -> [u8; N] {
    let mut b = [0u8; N];
    rng.fill(&mut b);
    b
}

/// A random identifier with a readable prefix: `prefix_` + 26 base32 characters (128 bits).
pub fn random_id(rng: &dyn Rng, prefix: &str) -> String {
    const ALPHABET: &[u8; 32] = b"0123456789abcdefghjkmnpqrstvwxyz";
    let bytes: [u8; 16] = random_bytes(rng);
    let mut n = u128::from_be_bytes(bytes);
    let mut s = String::with_capacity(prefix.len() + 27);
    s.push_str(prefix);
    s.push('_');
    for _ in 0..26 {
        s.push(ALPHABET[(n & 31) as usize] as char);
        n >>= 5;
    }
    s
}

pub fn b64url(data: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(data)
}

pub fn b64url_decode(s: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(s).ok()
}

#[cfg(test)]
pub(crate) mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};

    /// A deterministic test RNG (NOT for production).
    pub struct CountingRng(pub AtomicU64);
    impl Rng for CountingRng {
        fn fill(&self, buf: &mut [u8]) {
            for b in buf.iter_mut() {
                *b = (self.0.fetch_add(1, Ordering::Relaxed) % 251) as u8;
            }
        }
    }

    fn ring2() -> KeyRing {
        KeyRing::new([(1, [7u8; 32]), (2, [9u8; 32])]).unwrap()
    }

    #[test]
    fn ebt_roundtrip_and_binding() {
        let rng = CountingRng(AtomicU64::new(1));
        let kr = ring2();
        let rec = kr.seal_ebt(&rng, "usr_a", "token-abc", 5).unwrap();
        assert_eq!(rec.key_version, 2);
        assert!(!rec.ciphertext.windows(9).any(|w| w == b"token-abc"));
        assert_eq!(&*kr.open_ebt(&rec).unwrap(), "token-abc");
        // moved to another user: refused
        let mut moved = rec.clone();
        moved.user_id = "usr_b".into();
        assert_eq!(kr.open_ebt(&moved), Err(CryptoError::Decrypt));
        // tampered
        let mut t = rec.clone();
        let last = t.ciphertext.len() - 1;
        t.ciphertext[last] ^= 1;
        assert_eq!(kr.open_ebt(&t), Err(CryptoError::Decrypt));
        // the old key alone cannot open it
        let old = KeyRing::new([(1, [7u8; 32])]).unwrap();
        assert_eq!(old.open_ebt(&rec), Err(CryptoError::UnknownKeyVersion(2)));
    }

    #[test]
    fn rotation_rewraps_the_data_key() {
        let rng = CountingRng(AtomicU64::new(3));
        let old = KeyRing::new([(1, [7u8; 32])]).unwrap();
        let rec = old.seal_ebt(&rng, "u", "t", 0).unwrap();
        let new = ring2();
        let (v, wrapped) = new.rewrap(&rng, &rec).unwrap();
        let re = EbtRecord {
            key_version: v,
            wrapped_dek: wrapped,
            ..rec
        };
        let only_new = KeyRing::new([(2, [9u8; 32])]).unwrap();
        assert_eq!(&*only_new.open_ebt(&re).unwrap(), "t");
    }

    #[test]
    fn blobs_bound_to_context() {
        let rng = CountingRng(AtomicU64::new(9));
        let kr = ring2();
        let s = kr.seal_blob(&rng, "session=a", b"secret").unwrap();
        assert_eq!(&*kr.open_blob("session=a", &s).unwrap(), b"secret");
        assert!(kr.open_blob("session=b", &s).is_err());
        assert!(kr.open_blob("session=a", "garbage").is_err());
        assert!(kr.open_blob("session=a", "2.").is_err());
    }

    #[test]
    fn ids_are_distinct_and_well_formed() {
        let rng = CountingRng(AtomicU64::new(0));
        let a = random_id(&rng, "reg");
        let b = random_id(&rng, "reg");
        assert_ne!(a, b);
        assert_eq!(a.len(), 30);
        assert!(a.starts_with("reg_"));
    }
}
