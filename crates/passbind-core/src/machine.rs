//! The session state machine, written once for every flow.
//!
//! Flows with identity verification (registration, step-up, cross-platform, recovery):
//! ```text
//! created --idv_started--> idv_pending --idv_passed--> idv_passed --complete--> completed
//!                              |   \--idv_failed--> idv_failed
//!                              \--capture_declined--> capture_failed --idv_started--> idv_pending
//! any live state --cancel--> cancelled        any live state --expire--> expired
//! ```
//! Routine authentication has no identity verification:
//! ```text
//! created --complete--> completed      created --cancel/expire--> cancelled/expired
//! ```
//! Transitions are pure: `(flow, state, event) -> state | error`. The store persists the
//! result with a version check, so two replicas racing on one session cannot both win.

use passbind_proto::session::{Flow, IdvFailureReason, SessionState};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    IdvStarted,
    IdvPassed,
    /// A live capture did not match, and the flow allows another attempt.
    CaptureDeclined,
    IdvFailed(IdvFailureReason),
    Complete,
    Cancel,
    Expire,
}

impl Event {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::IdvStarted => "idv_started",
            Self::IdvPassed => "idv_passed",
            Self::CaptureDeclined => "capture_declined",
            Self::IdvFailed(_) => "idv_failed",
            Self::Complete => "complete",
            Self::Cancel => "cancel",
            Self::Expire => "expire",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("event {} is not allowed in state {} of a {} session", event.as_str(), from.as_str(), flow.as_str())]
pub struct TransitionError {
    pub flow: Flow,
    pub from: SessionState,
    pub event: Event,
}

/// Whether the flow runs an identity verification.
pub fn has_idv(flow: Flow) -> bool {
    flow != Flow::Authentication
}

/// The one transition function.
pub fn next(flow: Flow, from: SessionState, event: Event) -> Result<SessionState, TransitionError> {
    use Event as E;
    use SessionState as S;
    let live = matches!(
        from,
        S::Created | S::IdvPending | S::CaptureFailed | S::IdvPassed
    );
    let to = match (from, event) {
        (_, E::Cancel) if live => S::Cancelled,
        (_, E::Expire) if live => S::Expired,
        (S::Created, E::Complete) if !has_idv(flow) => S::Completed,
        (S::Created | S::CaptureFailed, E::IdvStarted) if has_idv(flow) => S::IdvPending,
        (S::IdvPending, E::IdvPassed) if has_idv(flow) => S::IdvPassed,
        (S::IdvPending, E::CaptureDeclined) if has_idv(flow) => S::CaptureFailed,
        (S::IdvPending, E::IdvFailed(_)) if has_idv(flow) => S::IdvFailed,
        (S::IdvPassed, E::Complete) if has_idv(flow) => S::Completed,
        _ => return Err(TransitionError { flow, from, event }),
    };
    Ok(to)
}

/// The state a reader should see: a live session past its expiry is expired, whether or not
/// the expiry has been written yet.
pub fn effective_state(stored: SessionState, expires_at: i64, now: i64) -> SessionState {
    if !stored.is_terminal() && now >= expires_at {
        SessionState::Expired
    } else {
        stored
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use SessionState as S;

    const ALL_STATES: [S; 8] = [
        S::Created,
        S::IdvPending,
        S::CaptureFailed,
        S::IdvPassed,
        S::IdvFailed,
        S::Completed,
        S::Cancelled,
        S::Expired,
    ];
    const ALL_EVENTS: [Event; 7] = [
        Event::IdvStarted,
        Event::IdvPassed,
        Event::CaptureDeclined,
        Event::IdvFailed(IdvFailureReason::Declined),
        Event::Complete,
        Event::Cancel,
        Event::Expire,
    ];
    const ALL_FLOWS: [Flow; 5] = [
        Flow::Registration,
        Flow::StepUp,
        Flow::CrossPlatform,
        Flow::Recovery,
        Flow::Authentication,
    ];

    #[test]
    fn terminal_states_accept_no_event() {
        for f in ALL_FLOWS {
            for s in ALL_STATES.iter().filter(|s| s.is_terminal()) {
                for e in ALL_EVENTS {
                    assert!(next(f, *s, e).is_err(), "{f:?} {s:?} accepted {e:?}");
                }
            }
        }
    }

    #[test]
    fn completion_only_after_a_pass_when_the_flow_verifies_identity() {
        for f in ALL_FLOWS {
            for s in ALL_STATES {
                let expected = if has_idv(f) {
                    s == S::IdvPassed
                } else {
                    s == S::Created
                };
                assert_eq!(next(f, s, Event::Complete).is_ok(), expected, "{f:?} {s:?}");
            }
        }
    }

    #[test]
    fn verdicts_only_while_pending_and_never_without_idv() {
        for f in ALL_FLOWS {
            for s in ALL_STATES {
                for e in [
                    Event::IdvPassed,
                    Event::CaptureDeclined,
                    Event::IdvFailed(IdvFailureReason::Error),
                ] {
                    assert_eq!(
                        next(f, s, e).is_ok(),
                        s == S::IdvPending && has_idv(f),
                        "{f:?} {s:?} {e:?}"
                    );
                }
                assert!(has_idv(f) || next(f, s, Event::IdvStarted).is_err());
            }
        }
    }

    #[test]
    fn a_declined_capture_can_be_retried() {
        let f = Flow::StepUp;
        let s = next(f, S::IdvPending, Event::CaptureDeclined).unwrap_or(S::Expired);
        assert_eq!(s, S::CaptureFailed);
        assert!(next(f, s, Event::Complete).is_err());
        assert_eq!(next(f, s, Event::IdvStarted).ok(), Some(S::IdvPending));
    }

    #[test]
    fn happy_paths() {
        let mut s = S::Created;
        for e in [Event::IdvStarted, Event::IdvPassed, Event::Complete] {
            s = next(Flow::Registration, s, e).unwrap_or(S::Expired);
        }
        assert_eq!(s, S::Completed);
        assert_eq!(
            next(Flow::Authentication, S::Created, Event::Complete).ok(),
            Some(S::Completed)
        );
    }

    #[test]
    fn expiry_is_seen_before_it_is_written() {
        assert_eq!(effective_state(S::IdvPassed, 100, 99), S::IdvPassed);
        assert_eq!(effective_state(S::IdvPassed, 100, 100), S::Expired);
        assert_eq!(effective_state(S::Completed, 100, 1000), S::Completed);
    }
}
