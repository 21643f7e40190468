//! Follows the committed metadata log: reads batches below the high watermark, decodes the
//! records, folds them into a new image and publishes it. Every node, single or clustered, gets
//! its image this way.
//!
//! With snapshots on (`MetadataLoader::with_snapshots`) it also starts from the newest snapshot
//! (KIP-630) instead of offset 0, and, like Kafka's `SnapshotGenerator`, writes a snapshot of its
//! image once enough record bytes or time have gone by. Writing happens on a blocking thread and
//! never holds up the follow loop; the Raft driver learns of each snapshot through a watch
//! channel and may then trim the log below it. The loader never deletes log segments itself.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::messages::{KRaftVersionRecord, VotersRecord};
use kafka_protocol::protocol::Decodable;
use kafka_protocol::records::RecordBatchDecoder;
use tokio::sync::watch;
use tracing::{error, info, warn};

use super::image::MetadataImage;
use super::records::MetadataRecord;
use crate::config::ServerConfig;
use crate::log::{LogError, ReadInfo};
use crate::protocol::record_batch::BatchIter;
use crate::raft::snapshot::{
    self, SnapshotControl, SnapshotError, SnapshotId, control_record_type, control_type,
};
use crate::raft::{RaftError, RaftHandle};

/// Something that must see each new image before any reader does (Kafka's MetadataPublisher):
/// the broker opens the partitions an image assigns it, so that when a client learns of a
/// partition from Metadata, the partition is already served.
pub trait MetadataPublisher: Send + Sync {
    fn publish(&self, image: &Arc<MetadataImage>);
}

/// Where the loader reads committed batches from: the Raft log (`RaftHandle`), or a stand-in in
/// tests.
pub trait CommittedLog: Send + Sync + 'static {
    /// Records below this offset are committed.
    fn high_watermark(&self) -> watch::Receiver<i64>;
    /// Committed whole batches from `offset`, at least one if any.
    fn read_committed(&self, offset: i64, max_bytes: usize) -> Result<ReadInfo, RaftError>;
}

impl CommittedLog for RaftHandle {
    fn high_watermark(&self) -> watch::Receiver<i64> {
        RaftHandle::high_watermark(self)
    }

    fn read_committed(&self, offset: i64, max_bytes: usize) -> Result<ReadInfo, RaftError> {
        RaftHandle::read_committed(self, offset, max_bytes)
    }
}

/// Bytes read from the log per step; bounds the loader's memory.
const READ_CHUNK: usize = 1 << 20;

/// A cheap handle to the newest image.
#[derive(Clone)]
pub struct MetadataReader {
    rx: watch::Receiver<Arc<MetadataImage>>,
}

impl MetadataReader {
    pub fn current(&self) -> Arc<MetadataImage> {
        self.rx.borrow().clone()
    }

    /// Waits until the image includes every record below `offset`.
    pub async fn wait_for_offset(&self, offset: i64) -> Option<Arc<MetadataImage>> {
        let mut rx = self.rx.clone();
        rx.wait_for(|img| img.offset >= offset)
            .await
            .ok()
            .map(|img| img.clone())
    }

    pub fn subscribe(&self) -> watch::Receiver<Arc<MetadataImage>> {
        self.rx.clone()
    }
}

/// When to write a snapshot: Kafka's `metadata.log.max.record.bytes.between.snapshots` and
/// `metadata.log.max.snapshot.interval.ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SnapshotPolicy {
    /// Committed record bytes applied since the last snapshot that trigger the next one.
    pub max_bytes_between_snapshots: u64,
    /// Time since the last snapshot after which new records trigger one; `None` (0 in the
    /// config) never triggers by time.
    pub max_interval: Option<Duration>,
}

impl SnapshotPolicy {
    pub fn from_config(config: &ServerConfig) -> SnapshotPolicy {
        let ms = config.metadata_log_max_snapshot_interval_ms;
        SnapshotPolicy {
            max_bytes_between_snapshots: config
                .metadata_log_max_record_bytes_between_snapshots
                .max(1) as u64,
            max_interval: (ms > 0).then(|| Duration::from_millis(ms as u64)),
        }
    }
}

impl Default for SnapshotPolicy {
    /// Kafka's defaults: 20 MiB, one hour.
    fn default() -> Self {
        SnapshotPolicy {
            max_bytes_between_snapshots: 20 * 1024 * 1024,
            max_interval: Some(Duration::from_secs(3600)),
        }
    }
}

/// What the loader needs to read and write snapshots.
pub struct LoaderSnapshots {
    /// The metadata partition dir (`raft::driver::metadata_partition_dir`), where the
    /// `.checkpoint` files live.
    pub dir: PathBuf,
    pub policy: SnapshotPolicy,
    /// Set to each snapshot once it is durable; the Raft driver may then trim the log below it.
    pub written: watch::Sender<Option<SnapshotId>>,
}

/// Kafka's SnapshotGenerator counters: bytes applied and time since the last snapshot.
#[derive(Debug)]
struct SnapshotTrigger {
    policy: SnapshotPolicy,
    bytes_since_last: u64,
    last_at: Instant,
}

impl SnapshotTrigger {
    fn new(policy: SnapshotPolicy, now: Instant) -> SnapshotTrigger {
        SnapshotTrigger {
            policy,
            bytes_since_last: 0,
            last_at: now,
        }
    }

    fn reset(&mut self, now: Instant) {
        self.bytes_since_last = 0;
        self.last_at = now;
    }

    /// Counts `bytes` of newly applied batches; says why a snapshot is due, if one is. The
    /// counters keep running until the caller resets them by writing one.
    fn on_log_delta(&mut self, bytes: u64, now: Instant) -> Option<String> {
        self.bytes_since_last = self.bytes_since_last.saturating_add(bytes);
        if self.bytes_since_last >= self.policy.max_bytes_between_snapshots {
            return Some(format!(
                "{} record bytes were applied since the last snapshot (metadata.log.max.record.bytes.between.snapshots={})",
                self.bytes_since_last, self.policy.max_bytes_between_snapshots
            ));
        }
        match self.policy.max_interval {
            Some(max) if now.saturating_duration_since(self.last_at) >= max => Some(format!(
                "{} ms passed since the last snapshot (metadata.log.max.snapshot.interval.ms={})",
                now.saturating_duration_since(self.last_at).as_millis(),
                max.as_millis()
            )),
            _ => None,
        }
    }
}

/// Where the image stands in the log, and the KRaft control state a snapshot carries along.
#[derive(Debug, Clone, Default, PartialEq)]
struct LogPosition {
    /// Leader epoch of the last batch applied: a snapshot at the image's offset has this epoch.
    last_epoch: i32,
    /// Append time of the last batch applied (the snapshot header's lastContainedLogTimestamp).
    last_timestamp: i64,
    /// The last KRaftVersionRecord seen (0 when none: a static quorum).
    kraft_version: i16,
    /// The last VotersRecord seen (KIP-853).
    voters: Option<VotersRecord>,
}

struct SnapshotState {
    dir: PathBuf,
    trigger: SnapshotTrigger,
    written: Arc<watch::Sender<Option<SnapshotId>>>,
    /// The write in progress; at most one at a time, as Kafka's generator queue.
    in_flight: Option<tokio::task::JoinHandle<()>>,
    /// The newest snapshot on disk (loaded or written).
    latest: Option<SnapshotId>,
}

pub struct MetadataLoader {
    log: Box<dyn CommittedLog>,
    image: MetadataImage,
    position: LogPosition,
    tx: watch::Sender<Arc<MetadataImage>>,
    publishers: Vec<Arc<dyn MetadataPublisher>>,
    snapshots: Option<SnapshotState>,
    /// The image came from a snapshot and no publisher has seen it yet.
    unpublished: bool,
}

impl MetadataLoader {
    /// A loader that replays the log from offset 0 and writes no snapshots.
    pub fn new(
        raft: RaftHandle,
        publishers: Vec<Arc<dyn MetadataPublisher>>,
    ) -> (MetadataLoader, MetadataReader) {
        Self::build(Box::new(raft), publishers)
    }

    /// A loader that starts from the newest snapshot in `snapshots.dir` (if any) and writes new
    /// ones by `snapshots.policy`. Fails when the newest snapshot cannot be read: starting from
    /// an older state would be silently wrong.
    pub fn with_snapshots(
        log: impl CommittedLog,
        publishers: Vec<Arc<dyn MetadataPublisher>>,
        snapshots: LoaderSnapshots,
    ) -> Result<(MetadataLoader, MetadataReader), SnapshotError> {
        let (mut loader, reader) = Self::build(Box::new(log), publishers);
        let latest = snapshot::latest_snapshot(&snapshots.dir)?;
        loader.snapshots = Some(SnapshotState {
            dir: snapshots.dir,
            trigger: SnapshotTrigger::new(snapshots.policy, Instant::now()),
            written: Arc::new(snapshots.written),
            in_flight: None,
            latest: None,
        });
        if let Some(id) = latest {
            loader.load_snapshot(id)?;
        }
        Ok((loader, reader))
    }

    fn build(
        log: Box<dyn CommittedLog>,
        publishers: Vec<Arc<dyn MetadataPublisher>>,
    ) -> (MetadataLoader, MetadataReader) {
        let (tx, rx) = watch::channel(Arc::new(MetadataImage::default()));
        (
            MetadataLoader {
                log,
                image: MetadataImage::default(),
                position: LogPosition::default(),
                tx,
                publishers,
                snapshots: None,
                unpublished: false,
            },
            MetadataReader { rx },
        )
    }

    /// Replaces the image with snapshot `id`: the image then holds every record below its end
    /// offset, and the log is followed from there.
    fn load_snapshot(&mut self, id: SnapshotId) -> Result<(), SnapshotError> {
        let Some(state) = &mut self.snapshots else {
            return Ok(());
        };
        let path = id.path_in(&state.dir);
        let snap = snapshot::read_snapshot(&path)?;
        let mut image = MetadataImage::default();
        let mut skipped = 0usize;
        for (i, value) in snap.records.iter().enumerate() {
            match MetadataRecord::decode(value) {
                Ok(r) => image.apply(&r),
                // As for the log: a record kraftd has no use for (ACLs, controller registrations
                // in a Kafka-written snapshot) is skipped. The batch CRCs already passed, so
                // this is not corruption.
                Err(e) => {
                    if skipped == 0 {
                        warn!(snapshot = %path.display(), record = i, error = %e, "skipping undecodable metadata records in the snapshot");
                    }
                    skipped += 1;
                }
            }
        }
        if skipped > 1 {
            warn!(snapshot = %path.display(), skipped, "skipped undecodable metadata records in the snapshot");
        }
        image.offset = id.end_offset;
        self.image = image;
        self.position = LogPosition {
            last_epoch: id.epoch,
            last_timestamp: snap.last_contained_log_timestamp,
            kraft_version: snap.kraft_version,
            voters: snap.voters,
        };
        state.latest = Some(id);
        state.trigger.reset(Instant::now());
        self.unpublished = true;
        info!(
            snapshot = %path.display(),
            records = snap.records.len(),
            "loaded the metadata image from a snapshot"
        );
        Ok(())
    }

    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) {
        let mut hw = self.log.high_watermark();
        loop {
            let target = *hw.borrow_and_update();
            // Publishers do file I/O (opening partition logs): keep it off the async workers.
            let applied = tokio::task::block_in_place(|| {
                if self.unpublished {
                    // A snapshot's image is published on its own before the log that follows
                    // it, as Kafka's loader does.
                    self.publish();
                }
                let before = self.image.offset;
                let mut applied_bytes = 0u64;
                while self.image.offset < target {
                    match self.load_chunk() {
                        Some(bytes) => applied_bytes += bytes,
                        None => break,
                    }
                }
                if self.image.offset != before || self.unpublished {
                    self.publish();
                }
                applied_bytes
            });
            if applied > 0 {
                let image = self.tx.borrow().clone();
                self.maybe_write_snapshot(image, applied);
            }
            let writing = self
                .snapshots
                .as_ref()
                .is_some_and(|s| s.in_flight.is_some());
            tokio::select! {
                changed = hw.changed() => if changed.is_err() { break },
                _ = shutdown.changed() => break,
                _ = wait_for_write(&mut self.snapshots), if writing => {
                    // A snapshot that fell due while the last one was being written is written
                    // now, rather than at the next batch.
                    let pending = self
                        .snapshots
                        .as_ref()
                        .is_some_and(|s| s.trigger.bytes_since_last > 0);
                    if pending {
                        let image = self.tx.borrow().clone();
                        self.maybe_write_snapshot(image, 0);
                    }
                }
            }
        }
        // A snapshot being written is finished, not abandoned: it is cheap and saves a replay.
        wait_for_write(&mut self.snapshots).await;
    }

    /// Shows the current image to the publishers, then to readers.
    fn publish(&mut self) {
        self.unpublished = false;
        let image = Arc::new(self.image.clone());
        for p in &self.publishers {
            p.publish(&image);
        }
        self.tx.send_replace(image);
    }

    /// Applies the next committed batches; the bytes applied, or `None` when nothing could be
    /// read.
    fn load_chunk(&mut self) -> Option<u64> {
        let data = match self.log.read_committed(self.image.offset, READ_CHUNK) {
            Ok(read) => read.records,
            Err(RaftError::Log(LogError::OffsetOutOfRange {
                log_start_offset, ..
            })) if log_start_offset > self.image.offset => {
                // The log was trimmed past this image (a follower that installed the leader's
                // snapshot): only a snapshot can bring it up to the log start.
                return self.catch_up_from_snapshot(log_start_offset).then_some(0);
            }
            Err(e) => {
                error!(offset = self.image.offset, error = %e, "cannot read the metadata log");
                return None;
            }
        };
        if data.is_empty() {
            return None;
        }
        let mut image = self.image.clone();
        let mut position = self.position.clone();
        let bytes = apply_log_batches(&mut image, &mut position, data);
        if image.offset == self.image.offset {
            return None;
        }
        self.image = image;
        self.position = position;
        Some(bytes)
    }

    /// Loads the newest snapshot if it reaches `log_start_offset`; false if there is none.
    fn catch_up_from_snapshot(&mut self, log_start_offset: i64) -> bool {
        let Some(state) = &self.snapshots else {
            error!(
                offset = self.image.offset,
                log_start_offset, "the metadata log starts above the image and snapshots are off"
            );
            return false;
        };
        let latest = match snapshot::latest_snapshot(&state.dir) {
            Ok(Some(id)) if id.end_offset >= log_start_offset => id,
            Ok(_) => {
                error!(
                    offset = self.image.offset,
                    log_start_offset,
                    dir = %state.dir.display(),
                    "the metadata log starts above the image and no snapshot reaches it"
                );
                return false;
            }
            Err(e) => {
                error!(error = %e, "cannot list metadata snapshots");
                return false;
            }
        };
        match self.load_snapshot(latest) {
            Ok(()) => true,
            Err(e) => {
                error!(error = %e, "cannot load the metadata snapshot");
                false
            }
        }
    }

    /// Starts writing a snapshot of `image` when the policy says one is due and none is being
    /// written.
    fn maybe_write_snapshot(&mut self, image: Arc<MetadataImage>, applied_bytes: u64) {
        let Some(state) = &mut self.snapshots else {
            return;
        };
        if state.in_flight.as_ref().is_some_and(|h| !h.is_finished()) {
            // Kafka's generator counts on while its queue is busy and decides once it is free.
            state.trigger.bytes_since_last =
                state.trigger.bytes_since_last.saturating_add(applied_bytes);
            return;
        }
        let now = Instant::now();
        let Some(reason) = state.trigger.on_log_delta(applied_bytes, now) else {
            return;
        };
        state.trigger.reset(now);
        let id = SnapshotId {
            end_offset: image.offset,
            epoch: self.position.last_epoch,
        };
        if state.latest.is_some_and(|latest| latest >= id) {
            return;
        }
        state.latest = Some(id);
        // A Voters record makes the quorum dynamic even before the KRaftVersion record that
        // follows it (kraftd's first voter change writes both, Voters first): a snapshot
        // between the two must still carry the voters.
        let dynamic = self.position.kraft_version >= snapshot::KRAFT_VERSION_1
            || self.position.voters.is_some();
        let control = SnapshotControl {
            last_contained_log_timestamp: self.position.last_timestamp,
            kraft_version: if dynamic {
                snapshot::KRAFT_VERSION_1
            } else {
                self.position.kraft_version
            },
            voters: if dynamic {
                self.position.voters.clone()
            } else {
                None
            },
        };
        let dir = state.dir.clone();
        let written = state.written.clone();
        info!(snapshot = %id, %reason, "writing a metadata snapshot");
        state.in_flight = Some(tokio::task::spawn_blocking(move || {
            write_image_snapshot(&dir, id, &image, &control, &written);
        }));
    }
}

/// Waits for the snapshot being written, if any, and forgets it.
async fn wait_for_write(snapshots: &mut Option<SnapshotState>) {
    if let Some(handle) = snapshots.as_mut().and_then(|s| s.in_flight.as_mut()) {
        let _ = handle.await;
    }
    if let Some(s) = snapshots.as_mut() {
        s.in_flight = None;
    }
}

/// The blocking half of snapshot generation: encode, write, then drop older snapshots (the new
/// one holds everything they did) and tell the driver.
fn write_image_snapshot(
    dir: &std::path::Path,
    id: SnapshotId,
    image: &MetadataImage,
    control: &SnapshotControl,
    written: &watch::Sender<Option<SnapshotId>>,
) {
    let started = Instant::now();
    let records: Vec<Vec<u8>> = image.to_records().iter().map(|r| r.encode()).collect();
    match snapshot::write_snapshot(dir, id, &records, control) {
        Ok(path) => {
            info!(
                snapshot = %path.display(),
                records = records.len(),
                ms = started.elapsed().as_millis() as u64,
                "wrote a metadata snapshot"
            );
            if let Err(e) = snapshot::delete_snapshots_before(dir, id) {
                warn!(error = %e, "cannot delete older metadata snapshots");
            }
            written.send_replace(Some(id));
        }
        Err(e) => error!(snapshot = %id, error = %e, "cannot write a metadata snapshot"),
    }
}

/// Folds every record of `data` (whole v2 batches) into `image`, skipping control batches.
pub fn apply_batches(image: &mut MetadataImage, data: Bytes) {
    apply_log_batches(image, &mut LogPosition::default(), data);
}

/// Folds the batches of `data` at or above the image's offset into `image`, noting each batch's
/// epoch and time and the KRaft control records in `position`. Returns the bytes of the batches
/// applied. Stops at the first batch that cannot be decoded.
fn apply_log_batches(image: &mut MetadataImage, position: &mut LogPosition, data: Bytes) -> u64 {
    let mut applied = 0u64;
    for batch in BatchIter::new(&data) {
        let batch = match batch {
            Ok(b) => b,
            Err(e) => {
                error!(offset = image.offset, error = %e, "undecodable metadata batch");
                break;
            }
        };
        let h = batch.header;
        if h.last_offset() < image.offset {
            continue;
        }
        let mut bytes = data.slice(batch.position..batch.position + batch.bytes.len());
        let set = match RecordBatchDecoder::decode(&mut bytes) {
            Ok(set) => set,
            Err(e) => {
                error!(offset = h.base_offset(), error = %e, "undecodable metadata batch");
                break;
            }
        };
        for record in set.records {
            if record.offset < image.offset {
                continue;
            }
            image.offset = record.offset + 1;
            let Some(value) = record.value else { continue };
            if record.control {
                apply_control_record(position, record.key.as_deref(), value, record.offset);
                continue;
            }
            match MetadataRecord::decode(&value) {
                Ok(r) => image.apply(&r),
                Err(e) => {
                    warn!(offset = record.offset, error = %e, "skipping undecodable metadata record")
                }
            }
        }
        position.last_epoch = h.partition_leader_epoch();
        position.last_timestamp = h.max_timestamp();
        applied += batch.bytes.len() as u64;
    }
    applied
}

/// Notes the KIP-853 control records (kraft.version and the voter set) a snapshot must carry.
fn apply_control_record(position: &mut LogPosition, key: Option<&[u8]>, value: Bytes, offset: i64) {
    match control_record_type(key) {
        Some(control_type::KRAFT_VERSION) => {
            match KRaftVersionRecord::decode(&mut value.clone(), 0) {
                Ok(r) => position.kraft_version = r.k_raft_version,
                Err(e) => warn!(offset, error = %e, "undecodable KRaftVersion record"),
            }
        }
        Some(control_type::KRAFT_VOTERS) => match VotersRecord::decode(&mut value.clone(), 0) {
            Ok(r) => position.voters = Some(r),
            Err(e) => warn!(offset, error = %e, "undecodable Voters record"),
        },
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use bytes::BytesMut;
    use kafka_protocol::protocol::Encodable;
    use uuid::Uuid;

    use super::*;
    use crate::metadata::records::{ConfigRecord, PartitionRecord, TopicRecord};
    use crate::protocol::record_batch::{self, BatchOptions, NewRecord};
    use crate::raft::snapshot::{VoterSpec, voters_record};

    const WAIT: Duration = Duration::from_secs(10);

    /// A committed log in memory: whole batches, a log start that can jump (as when a follower
    /// installs the leader's snapshot) and a high watermark at the end.
    struct FakeLog {
        stored: Mutex<Stored>,
        hw: watch::Sender<i64>,
    }

    #[derive(Default)]
    struct Stored {
        log_start: i64,
        /// (base offset, last offset, bytes) of each batch.
        batches: Vec<(i64, i64, Bytes)>,
    }

    impl FakeLog {
        fn new() -> Arc<FakeLog> {
            Arc::new(FakeLog {
                stored: Mutex::new(Stored::default()),
                hw: watch::channel(0).0,
            })
        }

        fn end(&self) -> i64 {
            let b = self.stored.lock().expect("lock");
            b.batches
                .last()
                .map_or(b.log_start, |(_, last, _)| last + 1)
        }

        fn append_batch(&self, encode: impl FnOnce(i64) -> (Vec<u8>, i64)) {
            let base = self.end();
            let (bytes, count) = encode(base);
            self.stored.lock().expect("lock").batches.push((
                base,
                base + count - 1,
                Bytes::from(bytes),
            ));
            self.hw.send_replace(base + count);
        }

        fn append(&self, epoch: i32, records: &[MetadataRecord]) {
            let values: Vec<Vec<u8>> = records.iter().map(MetadataRecord::encode).collect();
            self.append_batch(|base| {
                let new: Vec<NewRecord<'_>> = values
                    .iter()
                    .map(|v| NewRecord {
                        key: None,
                        value: Some(v),
                        headers: &[],
                        timestamp: 1_000 + base,
                    })
                    .collect();
                let options = BatchOptions {
                    base_offset: base,
                    partition_leader_epoch: epoch,
                    ..BatchOptions::default()
                };
                (
                    record_batch::encode_batch(&new, &options),
                    values.len() as i64,
                )
            });
        }

        fn append_control(&self, epoch: i32, records: &[(i16, Bytes)]) {
            let keys: Vec<[u8; 4]> = records
                .iter()
                .map(|(t, _)| [0, 0, t.to_be_bytes()[0], t.to_be_bytes()[1]])
                .collect();
            self.append_batch(|base| {
                let new: Vec<NewRecord<'_>> = records
                    .iter()
                    .zip(&keys)
                    .map(|((_, v), k)| NewRecord {
                        key: Some(k),
                        value: Some(v),
                        headers: &[],
                        timestamp: 1_000 + base,
                    })
                    .collect();
                let options = BatchOptions {
                    base_offset: base,
                    partition_leader_epoch: epoch,
                    is_control: true,
                    ..BatchOptions::default()
                };
                (
                    record_batch::encode_batch(&new, &options),
                    records.len() as i64,
                )
            });
        }

        /// Drops every batch below `offset` and starts the log there.
        fn truncate_before(&self, offset: i64) {
            let mut b = self.stored.lock().expect("lock");
            b.log_start = offset;
            b.batches.retain(|(base, _, _)| *base >= offset);
        }
    }

    impl CommittedLog for Arc<FakeLog> {
        fn high_watermark(&self) -> watch::Receiver<i64> {
            self.hw.subscribe()
        }

        fn read_committed(&self, offset: i64, max_bytes: usize) -> Result<ReadInfo, RaftError> {
            let end = self.end();
            let b = self.stored.lock().expect("lock");
            if offset < b.log_start || offset > end {
                return Err(RaftError::Log(LogError::OffsetOutOfRange {
                    offset,
                    log_start_offset: b.log_start,
                    log_end_offset: end,
                }));
            }
            let mut out = BytesMut::new();
            let mut next = offset;
            for (_, last, bytes) in b.batches.iter().filter(|(_, last, _)| *last >= offset) {
                if !out.is_empty() && out.len() + bytes.len() > max_bytes {
                    break;
                }
                out.extend_from_slice(bytes);
                next = last + 1;
            }
            Ok(ReadInfo {
                records: out.freeze(),
                next_fetch_offset: next,
                log_start_offset: b.log_start,
                log_end_offset: end,
            })
        }
    }

    /// Remembers the offset of every image it was shown.
    #[derive(Default)]
    struct Seen(Mutex<Vec<i64>>);

    impl MetadataPublisher for Seen {
        fn publish(&self, image: &Arc<MetadataImage>) {
            self.0.lock().expect("lock").push(image.offset);
        }
    }

    fn topic(i: u128, name: &str) -> Vec<MetadataRecord> {
        let id = Uuid::from_u128(i);
        vec![
            MetadataRecord::Topic(TopicRecord {
                name: name.into(),
                topic_id: id,
            }),
            MetadataRecord::Partition(PartitionRecord {
                partition_id: 0,
                topic_id: id,
                replicas: vec![1],
                isr: vec![1],
                leader: 1,
                leader_epoch: 0,
                partition_epoch: 0,
                ..PartitionRecord::default()
            }),
            MetadataRecord::Config(ConfigRecord {
                resource_type: crate::metadata::records::config_resource_type::TOPIC,
                resource_name: name.into(),
                name: "retention.ms".into(),
                value: Some(i.to_string()),
            }),
        ]
    }

    /// The image a loader that read the whole log from 0 would have.
    fn full_fold(batches: &[Vec<MetadataRecord>], offset: i64) -> MetadataImage {
        let mut image = MetadataImage::default();
        for r in batches.iter().flatten() {
            image.apply(r);
        }
        image.offset = offset;
        image
    }

    fn policy(max_bytes: u64) -> SnapshotPolicy {
        SnapshotPolicy {
            max_bytes_between_snapshots: max_bytes,
            max_interval: None,
        }
    }

    fn start(
        log: &Arc<FakeLog>,
        dir: &std::path::Path,
        policy: SnapshotPolicy,
        publisher: Arc<Seen>,
    ) -> (
        MetadataReader,
        watch::Receiver<Option<SnapshotId>>,
        watch::Sender<bool>,
        tokio::task::JoinHandle<()>,
    ) {
        let (written, written_rx) = watch::channel(None);
        let (loader, reader) = MetadataLoader::with_snapshots(
            log.clone(),
            vec![publisher],
            LoaderSnapshots {
                dir: dir.to_path_buf(),
                policy,
                written,
            },
        )
        .expect("loader");
        let (stop, stop_rx) = watch::channel(false);
        let task = tokio::spawn(loader.run(stop_rx));
        (reader, written_rx, stop, task)
    }

    async fn wait_image(reader: &MetadataReader, offset: i64) -> Arc<MetadataImage> {
        tokio::time::timeout(WAIT, reader.wait_for_offset(offset))
            .await
            .expect("image in time")
            .expect("loader alive")
    }

    async fn wait_snapshot(rx: &mut watch::Receiver<Option<SnapshotId>>, at: i64) -> SnapshotId {
        let id = tokio::time::timeout(
            WAIT,
            rx.wait_for(|id| id.is_some_and(|id| id.end_offset >= at)),
        )
        .await
        .expect("snapshot in time")
        .expect("loader alive");
        id.unwrap_or_else(|| unreachable!("waited for Some"))
    }

    #[test]
    fn trigger_fires_on_bytes_or_on_time_with_new_records() {
        let t0 = Instant::now();
        let mut t = SnapshotTrigger::new(policy(100), t0);
        assert_eq!(t.on_log_delta(60, t0), None);
        let why = t.on_log_delta(40, t0).expect("due by bytes");
        assert!(why.contains("100 record bytes"), "{why}");
        t.reset(t0);
        assert_eq!(t.on_log_delta(99, t0 + Duration::from_secs(86_400)), None);

        let mut t = SnapshotTrigger::new(
            SnapshotPolicy {
                max_bytes_between_snapshots: 1 << 30,
                max_interval: Some(Duration::from_millis(500)),
            },
            t0,
        );
        assert_eq!(t.on_log_delta(1, t0 + Duration::from_millis(499)), None);
        let why = t
            .on_log_delta(1, t0 + Duration::from_millis(500))
            .expect("due by time");
        assert!(
            why.contains("metadata.log.max.snapshot.interval.ms=500"),
            "{why}"
        );
    }

    #[test]
    fn policy_from_kafka_defaults() {
        assert_eq!(
            SnapshotPolicy::default(),
            SnapshotPolicy {
                max_bytes_between_snapshots: 20_971_520,
                max_interval: Some(Duration::from_millis(3_600_000)),
            }
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn writes_a_snapshot_of_the_image_and_restarts_from_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = FakeLog::new();
        let batches = vec![topic(1, "a"), topic(2, "b"), topic(3, "c")];
        log.append(4, &batches[0]);
        log.append(5, &batches[1]);
        let seen = Arc::new(Seen::default());
        let (reader, mut written, stop, task) = start(&log, dir.path(), policy(1), seen.clone());
        wait_image(&reader, 6).await;
        let id = wait_snapshot(&mut written, 6).await;
        // The snapshot holds every record below the image's offset, at the last batch's epoch.
        assert_eq!(
            id,
            SnapshotId {
                end_offset: 6,
                epoch: 5
            }
        );
        let snap = snapshot::read_snapshot(&id.path_in(dir.path())).expect("read");
        assert_eq!(snap.last_contained_log_timestamp, 1_003);
        let mut from_snapshot = MetadataImage::default();
        for v in &snap.records {
            from_snapshot.apply(&MetadataRecord::decode(v).expect("record"));
        }
        from_snapshot.offset = 6;
        assert_eq!(from_snapshot, full_fold(&batches[..2], 6));
        let _ = stop.send(true);
        task.await.expect("loader");

        // The log below the snapshot is gone, as after the driver trims it; the next start
        // loads the snapshot, publishes it first, and follows the log from there.
        log.truncate_before(6);
        log.append(5, &batches[2]);
        let seen = Arc::new(Seen::default());
        let (reader, _written, stop, task) =
            start(&log, dir.path(), policy(u64::MAX), seen.clone());
        let image = wait_image(&reader, 9).await;
        assert_eq!(*image, full_fold(&batches, 9));
        assert_eq!(seen.0.lock().expect("lock").first(), Some(&6));
        let _ = stop.send(true);
        task.await.expect("loader");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn snapshots_replace_older_ones_and_carry_the_voter_set() {
        let dir = tempfile::tempdir().expect("tempdir");
        // What `storage format --standalone` leaves: the bootstrap snapshot with the voters.
        let voters = voters_record(&[VoterSpec {
            id: 1,
            directory_id: Uuid::from_u128(77),
            endpoints: vec![("CONTROLLER".into(), "localhost".into(), 9093)],
        }]);
        snapshot::write_snapshot(
            dir.path(),
            snapshot::BOOTSTRAP_SNAPSHOT_ID,
            std::iter::empty::<Bytes>(),
            &SnapshotControl {
                last_contained_log_timestamp: 0,
                kraft_version: snapshot::KRAFT_VERSION_1,
                voters: Some(voters.clone()),
            },
        )
        .expect("bootstrap");
        let log = FakeLog::new();
        log.append(1, &topic(1, "a"));
        let seen = Arc::new(Seen::default());
        let (reader, mut written, stop, task) = start(&log, dir.path(), policy(1), seen);
        wait_image(&reader, 3).await;
        let first = wait_snapshot(&mut written, 3).await;
        let snap = snapshot::read_snapshot(&first.path_in(dir.path())).expect("read");
        assert_eq!(snap.kraft_version, 1);
        assert_eq!(snap.voters.as_ref(), Some(&voters));

        // A voter change in the log travels into the next snapshot.
        let mut changed = voters.clone();
        changed.voters[0].endpoints[0].port = 9094;
        let mut buf = BytesMut::new();
        changed.encode(&mut buf, 0).expect("encode");
        log.append_control(2, &[(control_type::KRAFT_VOTERS, buf.freeze())]);
        log.append(2, &topic(2, "b"));
        // However the two batches were grouped into reads, the newest image gets a snapshot.
        let second = wait_snapshot(&mut written, 7).await;
        assert_eq!(
            second,
            SnapshotId {
                end_offset: 7,
                epoch: 2
            }
        );
        let snap = snapshot::read_snapshot(&second.path_in(dir.path())).expect("read");
        assert_eq!(snap.voters.as_ref(), Some(&changed));
        // Older snapshots, the bootstrap one included, are gone: the newest holds it all.
        assert_eq!(
            snapshot::list_snapshots(dir.path()).expect("list"),
            vec![second]
        );
        let _ = stop.send(true);
        task.await.expect("loader");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_follower_whose_log_jumps_ahead_loads_the_new_snapshot() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = FakeLog::new();
        let batches = vec![topic(1, "a"), topic(2, "b"), topic(3, "c")];
        log.append(1, &batches[0]);
        let seen = Arc::new(Seen::default());
        let (reader, _written, stop, task) = start(&log, dir.path(), policy(u64::MAX), seen);
        wait_image(&reader, 3).await;

        // The leader's snapshot at 6 arrives and the log restarts there.
        let records: Vec<Vec<u8>> = full_fold(&batches[..2], 6)
            .to_records()
            .iter()
            .map(MetadataRecord::encode)
            .collect();
        snapshot::write_snapshot(
            dir.path(),
            SnapshotId {
                end_offset: 6,
                epoch: 2,
            },
            &records,
            &SnapshotControl::default(),
        )
        .expect("write");
        log.truncate_before(6);
        log.append(2, &batches[2]);
        let image = wait_image(&reader, 9).await;
        assert_eq!(*image, full_fold(&batches, 9));
        let _ = stop.send(true);
        task.await.expect("loader");
    }

    #[test]
    fn records_kraftd_does_not_know_are_skipped_in_a_snapshot() {
        let dir = tempfile::tempdir().expect("tempdir");
        // Frame version 1, a record type kraftd does not model (RegisterControllerRecord, 27),
        // version 0, empty body: what a Kafka-written snapshot may hold.
        let unknown = vec![1u8, 27, 0];
        assert!(matches!(
            MetadataRecord::decode(&unknown),
            Err(crate::metadata::records::MetadataRecordError::UnknownRecordType(27))
        ));
        let mut values = vec![unknown];
        values.extend(topic(1, "a").iter().map(MetadataRecord::encode));
        let id = SnapshotId {
            end_offset: 3,
            epoch: 1,
        };
        snapshot::write_snapshot(dir.path(), id, &values, &SnapshotControl::default())
            .expect("write");
        let (written, _) = watch::channel(None);
        let (loader, _reader) = MetadataLoader::with_snapshots(
            FakeLog::new(),
            vec![],
            LoaderSnapshots {
                dir: dir.path().to_path_buf(),
                policy: SnapshotPolicy::default(),
                written,
            },
        )
        .expect("loads");
        assert_eq!(loader.image, full_fold(&[topic(1, "a")], 3));
        assert_eq!(loader.position.last_epoch, 1);
    }

    #[test]
    fn a_corrupt_newest_snapshot_stops_the_start_and_names_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir
            .path()
            .join("00000000000000000005-0000000001.checkpoint");
        std::fs::write(&path, b"not a snapshot").expect("write");
        let (written, _) = watch::channel(None);
        let err = MetadataLoader::with_snapshots(
            FakeLog::new(),
            vec![],
            LoaderSnapshots {
                dir: dir.path().to_path_buf(),
                policy: SnapshotPolicy::default(),
                written,
            },
        )
        .err()
        .expect("refused")
        .to_string();
        assert!(err.contains(&path.display().to_string()), "{err}");
    }
}
