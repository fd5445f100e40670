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
//!
//! Between two samples a flood of new series can allocate far more than the
//! room left under the soft limit (measured: 365,000 series, 270 MiB, within
//! one 500 ms interval, ending 16 % above a 256 MiB ceiling). So each sample
//! also sets a *budget*: the bytes left under the soft limit. Creating a
//! series or a resource charges a deliberately high estimate of its cost
//! against it ([`SERIES_CHARGE_BYTES`], [`RESOURCE_CHARGE_BYTES`]), and once
//! it is spent new series are refused until the next sample measures what
//! they really cost. Memory thus approaches the soft limit from below in a
//! few intervals instead of jumping past the ceiling.

use std::sync::atomic::{AtomicI64, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// What creating one series is charged against the budget: about 4 times
/// the ~480 B a tracked series measures (README, Performance), for the
/// allocator's slack and the request buffers of the same interval.
pub const SERIES_CHARGE_BYTES: i64 = 2048;
/// What creating one resource (process) is charged: its detector, its
/// decoded attributes, its table entry.
pub const RESOURCE_CHARGE_BYTES: i64 = 4096;
/// What a resource's chart history is charged when it is allocated (with its first memory
/// point): its one 3,776-byte allocation (`engine::history`) in jemalloc's 4 KiB size class, twice,
/// like the other charges an overestimate for the allocator's slack.
pub const HISTORY_CHARGE_BYTES: i64 = 8192;
/// What a resource's counter history (requests and collections per bucket) is charged when it
/// is allocated (with its first counter increment): its one 1,176-byte allocation
/// (`engine::history::Counters`) in jemalloc's 1,280-byte size class, twice.
pub const COUNTERS_CHARGE_BYTES: i64 = 2560;

/// Reads the memory in use, in bytes.
pub trait MemoryProbe: Send + Sync + 'static {
    fn used_bytes(&self) -> Option<u64>;
}

/// This process's resident set size.
pub struct ProcessRss;

impl MemoryProbe for ProcessRss {
    fn used_bytes(&self) -> Option<u64> {
        crate::ops::telemetry::own_rss_bytes()
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
    /// Bytes that new series and resources may still be charged until the
    /// next sample (`i64::MAX` before the first one).
    budget: AtomicI64,
}

impl MemoryLimiter {
    pub fn new(hard_bytes: u64, soft_bytes: u64) -> Self {
        MemoryLimiter {
            hard_bytes,
            soft_bytes: soft_bytes.min(hard_bytes),
            state: AtomicU8::new(Pressure::Normal as u8),
            budget: AtomicI64::new(i64::MAX),
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
        let room = match p {
            _ if self.soft_bytes == u64::MAX => i64::MAX,
            Pressure::Normal => i64::try_from(self.soft_bytes - used_bytes).unwrap_or(i64::MAX),
            Pressure::Soft | Pressure::Hard => 0,
        };
        self.budget.store(room, Ordering::Relaxed);
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

    /// Whether new series may be created: below the soft limit at the last
    /// sample, and the budget since then not spent.
    pub fn admits_new_series(&self) -> bool {
        self.pressure() == Pressure::Normal && self.budget.load(Ordering::Relaxed) > 0
    }

    /// Charges `bytes` (an estimate of what was just created) to the budget.
    pub fn charge(&self, bytes: i64) {
        self.budget.fetch_sub(bytes, Ordering::Relaxed);
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
    let mut ticks = crate::ops::periodic::Periodic::new(every, shutdown);
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
    fn new_series_stop_when_the_budget_is_spent() {
        let l = MemoryLimiter::new(100_000, 10_000);
        assert_eq!(l.observe(4_000), Pressure::Normal);
        // 6,000 bytes of room: three series at 2,048 B each spend it.
        l.charge(SERIES_CHARGE_BYTES);
        l.charge(SERIES_CHARGE_BYTES);
        assert!(l.admits_new_series());
        l.charge(SERIES_CHARGE_BYTES);
        assert!(!l.admits_new_series());
        assert!(l.admits_requests());
        assert_eq!(l.pressure(), Pressure::Normal);
        // The next sample measures what they really cost and refills the budget.
        assert_eq!(l.observe(5_000), Pressure::Normal);
        assert!(l.admits_new_series());
    }

    #[test]
    fn unlimited_never_limits() {
        let l = MemoryLimiter::unlimited();
        assert_eq!(l.observe(u64::MAX - 1), Pressure::Normal);
        l.charge(1 << 40);
        assert!(l.admits_new_series());
    }
}
