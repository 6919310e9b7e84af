//! The production implementations of the core's clock and randomness ports.

use passbind_core::model::Millis;
use passbind_core::ports::{Clock, Rng};
use ring::rand::{SecureRandom, SystemRandom};

/// The system clock.
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Millis {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
            .unwrap_or(0)
    }
}

/// The operating system's CSPRNG (through ring).
pub struct SystemRng(SystemRandom);

impl SystemRng {
    pub fn new() -> Self {
        Self(SystemRandom::new())
    }
}

impl Default for SystemRng {
    fn default() -> Self {
        Self::new()
    }
}

impl Rng for SystemRng {
    fn fill(&self, buf: &mut [u8]) {
        // The OS random source failing is not recoverable; ring only fails if getrandom does.
        if self.0.fill(buf).is_err() {
            tracing::error!("the system random source failed; aborting");
            std::process::abort();
        }
    }
}
