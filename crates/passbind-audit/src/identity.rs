//! Identity proofs: "verified, hashed, and discarded" (seed 002, *How PasskeyID Works*).
//!
//! When an IDV verdict arrives, the identity result is [normalised](normalise) to a fixed,
//! canonical form, reduced to a keyed hash ([`proof_hash`]), and the hash is bound with the
//! verdict, provider, run, trace, session and (on completion) credential into a signed
//! **identity proof** ([`sign_identity_proof`]). The proof is kept; the identity data is not.
//! Anyone holding the public key can later check the proof ([`verify_identity_proof`]); someone
//! who holds the identity data *and* the hash key can show that it is the data that was
//! verified ([`proof_hash_matches`]); nobody can recover the data from the proof.
//!
//! # Normalisation rules (`passbind-identity/v1`)
//!
//! The input is a JSON object. Six fields are read, each from the first of its accepted names;
//! if two accepted names of one field are both present (not `null`) and normalise
//! differently, that is an error ([`NormaliseError::Conflict`]). Every other member is ignored.
//!
//! | field | accepted names |
//! |---|---|
//! | `document_type` | `document_type`, `doc_type`, `type` |
//! | `issuing_country` | `issuing_country`, `issuing_state`, `country` |
//! | `document_number` | `document_number`, `doc_number`, `number`, `document_numbers` (Onfido: an array of `{"type","value"}`; the entry of type `document_number`, else the first) |
//! | `given_names` | `given_names`, `given_name`, `first_names`, `first_name`, `forenames`, `forename` |
//! | `family_name` | `family_name`, `last_name`, `surname` |
//! | `date_of_birth` | `date_of_birth`, `dob`, `birth_date` |
//!
//! Text rule, applied to every value: it must be a JSON string (an integer is accepted for
//! `document_number` and written in decimal; an array of strings is accepted for
//! `given_names` and joined with one space). Split on Unicode white space
//! (`char::is_whitespace`, i.e. the `White_Space` property) and rejoin with single U+0020 spaces
//! (this trims and collapses); then map ASCII `A`-`Z` to `a`-`z`. **No Unicode normalisation
//! (NFC) and no non-ASCII case folding is applied**: neither is available without a dependency,
//! and both depend on the Unicode version; strings are otherwise kept code point for code point
//! (IDV providers emit NFC; a caller holding decomposed text should compose it first).
//! Then, per field:
//!
//! * `document_type`: spaces become `_` (`"Driving Licence"` → `driving_licence`).
//! * `issuing_country`: as is (providers give ISO 3166-1 alpha-3, e.g. `gbr`; not converted).
//! * `document_number`: spaces and `-` are removed (`"AB 123-456"` → `ab123456`).
//! * `given_names`, `family_name`: as is.
//! * `date_of_birth`: must be a valid Gregorian date in one of `YYYY-MM-DD` (optionally followed
//!   by `T` or a space and a time, which is ignored, without any time-zone shift), `YYYY/MM/DD`,
//!   `YYYYMMDD` or `DD.MM.YYYY`; written `YYYY-MM-DD`. Anything else (including the ambiguous
//!   `01/02/1990`) is an error.
//!
//! A value that is empty after this is absent. At least one field must be present.
//!
//! # Hash
//!
//! The canonical bytes are the [canonical JSON](crate::canonical) of the object with exactly
//! the six keys (absent fields as `null`), e.g.
//! `{"date_of_birth":"1990-01-02","document_number":"ab123456","document_type":"passport","family_name":"doe","given_names":"jane q","issuing_country":"gbr"}`.
//! `proof_hash = HMAC-SHA256(key, "passbind-identity-proof-hash/v1\n" || canonical bytes)`.
//! The key is a server secret (≥ 32 random bytes): without it, a proof hash cannot be tested
//! against guessed identities.
//!
//! # The identity proof: a compact JWS, written here on purpose
//!
//! `BASE64URL(header) "." BASE64URL(payload) "." BASE64URL(Ed25519 signature over the first two
//! parts as ASCII)`, base64url without padding, with the header exactly
//! `{"alg":"EdDSA","typ":"passbind-identity-proof+jwt","kid":"<key id>"}` and the payload the
//! canonical JSON of [`IdentityProofClaims`]. This is a standard JWS (RFC 7515, RFC 8037), so
//! any JOSE library can read it, but it is produced and checked by the ~100 lines below rather
//! than by a JOSE crate: there is exactly **one** algorithm, fixed by this code and never taken
//! from the token, so there is no algorithm negotiation and none of the classic JWT attacks
//! (`alg: none`, HS256 keyed with the public key, key injection through `jwk`/`jku`/`x5u`,
//! `crit` extensions) has anything to act on: the verifier rejects any header other than those
//! three members with those values before looking at the signature. A JOSE crate would add
//! algorithm tables, key formats and dependencies, and no security.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use ring::hmac;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::canonical::{to_canonical_json, write_string};
use crate::event::parse_hash_hex;
use crate::signing::{key_id, verify_signature, Ed25519Signer};
use crate::strict_json;

/// Domain-separation prefix of the proof hash.
pub const PROOF_HASH_DOMAIN: &[u8] = b"passbind-identity-proof-hash/v1\n";

/// The JWS `typ`.
pub const PROOF_TYP: &str = "passbind-identity-proof+jwt";

/// The one JWS algorithm.
pub const PROOF_ALG: &str = "EdDSA";

/// The canonical form of an IDV identity result.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Normalised {
    /// e.g. `passport`, `driving_licence`.
    pub document_type: Option<String>,
    /// e.g. `gbr`.
    pub issuing_country: Option<String>,
    /// Without spaces or dashes, lowercase ASCII.
    pub document_number: Option<String>,
    /// Given names, single-spaced.
    pub given_names: Option<String>,
    /// Family name.
    pub family_name: Option<String>,
    /// `YYYY-MM-DD`.
    pub date_of_birth: Option<String>,
}

/// Why an identity result cannot be normalised.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NormaliseError {
    /// The input is not a JSON object.
    #[error("identity result is not a JSON object")]
    NotAnObject,
    /// A field has the wrong JSON type.
    #[error("field {0} has the wrong type")]
    WrongType(&'static str),
    /// The date of birth is not a valid date in an accepted format.
    #[error("date_of_birth is not a valid date in an accepted format")]
    InvalidDate,
    /// Two accepted names of one field disagree.
    #[error("field {0} is given twice with different values")]
    Conflict(&'static str),
    /// No field present.
    #[error("identity result has none of the identity fields")]
    Empty,
}

fn text(s: &str) -> String {
    s.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .chars()
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

fn non_empty(s: String) -> Option<String> {
    (!s.is_empty()).then_some(s)
}

fn days_in_month(year: u32, month: u32) -> u32 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if (year.is_multiple_of(4) && !year.is_multiple_of(100)) || year.is_multiple_of(400) => {
            29
        }
        2 => 28,
        _ => 0,
    }
}

fn digits(s: &str) -> Option<u32> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

fn date(s: &str) -> Result<String, NormaliseError> {
    let s = s.trim();
    let part = |a: usize, b: usize| s.get(a..b).ok_or(NormaliseError::InvalidDate);
    let sep = |i: usize| s.as_bytes().get(i).copied();
    let (y, m, d) = if s.len() >= 10 && matches!((sep(4), sep(7)), (Some(b'-'), Some(b'-'))) {
        if s.len() > 10 && !matches!(sep(10), Some(b'T') | Some(b' ')) {
            return Err(NormaliseError::InvalidDate);
        }
        (part(0, 4)?, part(5, 7)?, part(8, 10)?)
    } else if s.len() == 10 && matches!((sep(4), sep(7)), (Some(b'/'), Some(b'/'))) {
        (part(0, 4)?, part(5, 7)?, part(8, 10)?)
    } else if s.len() == 10 && matches!((sep(2), sep(5)), (Some(b'.'), Some(b'.'))) {
        (part(6, 10)?, part(3, 5)?, part(0, 2)?)
    } else if s.len() == 8 {
        (part(0, 4)?, part(4, 6)?, part(6, 8)?)
    } else {
        return Err(NormaliseError::InvalidDate);
    };
    if y.len() != 4 || m.len() != 2 || d.len() != 2 {
        return Err(NormaliseError::InvalidDate);
    }
    let (year, month, day) = match (digits(y), digits(m), digits(d)) {
        (Some(y), Some(m), Some(d)) => (y, m, d),
        _ => return Err(NormaliseError::InvalidDate),
    };
    if year == 0 || day == 0 || day > days_in_month(year, month) {
        return Err(NormaliseError::InvalidDate);
    }
    Ok(format!("{year:04}-{month:02}-{day:02}"))
}

#[derive(Clone, Copy)]
enum Field {
    DocumentType,
    IssuingCountry,
    DocumentNumber,
    GivenNames,
    FamilyName,
    DateOfBirth,
}

impl Field {
    fn name(self) -> &'static str {
        match self {
            Field::DocumentType => "document_type",
            Field::IssuingCountry => "issuing_country",
            Field::DocumentNumber => "document_number",
            Field::GivenNames => "given_names",
            Field::FamilyName => "family_name",
            Field::DateOfBirth => "date_of_birth",
        }
    }

    fn aliases(self) -> &'static [&'static str] {
        match self {
            Field::DocumentType => &["document_type", "doc_type", "type"],
            Field::IssuingCountry => &["issuing_country", "issuing_state", "country"],
            Field::DocumentNumber => &[
                "document_number",
                "doc_number",
                "number",
                "document_numbers",
            ],
            Field::GivenNames => &[
                "given_names",
                "given_name",
                "first_names",
                "first_name",
                "forenames",
                "forename",
            ],
            Field::FamilyName => &["family_name", "last_name", "surname"],
            Field::DateOfBirth => &["date_of_birth", "dob", "birth_date"],
        }
    }

    fn normalise(self, alias: &str, v: &Value) -> Result<Option<String>, NormaliseError> {
        let wrong = NormaliseError::WrongType(self.name());
        let raw: String = match (self, v) {
            (_, Value::String(s)) => s.clone(),
            (Field::DocumentNumber, Value::Number(n)) if n.is_u64() || n.is_i64() => n.to_string(),
            (Field::DocumentNumber, Value::Array(items)) if alias == "document_numbers" => {
                let value_of = |item: &Value| item.get("value").cloned();
                let chosen = items
                    .iter()
                    .find(|i| i.get("type").and_then(Value::as_str) == Some("document_number"))
                    .or_else(|| items.first());
                match chosen.and_then(value_of) {
                    Some(Value::String(s)) => s,
                    Some(Value::Number(n)) if n.is_u64() || n.is_i64() => n.to_string(),
                    None | Some(Value::Null) => return Ok(None),
                    Some(_) => return Err(wrong),
                }
            }
            (Field::GivenNames, Value::Array(items)) => {
                let mut parts = Vec::with_capacity(items.len());
                for item in items {
                    parts.push(item.as_str().ok_or(wrong.clone())?);
                }
                parts.join(" ")
            }
            _ => return Err(wrong),
        };
        let t = text(&raw);
        if t.is_empty() {
            return Ok(None);
        }
        Ok(match self {
            Field::DocumentType => non_empty(t.replace(' ', "_")),
            Field::DocumentNumber => non_empty(t.replace([' ', '-'], "")),
            // parsed from the raw string: the time separator is an upper-case `T`
            Field::DateOfBirth => Some(date(&raw)?),
            Field::IssuingCountry | Field::GivenNames | Field::FamilyName => Some(t),
        })
    }

    fn read(self, obj: &Map<String, Value>) -> Result<Option<String>, NormaliseError> {
        let mut found: Option<String> = None;
        for alias in self.aliases() {
            let Some(v) = obj.get(*alias) else { continue };
            if v.is_null() {
                continue;
            }
            let Some(n) = self.normalise(alias, v)? else {
                continue;
            };
            match &found {
                Some(prev) if *prev != n => return Err(NormaliseError::Conflict(self.name())),
                Some(_) => {}
                None => found = Some(n),
            }
        }
        Ok(found)
    }
}

/// Normalise an IDV identity result (see the module documentation for the rules).
pub fn normalise(identity: &Value) -> Result<Normalised, NormaliseError> {
    let obj = identity.as_object().ok_or(NormaliseError::NotAnObject)?;
    let n = Normalised {
        document_type: Field::DocumentType.read(obj)?,
        issuing_country: Field::IssuingCountry.read(obj)?,
        document_number: Field::DocumentNumber.read(obj)?,
        given_names: Field::GivenNames.read(obj)?,
        family_name: Field::FamilyName.read(obj)?,
        date_of_birth: Field::DateOfBirth.read(obj)?,
    };
    if n == Normalised::default() {
        return Err(NormaliseError::Empty);
    }
    Ok(n)
}

impl Normalised {
    /// The canonical bytes (see the module documentation).
    pub fn canonical_bytes(&self) -> Vec<u8> {
        let fields: [(&str, &Option<String>); 6] = [
            ("date_of_birth", &self.date_of_birth),
            ("document_number", &self.document_number),
            ("document_type", &self.document_type),
            ("family_name", &self.family_name),
            ("given_names", &self.given_names),
            ("issuing_country", &self.issuing_country),
        ];
        let mut out = Vec::with_capacity(192);
        out.push(b'{');
        for (i, (k, v)) in fields.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            write_string(k, &mut out);
            out.push(b':');
            match v {
                Some(s) => write_string(s, &mut out),
                None => out.extend_from_slice(b"null"),
            }
        }
        out.push(b'}');
        out
    }
}

fn hmac_key(key: &[u8]) -> hmac::Key {
    hmac::Key::new(hmac::HMAC_SHA256, key)
}

fn hash_input(normalised: &Normalised) -> Vec<u8> {
    let mut msg = PROOF_HASH_DOMAIN.to_vec();
    msg.extend_from_slice(&normalised.canonical_bytes());
    msg
}

/// `HMAC-SHA256(key, "passbind-identity-proof-hash/v1\n" || canonical bytes)`. Use a secret
/// key of at least 32 random bytes.
pub fn proof_hash(key: &[u8], normalised: &Normalised) -> [u8; 32] {
    let tag = hmac::sign(&hmac_key(key), &hash_input(normalised));
    let mut out = [0u8; 32];
    out.copy_from_slice(tag.as_ref());
    out
}

/// Whether `proof_hash_hex` is the proof hash of `normalised` under `key` (constant time).
pub fn proof_hash_matches(key: &[u8], normalised: &Normalised, proof_hash_hex: &str) -> bool {
    match parse_hash_hex(proof_hash_hex) {
        Some(tag) => hmac::verify(&hmac_key(key), &hash_input(normalised), &tag).is_ok(),
        None => false,
    }
}

/// What an identity proof states.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdentityProofClaims {
    /// [`proof_hash`] of the normalised identity, lowercase hex.
    pub proof_hash: String,
    /// The IDV verdict (`approved`, `declined`, ...).
    pub verdict: String,
    /// The IDV provider (`simulator`, `onfido`, `witness`).
    pub provider: String,
    /// The provider's workflow run id.
    pub run_id: String,
    /// The trace id of the verification.
    pub trace_id: String,
    /// The Passbind session.
    pub session_id: String,
    /// The credential bound on completion, if any.
    pub credential_id: Option<String>,
    /// When the proof was issued, Unix milliseconds.
    pub issued_at_ms: i64,
}

/// Why an identity proof is rejected (or cannot be made).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    /// Not three base64url segments of JSON objects, or an unexpected header member.
    #[error("malformed identity proof: {0}")]
    Malformed(String),
    /// `alg` other than `EdDSA`.
    #[error("unsupported algorithm {0:?} (only EdDSA)")]
    UnsupportedAlgorithm(String),
    /// `typ` other than `passbind-identity-proof+jwt`.
    #[error("wrong token type {0:?}")]
    WrongType(String),
    /// `kid` is not the verifying key's id.
    #[error("signed by key {found:?}, not by {expected:?}")]
    UnknownKey {
        /// The token's kid.
        found: String,
        /// The verifying key's id.
        expected: String,
    },
    /// The signature does not verify.
    #[error("bad signature")]
    BadSignature,
    /// The payload is not a valid claims object.
    #[error("invalid claims: {0}")]
    InvalidClaims(String),
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn check_claims(claims: &IdentityProofClaims) -> Result<(), ProofError> {
    if parse_hash_hex(&claims.proof_hash).is_none() {
        return Err(ProofError::InvalidClaims(
            "proof_hash is not 64 lowercase hex characters".into(),
        ));
    }
    Ok(())
}

/// Sign an identity proof as a compact JWS (see the module documentation).
pub fn sign_identity_proof(
    signer: &Ed25519Signer,
    claims: &IdentityProofClaims,
) -> Result<String, ProofError> {
    check_claims(claims)?;
    let mut header = Vec::with_capacity(96);
    header.extend_from_slice(b"{\"alg\":");
    write_string(PROOF_ALG, &mut header);
    header.extend_from_slice(b",\"typ\":");
    write_string(PROOF_TYP, &mut header);
    header.extend_from_slice(b",\"kid\":");
    write_string(signer.key_id(), &mut header);
    header.push(b'}');
    let value =
        serde_json::to_value(claims).map_err(|e| ProofError::InvalidClaims(e.to_string()))?;
    let payload =
        to_canonical_json(&value).map_err(|e| ProofError::InvalidClaims(e.to_string()))?;
    let signing_input = format!("{}.{}", b64(&header), b64(&payload));
    let sig = signer.sign_bytes(signing_input.as_bytes());
    Ok(format!("{signing_input}.{}", b64(&sig)))
}

fn decode_json_object(part: &str, what: &str) -> Result<Map<String, Value>, ProofError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| ProofError::Malformed(format!("{what} is not base64url")))?;
    let text = std::str::from_utf8(&bytes)
        .map_err(|_| ProofError::Malformed(format!("{what} is not UTF-8")))?;
    match strict_json::parse(text) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(ProofError::Malformed(format!(
            "{what} is not a JSON object"
        ))),
        Err(e) => Err(ProofError::Malformed(format!("{what} is not JSON: {e}"))),
    }
}

/// Verify an identity proof against `public_key` and return its claims. Rejects, in this
/// order: anything but three base64url segments; a header that is not exactly
/// `{alg, typ, kid}` (any other member, e.g. `crit`, `jwk`, `jku`, is rejected); `alg` other
/// than `EdDSA` (so `none` and `HS256` are refused before any signature check); a wrong `typ`;
/// a `kid` that is not this key's; a bad signature; claims that are not exactly
/// [`IdentityProofClaims`].
pub fn verify_identity_proof(
    jws: &str,
    public_key: &[u8; 32],
) -> Result<IdentityProofClaims, ProofError> {
    let mut parts = jws.split('.');
    let (Some(h), Some(p), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(ProofError::Malformed(
            "a compact JWS has exactly three segments".into(),
        ));
    };
    let header = decode_json_object(h, "header")?;
    if let Some(extra) = header
        .keys()
        .find(|k| !matches!(k.as_str(), "alg" | "typ" | "kid"))
    {
        return Err(ProofError::Malformed(format!(
            "unexpected header member {extra:?}"
        )));
    }
    match header.get("alg") {
        Some(Value::String(a)) if a == PROOF_ALG => {}
        Some(Value::String(a)) => return Err(ProofError::UnsupportedAlgorithm(a.clone())),
        Some(other) => return Err(ProofError::UnsupportedAlgorithm(other.to_string())),
        None => return Err(ProofError::UnsupportedAlgorithm(String::new())),
    }
    match header.get("typ") {
        Some(Value::String(t)) if t == PROOF_TYP => {}
        other => {
            return Err(ProofError::WrongType(
                other.map(Value::to_string).unwrap_or_default(),
            ))
        }
    }
    let expected = key_id(public_key);
    match header.get("kid") {
        Some(Value::String(k)) if *k == expected => {}
        other => {
            return Err(ProofError::UnknownKey {
                found: other.map(Value::to_string).unwrap_or_default(),
                expected,
            })
        }
    }
    let sig = URL_SAFE_NO_PAD
        .decode(s)
        .map_err(|_| ProofError::Malformed("signature is not base64url".into()))?;
    let signing_input_len = h.len() + 1 + p.len();
    let signing_input = jws
        .get(..signing_input_len)
        .ok_or(ProofError::BadSignature)?;
    if !verify_signature(public_key, signing_input.as_bytes(), &sig) {
        return Err(ProofError::BadSignature);
    }
    let payload = decode_json_object(p, "payload")?;
    let claims: IdentityProofClaims = serde_json::from_value(Value::Object(payload))
        .map_err(|e| ProofError::InvalidClaims(e.to_string()))?;
    check_claims(&claims)?;
    Ok(claims)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use serde_json::json;

    fn identity() -> Value {
        json!({
            "document_type": "Passport",
            "issuing_country": " GBR ",
            "document_number": "AB 123-456",
            "first_name": "  Jane\t Q ",
            "last_name": "DOE",
            "dob": "1990-01-02",
            "address": "ignored"
        })
    }

    #[test]
    fn normalises() {
        let n = normalise(&identity()).unwrap();
        assert_eq!(
            n,
            Normalised {
                document_type: Some("passport".into()),
                issuing_country: Some("gbr".into()),
                document_number: Some("ab123456".into()),
                given_names: Some("jane q".into()),
                family_name: Some("doe".into()),
                date_of_birth: Some("1990-01-02".into()),
            }
        );
        assert_eq!(
            String::from_utf8(n.canonical_bytes()).unwrap(),
            r#"{"date_of_birth":"1990-01-02","document_number":"ab123456","document_type":"passport","family_name":"doe","given_names":"jane q","issuing_country":"gbr"}"#
        );
        // the canonical bytes are the canonical JSON of the object
        let v = serde_json::to_value(&n).unwrap();
        assert_eq!(to_canonical_json(&v).unwrap(), n.canonical_bytes());
    }

    #[test]
    fn equivalent_inputs_give_the_same_hash() {
        let key = [5u8; 32];
        let a = normalise(&identity()).unwrap();
        let b = normalise(&json!({
            "type": "PASSPORT",
            "country": "gbr",
            "document_numbers": [{"type": "personal_number", "value": "X"},
                                 {"type": "document_number", "value": "ab123456"}],
            "given_names": ["Jane", "Q"],
            "surname": "Doe",
            "date_of_birth": "1990-01-02T00:00:00Z"
        }))
        .unwrap();
        assert_eq!(a, b);
        assert_eq!(proof_hash(&key, &a), proof_hash(&key, &b));
        assert!(proof_hash_matches(
            &key,
            &a,
            &hex::encode(proof_hash(&key, &b))
        ));
        let mut c = a.clone();
        c.family_name = Some("doe-smith".into());
        assert_ne!(proof_hash(&key, &a), proof_hash(&key, &c));
        assert_ne!(proof_hash(&key, &a), proof_hash(&[6u8; 32], &a));
        assert!(!proof_hash_matches(
            &key,
            &c,
            &hex::encode(proof_hash(&key, &a))
        ));
        assert!(!proof_hash_matches(&key, &a, "zz"));
    }

    #[test]
    fn non_ascii_is_kept() {
        let n = normalise(&json!({"family_name": "  MÜLLER  Ñandú "})).unwrap();
        assert_eq!(n.family_name.as_deref(), Some("mÜller Ñandú"));
    }

    #[test]
    fn dates() {
        for (input, out) in [
            ("1990-01-02", "1990-01-02"),
            ("1990/01/02", "1990-01-02"),
            ("19900102", "1990-01-02"),
            ("02.01.1990", "1990-01-02"),
            ("2000-02-29", "2000-02-29"),
            ("1990-01-02 10:00", "1990-01-02"),
        ] {
            let n = normalise(&json!({ "dob": input })).unwrap();
            assert_eq!(n.date_of_birth.as_deref(), Some(out), "{input}");
        }
        for bad in [
            "01/02/1990",
            "1990-1-2",
            "1990-13-01",
            "1990-02-29",
            "1900-02-29",
            "0000-01-01",
            "1990-01-32",
            "1990-01-02x",
            "199001",
            "1990-01-00",
            "+990-01-02",
            "yesterday",
        ] {
            assert_eq!(
                normalise(&json!({ "dob": bad })),
                Err(NormaliseError::InvalidDate),
                "{bad}"
            );
        }
    }

    #[test]
    fn rejects() {
        assert_eq!(normalise(&json!([])), Err(NormaliseError::NotAnObject));
        assert_eq!(normalise(&json!({})), Err(NormaliseError::Empty));
        assert_eq!(
            normalise(&json!({"family_name": "  ", "dob": null})),
            Err(NormaliseError::Empty)
        );
        assert_eq!(
            normalise(&json!({"family_name": 5})),
            Err(NormaliseError::WrongType("family_name"))
        );
        assert_eq!(
            normalise(&json!({"family_name": "a", "surname": "b"})),
            Err(NormaliseError::Conflict("family_name"))
        );
        assert!(normalise(&json!({"family_name": "a", "surname": "A"})).is_ok());
        assert_eq!(
            normalise(&json!({"document_number": 12345}))
                .unwrap()
                .document_number
                .as_deref(),
            Some("12345")
        );
    }

    fn claims() -> IdentityProofClaims {
        IdentityProofClaims {
            proof_hash: hex::encode([1u8; 32]),
            verdict: "approved".into(),
            provider: "simulator".into(),
            run_id: "run_1".into(),
            trace_id: "trace_1".into(),
            session_id: "ses_1".into(),
            credential_id: None,
            issued_at_ms: 1_700_000_000_000,
        }
    }

    #[test]
    fn jws_round_trip_and_shape() {
        let s = Ed25519Signer::from_seed([4u8; 32]).unwrap();
        let jws = sign_identity_proof(&s, &claims()).unwrap();
        assert_eq!(
            verify_identity_proof(&jws, &s.public_key()).unwrap(),
            claims()
        );
        let mut parts = jws.split('.');
        let h = URL_SAFE_NO_PAD.decode(parts.next().unwrap()).unwrap();
        assert_eq!(
            String::from_utf8(h).unwrap(),
            format!(
                r#"{{"alg":"EdDSA","typ":"passbind-identity-proof+jwt","kid":"{}"}}"#,
                s.key_id()
            )
        );
        let p = URL_SAFE_NO_PAD.decode(parts.next().unwrap()).unwrap();
        assert!(String::from_utf8(p)
            .unwrap()
            .starts_with(r#"{"credential_id":null,"issued_at_ms":1700000000000,"proof_hash":""#));
        let mut with_cred = claims();
        with_cred.credential_id = Some("cred_1".into());
        let jws2 = sign_identity_proof(&s, &with_cred).unwrap();
        assert_eq!(
            verify_identity_proof(&jws2, &s.public_key()).unwrap(),
            with_cred
        );
        let mut bad = claims();
        bad.proof_hash = "xyz".into();
        assert!(matches!(
            sign_identity_proof(&s, &bad),
            Err(ProofError::InvalidClaims(_))
        ));
    }

    #[test]
    fn garbage_never_panics() {
        let s = Ed25519Signer::from_seed([4u8; 32]).unwrap();
        for g in [
            "",
            ".",
            "..",
            "...",
            "a.b.c",
            "a.b",
            "eyJ9.e30.",
            "\u{0}.\u{1}.\u{2}",
            "e30.e30.e30",
        ] {
            assert!(verify_identity_proof(g, &s.public_key()).is_err(), "{g:?}");
        }
    }
}
