//! The memory limiter: keeps leakwatch under a configured memory ceiling.
//!
//! A sampler reads the process's resident set size on a wall-clock tick and
//! moves the limiter between three states. Below the soft limit everything
//! is admitted. Above it, *new series* are refused (their points are reported
//! in `partial_success.rejected_data_points`) while existing series keep being
//! tracked and detected: a flood of distinct series cannot grow the state.
//! Above the hard limit, whole requests are refused with a retryable status
//! (UNAVAILABLE with RetryInfo / HTTP 503 with Retry-After) until memory
//! falls again. The probe is a trait so tests can drive the states.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// Reads the memory in use, in bytes.
pub trait MemoryProbe: Send + Sync + 'static {
    fn used_bytes(&self) -> Option<u64>;
}

/// This process's resident set size.
pub struct ProcessRss;

impl MemoryProbe for ProcessRss {
    fn used_bytes(&self) -> Option<u64> {
        crate::telemetry::own_rss_bytes()
    }
}

/// Where memory stands against the limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Pressure {
    /// Below the soft limit.
    Normal = 0,
    /// Above the soft limit: no new series.
    Soft = 1,
    /// Above the hard limit: no new requests.
    Hard = 2,
}

/// The limiter's shared state.
#[derive(Debug)]
pub struct MemoryLimiter {
    hard_bytes: u64,
    soft_bytes: u64,
    state: AtomicU8,
}

impl MemoryLimiter {
    pub fn new(hard_bytes: u64, soft_bytes: u64) -> Self {
        MemoryLimiter {
            hard_bytes,
            soft_bytes: soft_bytes.min(hard_bytes),
            state: AtomicU8::new(Pressure::Normal as u8),
        }
    }

    /// A limiter that never limits (no ceiling configured).
    pub fn unlimited() -> Self {
        Self::new(u64::MAX, u64::MAX)
    }

    pub fn pressure(&self) -> Pressure {
        match self.state.load(Ordering::Relaxed) {
            0 => Pressure::Normal,
            1 => Pressure::Soft,
            _ => Pressure::Hard,
        }
    }

    /// Updates the state from a reading; returns the new pressure.
    pub fn observe(&self, used_bytes: u64) -> Pressure {
        let p = if used_bytes >= self.hard_bytes {
            Pressure::Hard
        } else if used_bytes >= self.soft_bytes {
            Pressure::Soft
        } else {
            Pressure::Normal
        };
        let before = self.state.swap(p as u8, Ordering::Relaxed);
        if before != p as u8 {
            match p {
                Pressure::Normal => info!(used_bytes, "Memory back under the soft limit."),
                Pressure::Soft => warn!(
                    used_bytes,
                    soft_limit = self.soft_bytes,
                    "Memory above the soft limit: new series are refused."
                ),
                Pressure::Hard => warn!(
                    used_bytes,
                    limit = self.hard_bytes,
                    "Memory above the limit: requests are refused (retryable)."
                ),
            }
        }
        p
    }

    /// Whether new series may be created.
    pub fn admits_new_series(&self) -> bool {
        self.pressure() == Pressure::Normal
    }

    /// Whether requests may be accepted at all.
    pub fn admits_requests(&self) -> bool {
        self.pressure() != Pressure::Hard
    }
}

/// Samples `probe` every `every` until `shutdown`.
pub async fn run_sampler(
    limiter: Arc<MemoryLimiter>,
    probe: Arc<dyn MemoryProbe>,
    every: Duration,
    shutdown: CancellationToken,
) {
    let mut ticks = crate::periodic::Periodic::new(every, shutdown);
    while ticks.tick().await {
        if let Some(used) = probe.used_bytes() {
            limiter.observe(used);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_follow_the_limits() {
        let l = MemoryLimiter::new(1000, 800);
        assert_eq!(l.observe(100), Pressure::Normal);
        assert!(l.admits_new_series() && l.admits_requests());
        assert_eq!(l.observe(800), Pressure::Soft);
        assert!(!l.admits_new_series() && l.admits_requests());
        assert_eq!(l.observe(1000), Pressure::Hard);
        assert!(!l.admits_new_series() && !l.admits_requests());
        assert_eq!(l.observe(10), Pressure::Normal);
    }

    #[test]
    fn unlimited_never_limits() {
        let l = MemoryLimiter::unlimited();
        assert_eq!(l.observe(u64::MAX - 1), Pressure::Normal);
    }
}
