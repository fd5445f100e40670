//! A ring of fixed time buckets: the only history a series keeps.
//!
//! The long window is cut into [`BUCKETS`] buckets of equal width, aligned to absolute event
//! time (`bucket = t_ns / width_ns`), so all series of one process share boundaries and can be
//! combined bucket by bucket (memory per request, GC rate against the heap). Each bucket holds
//! two `f32` summaries and a 2-bit saturating count, stored column-wise (no padding) to keep a
//! ring at 272 bytes, most of a series' state:
//! - gauges (memory): the minimum and maximum. The minimum of a bucket that spans several GC
//!   cycles is the post-GC floor; the maximum gives the sawtooth's peaks (GC efficiency).
//! - counters (GC runs, requests): the summed increments and the seconds they cover, whose ratio
//!   is the bucket's rate.
//!
//! `f32` keeps ~7 significant digits: 16-byte resolution at 200 MB, ample for trends measured in
//! hundreds of KB per hour; all fitting is done in `f64`. The newest bucket is still filling and
//! is never used in a fit, so fits are repeatable whatever the arrival pattern inside a bucket.
//!
//! The count saturates at [`MAX_COUNT`] = 3: every reader asks only whether a bucket has data
//! (`> 0`) or at least two values (`>= 2`, the sawtooth's amplitude), which a count saturating
//! at 3 answers exactly as one saturating at 255 did, in 8 bytes for the ring instead of 32.

/// Buckets per long window.
pub const BUCKETS: usize = 32;

/// Where a bucket's count saturates (2 bits per bucket).
pub const MAX_COUNT: u8 = 3;

/// A ring of [`BUCKETS`] buckets; `head` is the absolute index of the newest.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Ring {
    a: [f32; BUCKETS],
    b: [f32; BUCKETS],
    /// Count of bucket `s` in bits `2s..2s+2`, saturating at [`MAX_COUNT`].
    n: u64,
    head: u64,
}

// The counts of all buckets fit in `n`.
const _: () = assert!(2 * BUCKETS <= u64::BITS as usize);

fn slot(idx: u64) -> usize {
    (idx % BUCKETS as u64) as usize
}

impl Ring {
    fn n(&self, s: usize) -> u8 {
        ((self.n >> (2 * s)) & u64::from(MAX_COUNT)) as u8
    }

    fn clear_n(&mut self, s: usize) {
        self.n &= !(u64::from(MAX_COUNT) << (2 * s));
    }

    fn bump_n(&mut self, s: usize) {
        if self.n(s) < MAX_COUNT {
            self.n += 1 << (2 * s);
        }
    }
}

impl Ring {
    /// Reads what recording a point in the head bucket reads (its two
    /// values and the counts), so a caller can load the cache lines ahead of
    /// time. The sum means nothing.
    pub fn touch(&self) -> f32 {
        let s = slot(self.head);
        self.a[s] + self.b[s] + self.n as f32
    }

    /// Absolute index of the newest bucket.
    pub fn head(&self) -> u64 {
        self.head
    }

    /// Forgets everything and makes `idx` the (empty) newest bucket.
    pub fn reset(&mut self, idx: u64) {
        *self = Ring {
            head: idx,
            ..Ring::default()
        };
    }

    /// Moves the head forward to `idx`, emptying the buckets skipped over. Never moves back.
    pub fn advance(&mut self, idx: u64) {
        if idx <= self.head {
            return;
        }
        let steps = (idx - self.head).min(BUCKETS as u64);
        for k in 0..steps {
            let s = slot(idx - k);
            self.a[s] = 0.0;
            self.b[s] = 0.0;
            self.clear_n(s);
        }
        self.head = idx;
    }

    /// Empties the newest bucket (its contents belonged to a finished segment).
    pub fn clear_head(&mut self) {
        let s = slot(self.head);
        self.a[s] = 0.0;
        self.b[s] = 0.0;
        self.clear_n(s);
    }

    /// Whether `idx` is still held by the ring.
    pub fn holds(&self, idx: u64) -> bool {
        idx <= self.head && self.head - idx < BUCKETS as u64
    }

    /// Number of values recorded in bucket `idx` (saturates at [`MAX_COUNT`]).
    pub fn count(&self, idx: u64) -> u8 {
        if self.holds(idx) {
            self.n(slot(idx))
        } else {
            0
        }
    }

    /// Records a gauge value in the head bucket (min/max).
    pub fn record_level(&mut self, v: f32) {
        let s = slot(self.head);
        if self.n(s) == 0 {
            self.a[s] = v;
            self.b[s] = v;
        } else {
            self.a[s] = self.a[s].min(v);
            self.b[s] = self.b[s].max(v);
        }
        self.bump_n(s);
    }

    /// Records a counter increment covering `secs` seconds in the head bucket.
    pub fn record_increment(&mut self, inc: f32, secs: f32) {
        let s = slot(self.head);
        self.a[s] += inc;
        self.b[s] += secs;
        self.bump_n(s);
    }

    /// Minimum gauge value of bucket `idx`, if it has data.
    pub fn min(&self, idx: u64) -> Option<f64> {
        (self.count(idx) > 0).then(|| f64::from(self.a[slot(idx)]))
    }

    /// Maximum gauge value of bucket `idx`, if it has data.
    pub fn max(&self, idx: u64) -> Option<f64> {
        (self.count(idx) > 0).then(|| f64::from(self.b[slot(idx)]))
    }

    /// Counter rate (increments per second) of bucket `idx`, if it covers some time.
    pub fn rate(&self, idx: u64) -> Option<f64> {
        let s = slot(idx);
        (self.count(idx) > 0 && self.b[s] > 0.0).then(|| f64::from(self.a[s] / self.b[s]))
    }

    /// Summed counter increments of bucket `idx`.
    pub fn increments(&self, idx: u64) -> f64 {
        if self.count(idx) > 0 {
            f64::from(self.a[slot(idx)])
        } else {
            0.0
        }
    }

    /// The oldest index the ring still holds.
    pub fn oldest(&self) -> u64 {
        self.head.saturating_sub(BUCKETS as u64 - 1)
    }
}

/// Up to [`BUCKETS`] (x, y) points in time order, built from a ring without allocating.
#[derive(Clone, Copy, Debug)]
pub struct Points {
    /// Seconds relative to the ring's head bucket (≤ 0).
    pub x: [f64; BUCKETS],
    /// Values.
    pub y: [f64; BUCKETS],
    /// Absolute bucket index of each point.
    pub idx: [u64; BUCKETS],
    /// Number of points.
    pub len: usize,
}

impl Default for Points {
    fn default() -> Self {
        Points {
            x: [0.0; BUCKETS],
            y: [0.0; BUCKETS],
            idx: [0; BUCKETS],
            len: 0,
        }
    }
}

impl Points {
    /// Collects `value(idx)` for the complete buckets `from..head` (the head is still filling).
    pub fn collect(
        head: u64,
        from: u64,
        bucket_secs: f64,
        mut value: impl FnMut(u64) -> Option<f64>,
    ) -> Points {
        let mut p = Points::default();
        let lo = from.max(head.saturating_sub(BUCKETS as u64 - 1));
        for idx in lo..head {
            if let Some(v) = value(idx) {
                if v.is_finite() && p.len < BUCKETS {
                    p.x[p.len] = -((head - idx) as f64) * bucket_secs;
                    p.y[p.len] = v;
                    p.idx[p.len] = idx;
                    p.len += 1;
                }
            }
        }
        p
    }

    /// The x values.
    pub fn xs(&self) -> &[f64] {
        &self.x[..self.len]
    }

    /// The y values.
    pub fn ys(&self) -> &[f64] {
        &self.y[..self.len]
    }

    /// The points from position `start` on.
    pub fn tail(&self, start: usize) -> Points {
        let mut p = Points::default();
        for i in start.min(self.len)..self.len {
            p.x[p.len] = self.x[i];
            p.y[p.len] = self.y[i];
            p.idx[p.len] = self.idx[i];
            p.len += 1;
        }
        p
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advance_clears_skipped_buckets() {
        let mut r = Ring::default();
        r.reset(10);
        r.record_level(5.0);
        r.record_level(3.0);
        assert_eq!(r.min(10), Some(3.0));
        assert_eq!(r.max(10), Some(5.0));
        r.advance(10 + BUCKETS as u64);
        assert_eq!(r.min(10), None);
        assert_eq!(r.count(10 + BUCKETS as u64), 0);
        r.advance(5);
        assert_eq!(r.head(), 10 + BUCKETS as u64);
    }

    #[test]
    fn counts_saturate_per_bucket() {
        let mut r = Ring::default();
        r.reset(7);
        r.record_level(1.0);
        assert_eq!(r.count(7), 1);
        r.record_level(2.0);
        assert_eq!(r.count(7), 2);
        for _ in 0..300 {
            r.record_level(3.0);
        }
        assert_eq!(r.count(7), MAX_COUNT);
        // Neighbours are untouched, and a cleared bucket counts from 0 again.
        r.advance(8);
        assert_eq!(r.count(7), MAX_COUNT);
        assert_eq!(r.count(8), 0);
        r.record_level(1.0);
        assert_eq!(r.count(8), 1);
        r.advance(7 + BUCKETS as u64);
        assert_eq!(r.count(7 + BUCKETS as u64), 0);
        assert_eq!(r.count(8), 1);
        // The last slot uses the top bits.
        r.advance(31 + BUCKETS as u64);
        r.record_level(1.0);
        assert_eq!(r.count(31 + BUCKETS as u64), 1);
        assert_eq!(r.count(8 + BUCKETS as u64), 0);
    }

    #[test]
    fn rate_is_increments_over_seconds() {
        let mut r = Ring::default();
        r.record_increment(10.0, 5.0);
        r.record_increment(20.0, 5.0);
        assert_eq!(r.rate(0), Some(3.0));
        assert_eq!(r.increments(0), 30.0);
    }

    #[test]
    fn points_skip_head_and_empty_buckets() {
        let mut r = Ring::default();
        for i in 0..5u64 {
            r.advance(i);
            if i != 2 {
                r.record_level(i as f32);
            }
        }
        let p = Points::collect(r.head(), 0, 10.0, |i| r.min(i));
        assert_eq!(p.ys(), &[0.0, 1.0, 3.0]);
        assert_eq!(p.xs(), &[-40.0, -30.0, -10.0]);
    }
}
