//! FetchSnapshot (KIP-630): a follower whose fetch offset is below the leader's log start
//! downloads the leader's snapshot in chunks. Served on the CONTROLLER listener by the leader.

use kafka_protocol::messages::fetch_snapshot_response::{
    LeaderIdAndEpoch, PartitionSnapshot, SnapshotId as RespSnapshotId, TopicSnapshot,
};
use kafka_protocol::messages::{FetchSnapshotRequest, FetchSnapshotResponse};

use super::vote::{INVALID_REQUEST, same_cluster};
use super::{Dispatcher, RequestContext};
use crate::raft::rpc;
use crate::raft::snapshot::SnapshotId;

const NOT_LEADER_OR_FOLLOWER: i16 = 6;
const FENCED_LEADER_EPOCH: i16 = 74;
const UNKNOWN_LEADER_EPOCH: i16 = 75;
const SNAPSHOT_NOT_FOUND: i16 = 98;
const POSITION_OUT_OF_RANGE: i16 = 99;
/// The most bytes sent per answer, whatever the request asks.
const MAX_CHUNK_BYTES: i64 = 4 << 20;

pub async fn handle(
    d: &Dispatcher,
    _ctx: &RequestContext<'_>,
    _version: i16,
    req: FetchSnapshotRequest,
) -> FetchSnapshotResponse {
    if !same_cluster(d, req.cluster_id.as_deref()) {
        return FetchSnapshotResponse::default().with_error_code(rpc::INCONSISTENT_CLUSTER_ID);
    }
    let Some(p) = req.topics.first().and_then(|t| t.partitions.first()) else {
        return FetchSnapshotResponse::default().with_error_code(INVALID_REQUEST);
    };
    let leader = *d.raft.leader().borrow();
    let out = PartitionSnapshot::default()
        .with_index(0)
        .with_snapshot_id(
            RespSnapshotId::default()
                .with_end_offset(p.snapshot_id.end_offset)
                .with_epoch(p.snapshot_id.epoch),
        )
        .with_current_leader(
            LeaderIdAndEpoch::default()
                .with_leader_id(leader.leader_id.unwrap_or(-1).into())
                .with_leader_epoch(leader.epoch),
        )
        .with_position(p.position);
    let error = if leader.leader_id != Some(d.node_id) {
        Some(NOT_LEADER_OR_FOLLOWER)
    } else if p.current_leader_epoch < leader.epoch {
        Some(FENCED_LEADER_EPOCH)
    } else if p.current_leader_epoch > leader.epoch {
        Some(UNKNOWN_LEADER_EPOCH)
    } else {
        None
    };
    if let Some(code) = error {
        return respond(out.with_error_code(code));
    }
    let id = SnapshotId {
        end_offset: p.snapshot_id.end_offset,
        epoch: p.snapshot_id.epoch,
    };
    let path = id.path_in(d.raft.partition_dir());
    let max = i64::from(req.max_bytes.max(1)).min(MAX_CHUNK_BYTES);
    let position = p.position;
    let read = tokio::task::spawn_blocking(move || read_chunk(&path, position, max)).await;
    match read {
        Ok(Ok(Some((size, bytes)))) => respond(
            out.with_size(size)
                .with_unaligned_records(bytes::Bytes::from(bytes)),
        ),
        Ok(Ok(None)) => respond(out.with_error_code(POSITION_OUT_OF_RANGE)),
        _ => respond(out.with_error_code(SNAPSHOT_NOT_FOUND)),
    }
}

/// (file size, bytes at `position`), or None when `position` lies outside the file.
fn read_chunk(
    path: &std::path::Path,
    position: i64,
    max: i64,
) -> std::io::Result<Option<(i64, Vec<u8>)>> {
    use std::io::{Read, Seek, SeekFrom};
    let mut file = std::fs::File::open(path)?;
    let size = file.metadata()?.len() as i64;
    if position < 0 || position > size {
        return Ok(None);
    }
    file.seek(SeekFrom::Start(position as u64))?;
    let mut buf = vec![0u8; (size - position).min(max) as usize];
    file.read_exact(&mut buf)?;
    Ok(Some((size, buf)))
}

fn respond(partition: PartitionSnapshot) -> FetchSnapshotResponse {
    FetchSnapshotResponse::default().with_topics(vec![
        TopicSnapshot::default()
            .with_name(kafka_protocol::messages::TopicName(
                kafka_protocol::protocol::StrBytes::from_static_str(rpc::METADATA_TOPIC),
            ))
            .with_partitions(vec![partition]),
    ])
}
