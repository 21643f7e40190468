//! OffsetForLeaderEpoch (KIP-101, KIP-320): where a given leader epoch ends in the leader's log.
//! Consumers ask it after a leader change to validate their position: an epoch that ends before
//! their offset means the log was truncated under them. Served by the partition's leader only.

use kafka_protocol::messages::offset_for_leader_epoch_response::{
    EpochEndOffset, OffsetForLeaderTopicResult,
};
use kafka_protocol::messages::{OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse};

use super::{Dispatcher, RequestContext};

pub async fn handle(
    d: &Dispatcher,
    _ctx: &RequestContext<'_>,
    _version: i16,
    req: OffsetForLeaderEpochRequest,
) -> OffsetForLeaderEpochResponse {
    let image = d.metadata.current();
    let topics = req
        .topics
        .into_iter()
        .map(|t| {
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    let result = d
                        .broker
                        .leader_partition(&image, t.topic.as_str(), p.partition)
                        .and_then(|partition| {
                            partition.last_offset_for_leader_epoch(
                                p.current_leader_epoch,
                                p.leader_epoch,
                            )
                        });
                    let out = EpochEndOffset::default().with_partition(p.partition);
                    match result {
                        Ok((epoch, end_offset)) => {
                            out.with_leader_epoch(epoch).with_end_offset(end_offset)
                        }
                        Err(e) => out
                            .with_error_code(e.code())
                            .with_leader_epoch(-1)
                            .with_end_offset(-1),
                    }
                })
                .collect();
            OffsetForLeaderTopicResult::default()
                .with_topic(t.topic)
                .with_partitions(partitions)
        })
        .collect();
    OffsetForLeaderEpochResponse::default().with_topics(topics)
}
