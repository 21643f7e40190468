//! A process-wide, bounded cache of read-only file handles for inactive segments' `.log` files.
//!
//! Thousands of partitions × segments each would otherwise hold a descriptor (three, with the
//! indexes) for the life of the process. Only the active segment of each log keeps its own
//! handles; an inactive segment asks this cache for a handle when it is read and the least
//! recently used handles are closed beyond the limit. The cache is split into shards by segment
//! id so that reads of different partitions rarely meet on one lock, and a lock is held only to
//! look up or insert an `Arc<File>`: the pread itself runs outside it, and an evicted handle
//! stays open until the reader holding its `Arc` finishes.
//!
//! It must not hold handles to files of a segment that was deleted or became active again:
//! `forget` is called for both.

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

/// Default bound on descriptors held open for inactive segments across the whole process.
pub const DEFAULT_MAX_OPEN_SEGMENT_HANDLES: usize = 1024;

const SHARDS: usize = 16;

static NEXT_SEGMENT_ID: AtomicU64 = AtomicU64::new(1);
static LIMIT: AtomicUsize = AtomicUsize::new(DEFAULT_MAX_OPEN_SEGMENT_HANDLES);
static OPENS: AtomicU64 = AtomicU64::new(0);

struct Shard {
    /// segment id -> (handle, last use tick)
    handles: HashMap<u64, (Arc<File>, u64)>,
    tick: u64,
}

fn shards() -> &'static [Mutex<Shard>; SHARDS] {
    static CACHE: OnceLock<[Mutex<Shard>; SHARDS]> = OnceLock::new();
    CACHE.get_or_init(|| {
        std::array::from_fn(|_| {
            Mutex::new(Shard {
                handles: HashMap::new(),
                tick: 0,
            })
        })
    })
}

fn shard_of(id: u64) -> &'static Mutex<Shard> {
    &shards()[(id % SHARDS as u64) as usize]
}

/// A fresh id for a segment's entry in the cache (never reused).
pub(crate) fn next_segment_id() -> u64 {
    NEXT_SEGMENT_ID.fetch_add(1, Ordering::Relaxed)
}

/// Sets the process-wide bound (the broker may derive it from its fd limit). At least one
/// handle per shard is kept so that a read can always proceed.
pub fn set_max_open_segment_handles(limit: usize) {
    LIMIT.store(limit.max(SHARDS), Ordering::Relaxed);
}

pub fn max_open_segment_handles() -> usize {
    LIMIT.load(Ordering::Relaxed)
}

/// Handles currently held by the cache (not counting those of active segments).
pub fn open_segment_handles() -> usize {
    shards()
        .iter()
        .map(|s| s.lock().map_or(0, |s| s.handles.len()))
        .sum()
}

/// How many times a cold segment file was opened since the process started (for measurements).
pub fn segment_handle_opens() -> u64 {
    OPENS.load(Ordering::Relaxed)
}

/// The cached read-only handle of segment `id`, opening `path` on a miss.
pub(crate) fn get(id: u64, path: &Path) -> io::Result<Arc<File>> {
    let shard = shard_of(id);
    {
        let mut s = shard
            .lock()
            .map_err(|_| io::Error::other("segment handle cache poisoned"))?;
        s.tick += 1;
        let tick = s.tick;
        if let Some((file, used)) = s.handles.get_mut(&id) {
            *used = tick;
            return Ok(file.clone());
        }
    }
    // Open outside the lock: a slow open must not stall other partitions' reads.
    let file = Arc::new(File::open(path)?);
    OPENS.fetch_add(1, Ordering::Relaxed);
    let per_shard = (max_open_segment_handles() / SHARDS).max(1);
    let mut s = shard
        .lock()
        .map_err(|_| io::Error::other("segment handle cache poisoned"))?;
    s.tick += 1;
    let tick = s.tick;
    while s.handles.len() >= per_shard {
        // Linear scan: a shard holds at most limit/16 entries, cheaper than keeping an order.
        let Some(oldest) = s
            .handles
            .iter()
            .min_by_key(|(_, (_, t))| *t)
            .map(|(k, _)| *k)
        else {
            break;
        };
        s.handles.remove(&oldest);
    }
    let entry = s.handles.entry(id).or_insert((file, tick));
    entry.1 = tick;
    Ok(entry.0.clone())
}

/// Closes segment `id`'s cached handle, if any (segment deleted or made active).
pub(crate) fn forget(id: u64) {
    if let Ok(mut s) = shard_of(id).lock() {
        s.handles.remove(&id);
    }
}
