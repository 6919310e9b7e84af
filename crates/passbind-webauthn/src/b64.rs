//! Base64 helpers.
//!
//! Browsers send every binary WebAuthn field as unpadded base64url, but real clients and
//! test vectors also use padding or the standard alphabet. Decoding is therefore lenient
//! (either alphabet, padding optional, non-zero trailing bits ignored as browsers' and
//! Node's decoders do, no whitespace); encoding is always unpadded base64url.

use base64::alphabet;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine as _;

const LENIENT: GeneralPurposeConfig = GeneralPurposeConfig::new()
    .with_encode_padding(false)
    .with_decode_allow_trailing_bits(true)
    .with_decode_padding_mode(DecodePaddingMode::Indifferent);

const URL_LENIENT: GeneralPurpose = GeneralPurpose::new(&alphabet::URL_SAFE, LENIENT);
const STD_LENIENT: GeneralPurpose = GeneralPurpose::new(&alphabet::STANDARD, LENIENT);
const URL_NO_PAD: GeneralPurpose = GeneralPurpose::new(
    &alphabet::URL_SAFE,
    GeneralPurposeConfig::new().with_encode_padding(false),
);

/// Decodes base64url or standard base64, with or without padding.
pub fn decode(input: &str) -> Option<Vec<u8>> {
    match URL_LENIENT.decode(input) {
        Ok(v) => Some(v),
        Err(_) => STD_LENIENT.decode(input).ok(),
    }
}

/// Encodes as unpadded base64url (the WebAuthn JSON encoding).
pub fn encode(input: &[u8]) -> String {
    URL_NO_PAD.encode(input)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[test]
    fn lenient_decoding() {
        assert_eq!(decode("-_8").unwrap(), vec![0xfb, 0xff]);
        assert_eq!(decode("-_8=").unwrap(), vec![0xfb, 0xff]);
        assert_eq!(decode("+/8=").unwrap(), vec![0xfb, 0xff]);
        assert_eq!(decode("+/8").unwrap(), vec![0xfb, 0xff]);
        assert!(decode("!!").is_none());
        assert_eq!(encode(&[0xfb, 0xff]), "-_8");
    }
}
