//! KIP-630 snapshots of the metadata log, in Kafka's file format, so a snapshot written by either
//! server reads in the other.
//!
//! A snapshot is `<20-digit end offset>-<10-digit epoch>.checkpoint` in the metadata partition dir
//! (`__cluster_metadata-0`): v2 record batches whose offsets count from 0 and whose partition
//! leader epoch is the snapshot's epoch (Kafka's `RecordsSnapshotWriter` on a `BatchAccumulator`
//! started at offset 0). The first batch is a control batch holding the SnapshotHeader (control
//! type 3) and, when the quorum is KIP-853 reconfigurable (kraft.version ≥ 1), the KRaftVersion
//! (type 5) and Voters (type 6) records; then data batches of metadata record values; the last
//! batch is a control batch with the SnapshotFooter (type 4). A file is written as
//! `<id>-<random>.checkpoint.part`, fsynced, made read-only and renamed into place, so a crash
//! never leaves half a `.checkpoint`. Deletes rename to `.checkpoint.deleted` first.
//!
//! This module owns the files only: it knows nothing of what the records mean (the metadata loader
//! decides what goes in) or of the log segments a snapshot replaces (the Raft driver trims those).

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::voters_record::{Endpoint, KRaftVersionFeature, Voter};
use kafka_protocol::messages::{
    KRaftVersionRecord, SnapshotFooterRecord, SnapshotHeaderRecord, VotersRecord,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use kafka_protocol::records::RecordBatchDecoder;
use uuid::Uuid;

use crate::protocol::record_batch::{self, BatchIter, BatchOptions, NewRecord};

pub const SUFFIX: &str = ".checkpoint";
pub const PARTIAL_SUFFIX: &str = ".checkpoint.part";
pub const DELETE_SUFFIX: &str = ".checkpoint.deleted";

/// The snapshot `storage format` writes for a KIP-853 quorum (Kafka's `BOOTSTRAP_SNAPSHOT_ID`).
pub const BOOTSTRAP_SNAPSHOT_ID: SnapshotId = SnapshotId {
    end_offset: 0,
    epoch: 0,
};

/// Kafka's `KafkaRaftClient.MAX_BATCH_SIZE_BYTES`: no snapshot batch grows past this.
pub const MAX_BATCH_SIZE_BYTES: usize = 8 * 1024 * 1024;

/// Kafka's `ControlRecordType` ids.
pub mod control_type {
    pub const LEADER_CHANGE: i16 = 2;
    pub const SNAPSHOT_HEADER: i16 = 3;
    pub const SNAPSHOT_FOOTER: i16 = 4;
    pub const KRAFT_VERSION: i16 = 5;
    pub const KRAFT_VOTERS: i16 = 6;
}

/// kraft.version 1: the voter set lives in the log (KIP-853). Below it, voters are static config.
pub const KRAFT_VERSION_1: i16 = 1;

const OFFSET_WIDTH: usize = 20;
const EPOCH_WIDTH: usize = 10;

/// A snapshot's identity: every record below `end_offset` is in it, and `epoch` is the leader
/// epoch of the last of them (Kafka's `OffsetAndEpoch`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SnapshotId {
    pub end_offset: i64,
    pub epoch: i32,
}

impl SnapshotId {
    /// `00000000000000000042-0000000003.checkpoint`.
    pub fn file_name(&self) -> String {
        format!("{self}{SUFFIX}")
    }

    pub fn path_in(&self, dir: &Path) -> PathBuf {
        dir.join(self.file_name())
    }

    /// The id of a complete snapshot file name; `None` for anything else (partial and deleted
    /// files included).
    pub fn from_file_name(name: &str) -> Option<SnapshotId> {
        let stem = name.strip_suffix(SUFFIX)?;
        let (offset, epoch) = stem.split_once('-')?;
        if offset.len() != OFFSET_WIDTH
            || epoch.len() != EPOCH_WIDTH
            || !offset
                .bytes()
                .chain(epoch.bytes())
                .all(|b| b.is_ascii_digit())
        {
            return None;
        }
        Some(SnapshotId {
            end_offset: offset.parse().ok()?,
            epoch: epoch.parse().ok()?,
        })
    }
}

impl fmt::Display for SnapshotId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:0ow$}-{:0ew$}",
            self.end_offset,
            self.epoch,
            ow = OFFSET_WIDTH,
            ew = EPOCH_WIDTH
        )
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {problem}")]
    Corrupt { path: PathBuf, problem: String },
    #[error("snapshot {id}: {problem}")]
    Invalid { id: SnapshotId, problem: String },
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> SnapshotError + '_ {
    move |source| SnapshotError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// One voter of a KIP-853 quorum as the VotersRecord holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VoterSpec {
    pub id: i32,
    pub directory_id: Uuid,
    /// (listener name, host, port), e.g. ("CONTROLLER", "localhost", 9093).
    pub endpoints: Vec<(String, String, u16)>,
}

impl VoterSpec {
    pub fn from_record(record: &VotersRecord) -> Vec<VoterSpec> {
        record
            .voters
            .iter()
            .map(|v| VoterSpec {
                id: v.voter_id.0,
                directory_id: v.voter_directory_id,
                endpoints: v
                    .endpoints
                    .iter()
                    .map(|e| (e.name.to_string(), e.host.to_string(), e.port))
                    .collect(),
            })
            .collect()
    }
}

impl fmt::Display for VoterSpec {
    /// Kafka's `--initial-controllers` form for the first endpoint: `id@host:port:directoryId`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let dir = crate::log::meta_properties::kafka_uuid_string(&self.directory_id);
        match self.endpoints.first() {
            Some((name, host, port)) if host.contains(':') => {
                write!(f, "{}@[{host}]:{port}:{dir} ({name})", self.id)
            }
            Some((name, host, port)) => write!(f, "{}@{host}:{port}:{dir} ({name})", self.id),
            None => write!(f, "{}@-:{dir}", self.id),
        }
    }
}

/// The VotersRecord (version 0) Kafka writes for these voters: sorted by id, each supporting
/// kraft.version 0..=1 as `DynamicVoter.toVoterNode` declares.
pub fn voters_record(voters: &[VoterSpec]) -> VotersRecord {
    let mut voters: Vec<&VoterSpec> = voters.iter().collect();
    voters.sort_by_key(|v| v.id);
    VotersRecord::default().with_version(0).with_voters(
        voters
            .into_iter()
            .map(|v| {
                Voter::default()
                    .with_voter_id(v.id.into())
                    .with_voter_directory_id(v.directory_id)
                    .with_endpoints(
                        v.endpoints
                            .iter()
                            .map(|(name, host, port)| {
                                Endpoint::default()
                                    .with_name(StrBytes::from_string(name.clone()))
                                    .with_host(StrBytes::from_string(host.clone()))
                                    .with_port(*port)
                            })
                            .collect(),
                    )
                    .with_k_raft_version_feature(
                        KRaftVersionFeature::default()
                            .with_min_supported_version(0)
                            .with_max_supported_version(KRAFT_VERSION_1),
                    )
            })
            .collect(),
    )
}

/// What goes into the header batch besides the data.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SnapshotControl {
    /// The append time of the last log batch the snapshot contains (SnapshotHeaderRecord).
    pub last_contained_log_timestamp: i64,
    /// 0 for a static quorum (nothing written); 1 writes KRaftVersionRecord and, if set, `voters`.
    pub kraft_version: i16,
    pub voters: Option<VotersRecord>,
}

/// A snapshot file read back and checked.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    pub id: SnapshotId,
    pub last_contained_log_timestamp: i64,
    /// 0 when the snapshot carries no KRaftVersionRecord.
    pub kraft_version: i16,
    pub voters: Option<VotersRecord>,
    /// The metadata record values, in order.
    pub records: Vec<Bytes>,
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn control_key(kind: i16) -> [u8; 4] {
    // ControlRecordType key: int16 version (0), int16 type.
    let k = kind.to_be_bytes();
    [0, 0, k[0], k[1]]
}

fn encode_message<M: Encodable>(m: &M, what: &str, id: SnapshotId) -> Result<Bytes, SnapshotError> {
    let mut buf = BytesMut::new();
    m.encode(&mut buf, 0).map_err(|e| SnapshotError::Invalid {
        id,
        problem: format!("cannot encode the {what}: {e}"),
    })?;
    Ok(buf.freeze())
}

/// One control batch at `base_offset`, as Kafka's MemoryRecordsBuilder lays it out.
fn control_batch(base_offset: i64, epoch: i32, records: &[(i16, Bytes)]) -> Vec<u8> {
    let now = now_ms();
    let keys: Vec<[u8; 4]> = records.iter().map(|(kind, _)| control_key(*kind)).collect();
    let new: Vec<NewRecord<'_>> = records
        .iter()
        .zip(&keys)
        .map(|((_, value), key)| NewRecord {
            key: Some(key),
            value: Some(value),
            headers: &[],
            timestamp: now,
        })
        .collect();
    record_batch::encode_batch(
        &new,
        &BatchOptions {
            base_offset,
            partition_leader_epoch: epoch,
            is_control: true,
            ..BatchOptions::default()
        },
    )
}

fn data_batch(base_offset: i64, epoch: i32, values: &[&[u8]]) -> Vec<u8> {
    // BatchBuilder stamps every record with the batch's append time.
    let now = now_ms();
    let new: Vec<NewRecord<'_>> = values
        .iter()
        .map(|v| NewRecord {
            key: None,
            value: Some(v),
            headers: &[],
            timestamp: now,
        })
        .collect();
    record_batch::encode_batch(
        &new,
        &BatchOptions {
            base_offset,
            partition_leader_epoch: epoch,
            ..BatchOptions::default()
        },
    )
}

/// An upper bound of one record's encoded size in a batch: the value, its length varint and the
/// fixed fields (attributes, deltas, null key, header count) with their own length varint.
fn record_size_bound(value_len: usize) -> usize {
    value_len + 24
}

/// Writes the snapshot `id` into `dir` (created if missing) and returns its path. An existing
/// snapshot with the same id is replaced. The file appears complete or not at all.
pub fn write_snapshot<I, B>(
    dir: &Path,
    id: SnapshotId,
    records: I,
    control: &SnapshotControl,
) -> Result<PathBuf, SnapshotError>
where
    I: IntoIterator<Item = B>,
    B: AsRef<[u8]>,
{
    if id.end_offset < 0 || id.epoch < 0 {
        return Err(SnapshotError::Invalid {
            id,
            problem: "end offset and epoch must not be negative".into(),
        });
    }
    if control.kraft_version < KRAFT_VERSION_1 && control.voters.is_some() {
        // As RecordsSnapshotWriter.Builder: a voter set only exists from kraft.version 1.
        return Err(SnapshotError::Invalid {
            id,
            problem: format!(
                "a voter set needs kraft.version 1, not {}",
                control.kraft_version
            ),
        });
    }
    std::fs::create_dir_all(dir).map_err(io_err(dir))?;
    let final_path = id.path_in(dir);
    let part = dir.join(format!("{id}-{}{PARTIAL_SUFFIX}", Uuid::new_v4().simple()));
    let result = write_part(&part, id, records, control).and_then(|()| {
        std::fs::rename(&part, &final_path).map_err(io_err(&final_path))?;
        sync_dir(dir)
    });
    if result.is_err() {
        // As FileRawSnapshotWriter.close: an unfinished snapshot leaves nothing behind.
        let _ = std::fs::remove_file(&part);
    }
    result.map(|()| final_path)
}

fn write_part<I, B>(
    part: &Path,
    id: SnapshotId,
    records: I,
    control: &SnapshotControl,
) -> Result<(), SnapshotError>
where
    I: IntoIterator<Item = B>,
    B: AsRef<[u8]>,
{
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(part)
        .map_err(io_err(part))?;
    let mut out = std::io::BufWriter::new(file);
    let mut next_offset = 0i64;

    let mut header = vec![(
        control_type::SNAPSHOT_HEADER,
        encode_message(
            &SnapshotHeaderRecord::default()
                .with_version(0)
                .with_last_contained_log_timestamp(control.last_contained_log_timestamp),
            "SnapshotHeaderRecord",
            id,
        )?,
    )];
    if control.kraft_version >= KRAFT_VERSION_1 {
        header.push((
            control_type::KRAFT_VERSION,
            encode_message(
                &KRaftVersionRecord::default()
                    .with_version(0)
                    .with_k_raft_version(control.kraft_version),
                "KRaftVersionRecord",
                id,
            )?,
        ));
        if let Some(voters) = &control.voters {
            header.push((
                control_type::KRAFT_VOTERS,
                encode_message(voters, "VotersRecord", id)?,
            ));
        }
    }
    out.write_all(&control_batch(next_offset, id.epoch, &header))
        .map_err(io_err(part))?;
    next_offset += header.len() as i64;

    // Data batches: as many records as fit in MAX_BATCH_SIZE_BYTES each.
    let mut pending: Vec<B> = Vec::new();
    let mut pending_bytes = record_batch::BATCH_HEADER_LEN;
    let mut flush = |pending: &mut Vec<B>,
                     pending_bytes: &mut usize,
                     next_offset: &mut i64|
     -> Result<(), SnapshotError> {
        if pending.is_empty() {
            return Ok(());
        }
        let values: Vec<&[u8]> = pending.iter().map(|b| b.as_ref()).collect();
        out.write_all(&data_batch(*next_offset, id.epoch, &values))
            .map_err(io_err(part))?;
        *next_offset += pending.len() as i64;
        pending.clear();
        *pending_bytes = record_batch::BATCH_HEADER_LEN;
        Ok(())
    };
    for record in records {
        let size = record_size_bound(record.as_ref().len());
        if pending_bytes + size > MAX_BATCH_SIZE_BYTES {
            flush(&mut pending, &mut pending_bytes, &mut next_offset)?;
        }
        pending_bytes += size;
        pending.push(record);
    }
    flush(&mut pending, &mut pending_bytes, &mut next_offset)?;

    let footer = encode_message(
        &SnapshotFooterRecord::default().with_version(0),
        "SnapshotFooterRecord",
        id,
    )?;
    out.write_all(&control_batch(
        next_offset,
        id.epoch,
        &[(control_type::SNAPSHOT_FOOTER, footer)],
    ))
    .map_err(io_err(part))?;

    let file = out.into_inner().map_err(|e| io_err(part)(e.into_error()))?;
    // Durable before the rename makes it visible, as FileRawSnapshotWriter.freeze.
    file.sync_all().map_err(io_err(part))?;
    let mut perms = file.metadata().map_err(io_err(part))?.permissions();
    perms.set_readonly(true);
    std::fs::set_permissions(part, perms).map_err(io_err(part))?;
    Ok(())
}

fn sync_dir(dir: &Path) -> Result<(), SnapshotError> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(dir))
}

/// Reads and checks a snapshot file: framing, CRC of every batch, a SnapshotHeader first and a
/// SnapshotFooter last. Errors name the file and what is wrong.
pub fn read_snapshot(path: &Path) -> Result<Snapshot, SnapshotError> {
    let corrupt = |problem: String| SnapshotError::Corrupt {
        path: path.to_path_buf(),
        problem,
    };
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    let id = SnapshotId::from_file_name(name).ok_or_else(|| {
        corrupt("not a snapshot file name (<20-digit offset>-<10-digit epoch>.checkpoint)".into())
    })?;
    let data = Bytes::from(std::fs::read(path).map_err(io_err(path))?);

    let mut snapshot = Snapshot {
        id,
        last_contained_log_timestamp: -1,
        kraft_version: 0,
        voters: None,
        records: Vec::new(),
    };
    let mut seen_header = false;
    let mut seen_footer = false;
    for batch in BatchIter::new(&data) {
        let batch = batch.map_err(|e| corrupt(e.to_string()))?;
        let position = batch.position;
        if seen_footer {
            return Err(corrupt(format!(
                "a batch at byte {position} follows the SnapshotFooter"
            )));
        }
        if !batch.is_crc_valid() {
            return Err(corrupt(format!(
                "the batch at byte {position} (offset {}) fails its CRC32C check",
                batch.header.base_offset()
            )));
        }
        let is_control = batch.header.is_control();
        let mut bytes = data.slice(position..position + batch.bytes.len());
        let set = RecordBatchDecoder::decode(&mut bytes)
            .map_err(|e| corrupt(format!("the batch at byte {position}: {e}")))?;
        for record in set.records {
            let offset = record.offset;
            if !seen_header {
                let kind = control_record_type(record.key.as_deref());
                if !is_control || kind != Some(control_type::SNAPSHOT_HEADER) {
                    return Err(corrupt(
                        "does not start with a SnapshotHeader control record".into(),
                    ));
                }
            }
            if seen_footer {
                return Err(corrupt(format!(
                    "record at offset {offset} follows the SnapshotFooter"
                )));
            }
            let value = record.value.ok_or_else(|| {
                corrupt(format!("the record at offset {offset} has a null value"))
            })?;
            if !is_control {
                snapshot.records.push(value);
                continue;
            }
            let bad = |what: &str, e: &dyn fmt::Display| {
                corrupt(format!("undecodable {what} at offset {offset}: {e}"))
            };
            match control_record_type(record.key.as_deref()) {
                Some(control_type::SNAPSHOT_HEADER) => {
                    if seen_header {
                        return Err(corrupt(format!(
                            "a second SnapshotHeader at offset {offset}"
                        )));
                    }
                    let h = SnapshotHeaderRecord::decode(&mut value.clone(), 0)
                        .map_err(|e| bad("SnapshotHeader", &e))?;
                    snapshot.last_contained_log_timestamp = h.last_contained_log_timestamp;
                    seen_header = true;
                }
                Some(control_type::SNAPSHOT_FOOTER) => {
                    SnapshotFooterRecord::decode(&mut value.clone(), 0)
                        .map_err(|e| bad("SnapshotFooter", &e))?;
                    seen_footer = true;
                }
                Some(control_type::KRAFT_VERSION) => {
                    let r = KRaftVersionRecord::decode(&mut value.clone(), 0)
                        .map_err(|e| bad("KRaftVersion", &e))?;
                    snapshot.kraft_version = r.k_raft_version;
                }
                Some(control_type::KRAFT_VOTERS) => {
                    let r = VotersRecord::decode(&mut value.clone(), 0)
                        .map_err(|e| bad("Voters", &e))?;
                    snapshot.voters = Some(r);
                }
                // Leader changes and unknown control types say nothing about the state.
                _ => {}
            }
        }
    }
    if !seen_header {
        return Err(corrupt(
            "is empty: no SnapshotHeader. Fix: delete the file; the node rebuilds from the log or the leader".into(),
        ));
    }
    if !seen_footer {
        return Err(corrupt(
            "has no SnapshotFooter: it was not completely written. Fix: delete the file; the node rebuilds from the log or the leader".into(),
        ));
    }
    Ok(snapshot)
}

/// The ControlRecordType of a control record key (int16 version, int16 type), if well formed.
pub fn control_record_type(key: Option<&[u8]>) -> Option<i16> {
    match key? {
        [0, 0, a, b, ..] => Some(i16::from_be_bytes([*a, *b])),
        _ => None,
    }
}

/// The voters a snapshot file declares (its VotersRecord), `None` when it has none (a static
/// quorum). For the Raft driver: the bootstrap snapshot `storage format` writes names the
/// initial voters.
pub fn read_voters_from_snapshot(path: &Path) -> Result<Option<Vec<VoterSpec>>, SnapshotError> {
    Ok(read_snapshot(path)?
        .voters
        .as_ref()
        .map(VoterSpec::from_record))
}

/// Complete snapshots in `dir`, oldest first. A missing dir has none.
pub fn list_snapshots(dir: &Path) -> Result<Vec<SnapshotId>, SnapshotError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_err(dir)(e)),
    };
    let mut ids = Vec::new();
    for entry in entries {
        let entry = entry.map_err(io_err(dir))?;
        if let Some(id) = entry
            .file_name()
            .to_str()
            .and_then(SnapshotId::from_file_name)
        {
            ids.push(id);
        }
    }
    ids.sort();
    Ok(ids)
}

pub fn latest_snapshot(dir: &Path) -> Result<Option<SnapshotId>, SnapshotError> {
    Ok(list_snapshots(dir)?.pop())
}

/// Removes one snapshot: renamed to `.checkpoint.deleted` first (Kafka's `markForDelete`), so a
/// crash in between leaves a file no reader takes for a snapshot, then deleted.
pub fn delete_snapshot(dir: &Path, id: SnapshotId) -> Result<(), SnapshotError> {
    let path = id.path_in(dir);
    let deleted = dir.join(format!("{id}{DELETE_SUFFIX}"));
    std::fs::rename(&path, &deleted).map_err(io_err(&path))?;
    std::fs::remove_file(&deleted).map_err(io_err(&deleted))
}

/// Deletes every snapshot older than `keep` (by end offset, then epoch); returns what it deleted.
pub fn delete_snapshots_before(
    dir: &Path,
    keep: SnapshotId,
) -> Result<Vec<SnapshotId>, SnapshotError> {
    let mut deleted = Vec::new();
    for id in list_snapshots(dir)?.into_iter().filter(|id| *id < keep) {
        delete_snapshot(dir, id)?;
        deleted.push(id);
    }
    Ok(deleted)
}

/// Removes what an interrupted write or delete left (`.checkpoint.part`, `.checkpoint.deleted`),
/// as Kafka's metadata log does when it opens. Returns the removed paths.
pub fn clean_snapshot_dir(dir: &Path) -> Result<Vec<PathBuf>, SnapshotError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_err(dir)(e)),
    };
    let mut removed = Vec::new();
    for entry in entries {
        let entry = entry.map_err(io_err(dir))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if name.ends_with(PARTIAL_SUFFIX) || name.ends_with(DELETE_SUFFIX) {
            let path = entry.path();
            std::fs::remove_file(&path).map_err(io_err(&path))?;
            removed.push(path);
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn dir() -> tempfile::TempDir {
        tempfile::tempdir().expect("tempdir")
    }

    fn id(end_offset: i64, epoch: i32) -> SnapshotId {
        SnapshotId { end_offset, epoch }
    }

    fn voter(id: i32, port: u16) -> VoterSpec {
        VoterSpec {
            id,
            directory_id: Uuid::from_u128(0x1234_5678_9abc_def0_0fed_cba9_8765_4321 + id as u128),
            endpoints: vec![("CONTROLLER".into(), "localhost".into(), port)],
        }
    }

    /// (base offset, last offset, epoch, is control, record count) of every batch in the file.
    fn layout(path: &Path) -> Vec<(i64, i64, i32, bool, i32)> {
        let data = std::fs::read(path).expect("read");
        BatchIter::new(&data)
            .map(|b| {
                let b = b.expect("batch");
                assert!(b.is_crc_valid());
                let h = b.header;
                (
                    h.base_offset(),
                    h.last_offset(),
                    h.partition_leader_epoch(),
                    h.is_control(),
                    h.records_count(),
                )
            })
            .collect()
    }

    /// A record's key and value.
    type KeyValue = (Option<Vec<u8>>, Option<Vec<u8>>);

    /// Each record's (key, value) of the batch at `index`.
    fn records_of(path: &Path, index: usize) -> Vec<KeyValue> {
        let data = std::fs::read(path).expect("read");
        let batch = BatchIter::new(&data)
            .nth(index)
            .expect("batch")
            .expect("ok");
        batch
            .records()
            .expect("uncompressed")
            .map(|r| {
                let r = r.expect("record");
                (r.key.map(<[u8]>::to_vec), r.value.map(<[u8]>::to_vec))
            })
            .collect()
    }

    #[test]
    fn file_names_are_kafkas() {
        let i = id(42, 3);
        assert_eq!(i.file_name(), "00000000000000000042-0000000003.checkpoint");
        assert_eq!(
            BOOTSTRAP_SNAPSHOT_ID.file_name(),
            "00000000000000000000-0000000000.checkpoint"
        );
        assert_eq!(SnapshotId::from_file_name(&i.file_name()), Some(i));
        for other in [
            "00000000000000000042-0000000003.checkpoint.part",
            "00000000000000000042-0000000003-abc.checkpoint.part",
            "00000000000000000042-0000000003.checkpoint.deleted",
            "00000000000000000042.log",
            "0000000000000000042-0000000003.checkpoint",
            "0000000000000000004x-0000000003.checkpoint",
            "00000000000000000042_0000000003.checkpoint",
        ] {
            assert_eq!(SnapshotId::from_file_name(other), None, "{other}");
        }
    }

    #[test]
    fn layout_matches_records_snapshot_writer() {
        let d = dir();
        let values: Vec<Bytes> = (0..5u8).map(|i| Bytes::from(vec![i; 10])).collect();
        let path = write_snapshot(
            d.path(),
            id(100, 7),
            &values,
            &SnapshotControl {
                last_contained_log_timestamp: 1_700_000_000_123,
                ..SnapshotControl::default()
            },
        )
        .expect("write");
        assert_eq!(
            path,
            d.path().join("00000000000000000100-0000000007.checkpoint")
        );
        // Offsets count from 0 inside the snapshot; every batch carries the snapshot's epoch.
        assert_eq!(
            layout(&path),
            vec![(0, 0, 7, true, 1), (1, 5, 7, false, 5), (6, 6, 7, true, 1)]
        );
        // SnapshotHeaderRecord v0: int16 version, int64 lastContainedLogTimestamp, no tags.
        let mut header = vec![0, 0];
        header.extend_from_slice(&1_700_000_000_123i64.to_be_bytes());
        header.push(0);
        assert_eq!(
            records_of(&path, 0),
            vec![(Some(vec![0, 0, 0, 3]), Some(header))]
        );
        // Data records are key-less.
        assert_eq!(records_of(&path, 1)[2], (None, Some(vec![2; 10])));
        // SnapshotFooterRecord v0: int16 version, no tags.
        assert_eq!(
            records_of(&path, 2),
            vec![(Some(vec![0, 0, 0, 4]), Some(vec![0, 0, 0]))]
        );
        // Complete files are read-only, as Kafka's.
        let perms = std::fs::metadata(&path).expect("meta").permissions();
        assert!(perms.readonly());
    }

    #[test]
    fn bootstrap_snapshot_carries_kraft_version_and_voters() {
        let d = dir();
        let v = voter(1, 9093);
        let path = write_snapshot(
            d.path(),
            BOOTSTRAP_SNAPSHOT_ID,
            std::iter::empty::<Bytes>(),
            &SnapshotControl {
                last_contained_log_timestamp: 5,
                kraft_version: KRAFT_VERSION_1,
                voters: Some(voters_record(std::slice::from_ref(&v))),
            },
        )
        .expect("write");
        // Header, KRaftVersion and Voters share the first control batch; the footer follows.
        assert_eq!(layout(&path), vec![(0, 2, 0, true, 3), (3, 3, 0, true, 1)]);
        let first = records_of(&path, 0);
        assert_eq!(
            first[1],
            (Some(vec![0, 0, 0, 5]), Some(vec![0, 0, 0, 1, 0]))
        );
        // VotersRecord v0 laid out by hand from VotersRecord.json (all flexible).
        let mut voters = vec![0, 0]; // Version
        voters.push(2); // compact array of 1 voter
        voters.extend_from_slice(&1i32.to_be_bytes()); // VoterId
        voters.extend_from_slice(v.directory_id.as_bytes()); // VoterDirectoryId
        voters.push(2); // compact array of 1 endpoint
        voters.push(11);
        voters.extend_from_slice(b"CONTROLLER");
        voters.push(10);
        voters.extend_from_slice(b"localhost");
        voters.extend_from_slice(&9093u16.to_be_bytes());
        voters.push(0); // endpoint tags
        voters.extend_from_slice(&[0, 0, 0, 1, 0]); // KRaftVersionFeature 0..1, tags
        voters.push(0); // voter tags
        voters.push(0); // record tags
        assert_eq!(first[2], (Some(vec![0, 0, 0, 6]), Some(voters)));

        let read = read_snapshot(&path).expect("read");
        assert_eq!(read.kraft_version, 1);
        assert_eq!(read.last_contained_log_timestamp, 5);
        assert!(read.records.is_empty());
        assert_eq!(
            read_voters_from_snapshot(&path).expect("voters"),
            Some(vec![v])
        );
    }

    #[test]
    fn a_voter_set_needs_kraft_version_1() {
        let d = dir();
        let err = write_snapshot(
            d.path(),
            id(1, 1),
            std::iter::empty::<Bytes>(),
            &SnapshotControl {
                voters: Some(voters_record(&[voter(1, 1)])),
                ..SnapshotControl::default()
            },
        )
        .expect_err("refused");
        assert!(err.to_string().contains("kraft.version 1"), "{err}");
        assert!(list_snapshots(d.path()).expect("list").is_empty());
        assert_eq!(std::fs::read_dir(d.path()).expect("dir").count(), 0);
    }

    #[test]
    fn batches_stay_under_the_max_batch_size() {
        let d = dir();
        let big = Bytes::from(vec![7u8; 3 * 1024 * 1024]);
        let values = vec![
            big.clone(),
            big.clone(),
            big.clone(),
            Bytes::from_static(b"x"),
        ];
        let path = write_snapshot(d.path(), id(9, 1), &values, &SnapshotControl::default())
            .expect("write");
        let batches = layout(&path);
        assert_eq!(
            batches,
            vec![
                (0, 0, 1, true, 1),
                (1, 2, 1, false, 2),
                (3, 4, 1, false, 2),
                (5, 5, 1, true, 1)
            ]
        );
        let data = std::fs::read(&path).expect("read");
        assert!(
            BatchIter::new(&data).all(|b| b.expect("batch").bytes.len() <= MAX_BATCH_SIZE_BYTES)
        );
        assert_eq!(read_snapshot(&path).expect("read").records, values);
    }

    #[test]
    fn corrupt_files_are_refused_with_the_file_named() {
        let d = dir();
        let path = write_snapshot(
            d.path(),
            id(3, 1),
            [b"abc".as_slice(), b"def".as_slice()],
            &SnapshotControl::default(),
        )
        .expect("write");
        let good = std::fs::read(&path).expect("read");
        let name = path.display().to_string();
        let check = |bytes: &[u8], expect: &str| {
            let p = d.path().join("00000000000000000003-0000000002.checkpoint");
            let _ = std::fs::remove_file(&p);
            std::fs::write(&p, bytes).expect("write");
            let err = read_snapshot(&p).expect_err("corrupt").to_string();
            assert!(err.contains(expect), "{err}");
            assert!(err.contains(&p.display().to_string()), "{err}");
        };
        // A flipped byte in a record value.
        let mut flipped = good.clone();
        let at = flipped.len() - 80;
        flipped[at] ^= 0xff;
        check(&flipped, "CRC32C");
        // Torn: the footer batch missing.
        let footer_at = layout(&path).len() - 1;
        let cut = BatchIter::new(&good)
            .nth(footer_at)
            .expect("b")
            .expect("ok")
            .position;
        check(&good[..cut], "no SnapshotFooter");
        // Half a batch at the end.
        check(&good[..good.len() - 3], "remain");
        // No header: the data batch first.
        let data_batch = BatchIter::new(&good).nth(1).expect("b").expect("ok");
        check(data_batch.bytes, "SnapshotHeader");
        check(&[], "no SnapshotHeader");
        assert!(read_snapshot(&path).is_ok(), "{name} untouched");
    }

    #[test]
    fn list_latest_delete_and_clean() {
        let d = dir();
        let none: &[Bytes] = &[];
        for i in [id(10, 1), id(5, 1), id(20, 2)] {
            write_snapshot(d.path(), i, none, &SnapshotControl::default()).expect("write");
        }
        std::fs::write(
            d.path()
                .join("00000000000000000030-0000000002-x.checkpoint.part"),
            b"",
        )
        .expect("part");
        std::fs::write(
            d.path()
                .join("00000000000000000001-0000000001.checkpoint.deleted"),
            b"",
        )
        .expect("deleted");
        std::fs::write(d.path().join("00000000000000000000.log"), b"").expect("log");
        assert_eq!(
            list_snapshots(d.path()).expect("list"),
            vec![id(5, 1), id(10, 1), id(20, 2)]
        );
        assert_eq!(latest_snapshot(d.path()).expect("latest"), Some(id(20, 2)));
        assert_eq!(
            delete_snapshots_before(d.path(), id(20, 2)).expect("delete"),
            vec![id(5, 1), id(10, 1)]
        );
        assert_eq!(list_snapshots(d.path()).expect("list"), vec![id(20, 2)]);
        assert_eq!(clean_snapshot_dir(d.path()).expect("clean").len(), 2);
        let mut left: Vec<String> = std::fs::read_dir(d.path())
            .expect("dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(
            left,
            vec![
                "00000000000000000000.log",
                "00000000000000000020-0000000002.checkpoint"
            ]
        );
        assert!(
            list_snapshots(&d.path().join("missing"))
                .expect("list")
                .is_empty()
        );
    }

    fn arb_voter() -> impl Strategy<Value = VoterSpec> {
        (
            0i32..1000,
            any::<u128>(),
            prop::collection::vec(("[A-Z]{1,12}", "[a-z0-9.-]{1,20}", any::<u16>()), 0..3),
        )
            .prop_map(|(id, dir, endpoints)| VoterSpec {
                id,
                directory_id: Uuid::from_u128(dir),
                endpoints,
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

        #[test]
        fn write_then_read_gives_back_what_was_written(
            end_offset in 0i64..i64::MAX,
            epoch in 0i32..i32::MAX,
            values in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..300), 0..60),
            ts in any::<i64>(),
            voters in prop::option::of(prop::collection::btree_map(0i32..1000, arb_voter(), 1..4)),
        ) {
            let d = dir();
            let voters: Option<Vec<VoterSpec>> = voters.map(|m| {
                m.into_iter().map(|(id, v)| VoterSpec { id, ..v }).collect()
            });
            let control = SnapshotControl {
                last_contained_log_timestamp: ts,
                kraft_version: if voters.is_some() { KRAFT_VERSION_1 } else { 0 },
                voters: voters.as_deref().map(voters_record),
            };
            let i = id(end_offset, epoch);
            let path = write_snapshot(d.path(), i, &values, &control).expect("write");
            let read = read_snapshot(&path).expect("read");
            prop_assert_eq!(read.id, i);
            prop_assert_eq!(read.last_contained_log_timestamp, ts);
            prop_assert_eq!(read.kraft_version, control.kraft_version);
            let got: Vec<Vec<u8>> = read.records.iter().map(|b| b.to_vec()).collect();
            prop_assert_eq!(got, values);
            prop_assert_eq!(read.voters.as_ref().map(VoterSpec::from_record), voters);
            // Offsets are contiguous from 0 over all batches.
            let mut next = 0;
            for (base, last, e, _, count) in layout(&path) {
                prop_assert_eq!(base, next);
                prop_assert_eq!(last - base + 1, i64::from(count));
                prop_assert_eq!(e, epoch);
                next = last + 1;
            }
            prop_assert_eq!(list_snapshots(d.path()).expect("list"), vec![i]);
        }
    }
}
