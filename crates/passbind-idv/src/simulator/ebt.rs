//! The simulator's own encrypted biometric token: the face template sealed with AES-256-GCM
//! under the simulator's key. Only the simulator can open it, as only the cloud provider can
//! open a real one. Format: base64url (no padding) of `version (1) || nonce (12) ||
//! ciphertext || tag (16)`, with a fixed associated data string.

use crate::face::TEMPLATE_DIMS;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use ring::rand::{SecureRandom, SystemRandom};
use zeroize::Zeroizing;

const VERSION: u8 = 1;
const AAD: &[u8] = b"passbind-simulator-ebt/v1";
const TAG_LEN: usize = 16;
const PLAINTEXT_LEN: usize = TEMPLATE_DIMS * 4;
const SEALED_LEN: usize = 1 + NONCE_LEN + PLAINTEXT_LEN + TAG_LEN;

pub(crate) struct EbtSealer {
    key: LessSafeKey,
    rng: SystemRandom,
}

impl EbtSealer {
    pub(crate) fn new(key: &[u8; 32]) -> Option<Self> {
        let key = UnboundKey::new(&AES_256_GCM, key).ok()?;
        Some(Self {
            key: LessSafeKey::new(key),
            rng: SystemRandom::new(),
        })
    }

    /// Seals a template of [`TEMPLATE_DIMS`] values.
    pub(crate) fn seal(&self, template: &[f32]) -> Option<Zeroizing<String>> {
        if template.len() != TEMPLATE_DIMS {
            return None;
        }
        let mut nonce = [0u8; NONCE_LEN];
        self.rng.fill(&mut nonce).ok()?;
        let mut buf = Zeroizing::new(Vec::with_capacity(SEALED_LEN));
        buf.push(VERSION);
        buf.extend_from_slice(&nonce);
        for v in template {
            buf.extend_from_slice(&v.to_le_bytes());
        }
        let mut body = Zeroizing::new(buf.split_off(1 + NONCE_LEN));
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(AAD),
                &mut *body,
            )
            .ok()?;
        buf.extend_from_slice(&body);
        Some(Zeroizing::new(URL_SAFE_NO_PAD.encode(&*buf)))
    }

    /// Opens a token; None when it is not one of this simulator's (other key, tampered,
    /// malformed).
    pub(crate) fn open(&self, token: &str) -> Option<Zeroizing<Vec<f32>>> {
        if token.len() > SEALED_LEN * 2 {
            return None;
        }
        let mut raw = Zeroizing::new(URL_SAFE_NO_PAD.decode(token.trim_end_matches('=')).ok()?);
        if raw.len() != SEALED_LEN || raw.first() != Some(&VERSION) {
            return None;
        }
        let nonce = Nonce::try_assume_unique_for_key(raw.get(1..1 + NONCE_LEN)?).ok()?;
        let body = raw.get_mut(1 + NONCE_LEN..)?;
        let plain = self.key.open_in_place(nonce, Aad::from(AAD), body).ok()?;
        let values: Vec<f32> = plain
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        if values.len() != TEMPLATE_DIMS || !values.iter().all(|v| v.is_finite()) {
            return None;
        }
        Some(Zeroizing::new(values))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use crate::face::FaceTemplate;

    #[test]
    fn seal_and_open() {
        let sealer = EbtSealer::new(&[7u8; 32]).unwrap();
        let face = FaceTemplate::of_person(3);
        let token = sealer.seal(face.as_slice()).unwrap();
        let opened = sealer.open(&token).unwrap();
        assert_eq!(&opened[..], face.as_slice());
        // Two seals of the same template differ (random nonce).
        assert_ne!(*sealer.seal(face.as_slice()).unwrap(), *token);
        // Another key, a flipped character, garbage: all refused.
        let other = EbtSealer::new(&[8u8; 32]).unwrap();
        assert!(other.open(&token).is_none());
        let mut tampered = token.to_string();
        let middle = if tampered[100..101].eq("A") { "B" } else { "A" };
        tampered.replace_range(100..101, middle);
        assert!(sealer.open(&tampered).is_none());
        assert!(sealer.open("not a token").is_none());
        assert!(sealer.open("").is_none());
        assert!(sealer.open(&"A".repeat(5000)).is_none());
    }
}
