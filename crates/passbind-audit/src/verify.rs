//! The offline verifier: checks an export against a trusted public key only, trusting nothing
//! the server says, and reports the first place where the log stops being provably intact.
//!
//! # What is checked, in file order
//!
//! * Line 1 is the header (format `passbind-audit/v1`); every other line parses
//!   ([`BreakKind::Malformed`] otherwise).
//! * **Each event**: its stored `hash` equals `SHA-256(0x00 || canonical bytes)` recomputed from
//!   its fields ([`BreakKind::EditedEvent`]); its `seq` is the previous event's plus one, starting
//!   at 1, and its `prev_hash` is the previous event's hash, 64 zeros for seq 1
//!   ([`BreakKind::BrokenChain`], classified as [`ChainBreak`]).
//! * **Each checkpoint**: its key id is the trusted key's ([`BreakKind::UnknownKey`]); its
//!   Ed25519 signature verifies ([`BreakKind::BadCheckpointSignature`]); its size and time are
//!   not below the previous checkpoint's ([`BreakKind::CheckpointRegression`]); its root equals
//!   the RFC 9162 Merkle root recomputed from the hashes of events `1..=tree_size`
//!   ([`BreakKind::CheckpointMismatch`]); and those events are present
//!   ([`BreakKind::Truncated`]). A checkpoint whose events come later in the file is checked
//!   when they have been read. Because every checkpoint root is recomputed from the same
//!   verified sequence of leaves, consecutive checkpoints are necessarily consistent (the
//!   smaller tree is a prefix of the larger); no separate consistency proof is needed offline.
//! * Optionally, **witnessed checkpoints** ([`VerifyOptions::witnessed`]): checkpoints the
//!   operator or an auditor obtained outside the export (see [`Report::unanchored_tail`]),
//!   checked the same way after the whole export. A break they cause has `line` 0.
//!
//! Verification stops at the first break.

use std::collections::{HashMap, VecDeque};

use serde::Serialize;

use crate::checkpoint::{Checkpoint, CheckpointError};
use crate::event::{parse_hash_hex, AuditEvent, GENESIS_PREV_HASH};
use crate::export::{parse_line, split_lines, Export, Line, Record, EXPORT_FORMAT};
use crate::merkle::{self, Frontier, Hash};

/// How the hash chain is broken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ChainBreak {
    /// A seq gap, and the missing seqs do not appear later: events were deleted.
    Deleted,
    /// A seq gap whose missing seq appears later in the file: events are out of order.
    Reordered,
    /// A seq that was already seen (an inserted or duplicated event), or an event that links
    /// to the event *two* before it (so the one in between was inserted).
    Inserted,
    /// Seqs are contiguous but `prev_hash` is not the previous event's hash, and it is not
    /// explained by an insertion: the previous event was altered and its hash recomputed, or it
    /// was replaced by another (or this event's `prev_hash` was rewritten).
    Altered,
}

/// What kind of break.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BreakKind {
    /// A line that does not parse, a missing or misplaced header, or an event without a
    /// canonical encoding.
    Malformed,
    /// An event whose stored hash differs from the hash of its fields.
    EditedEvent,
    /// The hash chain does not link.
    BrokenChain(ChainBreak),
    /// A checkpoint signed by a key other than the trusted one.
    UnknownKey,
    /// A checkpoint (claiming the trusted key) whose signature does not verify.
    BadCheckpointSignature,
    /// A checkpoint whose tree size or time is below the previous checkpoint's.
    CheckpointRegression,
    /// A validly signed checkpoint whose root is not the Merkle root of the events it covers.
    CheckpointMismatch,
    /// A validly signed checkpoint covering more events than the export holds.
    Truncated,
}

/// The first point at which the log is not provably intact.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Break {
    /// 1-based line of the export; 0 for a witnessed checkpoint given in [`VerifyOptions`].
    pub line: usize,
    /// The event's seq, for breaks found at an event line.
    pub seq: Option<u64>,
    /// The kind.
    pub kind: BreakKind,
    /// A precise human-readable explanation.
    pub message: String,
}

impl std::fmt::Display for Break {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}: {:?}: {}", self.line, self.kind, self.message)
    }
}

/// The verifier's result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    /// Events whose hash and chain link verified (events `1..=events_verified`).
    pub events_verified: u64,
    /// Checkpoints from the export whose signature and root verified.
    pub checkpoints_verified: u64,
    /// Witnessed checkpoints (from [`VerifyOptions`]) that verified.
    pub witnessed_verified: u64,
    /// The largest tree size of a verified checkpoint (export or witnessed); 0 if none.
    pub anchored_size: u64,
    /// Verified events after the last verified checkpoint: `events_verified - anchored_size`.
    ///
    /// These events are chained, but **nothing signed commits to them**: whoever controls the
    /// server (or the export file) can drop any suffix of them, or append forged events after
    /// the last checkpoint, and the export still verifies. No offline check of one export can
    /// detect that; the number is reported so that the gap is visible. An operator closes it
    /// by (1) signing checkpoints often (by count *and* by time, see
    /// [`crate::checkpoint::CheckpointPolicy`]), so the tail is short, and (2) shipping every
    /// checkpoint, as soon as it is signed, somewhere the server cannot rewrite: a WORM/object
    /// lock bucket, a transparency witness, the integrator's own records, a ticket or e-mail.
    /// An auditor then passes the latest such checkpoint in [`VerifyOptions::witnessed`]: an
    /// export truncated below it reports [`BreakKind::Truncated`], and one rewritten under it
    /// reports [`BreakKind::CheckpointMismatch`].
    pub unanchored_tail: u64,
    /// Events the server had accepted but not yet integrated into the log when it wrote the
    /// export (from the header). They are not in the export and not covered by it: pending,
    /// not missing; the next export holds them.
    #[serde(default)]
    pub pending_events: u64,
    /// `None` when everything verified.
    pub first_break: Option<Break>,
}

impl Report {
    /// No break.
    pub fn is_ok(&self) -> bool {
        self.first_break.is_none()
    }
}

/// Options.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VerifyOptions {
    /// Checkpoints obtained independently of the export (e.g. from a witness or WORM store).
    pub witnessed: Vec<Checkpoint>,
}

/// Verify a parsed export.
pub fn verify(export: &Export, trusted_public_key: &[u8; 32]) -> Report {
    verify_with(export, trusted_public_key, &VerifyOptions::default())
}

/// Verify a parsed export, with options.
pub fn verify_with(export: &Export, trusted_public_key: &[u8; 32], opts: &VerifyOptions) -> Report {
    let header = if export.header.format == EXPORT_FORMAT {
        Ok(export.header.pending_events)
    } else {
        Err(format!("unsupported format {:?}", export.header.format))
    };
    let items: Vec<(usize, Result<&Record, String>)> = export
        .entries
        .iter()
        .map(|e| (e.line, Ok(&e.record)))
        .collect();
    run(header, &items, trusted_public_key, opts)
}

/// Verify the text of an export (JSON Lines). Malformed lines are reported as breaks in file
/// order, so an edit above a garbage line is still reported first.
pub fn verify_text(text: &str, trusted_public_key: &[u8; 32]) -> Report {
    verify_text_with(text, trusted_public_key, &VerifyOptions::default())
}

/// Verify the text of an export, with options.
pub fn verify_text_with(text: &str, trusted_public_key: &[u8; 32], opts: &VerifyOptions) -> Report {
    let lines = split_lines(text);
    let mut header = Err("empty export: no header line".to_owned());
    let mut parsed: Vec<(usize, Result<Record, String>)> = Vec::with_capacity(lines.len());
    for (line, t) in lines {
        let p = parse_line(t);
        if line == 1 {
            header = match p {
                Ok(Line::Header(h)) => Ok(h.pending_events),
                Ok(Line::Record(_)) => Err("line 1 is not the header".to_owned()),
                Err(e) => Err(format!("line 1 is not a valid header: {e}")),
            };
            continue;
        }
        parsed.push((
            line,
            match p {
                Ok(Line::Record(r)) => Ok(r),
                Ok(Line::Header(_)) => Err("a header line after line 1".to_owned()),
                Err(e) => Err(e),
            },
        ));
    }
    let items: Vec<(usize, Result<&Record, String>)> = parsed
        .iter()
        .map(|(l, r)| (*l, r.as_ref().map_err(Clone::clone)))
        .collect();
    run(header, &items, trusted_public_key, opts)
}

struct VerifiedCheckpoint {
    tree_size: u64,
    time_ms: i64,
    line: usize,
}

struct State<'k> {
    key: &'k [u8; 32],
    leaves: Vec<Hash>,
    lines: Vec<usize>,
    last_prev: Option<Hash>,
    frontier: Frontier,
    last_read_cp: Option<VerifiedCheckpoint>,
    anchored: u64,
    checkpoints_verified: u64,
    verified_sizes: Vec<u64>,
    pending: VecDeque<(usize, Checkpoint)>,
}

fn brk(line: usize, seq: Option<u64>, kind: BreakKind, message: String) -> Break {
    Break {
        line,
        seq,
        kind,
        message,
    }
}

fn short(h: &Hash) -> String {
    hex::encode(h).chars().take(16).collect::<String>() + "…"
}

fn run(
    header: Result<u64, String>,
    items: &[(usize, Result<&Record, String>)],
    key: &[u8; 32],
    opts: &VerifyOptions,
) -> Report {
    let mut st = State {
        key,
        leaves: Vec::new(),
        lines: Vec::new(),
        last_prev: None,
        frontier: Frontier::new(),
        last_read_cp: None,
        anchored: 0,
        checkpoints_verified: 0,
        verified_sizes: Vec::new(),
        pending: VecDeque::new(),
    };
    let mut witnessed_verified = 0;
    let pending_events = header.as_ref().map(|p| *p).unwrap_or(0);
    let first_break = (|| {
        header.map_err(|m| brk(1, None, BreakKind::Malformed, m))?;
        // seq -> lines where an event with that seq appears (for the look-ahead that tells a
        // reorder from a deletion).
        let mut seq_lines: HashMap<u64, Vec<usize>> = HashMap::new();
        let mut last_event_line = 0;
        for (line, item) in items {
            if let Ok(Record::Event(e)) = item {
                seq_lines.entry(e.seq).or_default().push(*line);
                last_event_line = last_event_line.max(*line);
            }
        }
        for (line, item) in items {
            let line = *line;
            match item {
                Err(m) => return Err(brk(line, None, BreakKind::Malformed, m.clone())),
                Ok(Record::Event(e)) => st.event(line, e, &seq_lines)?,
                Ok(Record::Checkpoint(c)) => st.checkpoint(line, c)?,
            }
        }
        if let Some((line, cp)) = st.pending.front() {
            let n = st.leaves.len();
            return Err(brk(
                *line,
                None,
                BreakKind::Truncated,
                format!(
                    "a validly signed checkpoint covers {} events, but the export holds only {n}: \
                     events {}..={} were removed (the log was truncated)",
                    cp.tree_size,
                    n + 1,
                    cp.tree_size
                ),
            ));
        }
        let mut witnessed: Vec<&Checkpoint> = opts.witnessed.iter().collect();
        witnessed.sort_by_key(|c| (c.tree_size, c.time_ms));
        for cp in witnessed {
            st.check_signature(0, cp)?;
            let n = st.leaves.len() as u64;
            if cp.tree_size > n {
                return Err(brk(
                    0,
                    None,
                    BreakKind::Truncated,
                    format!(
                        "a witnessed checkpoint covers {} events, but the export holds only {n}: \
                         events {}..={} were removed (the log was truncated)",
                        cp.tree_size,
                        n + 1,
                        cp.tree_size
                    ),
                ));
            }
            st.check_root(0, cp)?;
            witnessed_verified += 1;
        }
        Ok(())
    })()
    .err();
    let events_verified = st.leaves.len() as u64;
    Report {
        events_verified,
        checkpoints_verified: st.checkpoints_verified,
        witnessed_verified,
        anchored_size: st.anchored,
        unanchored_tail: events_verified.saturating_sub(st.anchored),
        pending_events,
        first_break,
    }
}

impl State<'_> {
    fn line_of_seq(&self, seq: u64) -> usize {
        usize::try_from(seq)
            .ok()
            .and_then(|s| s.checked_sub(1))
            .and_then(|i| self.lines.get(i).copied())
            .unwrap_or(0)
    }

    fn event(
        &mut self,
        line: usize,
        e: &AuditEvent,
        seq_lines: &HashMap<u64, Vec<usize>>,
    ) -> Result<(), Break> {
        let seq = Some(e.seq);
        let recomputed = e
            .compute_hash()
            .map_err(|err| brk(line, seq, BreakKind::Malformed, err.to_string()))?;
        let stored = parse_hash_hex(&e.hash).ok_or_else(|| {
            brk(
                line,
                seq,
                BreakKind::Malformed,
                "hash is not 64 lowercase hex characters".into(),
            )
        })?;
        let prev = parse_hash_hex(&e.prev_hash).ok_or_else(|| {
            brk(
                line,
                seq,
                BreakKind::Malformed,
                "prev_hash is not 64 lowercase hex characters".into(),
            )
        })?;
        if stored != recomputed {
            return Err(brk(
                line,
                seq,
                BreakKind::EditedEvent,
                format!(
                    "event seq {} was edited: its stored hash is {} but its fields hash to {}",
                    e.seq,
                    short(&stored),
                    short(&recomputed)
                ),
            ));
        }
        let last_seq = self.leaves.len() as u64;
        let expected_seq = last_seq + 1;
        let expected_prev = match self.leaves.last() {
            Some(h) => *h,
            None => parse_hash_hex(GENESIS_PREV_HASH).unwrap_or([0u8; 32]),
        };
        if e.seq > expected_seq {
            let later = seq_lines
                .get(&expected_seq)
                .and_then(|ls| ls.iter().copied().find(|l| *l > line));
            return Err(match later {
                Some(l) => brk(
                    line,
                    seq,
                    BreakKind::BrokenChain(ChainBreak::Reordered),
                    format!(
                        "expected seq {expected_seq} but found seq {}; seq {expected_seq} appears \
                         later, at line {l}: events were reordered",
                        e.seq
                    ),
                ),
                None => brk(
                    line,
                    seq,
                    BreakKind::BrokenChain(ChainBreak::Deleted),
                    if e.seq == expected_seq + 1 {
                        format!(
                            "expected seq {expected_seq} but found seq {}: event {expected_seq} \
                             was deleted",
                            e.seq
                        )
                    } else {
                        format!(
                            "expected seq {expected_seq} but found seq {}: events \
                             {expected_seq}..={} were deleted",
                            e.seq,
                            e.seq - 1
                        )
                    },
                ),
            });
        }
        if e.seq < expected_seq {
            return Err(brk(
                line,
                seq,
                BreakKind::BrokenChain(ChainBreak::Inserted),
                format!(
                    "seq {} appears again (first at line {}), where seq {expected_seq} was \
                     expected: an event was inserted or duplicated",
                    e.seq,
                    self.line_of_seq(e.seq)
                ),
            ));
        }
        if prev != expected_prev {
            let prev_line = self.line_of_seq(last_seq);
            if last_seq >= 1 && self.last_prev == Some(prev) {
                return Err(brk(
                    line,
                    seq,
                    BreakKind::BrokenChain(ChainBreak::Inserted),
                    format!(
                        "event seq {} links to event seq {}, not to the event before it \
                         (seq {last_seq}, line {prev_line}): that event was inserted",
                        e.seq,
                        last_seq - 1
                    ),
                ));
            }
            return Err(brk(
                line,
                seq,
                BreakKind::BrokenChain(ChainBreak::Altered),
                if last_seq == 0 {
                    format!(
                        "event seq 1 has prev_hash {} instead of 64 zeros: the first event was \
                         altered or replaced",
                        short(&prev)
                    )
                } else {
                    format!(
                        "event seq {} has prev_hash {} but event seq {last_seq} (line {prev_line}) \
                         hashes to {}: event {last_seq} was altered and re-hashed, or replaced",
                        e.seq,
                        short(&prev),
                        short(&expected_prev)
                    )
                },
            ));
        }
        self.leaves.push(stored);
        self.lines.push(line);
        self.last_prev = Some(prev);
        self.frontier.append(stored);
        let n = self.leaves.len() as u64;
        while let Some((cp_line, cp)) = self.pending.front() {
            if cp.tree_size != n {
                break;
            }
            let (cp_line, cp) = (*cp_line, cp.clone());
            self.pending.pop_front();
            self.check_root(cp_line, &cp)?;
        }
        Ok(())
    }

    fn check_signature(&self, line: usize, cp: &Checkpoint) -> Result<(), Break> {
        cp.check(self.key).map_err(|err| match err {
            CheckpointError::UnknownKey { found, trusted } => brk(
                line,
                None,
                BreakKind::UnknownKey,
                format!(
                    "checkpoint (tree_size {}) is signed by key {found}, not by the trusted key \
                     {trusted}",
                    cp.tree_size
                ),
            ),
            CheckpointError::BadSignature => brk(
                line,
                None,
                BreakKind::BadCheckpointSignature,
                format!(
                    "checkpoint (tree_size {}) claims the trusted key {} but its signature does \
                     not verify: forged or altered",
                    cp.tree_size, cp.key_id
                ),
            ),
            CheckpointError::BadRoot => brk(
                line,
                None,
                BreakKind::Malformed,
                "checkpoint root_hash is not 64 lowercase hex characters".into(),
            ),
        })
    }

    fn checkpoint(&mut self, line: usize, cp: &Checkpoint) -> Result<(), Break> {
        self.check_signature(line, cp)?;
        if let Some(last) = &self.last_read_cp {
            if cp.tree_size < last.tree_size || cp.time_ms < last.time_ms {
                return Err(brk(
                    line,
                    None,
                    BreakKind::CheckpointRegression,
                    format!(
                        "checkpoint (tree_size {}, time_ms {}) goes back from the previous one \
                         (line {}: tree_size {}, time_ms {}): sizes and times must not decrease",
                        cp.tree_size, cp.time_ms, last.line, last.tree_size, last.time_ms
                    ),
                ));
            }
        }
        self.last_read_cp = Some(VerifiedCheckpoint {
            tree_size: cp.tree_size,
            time_ms: cp.time_ms,
            line,
        });
        if cp.tree_size > self.leaves.len() as u64 || !self.pending.is_empty() {
            // Its events have not been read yet: check when they have (or report truncation).
            self.pending.push_back((line, cp.clone()));
            return Ok(());
        }
        self.check_root(line, cp)
    }

    fn check_root(&mut self, line: usize, cp: &Checkpoint) -> Result<(), Break> {
        let size = cp.tree_size;
        let recomputed = if size == self.frontier.size() {
            self.frontier.root()
        } else {
            let end = usize::try_from(size).unwrap_or(usize::MAX);
            merkle::root(self.leaves.get(..end).unwrap_or(&self.leaves))
        };
        if cp.root() != Some(recomputed) {
            let who = if line == 0 {
                "a witnessed checkpoint"
            } else {
                "a validly signed checkpoint"
            };
            let claimed = cp.root().map(|r| short(&r)).unwrap_or_default();
            let message = if let Some(covering) = self
                .verified_sizes
                .iter()
                .copied()
                .filter(|s| *s >= size)
                .min()
            {
                // Another checkpoint signed by the same key already vouches for these events.
                format!(
                    "{who} says events 1..={size} have Merkle root {claimed}, but the events in \
                     the export give {}, which a checkpoint of size {covering} signed by the same \
                     key also covers: two different histories were signed with this key (the \
                     log was rewritten and re-signed: is the signing key compromised?)",
                    short(&recomputed)
                )
            } else {
                let from = self
                    .verified_sizes
                    .iter()
                    .copied()
                    .filter(|s| *s < size)
                    .max()
                    .unwrap_or(0)
                    + 1;
                format!(
                    "{who} says events 1..={size} have Merkle root {claimed}, but the events in \
                     the export give {}: at least one of events {from}..={size} was altered, \
                     inserted or removed and the hash chain recomputed to hide it",
                    short(&recomputed)
                )
            };
            return Err(brk(line, None, BreakKind::CheckpointMismatch, message));
        }
        if line != 0 {
            self.checkpoints_verified += 1;
        }
        self.verified_sizes.push(size);
        self.anchored = self.anchored.max(size);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use crate::checkpoint::CheckpointSigner;
    use crate::event::{Actor, ChainHead, EventDraft};
    use crate::export::{parse_export, write_export};

    fn build(n: u64, every: u64) -> (Vec<AuditEvent>, Vec<Checkpoint>, CheckpointSigner) {
        let signer = CheckpointSigner::from_seed([9u8; 32]).unwrap();
        let mut head = ChainHead::genesis();
        let mut f = Frontier::new();
        let mut events = Vec::new();
        let mut cps = Vec::new();
        for i in 1..=n {
            let e = head
                .append(EventDraft::new(i as i64, "x.y", "success", Actor::system()))
                .unwrap();
            f.append(e.stored_hash().unwrap());
            events.push(e);
            if i.is_multiple_of(every) {
                cps.push(signer.sign(i, &f.root(), i as i64));
            }
        }
        (events, cps, signer)
    }

    #[test]
    fn clean_and_empty() {
        let (events, cps, s) = build(12, 5);
        let text = write_export(&events, &cps, &s.public_key(), 0).unwrap();
        let r = verify_text(&text, &s.public_key());
        assert!(r.is_ok(), "{r:?}");
        assert_eq!(
            (
                r.events_verified,
                r.checkpoints_verified,
                r.anchored_size,
                r.unanchored_tail
            ),
            (12, 2, 10, 2)
        );
        assert_eq!(verify(&parse_export(&text).unwrap(), &s.public_key()), r);
        let empty = write_export(&[], &[], &s.public_key(), 0).unwrap();
        assert!(verify_text(&empty, &s.public_key()).is_ok());
        let r = verify_text("", &s.public_key());
        assert_eq!(r.first_break.unwrap().kind, BreakKind::Malformed);
    }

    #[test]
    fn empty_tree_checkpoint() {
        let s = CheckpointSigner::from_seed([9u8; 32]).unwrap();
        let cp = s.sign(0, &merkle::empty_root(), 0);
        let text = write_export(&[], &[cp], &s.public_key(), 0).unwrap();
        let r = verify_text(&text, &s.public_key());
        assert!(r.is_ok(), "{r:?}");
        assert_eq!(r.checkpoints_verified, 1);
    }

    #[test]
    fn checkpoint_before_its_events_is_checked_later() {
        let (events, cps, s) = build(10, 5);
        let text = write_export(&events, &cps, &s.public_key(), 0).unwrap();
        let mut lines: Vec<&str> = text.lines().collect();
        // move the checkpoint of size 5 (line 7) to line 3
        let cp = lines.remove(6);
        lines.insert(2, cp);
        let r = verify_text(&lines.join("\n"), &s.public_key());
        assert!(r.is_ok(), "{r:?}");
        assert_eq!(r.checkpoints_verified, 2);
    }

    #[test]
    fn first_event_with_wrong_genesis_link() {
        let (events, _, s) = build(3, 100);
        let mut e1 = events[0].clone();
        e1.prev_hash = "1".repeat(64);
        e1.hash = hex::encode(e1.compute_hash().unwrap());
        let text = write_export(&[e1], &[], &s.public_key(), 0).unwrap();
        let b = verify_text(&text, &s.public_key()).first_break.unwrap();
        assert_eq!(b.kind, BreakKind::BrokenChain(ChainBreak::Altered));
        assert_eq!((b.line, b.seq), (2, Some(1)));
    }

    #[test]
    fn checkpoint_regression() {
        let (events, cps, s) = build(10, 5);
        let late = s.sign(5, &cps[0].root().unwrap(), 100);
        let text = write_export(&events, &[late, cps[1].clone()], &s.public_key(), 0).unwrap();
        let b = verify_text(&text, &s.public_key()).first_break.unwrap();
        assert_eq!(b.kind, BreakKind::CheckpointRegression);
    }
}
