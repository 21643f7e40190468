//! ElectLeaders (KIP-460, `kafka-leader-election.sh`): elect the preferred replica, or — for an
//! unclean election — any live replica of partitions left without a leader. Metadata changes,
//! so a node that is not the active controller forwards it there (KIP-590).

use std::collections::BTreeMap;

use kafka_protocol::messages::elect_leaders_response::{PartitionResult, ReplicaElectionResult};
use kafka_protocol::messages::{ElectLeadersRequest, ElectLeadersResponse, TopicName};
use kafka_protocol::protocol::StrBytes;

use super::{Dispatcher, RequestContext};
use crate::controller::elections::ElectionType;

pub async fn handle(
    d: &Dispatcher,
    _ctx: &RequestContext<'_>,
    version: i16,
    req: ElectLeadersRequest,
) -> ElectLeadersResponse {
    // v0 has no election type: it elects preferred leaders.
    let election_type = if version >= 1 { req.election_type } else { 0 };
    let Some(election) = ElectionType::from_wire(election_type) else {
        return ElectLeadersResponse::default()
            .with_error_code(kafka_protocol::ResponseError::InvalidRequest.code());
    };
    let partitions = req.topic_partitions.map(|topics| {
        topics
            .into_iter()
            .flat_map(|t| {
                let name = t.topic.to_string();
                t.partitions.into_iter().map(move |p| (name.clone(), p))
            })
            .collect::<Vec<_>>()
    });
    let results = match d.controller.elect_leaders(election, partitions).await {
        Ok(results) => results,
        Err(e) => return ElectLeadersResponse::default().with_error_code(e.code()),
    };
    let mut by_topic: BTreeMap<String, Vec<PartitionResult>> = BTreeMap::new();
    for ((topic, partition), result) in results {
        let out = PartitionResult::default().with_partition_id(partition);
        by_topic.entry(topic).or_default().push(match result {
            Ok(()) => out,
            Err(e) => out
                .with_error_code(e.code())
                .with_error_message(Some(StrBytes::from_string(e.to_string()))),
        });
    }
    ElectLeadersResponse::default().with_replica_election_results(
        by_topic
            .into_iter()
            .map(|(topic, partitions)| {
                ReplicaElectionResult::default()
                    .with_topic(TopicName(StrBytes::from_string(topic)))
                    .with_partition_result(partitions)
            })
            .collect(),
    )
}
