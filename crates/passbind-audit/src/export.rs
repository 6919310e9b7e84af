//! The export format: JSON Lines (`passbind-audit/v1`).
//!
//! * Line 1: `{"kind":"header","format":"passbind-audit/v1","public_key":"ed25519:<b64url>","exported_at_ms":<int>}`.
//!   The header's `public_key` is informational: the verifier trusts only the key it is given.
//! * Then one line per event, in `seq` order: `{"kind":"event", <every AuditEvent field>}`
//!   (including `hash`).
//! * Each checkpoint as `{"kind":"checkpoint","tree_size":..,"root_hash":..,"time_ms":..,"key_id":..,"signature":..}`,
//!   placed right after the event whose `seq` equals its `tree_size` (a checkpoint of size 0
//!   right after the header; checkpoints covering events that are not in the export at the
//!   end, where the verifier will report them as truncation). Checkpoints of equal size keep
//!   their time order.
//! * Lines end in `\n` (a `\r` before it is tolerated on reading). Unknown fields, duplicate keys,
//!   blank lines and a missing or misplaced header are errors.
//!
//! The JSON of an event line is *not* required to be canonical: the verifier recomputes the
//! canonical bytes from the parsed fields.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::checkpoint::Checkpoint;
use crate::event::{parse_hash_hex, AuditEvent};
use crate::signing::encode_public_key;
use crate::strict_json;

/// The `format` of the header line.
pub const EXPORT_FORMAT: &str = "passbind-audit/v1";

/// The header line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportHeader {
    /// Always [`EXPORT_FORMAT`].
    pub format: String,
    /// The server's checkpoint key as `ed25519:<base64url>` (informational).
    pub public_key: String,
    /// When the export was written, Unix milliseconds.
    pub exported_at_ms: i64,
    /// Events accepted but not yet integrated into the log at that moment (they get their
    /// sequence numbers shortly after; see the server's audit sequencer). Absent when 0.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub pending_events: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// An event or a checkpoint line.
// Events are bigger than checkpoints; records live in a Vec either way, so boxing would only
// make the public type clumsier.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    /// An event line.
    Event(AuditEvent),
    /// A checkpoint line.
    Checkpoint(Checkpoint),
}

/// One record with its 1-based line number in the export.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportEntry {
    /// 1-based line number.
    pub line: usize,
    /// The record.
    pub record: Record,
}

/// A parsed export.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Export {
    /// Line 1.
    pub header: ExportHeader,
    /// Lines 2.., in file order.
    pub entries: Vec<ExportEntry>,
}

/// A malformed export (or, when writing, a record that does not serialise).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct ExportError {
    /// 1-based line number.
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

/// One parsed line.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Line {
    Header(ExportHeader),
    Record(Record),
}

#[derive(Serialize)]
struct Tagged<'a, T: Serialize> {
    kind: &'static str,
    #[serde(flatten)]
    inner: &'a T,
}

fn line_of<T: Serialize>(
    kind: &'static str,
    inner: &T,
    line: usize,
) -> Result<String, ExportError> {
    serde_json::to_string(&Tagged { kind, inner }).map_err(|e| ExportError {
        line,
        message: e.to_string(),
    })
}

/// Write an export. `events` are written in the order given (normally ascending `seq`); see
/// the module documentation for where checkpoints go.
pub fn write_export(
    events: &[AuditEvent],
    checkpoints: &[Checkpoint],
    public_key: &[u8; 32],
    now_ms: i64,
) -> Result<String, ExportError> {
    write_export_with_pending(events, checkpoints, public_key, now_ms, 0)
}

/// [`write_export`], saying in the header that `pending_events` events were accepted but not
/// yet integrated (the verifier reports them as pending, never as missing).
pub fn write_export_with_pending(
    events: &[AuditEvent],
    checkpoints: &[Checkpoint],
    public_key: &[u8; 32],
    now_ms: i64,
    pending_events: u64,
) -> Result<String, ExportError> {
    let mut by_size: BTreeMap<u64, Vec<&Checkpoint>> = BTreeMap::new();
    for cp in checkpoints {
        by_size.entry(cp.tree_size).or_default().push(cp);
    }
    for v in by_size.values_mut() {
        v.sort_by_key(|cp| cp.time_ms);
    }
    let header = ExportHeader {
        format: EXPORT_FORMAT.to_owned(),
        public_key: encode_public_key(public_key),
        exported_at_ms: now_ms,
        pending_events,
    };
    let mut lines: Vec<String> = Vec::with_capacity(events.len() + checkpoints.len() + 1);
    lines.push(line_of("header", &header, 1)?);
    let mut emit_checkpoints = |size: u64, lines: &mut Vec<String>| -> Result<(), ExportError> {
        for cp in by_size.remove(&size).unwrap_or_default() {
            let n = lines.len() + 1;
            lines.push(line_of("checkpoint", cp, n)?);
        }
        Ok(())
    };
    emit_checkpoints(0, &mut lines)?;
    for event in events {
        let n = lines.len() + 1;
        lines.push(line_of("event", event, n)?);
        emit_checkpoints(event.seq, &mut lines)?;
    }
    for cp in by_size.into_values().flatten() {
        let n = lines.len() + 1;
        lines.push(line_of("checkpoint", cp, n)?);
    }
    let mut out = lines.join("\n");
    out.push('\n');
    Ok(out)
}

/// Split an export into `(line number, text)`, tolerating one trailing newline and `\r\n`.
pub(crate) fn split_lines(text: &str) -> Vec<(usize, &str)> {
    let mut parts: Vec<&str> = text.split('\n').collect();
    if parts.last() == Some(&"") {
        parts.pop();
    }
    parts
        .into_iter()
        .enumerate()
        .map(|(i, l)| (i + 1, l.strip_suffix('\r').unwrap_or(l)))
        .collect()
}

/// Parse one line (no line-number context; the caller adds it).
pub(crate) fn parse_line(text: &str) -> Result<Line, String> {
    if text.trim().is_empty() {
        return Err("blank line".into());
    }
    let value = strict_json::parse(text).map_err(|e| format!("not valid JSON: {e}"))?;
    let Value::Object(mut obj) = value else {
        return Err("not a JSON object".into());
    };
    let kind = match obj.remove("kind") {
        Some(Value::String(k)) => k,
        Some(_) => return Err("\"kind\" is not a string".into()),
        None => return Err("missing \"kind\"".into()),
    };
    let rest = Value::Object(obj);
    match kind.as_str() {
        "header" => {
            let h: ExportHeader =
                serde_json::from_value(rest).map_err(|e| format!("bad header: {e}"))?;
            if h.format != EXPORT_FORMAT {
                return Err(format!(
                    "unsupported format {:?} (expected {EXPORT_FORMAT:?})",
                    h.format
                ));
            }
            Ok(Line::Header(h))
        }
        "event" => {
            let e: AuditEvent =
                serde_json::from_value(rest).map_err(|e| format!("bad event: {e}"))?;
            if e.seq == 0 {
                return Err("bad event: seq 0 (seqs are 1-based)".into());
            }
            if parse_hash_hex(&e.hash).is_none() {
                return Err("bad event: hash is not 64 lowercase hex characters".into());
            }
            if parse_hash_hex(&e.prev_hash).is_none() {
                return Err("bad event: prev_hash is not 64 lowercase hex characters".into());
            }
            e.canonical_bytes()
                .map_err(|err| format!("bad event: no canonical encoding: {err}"))?;
            Ok(Line::Record(Record::Event(e)))
        }
        "checkpoint" => {
            let c: Checkpoint =
                serde_json::from_value(rest).map_err(|e| format!("bad checkpoint: {e}"))?;
            if c.root().is_none() {
                return Err("bad checkpoint: root_hash is not 64 lowercase hex characters".into());
            }
            Ok(Line::Record(Record::Checkpoint(c)))
        }
        other => Err(format!("unknown kind {other:?}")),
    }
}

/// Parse an export; fails at the first malformed line (the verifier, by contrast, reports a
/// malformed line as a [`crate::verify::BreakKind::Malformed`] break in file order).
pub fn parse_export(text: &str) -> Result<Export, ExportError> {
    let lines = split_lines(text);
    let mut header = None;
    let mut entries = Vec::with_capacity(lines.len());
    if lines.is_empty() {
        return Err(ExportError {
            line: 1,
            message: "empty export (no header line)".into(),
        });
    }
    for (line, t) in lines {
        let parsed = parse_line(t).map_err(|message| ExportError { line, message })?;
        match (parsed, line) {
            (Line::Header(h), 1) => header = Some(h),
            (Line::Header(_), _) => {
                return Err(ExportError {
                    line,
                    message: "header line after line 1".into(),
                })
            }
            (Line::Record(_), 1) => {
                return Err(ExportError {
                    line,
                    message: "line 1 is not the header".into(),
                })
            }
            (Line::Record(record), _) => entries.push(ExportEntry { line, record }),
        }
    }
    let header = header.ok_or(ExportError {
        line: 1,
        message: "missing header".into(),
    })?;
    Ok(Export { header, entries })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use crate::checkpoint::CheckpointSigner;
    use crate::event::{Actor, ChainHead, EventDraft};
    use crate::merkle::Frontier;

    fn log(n: u64, every: u64) -> (Vec<AuditEvent>, Vec<Checkpoint>, CheckpointSigner) {
        let signer = CheckpointSigner::from_seed([3u8; 32]).unwrap();
        let mut head = ChainHead::genesis();
        let mut frontier = Frontier::new();
        let mut events = Vec::new();
        let mut cps = Vec::new();
        for i in 1..=n {
            let e = head
                .append(EventDraft::new(
                    i as i64,
                    "session.transition",
                    "success",
                    Actor::system(),
                ))
                .unwrap();
            frontier.append(e.stored_hash().unwrap());
            events.push(e);
            if i.is_multiple_of(every) {
                cps.push(signer.sign(i, &frontier.root(), i as i64));
            }
        }
        (events, cps, signer)
    }

    #[test]
    fn round_trip() {
        let (events, cps, signer) = log(7, 3);
        let text = write_export(&events, &cps, &signer.public_key(), 99).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 1 + 7 + 2);
        assert!(lines[0].starts_with(
            r#"{"kind":"header","format":"passbind-audit/v1","public_key":"ed25519:"#
        ));
        assert!(lines[1].starts_with(r#"{"kind":"event","seq":1,"#));
        assert!(lines[4].starts_with(r#"{"kind":"checkpoint","tree_size":3,"#));
        assert!(lines[8].starts_with(r#"{"kind":"checkpoint","tree_size":6,"#));
        let parsed = parse_export(&text).unwrap();
        assert_eq!(parsed.header.exported_at_ms, 99);
        assert_eq!(parsed.entries.len(), 9);
        assert_eq!(parsed.entries[3].line, 5);
        assert_eq!(parsed.entries[3].record, Record::Checkpoint(cps[0].clone()));
        assert_eq!(parsed.entries[0].record, Record::Event(events[0].clone()));
        // CRLF is tolerated
        assert_eq!(parse_export(&text.replace('\n', "\r\n")).unwrap(), parsed);
    }

    #[test]
    fn leftover_checkpoints_go_last() {
        let (events, cps, signer) = log(9, 3);
        let text = write_export(&events[..4], &cps, &signer.public_key(), 0).unwrap();
        let parsed = parse_export(&text).unwrap();
        let kinds: Vec<String> = parsed
            .entries
            .iter()
            .map(|e| match &e.record {
                Record::Event(ev) => format!("e{}", ev.seq),
                Record::Checkpoint(c) => format!("c{}", c.tree_size),
            })
            .collect();
        assert_eq!(kinds, ["e1", "e2", "e3", "c3", "e4", "c6", "c9"]);
    }

    #[test]
    fn garbage_is_a_line_numbered_error() {
        let (events, cps, signer) = log(3, 3);
        let text = write_export(&events, &cps, &signer.public_key(), 0).unwrap();
        let mut lines: Vec<String> = text.lines().map(String::from).collect();
        for (bad, what) in [
            ("", "blank"),
            ("{", "JSON"),
            ("[]", "object"),
            ("{\"kind\":1}", "kind"),
            ("{\"kind\":\"event\"}", "bad event"),
            ("{\"kind\":\"wat\"}", "unknown kind"),
            ("\u{0}\u{ffff}", "JSON"),
        ] {
            lines.insert(2, bad.to_owned());
            let err = parse_export(&lines.join("\n")).unwrap_err();
            assert_eq!(err.line, 3, "{bad:?}");
            assert!(err.message.contains(what), "{bad:?}: {}", err.message);
            lines.remove(2);
        }
        // duplicate keys, unknown fields
        let dup = lines[1].replacen("\"seq\":1,", "\"seq\":1,\"seq\":1,", 1);
        let mut l2 = lines.clone();
        l2[1] = dup;
        assert!(parse_export(&l2.join("\n"))
            .unwrap_err()
            .message
            .contains("duplicate"));
        let mut l3 = lines.clone();
        l3[1] = l3[1].replacen(
            "{\"kind\":\"event\",",
            "{\"kind\":\"event\",\"extra\":1,",
            1,
        );
        assert!(parse_export(&l3.join("\n"))
            .unwrap_err()
            .message
            .contains("unknown field"));
        // header problems
        assert_eq!(parse_export("").unwrap_err().line, 1);
        assert_eq!(parse_export(&lines[1..].join("\n")).unwrap_err().line, 1);
        let mut l4 = lines.clone();
        l4.push(lines[0].clone());
        assert_eq!(parse_export(&l4.join("\n")).unwrap_err().line, l4.len());
        let bad_format = lines[0].replace("passbind-audit/v1", "passbind-audit/v9");
        assert!(parse_export(&bad_format)
            .unwrap_err()
            .message
            .contains("unsupported format"));
    }
}
