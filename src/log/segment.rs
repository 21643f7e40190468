//! One segment: `<base>.log` (v2 batches exactly as Kafka stores them) with its `.index` and
//! `.timeindex`. Owns positions inside the file, index maintenance on append (Kafka's rule: an
//! entry for a batch once more than index_interval_bytes were appended since the last one),
//! recovery (CRC scan, torn-tail truncation, index rebuild) and truncation.
//!
//! File handles: the active segment owns a read-write handle to its `.log` and its indexes.
//! `make_inactive` (on roll, and at open for every segment but the last) fsyncs and closes
//! them; an inactive segment then reads through the process-wide handle cache in `handles.rs`
//! and opens a write handle again only to be truncated, recovered or made active.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::ops::Deref;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::protocol::record_batch::{BATCH_HEADER_LEN, BatchHeader, compute_crc};

use super::checkpoint::storage;
use super::handles;
use super::index::{OffsetIndex, TimeIndex};
use super::{LogConfig, LogError};

/// Headers are scanned through a buffer of this size so small batches cost no syscall each.
const SCAN_CHUNK: usize = 8 * 1024;

pub(crate) fn segment_file_name(base_offset: i64, suffix: &str) -> String {
    format!("{base_offset:020}{suffix}")
}

/// What the log tells a segment about each batch it appends.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BatchMeta {
    /// Position of the batch inside the appended buffer.
    pub(crate) position: usize,
    pub(crate) size: usize,
    pub(crate) base_offset: i64,
    pub(crate) last_offset: i64,
    pub(crate) max_timestamp: i64,
    pub(crate) leader_epoch: i32,
}

pub(crate) struct RecoveryOutcome {
    pub(crate) truncated_bytes: u64,
    /// Byte position the segment was cut at (its new size).
    pub(crate) truncated_at: u64,
    /// Batches walkable by their length fields in the dropped tail (the bad one included).
    pub(crate) truncated_batches: u64,
    pub(crate) reason: Option<String>,
    /// (epoch, base offset) of each batch whose epoch differs from the previous batch's.
    pub(crate) epochs: Vec<(i32, i64)>,
}

/// A `.log` handle for reading: the segment's own, or one shared through the handle cache.
pub(crate) enum ReadHandle<'a> {
    Own(&'a File),
    Cached(Arc<File>),
}

impl Deref for ReadHandle<'_> {
    type Target = File;
    fn deref(&self) -> &File {
        match self {
            ReadHandle::Own(f) => f,
            ReadHandle::Cached(f) => f,
        }
    }
}

pub(crate) struct LogSegment {
    pub(crate) base_offset: i64,
    /// Key in the process-wide handle cache.
    id: u64,
    log_path: PathBuf,
    /// Read-write handle while active (or being recovered); `None` once inactive.
    file: Option<File>,
    size: u64,
    offset_index: OffsetIndex,
    time_index: TimeIndex,
    max_timestamp_so_far: i64,
    shallow_offset_of_max_timestamp: i64,
    bytes_since_last_index_entry: u64,
    /// maxTimestamp of the first batch: segment.ms counts from it (Kafka's rollingBasedTimestamp).
    rolling_based_timestamp: Option<i64>,
    /// Fallback for segment.ms when batches carry no timestamps: the first `now_ms` seen.
    created_ms: Option<i64>,
    /// Kafka's rollJitterMs: subtracted from segment.ms so that segments do not all roll at once.
    roll_jitter_ms: i64,
    next_offset: i64,
}

fn corrupt(path: &Path, position: u64, reason: impl Into<String>) -> LogError {
    LogError::CorruptLog {
        path: path.to_path_buf(),
        position,
        reason: reason.into(),
    }
}

impl LogSegment {
    fn paths(dir: &Path, base_offset: i64) -> (PathBuf, PathBuf, PathBuf) {
        (
            dir.join(segment_file_name(base_offset, ".log")),
            dir.join(segment_file_name(base_offset, ".index")),
            dir.join(segment_file_name(base_offset, ".timeindex")),
        )
    }

    /// A new empty active segment (any existing files at that base are replaced).
    pub(crate) fn create(
        dir: &Path,
        base_offset: i64,
        config: &LogConfig,
        now_ms: Option<i64>,
    ) -> Result<Self, LogError> {
        let (log_path, index_path, time_path) = Self::paths(dir, base_offset);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&log_path)
            .map_err(storage(&log_path))?;
        let offset_index =
            OffsetIndex::create(index_path.clone(), base_offset, config.max_index_size)
                .map_err(storage(&index_path))?;
        let time_index = TimeIndex::create(time_path.clone(), base_offset, config.max_index_size)
            .map_err(storage(&time_path))?;
        Ok(LogSegment {
            base_offset,
            id: handles::next_segment_id(),
            log_path,
            file: Some(file),
            size: 0,
            offset_index,
            time_index,
            max_timestamp_so_far: -1,
            shallow_offset_of_max_timestamp: base_offset,
            bytes_since_last_index_entry: 0,
            rolling_based_timestamp: None,
            created_ms: now_ms,
            roll_jitter_ms: 0,
            next_offset: base_offset,
        })
    }

    /// Opens an existing segment. The bool is false when an index was missing or failed its
    /// sanity check, in which case the caller must `recover` it.
    pub(crate) fn open(
        dir: &Path,
        base_offset: i64,
        config: &LogConfig,
    ) -> Result<(Self, bool), LogError> {
        let (log_path, index_path, time_path) = Self::paths(dir, base_offset);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&log_path)
            .map_err(storage(&log_path))?;
        let size = file.metadata().map_err(storage(&log_path))?.len();
        let loaded_offset =
            OffsetIndex::load(index_path.clone(), base_offset, config.max_index_size, size)
                .map_err(storage(&index_path))?;
        let loaded_time = TimeIndex::load(time_path.clone(), base_offset, config.max_index_size)
            .map_err(storage(&time_path))?;
        let indexes_ok = loaded_offset.is_some() && loaded_time.is_some();
        let offset_index = match loaded_offset {
            Some(i) => i,
            None => OffsetIndex::create(index_path.clone(), base_offset, config.max_index_size)
                .map_err(storage(&index_path))?,
        };
        let time_index = match loaded_time {
            Some(i) => i,
            None => TimeIndex::create(time_path.clone(), base_offset, config.max_index_size)
                .map_err(storage(&time_path))?,
        };
        let (max_timestamp_so_far, shallow_offset_of_max_timestamp) =
            time_index.last_entry().unwrap_or((-1, base_offset));
        Ok((
            LogSegment {
                base_offset,
                id: handles::next_segment_id(),
                log_path,
                file: Some(file),
                size,
                offset_index,
                time_index,
                max_timestamp_so_far,
                shallow_offset_of_max_timestamp,
                bytes_since_last_index_entry: 0,
                rolling_based_timestamp: None,
                created_ms: None,
                roll_jitter_ms: 0,
                next_offset: base_offset,
            },
            indexes_ok,
        ))
    }

    pub(crate) fn size(&self) -> u64 {
        self.size
    }
    pub(crate) fn next_offset(&self) -> i64 {
        self.next_offset
    }
    pub(crate) fn max_timestamp_so_far(&self) -> i64 {
        self.max_timestamp_so_far
    }
    pub(crate) fn shallow_offset_of_max_timestamp(&self) -> i64 {
        self.shallow_offset_of_max_timestamp
    }
    pub(crate) fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// Kafka's `LogSegment.largestTimestamp`, what time retention compares: the largest record
    /// timestamp, or the file's modification time when no batch carries one.
    pub(crate) fn largest_timestamp(&self) -> i64 {
        if self.max_timestamp_so_far >= 0 {
            return self.max_timestamp_so_far;
        }
        fs::metadata(&self.log_path)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(-1, |d| d.as_millis() as i64)
    }

    pub(crate) fn set_roll_jitter_ms(&mut self, jitter_ms: i64) {
        self.roll_jitter_ms = jitter_ms.max(0);
    }

    /// A handle to read the `.log` through: no lock and no syscall for the active segment.
    pub(crate) fn handle(&self) -> Result<ReadHandle<'_>, LogError> {
        match &self.file {
            Some(f) => Ok(ReadHandle::Own(f)),
            None => handles::get(self.id, &self.log_path)
                .map(ReadHandle::Cached)
                .map_err(storage(&self.log_path)),
        }
    }

    /// The read-write handle, reopened when an inactive segment must change.
    fn writable(&mut self) -> Result<&File, LogError> {
        if self.file.is_none() {
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .open(&self.log_path)
                .map_err(storage(&self.log_path))?;
            handles::forget(self.id);
            self.file = Some(file);
        }
        self.file.as_ref().ok_or_else(|| LogError::Storage {
            path: self.log_path.clone(),
            source: io::Error::other("segment handle vanished"),
        })
    }

    /// Closes the segment's own handles so that an inactive segment holds no file descriptor;
    /// reads then go through the handle cache. Callers have flushed whatever they wrote (seal
    /// on roll, flush after recovery); a segment opened and left untouched needs no fsync,
    /// which keeps opening thousands of segments at startup cheap.
    pub(crate) fn make_inactive(&mut self) {
        self.file = None;
        self.offset_index.release();
        self.time_index.release();
    }

    /// Batches in [`start`, size) counted by their length fields only (the bytes there failed
    /// recovery, so nothing else in them can be trusted); for the recovery warning.
    pub(crate) fn count_batches_from(&self, start: u64, file_len: u64) -> Result<u64, LogError> {
        let handle = self.handle()?;
        let mut count = 0;
        let mut pos = start;
        let mut len_field = [0u8; 12];
        while pos < file_len {
            count += 1;
            if pos + 12 > file_len {
                break;
            }
            handle
                .read_exact_at(&mut len_field, pos)
                .map_err(storage(&self.log_path))?;
            let len =
                i32::from_be_bytes([len_field[8], len_field[9], len_field[10], len_field[11]]);
            if len <= 0 {
                break;
            }
            pos += 12 + len as u64;
        }
        Ok(count)
    }

    /// Walks batch headers from `start` to the end of the segment. The callback returns false
    /// to stop. A header that does not parse or a batch running past the end is an error.
    pub(crate) fn scan_headers(
        &self,
        start: u64,
        mut f: impl FnMut(u64, &BatchHeader<'_>) -> bool,
    ) -> Result<(), LogError> {
        let handle = self.handle()?;
        let mut chunk = vec![0u8; SCAN_CHUNK];
        let mut chunk_start = 0u64;
        let mut chunk_len = 0usize;
        let mut pos = start;
        while pos < self.size {
            let in_chunk = pos >= chunk_start
                && pos + BATCH_HEADER_LEN as u64 <= chunk_start + chunk_len as u64;
            if !in_chunk {
                let want = (self.size - pos).min(SCAN_CHUNK as u64) as usize;
                handle
                    .read_exact_at(&mut chunk[..want], pos)
                    .map_err(storage(&self.log_path))?;
                chunk_start = pos;
                chunk_len = want;
            }
            let from = (pos - chunk_start) as usize;
            let header = BatchHeader::parse(&chunk[from..chunk_len])
                .map_err(|e| corrupt(&self.log_path, pos, e.to_string()))?;
            let size = header.size() as u64;
            if pos + size > self.size {
                return Err(corrupt(
                    &self.log_path,
                    pos,
                    "batch runs past the end of the segment",
                ));
            }
            if !f(pos, &header) {
                return Ok(());
            }
            pos += size;
        }
        Ok(())
    }

    /// After a clean open: the next offset and the max timestamp from the tail past the last
    /// index entries, plus the first batch's timestamp for segment.ms.
    pub(crate) fn load_tail_state(&mut self) -> Result<(), LogError> {
        let (_, start) = self.offset_index.last_entry();
        let mut next = self.base_offset;
        let mut max = (
            self.max_timestamp_so_far,
            self.shallow_offset_of_max_timestamp,
        );
        self.scan_headers(start, |_, h| {
            next = h.next_offset();
            if h.max_timestamp() > max.0 {
                max = (h.max_timestamp(), h.last_offset());
            }
            true
        })?;
        let mut first_ts = None;
        self.scan_headers(0, |_, h| {
            first_ts = Some(h.max_timestamp());
            false
        })?;
        self.rolling_based_timestamp = first_ts;
        self.next_offset = next;
        (
            self.max_timestamp_so_far,
            self.shallow_offset_of_max_timestamp,
        ) = max;
        Ok(())
    }

    /// Kafka's `LogSegment.recover`: re-reads every batch, checks length, magic, CRC and offset
    /// order, truncates at the first bad one and rebuilds both indexes.
    pub(crate) fn recover(
        &mut self,
        index_interval_bytes: u32,
    ) -> Result<RecoveryOutcome, LogError> {
        let file_len = self
            .writable()?
            .metadata()
            .map_err(storage(&self.log_path))?
            .len();
        self.offset_index.clear();
        self.time_index.clear();
        self.max_timestamp_so_far = -1;
        self.shallow_offset_of_max_timestamp = self.base_offset;
        self.rolling_based_timestamp = None;
        let mut epochs: Vec<(i32, i64)> = Vec::new();
        let mut next_offset = self.base_offset;
        let mut pos = 0u64;
        let mut last_index_entry = 0u64;
        let mut header_buf = [0u8; BATCH_HEADER_LEN];
        let mut batch_buf = Vec::new();
        let reason = loop {
            if pos == file_len {
                break None;
            }
            if pos + BATCH_HEADER_LEN as u64 > file_len {
                break Some("partial batch header".to_string());
            }
            self.handle()?
                .read_exact_at(&mut header_buf, pos)
                .map_err(storage(&self.log_path))?;
            let header = match BatchHeader::parse(&header_buf) {
                Ok(h) => h,
                Err(e) => break Some(e.to_string()),
            };
            let size = header.size() as u64;
            if pos + size > file_len {
                break Some(format!(
                    "batch of {size} bytes runs past the end of the file"
                ));
            }
            batch_buf.resize(size as usize, 0);
            self.handle()?
                .read_exact_at(&mut batch_buf, pos)
                .map_err(storage(&self.log_path))?;
            if compute_crc(&batch_buf) != header.crc() {
                break Some("CRC mismatch".to_string());
            }
            if header.last_offset_delta() < 0
                || header.base_offset() < next_offset
                || header.last_offset() - self.base_offset > i64::from(i32::MAX)
            {
                break Some(format!(
                    "offsets [{}, {}] out of order or outside the segment",
                    header.base_offset(),
                    header.last_offset()
                ));
            }
            if pos == 0 {
                self.rolling_based_timestamp = Some(header.max_timestamp());
            }
            if header.max_timestamp() > self.max_timestamp_so_far {
                self.max_timestamp_so_far = header.max_timestamp();
                self.shallow_offset_of_max_timestamp = header.last_offset();
            }
            if pos - last_index_entry > u64::from(index_interval_bytes) {
                self.offset_index
                    .append(header.last_offset(), pos)
                    .map_err(storage(self.offset_index.path()))?;
                self.time_index
                    .maybe_append(
                        self.max_timestamp_so_far,
                        self.shallow_offset_of_max_timestamp,
                        false,
                    )
                    .map_err(storage(self.time_index.path()))?;
                last_index_entry = pos;
            }
            let epoch = header.partition_leader_epoch();
            if epoch >= 0 && epochs.last().is_none_or(|&(e, _)| e != epoch) {
                epochs.push((epoch, header.base_offset()));
            }
            next_offset = header.next_offset();
            pos += size;
        };
        let truncated_bytes = file_len - pos;
        let mut truncated_batches = 0;
        if truncated_bytes > 0 {
            // The log reports the truncation in one line per partition.
            truncated_batches = self.count_batches_from(pos, file_len)?;
            self.writable()?
                .set_len(pos)
                .map_err(storage(&self.log_path))?;
        }
        self.size = pos;
        self.next_offset = next_offset;
        self.bytes_since_last_index_entry = pos - last_index_entry;
        self.time_index
            .maybe_append(
                self.max_timestamp_so_far,
                self.shallow_offset_of_max_timestamp,
                true,
            )
            .map_err(storage(self.time_index.path()))?;
        self.rewrite_indexes()?;
        Ok(RecoveryOutcome {
            truncated_bytes,
            truncated_at: pos,
            truncated_batches,
            reason,
            epochs,
        })
    }

    fn rewrite_indexes(&mut self) -> Result<(), LogError> {
        self.offset_index
            .rewrite()
            .and_then(|()| self.offset_index.trim())
            .map_err(storage(self.offset_index.path()))?;
        self.time_index
            .rewrite()
            .and_then(|()| self.time_index.trim())
            .map_err(storage(self.time_index.path()))
    }

    /// Kafka's roll conditions (`LogSegment.shouldRoll`), segment.ms less this segment's jitter.
    pub(crate) fn should_roll(
        &self,
        config: &LogConfig,
        messages_size: u64,
        max_timestamp_in_messages: i64,
        max_offset_in_messages: i64,
        now_ms: i64,
    ) -> bool {
        let waited = match self.rolling_based_timestamp {
            Some(ts) if ts >= 0 => max_timestamp_in_messages.saturating_sub(ts),
            _ => now_ms.saturating_sub(self.created_ms.unwrap_or(now_ms)),
        };
        self.size > config.segment_bytes.saturating_sub(messages_size)
            || (self.size > 0 && waited > config.segment_ms.saturating_sub(self.roll_jitter_ms))
            || self.offset_index.is_full()
            || self.time_index.is_full()
            || max_offset_in_messages - self.base_offset > i64::from(i32::MAX)
    }

    /// Writes all batches with one positioned write, then indexes them.
    pub(crate) fn append(
        &mut self,
        buf: &[u8],
        batches: &[BatchMeta],
        index_interval_bytes: u32,
        now_ms: i64,
    ) -> Result<(), LogError> {
        let start = self.size;
        let file = self.writable()?;
        if let Err(e) = file.write_all_at(buf, start) {
            // Leave no partial write behind for readers; the error still surfaces.
            let _ = file.set_len(start);
            return Err(storage(&self.log_path)(e));
        }
        if self.created_ms.is_none() {
            self.created_ms = Some(now_ms);
        }
        if start == 0 {
            self.rolling_based_timestamp = batches.first().map(|b| b.max_timestamp);
        }
        for b in batches {
            if b.max_timestamp > self.max_timestamp_so_far {
                self.max_timestamp_so_far = b.max_timestamp;
                self.shallow_offset_of_max_timestamp = b.last_offset;
            }
            if self.bytes_since_last_index_entry > u64::from(index_interval_bytes) {
                let position = start + b.position as u64;
                self.offset_index
                    .append(b.last_offset, position)
                    .map_err(storage(self.offset_index.path()))?;
                self.time_index
                    .maybe_append(
                        self.max_timestamp_so_far,
                        self.shallow_offset_of_max_timestamp,
                        false,
                    )
                    .map_err(storage(self.time_index.path()))?;
                self.bytes_since_last_index_entry = 0;
            }
            self.bytes_since_last_index_entry += b.size as u64;
        }
        self.size = start + buf.len() as u64;
        if let Some(last) = batches.last() {
            self.next_offset = last.last_offset + 1;
        }
        Ok(())
    }

    /// Position and header of the first batch whose last offset is >= `target`, scanning from
    /// the index entry at or below it (Kafka's `translateOffset`).
    pub(crate) fn translate_offset(
        &self,
        target: i64,
    ) -> Result<Option<(u64, [u8; BATCH_HEADER_LEN])>, LogError> {
        let (_, start) = self.offset_index.lookup(target);
        let mut found = None;
        self.scan_headers(start, |pos, h| {
            if h.last_offset() >= target {
                found = Some((pos, *h.as_bytes()));
                false
            } else {
                true
            }
        })?;
        Ok(found)
    }

    /// Where a timestamp search may start: the batch after which every record is older.
    pub(crate) fn timestamp_search_start(&self, timestamp: i64) -> u64 {
        match self.time_index.lookup_below(timestamp) {
            Some((_, offset)) => self.offset_index.lookup(offset).1,
            None => 0,
        }
    }

    pub(crate) fn position_of(&self, offset: i64) -> u64 {
        self.offset_index.lookup(offset).1
    }

    pub(crate) fn position_bound_for(&self, offset: i64) -> Option<u64> {
        self.offset_index.position_at_or_after(offset)
    }

    pub(crate) fn read_at(&self, position: u64, len: usize) -> Result<Vec<u8>, LogError> {
        let mut buf = vec![0u8; len];
        self.handle()?
            .read_exact_at(&mut buf, position)
            .map_err(storage(&self.log_path))?;
        Ok(buf)
    }

    /// Drops every batch whose last offset is >= `offset`. Returns the bytes removed.
    pub(crate) fn truncate_to(&mut self, offset: i64) -> Result<u64, LogError> {
        let Some((position, _)) = self.translate_offset(offset)? else {
            return Ok(0);
        };
        let removed = self.size - position;
        self.writable()?
            .set_len(position)
            .map_err(storage(&self.log_path))?;
        self.size = position;
        self.offset_index.truncate_to_position(position);
        self.time_index.truncate_to_offset(offset);
        self.rewrite_indexes()?;
        self.offset_index
            .preallocate()
            .map_err(storage(self.offset_index.path()))?;
        self.time_index
            .preallocate()
            .map_err(storage(self.time_index.path()))?;
        self.bytes_since_last_index_entry = 0;
        (
            self.max_timestamp_so_far,
            self.shallow_offset_of_max_timestamp,
        ) = self
            .time_index
            .last_entry()
            .unwrap_or((-1, self.base_offset));
        self.load_tail_state()?;
        Ok(removed)
    }

    /// Back to active after load or truncation: preallocate indexes as Kafka does.
    pub(crate) fn become_active(&mut self) -> Result<(), LogError> {
        self.writable()?;
        self.offset_index
            .preallocate()
            .map_err(storage(self.offset_index.path()))?;
        self.time_index
            .preallocate()
            .map_err(storage(self.time_index.path()))
    }

    /// On roll and close: final time index entry, trimmed index files, everything fsynced.
    pub(crate) fn seal(&mut self) -> Result<(), LogError> {
        self.time_index
            .maybe_append(
                self.max_timestamp_so_far,
                self.shallow_offset_of_max_timestamp,
                true,
            )
            .map_err(storage(self.time_index.path()))?;
        self.offset_index
            .trim()
            .map_err(storage(self.offset_index.path()))?;
        self.time_index
            .trim()
            .map_err(storage(self.time_index.path()))?;
        self.flush()
    }

    pub(crate) fn flush(&self) -> Result<(), LogError> {
        if let Some(f) = &self.file {
            f.sync_data().map_err(storage(&self.log_path))?;
        }
        self.offset_index
            .sync()
            .map_err(storage(self.offset_index.path()))?;
        self.time_index
            .sync()
            .map_err(storage(self.time_index.path()))
    }

    /// Unlinks the segment's files. Called under the partition's lock, so no read of this log
    /// is in progress; a cached handle is closed here (a reader elsewhere holding its `Arc`
    /// would still read the unlinked file safely).
    pub(crate) fn delete_files(self) -> Result<(), LogError> {
        handles::forget(self.id);
        for path in [
            self.log_path.clone(),
            self.offset_index.path().to_path_buf(),
            self.time_index.path().to_path_buf(),
        ] {
            match fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(storage(&path)(e)),
            }
        }
        Ok(())
    }
}

impl Drop for LogSegment {
    /// A segment dropped without deletion (log closed, partition moved) must not leave its
    /// handle in the process-wide cache.
    fn drop(&mut self) {
        handles::forget(self.id);
    }
}
