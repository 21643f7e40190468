//! Kafka's Raft RPCs (Vote, BeginQuorumEpoch, EndQuorumEpoch, Fetch on the CONTROLLER listener)
//! to and from the core's message types. The same conversions serve the sending driver and the
//! answering API handlers, so both sides speak exactly Kafka's schemas.

use bytes::Bytes;
use kafka_protocol::messages::{
    BeginQuorumEpochRequest as KBeginReq, BeginQuorumEpochResponse as KBeginResp, BrokerId,
    EndQuorumEpochRequest as KEndReq, EndQuorumEpochResponse as KEndResp,
    FetchRequest as KFetchReq, FetchResponse as KFetchResp, TopicName, VoteRequest as KVoteReq,
    VoteResponse as KVoteResp, begin_quorum_epoch_request, begin_quorum_epoch_response,
    end_quorum_epoch_request, end_quorum_epoch_response, fetch_request, fetch_response,
    vote_request, vote_response,
};
use kafka_protocol::protocol::StrBytes;
use uuid::Uuid;

use super::core::{
    BatchMeta, BeginEpochRequest, EndEpochRequest, EpochResponse, FetchRequest, FetchResponse,
    RaftErrorCode, SnapshotId, VoteRequest, VoteResponse,
};
use super::voter_set::{VoterControl, scan_control_records};
use crate::protocol::record_batch::BatchIter;

/// The metadata log's topic, as Kafka names it in Raft requests.
pub const METADATA_TOPIC: &str = "__cluster_metadata";
/// Kafka's `Uuid.METADATA_TOPIC_ID` (AAAAAAAAAAAAAAAAAAAAAQ).
pub const METADATA_TOPIC_ID: Uuid = Uuid::from_u128(1);

/// Versions this node sends.
pub const VOTE_VERSION: i16 = 2;
pub const BEGIN_EPOCH_VERSION: i16 = 1;
pub const END_EPOCH_VERSION: i16 = 1;
pub const FETCH_VERSION: i16 = 17;

/// How long a leader holds a Fetch that has nothing new (Kafka's raft fetch max wait).
pub const FETCH_MAX_WAIT_MS: i32 = 500;
/// Bytes of records in one Fetch answer.
pub const FETCH_MAX_BYTES: i32 = 8 << 20;

pub const INCONSISTENT_CLUSTER_ID: i16 = 104;

/// A Raft request that did not fit the schema (wrong topic, no partition).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct RpcError(pub String);

fn topic_name() -> TopicName {
    TopicName(StrBytes::from_static_str(METADATA_TOPIC))
}

fn error_code(e: Option<RaftErrorCode>) -> i16 {
    e.map(|e| e.code()).unwrap_or(0)
}

fn leader_id_field(leader: Option<i32>) -> BrokerId {
    BrokerId(leader.unwrap_or(-1))
}

fn leader_from(id: BrokerId) -> Option<i32> {
    (id.0 >= 0).then_some(id.0)
}

fn cluster(cluster_id: &str) -> Option<StrBytes> {
    Some(StrBytes::from_string(cluster_id.to_string()))
}

// ---- Vote ----

pub fn vote_request(cluster_id: &str, to: i32, r: &VoteRequest) -> KVoteReq {
    let partition = vote_request::PartitionData::default()
        .with_partition_index(0)
        .with_replica_epoch(r.epoch)
        .with_replica_id(BrokerId(r.candidate_id))
        .with_last_offset_epoch(r.last_epoch)
        .with_last_offset(r.end_offset)
        .with_pre_vote(r.pre_vote);
    KVoteReq::default()
        .with_cluster_id(cluster(cluster_id))
        .with_voter_id(BrokerId(to))
        .with_topics(vec![
            vote_request::TopicData::default()
                .with_topic_name(topic_name())
                .with_partitions(vec![partition]),
        ])
}

pub fn vote_request_from(req: &KVoteReq) -> Result<VoteRequest, RpcError> {
    let p = req
        .topics
        .first()
        .and_then(|t| t.partitions.first())
        .ok_or_else(|| RpcError("Vote request names no partition".into()))?;
    Ok(VoteRequest {
        epoch: p.replica_epoch,
        candidate_id: p.replica_id.0,
        last_epoch: p.last_offset_epoch,
        end_offset: p.last_offset,
        pre_vote: p.pre_vote,
    })
}

pub fn vote_response(r: &VoteResponse) -> KVoteResp {
    let partition = vote_response::PartitionData::default()
        .with_partition_index(0)
        .with_error_code(error_code(r.error))
        .with_leader_id(leader_id_field(r.leader_id))
        .with_leader_epoch(r.epoch)
        .with_vote_granted(r.granted);
    KVoteResp::default().with_topics(vec![
        vote_response::TopicData::default()
            .with_topic_name(topic_name())
            .with_partitions(vec![partition]),
    ])
}

pub fn vote_response_from(resp: &KVoteResp, pre_vote: bool) -> Result<VoteResponse, RpcError> {
    if resp.error_code != 0 {
        return Err(RpcError(format!(
            "Vote failed with error {}",
            resp.error_code
        )));
    }
    let p = resp
        .topics
        .first()
        .and_then(|t| t.partitions.first())
        .ok_or_else(|| RpcError("Vote response names no partition".into()))?;
    Ok(VoteResponse {
        error: RaftErrorCode::from_code(p.error_code),
        epoch: p.leader_epoch,
        leader_id: leader_from(p.leader_id),
        granted: p.vote_granted && p.error_code == 0,
        pre_vote,
    })
}

// ---- BeginQuorumEpoch / EndQuorumEpoch ----

/// `leader_endpoints`: the new leader's controller endpoints (name, host, port), so a voter
/// that only knows an old address of it can fetch from it (KIP-853's LeaderEndpoints).
pub fn begin_epoch_request(
    cluster_id: &str,
    to: i32,
    r: &BeginEpochRequest,
    leader_endpoints: &[(String, String, u16)],
) -> KBeginReq {
    KBeginReq::default()
        .with_cluster_id(cluster(cluster_id))
        .with_leader_endpoints(
            leader_endpoints
                .iter()
                .map(|(name, host, port)| {
                    begin_quorum_epoch_request::LeaderEndpoint::default()
                        .with_name(StrBytes::from_string(name.clone()))
                        .with_host(StrBytes::from_string(host.clone()))
                        .with_port(*port)
                })
                .collect(),
        )
        .with_voter_id(BrokerId(to))
        .with_topics(vec![
            begin_quorum_epoch_request::TopicData::default()
                .with_topic_name(topic_name())
                .with_partitions(vec![
                    begin_quorum_epoch_request::PartitionData::default()
                        .with_partition_index(0)
                        .with_leader_id(BrokerId(r.leader_id))
                        .with_leader_epoch(r.epoch),
                ]),
        ])
}

/// The leader endpoints a BeginQuorumEpoch names, as (name, host, port).
pub fn begin_epoch_leader_endpoints(req: &KBeginReq) -> Vec<(String, String, u16)> {
    req.leader_endpoints
        .iter()
        .filter(|e| !e.host.is_empty() && e.port > 0)
        .map(|e| (e.name.to_string(), e.host.to_string(), e.port))
        .collect()
}

pub fn begin_epoch_request_from(req: &KBeginReq) -> Result<BeginEpochRequest, RpcError> {
    let p = req
        .topics
        .first()
        .and_then(|t| t.partitions.first())
        .ok_or_else(|| RpcError("BeginQuorumEpoch names no partition".into()))?;
    Ok(BeginEpochRequest {
        epoch: p.leader_epoch,
        leader_id: p.leader_id.0,
    })
}

pub fn begin_epoch_response(r: &EpochResponse) -> KBeginResp {
    KBeginResp::default().with_topics(vec![
        begin_quorum_epoch_response::TopicData::default()
            .with_topic_name(topic_name())
            .with_partitions(vec![
                begin_quorum_epoch_response::PartitionData::default()
                    .with_partition_index(0)
                    .with_error_code(error_code(r.error))
                    .with_leader_id(leader_id_field(r.leader_id))
                    .with_leader_epoch(r.epoch),
            ]),
    ])
}

pub fn begin_epoch_response_from(resp: &KBeginResp) -> Result<EpochResponse, RpcError> {
    if resp.error_code != 0 {
        return Err(RpcError(format!(
            "BeginQuorumEpoch failed with error {}",
            resp.error_code
        )));
    }
    let p = resp
        .topics
        .first()
        .and_then(|t| t.partitions.first())
        .ok_or_else(|| RpcError("BeginQuorumEpoch response names no partition".into()))?;
    Ok(EpochResponse {
        error: RaftErrorCode::from_code(p.error_code),
        epoch: p.leader_epoch,
        leader_id: leader_from(p.leader_id),
    })
}

pub fn end_epoch_request(cluster_id: &str, r: &EndEpochRequest) -> KEndReq {
    KEndReq::default()
        .with_cluster_id(cluster(cluster_id))
        .with_topics(vec![
            end_quorum_epoch_request::TopicData::default()
                .with_topic_name(topic_name())
                .with_partitions(vec![
                    end_quorum_epoch_request::PartitionData::default()
                        .with_partition_index(0)
                        .with_leader_id(BrokerId(r.leader_id))
                        .with_leader_epoch(r.epoch)
                        .with_preferred_successors(r.preferred_successors.clone()),
                ]),
        ])
}

pub fn end_epoch_request_from(req: &KEndReq) -> Result<EndEpochRequest, RpcError> {
    let p = req
        .topics
        .first()
        .and_then(|t| t.partitions.first())
        .ok_or_else(|| RpcError("EndQuorumEpoch names no partition".into()))?;
    let mut preferred = p.preferred_successors.clone();
    preferred.extend(p.preferred_candidates.iter().map(|c| c.candidate_id.0));
    Ok(EndEpochRequest {
        epoch: p.leader_epoch,
        leader_id: p.leader_id.0,
        preferred_successors: preferred,
    })
}

pub fn end_epoch_response(r: &EpochResponse) -> KEndResp {
    KEndResp::default().with_topics(vec![
        end_quorum_epoch_response::TopicData::default()
            .with_topic_name(topic_name())
            .with_partitions(vec![
                end_quorum_epoch_response::PartitionData::default()
                    .with_partition_index(0)
                    .with_error_code(error_code(r.error))
                    .with_leader_id(leader_id_field(r.leader_id))
                    .with_leader_epoch(r.epoch),
            ]),
    ])
}

pub fn end_epoch_response_from(resp: &KEndResp) -> Result<EpochResponse, RpcError> {
    if resp.error_code != 0 {
        return Err(RpcError(format!(
            "EndQuorumEpoch failed with error {}",
            resp.error_code
        )));
    }
    let p = resp
        .topics
        .first()
        .and_then(|t| t.partitions.first())
        .ok_or_else(|| RpcError("EndQuorumEpoch response names no partition".into()))?;
    Ok(EpochResponse {
        error: RaftErrorCode::from_code(p.error_code),
        epoch: p.leader_epoch,
        leader_id: leader_from(p.leader_id),
    })
}

// ---- Fetch ----

pub fn fetch_request(cluster_id: &str, r: &FetchRequest) -> KFetchReq {
    let partition = fetch_request::FetchPartition::default()
        .with_partition(0)
        .with_current_leader_epoch(r.epoch)
        .with_fetch_offset(r.fetch_offset)
        .with_last_fetched_epoch(r.last_fetched_epoch)
        .with_partition_max_bytes(FETCH_MAX_BYTES);
    KFetchReq::default()
        .with_cluster_id(cluster(cluster_id))
        .with_replica_state(
            fetch_request::ReplicaState::default().with_replica_id(BrokerId(r.replica_id)),
        )
        .with_max_wait_ms(FETCH_MAX_WAIT_MS)
        .with_min_bytes(0)
        .with_max_bytes(FETCH_MAX_BYTES)
        .with_topics(vec![
            fetch_request::FetchTopic::default()
                .with_topic(topic_name())
                .with_topic_id(METADATA_TOPIC_ID)
                .with_partitions(vec![partition]),
        ])
}

/// The core's view of a Raft Fetch, and how long the sender is willing to wait.
pub fn fetch_request_from(req: &KFetchReq, version: i16) -> Result<(FetchRequest, i32), RpcError> {
    let topic = req
        .topics
        .first()
        .ok_or_else(|| RpcError("Fetch names no topic".into()))?;
    let is_metadata =
        topic.topic_id == METADATA_TOPIC_ID || topic.topic.0.as_str() == METADATA_TOPIC;
    if !is_metadata {
        return Err(RpcError(format!(
            "the controller listener serves only {METADATA_TOPIC}, not {}",
            topic.topic.0.as_str()
        )));
    }
    let p = topic
        .partitions
        .first()
        .ok_or_else(|| RpcError("Fetch names no partition".into()))?;
    let replica_id = if version >= 15 {
        req.replica_state.replica_id.0
    } else {
        req.replica_id.0
    };
    Ok((
        FetchRequest {
            epoch: p.current_leader_epoch,
            replica_id,
            fetch_offset: p.fetch_offset,
            last_fetched_epoch: p.last_fetched_epoch,
        },
        req.max_wait_ms,
    ))
}

pub fn fetch_response(r: &FetchResponse, records: Option<Bytes>) -> KFetchResp {
    let mut partition = fetch_response::PartitionData::default()
        .with_partition_index(0)
        .with_error_code(error_code(r.error))
        .with_high_watermark(r.high_watermark)
        .with_log_start_offset(r.log_start_offset)
        .with_current_leader(
            fetch_response::LeaderIdAndEpoch::default()
                .with_leader_id(leader_id_field(r.leader_id))
                .with_leader_epoch(r.epoch),
        )
        .with_records(records);
    if let Some((epoch, end_offset)) = r.diverging {
        partition = partition.with_diverging_epoch(
            fetch_response::EpochEndOffset::default()
                .with_epoch(epoch)
                .with_end_offset(end_offset),
        );
    }
    if let Some(s) = r.snapshot {
        partition = partition.with_snapshot_id(
            fetch_response::SnapshotId::default()
                .with_end_offset(s.end_offset)
                .with_epoch(s.epoch),
        );
    }
    KFetchResp::default().with_responses(vec![
        fetch_response::FetchableTopicResponse::default()
            .with_topic(topic_name())
            .with_topic_id(METADATA_TOPIC_ID)
            .with_partitions(vec![partition]),
    ])
}

/// Names the leader's CONTROLLER endpoint in a Fetch answer (KIP-853's NodeEndpoints), so an
/// observer that asked a bootstrap server learns where the leader listens.
pub fn with_leader_endpoint(resp: KFetchResp, id: i32, host: &str, port: u16) -> KFetchResp {
    resp.with_node_endpoints(vec![
        fetch_response::NodeEndpoint::default()
            .with_node_id(BrokerId(id))
            .with_host(StrBytes::from_string(host.to_string()))
            .with_port(i32::from(port)),
    ])
}

/// The (id, host, port) endpoints a Fetch answer names.
pub fn node_endpoints(resp: &KFetchResp) -> Vec<(i32, String, u16)> {
    resp.node_endpoints
        .iter()
        .filter_map(|e| {
            let port = u16::try_from(e.port).ok()?;
            (e.node_id.0 >= 0 && port > 0).then(|| (e.node_id.0, e.host.to_string(), port))
        })
        .collect()
}

/// The core's view of a Fetch answer, plus the records to append if the core says so.
pub fn fetch_response_from(resp: &KFetchResp) -> Result<(FetchResponse, Bytes), RpcError> {
    if resp.error_code != 0 {
        return Err(RpcError(format!(
            "Fetch failed with error {}",
            resp.error_code
        )));
    }
    let p = resp
        .responses
        .first()
        .and_then(|t| t.partitions.first())
        .ok_or_else(|| RpcError("Fetch response names no partition".into()))?;
    let records = p.records.clone().unwrap_or_default();
    let mut batches = Vec::new();
    let mut whole = 0usize;
    for batch in BatchIter::new(&records) {
        let Ok(batch) = batch else { break };
        let h = batch.header;
        // A Voters control record changes the voter set as soon as it is appended (KIP-853).
        let voters = if h.is_control() {
            scan_control_records(batch.bytes)
                .into_iter()
                .rev()
                .find_map(|(_, c)| match c {
                    VoterControl::Voters(v) => Some(v.iter().map(|s| s.id).collect()),
                    VoterControl::KRaftVersion(_) => None,
                })
        } else {
            None
        };
        batches.push(BatchMeta {
            base_offset: h.base_offset(),
            last_offset: h.last_offset(),
            epoch: h.partition_leader_epoch(),
            voters,
        });
        whole = batch.position + batch.bytes.len();
    }
    let diverging = (p.diverging_epoch.epoch >= 0 && p.diverging_epoch.end_offset >= 0)
        .then_some((p.diverging_epoch.epoch, p.diverging_epoch.end_offset));
    let snapshot =
        (p.snapshot_id.epoch >= 0 && p.snapshot_id.end_offset >= 0).then_some(SnapshotId {
            end_offset: p.snapshot_id.end_offset,
            epoch: p.snapshot_id.epoch,
        });
    Ok((
        FetchResponse {
            error: if p.error_code == 0 {
                None
            } else {
                Some(
                    RaftErrorCode::from_code(p.error_code)
                        .unwrap_or(RaftErrorCode::NotLeaderOrFollower),
                )
            },
            epoch: p.current_leader.leader_epoch,
            leader_id: leader_from(p.current_leader.leader_id),
            high_watermark: p.high_watermark,
            log_start_offset: p.log_start_offset,
            diverging,
            snapshot,
            read_from: None,
            high_watermark_news: false,
            batches,
        },
        // A partial batch at the end (max bytes) is dropped; the next fetch gets it whole.
        records.slice(..whole),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::protocol::{Decodable, Encodable};

    fn round_trip<T: Encodable + Decodable>(msg: &T, version: i16) -> T {
        let mut buf = bytes::BytesMut::new();
        msg.encode(&mut buf, version).expect("encode");
        T::decode(&mut buf.freeze(), version).expect("decode")
    }

    #[test]
    fn vote_survives_the_wire() {
        let r = VoteRequest {
            epoch: 7,
            candidate_id: 2,
            last_epoch: 6,
            end_offset: 1234,
            pre_vote: true,
        };
        let wire = round_trip(&vote_request("c1", 3, &r), VOTE_VERSION);
        assert_eq!(wire.voter_id.0, 3);
        assert_eq!(vote_request_from(&wire).expect("vote"), r);
        let resp = VoteResponse {
            error: None,
            epoch: 7,
            leader_id: None,
            granted: true,
            pre_vote: true,
        };
        let wire = round_trip(&vote_response(&resp), VOTE_VERSION);
        assert_eq!(vote_response_from(&wire, true).expect("resp"), resp);
    }

    #[test]
    fn fetch_survives_the_wire_with_divergence() {
        let r = FetchRequest {
            epoch: 4,
            replica_id: 9,
            fetch_offset: 55,
            last_fetched_epoch: 3,
        };
        let wire = round_trip(&fetch_request("c1", &r), FETCH_VERSION);
        let (back, max_wait) = fetch_request_from(&wire, FETCH_VERSION).expect("fetch");
        assert_eq!(back, r);
        assert_eq!(max_wait, FETCH_MAX_WAIT_MS);
        let resp = FetchResponse {
            error: None,
            epoch: 4,
            leader_id: Some(1),
            high_watermark: 50,
            log_start_offset: 0,
            diverging: Some((2, 40)),
            snapshot: None,
            read_from: None,
            high_watermark_news: false,
            batches: vec![],
        };
        let wire = round_trip(&fetch_response(&resp, None), FETCH_VERSION);
        let (back, records) = fetch_response_from(&wire).expect("resp");
        assert_eq!(back, resp);
        assert!(records.is_empty());
    }
}
