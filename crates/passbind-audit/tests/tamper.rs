//! End-to-end tamper tests: build a log, export it, tamper with it the ways an attacker with
//! write access to the database or the export file would, and check what the offline verifier
//! reports. Also: inclusion and consistency proofs over the exported log, and identity proofs.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use passbind_audit::merkle::{
    consistency_proof, inclusion_proof, root, verify_consistency, verify_inclusion, Hash,
};
use passbind_audit::{
    identity, parse_export, sign_identity_proof, verify, verify_identity_proof, verify_text,
    verify_text_with, write_export, Actor, AuditEvent, Break, BreakKind, ChainBreak, ChainHead,
    Checkpoint, CheckpointSigner, Ed25519Signer, EventDraft, Frontier, IdentityProofClaims,
    ProofError, Record, Report, VerifyOptions,
};
use serde_json::{json, Value};

const EVENTS: u64 = 105;
const EVERY: u64 = 10;
const SEED: [u8; 32] = [0x42; 32];

struct Log {
    events: Vec<AuditEvent>,
    checkpoints: Vec<Checkpoint>,
    signer: CheckpointSigner,
}

fn draft(i: u64) -> EventDraft {
    let types = [
        (
            "session.transition",
            "success",
            Actor::new("api_key", "key_live_1"),
        ),
        (
            "webhook.received",
            "success",
            Actor::new("idv_provider", "simulator"),
        ),
        ("credential.bound", "success", Actor::system()),
        (
            "security.refused",
            "refused",
            Actor::new("api_key", "key_live_2"),
        ),
        (
            "user.erased",
            "success",
            Actor::new("operator", "ops@example.org"),
        ),
    ];
    let (t, outcome, actor) = types[(i % 5) as usize].clone();
    let mut d = EventDraft::new(1_700_000_000_000 + i as i64 * 1000, t, outcome, actor);
    d.session_id = Some(format!("ses_{}", i / 3));
    d.flow = Some(["registration", "step_up", "recovery"][(i % 3) as usize].into());
    d.user_ref = Some(format!("{:064x}", i * 7919));
    if outcome == "refused" {
        d.reason = Some("webhook_signature_invalid".into());
    }
    if i.is_multiple_of(4) {
        d.tx_hash = Some(format!("{:064x}", i));
    }
    d.details.insert("from".into(), json!("idv_pending"));
    d.details.insert("to".into(), json!("idv_passed"));
    d.details.insert("attempt".into(), json!(i % 3));
    d
}

fn build() -> Log {
    let signer = CheckpointSigner::from_seed(SEED).unwrap();
    let mut head = ChainHead::genesis();
    let mut frontier = Frontier::new();
    let mut events = Vec::new();
    let mut checkpoints = Vec::new();
    for i in 1..=EVENTS {
        let e = head.append(draft(i)).unwrap();
        frontier.append(e.stored_hash().unwrap());
        events.push(e);
        if i.is_multiple_of(EVERY) {
            checkpoints.push(signer.sign(
                i,
                &frontier.root(),
                1_700_000_000_000 + i as i64 * 1000 + 1,
            ));
        }
    }
    Log {
        events,
        checkpoints,
        signer,
    }
}

fn export(log: &Log, events: &[AuditEvent], checkpoints: &[Checkpoint]) -> String {
    write_export(
        events,
        checkpoints,
        &log.signer.public_key(),
        1_800_000_000_000,
    )
    .unwrap()
}

fn lines(text: &str) -> Vec<String> {
    text.lines().map(String::from).collect()
}

fn join(lines: &[String]) -> String {
    let mut s = lines.join("\n");
    s.push('\n');
    s
}

/// 1-based line of the event with `seq` (the first one) in an export text.
fn event_line(text: &str, seq: u64) -> usize {
    find_line(text, "event", "seq", seq)
}

/// 1-based line of the checkpoint with `tree_size`.
fn checkpoint_line(text: &str, size: u64) -> usize {
    find_line(text, "checkpoint", "tree_size", size)
}

fn find_line(text: &str, kind: &str, field: &str, n: u64) -> usize {
    text.lines()
        .position(|l| {
            let v: Value = serde_json::from_str(l).unwrap_or(Value::Null);
            v["kind"] == kind && v[field] == n
        })
        .map(|i| i + 1)
        .unwrap_or_else(|| panic!("no {kind} with {field} {n}"))
}

fn rehash(e: &mut AuditEvent) {
    e.hash = hex::encode(e.compute_hash().unwrap());
}

/// Recompute `prev_hash`/`hash` of every event from index `from` on (an attacker rewriting the
/// chain after an edit).
fn rechain(events: &mut [AuditEvent], from: usize) {
    for i in from..events.len() {
        if i > 0 {
            events[i].prev_hash = events[i - 1].hash.clone();
        }
        rehash(&mut events[i]);
    }
}

fn check(text: &str, log: &Log) -> Report {
    verify_text(text, &log.signer.public_key())
}

fn expect_break(report: &Report, kind: BreakKind, line: usize, seq: Option<u64>) -> Break {
    let b = report
        .first_break
        .clone()
        .unwrap_or_else(|| panic!("expected {kind:?} at line {line}, got no break: {report:?}"));
    eprintln!("{b:?}");
    assert_eq!(b.kind, kind, "{b}");
    assert_eq!(b.line, line, "{b}");
    assert_eq!(b.seq, seq, "{b}");
    b
}

#[test]
fn clean_export_verifies() {
    let log = build();
    let text = export(&log, &log.events, &log.checkpoints);
    assert_eq!(text.lines().count(), 1 + 105 + 10);
    let r = check(&text, &log);
    eprintln!("{r:?}");
    assert!(r.is_ok(), "{r:?}");
    assert_eq!(r.events_verified, 105);
    assert_eq!(r.checkpoints_verified, 10);
    assert_eq!(r.anchored_size, 100);
    assert_eq!(r.unanchored_tail, 5);
    // the parsed path agrees with the text path
    let parsed = parse_export(&text).unwrap();
    assert_eq!(verify(&parsed, &log.signer.public_key()), r);
}

#[test]
fn edited_event_keeping_its_hash() {
    let log = build();
    let mut events = log.events.clone();
    events[36].outcome = "failure".into(); // seq 37
    let text = export(&log, &events, &log.checkpoints);
    let r = check(&text, &log);
    expect_break(&r, BreakKind::EditedEvent, event_line(&text, 37), Some(37));
    assert_eq!(r.events_verified, 36);

    // editing the text directly (a details value) is the same
    let mut ls = lines(&export(&log, &log.events, &log.checkpoints));
    let l = event_line(&join(&ls), 12) - 1;
    ls[l] = ls[l].replace("\"to\":\"idv_passed\"", "\"to\":\"completed\"");
    let text = join(&ls);
    expect_break(&check(&text, &log), BreakKind::EditedEvent, l + 1, Some(12));
}

#[test]
fn edited_event_with_recomputed_hash_breaks_the_chain_at_the_next_event() {
    let log = build();
    let mut events = log.events.clone();
    events[36].reason = Some("covered_up".into()); // seq 37
    rehash(&mut events[36]);
    let text = export(&log, &events, &log.checkpoints);
    let b = expect_break(
        &check(&text, &log),
        BreakKind::BrokenChain(ChainBreak::Altered),
        event_line(&text, 38),
        Some(38),
    );
    assert!(b.message.contains("event 37 was altered"), "{}", b.message);
}

#[test]
fn edit_with_the_whole_chain_recomputed_is_caught_by_the_first_covering_checkpoint() {
    let log = build();
    let mut events = log.events.clone();
    assert_eq!(events[36].event_type, "credential.bound"); // seq 37
    events[36].outcome = "failure".into();
    events[36].reason = Some("attestation_invalid".into());
    rechain(&mut events, 36);
    let text = export(&log, &events, &log.checkpoints);
    let r = check(&text, &log);
    let b = expect_break(
        &r,
        BreakKind::CheckpointMismatch,
        checkpoint_line(&text, 40),
        None,
    );
    assert!(b.message.contains("events 31..=40"), "{}", b.message);
    assert_eq!(r.checkpoints_verified, 3);
    assert_eq!(r.events_verified, 40);
}

#[test]
fn deleted_events() {
    let log = build();
    // one event removed from the file
    let full = export(&log, &log.events, &log.checkpoints);
    let mut ls = lines(&full);
    ls.remove(event_line(&full, 50) - 1);
    let text = join(&ls);
    let b = expect_break(
        &check(&text, &log),
        BreakKind::BrokenChain(ChainBreak::Deleted),
        event_line(&text, 51),
        Some(51),
    );
    assert!(b.message.contains("event 50 was deleted"), "{}", b.message);

    // three events deleted in the database, then exported
    let events: Vec<AuditEvent> = log
        .events
        .iter()
        .filter(|e| !(50..=52).contains(&e.seq))
        .cloned()
        .collect();
    let text = export(&log, &events, &log.checkpoints);
    let b = expect_break(
        &check(&text, &log),
        BreakKind::BrokenChain(ChainBreak::Deleted),
        event_line(&text, 53),
        Some(53),
    );
    assert!(
        b.message.contains("events 50..=52 were deleted"),
        "{}",
        b.message
    );

    // the first event deleted
    let text = export(&log, &log.events[1..], &log.checkpoints);
    expect_break(
        &check(&text, &log),
        BreakKind::BrokenChain(ChainBreak::Deleted),
        2,
        Some(2),
    );

    // deleted and the chain rewritten (seqs renumbered, hashes and links recomputed)
    let mut events: Vec<AuditEvent> = log.events.clone();
    events.remove(49);
    for (i, e) in events.iter_mut().enumerate() {
        e.seq = i as u64 + 1;
    }
    rechain(&mut events, 49);
    let text = export(&log, &events, &log.checkpoints);
    expect_break(
        &check(&text, &log),
        BreakKind::CheckpointMismatch,
        checkpoint_line(&text, 50),
        None,
    );
}

#[test]
fn swapped_events_are_reordered() {
    let log = build();
    let full = export(&log, &log.events, &log.checkpoints);
    let mut ls = lines(&full);
    let (a, b) = (event_line(&full, 60) - 1, event_line(&full, 61) - 1);
    ls.swap(a, b);
    let text = join(&ls);
    let br = expect_break(
        &check(&text, &log),
        BreakKind::BrokenChain(ChainBreak::Reordered),
        a + 1,
        Some(61),
    );
    assert!(
        br.message.contains(&format!("at line {}", b + 1)),
        "{}",
        br.message
    );

    // an event moved far later
    let mut ls = lines(&full);
    let moved = ls.remove(event_line(&full, 20) - 1);
    ls.insert(event_line(&full, 70) - 1, moved);
    let text = join(&ls);
    expect_break(
        &check(&text, &log),
        BreakKind::BrokenChain(ChainBreak::Reordered),
        event_line(&text, 21),
        Some(21),
    );
}

#[test]
fn inserted_events() {
    let log = build();
    // a forged event that fits after event 50 (seq 51, correct link, valid hash) slipped in
    let forged = AuditEvent::seal(draft(999), 51, &log.events[49].hash).unwrap();
    let mut events = log.events.clone();
    events.insert(50, forged.clone());
    let text = export(&log, &events, &log.checkpoints);
    let first51 = event_line(&text, 51);
    let b = expect_break(
        &check(&text, &log),
        BreakKind::BrokenChain(ChainBreak::Inserted),
        first51 + 1,
        Some(51),
    );
    assert!(
        b.message.contains(&format!("first at line {first51}")),
        "{}",
        b.message
    );

    // the same, but the later events renumbered and re-hashed (not re-linked)
    let mut events = log.events.clone();
    events.insert(50, forged);
    for e in events.iter_mut().skip(51) {
        e.seq += 1;
        rehash(e);
    }
    let text = export(&log, &events, &log.checkpoints);
    let b = expect_break(
        &check(&text, &log),
        BreakKind::BrokenChain(ChainBreak::Inserted),
        event_line(&text, 52),
        Some(52),
    );
    assert!(b.message.contains("links to event seq 50"), "{}", b.message);

    // an exact duplicate of an earlier line
    let full = export(&log, &log.events, &log.checkpoints);
    let mut ls = lines(&full);
    let dup = ls[event_line(&full, 30) - 1].clone();
    let at = event_line(&full, 31) - 1;
    ls.insert(at, dup);
    let text = join(&ls);
    expect_break(
        &check(&text, &log),
        BreakKind::BrokenChain(ChainBreak::Inserted),
        at + 1,
        Some(30),
    );

    // inserted with the whole chain rewritten: the first covering checkpoint
    let mut events = log.events.clone();
    events.insert(
        50,
        AuditEvent::seal(draft(999), 51, &log.events[49].hash).unwrap(),
    );
    for (i, e) in events.iter_mut().enumerate() {
        e.seq = i as u64 + 1;
    }
    rechain(&mut events, 50);
    let text = export(&log, &events, &log.checkpoints);
    expect_break(
        &check(&text, &log),
        BreakKind::CheckpointMismatch,
        checkpoint_line(&text, 60),
        None,
    );
}

#[test]
fn truncation_below_the_last_checkpoint_is_detected() {
    let log = build();
    // events 96..=105 deleted in the database; the export still holds every checkpoint
    let text = export(&log, &log.events[..95], &log.checkpoints);
    let r = check(&text, &log);
    let b = expect_break(&r, BreakKind::Truncated, checkpoint_line(&text, 100), None);
    assert!(
        b.message.contains("events 96..=100 were removed"),
        "{}",
        b.message
    );
    assert_eq!(r.events_verified, 95);
    assert_eq!(r.checkpoints_verified, 9);

    // the event lines cut out of the file, checkpoint lines kept
    let full = export(&log, &log.events, &log.checkpoints);
    let ls: Vec<String> = lines(&full)
        .into_iter()
        .filter(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            !(v["kind"] == "event" && v["seq"].as_u64().unwrap() > 95)
        })
        .collect();
    let text = join(&ls);
    expect_break(
        &check(&text, &log),
        BreakKind::Truncated,
        checkpoint_line(&text, 100),
        None,
    );
}

/// Truncating the *unanchored tail* (events after the last checkpoint) is the case an export
/// alone cannot reveal: the verifier reports no break, only a smaller `unanchored_tail`. The
/// same holds when the attacker also removes trailing checkpoints. A witnessed checkpoint
/// (shipped off the server when it was signed) closes the gap.
#[test]
fn truncation_of_the_unanchored_tail_is_undetectable_without_a_witness() {
    let log = build();
    for (keep, tail) in [(105usize, 5u64), (102, 2), (100, 0)] {
        let text = export(&log, &log.events[..keep], &log.checkpoints);
        let r = check(&text, &log);
        eprintln!("keep {keep}: {r:?}");
        assert!(r.is_ok(), "{r:?}");
        assert_eq!(r.events_verified, keep as u64);
        assert_eq!(r.unanchored_tail, tail);
    }
    // events 81.. and checkpoints 90, 100 removed: still "clean", 80 anchored
    let text = export(&log, &log.events[..85], &log.checkpoints[..8]);
    let r = check(&text, &log);
    assert!(r.is_ok());
    assert_eq!((r.anchored_size, r.unanchored_tail), (80, 5));
    // every checkpoint removed: clean, but nothing anchored
    let text = export(&log, &log.events, &[]);
    let r = check(&text, &log);
    assert!(r.is_ok());
    assert_eq!((r.checkpoints_verified, r.unanchored_tail), (0, 105));

    // With the latest checkpoint held by a witness, the truncation is caught.
    let latest = log
        .signer
        .sign(105, &root(&leaves(&log.events)), 1_800_000_000_000);
    let opts = VerifyOptions {
        witnessed: vec![latest.clone()],
    };
    let full = export(&log, &log.events, &log.checkpoints);
    let r = verify_text_with(&full, &log.signer.public_key(), &opts);
    assert!(r.is_ok(), "{r:?}");
    assert_eq!(
        (r.witnessed_verified, r.anchored_size, r.unanchored_tail),
        (1, 105, 0)
    );
    let text = export(&log, &log.events[..100], &log.checkpoints);
    let r = verify_text_with(&text, &log.signer.public_key(), &opts);
    let b = expect_break(&r, BreakKind::Truncated, 0, None);
    assert!(b.message.contains("witnessed"), "{}", b.message);
    // and a tail rewritten under the witnessed checkpoint is a mismatch
    let mut events = log.events.clone();
    events[102].reason = Some("rewritten".into());
    rechain(&mut events, 102);
    let text = export(&log, &events, &log.checkpoints);
    assert!(check(&text, &log).is_ok());
    let r = verify_text_with(&text, &log.signer.public_key(), &opts);
    expect_break(&r, BreakKind::CheckpointMismatch, 0, None);
}

/// An attacker who holds the signing key can rewrite history and re-sign every checkpoint; the
/// export then verifies on its own. A checkpoint witnessed before the rewrite still catches it.
#[test]
fn a_rewritten_and_resigned_log_is_caught_by_an_earlier_witnessed_checkpoint() {
    let log = build();
    let witnessed = log.checkpoints[4].clone(); // size 50, shipped off the server when signed
    let mut events = log.events.clone();
    events[36].outcome = "refused".into();
    rechain(&mut events, 36);
    let mut f = Frontier::new();
    let mut resigned = Vec::new();
    for e in &events {
        f.append(e.stored_hash().unwrap());
        if e.seq.is_multiple_of(EVERY) {
            resigned.push(log.signer.sign(e.seq, &f.root(), e.time_ms + 1));
        }
    }
    let text = export(&log, &events, &resigned);
    assert!(check(&text, &log).is_ok());
    let opts = VerifyOptions {
        witnessed: vec![witnessed],
    };
    let r = verify_text_with(&text, &log.signer.public_key(), &opts);
    let b = expect_break(&r, BreakKind::CheckpointMismatch, 0, None);
    assert!(
        b.message.contains("two different histories"),
        "{}",
        b.message
    );
}

#[test]
fn forged_checkpoint_signatures() {
    let log = build();
    let full = export(&log, &log.events, &log.checkpoints);
    let l = checkpoint_line(&full, 50) - 1;
    let tamper = |f: &dyn Fn(&mut Value)| {
        let mut ls = lines(&full);
        let mut v: Value = serde_json::from_str(&ls[l]).unwrap();
        f(&mut v);
        ls[l] = v.to_string();
        join(&ls)
    };
    // flip one bit of the signature
    let text = tamper(&|v| {
        let mut sig = URL_SAFE_NO_PAD
            .decode(v["signature"].as_str().unwrap())
            .unwrap();
        sig[10] ^= 1;
        v["signature"] = json!(URL_SAFE_NO_PAD.encode(sig));
    });
    expect_break(
        &check(&text, &log),
        BreakKind::BadCheckpointSignature,
        l + 1,
        None,
    );
    // a different root, signature kept
    let text = tamper(&|v| v["root_hash"] = json!(hex::encode([7u8; 32])));
    expect_break(
        &check(&text, &log),
        BreakKind::BadCheckpointSignature,
        l + 1,
        None,
    );
    // a different size, signature kept
    let text = tamper(&|v| v["tree_size"] = json!(49));
    expect_break(
        &check(&text, &log),
        BreakKind::BadCheckpointSignature,
        l + 1,
        None,
    );
    // an undecodable signature
    let text = tamper(&|v| v["signature"] = json!("not base64!"));
    expect_break(
        &check(&text, &log),
        BreakKind::BadCheckpointSignature,
        l + 1,
        None,
    );
}

#[test]
fn checkpoints_signed_by_another_key() {
    let log = build();
    let other = CheckpointSigner::from_seed([0x66; 32]).unwrap();
    let mut cps = log.checkpoints.clone();
    let real = cps[4].clone(); // size 50
    cps[4] = other.sign(50, &real.root().unwrap(), real.time_ms);
    let text = export(&log, &log.events, &cps);
    let b = expect_break(
        &check(&text, &log),
        BreakKind::UnknownKey,
        checkpoint_line(&text, 50),
        None,
    );
    assert!(b.message.contains(other.key_id()), "{}", b.message);
    // the same, claiming the trusted key id
    cps[4].key_id = log.signer.key_id().to_owned();
    let text = export(&log, &log.events, &cps);
    expect_break(
        &check(&text, &log),
        BreakKind::BadCheckpointSignature,
        checkpoint_line(&text, 50),
        None,
    );
    // an attacker who rewrites everything and signs with their own key
    let mut events = log.events.clone();
    events[3].outcome = "failure".into();
    rechain(&mut events, 3);
    let mut f = Frontier::new();
    let mut forged = Vec::new();
    for e in &events {
        f.append(e.stored_hash().unwrap());
        if e.seq.is_multiple_of(EVERY) {
            forged.push(other.sign(e.seq, &f.root(), e.time_ms + 1));
        }
    }
    let text = write_export(&events, &forged, &other.public_key(), 0).unwrap();
    assert!(verify_text(&text, &other.public_key()).is_ok());
    expect_break(
        &check(&text, &log),
        BreakKind::UnknownKey,
        checkpoint_line(&text, 10),
        None,
    );
    // verifying a genuine export with the wrong trusted key
    let full = export(&log, &log.events, &log.checkpoints);
    let r = verify_text(&full, &other.public_key());
    expect_break(&r, BreakKind::UnknownKey, checkpoint_line(&full, 10), None);
}

#[test]
fn checkpoints_going_backwards() {
    let log = build();
    let full = export(&log, &log.events, &log.checkpoints);
    // a later checkpoint whose time is before the previous one's
    let mut cps = log.checkpoints.clone();
    cps[5] = log
        .signer
        .sign(60, &cps[5].root().unwrap(), cps[4].time_ms - 1);
    let text = export(&log, &log.events, &cps);
    expect_break(
        &check(&text, &log),
        BreakKind::CheckpointRegression,
        checkpoint_line(&text, 60),
        None,
    );
    // checkpoint lines moved after a bigger one
    let mut ls = lines(&full);
    let cp30 = ls.remove(checkpoint_line(&full, 30) - 1);
    let at = checkpoint_line(&join(&ls), 40);
    ls.insert(at, cp30);
    let text = join(&ls);
    expect_break(
        &check(&text, &log),
        BreakKind::CheckpointRegression,
        at + 1,
        None,
    );
}

#[test]
fn garbage_lines_are_malformed() {
    let log = build();
    let full = export(&log, &log.events, &log.checkpoints);
    let at = event_line(&full, 20) - 1; // 0-based index where garbage goes
    let garbage = [
        "hello".to_owned(),
        String::new(),
        "{}".to_owned(),
        "[1,2,3]".to_owned(),
        "{\"kind\":\"event\"}".to_owned(),
        "{\"kind\":\"checkpoint\",\"tree_size\":1}".to_owned(),
        lines(&full)[at][..40].to_owned(),
        lines(&full)[at].replacen("\"seq\":20,", "\"seq\":20,\"seq\":21,", 1),
        lines(&full)[at].replacen("\"seq\":20,", "\"seq\":20,\"note\":\"x\",", 1),
        lines(&full)[at].replacen("\"attempt\":2", "\"attempt\":2.5", 1),
        lines(&full)[at].replacen("\"seq\":20,", "\"seq\":-20,", 1),
        lines(&full)[0].clone(),
        "\u{feff}\u{0}\u{7f}".to_owned(),
        "{\"kind\":\"event\",\"seq\":18446744073709551616}".to_owned(),
    ];
    for g in garbage {
        let mut ls = lines(&full);
        ls.insert(at, g.clone());
        let text = join(&ls);
        let r = check(&text, &log);
        let b = expect_break(&r, BreakKind::Malformed, at + 1, None);
        assert!(!b.message.is_empty());
        assert_eq!(r.events_verified, 19, "{g:?}");
        // the strict parser agrees, with the same line number
        assert_eq!(parse_export(&text).unwrap_err().line, at + 1, "{g:?}");
    }
    // a replaced line (not inserted)
    let mut ls = lines(&full);
    ls[at] = "garbage".into();
    expect_break(&check(&join(&ls), &log), BreakKind::Malformed, at + 1, None);
    // no header
    let ls = lines(&full);
    expect_break(&check(&join(&ls[1..]), &log), BreakKind::Malformed, 1, None);
    // an edit above a garbage line is reported first
    let mut events = log.events.clone();
    events[4].outcome = "failure".into();
    let mut ls = lines(&export(&log, &events, &log.checkpoints));
    ls.insert(at, "garbage".into());
    expect_break(&check(&join(&ls), &log), BreakKind::EditedEvent, 6, Some(5));
    // random bytes never panic
    let mut x: u64 = 0x9e3779b97f4a7c15;
    for _ in 0..200 {
        let mut s = String::new();
        for _ in 0..(x % 300) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            s.push(char::from_u32((x % 0x250) as u32).unwrap_or('?'));
        }
        let _ = check(&s, &log);
        let _ = parse_export(&s);
    }
}

fn leaves(events: &[AuditEvent]) -> Vec<Hash> {
    events.iter().map(|e| e.stored_hash().unwrap()).collect()
}

#[test]
fn inclusion_proof_for_every_event_against_the_last_checkpoint() {
    let log = build();
    let text = export(&log, &log.events, &log.checkpoints);
    // work from the export, as an integrator would
    let parsed = parse_export(&text).unwrap();
    let mut hashes = Vec::new();
    let mut cps = Vec::new();
    for e in &parsed.entries {
        match &e.record {
            Record::Event(ev) => hashes.push(ev.compute_hash().unwrap()),
            Record::Checkpoint(c) => cps.push(c.clone()),
        }
    }
    let last = cps.last().unwrap();
    assert!(last.verify(&log.signer.public_key()));
    let size = last.tree_size;
    let covered = &hashes[..size as usize];
    let r = last.root().unwrap();
    for (i, leaf) in covered.iter().enumerate() {
        let proof = inclusion_proof(covered, i as u64).unwrap();
        assert!(
            verify_inclusion(leaf, i as u64, size, &proof, &r),
            "event {}",
            i + 1
        );
        // not at another position, and not for another event
        assert!(!verify_inclusion(
            leaf,
            (i as u64 + 1) % size,
            size,
            &proof,
            &r
        ));
        assert!(!verify_inclusion(
            &hashes[(i + 1) % 100],
            i as u64,
            size,
            &proof,
            &r
        ));
    }
    // events after the checkpoint have no proof against it
    assert!(inclusion_proof(covered, 100).is_err());
}

#[test]
fn consistency_proofs_between_every_pair_of_checkpoints() {
    let log = build();
    let all = leaves(&log.events);
    let mut n = 0;
    for a in &log.checkpoints {
        for b in &log.checkpoints {
            if a.tree_size > b.tree_size {
                continue;
            }
            let proof = consistency_proof(&all[..b.tree_size as usize], a.tree_size).unwrap();
            assert!(verify_consistency(
                a.tree_size,
                b.tree_size,
                &a.root().unwrap(),
                &b.root().unwrap(),
                &proof
            ));
            if a.tree_size < b.tree_size {
                // a forked history: b's root against a different old root fails
                assert!(!verify_consistency(
                    a.tree_size,
                    b.tree_size,
                    &[1u8; 32],
                    &b.root().unwrap(),
                    &proof
                ));
            }
            n += 1;
        }
    }
    assert_eq!(n, 55);
}

// ---------------------------------------------------------------------------------------------
// Identity proofs

fn claims() -> IdentityProofClaims {
    let key = [0x11u8; 32];
    let n = identity::normalise(&json!({
        "document_type": "passport",
        "issuing_country": "GBR",
        "document_number": "123456789",
        "first_name": "Jane",
        "last_name": "Doe",
        "dob": "1990-01-02"
    }))
    .unwrap();
    IdentityProofClaims {
        proof_hash: hex::encode(identity::proof_hash(&key, &n)),
        verdict: "approved".into(),
        provider: "onfido".into(),
        run_id: "wr_123".into(),
        trace_id: "tr_456".into(),
        session_id: "ses_789".into(),
        credential_id: Some("cred_abc".into()),
        issued_at_ms: 1_700_000_000_000,
    }
}

fn b64json(v: &Value) -> String {
    URL_SAFE_NO_PAD.encode(v.to_string())
}

#[test]
fn identity_proof_round_trip() {
    let signer = Ed25519Signer::from_seed(SEED).unwrap();
    let jws = sign_identity_proof(&signer, &claims()).unwrap();
    assert_eq!(jws.split('.').count(), 3);
    assert_eq!(
        verify_identity_proof(&jws, &signer.public_key()).unwrap(),
        claims()
    );
    // the checkpoint signer's key can sign proofs too
    let cs = CheckpointSigner::from_seed(SEED).unwrap();
    let jws2 = sign_identity_proof(cs.signer(), &claims()).unwrap();
    assert_eq!(jws2, jws); // Ed25519 is deterministic
                           // the proof hash proves the identity to whoever holds the data and the key, nobody else
    let n = identity::normalise(&json!({
        "type": "PASSPORT", "country": "gbr", "number": "123 456 789",
        "given_names": "  JANE ", "surname": "doe", "date_of_birth": "19900102"
    }))
    .unwrap();
    assert!(identity::proof_hash_matches(
        &[0x11u8; 32],
        &n,
        &claims().proof_hash
    ));
    assert!(!identity::proof_hash_matches(
        &[0x12u8; 32],
        &n,
        &claims().proof_hash
    ));
}

#[test]
fn identity_proof_tampered_payload_is_rejected() {
    let signer = Ed25519Signer::from_seed(SEED).unwrap();
    let jws = sign_identity_proof(&signer, &claims()).unwrap();
    let parts: Vec<&str> = jws.split('.').collect();
    let mut c = serde_json::to_value(claims()).unwrap();
    c["verdict"] = json!("declined");
    let forged = format!("{}.{}.{}", parts[0], b64json(&c), parts[2]);
    assert_eq!(
        verify_identity_proof(&forged, &signer.public_key()),
        Err(ProofError::BadSignature)
    );
    // one changed character of the payload segment
    let mut p = parts[1].to_owned().into_bytes();
    p[5] = if p[5] == b'A' { b'B' } else { b'A' };
    let forged = format!(
        "{}.{}.{}",
        parts[0],
        String::from_utf8(p).unwrap(),
        parts[2]
    );
    assert!(verify_identity_proof(&forged, &signer.public_key()).is_err());
    // a flipped signature bit
    let mut sig = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
    sig[0] ^= 1;
    let forged = format!("{}.{}.{}", parts[0], parts[1], URL_SAFE_NO_PAD.encode(sig));
    assert_eq!(
        verify_identity_proof(&forged, &signer.public_key()),
        Err(ProofError::BadSignature)
    );
    // an extra segment, padding
    assert!(matches!(
        verify_identity_proof(&format!("{jws}.x"), &signer.public_key()),
        Err(ProofError::Malformed(_))
    ));
    assert!(verify_identity_proof(&format!("{jws}="), &signer.public_key()).is_err());
}

#[test]
fn identity_proof_wrong_key_is_rejected() {
    let signer = Ed25519Signer::from_seed(SEED).unwrap();
    let other = Ed25519Signer::from_seed([0x66; 32]).unwrap();
    let jws = sign_identity_proof(&other, &claims()).unwrap();
    assert!(matches!(
        verify_identity_proof(&jws, &signer.public_key()),
        Err(ProofError::UnknownKey { .. })
    ));
    // signed by another key but claiming ours
    let parts: Vec<&str> = jws.split('.').collect();
    let header = json!({"alg":"EdDSA","typ":"passbind-identity-proof+jwt","kid":signer.key_id()});
    let input = format!("{}.{}", b64json(&header), parts[1]);
    let sig = URL_SAFE_NO_PAD.encode(other.sign_bytes(input.as_bytes()));
    assert_eq!(
        verify_identity_proof(&format!("{input}.{sig}"), &signer.public_key()),
        Err(ProofError::BadSignature)
    );
}

#[test]
fn identity_proof_alg_none_and_hs256_are_rejected() {
    let signer = Ed25519Signer::from_seed(SEED).unwrap();
    let payload = b64json(&serde_json::to_value(claims()).unwrap());
    let kid = signer.key_id();
    // alg none, empty signature
    let h = b64json(&json!({"alg":"none","typ":"passbind-identity-proof+jwt","kid":kid}));
    assert_eq!(
        verify_identity_proof(&format!("{h}.{payload}."), &signer.public_key()),
        Err(ProofError::UnsupportedAlgorithm("none".into()))
    );
    // HS256 keyed with the public key (the classic algorithm-confusion attack)
    let h = b64json(&json!({"alg":"HS256","typ":"passbind-identity-proof+jwt","kid":kid}));
    let input = format!("{h}.{payload}");
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &signer.public_key());
    let tag = ring::hmac::sign(&key, input.as_bytes());
    let jws = format!("{input}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref()));
    assert_eq!(
        verify_identity_proof(&jws, &signer.public_key()),
        Err(ProofError::UnsupportedAlgorithm("HS256".into()))
    );
    // other header tricks
    for header in [
        json!({"alg":"EdDSA","typ":"passbind-identity-proof+jwt","kid":kid,"jwk":{"kty":"OKP"}}),
        json!({"alg":"EdDSA","typ":"passbind-identity-proof+jwt","kid":kid,"crit":["exp"]}),
        json!({"alg":"EdDSA","typ":"JWT","kid":kid}),
        json!({"alg":"eddsa","typ":"passbind-identity-proof+jwt","kid":kid}),
        json!({"alg":["EdDSA"],"typ":"passbind-identity-proof+jwt","kid":kid}),
        json!({"typ":"passbind-identity-proof+jwt","kid":kid}),
    ] {
        let input = format!("{}.{payload}", b64json(&header));
        let sig = URL_SAFE_NO_PAD.encode(signer.sign_bytes(input.as_bytes()));
        let r = verify_identity_proof(&format!("{input}.{sig}"), &signer.public_key());
        assert!(r.is_err(), "{header}: {r:?}");
    }
}
