//! The `X-SHA2-Signature` webhook signature: lowercase hex of HMAC-SHA256 over the raw
//! request body, keyed with the webhook's token. The scheme has no timestamp and no nonce;
//! replay protection is the receiver's.

use ring::hmac;

/// The header that carries the signature (HTTP header names are case-insensitive).
pub const SIGNATURE_HEADER: &str = "x-sha2-signature";

/// Lowercase hex of HMAC-SHA256(`body`, key = `key`).
pub fn sign_sha2(key: &[u8], body: &[u8]) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, key);
    hex::encode(hmac::sign(&key, body).as_ref())
}

/// Whether `header_value` is the signature of `body` under `key`.
///
/// Accepts upper- or lower-case hex (and surrounding whitespace); rejects anything that is
/// not exactly 64 hex digits. The tag comparison is constant-time.
pub fn verify_sha2(key: &[u8], body: &[u8], header_value: &str) -> bool {
    let value = header_value.trim();
    if value.len() != 64 || !value.bytes().all(|b| b.is_ascii_hexdigit()) {
        return false;
    }
    let Ok(tag) = hex::decode(value) else {
        return false;
    };
    let key = hmac::Key::new(hmac::HMAC_SHA256, key);
    hmac::verify(&key, body, &tag).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &[u8] = b"test_webhook_token_0123456789";
    const BODY: &[u8] = br#"{"payload":{"resource_type":"workflow_run","action":"workflow_run.completed","object":{"id":"00000000-0000-0000-0000-000000000001","status":"approved","completed_at_iso8601":"2026-01-01T00:00:00Z","href":"https://api.eu.onfido.com/v3.6/workflow_runs/00000000-0000-0000-0000-000000000001"}}}"#;
    const EXPECTED: &str = "2b470869d8fc738557049930e597368e0a20086d9d02857fd0c8dd576a7ff16e";

    #[test]
    fn the_documented_vector() {
        assert_eq!(sign_sha2(KEY, BODY), EXPECTED);
        assert!(verify_sha2(KEY, BODY, EXPECTED));
    }

    #[test]
    fn upper_case_and_whitespace_are_tolerated() {
        assert!(verify_sha2(KEY, BODY, &EXPECTED.to_uppercase()));
        assert!(verify_sha2(KEY, BODY, &format!(" {EXPECTED} ")));
    }

    #[test]
    fn wrong_values_are_rejected() {
        // A different body, key, a truncated or extended tag, non-hex, empty.
        assert!(!verify_sha2(KEY, b"{}", EXPECTED));
        assert!(!verify_sha2(b"another key", BODY, EXPECTED));
        assert!(!verify_sha2(KEY, BODY, &EXPECTED[..62]));
        assert!(!verify_sha2(KEY, BODY, &format!("{EXPECTED}00")));
        let non_hex = format!("{}zz", &EXPECTED[..62]);
        assert!(!verify_sha2(KEY, BODY, &non_hex));
        assert!(!verify_sha2(KEY, BODY, ""));
        let mut flipped = EXPECTED.to_owned();
        flipped.replace_range(0..1, "3");
        assert!(!verify_sha2(KEY, BODY, &flipped));
        // A trailing newline changes the body.
        let mut with_newline = BODY.to_vec();
        with_newline.push(b'\n');
        assert!(!verify_sha2(KEY, &with_newline, EXPECTED));
    }
}
