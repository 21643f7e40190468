//! A partition log in Apache Kafka's on-disk format: `<log.dir>/<topic>-<partition>/` holding
//! `<20-digit base offset>.log` segments of v2 batches, sparse `.index` / `.timeindex` files and
//! `leader-epoch-checkpoint`; plus the log dir's offset checkpoint files.
//!
//! It owns offsets (assignment on leader append, ordering on follower append), segment rolling,
//! the log start offset, retention and DeleteRecords (`retention.rs`), the flush policy,
//! recovery after an unclean shutdown, reads by offset and by timestamp, and truncation. It
//! knows nothing of the network, of high watermarks beyond what a caller passes, of timers
//! (callers pass `now_ms` to `enforce_retention`, `maybe_roll`, `maybe_flush`), or of locking:
//! the broker wraps each partition in its own lock. It does not write the log dir's checkpoint
//! files itself: the broker collects `log_start_offset()` / `recovery_point()` of every log.
//!
//! Durability: every roll fsyncs the segment it seals, so the recovery point (`recovery_point`,
//! the offset below which everything is on disk) is at least the active segment's base; a
//! `flush` (flush.messages / flush.ms, or the caller) moves it to the log end.
//!
//! Clean shutdown marker: `close()` writes `.kraftd_cleanshutdown` inside the partition dir (Kafka
//! keeps one `.kafka_cleanshutdown` per log dir; per partition lets a log open on its own). With
//! it, open trusts the files. Without it, every segment holding offsets at or above the
//! recovery point from `LogOpenOptions` (or, when none was checkpointed, the last segment) is
//! re-read batch by batch (length, magic, CRC, offset order); the first bad batch and all after
//! it, later segments included, are dropped and one warning per partition names the file, byte
//! position, bytes and batches dropped. Segments below the recovery point are not re-read.
//! Any segment whose index is missing or fails its sanity check is rebuilt.
//!
//! File descriptors: only the active segment keeps its files open; inactive segments read
//! through a bounded process-wide handle cache (`handles.rs`).

mod checkpoint;
mod cleaner;
pub mod handles;
mod index;
pub mod meta_properties;
mod retention;
mod segment;

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use thiserror::Error;

use crate::protocol::record_batch::{
    BatchHeader, BatchIter, TimestampType, set_base_offset, set_log_append_time,
    set_partition_leader_epoch,
};

pub use checkpoint::{
    LEADER_EPOCH_CHECKPOINT, LOG_START_OFFSET_CHECKPOINT, LogDirCheckpoints,
    RECOVERY_POINT_CHECKPOINT, REPLICATION_OFFSET_CHECKPOINT,
};
use checkpoint::{LeaderEpochCache, storage, sync_dir};
pub use cleaner::{
    CLEANER_OFFSET_CHECKPOINT, CleanOutcome, CleanPlan, CleanedSegments, CleanerStats,
    CompactionConfig, DEFAULT_DEDUPE_BUFFER_SIZE, DEFAULT_DEDUPE_LOAD_FACTOR, OffsetMap, Throttler,
    cleaner_offset_checkpoint_path,
};
pub use retention::RetentionResult;
use segment::{BatchMeta, LogSegment, segment_file_name};

pub const CLEAN_SHUTDOWN_FILE: &str = ".kraftd_cleanshutdown";

/// Per-topic log settings, named after Kafka's topic configs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogConfig {
    /// segment.bytes
    pub segment_bytes: u64,
    /// segment.ms
    pub segment_ms: i64,
    /// index.interval.bytes
    pub index_interval_bytes: u32,
    /// segment.index.bytes
    pub max_index_size: u32,
    /// flush.messages
    pub flush_interval_messages: u64,
    /// flush.ms
    pub flush_interval_ms: i64,
    /// message.timestamp.type
    pub message_timestamp_type: TimestampType,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            segment_bytes: 1024 * 1024 * 1024,
            segment_ms: 7 * 24 * 60 * 60 * 1000,
            index_interval_bytes: 4096,
            max_index_size: 10 * 1024 * 1024,
            flush_interval_messages: i64::MAX as u64,
            flush_interval_ms: i64::MAX,
            message_timestamp_type: TimestampType::CreateTime,
        }
    }
}

#[derive(Debug, Error)]
pub enum LogError {
    #[error("offset {offset} is out of range [{log_start_offset}, {log_end_offset}]")]
    OffsetOutOfRange {
        offset: i64,
        log_start_offset: i64,
        log_end_offset: i64,
    },
    /// On-disk data or a replicated batch failed its checks.
    #[error("corrupt record batch in {} at byte {position}: {reason}", path.display())]
    CorruptLog {
        path: PathBuf,
        position: u64,
        reason: String,
    },
    /// The buffer given to an append is not a sequence of whole v2 batches.
    #[error("invalid records: {0}")]
    InvalidRecord(String),
    /// One append larger than segment.bytes (Kafka's RecordBatchTooLargeException).
    #[error("append of {size} bytes exceeds segment.bytes {segment_bytes}")]
    RecordBatchTooLarge { size: usize, segment_bytes: u64 },
    /// A follower append starting below the log end offset (Kafka's
    /// UnexpectedAppendOffsetException, which is not a client-facing error).
    #[error(
        "follower append starts at offset {first_offset}, below log end offset {log_end_offset}"
    )]
    UnexpectedAppendOffset {
        first_offset: i64,
        log_end_offset: i64,
    },
    #[error("I/O error on {}: {source}", path.display())]
    Storage { path: PathBuf, source: io::Error },
    #[error("corrupt checkpoint file {}: {reason}", path.display())]
    CorruptCheckpoint { path: PathBuf, reason: String },
}

impl LogError {
    pub fn kafka_error_code(&self) -> i16 {
        match self {
            LogError::OffsetOutOfRange { .. } => 1,
            LogError::CorruptLog { .. } => 2,
            LogError::RecordBatchTooLarge { .. } => 18,
            LogError::InvalidRecord(_) => 87,
            LogError::UnexpectedAppendOffset { .. } => -1,
            LogError::Storage { .. } | LogError::CorruptCheckpoint { .. } => 56,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppendInfo {
    pub first_offset: i64,
    pub last_offset: i64,
    pub max_timestamp: i64,
    /// Last offset of the batch holding max_timestamp (Kafka's shallow offset).
    pub offset_of_max_timestamp: i64,
    /// Set when the topic uses LogAppendTime (the produce response's log_append_time_ms).
    pub log_append_time: Option<i64>,
    pub record_count: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadInfo {
    /// Whole batches, exactly as stored.
    pub records: Bytes,
    /// The offset after the last returned batch, or the fetch offset when nothing was returned.
    pub next_fetch_offset: i64,
    pub log_start_offset: i64,
    pub log_end_offset: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimestampAndOffset {
    pub timestamp: i64,
    pub offset: i64,
    pub leader_epoch: Option<i32>,
}

/// What the log dir's checkpoint files say about one partition, passed to `open_with`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LogOpenOptions {
    /// From log-start-offset-checkpoint. The log starts at the larger of this and its first
    /// segment's base; a value above the log end offset empties the log and restarts it there
    /// (Kafka's LogLoader does the same).
    pub log_start_offset: Option<i64>,
    /// From recovery-point-offset-checkpoint: without a clean-shutdown marker every segment
    /// holding offsets at or above it is scanned. `None` (no entry) scans the last segment
    /// only, which is safe because every roll fsyncs the segment it seals.
    pub recovery_point: Option<i64>,
}

impl LogOpenOptions {
    /// Looks `topic`/`partition` up in the maps `LogDirCheckpoints::read` returned.
    pub fn from_checkpoints(
        recovery_points: &std::collections::BTreeMap<(String, i32), i64>,
        log_start_offsets: &std::collections::BTreeMap<(String, i32), i64>,
        topic: &str,
        partition: i32,
    ) -> LogOpenOptions {
        let key = (topic.to_string(), partition);
        LogOpenOptions {
            log_start_offset: log_start_offsets.get(&key).copied(),
            recovery_point: recovery_points.get(&key).copied(),
        }
    }
}

/// What recovery cut off, for the one warning line per partition.
struct Truncation {
    file: PathBuf,
    position: u64,
    bytes: u64,
    batches: u64,
    segments_deleted: usize,
    reason: String,
}

/// `<log_dir>/<topic>-<partition>`.
pub fn partition_dir(log_dir: &Path, topic: &str, partition: i32) -> PathBuf {
    log_dir.join(format!("{topic}-{partition}"))
}

pub struct PartitionLog {
    dir: PathBuf,
    config: LogConfig,
    /// Sorted by base offset, never empty; the last one is active.
    segments: Vec<LogSegment>,
    log_start_offset: i64,
    log_end_offset: i64,
    recovery_point: i64,
    epochs: LeaderEpochCache,
    unflushed_messages: u64,
    last_flush_ms: Option<i64>,
    /// segment.jitter.ms: each new segment draws a jitter below it (Kafka's rollJitterMs).
    segment_jitter_ms: i64,
    /// Reused per append so the hot path does not allocate per batch.
    scratch: Vec<BatchMeta>,
}

fn parse_segment_base(name: &str, suffix: &str) -> Option<i64> {
    let stem = name.strip_suffix(suffix)?;
    if stem.len() != 20 || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    stem.parse().ok()
}

impl PartitionLog {
    /// Opens (or creates) the log in `dir` with no checkpoint information.
    pub fn open(dir: &Path, config: LogConfig) -> Result<PartitionLog, LogError> {
        Self::open_with(dir, config, LogOpenOptions::default())
    }

    /// Opens the log with the log start offset and recovery point from the log dir's
    /// checkpoint files. Without a clean-shutdown marker, every segment holding offsets at or
    /// above the recovery point is re-read (CRC, offsets), a bad tail is cut and every later
    /// segment deleted, with one warning line saying what was dropped. Segments below the
    /// recovery point are trusted as they were fsynced before it was written.
    pub fn open_with(
        dir: &Path,
        config: LogConfig,
        options: LogOpenOptions,
    ) -> Result<PartitionLog, LogError> {
        fs::create_dir_all(dir).map_err(storage(dir))?;
        cleaner::complete_interrupted_swaps(dir)?;
        let marker = dir.join(CLEAN_SHUTDOWN_FILE);
        let clean = marker.exists();

        let mut bases = Vec::new();
        let mut orphans = Vec::new();
        for entry in fs::read_dir(dir).map_err(storage(dir))? {
            let entry = entry.map_err(storage(dir))?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if let Some(base) = parse_segment_base(name, ".log") {
                bases.push(base);
            } else if let Some(base) = parse_segment_base(name, ".index")
                .or_else(|| parse_segment_base(name, ".timeindex"))
            {
                orphans.push((base, entry.path()));
            }
        }
        bases.sort_unstable();
        for (base, path) in orphans {
            if bases.binary_search(&base).is_err() {
                fs::remove_file(&path).map_err(storage(&path))?;
            }
        }

        let scan_from = options
            .recovery_point
            .unwrap_or_else(|| bases.last().copied().unwrap_or(0));
        let mut segments: Vec<LogSegment> = Vec::with_capacity(bases.len().max(1));
        let mut recovered_epochs = Vec::new();
        let mut recovered = false;
        let mut truncation: Option<Truncation> = None;
        let count = bases.len();
        for (i, &base) in bases.iter().enumerate() {
            let is_last = i + 1 == count;
            let holds_unflushed = bases.get(i + 1).is_none_or(|&next| next > scan_from);
            let (mut seg, indexes_ok) = LogSegment::open(dir, base, &config)?;
            let mut needs_recovery = !indexes_ok || (!clean && holds_unflushed);
            if !needs_recovery && is_last && seg.load_tail_state().is_err() {
                needs_recovery = true;
            }
            if needs_recovery {
                recovered = true;
                let outcome = seg.recover(config.index_interval_bytes)?;
                recovered_epochs.extend(outcome.epochs);
                // Durable before the recovery point moves past it.
                seg.flush()?;
                if outcome.truncated_bytes > 0 {
                    let mut t = Truncation {
                        file: seg.log_path().to_path_buf(),
                        position: outcome.truncated_at,
                        bytes: outcome.truncated_bytes,
                        batches: outcome.truncated_batches,
                        segments_deleted: 0,
                        reason: outcome.reason.unwrap_or_default(),
                    };
                    // Nothing after a corrupt batch can be trusted.
                    for &later in &bases[i + 1..] {
                        let (later_seg, _) = LogSegment::open(dir, later, &config)?;
                        t.bytes += later_seg.size();
                        t.batches += later_seg.count_batches_from(0, later_seg.size())?;
                        t.segments_deleted += 1;
                        later_seg.delete_files()?;
                    }
                    truncation = Some(t);
                    segments.push(seg);
                    break;
                }
            }
            if !is_last {
                // Inactive segments hold no file descriptor (see handles.rs).
                seg.make_inactive();
            }
            segments.push(seg);
        }
        let checkpoint_start = options.log_start_offset.unwrap_or(0).max(0);
        if segments.is_empty() {
            segments.push(LogSegment::create(dir, checkpoint_start, &config, None)?);
        }
        let mut log_end_offset = segments.last().map_or(0, LogSegment::next_offset);
        let mut reset_epochs = false;
        if checkpoint_start > log_end_offset {
            // Kafka's LogLoader: the log start offset was moved past everything still here
            // (e.g. DeleteRecords, then a crash before the files went).
            tracing::warn!(dir = %dir.display(), log_start_offset = checkpoint_start,
                log_end_offset, "log end offset is below the checkpointed log start offset; \
                deleting all segments and restarting the log there");
            for seg in segments.drain(..) {
                seg.delete_files()?;
            }
            segments.push(LogSegment::create(dir, checkpoint_start, &config, None)?);
            log_end_offset = checkpoint_start;
            reset_epochs = true;
        }
        if let Some(active) = segments.last_mut() {
            active.become_active()?;
        }
        let log_start_offset = segments
            .first()
            .map_or(0, |s| s.base_offset)
            .max(checkpoint_start);
        if let Some(t) = &truncation {
            tracing::warn!(
                dir = %dir.display(),
                file = %t.file.display(),
                position = t.position,
                bytes_dropped = t.bytes,
                batches_dropped = t.batches,
                later_segments_deleted = t.segments_deleted,
                reason = %t.reason,
                log_end_offset,
                "recovery truncated the log at a torn or corrupt batch"
            );
        }

        let mut log = PartitionLog {
            dir: dir.to_path_buf(),
            config,
            segments,
            log_start_offset,
            log_end_offset,
            recovery_point: log_end_offset,
            epochs: LeaderEpochCache::empty(dir),
            unflushed_messages: 0,
            last_flush_ms: None,
            segment_jitter_ms: 0,
            scratch: Vec::new(),
        };
        let mut write_epochs = recovered || reset_epochs;
        match LeaderEpochCache::load(dir)? {
            Some(cache) if !reset_epochs => log.epochs = cache,
            _ => {
                log.rebuild_epoch_cache()?;
                write_epochs = true;
            }
        }
        for (epoch, offset) in recovered_epochs {
            log.epochs.assign(epoch, offset);
        }
        write_epochs |= log.epochs.truncate_from_end(log_end_offset);
        write_epochs |= log.epochs.truncate_from_start(log_start_offset);
        if write_epochs {
            log.epochs.write(true)?;
        }
        if clean {
            fs::remove_file(&marker).map_err(storage(&marker))?;
            sync_dir(dir)?;
        }
        Ok(log)
    }

    fn rebuild_epoch_cache(&mut self) -> Result<(), LogError> {
        let mut cache = LeaderEpochCache::empty(&self.dir);
        for seg in &self.segments {
            seg.scan_headers(0, |_, h| {
                cache.assign(h.partition_leader_epoch(), h.base_offset());
                true
            })?;
        }
        self.epochs = cache;
        Ok(())
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
    /// Applies changed topic configs live; the active segment rolls by the new limits.
    pub fn set_config(&mut self, config: LogConfig) {
        self.config = config;
    }

    pub fn config(&self) -> &LogConfig {
        &self.config
    }
    pub fn log_end_offset(&self) -> i64 {
        self.log_end_offset
    }
    pub fn log_start_offset(&self) -> i64 {
        self.log_start_offset
    }
    /// Offset up to which the log is known to be on disk (for recovery-point-offset-checkpoint).
    pub fn recovery_point(&self) -> i64 {
        self.recovery_point
    }
    pub fn size_in_bytes(&self) -> u64 {
        self.segments.iter().map(LogSegment::size).sum()
    }
    pub fn segment_count(&self) -> usize {
        self.segments.len()
    }
    pub fn latest_epoch(&self) -> Option<i32> {
        self.epochs.latest_epoch()
    }
    /// (epoch, start offset) entries of the leader epoch cache.
    pub fn leader_epochs(&self) -> &[(i32, i64)] {
        self.epochs.entries()
    }
    /// OffsetsForLeaderEpoch: (epoch, end offset) for a requested epoch, as Kafka's
    /// `LeaderEpochFileCache.endOffsetFor`.
    pub fn end_offset_for_epoch(&self, epoch: i32) -> (i32, i64) {
        self.epochs.end_offset_for(epoch, self.log_end_offset)
    }

    /// Kafka's `maybeAssignEpochStartOffset`: a new leader marks where its epoch begins, before
    /// it appends anything, so a follower holding batches of a later, short-lived epoch learns
    /// where to truncate. Written at once: the entry must outlive a crash of the new leader.
    pub fn assign_epoch_start_offset(&mut self, epoch: i32, offset: i64) -> Result<(), LogError> {
        if self.epochs.assign(epoch, offset) {
            self.epochs.write(true)?;
        }
        Ok(())
    }

    fn active(&mut self) -> Result<&mut LogSegment, LogError> {
        let dir = self.dir.clone();
        self.segments.last_mut().ok_or_else(|| LogError::Storage {
            path: dir,
            source: io::Error::other("log has no segment"),
        })
    }

    /// Appends already validated batches as the leader: rewrites each batch's baseOffset and
    /// partitionLeaderEpoch in place (and the timestamp for LogAppendTime topics), then writes
    /// them all with one write.
    pub fn append_as_leader(
        &mut self,
        records: &mut [u8],
        leader_epoch: i32,
        now_ms: i64,
    ) -> Result<AppendInfo, LogError> {
        let log_append_time = self.config.message_timestamp_type == TimestampType::LogAppendTime;
        let mut scratch = std::mem::take(&mut self.scratch);
        scratch.clear();
        let mut next = self.log_end_offset;
        let mut record_count = 0u64;
        let mut pos = 0usize;
        while pos < records.len() {
            let (size, last_delta, mut max_ts, count) = {
                let h = BatchHeader::parse(&records[pos..])
                    .map_err(|e| LogError::InvalidRecord(e.to_string()))?;
                (
                    h.size(),
                    h.last_offset_delta(),
                    h.max_timestamp(),
                    h.records_count(),
                )
            };
            let Some(batch) = records.get_mut(pos..pos + size) else {
                return Err(LogError::InvalidRecord(format!(
                    "batch at byte {pos} runs past the end of the records"
                )));
            };
            if last_delta < 0 {
                return Err(LogError::InvalidRecord(format!(
                    "negative lastOffsetDelta {last_delta}"
                )));
            }
            let invalid = |e: crate::protocol::record_batch::BatchError| {
                LogError::InvalidRecord(e.to_string())
            };
            set_base_offset(batch, next).map_err(invalid)?;
            set_partition_leader_epoch(batch, leader_epoch).map_err(invalid)?;
            if log_append_time {
                set_log_append_time(batch, now_ms).map_err(invalid)?;
                max_ts = now_ms;
            }
            let last = next + i64::from(last_delta);
            scratch.push(BatchMeta {
                position: pos,
                size,
                base_offset: next,
                last_offset: last,
                max_timestamp: max_ts,
                leader_epoch,
            });
            record_count += u64::from(count.max(0).unsigned_abs());
            next = last + 1;
            pos += size;
        }
        let result = self.append_batches(records, &scratch, record_count, now_ms);
        self.scratch = scratch;
        let mut info = result?;
        if log_append_time {
            info.log_append_time = Some(now_ms);
        }
        Ok(info)
    }

    /// Appends batches fetched from a leader, keeping their offsets and epochs. The first batch
    /// must start at or after the log end offset (a gap is allowed, as after compaction).
    pub fn append_as_follower(
        &mut self,
        records: &[u8],
        now_ms: i64,
    ) -> Result<AppendInfo, LogError> {
        let mut scratch = std::mem::take(&mut self.scratch);
        scratch.clear();
        let mut expected = self.log_end_offset;
        let mut record_count = 0u64;
        for batch in BatchIter::new(records) {
            let batch = batch.map_err(|e| LogError::CorruptLog {
                path: self.dir.clone(),
                position: 0,
                reason: e.to_string(),
            })?;
            let h = batch.header;
            if !batch.is_crc_valid() {
                return Err(LogError::CorruptLog {
                    path: self.dir.clone(),
                    position: batch.position as u64,
                    reason: "CRC mismatch in replicated batch".into(),
                });
            }
            if h.base_offset() < expected || h.last_offset_delta() < 0 {
                return Err(if scratch.is_empty() {
                    LogError::UnexpectedAppendOffset {
                        first_offset: h.base_offset(),
                        log_end_offset: self.log_end_offset,
                    }
                } else {
                    LogError::InvalidRecord(format!(
                        "out of order offsets: batch at {} after offset {}",
                        h.base_offset(),
                        expected - 1
                    ))
                });
            }
            scratch.push(BatchMeta {
                position: batch.position,
                size: batch.bytes.len(),
                base_offset: h.base_offset(),
                last_offset: h.last_offset(),
                max_timestamp: h.max_timestamp(),
                leader_epoch: h.partition_leader_epoch(),
            });
            record_count += u64::from(h.records_count().max(0).unsigned_abs());
            expected = h.next_offset();
        }
        let result = self.append_batches(records, &scratch, record_count, now_ms);
        self.scratch = scratch;
        result
    }

    fn append_batches(
        &mut self,
        records: &[u8],
        batches: &[BatchMeta],
        record_count: u64,
        now_ms: i64,
    ) -> Result<AppendInfo, LogError> {
        let (Some(first), Some(last)) = (batches.first(), batches.last()) else {
            return Err(LogError::InvalidRecord("no record batch to append".into()));
        };
        if records.len() as u64 > self.config.segment_bytes {
            return Err(LogError::RecordBatchTooLarge {
                size: records.len(),
                segment_bytes: self.config.segment_bytes,
            });
        }
        let mut max_timestamp = -1;
        let mut offset_of_max_timestamp = first.last_offset;
        for b in batches {
            if b.max_timestamp > max_timestamp {
                max_timestamp = b.max_timestamp;
                offset_of_max_timestamp = b.last_offset;
            }
        }
        let should_roll = self.segments.last().is_some_and(|s| {
            s.should_roll(
                &self.config,
                records.len() as u64,
                max_timestamp,
                last.last_offset,
                now_ms,
            ) || first.base_offset - s.base_offset > i64::from(i32::MAX)
        });
        if should_roll {
            self.roll(first.base_offset, now_ms)?;
        }
        let interval = self.config.index_interval_bytes;
        self.active()?.append(records, batches, interval, now_ms)?;
        self.log_end_offset = last.last_offset + 1;
        let mut epochs_changed = false;
        for b in batches {
            epochs_changed |= self.epochs.assign(b.leader_epoch, b.base_offset);
        }
        if epochs_changed {
            self.epochs.write(false)?;
        }
        self.unflushed_messages += record_count;
        let last_flush = *self.last_flush_ms.get_or_insert(now_ms);
        if self.unflushed_messages >= self.config.flush_interval_messages
            || now_ms.saturating_sub(last_flush) >= self.config.flush_interval_ms
        {
            self.flush()?;
            self.last_flush_ms = Some(now_ms);
        }
        Ok(AppendInfo {
            first_offset: first.base_offset,
            last_offset: last.last_offset,
            max_timestamp,
            offset_of_max_timestamp,
            log_append_time: None,
            record_count,
        })
    }

    /// Seals the active segment (final time index entry, trimmed and fsynced files) and starts
    /// a new one. The fsync here is what lets recovery look at the last segment only.
    fn roll(&mut self, new_base: i64, now_ms: i64) -> Result<(), LogError> {
        let active = self.active()?;
        if active.size() == 0 {
            if let Some(empty) = self.segments.pop() {
                empty.delete_files()?;
            }
        } else {
            active.seal()?;
            active.make_inactive();
        }
        let mut segment = LogSegment::create(&self.dir, new_base, &self.config, Some(now_ms))?;
        segment.set_roll_jitter_ms(self.draw_roll_jitter(new_base));
        self.segments.push(segment);
        if self.segments.len() == 1 {
            self.log_start_offset = new_base;
        }
        sync_dir(&self.dir)?;
        // Everything below the new segment was fsynced by the seal above or an earlier roll.
        if new_base > self.recovery_point {
            self.recovery_point = new_base;
            self.unflushed_messages = 0;
        }
        Ok(())
    }

    fn segment_index_for(&self, offset: i64) -> usize {
        self.segments
            .partition_point(|s| s.base_offset <= offset)
            .saturating_sub(1)
    }

    /// Reads whole batches from the batch holding `fetch_offset`: at most `max_bytes` (unless
    /// `min_one_batch` and the first batch is larger), none whose last offset is >= `max_offset`.
    /// One pread for the data; headers are then walked in memory to cut at a batch boundary.
    pub fn read(
        &self,
        fetch_offset: i64,
        max_bytes: usize,
        max_offset: Option<i64>,
        min_one_batch: bool,
    ) -> Result<ReadInfo, LogError> {
        if fetch_offset < self.log_start_offset || fetch_offset > self.log_end_offset {
            return Err(LogError::OffsetOutOfRange {
                offset: fetch_offset,
                log_start_offset: self.log_start_offset,
                log_end_offset: self.log_end_offset,
            });
        }
        let empty = ReadInfo {
            records: Bytes::new(),
            next_fetch_offset: fetch_offset,
            log_start_offset: self.log_start_offset,
            log_end_offset: self.log_end_offset,
        };
        let upper = max_offset.map_or(self.log_end_offset, |m| m.min(self.log_end_offset));
        if fetch_offset >= upper {
            return Ok(empty);
        }
        for seg in &self.segments[self.segment_index_for(fetch_offset)..] {
            let Some((start, header_bytes)) = seg.translate_offset(fetch_offset)? else {
                continue;
            };
            let header = BatchHeader::parse(&header_bytes).map_err(|e| LogError::CorruptLog {
                path: seg.log_path().to_path_buf(),
                position: start,
                reason: e.to_string(),
            })?;
            if header.last_offset() >= upper {
                return Ok(empty);
            }
            // Bound the read by the batch holding `upper` when it lies in this segment, so a
            // reader far behind the high watermark does not read bytes it would throw away.
            let mut end = seg.size();
            if upper < self.log_end_offset
                && let Some(bound) = seg.position_bound_for(upper)
                && bound > start
            {
                end = bound;
            }
            let first_size = header.size();
            let want = if first_size > max_bytes {
                if !min_one_batch {
                    return Ok(empty);
                }
                first_size
            } else {
                ((end - start) as usize).min(max_bytes)
            };
            let mut buf = seg.read_at(start, want.min((seg.size() - start) as usize))?;
            let mut keep = 0usize;
            let mut next_fetch_offset = fetch_offset;
            for batch in BatchIter::new(&buf) {
                let Ok(batch) = batch else { break };
                if batch.header.last_offset() >= upper {
                    break;
                }
                keep = batch.position + batch.bytes.len();
                next_fetch_offset = batch.header.next_offset();
            }
            buf.truncate(keep);
            return Ok(ReadInfo {
                records: Bytes::from(buf),
                next_fetch_offset,
                ..empty
            });
        }
        Ok(empty)
    }

    /// ListOffsets by timestamp: the first record with timestamp >= `timestamp` at or after the
    /// log start offset. Exact for uncompressed batches (records are walked); for compressed
    /// batches it answers the batch's base offset and maxTimestamp, where Kafka would decompress
    /// to find the exact record (a consumer seeking there still sees that record).
    pub fn offset_for_timestamp(
        &self,
        timestamp: i64,
    ) -> Result<Option<TimestampAndOffset>, LogError> {
        for seg in &self.segments {
            if seg.max_timestamp_so_far() < timestamp {
                continue;
            }
            let start = seg.timestamp_search_start(timestamp);
            let mut found = None;
            let log_start = self.log_start_offset;
            seg.scan_headers(start, |pos, h| {
                if h.max_timestamp() >= timestamp && h.last_offset() >= log_start {
                    found = Some((pos, *h.as_bytes()));
                    false
                } else {
                    true
                }
            })?;
            if let Some((pos, header_bytes)) = found {
                return self.locate_in_batch(seg, pos, &header_bytes, |ts| ts >= timestamp);
            }
        }
        Ok(None)
    }

    /// ListOffsets MAX_TIMESTAMP: the largest timestamp and the first record carrying it
    /// (Kafka 4 semantics; compressed batches answer their base offset).
    pub fn max_timestamp(&self) -> Result<Option<TimestampAndOffset>, LogError> {
        let Some(seg) = self
            .segments
            .iter()
            .filter(|s| s.size() > 0)
            .reduce(|best, s| {
                if s.max_timestamp_so_far() > best.max_timestamp_so_far() {
                    s
                } else {
                    best
                }
            })
        else {
            return Ok(None);
        };
        let max = seg.max_timestamp_so_far();
        if max < 0 {
            return Ok(None);
        }
        let start = seg.position_of(seg.shallow_offset_of_max_timestamp());
        let mut found = None;
        seg.scan_headers(start, |pos, h| {
            if h.max_timestamp() == max {
                found = Some((pos, *h.as_bytes()));
                false
            } else {
                true
            }
        })?;
        match found {
            Some((pos, header_bytes)) => {
                self.locate_in_batch(seg, pos, &header_bytes, |ts| ts == max)
            }
            None => Ok(None),
        }
    }

    fn locate_in_batch(
        &self,
        seg: &LogSegment,
        pos: u64,
        header_bytes: &[u8],
        matches: impl Fn(i64) -> bool,
    ) -> Result<Option<TimestampAndOffset>, LogError> {
        let corrupt = |reason: String| LogError::CorruptLog {
            path: seg.log_path().to_path_buf(),
            position: pos,
            reason,
        };
        let h = BatchHeader::parse(header_bytes).map_err(|e| corrupt(e.to_string()))?;
        let leader_epoch = Some(h.partition_leader_epoch()).filter(|e| *e >= 0);
        let batch_answer = TimestampAndOffset {
            timestamp: h.max_timestamp(),
            offset: h.base_offset().max(self.log_start_offset),
            leader_epoch,
        };
        if h.compression_id() != 0 || h.timestamp_type() == TimestampType::LogAppendTime {
            return Ok(Some(batch_answer));
        }
        let bytes = seg.read_at(pos, h.size())?;
        let Some(Ok(batch)) = BatchIter::new(&bytes).next() else {
            return Err(corrupt("batch unreadable".into()));
        };
        if let Some(records) = batch.records() {
            for record in records {
                let record = record.map_err(|e| corrupt(e.to_string()))?;
                if record.offset >= self.log_start_offset && matches(record.timestamp) {
                    return Ok(Some(TimestampAndOffset {
                        timestamp: record.timestamp,
                        offset: record.offset,
                        leader_epoch,
                    }));
                }
            }
        }
        Ok(Some(batch_answer))
    }

    /// Removes every batch whose last offset is >= `offset` (a target inside a batch removes
    /// that whole batch, so the log end offset may end below `offset`). A target at or below
    /// the first segment's base empties the log and restarts it at `offset`. Returns whether
    /// anything was removed.
    pub fn truncate_to(&mut self, offset: i64) -> Result<bool, LogError> {
        if offset < 0 {
            return Err(LogError::OffsetOutOfRange {
                offset,
                log_start_offset: self.log_start_offset,
                log_end_offset: self.log_end_offset,
            });
        }
        if offset >= self.log_end_offset {
            return Ok(false);
        }
        if offset <= self.log_start_offset
            || self
                .segments
                .first()
                .is_none_or(|s| offset <= s.base_offset)
        {
            self.truncate_fully_and_start_at(offset)?;
            return Ok(true);
        } else {
            let keep = self.segment_index_for(offset) + 1;
            for seg in self.segments.drain(keep..) {
                seg.delete_files()?;
            }
            let active = self.active()?;
            active.truncate_to(offset)?;
            active.become_active()?;
            self.log_end_offset = active.next_offset();
            self.epochs.truncate_from_end(self.log_end_offset);
        }
        self.recovery_point = self.recovery_point.min(self.log_end_offset);
        self.epochs.write(true)?;
        sync_dir(&self.dir)?;
        Ok(true)
    }

    /// Kafka's `truncateFullyAndStartAt`: drops every segment and restarts the log, empty, at
    /// `offset` (which may lie beyond the old end): what a replica does once it has installed
    /// a snapshot that ends there.
    pub fn truncate_fully_and_start_at(&mut self, offset: i64) -> Result<(), LogError> {
        if offset < 0 {
            return Err(LogError::OffsetOutOfRange {
                offset,
                log_start_offset: self.log_start_offset,
                log_end_offset: self.log_end_offset,
            });
        }
        for seg in self.segments.drain(..) {
            seg.delete_files()?;
        }
        self.segments
            .push(LogSegment::create(&self.dir, offset, &self.config, None)?);
        self.log_start_offset = offset;
        self.log_end_offset = offset;
        self.recovery_point = offset;
        self.epochs.clear();
        self.epochs.write(true)?;
        sync_dir(&self.dir)?;
        Ok(())
    }

    /// fsyncs the active segment, its indexes and a pending leader epoch checkpoint.
    pub fn flush(&mut self) -> Result<(), LogError> {
        // Earlier segments were fsynced when they rolled; only the active one can be dirty.
        self.active()?.flush()?;
        self.epochs.sync_if_needed()?;
        self.recovery_point = self.log_end_offset;
        self.unflushed_messages = 0;
        Ok(())
    }

    /// Flushes, trims the active indexes and marks the partition cleanly shut down.
    pub fn close(mut self) -> Result<(), LogError> {
        self.close_in_place()
    }

    /// `close` for a log others still hold (the metadata log behind its readers' lock): the
    /// files are sealed and marked clean, so the next start does not rescan them. Nothing may
    /// be appended afterwards.
    pub fn close_in_place(&mut self) -> Result<(), LogError> {
        self.active()?.seal()?;
        self.epochs.sync_if_needed()?;
        let marker = self.dir.join(CLEAN_SHUTDOWN_FILE);
        fs::File::create(&marker)
            .and_then(|f| f.sync_all())
            .map_err(storage(&marker))?;
        sync_dir(&self.dir)
    }

    /// Removes the partition directory and everything in it.
    pub fn delete(self) -> Result<(), LogError> {
        let dir = self.dir.clone();
        drop(self);
        fs::remove_dir_all(&dir).map_err(storage(&dir))
    }

    /// Files of the segment with this base offset (for tests and tools).
    pub fn segment_paths(&self, base_offset: i64) -> [PathBuf; 3] {
        [".log", ".index", ".timeindex"].map(|s| self.dir.join(segment_file_name(base_offset, s)))
    }

    /// Base offsets of all segments, oldest first.
    pub fn segment_base_offsets(&self) -> Vec<i64> {
        self.segments.iter().map(|s| s.base_offset).collect()
    }
}

#[cfg(test)]
mod tests;
