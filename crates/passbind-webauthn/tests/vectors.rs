//! The WebAuthn vector suite: every case of `tests/vectors/suite_core.json` (kept in this
//! crate; its README names each case's source and licence) is run through the adapter and
//! must agree with its `expected.result`, except the cases listed in [`KNOWN_DISAGREEMENTS`]
//! (which must keep disagreeing, so the table stays honest).
//!
//! `PASSBIND_WEBAUTHN_VECTORS=/path/to/file.json` additionally runs another file of the same
//! schema (e.g. one of the per-source files with `extended` cases). For that file, per-case
//! disagreements and a summary are printed, and only `core`-tier disagreements that are not
//! in the table fail the test: `extended` cases need RP options or library policies beyond
//! what the schema carries (see each case's `tier_reasons`), so they are reported, not
//! enforced.
//!
//! How a case is mapped onto the adapter (the "vector harness policy"):
//! * `rp_id` is the case's; when it is null (upstream did not check the RP ID) the browser
//!   default is used: the host of the first origin.
//! * `require_user_verification` (or `user_verification_policy == "Required"`) selects the
//!   UV requirement; `supported_algs` the offered algorithms (default: every algorithm the
//!   adapter supports).
//! * Trust roots: `trust_roots_pem`, `trust_roots_pem_by_fmt[fmt]`, `trust_anchors[].ca_der_b64u`
//!   and `attestation_ca_chain_der_b64` become `AttestationPolicy::trust_roots`. An empty
//!   list means "no trust roots" (statement-level verification only).
//! * Time: `validation_time` when it is an RFC 3339 instant, else `validation_time_hint.time`,
//!   else now. Registration goes through `verify_registration_at`.
//! * Attestation policy switches: `allow_unknown_tpm_manufacturer = true` (the suite's TPM
//!   cases come from the FIDO conformance tools, `id:FFFFF1D0`, and from synthetic
//!   generators, `id:00000000`, and upstream expects them to verify) and
//!   `android_key_allow_missing_authorizations = true` (the W3C android-key vector has
//!   empty authorization lists); all others default.
//! * Authentication: the stored key is `credential.public_key_cose`, the stored counter
//!   `credential.stored_sign_count`. A `CounterCheck::Regressed` outcome counts as an error
//!   (every upstream library rejects a non-increasing non-zero counter by default).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod mutations;
mod roundtrip;

use passbind_webauthn::{
    AssertionResponse, AttestationPolicy, CounterCheck, PublicKey, RelyingParty, RpConfig,
    StoredCredential, TrustRoot, UserVerification, SUPPORTED_ALGORITHMS,
};
use serde_json::Value;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

/// Cases of the core suite this adapter does not agree with, and why.
const KNOWN_DISAGREEMENTS: &[(&str, &str)] = &[];

fn b64(s: &str) -> Vec<u8> {
    use base64::Engine as _;
    let cfg = base64::engine::GeneralPurposeConfig::new()
        .with_decode_allow_trailing_bits(true)
        .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent);
    base64::engine::GeneralPurpose::new(&base64::alphabet::URL_SAFE, cfg)
        .decode(s)
        .or_else(|_| {
            base64::engine::GeneralPurpose::new(&base64::alphabet::STANDARD, cfg).decode(s)
        })
        .unwrap_or_else(|_| panic!("test vector field is not base64: {s:.40}"))
}

/// Minimal RFC 3339 parser (`YYYY-MM-DDTHH:MM:SS[.frac][Z|±HH:MM]`; no offset = UTC).
fn parse_rfc3339(s: &str) -> Option<SystemTime> {
    let b = s.as_bytes();
    let num = |r: std::ops::Range<usize>| -> Option<i64> { s.get(r)?.parse().ok() };
    if b.len() < 19 || b.get(4) != Some(&b'-') || b.get(10).map(|c| *c | 0x20) != Some(b't') {
        return None;
    }
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let mut rest = s.get(19..)?;
    if let Some(r) = rest.strip_prefix('.') {
        let digits = r.chars().take_while(|c| c.is_ascii_digit()).count();
        rest = r.get(digits..)?;
    }
    let offset = match rest {
        "" | "Z" | "z" => 0,
        r if r.len() == 6 => {
            let sign = if r.starts_with('-') { -1 } else { 1 };
            sign * (r.get(1..3)?.parse::<i64>().ok()? * 3600
                + r.get(4..6)?.parse::<i64>().ok()? * 60)
        }
        _ => return None,
    };
    // Days from civil (Howard Hinnant).
    let y2 = if mo <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let doy = (153 * (if mo > 2 { mo - 3 } else { mo + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + h * 3600 + mi * 60 + sec - offset;
    Some(SystemTime::UNIX_EPOCH + Duration::from_secs(u64::try_from(secs).ok()?))
}

fn validation_time(case: &Value) -> SystemTime {
    case.get("validation_time")
        .and_then(Value::as_str)
        .and_then(parse_rfc3339)
        .or_else(|| {
            case.pointer("/validation_time_hint/time")
                .and_then(Value::as_str)
                .and_then(parse_rfc3339)
        })
        .unwrap_or_else(SystemTime::now)
}

fn trust_roots(case: &Value) -> Vec<TrustRoot> {
    let opts = &case["options"];
    let mut roots = Vec::new();
    if let Some(list) = opts.get("trust_roots_pem").and_then(Value::as_array) {
        roots.extend(
            list.iter()
                .filter_map(Value::as_str)
                .map(|p| TrustRoot::Pem(p.into())),
        );
    }
    if let Some(by_fmt) = opts.get("trust_roots_pem_by_fmt") {
        let fmt = case
            .get("attestation_format")
            .and_then(Value::as_str)
            .unwrap_or("");
        if let Some(list) = by_fmt.get(fmt).and_then(Value::as_array) {
            roots.extend(
                list.iter()
                    .filter_map(Value::as_str)
                    .map(|p| TrustRoot::Pem(p.into())),
            );
        }
    }
    if let Some(list) = opts.get("trust_anchors").and_then(Value::as_array) {
        for a in list {
            if let Some(der) = a.get("ca_der_b64u").and_then(Value::as_str) {
                roots.push(TrustRoot::Der(b64(der)));
            }
        }
    }
    if let Some(list) = opts
        .get("attestation_ca_chain_der_b64")
        .and_then(Value::as_array)
    {
        roots.extend(
            list.iter()
                .filter_map(Value::as_str)
                .map(|d| TrustRoot::Der(b64(d))),
        );
    }
    roots
}

fn require_uv(case: &Value) -> bool {
    let opts = &case["options"];
    opts.get("require_user_verification")
        .and_then(Value::as_bool)
        .unwrap_or(false)
        || opts.get("user_verification_policy").and_then(Value::as_str) == Some("Required")
}

fn relying_party(case: &Value, trust: Vec<TrustRoot>) -> Result<RelyingParty, String> {
    let origins: Vec<String> = case["origins"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    let rp_id = match case.get("rp_id").and_then(Value::as_str) {
        Some(r) => r.to_string(),
        None => origins
            .first()
            .and_then(|o| url::Url::parse(o).ok())
            .and_then(|u| u.host_str().map(str::to_string))
            .unwrap_or_default(),
    };
    let attestation = AttestationPolicy {
        trust_roots: trust,
        allow_unknown_tpm_manufacturer: true,
        android_key_allow_missing_authorizations: true,
        ..AttestationPolicy::default()
    };
    RelyingParty::new(RpConfig {
        rp_id,
        rp_name: "vectors".into(),
        origins,
        user_verification: UserVerification::Preferred,
        attestation,
    })
    .map_err(|e| format!("config: {e}"))
}

/// Runs one case; Ok(()) means the adapter accepted it, Err(code: detail) that it rejected it.
fn run_case(case: &Value) -> Result<(), String> {
    let challenge = b64(case["challenge"].as_str().unwrap_or(""));
    match case["ceremony"].as_str() {
        Some("registration") => {
            let rp = relying_party(case, trust_roots(case))?;
            let algs: Vec<i64> = match case["options"]
                .get("supported_algs")
                .and_then(Value::as_array)
            {
                Some(a) => a.iter().filter_map(Value::as_i64).collect(),
                None => SUPPORTED_ALGORITHMS.to_vec(),
            };
            let state = rp
                .registration_challenge(&challenge, require_uv(case), &algs, &[])
                .map_err(|e| format!("{}: {e}", e.code()))?;
            rp.verify_registration_at(&state, &case["response"], validation_time(case))
                .map(|_| ())
                .map_err(|e| format!("{}: {e}", e.code()))
        }
        Some("authentication") => {
            let rp = relying_party(case, Vec::new())?;
            let cred = &case["credential"];
            let response = AssertionResponse::from_json(&case["response"])
                .map_err(|e| format!("{}: {e}", e.code()))?;
            let public_key =
                PublicKey::from_cose(&b64(cred["public_key_cose"].as_str().unwrap_or("")))
                    .map_err(|e| format!("{}: {e}", e.code()))?;
            let id = match cred.get("credential_id").and_then(Value::as_str) {
                Some(id) => b64(id),
                None => response.raw_id.clone(),
            };
            let stored = StoredCredential {
                id,
                public_key,
                sign_count: cred["stored_sign_count"].as_u64().unwrap_or(0) as u32,
            };
            let outcome = rp
                .verify_assertion(&challenge, &stored, &response, require_uv(case))
                .map_err(|e| format!("{}: {e}", e.code()))?;
            match outcome.counter {
                CounterCheck::Regressed { stored, received } => Err(format!(
                    "counter_regressed (harness policy): stored {stored}, received {received}"
                )),
                _ => Ok(()),
            }
        }
        other => Err(format!("unknown ceremony {other:?}")),
    }
}

struct Summary {
    total: usize,
    agree: usize,
    known: usize,
    unexpected: Vec<String>,
    now_agreeing: Vec<String>,
    extended_disagreements: usize,
}

/// Tier of each case by name, from `index.json` next to the vector file (the per-source
/// files do not carry the tier themselves).
fn tiers_for(path: &std::path::Path) -> std::collections::HashMap<String, (String, String)> {
    let mut out = std::collections::HashMap::new();
    let index = path.with_file_name("index.json");
    if let Ok(text) = std::fs::read_to_string(index) {
        if let Ok(doc) = serde_json::from_str::<Value>(&text) {
            for c in doc["cases"].as_array().into_iter().flatten() {
                if let (Some(n), Some(t)) = (c["name"].as_str(), c["tier"].as_str()) {
                    out.insert(
                        n.to_string(),
                        (t.to_string(), c["tier_reasons"].to_string()),
                    );
                }
            }
        }
    }
    out
}

fn run_file(path: &PathBuf, enforce_extended: bool) -> Summary {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let doc: Value = serde_json::from_str(&text).expect("vector file is JSON");
    let cases = doc["cases"].as_array().expect("cases array");
    let tiers = tiers_for(path);
    let mut s = Summary {
        total: 0,
        agree: 0,
        known: 0,
        unexpected: Vec::new(),
        now_agreeing: Vec::new(),
        extended_disagreements: 0,
    };
    let verbose = std::env::var_os("PASSBIND_VECTORS_VERBOSE").is_some();
    for case in cases {
        let name = case["name"].as_str().unwrap_or("?");
        let expected_ok = case["expected"]["result"].as_str() == Some("ok");
        // Never panic on any vector: a panic is a disagreement too.
        let result = std::panic::catch_unwind(|| run_case(case))
            .unwrap_or_else(|_| Err("PANIC".to_string()));
        let agrees = result.is_ok() == expected_ok
            && result.as_ref().err().map(|e| e != "PANIC").unwrap_or(true);
        let known = KNOWN_DISAGREEMENTS.iter().find(|(n, _)| *n == name);
        let (tier, reasons) = match case.get("tier").and_then(Value::as_str) {
            Some(t) => (t.to_string(), case["tier_reasons"].to_string()),
            None => tiers
                .get(name)
                .cloned()
                .unwrap_or_else(|| ("core".to_string(), "[]".to_string())),
        };
        let extended = tier == "extended";
        s.total += 1;
        if verbose {
            println!(
                "{} {name}: expected {}, got {}",
                if agrees { "ok  " } else { "DIFF" },
                if expected_ok { "ok" } else { "error" },
                match &result {
                    Ok(()) => "ok".to_string(),
                    Err(e) => format!("error ({e})"),
                }
            );
        }
        if agrees {
            s.agree += 1;
            if known.is_some() {
                s.now_agreeing.push(name.to_string());
            }
            continue;
        }
        let line = format!(
            "{name}: expected {}, adapter {}",
            if expected_ok { "ok" } else { "error" },
            match &result {
                Ok(()) => "ok".to_string(),
                Err(e) => format!("error: {e}"),
            }
        );
        if let Some((_, why)) = known {
            s.known += 1;
            println!("known disagreement: {line} [{why}]");
        } else if extended && !enforce_extended {
            s.extended_disagreements += 1;
            println!("extended-tier disagreement (reported only): {line} [tier_reasons {reasons}]");
        } else {
            println!("UNEXPECTED disagreement: {line}");
            s.unexpected.push(line);
        }
    }
    s
}

#[test]
fn webauthn_vector_suite() {
    let core = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/vectors/suite_core.json");
    let s = run_file(&core, true);
    println!(
        "vectors: {} cases, {} agree, {} known disagreements",
        s.total, s.agree, s.known
    );
    let mut failures = Vec::new();
    if !s.unexpected.is_empty() {
        failures.push(format!(
            "{} unexpected disagreements:\n  {}",
            s.unexpected.len(),
            s.unexpected.join("\n  ")
        ));
    }
    if !s.now_agreeing.is_empty() {
        failures.push(format!(
            "listed in KNOWN_DISAGREEMENTS but now agreeing (remove them): {:?}",
            s.now_agreeing
        ));
    }
    for (name, _) in KNOWN_DISAGREEMENTS {
        assert!(!name.is_empty(), "empty name in KNOWN_DISAGREEMENTS");
    }

    if let Some(extra) = std::env::var_os("PASSBIND_WEBAUTHN_VECTORS") {
        let path = PathBuf::from(extra);
        let e = run_file(&path, false);
        println!(
            "vectors ({}): {} cases, {} agree, {} known disagreements, {} extended-tier disagreements (reported only), {} unexpected",
            path.display(),
            e.total,
            e.agree,
            e.known,
            e.extended_disagreements,
            e.unexpected.len()
        );
        if !e.unexpected.is_empty() {
            failures.push(format!(
                "{}: {} unexpected core-tier disagreements:\n  {}",
                path.display(),
                e.unexpected.len(),
                e.unexpected.join("\n  ")
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn rfc3339_parser() {
    let t = parse_rfc3339("2025-01-30T23:59:59.000Z").unwrap();
    assert_eq!(
        t.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs(),
        1_738_281_599
    );
    let t = parse_rfc3339("2021-06-22T22:53:40+00:00").unwrap();
    assert_eq!(
        t.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs(),
        1_624_402_420
    );
    assert!(parse_rfc3339("any (upstream disables certificate time checks)").is_none());
}
