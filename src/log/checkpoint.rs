//! Kafka's checkpoint text files: a version line (0), a count line, then one entry per line.
//! `leader-epoch-checkpoint` (per partition: "epoch startOffset") and the log dir's
//! `recovery-point-offset-checkpoint`, `log-start-offset-checkpoint` and
//! `replication-offset-checkpoint` ("topic partition offset").
//!
//! Writes go to `<name>.tmp`, are fsynced when asked, renamed over the file, and the directory
//! is fsynced, so a crash leaves either the old or the new file.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use super::LogError;

pub const RECOVERY_POINT_CHECKPOINT: &str = "recovery-point-offset-checkpoint";
pub const LOG_START_OFFSET_CHECKPOINT: &str = "log-start-offset-checkpoint";
pub const REPLICATION_OFFSET_CHECKPOINT: &str = "replication-offset-checkpoint";
pub const LEADER_EPOCH_CHECKPOINT: &str = "leader-epoch-checkpoint";

const CHECKPOINT_VERSION: u32 = 0;

fn corrupt(path: &Path, reason: impl Into<String>) -> LogError {
    LogError::CorruptCheckpoint {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

pub(crate) fn storage(path: &Path) -> impl FnOnce(io::Error) -> LogError + '_ {
    move |source| LogError::Storage {
        path: path.to_path_buf(),
        source,
    }
}

pub(crate) fn sync_dir(dir: &Path) -> Result<(), LogError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(storage(dir))
}

/// Writes `lines` in checkpoint format atomically.
pub(crate) fn write_checkpoint(path: &Path, lines: &[String], sync: bool) -> Result<(), LogError> {
    let mut text = format!("{CHECKPOINT_VERSION}\n{}\n", lines.len());
    for line in lines {
        text.push_str(line);
        text.push('\n');
    }
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let mut file = File::create(&tmp).map_err(storage(&tmp))?;
    file.write_all(text.as_bytes()).map_err(storage(&tmp))?;
    if sync {
        file.sync_all().map_err(storage(&tmp))?;
    }
    drop(file);
    fs::rename(&tmp, path).map_err(storage(path))?;
    if sync && let Some(dir) = path.parent() {
        sync_dir(dir)?;
    }
    Ok(())
}

/// The entry lines of a checkpoint file, `None` if it does not exist.
pub(crate) fn read_checkpoint(path: &Path) -> Result<Option<Vec<String>>, LogError> {
    let text = match fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) if e.kind() == io::ErrorKind::InvalidData => {
            return Err(corrupt(path, "not UTF-8"));
        }
        Err(e) => return Err(storage(path)(e)),
    };
    let mut lines = text.lines();
    let version = lines.next().ok_or_else(|| corrupt(path, "empty file"))?;
    if version.trim().parse::<u32>() != Ok(CHECKPOINT_VERSION) {
        return Err(corrupt(
            path,
            format!("unrecognised version line {version:?}"),
        ));
    }
    let count: usize = lines
        .next()
        .and_then(|l| l.trim().parse().ok())
        .ok_or_else(|| corrupt(path, "missing or malformed count line"))?;
    let entries: Vec<String> = lines
        .filter(|l| !l.trim().is_empty())
        .map(str::to_owned)
        .collect();
    if entries.len() != count {
        return Err(corrupt(
            path,
            format!("expected {count} entries but found {}", entries.len()),
        ));
    }
    Ok(Some(entries))
}

/// The per-log-dir offset checkpoint files, keyed by (topic, partition).
pub struct LogDirCheckpoints;

impl LogDirCheckpoints {
    /// Reads one of the offset checkpoint files; a missing file is empty.
    pub fn read(path: &Path) -> Result<BTreeMap<(String, i32), i64>, LogError> {
        let mut map = BTreeMap::new();
        for line in read_checkpoint(path)?.unwrap_or_default() {
            let mut parts = line.split_whitespace();
            let parsed = (|| {
                let topic = parts.next()?.to_owned();
                let partition = parts.next()?.parse::<i32>().ok()?;
                let offset = parts.next()?.parse::<i64>().ok()?;
                parts.next().is_none().then_some((topic, partition, offset))
            })();
            let (topic, partition, offset) =
                parsed.ok_or_else(|| corrupt(path, format!("malformed line {line:?}")))?;
            map.insert((topic, partition), offset);
        }
        Ok(map)
    }

    /// Replaces the file atomically and durably.
    pub fn write(path: &Path, offsets: &BTreeMap<(String, i32), i64>) -> Result<(), LogError> {
        let lines: Vec<String> = offsets
            .iter()
            .map(|((topic, partition), offset)| format!("{topic} {partition} {offset}"))
            .collect();
        write_checkpoint(path, &lines, true)
    }

    pub fn recovery_point_path(log_dir: &Path) -> PathBuf {
        log_dir.join(RECOVERY_POINT_CHECKPOINT)
    }
    pub fn log_start_offset_path(log_dir: &Path) -> PathBuf {
        log_dir.join(LOG_START_OFFSET_CHECKPOINT)
    }
    pub fn replication_offset_path(log_dir: &Path) -> PathBuf {
        log_dir.join(REPLICATION_OFFSET_CHECKPOINT)
    }
}

/// Leader epoch -> start offset, as Kafka's `LeaderEpochFileCache`.
pub(crate) struct LeaderEpochCache {
    path: PathBuf,
    entries: Vec<(i32, i64)>,
    unsynced: bool,
}

impl LeaderEpochCache {
    pub(crate) fn empty(dir: &Path) -> Self {
        LeaderEpochCache {
            path: dir.join(LEADER_EPOCH_CHECKPOINT),
            entries: Vec::new(),
            unsynced: true,
        }
    }

    /// `Ok(None)` when the file is missing or unreadable as a checkpoint: rebuild from batches.
    pub(crate) fn load(dir: &Path) -> Result<Option<Self>, LogError> {
        let path = dir.join(LEADER_EPOCH_CHECKPOINT);
        let lines = match read_checkpoint(&path) {
            Ok(Some(lines)) => lines,
            Ok(None) | Err(LogError::CorruptCheckpoint { .. }) => return Ok(None),
            Err(e) => return Err(e),
        };
        let mut entries = Vec::with_capacity(lines.len());
        for line in lines {
            let mut parts = line.split_whitespace();
            let entry = (|| {
                let epoch = parts.next()?.parse::<i32>().ok()?;
                let offset = parts.next()?.parse::<i64>().ok()?;
                parts.next().is_none().then_some((epoch, offset))
            })();
            match entry {
                Some(e) => entries.push(e),
                None => return Ok(None),
            }
        }
        Ok(Some(LeaderEpochCache {
            path,
            entries,
            unsynced: false,
        }))
    }

    pub(crate) fn entries(&self) -> &[(i32, i64)] {
        &self.entries
    }

    pub(crate) fn latest_epoch(&self) -> Option<i32> {
        self.entries.last().map(|e| e.0)
    }

    /// Kafka's `assign`: a new epoch, or an earlier start for the latest one, replaces any
    /// entries that would break monotonicity. Returns whether anything changed.
    pub(crate) fn assign(&mut self, epoch: i32, start_offset: i64) -> bool {
        if epoch < 0 || start_offset < 0 {
            return false;
        }
        let needed = self
            .entries
            .last()
            .is_none_or(|&(e, o)| e != epoch || start_offset < o);
        if !needed {
            return false;
        }
        self.entries.retain(|&(e, o)| e < epoch && o < start_offset);
        self.entries.push((epoch, start_offset));
        true
    }

    /// Drops entries starting at or after `end_offset` (log truncation).
    pub(crate) fn truncate_from_end(&mut self, end_offset: i64) -> bool {
        let before = self.entries.len();
        self.entries.retain(|&(_, o)| o < end_offset);
        before != self.entries.len()
    }

    pub(crate) fn clear(&mut self) {
        self.entries.clear();
    }

    /// Kafka's `truncateFromStart` (log start offset moved): entries starting at or before
    /// `start_offset` collapse into the last of them, which now starts at `start_offset`.
    /// Returns whether anything changed.
    pub(crate) fn truncate_from_start(&mut self, start_offset: i64) -> bool {
        let below = self.entries.partition_point(|&(_, o)| o <= start_offset);
        let Some(&(epoch, offset)) = below.checked_sub(1).and_then(|i| self.entries.get(i)) else {
            return false;
        };
        if below == 1 && offset == start_offset {
            return false;
        }
        self.entries.drain(..below);
        self.entries.insert(0, (epoch, start_offset));
        true
    }

    /// Kafka's `endOffsetFor(requestedEpoch, logEndOffset)` for OffsetsForLeaderEpoch.
    pub(crate) fn end_offset_for(&self, requested_epoch: i32, log_end_offset: i64) -> (i32, i64) {
        const UNDEFINED: (i32, i64) = (-1, -1);
        if requested_epoch < 0 {
            return UNDEFINED;
        }
        if self.latest_epoch() == Some(requested_epoch) {
            return (requested_epoch, log_end_offset);
        }
        let Some(&(_, higher_start)) = self.entries.iter().find(|&&(e, _)| e > requested_epoch)
        else {
            return UNDEFINED;
        };
        match self
            .entries
            .iter()
            .rev()
            .find(|&&(e, _)| e <= requested_epoch)
        {
            Some(&(floor, _)) => (floor, higher_start),
            None => (requested_epoch, higher_start),
        }
    }

    /// Writes the file; the fsync can wait for the next flush (the log can rebuild the cache
    /// from its batches, and Kafka too keeps this write off the append path's fsyncs).
    pub(crate) fn write(&mut self, sync: bool) -> Result<(), LogError> {
        let lines: Vec<String> = self
            .entries
            .iter()
            .map(|(e, o)| format!("{e} {o}"))
            .collect();
        write_checkpoint(&self.path, &lines, sync)?;
        self.unsynced = !sync;
        Ok(())
    }

    pub(crate) fn sync_if_needed(&mut self) -> Result<(), LogError> {
        if self.unsynced {
            self.write(true)?;
        }
        Ok(())
    }
}
