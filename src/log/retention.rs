//! The partition log's housekeeping, kept apart from the append/read paths: the log start
//! offset (DeleteRecords), time- and size-based retention as Kafka's
//! `UnifiedLog.deleteOldSegments`, time-based rolling (segment.ms with segment.jitter.ms) and
//! the flush.ms flush.
//!
//! Segment deletion is synchronous: Kafka renames to `.deleted` and unlinks after
//! file.delete.delay.ms because its fetches read files outside the log's lock (zero-copy
//! `FileRecords` slices). Here every read goes through the log's own handles under the
//! broker's per-partition lock and returns owned bytes, so once this method holds `&mut self`
//! no read of the segment is in progress. A process-wide cached handle is closed when its
//! segment is deleted; a future sendfile path that keeps an `Arc<File>` past the lock would
//! still read the unlinked file safely, as Unix keeps it until the last handle closes.

use std::hash::{BuildHasher, Hasher};

use super::checkpoint::sync_dir;
use super::{LogError, PartitionLog};

/// What one `enforce_retention` or `delete_records_before` removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RetentionResult {
    pub deleted_segments: usize,
    pub deleted_bytes: u64,
    /// The log start offset after the deletion (unchanged when nothing was deleted).
    pub new_log_start_offset: i64,
}

impl PartitionLog {
    /// DeleteRecords: moves the log start offset up to `offset` and deletes every segment whose
    /// offsets all lie below it. The caller resolves -1 to the high watermark and refuses an
    /// offset above the high watermark (Kafka's `Partition.deleteRecordsOnLeader`); the log
    /// refuses one above its end. An offset at or below the current start changes nothing.
    /// Returns the log start offset (Kafka's low watermark in the response).
    pub fn delete_records_before(&mut self, offset: i64) -> Result<i64, LogError> {
        if offset < 0 || offset > self.log_end_offset {
            return Err(LogError::OffsetOutOfRange {
                offset,
                log_start_offset: self.log_start_offset,
                log_end_offset: self.log_end_offset,
            });
        }
        if offset > self.log_start_offset {
            self.increment_log_start_offset(offset)?;
        }
        // Kafka leaves this to the retention task; doing it now frees the disk at once.
        let breached = self.count_log_start_breached(0);
        self.delete_oldest_segments(breached, i64::MAX)?;
        Ok(self.log_start_offset)
    }

    /// Kafka's `deleteOldSegments` for cleanup.policy=delete: segments wholly below the log
    /// start offset, then the oldest segments while the log is larger than `retention_bytes`
    /// by at least their size, then the oldest whose largest timestamp is more than
    /// `retention_ms` before `now_ms` (a negative limit is infinite). Only segments wholly
    /// below `high_watermark` go, so the log start never passes it. When every segment goes
    /// a new empty active segment is rolled first, so the log always has one. For a
    /// compact-only topic pass -1 for both limits: only log-start-breached segments go.
    pub fn enforce_retention(
        &mut self,
        now_ms: i64,
        retention_ms: i64,
        retention_bytes: i64,
        high_watermark: i64,
    ) -> Result<RetentionResult, LogError> {
        let mut count = self.count_log_start_breached(0);
        count = self.count_size_breached(count, retention_bytes, high_watermark);
        if retention_ms >= 0 {
            while count < self.segments.len()
                && self.deletable(count, high_watermark)
                && self
                    .segments
                    .get(count)
                    .is_some_and(|s| now_ms.saturating_sub(s.largest_timestamp()) > retention_ms)
            {
                count += 1;
            }
        }
        self.delete_oldest_segments(count, now_ms)
    }

    /// Rolls the active segment when segment.ms (less its jitter) has passed since its first
    /// record, as an append at `now_ms` would; lets time-based retention reach a partition that
    /// nobody writes to. Returns whether it rolled.
    pub fn maybe_roll(&mut self, now_ms: i64) -> Result<bool, LogError> {
        let due = self.segments.last().is_some_and(|s| {
            s.size() > 0 && s.should_roll(&self.config, 0, now_ms, self.log_end_offset, now_ms)
        });
        if due {
            self.roll(self.log_end_offset, now_ms)?;
        }
        Ok(due)
    }

    /// flush.ms: fsyncs when messages are unflushed and flush_interval_ms has passed since the
    /// last flush. Returns whether it flushed.
    pub fn maybe_flush(&mut self, now_ms: i64) -> Result<bool, LogError> {
        let last = *self.last_flush_ms.get_or_insert(now_ms);
        if self.unflushed_messages == 0
            || now_ms.saturating_sub(last) < self.config.flush_interval_ms
        {
            return Ok(false);
        }
        self.flush()?;
        self.last_flush_ms = Some(now_ms);
        Ok(true)
    }

    /// Messages appended since the last fsync (flush.messages counts these).
    pub fn unflushed_messages(&self) -> u64 {
        self.unflushed_messages
    }

    /// segment.jitter.ms: each segment created from now on rolls up to this much earlier than
    /// segment.ms (a random amount, below segment.ms), so partitions do not all roll together.
    pub fn set_segment_jitter_ms(&mut self, jitter_ms: i64) {
        self.segment_jitter_ms = jitter_ms.max(0);
    }

    /// Kafka's `LogConfig.randomSegmentJitter`: uniform in [0, min(jitter, segment.ms)).
    pub(super) fn draw_roll_jitter(&self, salt: i64) -> i64 {
        let bound = self.segment_jitter_ms.min(self.config.segment_ms);
        if bound <= 0 {
            return 0;
        }
        // std's per-process random hasher keys are enough randomness for spreading rolls.
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_i64(salt);
        (h.finish() % bound as u64) as i64
    }

    /// Kafka's `isSegmentEligibleForDeletion`: the segment's offsets all lie below the high
    /// watermark, and it is not an empty active segment.
    fn deletable(&self, i: usize, high_watermark: i64) -> bool {
        let Some(seg) = self.segments.get(i) else {
            return false;
        };
        let upper = self
            .segments
            .get(i + 1)
            .map_or(self.log_end_offset, |s| s.base_offset);
        let last_and_empty = i + 1 == self.segments.len() && seg.size() == 0;
        upper <= high_watermark && !last_and_empty
    }

    /// Extends `from` over segments whose successor starts at or below the log start offset.
    fn count_log_start_breached(&self, from: usize) -> usize {
        let mut count = from;
        while self
            .segments
            .get(count + 1)
            .is_some_and(|next| next.base_offset <= self.log_start_offset)
        {
            count += 1;
        }
        count
    }

    fn count_size_breached(&self, from: usize, retention_bytes: i64, high_watermark: i64) -> usize {
        let Ok(limit) = u64::try_from(retention_bytes) else {
            return from;
        };
        let size: u64 = self.segments[from..].iter().map(|s| s.size()).sum();
        if size < limit {
            return from;
        }
        let mut diff = size - limit;
        let mut count = from;
        while let Some(seg) = self.segments.get(count) {
            if seg.size() > diff || !self.deletable(count, high_watermark) {
                break;
            }
            diff -= seg.size();
            count += 1;
        }
        count
    }

    /// Deletes the `count` oldest segments (rolling first if that is all of them) and moves
    /// the log start offset to the first remaining segment's base if that is higher.
    fn delete_oldest_segments(
        &mut self,
        count: usize,
        now_ms: i64,
    ) -> Result<RetentionResult, LogError> {
        let mut result = RetentionResult {
            new_log_start_offset: self.log_start_offset,
            ..RetentionResult::default()
        };
        if count == 0 {
            return Ok(result);
        }
        if count >= self.segments.len() {
            self.roll(self.log_end_offset, now_ms)?;
        }
        let count = count.min(self.segments.len().saturating_sub(1));
        for seg in self.segments.drain(..count) {
            result.deleted_segments += 1;
            result.deleted_bytes += seg.size();
            tracing::info!(file = %seg.log_path().display(), bytes = seg.size(),
                "deleting log segment");
            seg.delete_files()?;
        }
        sync_dir(&self.dir)?;
        if let Some(first) = self.segments.first().map(|s| s.base_offset)
            && first > self.log_start_offset
        {
            self.increment_log_start_offset(first)?;
        }
        result.new_log_start_offset = self.log_start_offset;
        Ok(result)
    }

    /// Kafka's `maybeIncrementLogStartOffset` for an offset above the current start.
    fn increment_log_start_offset(&mut self, offset: i64) -> Result<(), LogError> {
        self.log_start_offset = offset;
        // Offsets below the log start are gone, so recovery never needs to look at them.
        self.recovery_point = self.recovery_point.max(offset);
        if self.epochs.truncate_from_start(offset) {
            self.epochs.write(false)?;
        }
        Ok(())
    }
}

#[cfg(test)]
#[path = "retention_tests.rs"]
mod tests;
