//! Negative ceremonies derived from the valid vectors: every field WebAuthn L3 constrains is
//! changed, one at a time, in every valid registration and authentication of the suite, and
//! each change must be refused for the reason the specification gives (the error code).
//! Counts per kind are printed (`cargo test -p passbind-webauthn -- --nocapture mutations`).

use crate::run_case;
use base64::Engine as _;
use ciborium::value::Value as Cbor;
use serde_json::{json, Value};
use std::collections::BTreeMap;

fn decode(s: &str) -> Vec<u8> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(s.trim_end_matches('='))
        .or_else(|_| base64::engine::general_purpose::STANDARD.decode(s))
        .expect("base64 in a vector")
}

fn encode(b: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

/// One mutation: its kind, and the error codes that name the intended reason.
type Mutation = (&'static str, &'static [&'static str], Value);

/// The case with `response.response.clientDataJSON` rewritten as JSON by `f`.
fn with_client_data(case: &Value, f: impl Fn(&mut Value)) -> Value {
    let mut case = case.clone();
    let slot = &mut case["response"]["response"]["clientDataJSON"];
    let mut c: Value = serde_json::from_slice(&decode(slot.as_str().unwrap())).unwrap();
    f(&mut c);
    *slot = json!(encode(&serde_json::to_vec(&c).unwrap()));
    case
}

fn with_bytes(case: &Value, member: &str, f: impl Fn(&mut Vec<u8>)) -> Value {
    let mut case = case.clone();
    let slot = &mut case["response"]["response"][member];
    let mut bytes = decode(slot.as_str().unwrap());
    f(&mut bytes);
    *slot = json!(encode(&bytes));
    case
}

/// The case with its attestationObject (a CBOR map) rewritten by `f`.
fn with_attestation(case: &Value, f: impl Fn(&mut Vec<(Cbor, Cbor)>)) -> Value {
    with_bytes(case, "attestationObject", |bytes| {
        let value: Cbor = ciborium::de::from_reader(bytes.as_slice()).unwrap();
        let Cbor::Map(mut entries) = value else {
            panic!("attestationObject is not a map")
        };
        f(&mut entries);
        bytes.clear();
        ciborium::ser::into_writer(&Cbor::Map(entries), &mut *bytes).unwrap();
    })
}

fn entry<'a>(entries: &'a mut [(Cbor, Cbor)], key: &str) -> &'a mut Cbor {
    entries
        .iter_mut()
        .find(|(k, _)| matches!(k, Cbor::Text(t) if t == key))
        .map(|(_, v)| v)
        .unwrap_or_else(|| panic!("no {key} in attestationObject"))
}

fn auth_data_in(entries: &mut [(Cbor, Cbor)]) -> &mut Vec<u8> {
    match entry(entries, "authData") {
        Cbor::Bytes(b) => b,
        _ => panic!("authData is not bytes"),
    }
}

/// Mutations of clientDataJSON, common to both ceremonies (L3 §7.1 steps 7-10, §7.2 10-13).
fn client_data_mutations(case: &Value, expected_type: &str) -> Vec<Mutation> {
    let other_type = if expected_type == "webauthn.get" {
        "webauthn.create"
    } else {
        "webauthn.get"
    };
    let origin = case["origins"][0].as_str().unwrap().to_owned();
    let mut out: Vec<Mutation> = vec![
        (
            "type",
            &["client_data_type_mismatch"],
            with_client_data(case, |c| c["type"] = json!(other_type)),
        ),
        (
            "challenge",
            &["challenge_mismatch"],
            with_client_data(case, |c| {
                let ch = c["challenge"].as_str().unwrap().to_owned();
                let flipped = if ch.starts_with('A') { "B" } else { "A" };
                c["challenge"] = json!(format!("{flipped}{}", &ch[1..]));
            }),
        ),
        (
            "origin: trailing slash",
            &["origin_not_allowed"],
            with_client_data(case, |c| c["origin"] = json!(format!("{origin}/"))),
        ),
        (
            "origin: another host",
            &["origin_not_allowed"],
            with_client_data(case, |c| c["origin"] = json!("https://evil.example")),
        ),
        (
            "origin: with a path",
            &["origin_not_allowed"],
            with_client_data(case, |c| c["origin"] = json!(format!("{origin}/login"))),
        ),
        (
            "crossOrigin",
            &["cross_origin_not_allowed"],
            with_client_data(case, |c| c["crossOrigin"] = json!(true)),
        ),
    ];
    out.push((
        "clientDataJSON not JSON",
        &["malformed_response"],
        with_bytes(case, "clientDataJSON", |b| b.truncate(b.len() / 2)),
    ));
    out
}

fn authentication_mutations(case: &Value) -> Vec<Mutation> {
    let mut out = client_data_mutations(case, "webauthn.get");
    let flags = decode(
        case["response"]["response"]["authenticatorData"]
            .as_str()
            .unwrap(),
    )[32];
    out.push((
        "rpIdHash",
        &["rp_id_mismatch"],
        with_bytes(case, "authenticatorData", |d| d[0] ^= 1),
    ));
    out.push((
        "flags: UP clear",
        &["user_not_present"],
        with_bytes(case, "authenticatorData", |d| d[32] &= !0x01),
    ));
    if case["options"]["require_user_verification"] == json!(true) {
        out.push((
            "flags: UV clear when required",
            &["user_verification_required"],
            with_bytes(case, "authenticatorData", |d| d[32] &= !0x04),
        ));
    }
    if flags & 0x08 == 0 {
        out.push((
            "flags: BS without BE",
            &["invalid_backup_flags"],
            with_bytes(case, "authenticatorData", |d| d[32] |= 0x10),
        ));
    }
    out.push((
        "flags: AT in an assertion",
        &["malformed_response"],
        with_bytes(case, "authenticatorData", |d| d[32] |= 0x40),
    ));
    out.push((
        "length: trailing byte",
        &["malformed_response"],
        with_bytes(case, "authenticatorData", |d| d.push(0)),
    ));
    out.push((
        "length: truncated",
        &["malformed_response"],
        with_bytes(case, "authenticatorData", |d| d.truncate(36)),
    ));
    out.push((
        "counter",
        &["bad_signature"],
        with_bytes(case, "authenticatorData", |d| d[36] ^= 1),
    ));
    out.push((
        "signature",
        &["bad_signature", "malformed_response"],
        with_bytes(case, "signature", |s| {
            let n = s.len();
            s[n - 1] ^= 1;
        }),
    ));
    let mut other = case.clone();
    let mut id = decode(case["response"]["rawId"].as_str().unwrap());
    id[0] ^= 1;
    other["response"]["rawId"] = json!(encode(&id));
    other["response"]["id"] = json!(encode(&id));
    out.push(("rawId", &["credential_id_mismatch"], other));
    out
}

fn registration_mutations(case: &Value) -> Vec<Mutation> {
    let mut out = client_data_mutations(case, "webauthn.create");
    out.push((
        "rpIdHash",
        &["rp_id_mismatch"],
        with_attestation(case, |e| auth_data_in(e)[0] ^= 1),
    ));
    out.push((
        "flags: UP clear",
        &["user_not_present"],
        with_attestation(case, |e| auth_data_in(e)[32] &= !0x01),
    ));
    out.push((
        "length: trailing byte in authData",
        &["malformed_response"],
        with_attestation(case, |e| auth_data_in(e).push(0)),
    ));
    out.push((
        "flags: AT clear",
        &["malformed_response"],
        with_attestation(case, |e| auth_data_in(e)[32] &= !0x40),
    ));
    out.push((
        "CBOR: attestationObject truncated",
        &["malformed_response"],
        with_bytes(case, "attestationObject", |b| b.truncate(b.len() - 1)),
    ));
    out.push((
        "CBOR: trailing byte after attestationObject",
        &["malformed_response"],
        with_bytes(case, "attestationObject", |b| b.push(0)),
    ));
    let fmt = {
        let bytes = decode(
            case["response"]["response"]["attestationObject"]
                .as_str()
                .unwrap(),
        );
        let value: Cbor = ciborium::de::from_reader(bytes.as_slice()).unwrap();
        match value {
            Cbor::Map(m) => m
                .into_iter()
                .find_map(|(k, v)| match (k, v) {
                    (Cbor::Text(k), Cbor::Text(v)) if k == "fmt" => Some(v),
                    _ => None,
                })
                .unwrap(),
            _ => panic!("attestationObject is not a map"),
        }
    };
    if fmt != "none" {
        out.push((
            "fmt: a statement relabelled none",
            &["attestation_invalid"],
            with_attestation(case, |e| *entry(e, "fmt") = Cbor::Text("none".into())),
        ));
        let stmt_has = |name: &str| {
            let found = std::cell::Cell::new(false);
            with_attestation(case, |e| {
                if let Cbor::Map(m) = entry(e, "attStmt") {
                    found.set(
                        m.iter()
                            .any(|(k, _)| matches!(k, Cbor::Text(t) if t == name)),
                    );
                }
            });
            found.get()
        };
        // `apple` (§8.8) defines no `alg`: a member of that name is not part of its statement.
        if stmt_has("alg") && fmt != "apple" {
            out.push((
                "attStmt: alg of another key family",
                &["attestation_invalid", "unsupported_algorithm"],
                with_attestation(case, |e| {
                    if let Cbor::Map(m) = entry(e, "attStmt") {
                        for (k, v) in m.iter_mut() {
                            if matches!(k, Cbor::Text(t) if t == "alg") {
                                let rsa = matches!(v, Cbor::Integer(i) if i128::from(*i) < -256);
                                *v = Cbor::Integer(if rsa { -7 } else { -257 }.into());
                            }
                        }
                    }
                }),
            ));
        }
        if stmt_has("sig") {
            out.push((
                "attStmt: sig missing",
                &["attestation_invalid", "malformed_response"],
                with_attestation(case, |e| {
                    if let Cbor::Map(m) = entry(e, "attStmt") {
                        m.retain(|(k, _)| !matches!(k, Cbor::Text(t) if t == "sig"));
                    }
                }),
            ));
            out.push((
                "attStmt: sig altered",
                &["attestation_invalid"],
                with_attestation(case, |e| {
                    if let Cbor::Map(m) = entry(e, "attStmt") {
                        for (k, v) in m.iter_mut() {
                            if let (Cbor::Text(t), Cbor::Bytes(b)) = (k, v) {
                                if t == "sig" {
                                    let n = b.len();
                                    b[n - 1] ^= 1;
                                }
                            }
                        }
                    }
                }),
            ));
        }
        if stmt_has("x5c") {
            // Not a flipped byte: without trust anchors nothing checks the certificate's own
            // signature, so a flip outside its key would rightly pass.
            out.push((
                "attStmt: certificate not DER",
                &[
                    "attestation_invalid",
                    "malformed_response",
                    "untrusted_attestation",
                ],
                with_attestation(case, |e| {
                    if let Cbor::Map(m) = entry(e, "attStmt") {
                        for (k, v) in m.iter_mut() {
                            if let (Cbor::Text(t), Cbor::Array(certs)) = (k, v) {
                                if t == "x5c" {
                                    if let Some(Cbor::Bytes(c)) = certs.first_mut() {
                                        c.truncate(c.len() / 2);
                                    }
                                }
                            }
                        }
                    }
                }),
            ));
        }
    } else {
        out.push((
            "attStmt: none with members",
            &["attestation_invalid"],
            with_attestation(case, |e| {
                *entry(e, "attStmt") =
                    Cbor::Map(vec![(Cbor::Text("sig".into()), Cbor::Bytes(vec![1, 2, 3]))]);
            }),
        ));
    }
    out
}

#[test]
fn mutations_of_valid_vectors_are_refused_for_their_reason() {
    let path =
        std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/vectors/suite_core.json");
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let mut counts: BTreeMap<(String, &str), (usize, usize)> = BTreeMap::new();
    let mut wrong = Vec::new();
    for case in doc["cases"].as_array().unwrap() {
        if case["expected"]["result"] != "ok" || run_case(case).is_err() {
            continue;
        }
        let ceremony = case["ceremony"].as_str().unwrap().to_owned();
        let mutations = if ceremony == "registration" {
            registration_mutations(case)
        } else {
            authentication_mutations(case)
        };
        for (kind, codes, mutated) in mutations {
            let result = std::panic::catch_unwind(|| run_case(&mutated))
                .unwrap_or_else(|_| Err("PANIC".into()));
            let slot = counts.entry((ceremony.clone(), kind)).or_default();
            slot.0 += 1;
            let code = result.as_ref().err().and_then(|e| e.split(':').next());
            match code {
                Some(c) if codes.contains(&c) => slot.1 += 1,
                _ => wrong.push(format!(
                    "{} [{kind}]: expected {codes:?}, got {result:?}",
                    case["name"].as_str().unwrap_or("?")
                )),
            }
        }
    }
    let mut total = 0;
    for ((ceremony, kind), (n, refused)) in &counts {
        println!("mutations {ceremony:<14} {kind:<45} {refused:>4} of {n:>4} refused as intended");
        total += n;
    }
    println!(
        "mutations: {total} in all, {} not refused as intended",
        wrong.len()
    );
    assert!(total > 1000, "too few mutations to mean anything: {total}");
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}
