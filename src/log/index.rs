//! A segment's sparse `.index` (4-byte relative offset + 4-byte position) and `.timeindex`
//! (8-byte timestamp + 4-byte relative offset), big endian, in Kafka's file format.
//!
//! The entries live in memory (authoritative) and each new entry is written through with one
//! pwrite. Like Kafka, the active segment's files are preallocated to max_index_size and
//! trimmed to the entries on roll and close; an untrimmed file therefore reads back as corrupt
//! (trailing zero entries break monotonicity) and gets rebuilt from the log.
//!
//! The file handle is opened only when something must be written and is released when the
//! segment becomes inactive: lookups never touch the file, so an inactive
//! segment's indexes cost no file descriptor.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

pub(crate) const OFFSET_ENTRY: usize = 8;
pub(crate) const TIME_ENTRY: usize = 12;

fn open_rw(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
}

/// Reads a whole index file; `None` when missing or not a whole number of entries.
fn read_entries_file(path: &Path, entry: usize) -> io::Result<Option<Vec<u8>>> {
    match std::fs::read(path) {
        Ok(bytes) if bytes.len() % entry == 0 => Ok(Some(bytes)),
        Ok(_) => Ok(None),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

pub(crate) struct OffsetIndex {
    path: PathBuf,
    file: Option<File>,
    base_offset: i64,
    /// (relative offset, position)
    entries: Vec<(u32, u32)>,
    max_entries: usize,
}

impl OffsetIndex {
    /// A fresh empty index, file preallocated as for an active segment.
    pub(crate) fn create(path: PathBuf, base_offset: i64, max_index_size: u32) -> io::Result<Self> {
        let file = open_rw(&path)?;
        file.set_len(0)?;
        let mut index = OffsetIndex {
            path,
            file: Some(file),
            base_offset,
            entries: Vec::new(),
            max_entries: (max_index_size as usize / OFFSET_ENTRY).max(1),
        };
        index.preallocate()?;
        Ok(index)
    }

    /// Loads an existing index; `Ok(None)` when missing or failing the sanity check (offsets
    /// strictly increasing, positions increasing and inside the segment).
    pub(crate) fn load(
        path: PathBuf,
        base_offset: i64,
        max_index_size: u32,
        segment_size: u64,
    ) -> io::Result<Option<Self>> {
        let Some(bytes) = read_entries_file(&path, OFFSET_ENTRY)? else {
            return Ok(None);
        };
        let mut entries = Vec::with_capacity(bytes.len() / OFFSET_ENTRY);
        for chunk in bytes.chunks_exact(OFFSET_ENTRY) {
            let rel = u32::from_be_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
            let pos = u32::from_be_bytes([chunk[4], chunk[5], chunk[6], chunk[7]]);
            let sane = rel <= i32::MAX as u32
                && u64::from(pos) < segment_size
                && entries
                    .last()
                    .is_none_or(|&(r, p): &(u32, u32)| rel > r && pos > p);
            if !sane {
                return Ok(None);
            }
            entries.push((rel, pos));
        }
        Ok(Some(OffsetIndex {
            path,
            file: None,
            base_offset,
            entries,
            max_entries: (max_index_size as usize / OFFSET_ENTRY).max(1),
        }))
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    pub(crate) fn is_full(&self) -> bool {
        self.entries.len() >= self.max_entries
    }

    /// Position of the first entry whose offset is >= target: the batch there ends at or
    /// after target, so nothing before target lies past this position.
    pub(crate) fn position_at_or_after(&self, target: i64) -> Option<u64> {
        let rel = target - self.base_offset;
        let idx = self.entries.partition_point(|&(r, _)| i64::from(r) < rel);
        self.entries.get(idx).map(|&(_, p)| u64::from(p))
    }

    pub(crate) fn append(&mut self, offset: i64, position: u64) -> io::Result<()> {
        let Ok(rel) = u32::try_from(offset - self.base_offset) else {
            return Ok(());
        };
        let Ok(pos) = u32::try_from(position) else {
            return Ok(());
        };
        if self.is_full() || self.entries.last().is_some_and(|&(r, _)| rel <= r) {
            return Ok(());
        }
        let mut buf = [0u8; OFFSET_ENTRY];
        buf[..4].copy_from_slice(&rel.to_be_bytes());
        buf[4..].copy_from_slice(&pos.to_be_bytes());
        let at = (self.entries.len() * OFFSET_ENTRY) as u64;
        self.file()?.write_all_at(&buf, at)?;
        self.entries.push((rel, pos));
        Ok(())
    }

    /// The largest entry whose offset is <= target, or (base_offset, 0).
    pub(crate) fn lookup(&self, target: i64) -> (i64, u64) {
        let rel = target - self.base_offset;
        let idx = self.entries.partition_point(|&(r, _)| i64::from(r) <= rel);
        match idx.checked_sub(1).and_then(|i| self.entries.get(i)) {
            Some(&(r, p)) => (self.base_offset + i64::from(r), u64::from(p)),
            None => (self.base_offset, 0),
        }
    }

    pub(crate) fn last_entry(&self) -> (i64, u64) {
        self.entries
            .last()
            .map_or((self.base_offset, 0), |&(r, p)| {
                (self.base_offset + i64::from(r), u64::from(p))
            })
    }

    pub(crate) fn truncate_to_position(&mut self, position: u64) {
        self.entries.retain(|&(_, p)| u64::from(p) < position);
    }

    pub(crate) fn clear(&mut self) {
        self.entries.clear();
    }

    /// Rewrites the whole file from memory (after a rebuild or truncation).
    pub(crate) fn rewrite(&mut self) -> io::Result<()> {
        let mut buf = Vec::with_capacity(self.entries.len() * OFFSET_ENTRY);
        for &(r, p) in &self.entries {
            buf.extend_from_slice(&r.to_be_bytes());
            buf.extend_from_slice(&p.to_be_bytes());
        }
        self.file()?.write_all_at(&buf, 0)?;
        Ok(())
    }

    pub(crate) fn preallocate(&mut self) -> io::Result<()> {
        let len = (self.max_entries.max(self.entries.len()) * OFFSET_ENTRY) as u64;
        self.file()?.set_len(len)
    }

    pub(crate) fn trim(&mut self) -> io::Result<()> {
        let len = (self.entries.len() * OFFSET_ENTRY) as u64;
        self.file()?.set_len(len)
    }

    /// The write handle, opened on first use.
    fn file(&mut self) -> io::Result<&File> {
        if self.file.is_none() {
            self.file = Some(open_rw(&self.path)?);
        }
        self.file
            .as_ref()
            .ok_or_else(|| io::Error::other("index handle vanished"))
    }

    /// Closes the handle (segment became inactive; the segment fsynced what it wrote).
    pub(crate) fn release(&mut self) {
        self.file = None;
    }

    pub(crate) fn sync(&self) -> io::Result<()> {
        match &self.file {
            Some(f) => f.sync_all(),
            None => Ok(()),
        }
    }
}

pub(crate) struct TimeIndex {
    path: PathBuf,
    file: Option<File>,
    base_offset: i64,
    /// (timestamp, relative offset)
    entries: Vec<(i64, u32)>,
    max_entries: usize,
}

impl TimeIndex {
    pub(crate) fn create(path: PathBuf, base_offset: i64, max_index_size: u32) -> io::Result<Self> {
        let file = open_rw(&path)?;
        file.set_len(0)?;
        let mut index = TimeIndex {
            path,
            file: Some(file),
            base_offset,
            entries: Vec::new(),
            max_entries: (max_index_size as usize / TIME_ENTRY).max(2),
        };
        index.preallocate()?;
        Ok(index)
    }

    /// Loads an existing time index; `Ok(None)` when missing or not strictly increasing in
    /// timestamp and non-decreasing in offset.
    pub(crate) fn load(
        path: PathBuf,
        base_offset: i64,
        max_index_size: u32,
    ) -> io::Result<Option<Self>> {
        let Some(bytes) = read_entries_file(&path, TIME_ENTRY)? else {
            return Ok(None);
        };
        let mut entries = Vec::with_capacity(bytes.len() / TIME_ENTRY);
        for chunk in bytes.chunks_exact(TIME_ENTRY) {
            let mut ts = [0u8; 8];
            ts.copy_from_slice(&chunk[..8]);
            let ts = i64::from_be_bytes(ts);
            let rel = u32::from_be_bytes([chunk[8], chunk[9], chunk[10], chunk[11]]);
            let sane = ts >= 0
                && rel <= i32::MAX as u32
                && entries
                    .last()
                    .is_none_or(|&(t, r): &(i64, u32)| ts > t && rel >= r);
            if !sane {
                return Ok(None);
            }
            entries.push((ts, rel));
        }
        Ok(Some(TimeIndex {
            path,
            file: None,
            base_offset,
            entries,
            max_entries: (max_index_size as usize / TIME_ENTRY).max(2),
        }))
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// One slot stays free for the entry written when the segment becomes inactive.
    pub(crate) fn is_full(&self) -> bool {
        self.entries.len() + 1 >= self.max_entries
    }

    /// Appends only when the timestamp grows (Kafka's `TimeIndex.maybeAppend`).
    pub(crate) fn maybe_append(
        &mut self,
        timestamp: i64,
        offset: i64,
        skip_full_check: bool,
    ) -> io::Result<()> {
        if timestamp < 0 || (!skip_full_check && self.is_full()) {
            return Ok(());
        }
        let Ok(rel) = u32::try_from(offset - self.base_offset) else {
            return Ok(());
        };
        if self
            .entries
            .last()
            .is_some_and(|&(t, r)| timestamp <= t || rel < r)
        {
            return Ok(());
        }
        let mut buf = [0u8; TIME_ENTRY];
        buf[..8].copy_from_slice(&timestamp.to_be_bytes());
        buf[8..].copy_from_slice(&rel.to_be_bytes());
        let at = (self.entries.len() * TIME_ENTRY) as u64;
        self.file()?.write_all_at(&buf, at)?;
        self.entries.push((timestamp, rel));
        Ok(())
    }

    /// The last entry whose timestamp is strictly below `target`: every record at or before its
    /// offset is older than `target`, so a search may start there. (Kafka takes <=, which can
    /// skip an earlier record with exactly the target timestamp.)
    pub(crate) fn lookup_below(&self, target: i64) -> Option<(i64, i64)> {
        let idx = self.entries.partition_point(|&(t, _)| t < target);
        idx.checked_sub(1)
            .and_then(|i| self.entries.get(i))
            .map(|&(t, r)| (t, self.base_offset + i64::from(r)))
    }

    pub(crate) fn last_entry(&self) -> Option<(i64, i64)> {
        self.entries
            .last()
            .map(|&(t, r)| (t, self.base_offset + i64::from(r)))
    }

    pub(crate) fn truncate_to_offset(&mut self, offset: i64) {
        let base = self.base_offset;
        self.entries.retain(|&(_, r)| base + i64::from(r) < offset);
    }

    pub(crate) fn clear(&mut self) {
        self.entries.clear();
    }

    pub(crate) fn rewrite(&mut self) -> io::Result<()> {
        let mut buf = Vec::with_capacity(self.entries.len() * TIME_ENTRY);
        for &(t, r) in &self.entries {
            buf.extend_from_slice(&t.to_be_bytes());
            buf.extend_from_slice(&r.to_be_bytes());
        }
        self.file()?.write_all_at(&buf, 0)?;
        Ok(())
    }

    pub(crate) fn preallocate(&mut self) -> io::Result<()> {
        let len = (self.max_entries.max(self.entries.len()) * TIME_ENTRY) as u64;
        self.file()?.set_len(len)
    }

    pub(crate) fn trim(&mut self) -> io::Result<()> {
        let len = (self.entries.len() * TIME_ENTRY) as u64;
        self.file()?.set_len(len)
    }

    /// The write handle, opened on first use.
    fn file(&mut self) -> io::Result<&File> {
        if self.file.is_none() {
            self.file = Some(open_rw(&self.path)?);
        }
        self.file
            .as_ref()
            .ok_or_else(|| io::Error::other("index handle vanished"))
    }

    /// Closes the handle (segment became inactive; the segment fsynced what it wrote).
    pub(crate) fn release(&mut self) {
        self.file = None;
    }

    pub(crate) fn sync(&self) -> io::Result<()> {
        match &self.file {
            Some(f) => f.sync_all(),
            None => Ok(()),
        }
    }
}
