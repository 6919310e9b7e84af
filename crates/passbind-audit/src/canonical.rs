//! Canonical JSON: the one byte encoding that everything in this crate hashes or signs.
//!
//! # The rules (reimplement these exactly)
//!
//! The encoding of a JSON value is:
//!
//! * `null`, `true`, `false`: those literals.
//! * **Numbers: integers only**, in the range `-(2^53 - 1) ..= 2^53 - 1`, written in decimal
//!   with a leading `-` for negatives, no leading zeros, no `+`, no fraction, no exponent
//!   (`0`, `42`, `-7`). Any other number (a fraction, an exponent form that parsed as a float,
//!   or an integer outside that range) is **not encodable** and is an error. This keeps the
//!   encoding free of floating-point formatting questions.
//! * Strings: `"` + the string's characters + `"`, where `"` is written `\"`, `\` is written
//!   `\\`, U+0008 `\b`, U+0009 `\t`, U+000A `\n`, U+000C `\f`, U+000D `\r`, every other code
//!   point below U+0020 as `\u00xx` with **lowercase** hex digits, and every other code point
//!   (including `/`, U+007F and everything non-ASCII) as its literal UTF-8 bytes.
//! * Arrays: `[` + the elements' encodings separated by `,` + `]`.
//! * Objects: `{` + members separated by `,` + `}`, each member being the encoded key string,
//!   `:`, and the encoded value. Members are **sorted by key, comparing the keys as sequences
//!   of UTF-16 code units**; keys are unique.
//! * No whitespace anywhere outside strings. The output is UTF-8.
//!
//! For every value this encoder accepts, the output is byte-for-byte identical to RFC 8785
//! (JSON Canonicalization Scheme), so an auditor may use any JCS implementation after checking
//! that the value contains no fractional or out-of-range numbers. (RFC 8785 sorts by UTF-16
//! code units, as here; for keys in ASCII that is plain byte order.)

//!
//! # RFC 8785 for any JSON ([`to_jcs`])
//!
//! Values Passbind does not write itself (an integrator's step-up transaction context) may
//! hold any number. [`to_jcs`] encodes them exactly as RFC 8785 does: the same rules, with every
//! number that is not an integer within `±(2^53 - 1)` written as ECMAScript's
//! `Number.prototype.toString` writes the IEEE-754 double nearest to it (RFC 8785 §3.2.2.3):
//! `250.0` is `250`, `4.50` is `4.5`, `1e30` is `1e+30`, `0.002` is `0.002`. In JavaScript that
//! is what `JSON.stringify` does to a number after `JSON.parse`, so a browser or a Node backend
//! reproduces the bytes with any RFC 8785 library.

use serde_json::{Map, Value};

/// The largest integer magnitude the canonical encoding accepts: `2^53 - 1`, the largest
/// integer that every JSON implementation (including IEEE-754-only ones) represents exactly.
pub const MAX_SAFE_INTEGER: u64 = (1 << 53) - 1;

/// Why a value has no canonical encoding.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CanonicalError {
    /// A number that is not an integer (a fraction or exponent form).
    #[error("number {0} is not an integer; the canonical encoding admits integers only")]
    NotAnInteger(String),
    /// An integer outside `-(2^53-1) ..= 2^53-1`.
    #[error("integer {0} is outside the canonical range -(2^53-1)..=2^53-1")]
    OutOfRange(String),
}

/// Which numbers an encoding admits.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Numbers {
    /// Integers within `±(2^53 - 1)` only: Passbind's own records.
    SafeIntegers,
    /// Any number, as RFC 8785 writes it.
    Jcs,
}

/// Encode `value` canonically (see the module documentation for the exact rules).
pub fn to_canonical_json(value: &Value) -> Result<Vec<u8>, CanonicalError> {
    let mut out = Vec::with_capacity(256);
    write_value(value, &mut out, Numbers::SafeIntegers)?;
    Ok(out)
}

/// Encode an object (a `serde_json::Map`) canonically.
pub fn map_to_canonical_json(map: &Map<String, Value>) -> Result<Vec<u8>, CanonicalError> {
    let mut out = Vec::with_capacity(256);
    write_object(map, &mut out, Numbers::SafeIntegers)?;
    Ok(out)
}

/// Encode any JSON value as RFC 8785 (JSON Canonicalization Scheme) does; see the module
/// documentation. Identical to [`to_canonical_json`] wherever that one succeeds.
pub fn to_jcs(value: &Value) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    // Infallible: in this mode every number has an encoding.
    let _ = write_value(value, &mut out, Numbers::Jcs);
    out
}

fn write_value(value: &Value, out: &mut Vec<u8>, numbers: Numbers) -> Result<(), CanonicalError> {
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Number(n) => {
            let safe = n
                .as_u64()
                .map(|u| u <= MAX_SAFE_INTEGER)
                .or_else(|| n.as_i64().map(|i| i.unsigned_abs() <= MAX_SAFE_INTEGER));
            match (safe, numbers) {
                (Some(true), _) => out.extend_from_slice(n.to_string().as_bytes()),
                (_, Numbers::Jcs) => {
                    // serde_json holds every number as u64, i64 or a finite f64.
                    let double = n.as_f64().unwrap_or(0.0);
                    out.extend_from_slice(ryu_js::Buffer::new().format(double).as_bytes());
                }
                (Some(false), Numbers::SafeIntegers) => {
                    return Err(CanonicalError::OutOfRange(n.to_string()))
                }
                (None, Numbers::SafeIntegers) => {
                    return Err(CanonicalError::NotAnInteger(n.to_string()))
                }
            }
        }
        Value::String(s) => write_string(s, out),
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_value(item, out, numbers)?;
            }
            out.push(b']');
        }
        Value::Object(map) => write_object(map, out, numbers)?,
    }
    Ok(())
}

fn write_object(
    map: &Map<String, Value>,
    out: &mut Vec<u8>,
    numbers: Numbers,
) -> Result<(), CanonicalError> {
    let mut members: Vec<(&String, &Value)> = map.iter().collect();
    members.sort_by(|a, b| a.0.encode_utf16().cmp(b.0.encode_utf16()));
    out.push(b'{');
    for (i, (key, value)) in members.into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_string(key, out);
        out.push(b':');
        write_value(value, out, numbers)?;
    }
    out.push(b'}');
    Ok(())
}

/// Append the canonical encoding of the string `s` (infallible).
pub(crate) fn write_string(s: &str, out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push(b'"');
    for ch in s.chars() {
        match ch {
            '"' => out.extend_from_slice(b"\\\""),
            '\\' => out.extend_from_slice(b"\\\\"),
            '\u{08}' => out.extend_from_slice(b"\\b"),
            '\t' => out.extend_from_slice(b"\\t"),
            '\n' => out.extend_from_slice(b"\\n"),
            '\u{0c}' => out.extend_from_slice(b"\\f"),
            '\r' => out.extend_from_slice(b"\\r"),
            c if (c as u32) < 0x20 => {
                let v = c as u32 as usize;
                out.extend_from_slice(b"\\u00");
                out.push(HEX.get(v >> 4).copied().unwrap_or(b'0'));
                out.push(HEX.get(v & 0xf).copied().unwrap_or(b'0'));
            }
            c => {
                let mut buf = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            }
        }
    }
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use serde_json::json;

    fn enc(v: &Value) -> String {
        String::from_utf8(to_canonical_json(v).unwrap()).unwrap()
    }

    /// RFC 8785 §3.2.3's example, and number serialisations of its Appendix B and §3.2.2.3.
    #[test]
    fn jcs_matches_rfc8785() {
        let input = r#"{
          "numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],
          "string": "\u20ac$\u000F\u000aA'\u0042\u0022\u005c\\\"\/",
          "literals": [null, true, false]
        }"#;
        let v: Value = serde_json::from_str(input).unwrap();
        assert_eq!(
            String::from_utf8(to_jcs(&v)).unwrap(),
            r#"{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],"string":"€$\u000f\nA'B\"\\\\\"/"}"#
        );
        for (number, expected) in [
            ("0", "0"),
            ("-0.0", "0"),
            ("250.0", "250"),
            ("5e-324", "5e-324"),
            ("1.7976931348623157e308", "1.7976931348623157e+308"),
            ("9007199254740993", "9007199254740992"),
            ("-9007199254740991", "-9007199254740991"),
            ("1e21", "1e+21"),
            ("999999999999999900000", "999999999999999900000"),
            ("1e-7", "1e-7"),
            ("0.000001", "0.000001"),
            ("123e-20", "1.23e-18"),
        ] {
            let v: Value = serde_json::from_str(number).unwrap();
            assert_eq!(String::from_utf8(to_jcs(&v)).unwrap(), expected, "{number}");
        }
        // Where the strict encoding succeeds, the two agree.
        let v = json!({"b": [1, -2, "x\u{1}"], "a": {"é": null, "z": true}});
        assert_eq!(to_jcs(&v), to_canonical_json(&v).unwrap());
        // And the strict one still refuses what it refused.
        assert!(to_canonical_json(&json!(2.5)).is_err());
        assert!(to_canonical_json(&json!(9007199254740993u64)).is_err());
    }

    #[test]
    fn sorts_keys_and_drops_whitespace() {
        let v = json!({"b": 1, "a": [true, false, null], "c": {"z": "x", "y": -3}});
        assert_eq!(
            enc(&v),
            r#"{"a":[true,false,null],"b":1,"c":{"y":-3,"z":"x"}}"#
        );
    }

    #[test]
    fn escapes_exactly_like_rfc8785() {
        let v = Value::String("q\"b\\s/\u{8}\u{c}\n\r\t\u{1}\u{1f}\u{7f}é€😀".into());
        assert_eq!(
            enc(&v),
            "\"q\\\"b\\\\s/\\b\\f\\n\\r\\t\\u0001\\u001f\u{7f}é€😀\""
        );
    }

    #[test]
    fn utf16_key_order() {
        // By code point U+FB33 < U+1F600, but in UTF-16 U+1F600 is 0xD83D 0xDE00, which sorts
        // before 0xFB33: RFC 8785 (and this encoder) put the emoji first.
        let v = json!({"\u{1F600}": 1, "\u{FB33}": 2, "a": 3});
        assert_eq!(enc(&v), "{\"a\":3,\"\u{1F600}\":1,\"\u{FB33}\":2}");
    }

    #[test]
    fn numbers() {
        assert_eq!(enc(&json!(0)), "0");
        assert_eq!(enc(&json!(-0)), "0");
        assert_eq!(enc(&json!(9007199254740991u64)), "9007199254740991");
        assert_eq!(enc(&json!(-9007199254740991i64)), "-9007199254740991");
        assert!(matches!(
            to_canonical_json(&json!(9007199254740992u64)),
            Err(CanonicalError::OutOfRange(_))
        ));
        assert!(matches!(
            to_canonical_json(&json!(i64::MIN)),
            Err(CanonicalError::OutOfRange(_))
        ));
        assert!(matches!(
            to_canonical_json(&json!(1.5)),
            Err(CanonicalError::NotAnInteger(_))
        ));
        let parsed: Value = serde_json::from_str("1.0").unwrap();
        assert!(to_canonical_json(&parsed).is_err());
    }

    #[test]
    fn round_trips_through_serde_json() {
        let v = json!({"k": ["\u{0}", {"n": 5}], "e": ""});
        let bytes = to_canonical_json(&v).unwrap();
        let back: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(back, v);
        assert_eq!(to_canonical_json(&back).unwrap(), bytes);
    }
}
