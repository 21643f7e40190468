//! DescribeQuorum (KIP-595/853): the leader's view of the metadata quorum — epoch, high
//! watermark, each voter's and observer's log end offset and last contact — as
//! `kafka-metadata-quorum.sh describe` and `kraftd quorum status` print it. Only the leader
//! knows the replicas' progress; another node answers NOT_LEADER_OR_FOLLOWER naming the leader.

use kafka_protocol::messages::describe_quorum_response::{
    Listener, Node, PartitionData, ReplicaState, TopicData,
};
use kafka_protocol::messages::{DescribeQuorumRequest, DescribeQuorumResponse, TopicName};
use kafka_protocol::protocol::StrBytes;

use super::{Dispatcher, RequestContext};
use crate::raft::driver::ReplicaDescription;
use crate::raft::rpc;

const NOT_LEADER_OR_FOLLOWER: i16 = 6;
const UNKNOWN_SERVER_ERROR: i16 = -1;

pub async fn handle(
    d: &Dispatcher,
    _ctx: &RequestContext<'_>,
    _version: i16,
    _req: DescribeQuorumRequest,
) -> DescribeQuorumResponse {
    let Ok(q) = d.raft.describe().await else {
        return DescribeQuorumResponse::default().with_error_code(UNKNOWN_SERVER_ERROR);
    };
    let replica = |r: &ReplicaDescription| {
        ReplicaState::default()
            .with_replica_id(r.replica_id.into())
            .with_replica_directory_id(r.directory_id)
            .with_log_end_offset(r.log_end_offset)
            .with_last_fetch_timestamp(r.last_fetch_timestamp)
            .with_last_caught_up_timestamp(r.last_caught_up_timestamp)
    };
    let leads = q.leader_id == Some(d.node_id);
    let mut partition = PartitionData::default()
        .with_partition_index(0)
        .with_leader_id(q.leader_id.unwrap_or(-1).into())
        .with_leader_epoch(q.epoch)
        .with_high_watermark(q.high_watermark)
        .with_current_voters(q.voters.iter().map(replica).collect())
        .with_observers(q.observers.iter().map(replica).collect());
    if !leads {
        let leader = q
            .leader_id
            .map(|l| format!("node {l}"))
            .unwrap_or_else(|| "no leader is known yet".to_string());
        partition = partition
            .with_error_code(NOT_LEADER_OR_FOLLOWER)
            .with_error_message(Some(StrBytes::from_string(format!(
                "node {} does not lead the metadata quorum; ask the leader ({leader})",
                d.node_id
            ))));
    }
    // Every endpoint of every voter, as the Voters record (or the configuration) holds them.
    let nodes = d
        .raft
        .voters()
        .borrow()
        .iter()
        .map(|v| {
            Node::default().with_node_id(v.id.into()).with_listeners(
                v.endpoints
                    .iter()
                    .map(|(name, host, port)| {
                        Listener::default()
                            .with_name(StrBytes::from_string(name.clone()))
                            .with_host(StrBytes::from_string(host.clone()))
                            .with_port(*port)
                    })
                    .collect(),
            )
        })
        .collect();
    DescribeQuorumResponse::default()
        .with_topics(vec![
            TopicData::default()
                .with_topic_name(TopicName(StrBytes::from_static_str(rpc::METADATA_TOPIC)))
                .with_partitions(vec![partition]),
        ])
        .with_nodes(nodes)
}
