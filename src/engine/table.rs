//! Series identity, the series of each resource, and their bound.
//!
//! A series is resource attributes + scope name + metric name + data point
//! attributes. Its key is a 64-bit hash computed from the *raw encoded bytes*
//! of those parts, so identifying the series of a point decodes no string and
//! allocates nothing. Attribute sets hash order-independently (the per-pair
//! hashes are summed), so two SDKs that list the same attributes in a
//! different order still name the same series. Attributes are decoded into
//! text only when a series or resource is seen for the first time.
//!
//! A resource's series live in a small table of their own ([`ResourceSeries`])
//! inside the resource's entry of the engine's concurrent resource table
//! (`dashmap`), which ingestion locks once for all of a resource's points in a
//! request (never across an `.await`). A request's points come grouped by
//! resource, so their series are found in one small table whose slots sit
//! together in memory; one fleet-wide table cost each point a probe into a
//! random spot of a table of megabytes (two cache and TLB misses, 88 % of the
//! engine's own time at 70k points/s of 70k series). [`SeriesTable`] bounds
//! the total: beyond `max_series` new series are refused (and counted) while
//! existing ones keep working; series idle for longer than the idle timeout in
//! *event time* are evicted by a periodic sweep.
//!
//! # Memory per series
//! A tracked series costs its entry in its resource's table (key and [`Series`],
//! 24 bytes, plus a 4-byte position and a control byte in the hash index, times
//! hashbrown's slack) and one boxed [`Tracked`]: a pointer to its interned
//! [`SeriesName`], its resource key and the fixed-size detector state. The names are interned
//! ([`Names`]) because the data point attributes of runtime metrics are few
//! and the same in every process of a fleet (`v8js.heap.space.name=old_space`,
//! `v8js.gc.type=major`, `http.route=/api/orders`): 100k series of 1,000
//! processes share a few hundred names instead of holding 100k copies of their
//! `k=v,…` text. `Tracked` is kept at ≤ [`TRACKED_MAX_BYTES`] (asserted in
//! the tests) so that it takes the 384-byte size class of jemalloc (and a
//! 384-byte chunk from glibc malloc).

use std::collections::HashSet;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use hashbrown::HashTable;
use prost::Message;
use xxhash_rust::xxh3::xxh3_64;

use crate::detector::SeriesDetector;
use crate::otlp::proto::lean;
use crate::otlp::proto::otlp::common::v1 as common;

/// The hash that names a series.
pub type SeriesKey = u64;
/// The hash that names a resource (one process).
pub type ResourceKey = u64;

/// Hash of a set of raw `KeyValue` encodings, independent of their order.
pub fn hash_attributes<'a>(attributes: impl IntoIterator<Item = &'a [u8]>) -> u64 {
    let mut sum: u64 = 0;
    let mut count: u64 = 0;
    for attribute in attributes {
        sum = sum.wrapping_add(xxh3_64(attribute));
        count += 1;
    }
    // Mix the count in so that {a} and {a, a} differ even if a hashes to 0.
    mix(sum ^ count.wrapping_mul(0x9E37_79B9_7F4A_7C15))
}

/// Hash of a name (metric or scope).
pub fn hash_name(name: &[u8]) -> u64 {
    xxh3_64(name)
}

/// The key of a series from the hashes of its parts.
pub fn series_key(resource: ResourceKey, scope: u64, metric: u64, attributes: u64) -> SeriesKey {
    let mut buf = [0u8; 32];
    buf[..8].copy_from_slice(&resource.to_le_bytes());
    buf[8..16].copy_from_slice(&scope.to_le_bytes());
    buf[16..24].copy_from_slice(&metric.to_le_bytes());
    buf[24..].copy_from_slice(&attributes.to_le_bytes());
    xxh3_64(&buf)
}

/// A finaliser (from splitmix64) so that sums of hashes stay well spread.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Decodes raw `KeyValue`s into `(key, value as text)` pairs. Pairs that do
/// not decode are skipped: identity already used their bytes.
pub fn decode_attributes_text<'a>(
    attributes: impl IntoIterator<Item = &'a [u8]>,
) -> Vec<(String, String)> {
    attributes
        .into_iter()
        .filter_map(|raw| lean::KeyValue::decode(raw).ok())
        .map(|kv| {
            let key = String::from_utf8_lossy(&kv.key).into_owned();
            (key, any_value_text(kv.value.as_ref()))
        })
        .collect()
}

/// Decodes raw `KeyValue`s into full OTLP `KeyValue`s (for re-emission in leak
/// events). Pairs that do not decode are skipped.
pub fn decode_attributes_full<'a>(
    attributes: impl IntoIterator<Item = &'a [u8]>,
) -> Vec<common::KeyValue> {
    attributes
        .into_iter()
        .filter_map(|raw| common::KeyValue::decode(raw).ok())
        .collect()
}

fn any_value_text(value: Option<&lean::AnyValue>) -> String {
    use lean::any_value::Value;
    match value.and_then(|v| v.value.as_ref()) {
        None => String::new(),
        Some(Value::StringValue(s)) => String::from_utf8_lossy(s).into_owned(),
        Some(Value::BoolValue(b)) => b.to_string(),
        Some(Value::IntValue(i)) => i.to_string(),
        Some(Value::DoubleValue(d)) => d.to_string(),
        Some(Value::BytesValue(b)) => b.iter().map(|byte| format!("{byte:02x}")).collect(),
        Some(Value::ArrayValue(_)) => "[array]".to_owned(),
        Some(Value::KvlistValue(_)) => "{kvlist}".to_owned(),
    }
}

/// Renders `(key, value)` pairs as `k=v,k2=v2` (for logs and the admin API).
pub fn labels_text(pairs: &[(String, String)]) -> String {
    let mut out = String::new();
    for (i, (k, v)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(k);
        out.push('=');
        out.push_str(v);
    }
    out
}

/// What the table holds for one series: 16 bytes, a 24-byte slot with its key.
///
/// The resource key lives in [`Tracked`], not here: only tracked series are
/// shown, checkpointed or evaluated with their resource, and in `Tracked` it
/// fills room its size class already has (368 bytes in the 384-byte class),
/// while here it cost 8 bytes per slot, times hashbrown's slack (≈ 1.3× at
/// 100k series, ≈ 2.1× at 1M).
#[derive(Debug)]
pub struct Series {
    /// Event time of the newest point seen, in ns since the epoch.
    pub last_seen_ns: u64,
    /// Detection state, for series the runtime catalog knows; `None` for
    /// series of a known metric whose attributes the catalog does not track
    /// (e.g. JVM non-heap pools): remembered so they are classified once.
    pub tracked: Option<Box<Tracked>>,
}

/// Detection state and names of a series the catalog classified.
#[derive(Debug)]
pub struct Tracked {
    /// Metric and attributes, shared with every series of the same names.
    pub name: Arc<SeriesName>,
    /// The resource (process) the series belongs to.
    pub resource: ResourceKey,
    pub detector: SeriesDetector,
}

/// The largest `size_of::<Tracked>()` allowed (it is 368): glibc malloc
/// serves it a 384-byte chunk (request + 8, rounded up to 16) and jemalloc its
/// 384-byte size class (classes …320, 384, 448). Asserted in the tests.
pub const TRACKED_MAX_BYTES: usize = 376;

/// What names a tracked series besides its resource: the metric and the data
/// point attributes as `k=v,...` (for the admin API, logs and checkpoints).
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct SeriesName {
    pub metric: Arc<str>,
    pub labels: Box<str>,
}

/// The interned [`SeriesName`]s of the tracked series, one shared copy of
/// each.
///
/// Bounded by the series table: a name is interned only for a series that is
/// being inserted, and [`Names::release_unused`] (run by every eviction sweep)
/// drops the names no series refers to any more, so between sweeps it holds at
/// most the names of the live series plus those of the series evicted or
/// refused since the last sweep. Taken only when a series is created or
/// restored and by the sweep, never per point; never held while taking a
/// resource's lock (the reverse order happens: a series is created under its
/// resource's lock).
#[derive(Debug, Default)]
pub struct Names {
    set: Mutex<HashSet<Arc<SeriesName>>>,
}

impl Names {
    /// The shared copy of `name`, stored first if it is new.
    pub fn intern(&self, name: SeriesName) -> Arc<SeriesName> {
        let mut set = self.set.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(shared) = set.get(&name) {
            return Arc::clone(shared);
        }
        let shared = Arc::new(name);
        set.insert(Arc::clone(&shared));
        shared
    }

    /// Drops the names only the interner still refers to. Returns how many.
    ///
    /// A strong count of 1 under the lock is final: series obtain their
    /// reference only through [`Names::intern`], under the same lock.
    pub fn release_unused(&self) -> usize {
        let mut set = self.set.lock().unwrap_or_else(PoisonError::into_inner);
        let before = set.len();
        set.retain(|name| Arc::strong_count(name) > 1);
        before - set.len()
    }

    /// Distinct names held.
    pub fn len(&self) -> usize {
        self.set
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// Whether no name is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes the interned names take on the heap (the `Arc` allocations, their
    /// texts and the set's slots), not counting allocator rounding: for the
    /// memory figures of `benches/series.rs`.
    pub fn heap_bytes(&self) -> usize {
        let set = self.set.lock().unwrap_or_else(PoisonError::into_inner);
        let entries: usize = set
            .iter()
            .map(|n| {
                2 * std::mem::size_of::<usize>()
                    + std::mem::size_of::<SeriesName>()
                    + n.labels.len()
            })
            .sum();
        entries + set.capacity() * (std::mem::size_of::<Arc<SeriesName>>() + 1)
    }
}

/// Why a new series was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeriesLimitReached {
    /// The table holds `max_series` series.
    Count,
    /// The memory limiter is above its soft limit.
    Memory,
}

/// An identity hasher for keys that already are good hashes.
#[derive(Default, Clone, Copy)]
pub struct PrehashedHasher(u64);

impl Hasher for PrehashedHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // Only u64 keys are hashed with this hasher; keep a fallback anyway.
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }
    fn write_u64(&mut self, i: u64) {
        self.0 = i;
    }
}

pub type Prehashed = BuildHasherDefault<PrehashedHasher>;

/// The hasher of a [`ResourceSeries`] index: a position's key (keys are hashes).
fn key_at(entries: &[(SeriesKey, Series)]) -> impl Fn(&u32) -> u64 + '_ {
    move |&i| entries[i as usize].0
}

/// Resources with at most this many series have their state loaded ahead of
/// their points ([`ResourceSeries::warm`]); an SDK exports tens.
const WARM_MAX_SERIES: usize = 256;

/// The series of one resource (process), in the resource's entry of the
/// engine's resource table and locked with it.
///
/// The series sit in a dense `Vec` in the order they were first seen, with a
/// hash index (`u32` positions) beside it, and a cursor at the position after
/// the last series found. An SDK exports its instruments in the same order
/// every time, so the next point's series is nearly always the one at the
/// cursor: it is found by comparing one key, and a request walks the `Vec`
/// (and the boxed states, allocated in the same order) front to back, which
/// the hardware prefetcher follows. A hash probe of a table of 24-byte slots
/// landed on a random cache line for each point instead (half of
/// `Engine::ingest_inner`'s time at SDK size, `perf annotate`).
#[derive(Debug, Default)]
pub struct ResourceSeries {
    entries: Vec<(SeriesKey, Series)>,
    index: HashTable<u32>,
    cursor: u32,
}

impl ResourceSeries {
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Every series of the resource, in the order they were first seen.
    pub fn iter(&self) -> impl Iterator<Item = (SeriesKey, &Series)> {
        self.entries.iter().map(|(k, s)| (*k, s))
    }

    /// Loads the detector state of each of the resource's tracked series
    /// (the cache lines its next point reads first), for a request that
    /// brings points of this resource. In a fleet the state of a resource is
    /// cold when its next export arrives; observing the points one by one
    /// waits for each state in turn, while these loads are independent and
    /// the CPU overlaps them. Skipped for resources with more series than a
    /// request usually brings.
    pub fn warm(&self) {
        if self.entries.len() > WARM_MAX_SERIES {
            return;
        }
        let mut sum = 0.0;
        for (_, s) in &self.entries {
            if let Some(t) = &s.tracked {
                sum += t.detector.touch();
            }
        }
        std::hint::black_box(sum);
    }

    /// The position of `key`: the cursor's series first (the next one in an
    /// SDK's export order), then the first series (a new request), then the
    /// index.
    fn find(&self, key: SeriesKey) -> Option<usize> {
        let n = self.entries.len();
        let c = self.cursor as usize;
        let at_cursor = if c < n { c } else { 0 };
        if self.entries.get(at_cursor).is_some_and(|e| e.0 == key) {
            return Some(at_cursor);
        }
        let entries = &self.entries;
        self.index
            .find(key, |&i| entries[i as usize].0 == key)
            .map(|&i| i as usize)
    }

    fn push(&mut self, key: SeriesKey, series: Series) -> usize {
        let i = self.entries.len();
        self.index
            .insert_unique(key, i as u32, key_at(&self.entries));
        self.entries.push((key, series));
        i
    }

    /// Keeps the series for which `keep` is true; returns how many went.
    fn retain(&mut self, keep: impl FnMut(&(SeriesKey, Series)) -> bool) -> usize {
        let before = self.entries.len();
        self.entries.retain(keep);
        let removed = before - self.entries.len();
        if removed > 0 {
            // Positions moved: rebuild the index (a sweep, not the hot path).
            self.index.clear();
            for (i, (k, _)) in self.entries.iter().enumerate() {
                self.index
                    .insert_unique(*k, i as u32, key_at(&self.entries));
            }
            self.cursor = 0;
        }
        removed
    }

    /// Gives back room the series no longer use: a table that had many more
    /// series, and the `Vec`'s growth slack once a resource stops creating
    /// series (at the sweep).
    fn shrink(&mut self) {
        let n = self.entries.len();
        if self.entries.capacity() > n + n / 8 + 1 {
            self.entries.shrink_to_fit();
        }
        if self.index.capacity() > 4 * n.max(4) {
            self.index.shrink_to_fit(key_at(&self.entries));
        }
    }

    /// Heap bytes of the table (entries and index; not the boxed states).
    pub fn heap_bytes(&self) -> usize {
        self.entries.capacity() * std::mem::size_of::<(SeriesKey, Series)>()
            + self.index.allocation_size()
    }

    #[cfg(test)]
    fn capacity(&self) -> (usize, usize) {
        (self.entries.capacity(), self.index.capacity())
    }
}

/// The bound on the series of every resource, and their interned names.
pub struct SeriesTable {
    len: AtomicUsize,
    max_series: usize,
    names: Names,
}

impl SeriesTable {
    pub fn new(max_series: usize) -> Self {
        SeriesTable {
            len: AtomicUsize::new(0),
            max_series,
            names: Names::default(),
        }
    }

    /// The interned names of the tracked series.
    pub fn names(&self) -> &Names {
        &self.names
    }

    /// Series held by every resource.
    pub fn len(&self) -> usize {
        self.len.load(Ordering::Relaxed)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn max_series(&self) -> usize {
        self.max_series
    }

    /// Runs `f` on the series `key` of `series` (a resource's, locked by the
    /// caller), creating it with `create` first if it is new, `admit_new`
    /// allows it and the bound has room.
    pub fn with_series<R>(
        &self,
        series: &mut ResourceSeries,
        key: SeriesKey,
        admit_new: bool,
        create: impl FnOnce() -> Series,
        f: impl FnOnce(&mut Series, bool) -> R,
    ) -> Result<R, SeriesLimitReached> {
        let (i, created) = match series.find(key) {
            Some(i) => (i, false),
            None => {
                if !admit_new {
                    return Err(SeriesLimitReached::Memory);
                }
                // Other resources insert concurrently: reserve atomically.
                self.len
                    .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                        (n < self.max_series).then_some(n + 1)
                    })
                    .map_err(|_| SeriesLimitReached::Count)?;
                (series.push(key, create()), true)
            }
        };
        series.cursor = (i + 1) as u32;
        Ok(f(&mut series.entries[i].1, created))
    }

    /// Inserts a series restored from a checkpoint, within the bound; an
    /// existing series of the same key is kept as it is.
    pub fn restore(
        &self,
        series: &mut ResourceSeries,
        key: SeriesKey,
        restored: Series,
    ) -> Result<(), SeriesLimitReached> {
        self.with_series(series, key, true, || restored, |_, _| ())
    }

    /// Removes the series of `series` whose newest point is older than
    /// `cutoff_ns` (event time). Returns how many were removed. The names they
    /// used are released by [`Names::release_unused`] once no resource is
    /// locked.
    pub fn evict_idle(&self, series: &mut ResourceSeries, cutoff_ns: u64) -> usize {
        let evicted = series.retain(|(_, s)| s.last_seen_ns >= cutoff_ns);
        series.shrink();
        self.len.fetch_sub(evicted, Ordering::AcqRel);
        evicted
    }

    /// Gives back the room of the series of a resource that is removed.
    /// Returns how many there were.
    pub fn release(&self, series: &ResourceSeries) -> usize {
        let n = series.len();
        self.len.fetch_sub(n, Ordering::AcqRel);
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn kv(key: &str, value: &str) -> Bytes {
        let kv = common::KeyValue {
            key: key.to_owned(),
            value: Some(common::AnyValue {
                value: Some(common::any_value::Value::StringValue(value.to_owned())),
            }),
            ..Default::default()
        };
        Bytes::from(kv.encode_to_vec())
    }

    fn h(attributes: &[Bytes]) -> u64 {
        hash_attributes(attributes.iter().map(|b| &b[..]))
    }

    #[test]
    fn attribute_hash_ignores_order() {
        let a = [kv("a", "1"), kv("b", "2")];
        let b = [kv("b", "2"), kv("a", "1")];
        assert_eq!(h(&a), h(&b));
    }

    #[test]
    fn attribute_hash_tells_values_apart() {
        assert_ne!(h(&[kv("a", "1")]), h(&[kv("a", "2")]));
        assert_ne!(h(&[]), h(&[kv("a", "1")]));
        assert_ne!(h(&[kv("a", "1")]), h(&[kv("a", "1"), kv("a", "1")]));
    }

    #[test]
    fn series_key_depends_on_every_part() {
        let base = series_key(1, 2, 3, 4);
        assert_ne!(base, series_key(9, 2, 3, 4));
        assert_ne!(base, series_key(1, 9, 3, 4));
        assert_ne!(base, series_key(1, 2, 9, 4));
        assert_ne!(base, series_key(1, 2, 3, 9));
    }

    #[test]
    fn decodes_attribute_text() {
        let pairs = decode_attributes_text([&kv("v8js.heap.space.name", "old_space")[..]]);
        assert_eq!(
            pairs,
            vec![("v8js.heap.space.name".to_owned(), "old_space".to_owned())]
        );
        assert_eq!(labels_text(&pairs), "v8js.heap.space.name=old_space");
    }

    #[test]
    fn no_new_series_without_admission_but_existing_ones_work() {
        let table = SeriesTable::new(10);
        let mut series = ResourceSeries::default();
        assert_eq!(
            table.with_series(&mut series, 1, true, blank, |_, new| new),
            Ok(true)
        );
        assert_eq!(
            table.with_series(&mut series, 2, false, blank, |_, new| new),
            Err(SeriesLimitReached::Memory)
        );
        assert_eq!(
            table.with_series(&mut series, 1, false, blank, |_, new| new),
            Ok(false)
        );
    }

    fn blank() -> Series {
        Series {
            last_seen_ns: 0,
            tracked: None,
        }
    }

    #[test]
    fn the_bound_holds_over_every_resource_and_keeps_existing_series() {
        let table = SeriesTable::new(2);
        let (mut a, mut b) = (ResourceSeries::default(), ResourceSeries::default());
        assert_eq!(
            table.with_series(&mut a, 1, true, blank, |_, new| new),
            Ok(true)
        );
        assert_eq!(
            table.with_series(&mut b, 2, true, blank, |_, new| new),
            Ok(true)
        );
        assert_eq!(
            table.with_series(&mut a, 3, true, blank, |_, new| new),
            Err(SeriesLimitReached::Count)
        );
        assert_eq!(
            table.with_series(&mut b, 4, true, blank, |_, new| new),
            Err(SeriesLimitReached::Count)
        );
        assert_eq!(
            table.with_series(&mut a, 1, true, blank, |_, new| new),
            Ok(false)
        );
        assert_eq!((table.len(), a.len(), b.len()), (2, 1, 1));
        // A removed resource gives its room back.
        assert_eq!(table.release(&b), 1);
        assert_eq!(
            table.with_series(&mut a, 3, true, blank, |_, new| new),
            Ok(true)
        );
        assert_eq!(table.len(), 2);
    }

    #[test]
    fn eviction_frees_room() {
        let table = SeriesTable::new(2);
        let mut series = ResourceSeries::default();
        table
            .with_series(&mut series, 1, true, blank, |s, _| s.last_seen_ns = 10)
            .ok();
        table
            .with_series(&mut series, 2, true, blank, |s, _| s.last_seen_ns = 100)
            .ok();
        assert_eq!(table.evict_idle(&mut series, 50), 1);
        assert_eq!((table.len(), series.len()), (1, 1));
        assert_eq!(
            table.with_series(&mut series, 3, true, blank, |_, new| new),
            Ok(true)
        );
    }

    #[test]
    fn eviction_shrinks_a_table_that_emptied() {
        let table = SeriesTable::new(10_000);
        let mut series = ResourceSeries::default();
        for k in 0..5_000 {
            table
                .with_series(&mut series, k, true, blank, |s, _| s.last_seen_ns = k)
                .ok();
        }
        assert_eq!(table.evict_idle(&mut series, 4_990), 4_990);
        let (entries, index) = series.capacity();
        assert!(entries < 100 && index < 100, "{entries} {index}");
        assert_eq!(series.iter().count(), 10);
        // The survivors are still found, in their order.
        let keys: Vec<_> = series.iter().map(|(k, _)| k).collect();
        assert_eq!(keys, (4_990..5_000).collect::<Vec<_>>());
        for k in 4_990..5_000 {
            assert_eq!(
                table.with_series(&mut series, k, false, blank, |s, new| (s.last_seen_ns, new)),
                Ok((k, false))
            );
        }
    }

    #[test]
    fn series_are_found_in_any_order() {
        let table = SeriesTable::new(1_000);
        let mut series = ResourceSeries::default();
        let keys: Vec<u64> = (0..50).map(|k| k * 7_919 + 3).collect();
        for &k in &keys {
            assert_eq!(
                table.with_series(&mut series, k, true, blank, |s, new| {
                    s.last_seen_ns = k;
                    new
                }),
                Ok(true)
            );
        }
        let find = |series: &mut ResourceSeries, k: u64| {
            table.with_series(series, k, false, blank, |s, new| (s.last_seen_ns, new))
        };
        // In order (the cursor), backwards, and strided (the index).
        let backwards = keys.iter().rev();
        let strided = (0..keys.len()).map(|i| &keys[(i * 17) % keys.len()]);
        for &k in keys.iter().chain(backwards).chain(strided) {
            assert_eq!(find(&mut series, k), Ok((k, false)));
        }
        // A new series between known ones, and absent keys stay absent.
        assert_eq!(find(&mut series, keys[10]), Ok((keys[10], false)));
        assert_eq!(
            table.with_series(&mut series, 1, true, blank, |_, new| new),
            Ok(true)
        );
        assert_eq!(find(&mut series, keys[11]), Ok((keys[11], false)));
        assert_eq!(find(&mut series, 2), Err(SeriesLimitReached::Memory));
        assert_eq!((series.len(), table.len()), (51, 51));
    }

    fn name(metric: &str, labels: &str) -> SeriesName {
        SeriesName {
            metric: Arc::from(metric),
            labels: labels.into(),
        }
    }

    #[test]
    fn equal_names_share_one_copy() {
        let names = Names::default();
        let a = names.intern(name(
            "v8js.memory.heap.used",
            "v8js.heap.space.name=old_space",
        ));
        let b = names.intern(name(
            "v8js.memory.heap.used",
            "v8js.heap.space.name=old_space",
        ));
        let c = names.intern(name(
            "v8js.memory.heap.used",
            "v8js.heap.space.name=new_space",
        ));
        let d = names.intern(name(
            "v8js.memory.heap.limit",
            "v8js.heap.space.name=old_space",
        ));
        assert!(Arc::ptr_eq(&a, &b));
        assert!(!Arc::ptr_eq(&a, &c));
        assert!(!Arc::ptr_eq(&a, &d));
        assert_eq!(names.len(), 3);
    }

    #[test]
    fn unused_names_are_released_by_the_sweep() {
        let table = SeriesTable::new(10);
        let mut series = ResourceSeries::default();
        let tracked = |labels: &str| Series {
            last_seen_ns: 0,
            tracked: Some(Box::new(Tracked {
                name: table.names().intern(name("m", labels)),
                resource: 1,
                detector: SeriesDetector::new(crate::catalog::Classified {
                    role: crate::catalog::Role::HeapUsed,
                    scale: 1.0,
                }),
            })),
        };
        for (key, labels, t) in [(1, "a=1", 10), (2, "a=1", 100), (3, "a=2", 10)] {
            table
                .with_series(
                    &mut series,
                    key,
                    true,
                    || tracked(labels),
                    |s, _| s.last_seen_ns = t,
                )
                .ok();
        }
        assert_eq!(table.names().len(), 2);
        // Series 1 and 3 go: "a=2" has no series left, "a=1" still has series 2.
        assert_eq!(table.evict_idle(&mut series, 50), 2);
        assert_eq!(table.names().release_unused(), 1);
        assert_eq!(table.names().len(), 1);
        assert_eq!(table.evict_idle(&mut series, 500), 1);
        assert_eq!(table.names().release_unused(), 1);
        assert!(table.names().is_empty());
    }

    #[test]
    fn tracked_state_fits_its_size_class() {
        let size = std::mem::size_of::<Tracked>();
        assert!(
            size <= TRACKED_MAX_BYTES,
            "Tracked is {size} bytes, more than {TRACKED_MAX_BYTES}"
        );
        // The table slot: key and `Series`, before hashbrown's slack.
        assert_eq!(std::mem::size_of::<(SeriesKey, Series)>(), 24);
    }
}
