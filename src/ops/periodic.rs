//! A wall-clock ticker that ends with the shutdown token: the loop every
//! background task (sweeps, samplers, checkpoints, derived metrics) runs.

use std::time::Duration;

use tokio::time::{Interval, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

/// Ticks every `every` until `token` is cancelled.
pub struct Periodic {
    interval: Interval,
    token: CancellationToken,
}

impl Periodic {
    /// The first tick is immediate.
    pub fn new(every: Duration, token: CancellationToken) -> Self {
        Self::with_interval(tokio::time::interval(every), token)
    }

    /// The first tick comes after one period.
    pub fn after_first_period(every: Duration, token: CancellationToken) -> Self {
        Self::with_interval(
            tokio::time::interval_at(tokio::time::Instant::now() + every, every),
            token,
        )
    }

    fn with_interval(mut interval: Interval, token: CancellationToken) -> Self {
        // A slow tick delays the next instead of bursting to catch up.
        interval.set_missed_tick_behavior(MissedTickBehavior::Delay);
        Periodic { interval, token }
    }

    /// Waits for the next tick; `false` once shutdown began.
    pub async fn tick(&mut self) -> bool {
        tokio::select! {
            biased;
            _ = self.token.cancelled() => false,
            _ = self.interval.tick() => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn ticks_until_cancelled() {
        let token = CancellationToken::new();
        let mut p = Periodic::new(Duration::from_secs(1), token.clone());
        assert!(p.tick().await);
        assert!(p.tick().await);
        token.cancel();
        assert!(!p.tick().await);
    }

    #[tokio::test(start_paused = true)]
    async fn first_tick_can_wait_a_period() {
        let start = tokio::time::Instant::now();
        let mut p = Periodic::after_first_period(Duration::from_secs(5), CancellationToken::new());
        assert!(p.tick().await);
        assert!(start.elapsed() >= Duration::from_secs(5));
    }
}
