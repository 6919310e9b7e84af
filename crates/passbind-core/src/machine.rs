//! The session state machine, written once for every flow.
//!
//! ```text
//! created --idv_started--> idv_pending --idv_passed--> idv_passed --complete--> completed
//!                                      \--idv_failed--> idv_failed
//! created | idv_pending | idv_passed --cancel--> cancelled
//! created | idv_pending | idv_passed --expire--> expired
//! ```
//! Transitions are pure: `(state, event) -> state | error`. The store persists the result
//! with a version check, so two replicas racing on one session cannot both win.

use passbind_proto::session::{IdvFailureReason, SessionState};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    IdvStarted,
    IdvPassed,
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
            Self::IdvFailed(_) => "idv_failed",
            Self::Complete => "complete",
            Self::Cancel => "cancel",
            Self::Expire => "expire",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("event {} is not allowed in state {}", event.as_str(), from.as_str())]
pub struct TransitionError {
    pub from: SessionState,
    pub event: Event,
}

/// The one transition function.
pub fn next(from: SessionState, event: Event) -> Result<SessionState, TransitionError> {
    use Event as E;
    use SessionState as S;
    let to = match (from, event) {
        (S::Created, E::IdvStarted) => S::IdvPending,
        (S::IdvPending, E::IdvPassed) => S::IdvPassed,
        (S::IdvPending, E::IdvFailed(_)) => S::IdvFailed,
        (S::IdvPassed, E::Complete) => S::Completed,
        (S::Created | S::IdvPending | S::IdvPassed, E::Cancel) => S::Cancelled,
        (S::Created | S::IdvPending | S::IdvPassed, E::Expire) => S::Expired,
        _ => return Err(TransitionError { from, event }),
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

    const ALL_STATES: [S; 7] = [
        S::Created,
        S::IdvPending,
        S::IdvPassed,
        S::IdvFailed,
        S::Completed,
        S::Cancelled,
        S::Expired,
    ];
    const ALL_EVENTS: [Event; 6] = [
        Event::IdvStarted,
        Event::IdvPassed,
        Event::IdvFailed(IdvFailureReason::Declined),
        Event::Complete,
        Event::Cancel,
        Event::Expire,
    ];

    #[test]
    fn terminal_states_accept_no_event() {
        for s in ALL_STATES.iter().filter(|s| s.is_terminal()) {
            for e in ALL_EVENTS {
                assert!(next(*s, e).is_err(), "{s:?} accepted {e:?}");
            }
        }
    }

    #[test]
    fn completion_only_after_a_pass() {
        for s in ALL_STATES {
            let r = next(s, Event::Complete);
            assert_eq!(r.is_ok(), s == S::IdvPassed, "{s:?}");
        }
    }

    #[test]
    fn verdict_only_while_pending() {
        for s in ALL_STATES {
            assert_eq!(next(s, Event::IdvPassed).is_ok(), s == S::IdvPending);
            assert_eq!(
                next(s, Event::IdvFailed(IdvFailureReason::Error)).is_ok(),
                s == S::IdvPending
            );
        }
    }

    #[test]
    fn happy_path() {
        let mut s = S::Created;
        for e in [Event::IdvStarted, Event::IdvPassed, Event::Complete] {
            s = next(s, e).unwrap_or(S::Expired);
        }
        assert_eq!(s, S::Completed);
    }

    #[test]
    fn expiry_is_seen_before_it_is_written() {
        assert_eq!(effective_state(S::IdvPassed, 100, 99), S::IdvPassed);
        assert_eq!(effective_state(S::IdvPassed, 100, 100), S::Expired);
        assert_eq!(effective_state(S::Completed, 100, 1000), S::Completed);
    }
}
