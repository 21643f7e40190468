//! Log compaction for `cleanup.policy=compact`, after Kafka's `LogCleaner` / `Cleaner` /
//! `SkimpyOffsetMap` / `LogCleanerManager`: keep the latest record per key, drop tombstones once
//! their delete horizon (KIP-534) has passed, never change an offset.
//!
//! It owns the three phases of one cleaning round of one partition and the crash-safe swap:
//! - `PartitionLog::prepare_clean` (under the partition lock, cheap): picks the cleanable range
//!   (closed segments from the first dirty offset up to the first uncleanable one: the active
//!   segment, the high watermark, min.compaction.lag.ms), applies min.cleanable.dirty.ratio /
//!   max.compaction.lag.ms, and returns a `CleanPlan` holding its own open handles on the
//!   segment files.
//! - `CleanPlan::clean` (no lock): pass 0 finds each producer's last batch, pass 1 fills a
//!   bounded `OffsetMap` (key hash -> last offset) over the dirty range, pass 2 rewrites the
//!   segments up to where the map reaches, in groups of at most segment.bytes, into
//!   `<base>.log.cleaned` files with their indexes. Files are read in chunks of `io_buffer_size`.
//! - `PartitionLog::commit_clean` (under the lock, short): checks the log still holds exactly the
//!   segments that were read, renames `.cleaned` -> `.swap`, deletes the replaced segments,
//!   renames `.swap` -> final and loads the new segments (their indexes were built by `clean`).
//!
//! `complete_interrupted_swaps` runs when a log opens: `.cleaned` files are dropped, a `.swap`
//! log replaces the segments in its offset range, as Kafka's `LogLoader` does.
//!
//! It must not: touch the active segment, hold the lock while reading or writing segment data,
//! or keep the cleaner checkpoint itself (the broker keeps `cleaner-offset-checkpoint` in the
//! log dir with `LogDirCheckpoints`, as Kafka does; `CleanOutcome::first_dirty_offset` is the
//! value to store). Transactions do not exist yet, so control batches are copied unchanged.

use std::collections::HashMap;
use std::fs::{self, File};
use std::hash::{BuildHasher, Hasher, RandomState};
use std::io::{self, BufWriter, Read, Write};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use crate::protocol::record_batch::{
    BATCH_HEADER_LEN, Batch, BatchHeader, Compression, LOG_OVERHEAD, MAGIC_V2, NO_TIMESTAMP,
    RecordView, TimestampType, compute_crc,
};

use super::checkpoint::{storage, sync_dir};
use super::index::{OffsetIndex, TimeIndex};
use super::segment::{LogSegment, segment_file_name};
use super::{LogError, PartitionLog};

/// Kafka's per-log-dir file of first dirty offsets ("topic partition offset" lines).
pub const CLEANER_OFFSET_CHECKPOINT: &str = "cleaner-offset-checkpoint";
pub const CLEANED_FILE_SUFFIX: &str = ".cleaned";
pub const SWAP_FILE_SUFFIX: &str = ".swap";

/// log.cleaner.dedupe.buffer.size default.
pub const DEFAULT_DEDUPE_BUFFER_SIZE: usize = 128 * 1024 * 1024;
/// log.cleaner.io.buffer.load.factor default.
pub const DEFAULT_DEDUPE_LOAD_FACTOR: f64 = 0.9;
/// Read chunk for segment data (Kafka splits log.cleaner.io.buffer.size, 512 KiB, in two).
pub const DEFAULT_IO_BUFFER_SIZE: usize = 1024 * 1024;
/// Bytes of one offset map entry: 128-bit key hash + 64-bit offset, as SkimpyOffsetMap's
/// MD5 + offset.
pub const OFFSET_MAP_ENTRY_BYTES: usize = 24;
/// A compressed batch whose records would inflate past this is refused rather than buffered:
/// the cleaner's memory stays bounded whatever a producer sent.
pub const MAX_DECOMPRESSED_BATCH_BYTES: usize = 64 * 1024 * 1024;
/// Kafka's xerial snappy framing, which the Java client writes; raw snappy is read as well.
const XERIAL_SNAPPY_HEADER: &[u8; 16] = b"\x82SNAPPY\x00\x00\x00\x00\x01\x00\x00\x00\x01";
const XERIAL_BLOCK: usize = 32 * 1024;
/// Compression levels Kafka uses when it rebuilds a batch (the codecs' defaults in Kafka 4).
const GZIP_LEVEL: u32 = 6;
const LZ4_LEVEL: u32 = 9;
const ZSTD_LEVEL: i32 = 3;

const ATTRIBUTES_AT: usize = 21;
const COMPRESSION_MASK: i16 = 0x07;
const TIMESTAMP_TYPE_BIT: i16 = 0x08;
const TRANSACTIONAL_BIT: i16 = 0x10;
const CONTROL_BIT: i16 = 0x20;
const DELETE_HORIZON_BIT: i16 = 0x40;

/// The topic configs that drive compaction of one log.
#[derive(Debug, Clone, PartialEq)]
pub struct CompactionConfig {
    /// delete.retention.ms: how long a tombstone survives after the clean that first saw it.
    pub delete_retention_ms: i64,
    /// min.compaction.lag.ms: a segment holding a record younger than this is not cleaned.
    pub min_compaction_lag_ms: i64,
    /// max.compaction.lag.ms: a dirty segment older than this is cleaned whatever the ratio.
    pub max_compaction_lag_ms: i64,
    /// min.cleanable.dirty.ratio
    pub min_cleanable_dirty_ratio: f64,
}

impl Default for CompactionConfig {
    fn default() -> Self {
        CompactionConfig {
            delete_retention_ms: 24 * 60 * 60 * 1000,
            min_compaction_lag_ms: 0,
            max_compaction_lag_ms: i64::MAX,
            min_cleanable_dirty_ratio: 0.5,
        }
    }
}

/// `<log_dir>/cleaner-offset-checkpoint`, read and written with `LogDirCheckpoints`.
pub fn cleaner_offset_checkpoint_path(log_dir: &Path) -> PathBuf {
    log_dir.join(CLEANER_OFFSET_CHECKPOINT)
}

fn other(path: &Path, reason: String) -> LogError {
    LogError::Storage {
        path: path.to_path_buf(),
        source: io::Error::other(reason),
    }
}

fn corrupt(path: &Path, position: u64, reason: impl Into<String>) -> LogError {
    LogError::CorruptLog {
        path: path.to_path_buf(),
        position,
        reason: reason.into(),
    }
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

// ---- offset map ----

/// 128-bit keyed hash of a record key. The keys are random per map, so a producer cannot craft
/// two keys that collide (a collision would make the cleaner drop the older key's record).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct KeyHash(u64, u64);

/// Kafka's SkimpyOffsetMap: an open-addressing table of (key hash, offset) entries in a fixed
/// amount of memory, filled up to a load factor. It never grows: when full, the cleaner cleans
/// up to the last offset it could map.
pub struct OffsetMap {
    /// [hash.0, hash.1, offset]; offset `EMPTY` marks a free slot.
    slots: Vec<[u64; 3]>,
    entries: usize,
    max_entries: usize,
    latest_offset: i64,
    k0: RandomState,
    k1: RandomState,
}

const EMPTY: u64 = u64::MAX;

impl OffsetMap {
    /// A map using about `memory_bytes` (log.cleaner.dedupe.buffer.size), filled to
    /// `load_factor` (log.cleaner.io.buffer.load.factor). It always holds at least one entry so
    /// that every round makes progress.
    pub fn new(memory_bytes: usize, load_factor: f64) -> OffsetMap {
        let slots = (memory_bytes / OFFSET_MAP_ENTRY_BYTES).max(2);
        let max_entries = ((slots as f64 * load_factor) as usize).clamp(1, slots - 1);
        OffsetMap {
            slots: vec![[0, 0, EMPTY]; slots],
            entries: 0,
            max_entries,
            latest_offset: -1,
            k0: RandomState::new(),
            k1: RandomState::new(),
        }
    }

    pub fn slots(&self) -> usize {
        self.slots.len()
    }
    /// Keys the map holds before it counts as full.
    pub fn max_entries(&self) -> usize {
        self.max_entries
    }
    pub fn len(&self) -> usize {
        self.entries
    }
    pub fn is_empty(&self) -> bool {
        self.entries == 0
    }
    /// The last offset the map covers: records after it were not mapped.
    pub fn latest_offset(&self) -> i64 {
        self.latest_offset
    }

    fn clear(&mut self) {
        self.slots.fill([0, 0, EMPTY]);
        self.entries = 0;
        self.latest_offset = -1;
    }

    fn hash(&self, key: &[u8]) -> KeyHash {
        let mut a = self.k0.build_hasher();
        a.write(key);
        let mut b = self.k1.build_hasher();
        b.write(key);
        KeyHash(a.finish(), b.finish())
    }

    fn first_slot(&self, h: KeyHash) -> usize {
        // Multiply-shift maps the hash onto the table without a division.
        ((u128::from(h.0) * self.slots.len() as u128) >> 64) as usize
    }

    /// Index of the slot holding `h`, or of the free slot where it would go.
    fn find(&self, h: KeyHash) -> usize {
        let n = self.slots.len();
        let mut i = self.first_slot(h);
        loop {
            let [a, b, off] = self.slots[i];
            if off == EMPTY || (a == h.0 && b == h.1) {
                return i;
            }
            i += 1;
            if i == n {
                i = 0;
            }
        }
    }

    /// Records `offset` as the latest for the key. False when the key is new and the map is
    /// full (an existing key can always be updated).
    fn put(&mut self, h: KeyHash, offset: i64) -> bool {
        let i = self.find(h);
        if self.slots[i][2] == EMPTY {
            if self.entries >= self.max_entries {
                return false;
            }
            self.entries += 1;
        }
        self.slots[i] = [h.0, h.1, offset as u64];
        true
    }

    fn get(&self, h: KeyHash) -> Option<i64> {
        let [_, _, off] = self.slots[self.find(h)];
        (off != EMPTY).then_some(off as i64)
    }
}

// ---- throttle ----

/// log.cleaner.io.max.bytes.per.second: the caller passes one to `clean`, which reports every
/// chunk it reads or writes; when the rate runs ahead, the cleaning thread sleeps.
pub struct Throttler {
    bytes_per_sec: f64,
    window_start: Instant,
    window_bytes: u64,
}

impl Throttler {
    pub fn new(bytes_per_sec: f64) -> Throttler {
        Throttler {
            bytes_per_sec,
            window_start: Instant::now(),
            window_bytes: 0,
        }
    }

    pub fn maybe_throttle(&mut self, bytes: u64) {
        if !(self.bytes_per_sec.is_finite() && self.bytes_per_sec > 0.0) {
            return;
        }
        self.window_bytes += bytes;
        let elapsed = self.window_start.elapsed().as_secs_f64();
        let due = self.window_bytes as f64 / self.bytes_per_sec;
        if due > elapsed {
            std::thread::sleep(Duration::from_secs_f64(due - elapsed));
        }
        // Short windows, so a quiet spell does not bank credit for a burst later.
        if self.window_start.elapsed() > Duration::from_secs(1) {
            self.window_start = Instant::now();
            self.window_bytes = 0;
        }
    }
}

// ---- plan ----

/// What identifies the exact file that was read: a segment deleted and recreated at the same
/// base (truncation) gets a new inode or modification time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileIdentity {
    size: u64,
    ino: u64,
    mtime_ns: i128,
}

fn identity_of(meta: &fs::Metadata) -> FileIdentity {
    FileIdentity {
        size: meta.len(),
        ino: meta.ino(),
        mtime_ns: i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec()),
    }
}

struct SegmentSnapshot {
    base_offset: i64,
    /// Base offset of the following segment: no offset in this one reaches it.
    next_base: i64,
    path: PathBuf,
    file: File,
    size: u64,
    identity: FileIdentity,
    modified: Option<SystemTime>,
    offset_index_bytes: u64,
    time_index_bytes: u64,
}

/// One cleaning round's input: an owned snapshot of the closed segments to read, taken under the
/// partition lock by `PartitionLog::prepare_clean`; `clean` then runs without the lock.
pub struct CleanPlan {
    dir: PathBuf,
    /// Segments from the log start up to the first uncleanable offset (all closed).
    segments: Vec<SegmentSnapshot>,
    /// The later segments up to the log end at snapshot time, scanned for producer state only.
    tail: Vec<(PathBuf, File, u64)>,
    pub first_dirty_offset: i64,
    pub first_uncleanable_offset: i64,
    /// Bytes of the cleanable dirty segments over those plus the clean ones.
    pub dirty_ratio: f64,
    pub cleanable_bytes: u64,
    /// True when max.compaction.lag.ms forced this round.
    pub forced: bool,
    now_ms: i64,
    delete_retention_ms: i64,
    max_segment_bytes: u64,
    max_index_size: u64,
    index_interval_bytes: u32,
    io_buffer_size: usize,
}

/// What one round did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CleanerStats {
    pub bytes_read: u64,
    pub bytes_written: u64,
    pub records_read: u64,
    pub records_retained: u64,
    pub batches_copied: u64,
    pub batches_rewritten: u64,
    pub batches_emptied: u64,
    pub batches_dropped: u64,
    pub keys_mapped: u64,
}

struct CleanedGroup {
    base_offset: i64,
    /// (base offset, identity) of each replaced segment, oldest first.
    replaced: Vec<(i64, FileIdentity)>,
    size: u64,
    /// Still holds `.cleaned` files that must be removed if the group is not committed.
    pending: bool,
    dir: PathBuf,
}

impl CleanedGroup {
    fn cleaned_paths(&self) -> [PathBuf; 3] {
        [".log", ".index", ".timeindex"].map(|s| {
            self.dir
                .join(segment_file_name(self.base_offset, s) + CLEANED_FILE_SUFFIX)
        })
    }
}

impl Drop for CleanedGroup {
    fn drop(&mut self) {
        if self.pending {
            for path in self.cleaned_paths() {
                let _ = fs::remove_file(path);
            }
        }
    }
}

/// The output of `clean`: `.cleaned` segment files waiting for `commit_clean`. Dropping it
/// without committing removes them.
pub struct CleanedSegments {
    groups: Vec<CleanedGroup>,
    /// Every segment the round read (to detect truncation before committing).
    read: Vec<(i64, FileIdentity)>,
    /// The next round's first dirty offset.
    end_offset: i64,
    pub stats: CleanerStats,
}

impl CleanedSegments {
    /// The offset up to which this round compacted (exclusive).
    pub fn end_offset(&self) -> i64 {
        self.end_offset
    }
    pub fn group_count(&self) -> usize {
        self.groups.len()
    }
}

/// What `commit_clean` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CleanOutcome {
    /// The value for cleaner-offset-checkpoint; `None` when the log changed under the cleaner
    /// (truncation) and nothing was swapped, so the old checkpoint stays.
    pub first_dirty_offset: Option<i64>,
    pub segments_replaced: usize,
    pub segments_written: usize,
    /// Groups whose segments retention deleted meanwhile.
    pub groups_skipped: usize,
    pub bytes_before: u64,
    pub bytes_after: u64,
}

impl PartitionLog {
    /// Kafka's `LogCleanerManager.cleanableOffsets` and its choice of a log to clean. Returns
    /// `None` when there is nothing to clean or the dirty ratio is below the threshold (and
    /// max.compaction.lag.ms does not force it). `last_clean_offset` is this partition's entry
    /// of cleaner-offset-checkpoint; `max_cleanable_offset` is the high watermark (the cleaner
    /// must not remove a record because of one that may still be truncated away).
    pub fn prepare_clean(
        &self,
        config: &CompactionConfig,
        last_clean_offset: Option<i64>,
        max_cleanable_offset: i64,
        now_ms: i64,
    ) -> Result<Option<CleanPlan>, LogError> {
        let n = self.segments.len();
        let (Some(active), true) = (self.segments.last(), n >= 2) else {
            return Ok(None);
        };
        let first_dirty = match last_clean_offset {
            Some(o) if o >= self.log_start_offset && o <= self.log_end_offset => o,
            _ => self.log_start_offset,
        };
        let dirty_idx = self.segment_index_for(first_dirty);
        let mut bound = active.base_offset.min(max_cleanable_offset);
        if config.min_compaction_lag_ms > 0 {
            let horizon = now_ms.saturating_sub(config.min_compaction_lag_ms);
            for seg in &self.segments[dirty_idx..n - 1] {
                let largest = match seg.max_timestamp_so_far() {
                    ts if ts >= 0 => ts,
                    _ => modified_ms(seg.log_path()),
                };
                if largest > horizon {
                    bound = bound.min(seg.base_offset);
                    break;
                }
            }
        }
        // Round down to a segment start: the segment holding the bound is not cleaned.
        let uncleanable_idx = self
            .segments
            .partition_point(|s| s.base_offset <= bound)
            .saturating_sub(1)
            .min(n - 1);
        let first_uncleanable = self.segments[uncleanable_idx].base_offset;
        if dirty_idx >= uncleanable_idx || first_dirty >= first_uncleanable {
            return Ok(None);
        }
        let clean_bytes: u64 = self.segments[..dirty_idx]
            .iter()
            .map(LogSegment::size)
            .sum();
        let cleanable_bytes: u64 = self.segments[dirty_idx..uncleanable_idx]
            .iter()
            .map(LogSegment::size)
            .sum();
        if cleanable_bytes == 0 {
            return Ok(None);
        }
        let dirty_ratio = cleanable_bytes as f64 / (clean_bytes + cleanable_bytes) as f64;
        let mut forced = false;
        if config.max_compaction_lag_ms < i64::MAX {
            let mut first_ts = None;
            self.segments[dirty_idx].scan_headers(0, |_, h| {
                first_ts = Some(h.max_timestamp());
                false
            })?;
            let limit = now_ms.saturating_sub(config.max_compaction_lag_ms);
            forced = first_ts.is_some_and(|ts| ts >= 0 && ts < limit);
        }
        // Kafka picks a log when its ratio is above the threshold (strictly).
        if !forced && dirty_ratio <= config.min_cleanable_dirty_ratio {
            return Ok(None);
        }
        let mut segments = Vec::with_capacity(uncleanable_idx);
        for (i, seg) in self.segments[..uncleanable_idx].iter().enumerate() {
            let path = seg.log_path().to_path_buf();
            let file = File::open(&path).map_err(storage(&path))?;
            let meta = file.metadata().map_err(storage(&path))?;
            let [_, index, time_index] = self.segment_paths(seg.base_offset);
            let len_of = |p: &Path| fs::metadata(p).map(|m| m.len()).unwrap_or(0);
            segments.push(SegmentSnapshot {
                base_offset: seg.base_offset,
                next_base: self.segments[i + 1].base_offset,
                size: seg.size(),
                identity: identity_of(&meta),
                modified: meta.modified().ok(),
                offset_index_bytes: len_of(&index),
                time_index_bytes: len_of(&time_index),
                path,
                file,
            });
        }
        let mut tail = Vec::new();
        for seg in &self.segments[uncleanable_idx..] {
            let path = seg.log_path().to_path_buf();
            let file = File::open(&path).map_err(storage(&path))?;
            tail.push((path, file, seg.size()));
        }
        Ok(Some(CleanPlan {
            dir: self.dir.clone(),
            segments,
            tail,
            first_dirty_offset: first_dirty,
            first_uncleanable_offset: first_uncleanable,
            dirty_ratio,
            cleanable_bytes,
            forced,
            now_ms,
            delete_retention_ms: config.delete_retention_ms,
            max_segment_bytes: self.config.segment_bytes.min(i32::MAX as u64),
            max_index_size: u64::from(self.config.max_index_size),
            index_interval_bytes: self.config.index_interval_bytes,
            io_buffer_size: DEFAULT_IO_BUFFER_SIZE,
        }))
    }

    /// Swaps the cleaned segments in, crash-safely, after checking that the log still holds the
    /// very files the round read. Short: renames, unlinks and loading the new indexes.
    pub fn commit_clean(&mut self, mut cleaned: CleanedSegments) -> Result<CleanOutcome, LogError> {
        let mut outcome = CleanOutcome {
            first_dirty_offset: None,
            segments_replaced: 0,
            segments_written: 0,
            groups_skipped: 0,
            bytes_before: 0,
            bytes_after: 0,
        };
        let first_base = self.segments.first().map_or(i64::MAX, |s| s.base_offset);
        let active_base = self.segments.last().map_or(i64::MIN, |s| s.base_offset);
        // A segment read by the round may since have been deleted from the front (retention,
        // DeleteRecords); anything else (truncation, a recreated file) voids the whole round,
        // because the offset map may name records that no longer exist.
        for &(base, identity) in &cleaned.read {
            if base < first_base {
                continue;
            }
            let current = self.segments.iter().find(|s| s.base_offset == base);
            let same = current.is_some_and(|s| {
                base != active_base
                    && s.size() == identity.size
                    && fs::metadata(s.log_path()).is_ok_and(|m| identity_of(&m) == identity)
            });
            if !same {
                tracing::info!(dir = %self.dir.display(), base_offset = base,
                    "log changed while it was being cleaned; discarding this cleaning round");
                return Ok(outcome);
            }
        }
        for group in &mut cleaned.groups {
            if group.replaced.iter().any(|&(base, _)| base < first_base) {
                outcome.groups_skipped += 1;
                continue;
            }
            let Some(start) = self
                .segments
                .iter()
                .position(|s| s.base_offset == group.base_offset)
            else {
                outcome.groups_skipped += 1;
                continue;
            };
            let end = start + group.replaced.len();
            if end >= self.segments.len() {
                outcome.groups_skipped += 1;
                continue;
            }
            let bases: Vec<i64> = group.replaced.iter().map(|&(b, _)| b).collect();
            swap_in(&self.dir, group.base_offset, &bases, SwapStep::All)?;
            group.pending = false;
            let (mut segment, indexes_ok) =
                LogSegment::open(&self.dir, group.base_offset, &self.config)?;
            if !indexes_ok {
                segment.recover(self.config.index_interval_bytes)?;
            }
            outcome.bytes_before += self.segments[start..end]
                .iter()
                .map(LogSegment::size)
                .sum::<u64>();
            outcome.bytes_after += segment.size();
            outcome.segments_replaced += end - start;
            outcome.segments_written += 1;
            // The old segments' files are already unlinked; dropping them closes the handles.
            drop(self.segments.splice(start..end, [segment]));
        }
        outcome.first_dirty_offset = Some(cleaned.end_offset);
        Ok(outcome)
    }
}

fn modified_ms(path: &Path) -> i64 {
    fs::metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_millis() as i64)
}

/// How far `swap_in` goes; tests stop early to leave the files of a crash behind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum SwapStep {
    /// `.cleaned` renamed to `.swap` (the commit point).
    Swapped,
    /// ... and the replaced segments deleted.
    OldDeleted,
    All,
}

/// Kafka's `replaceSegments`: `.cleaned` -> `.swap` (log file last: its rename decides), fsync
/// the dir, delete the replaced segments, `.swap` -> final (log last), fsync the dir. A crash at
/// any point leaves either the old segments or a `.swap` log that `complete_interrupted_swaps`
/// finishes.
fn swap_in(dir: &Path, base: i64, replaced: &[i64], stop: SwapStep) -> Result<(), LogError> {
    let name = |b: i64, s: &str| dir.join(segment_file_name(b, s));
    for suffix in [".index", ".timeindex", ".log"] {
        let final_path = name(base, suffix);
        let from = with_suffix(&final_path, CLEANED_FILE_SUFFIX);
        let to = with_suffix(&final_path, SWAP_FILE_SUFFIX);
        fs::rename(&from, &to).map_err(storage(&from))?;
    }
    sync_dir(dir)?;
    if stop == SwapStep::Swapped {
        return Ok(());
    }
    for &b in replaced.iter().rev() {
        for suffix in [".index", ".timeindex", ".log"] {
            remove_if_exists(&name(b, suffix))?;
        }
    }
    if stop == SwapStep::OldDeleted {
        return Ok(());
    }
    for suffix in [".index", ".timeindex", ".log"] {
        let final_path = name(base, suffix);
        let from = with_suffix(&final_path, SWAP_FILE_SUFFIX);
        fs::rename(&from, &final_path).map_err(storage(&from))?;
    }
    sync_dir(dir)
}

fn remove_if_exists(path: &Path) -> Result<(), LogError> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(storage(path)(e)),
    }
}

fn parse_base(name: &str, suffix: &str) -> Option<i64> {
    let stem = name.strip_suffix(suffix)?;
    if stem.len() != 20 || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    stem.parse().ok()
}

/// Run before a partition's segments are listed: finishes or rolls back a swap that a crash
/// interrupted. `.cleaned` files were never committed and go; `.swap` indexes go (rebuilt from
/// the log); a `<base>.log.swap` replaces every segment whose base lies in
/// [base, its next offset), then loses its suffix, and its indexes are rebuilt on open.
pub(crate) fn complete_interrupted_swaps(dir: &Path) -> Result<(), LogError> {
    let mut swaps = Vec::new();
    let mut bases = Vec::new();
    let mut changed = false;
    for entry in fs::read_dir(dir).map_err(storage(dir))? {
        let entry = entry.map_err(storage(dir))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if name.ends_with(CLEANED_FILE_SUFFIX) {
            remove_if_exists(&entry.path())?;
            changed = true;
        } else if let Some(stem) = name.strip_suffix(SWAP_FILE_SUFFIX) {
            if let Some(base) = parse_base(stem, ".log") {
                swaps.push(base);
            } else {
                remove_if_exists(&entry.path())?;
                changed = true;
            }
        } else if let Some(base) = parse_base(name, ".log") {
            bases.push(base);
        }
    }
    for base in swaps {
        let final_log = dir.join(segment_file_name(base, ".log"));
        let swap = with_suffix(&final_log, SWAP_FILE_SUFFIX);
        let next = next_offset_of(&swap, base)?;
        tracing::warn!(file = %swap.display(), replaces_below = next,
            "completing a log cleaner swap interrupted by a crash");
        for &b in bases.iter().filter(|&&b| b >= base && b < next) {
            for suffix in [".log", ".index", ".timeindex"] {
                remove_if_exists(&dir.join(segment_file_name(b, suffix)))?;
            }
        }
        for suffix in [".index", ".timeindex"] {
            remove_if_exists(&dir.join(segment_file_name(base, suffix)))?;
        }
        fs::rename(&swap, &final_log).map_err(storage(&swap))?;
        changed = true;
    }
    if changed {
        sync_dir(dir)?;
    }
    Ok(())
}

/// Next offset after the last whole, CRC-valid batch of a file (its base when empty).
fn next_offset_of(path: &Path, base: i64) -> Result<i64, LogError> {
    let file = File::open(path).map_err(storage(path))?;
    let size = file.metadata().map_err(storage(path))?.len();
    let mut reader = BatchReader::new(&file, path, size, DEFAULT_IO_BUFFER_SIZE);
    let mut next = base;
    loop {
        match reader.next_batch() {
            Ok(Some((_, range))) => {
                let bytes = &reader.buf[range];
                let Ok(h) = BatchHeader::parse(bytes) else {
                    break;
                };
                if compute_crc(bytes) != h.crc() {
                    break;
                }
                next = h.next_offset();
            }
            Ok(None) | Err(LogError::CorruptLog { .. }) => break,
            Err(e) => return Err(e),
        }
    }
    Ok(next)
}

// ---- reading ----

/// Whole batches of one segment file, read in chunks of a fixed buffer (grown only for a single
/// batch larger than the buffer).
struct BatchReader<'a> {
    file: &'a File,
    path: &'a Path,
    end: u64,
    buf: Vec<u8>,
    /// File position of buf[0].
    buf_pos: u64,
    start: usize,
    len: usize,
    bytes_read: u64,
}

impl<'a> BatchReader<'a> {
    fn new(file: &'a File, path: &'a Path, end: u64, chunk: usize) -> BatchReader<'a> {
        BatchReader {
            file,
            path,
            end,
            buf: vec![0; chunk.max(BATCH_HEADER_LEN)],
            buf_pos: 0,
            start: 0,
            len: 0,
            bytes_read: 0,
        }
    }

    /// (file position, range in `buf`) of the next batch.
    fn next_batch(&mut self) -> Result<Option<(u64, std::ops::Range<usize>)>, LogError> {
        loop {
            let avail = self.len - self.start;
            let mut need = BATCH_HEADER_LEN;
            if avail >= BATCH_HEADER_LEN {
                let pos = self.buf_pos + self.start as u64;
                let h = BatchHeader::parse(&self.buf[self.start..self.len])
                    .map_err(|e| corrupt(self.path, pos, e.to_string()))?;
                need = h.size();
                if avail >= need {
                    let range = self.start..self.start + need;
                    self.start += need;
                    return Ok(Some((pos, range)));
                }
            }
            let file_pos = self.buf_pos + self.start as u64;
            if file_pos >= self.end && avail == 0 {
                return Ok(None);
            }
            self.buf.copy_within(self.start..self.len, 0);
            self.buf_pos = file_pos;
            self.start = 0;
            self.len = avail;
            if need > self.buf.len() {
                self.buf.resize(need, 0);
            }
            let want =
                ((self.buf.len() - self.len) as u64).min(self.end - (file_pos + avail as u64));
            if want == 0 {
                return Err(corrupt(
                    self.path,
                    file_pos,
                    "batch runs past the end of the segment",
                ));
            }
            let want = want as usize;
            self.file
                .read_exact_at(
                    &mut self.buf[self.len..self.len + want],
                    self.buf_pos + self.len as u64,
                )
                .map_err(storage(self.path))?;
            self.len += want;
            self.bytes_read += want as u64;
        }
    }
}

/// The batch to walk records of: the batch itself when uncompressed, else a copy of its header
/// (compression bits cleared, length fixed) followed by the decompressed records in `scratch`.
fn records_view<'a>(
    batch: Batch<'a>,
    scratch: &'a mut Vec<u8>,
    path: &Path,
    pos: u64,
) -> Result<Batch<'a>, LogError> {
    let codec = batch
        .header
        .compression()
        .map_err(|e| corrupt(path, pos, e.to_string()))?;
    if codec == Compression::None {
        return Ok(batch);
    }
    scratch.clear();
    scratch.extend_from_slice(&batch.bytes[..BATCH_HEADER_LEN]);
    decompress(
        codec,
        &batch.bytes[BATCH_HEADER_LEN..],
        MAX_DECOMPRESSED_BATCH_BYTES,
        scratch,
    )
    .map_err(|e| corrupt(path, pos, format!("cannot decompress batch: {e}")))?;
    let len = i32::try_from(scratch.len() - LOG_OVERHEAD)
        .map_err(|_| corrupt(path, pos, "decompressed batch too large"))?;
    scratch[8..12].copy_from_slice(&len.to_be_bytes());
    let attributes = batch.header.attributes() & !COMPRESSION_MASK;
    scratch[ATTRIBUTES_AT..ATTRIBUTES_AT + 2].copy_from_slice(&attributes.to_be_bytes());
    let bytes: &'a [u8] = scratch;
    let header = BatchHeader::parse(bytes).map_err(|e| corrupt(path, pos, e.to_string()))?;
    Ok(Batch {
        header,
        bytes,
        position: batch.position,
    })
}

// ---- codecs ----

fn read_bounded(mut r: impl Read, limit: usize, out: &mut Vec<u8>) -> io::Result<()> {
    let start = out.len();
    r.by_ref().take(limit as u64 + 1).read_to_end(out)?;
    if out.len() - start > limit {
        return Err(io::Error::other(format!(
            "records inflate past {limit} bytes"
        )));
    }
    Ok(())
}

fn snappy_raw(block: &[u8], limit: usize, out: &mut Vec<u8>) -> io::Result<()> {
    let n = snap::raw::decompress_len(block).map_err(io::Error::other)?;
    if n > limit {
        return Err(io::Error::other(format!(
            "records inflate past {limit} bytes"
        )));
    }
    let start = out.len();
    out.resize(start + n, 0);
    snap::raw::Decoder::new()
        .decompress(block, &mut out[start..])
        .map_err(io::Error::other)?;
    Ok(())
}

/// Appends the decompressed form of a batch's records section to `out`.
fn decompress(codec: Compression, input: &[u8], limit: usize, out: &mut Vec<u8>) -> io::Result<()> {
    match codec {
        Compression::None => {
            out.extend_from_slice(input);
            Ok(())
        }
        Compression::Gzip => read_bounded(flate2::read::MultiGzDecoder::new(input), limit, out),
        Compression::Lz4 => read_bounded(lz4::Decoder::new(input)?, limit, out),
        Compression::Zstd => read_bounded(zstd::stream::read::Decoder::new(input)?, limit, out),
        Compression::Snappy => {
            let Some(mut rest) = input.strip_prefix(&XERIAL_SNAPPY_HEADER[..8]) else {
                return snappy_raw(input, limit, out);
            };
            rest = rest
                .get(8..)
                .ok_or_else(|| io::Error::other("short xerial header"))?;
            let start = out.len();
            while !rest.is_empty() {
                let (len, tail) = rest
                    .split_first_chunk::<4>()
                    .ok_or_else(|| io::Error::other("truncated xerial block length"))?;
                let len = u32::from_be_bytes(*len) as usize;
                let block = tail
                    .get(..len)
                    .ok_or_else(|| io::Error::other("truncated xerial block"))?;
                snappy_raw(block, limit.saturating_sub(out.len() - start), out)?;
                rest = &tail[len..];
            }
            Ok(())
        }
    }
}

/// Appends `input` compressed as Kafka's clients frame it.
fn compress(codec: Compression, input: &[u8], out: &mut Vec<u8>) -> io::Result<()> {
    match codec {
        Compression::None => out.extend_from_slice(input),
        Compression::Gzip => {
            let mut e = flate2::write::GzEncoder::new(out, flate2::Compression::new(GZIP_LEVEL));
            e.write_all(input)?;
            e.finish()?;
        }
        Compression::Lz4 => {
            // Independent 64 KiB blocks and no content checksum, as Kafka's LZ4 stream writes.
            let mut e = lz4::EncoderBuilder::new()
                .level(LZ4_LEVEL)
                .block_mode(lz4::BlockMode::Independent)
                .block_size(lz4::BlockSize::Max64KB)
                .checksum(lz4::ContentChecksum::NoChecksum)
                .build(out)?;
            e.write_all(input)?;
            e.finish().1?;
        }
        Compression::Zstd => {
            let mut e = zstd::stream::write::Encoder::new(out, ZSTD_LEVEL)?;
            e.write_all(input)?;
            e.finish()?;
        }
        Compression::Snappy => {
            out.extend_from_slice(XERIAL_SNAPPY_HEADER);
            let mut encoder = snap::raw::Encoder::new();
            for block in input.chunks(XERIAL_BLOCK) {
                let at = out.len();
                out.extend_from_slice(&[0; 4]);
                out.resize(at + 4 + snap::raw::max_compress_len(block.len()), 0);
                let n = encoder
                    .compress(block, &mut out[at + 4..])
                    .map_err(io::Error::other)?;
                out.truncate(at + 4 + n);
                out[at..at + 4].copy_from_slice(&(n as u32).to_be_bytes());
            }
        }
    }
    Ok(())
}

// ---- encoding ----

fn put_varlong(out: &mut Vec<u8>, v: i64) {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    while z >= 0x80 {
        out.push((z as u8) | 0x80);
        z >>= 7;
    }
    out.push(z as u8);
}

fn put_nullable(out: &mut Vec<u8>, bytes: Option<&[u8]>) {
    match bytes {
        None => put_varlong(out, -1),
        Some(b) => {
            put_varlong(out, b.len() as i64);
            out.extend_from_slice(b);
        }
    }
}

/// The record's own timestamp, unaffected by the batch's baseTimestamp (which a delete horizon
/// replaces) and by LogAppendTime (where readers use the batch maxTimestamp anyway).
fn raw_timestamp(h: &BatchHeader<'_>, r: &RecordView<'_>) -> i64 {
    h.base_timestamp().wrapping_add(r.timestamp_delta)
}

fn encode_record(
    out: &mut Vec<u8>,
    body: &mut Vec<u8>,
    r: &RecordView<'_>,
    ts: i64,
    base_offset: i64,
    base_ts: i64,
) -> Result<(), crate::protocol::record_batch::BatchError> {
    body.clear();
    body.push(r.attributes as u8);
    put_varlong(body, ts.wrapping_sub(base_ts));
    put_varlong(body, r.offset - base_offset);
    put_nullable(body, r.key);
    put_nullable(body, r.value);
    let mut count = 0i64;
    let mut headers = Vec::new();
    for h in r.headers() {
        let (k, v) = h?;
        put_nullable(&mut headers, Some(k));
        put_nullable(&mut headers, v);
        count += 1;
    }
    put_varlong(body, count);
    body.extend_from_slice(&headers);
    put_varlong(out, body.len() as i64);
    out.extend_from_slice(body);
    Ok(())
}

struct HeaderFields {
    base_offset: i64,
    leader_epoch: i32,
    attributes: i16,
    last_offset_delta: i32,
    base_timestamp: i64,
    max_timestamp: i64,
    producer_id: i64,
    producer_epoch: i16,
    base_sequence: i32,
    records_count: i32,
}

/// Appends a header for `records` (already compressed as `attributes` says) and the records.
fn write_batch(out: &mut Vec<u8>, f: &HeaderFields, records: &[u8]) {
    let start = out.len();
    let batch_length = (BATCH_HEADER_LEN - LOG_OVERHEAD + records.len()) as i32;
    out.extend_from_slice(&f.base_offset.to_be_bytes());
    out.extend_from_slice(&batch_length.to_be_bytes());
    out.extend_from_slice(&f.leader_epoch.to_be_bytes());
    out.push(MAGIC_V2 as u8);
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&f.attributes.to_be_bytes());
    out.extend_from_slice(&f.last_offset_delta.to_be_bytes());
    out.extend_from_slice(&f.base_timestamp.to_be_bytes());
    out.extend_from_slice(&f.max_timestamp.to_be_bytes());
    out.extend_from_slice(&f.producer_id.to_be_bytes());
    out.extend_from_slice(&f.producer_epoch.to_be_bytes());
    out.extend_from_slice(&f.base_sequence.to_be_bytes());
    out.extend_from_slice(&f.records_count.to_be_bytes());
    out.extend_from_slice(records);
    let crc = compute_crc(&out[start..]);
    out[start + 17..start + 21].copy_from_slice(&crc.to_be_bytes());
}

// ---- cleaning ----

/// Scratch buffers reused across batches.
#[derive(Default)]
struct Scratch {
    decompressed: Vec<u8>,
    keep: Vec<bool>,
    records: Vec<u8>,
    body: Vec<u8>,
    compressed: Vec<u8>,
    out: Vec<u8>,
}

/// Writes one cleaned segment and its indexes, with Kafka's index rule (an entry once more than
/// index.interval.bytes were written since the last one).
struct CleanedWriter {
    log: BufWriter<File>,
    log_path: PathBuf,
    offset_index: OffsetIndex,
    time_index: TimeIndex,
    position: u64,
    bytes_since_index: u64,
    max_timestamp: i64,
    offset_of_max_timestamp: i64,
    interval: u64,
}

impl CleanedWriter {
    fn create(plan: &CleanPlan, base: i64) -> Result<CleanedWriter, LogError> {
        let path = |s: &str| {
            plan.dir
                .join(segment_file_name(base, s) + CLEANED_FILE_SUFFIX)
        };
        let log_path = path(".log");
        let file = File::create(&log_path).map_err(storage(&log_path))?;
        let index_path = path(".index");
        let time_path = path(".timeindex");
        let max_index = plan.max_index_size.min(u64::from(u32::MAX)) as u32;
        Ok(CleanedWriter {
            log: BufWriter::with_capacity(plan.io_buffer_size, file),
            offset_index: OffsetIndex::create(index_path.clone(), base, max_index)
                .map_err(storage(&index_path))?,
            time_index: TimeIndex::create(time_path.clone(), base, max_index)
                .map_err(storage(&time_path))?,
            log_path,
            position: 0,
            bytes_since_index: 0,
            max_timestamp: NO_TIMESTAMP,
            offset_of_max_timestamp: base,
            interval: u64::from(plan.index_interval_bytes),
        })
    }

    /// Appends whole batches, indexing them.
    fn append(&mut self, batches: &[u8]) -> Result<(), LogError> {
        if self.position + batches.len() as u64 > u64::from(u32::MAX) {
            return Err(other(
                &self.log_path,
                "cleaned segment would exceed 4 GiB".into(),
            ));
        }
        for batch in crate::protocol::record_batch::BatchIter::new(batches) {
            let batch = batch.map_err(|e| corrupt(&self.log_path, self.position, e.to_string()))?;
            let h = batch.header;
            if h.max_timestamp() > self.max_timestamp {
                self.max_timestamp = h.max_timestamp();
                self.offset_of_max_timestamp = h.last_offset();
            }
            if self.bytes_since_index > self.interval {
                let position = self.position + batch.position as u64;
                self.offset_index
                    .append(h.last_offset(), position)
                    .map_err(storage(self.offset_index.path()))?;
                self.time_index
                    .maybe_append(self.max_timestamp, self.offset_of_max_timestamp, false)
                    .map_err(storage(self.time_index.path()))?;
                self.bytes_since_index = 0;
            }
            self.bytes_since_index += batch.bytes.len() as u64;
        }
        self.log
            .write_all(batches)
            .map_err(storage(&self.log_path))?;
        self.position += batches.len() as u64;
        Ok(())
    }

    /// Final time index entry, trimmed indexes, everything fsynced; the log keeps the replaced
    /// segments' modification time, as Kafka does, so time-based decisions do not restart.
    fn finish(mut self, modified: Option<SystemTime>) -> Result<u64, LogError> {
        self.time_index
            .maybe_append(self.max_timestamp, self.offset_of_max_timestamp, true)
            .map_err(storage(self.time_index.path()))?;
        for r in [self.offset_index.trim(), self.offset_index.sync()] {
            r.map_err(storage(self.offset_index.path()))?;
        }
        for r in [self.time_index.trim(), self.time_index.sync()] {
            r.map_err(storage(self.time_index.path()))?;
        }
        let file = self
            .log
            .into_inner()
            .map_err(|e| storage(&self.log_path)(e.into_error()))?;
        if let Some(t) = modified {
            file.set_modified(t).map_err(storage(&self.log_path))?;
        }
        file.sync_all().map_err(storage(&self.log_path))?;
        Ok(self.position)
    }
}

/// Kafka's `groupSegmentsBySize`: consecutive segments whose total log and index sizes fit one
/// segment and whose offsets stay within 2^31 of the first base.
fn group_segments(
    segs: &[SegmentSnapshot],
    max_size: u64,
    max_index_size: u64,
) -> Vec<std::ops::Range<usize>> {
    let mut groups = Vec::new();
    let mut i = 0;
    while i < segs.len() {
        let start = i;
        let (mut log, mut index, mut time) = (
            segs[i].size,
            segs[i].offset_index_bytes,
            segs[i].time_index_bytes,
        );
        i += 1;
        while i < segs.len()
            && log + segs[i].size <= max_size
            && index + segs[i].offset_index_bytes <= max_index_size
            && time + segs[i].time_index_bytes <= max_index_size
            && (segs[i].size == 0
                || segs[i].next_base - 1 - segs[start].base_offset <= i64::from(i32::MAX))
        {
            log += segs[i].size;
            index += segs[i].offset_index_bytes;
            time += segs[i].time_index_bytes;
            i += 1;
        }
        groups.push(start..i);
    }
    groups
}

impl CleanPlan {
    /// Sets the read chunk size (log.cleaner.io.buffer.size); the default is 1 MiB.
    pub fn set_io_buffer_size(&mut self, bytes: usize) {
        self.io_buffer_size = bytes.max(BATCH_HEADER_LEN);
    }

    /// The heavy part, without the partition lock: builds the offset map and writes the cleaned
    /// segments as `.cleaned` files. `map` is reused across rounds (it is cleared here).
    pub fn clean(
        self,
        map: &mut OffsetMap,
        mut throttler: Option<&mut Throttler>,
    ) -> Result<CleanedSegments, LogError> {
        let mut stats = CleanerStats::default();
        let mut scratch = Scratch::default();
        let mut throttle = |bytes: u64, written: bool, stats: &mut CleanerStats| {
            if written {
                stats.bytes_written += bytes;
            } else {
                stats.bytes_read += bytes;
            }
            if let Some(t) = throttler.as_deref_mut() {
                t.maybe_throttle(bytes);
            }
        };

        // Pass 0: the last batch of each producer, which keeps its header even when all its
        // records go, so the producer's last sequence survives (Kafka reads this from its
        // producer state; one entry per producer id present in the log).
        let mut last_batch_of_producer: HashMap<i64, i64> = HashMap::new();
        let all = self
            .segments
            .iter()
            .map(|s| (&s.path, &s.file, s.size))
            .chain(self.tail.iter().map(|(p, f, s)| (p, f, *s)));
        for (path, file, size) in all {
            let mut reader = BatchReader::new(file, path, size, self.io_buffer_size);
            while let Some((_, range)) = reader.next_batch()? {
                let h = BatchHeader::parse(&reader.buf[range])
                    .map_err(|e| corrupt(path, 0, e.to_string()))?;
                if h.producer_id() >= 0 {
                    last_batch_of_producer.insert(h.producer_id(), h.last_offset());
                }
            }
            throttle(reader.bytes_read, false, &mut stats);
        }

        // Pass 1: key -> latest offset over the dirty range, until the map is full.
        map.clear();
        let first_dirty = self.first_dirty_offset;
        map.latest_offset = first_dirty - 1;
        let dirty_from = self
            .segments
            .partition_point(|s| s.base_offset <= first_dirty)
            .saturating_sub(1);
        'segments: for seg in &self.segments[dirty_from..] {
            let mut reader = BatchReader::new(&seg.file, &seg.path, seg.size, self.io_buffer_size);
            loop {
                let next = reader.next_batch();
                let Some((pos, range)) = next? else { break };
                let bytes = &reader.buf[range];
                let header = BatchHeader::parse(bytes)
                    .map_err(|e| corrupt(&seg.path, pos, e.to_string()))?;
                if header.last_offset() < first_dirty {
                    continue;
                }
                if !header.is_control() {
                    let batch = Batch {
                        header,
                        bytes,
                        position: 0,
                    };
                    let view = records_view(batch, &mut scratch.decompressed, &seg.path, pos)?;
                    let records = view.records().into_iter().flatten();
                    for record in records {
                        let record = record.map_err(|e| corrupt(&seg.path, pos, e.to_string()))?;
                        if record.offset < first_dirty {
                            continue;
                        }
                        if let Some(key) = record.key {
                            let h = map.hash(key);
                            if !map.put(h, record.offset) {
                                throttle(reader.bytes_read, false, &mut stats);
                                break 'segments;
                            }
                        }
                        map.latest_offset = map.latest_offset.max(record.offset);
                    }
                }
                map.latest_offset = map.latest_offset.max(header.last_offset());
            }
            throttle(reader.bytes_read, false, &mut stats);
        }
        stats.keys_mapped = map.len() as u64;
        let end_offset = map.latest_offset + 1;

        // Pass 2: rewrite every segment that starts below the end of the mapped range.
        let upto = self
            .segments
            .partition_point(|s| s.base_offset < end_offset);
        let groups = group_segments(
            &self.segments[..upto],
            self.max_segment_bytes,
            self.max_index_size,
        );
        let horizon_if_new = self.now_ms.saturating_add(self.delete_retention_ms);
        let mut cleaned_groups = Vec::with_capacity(groups.len());
        for range in groups {
            let group_segs = &self.segments[range];
            let base = group_segs[0].base_offset;
            let mut group = CleanedGroup {
                base_offset: base,
                replaced: group_segs
                    .iter()
                    .map(|s| (s.base_offset, s.identity))
                    .collect(),
                size: 0,
                pending: true,
                dir: self.dir.clone(),
            };
            let mut writer = CleanedWriter::create(&self, base)?;
            for seg in group_segs {
                let mut reader =
                    BatchReader::new(&seg.file, &seg.path, seg.size, self.io_buffer_size);
                let mut consumed = 0;
                loop {
                    let next = reader.next_batch();
                    let Some((pos, range)) = next? else { break };
                    let batch = BatchHeader::parse(&reader.buf[range.clone()])
                        .map(|header| Batch {
                            header,
                            bytes: &reader.buf[range],
                            position: 0,
                        })
                        .map_err(|e| corrupt(&seg.path, pos, e.to_string()))?;
                    if !batch.is_crc_valid() {
                        return Err(corrupt(&seg.path, pos, "CRC mismatch"));
                    }
                    let retain_empty = batch.header.producer_id() >= 0
                        && last_batch_of_producer.get(&batch.header.producer_id())
                            == Some(&batch.header.last_offset());
                    clean_batch(
                        batch,
                        map,
                        retain_empty,
                        self.now_ms,
                        horizon_if_new,
                        &mut scratch,
                        &mut stats,
                    )
                    .map_err(|reason| corrupt(&seg.path, pos, reason))?;
                    if scratch.out.len() >= self.io_buffer_size {
                        writer.append(&scratch.out)?;
                        scratch.out.clear();
                    }
                    throttle(reader.bytes_read - consumed, false, &mut stats);
                    consumed = reader.bytes_read;
                }
            }
            writer.append(&scratch.out)?;
            scratch.out.clear();
            let modified = group_segs.last().and_then(|s| s.modified);
            group.size = writer.finish(modified)?;
            throttle(group.size, true, &mut stats);
            cleaned_groups.push(group);
        }
        Ok(CleanedSegments {
            groups: cleaned_groups,
            read: self
                .segments
                .iter()
                .map(|s| (s.base_offset, s.identity))
                .collect(),
            end_offset,
            stats,
        })
    }
}

/// Kafka's `MemoryRecords.filterTo` with the cleaner's filter, for one batch: appends to
/// `scratch.out` the batch byte for byte, a rebuilt batch of the kept records (same codec, base
/// offset, lastOffsetDelta, producer fields, leader epoch; each record at its original offset),
/// an empty header (the producer's last batch), or nothing.
fn clean_batch(
    batch: Batch<'_>,
    map: &OffsetMap,
    retain_empty: bool,
    now_ms: i64,
    horizon_if_new: i64,
    scratch: &mut Scratch,
    stats: &mut CleanerStats,
) -> Result<(), String> {
    let h = batch.header;
    stats.records_read += u64::from(h.records_count().max(0).unsigned_abs());
    // Control batches (transaction markers) stay as they are; nothing past the mapped range
    // can be superseded yet.
    if h.is_control() || h.base_offset() > map.latest_offset {
        scratch.out.extend_from_slice(batch.bytes);
        stats.records_retained += u64::from(h.records_count().max(0).unsigned_abs());
        stats.batches_copied += 1;
        return Ok(());
    }
    let codec = h.compression().map_err(|e| e.to_string())?;
    let keeps_deletes = !h.has_delete_horizon() || now_ms < h.base_timestamp();
    let view = records_view_for_clean(batch, &mut scratch.decompressed)?;
    scratch.keep.clear();
    let mut kept = 0usize;
    let mut tombstone_kept = false;
    for record in view.records().into_iter().flatten() {
        let r = record.map_err(|e| e.to_string())?;
        let keep = if r.offset > map.latest_offset {
            true
        } else if let Some(key) = r.key {
            let latest = map.get(map.hash(key)).is_none_or(|o| r.offset >= o);
            latest && (r.value.is_some() || keeps_deletes)
        } else {
            // Records without a key cannot be compacted; Kafka drops them.
            false
        };
        scratch.keep.push(keep);
        if keep {
            kept += 1;
            tombstone_kept |= r.value.is_none();
        }
    }
    stats.records_retained += kept as u64;
    let need_horizon = tombstone_kept && !h.has_delete_horizon();
    if kept == scratch.keep.len() && !need_horizon {
        scratch.out.extend_from_slice(batch.bytes);
        stats.batches_copied += 1;
        return Ok(());
    }
    let type_bits = h.attributes() & (TIMESTAMP_TYPE_BIT | TRANSACTIONAL_BIT | CONTROL_BIT);
    if kept == 0 {
        if retain_empty {
            // Kafka's writeEmptyHeader: the offsets and producer fields, no records.
            write_batch(
                &mut scratch.out,
                &HeaderFields {
                    base_offset: h.base_offset(),
                    leader_epoch: h.partition_leader_epoch(),
                    attributes: type_bits,
                    last_offset_delta: h.last_offset_delta(),
                    base_timestamp: NO_TIMESTAMP,
                    max_timestamp: h.max_timestamp(),
                    producer_id: h.producer_id(),
                    producer_epoch: h.producer_epoch(),
                    base_sequence: h.base_sequence(),
                    records_count: 0,
                },
                &[],
            );
            stats.batches_emptied += 1;
        } else {
            stats.batches_dropped += 1;
        }
        return Ok(());
    }
    // KIP-534: the first clean that keeps a tombstone stamps the batch with its delete horizon
    // (stored as baseTimestamp); a later clean past it drops the tombstone.
    let horizon = if need_horizon {
        Some(horizon_if_new)
    } else if h.has_delete_horizon() {
        Some(h.base_timestamp())
    } else {
        None
    };
    let mut first_ts = None;
    let mut max_ts = NO_TIMESTAMP;
    for (record, &keep) in view.records().into_iter().flatten().zip(&scratch.keep) {
        if keep {
            let r = record.map_err(|e| e.to_string())?;
            let ts = raw_timestamp(&h, &r);
            first_ts.get_or_insert(ts);
            max_ts = max_ts.max(ts);
        }
    }
    let base_ts = horizon.or(first_ts).unwrap_or(NO_TIMESTAMP);
    if h.timestamp_type() == TimestampType::LogAppendTime {
        max_ts = h.max_timestamp();
    }
    scratch.records.clear();
    for (record, &keep) in view.records().into_iter().flatten().zip(&scratch.keep) {
        if keep {
            let r = record.map_err(|e| e.to_string())?;
            let ts = raw_timestamp(&h, &r);
            encode_record(
                &mut scratch.records,
                &mut scratch.body,
                &r,
                ts,
                h.base_offset(),
                base_ts,
            )
            .map_err(|e| e.to_string())?;
        }
    }
    let mut attributes = type_bits | i16::from(codec.id());
    if horizon.is_some() {
        attributes |= DELETE_HORIZON_BIT;
    }
    let fields = HeaderFields {
        base_offset: h.base_offset(),
        leader_epoch: h.partition_leader_epoch(),
        attributes,
        last_offset_delta: h.last_offset_delta(),
        base_timestamp: base_ts,
        max_timestamp: max_ts,
        producer_id: h.producer_id(),
        producer_epoch: h.producer_epoch(),
        base_sequence: h.base_sequence(),
        records_count: kept as i32,
    };
    if codec == Compression::None {
        write_batch(&mut scratch.out, &fields, &scratch.records);
    } else {
        scratch.compressed.clear();
        compress(codec, &scratch.records, &mut scratch.compressed).map_err(|e| e.to_string())?;
        write_batch(&mut scratch.out, &fields, &scratch.compressed);
    }
    stats.batches_rewritten += 1;
    Ok(())
}

fn records_view_for_clean<'a>(
    batch: Batch<'a>,
    scratch: &'a mut Vec<u8>,
) -> Result<Batch<'a>, String> {
    records_view(batch, scratch, Path::new(""), 0).map_err(|e| match e {
        LogError::CorruptLog { reason, .. } => reason,
        other => other.to_string(),
    })
}

#[cfg(test)]
mod tests;
