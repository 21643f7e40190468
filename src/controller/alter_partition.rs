//! AlterPartition (KIP-497): a partition leader asks to change its ISR; the controller checks
//! the request against the image as Kafka's `ReplicationControlManager.alterPartition` does and
//! answers with PartitionChangeRecords and the partition's new state.
//!
//! A pure function of the image: the caller commits the records.

use kafka_protocol::messages::alter_partition_request::PartitionData as RequestPartition;
use kafka_protocol::messages::alter_partition_response::{
    PartitionData as ResponsePartition, TopicData as ResponseTopic,
};
use kafka_protocol::messages::{AlterPartitionRequest, AlterPartitionResponse, BrokerId};
use tracing::info;

use super::ControllerError;
use super::brokers::check_broker_epoch;
use super::partition_change::build_change;
use crate::metadata::records::{MetadataRecord, PartitionChangeRecord};
use crate::metadata::{MetadataImage, PartitionRegistration};

/// Kafka's error codes for one partition of an AlterPartition answer.
mod codes {
    pub const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
    pub const NOT_CONTROLLER: i16 = 41;
    pub const INVALID_REQUEST: i16 = 42;
    pub const FENCED_LEADER_EPOCH: i16 = 74;
    pub const INVALID_UPDATE_VERSION: i16 = 95;
    pub const UNKNOWN_TOPIC_ID: i16 = 100;
    pub const INELIGIBLE_REPLICA: i16 = 107;
    pub const OPERATION_NOT_ATTEMPTED: i16 = 55;
}

/// AlterPartition v2+ names topics by id; v3 carries each ISR member's broker epoch.
const FIRST_BROKER_EPOCHS_VERSION: i16 = 3;
const INELIGIBLE_REPLICA_VERSION: i16 = 2;

/// The answer and the records to commit for `request` (at `version`), against `image`.
pub fn alter_partition(
    image: &MetadataImage,
    request: &AlterPartitionRequest,
    version: i16,
) -> Result<(AlterPartitionResponse, Vec<MetadataRecord>), ControllerError> {
    let broker = request.broker_id.0;
    check_broker_epoch(image, broker, request.broker_epoch)?;
    let mut records = Vec::new();
    let mut topics = Vec::with_capacity(request.topics.len());
    for topic in &request.topics {
        let mut partitions = Vec::with_capacity(topic.partitions.len());
        let Some(t) = image.topic_by_id(&topic.topic_id) else {
            info!(topic_id = %topic.topic_id, "rejecting AlterPartition for an unknown topic id");
            for p in &topic.partitions {
                partitions.push(error(p.partition_index, codes::UNKNOWN_TOPIC_ID));
            }
            topics.push(
                ResponseTopic::default()
                    .with_topic_id(topic.topic_id)
                    .with_partitions(partitions),
            );
            continue;
        };
        for p in &topic.partitions {
            let new_isr = requested_isr(p, version);
            let Some(current) = t.partitions.get(&p.partition_index) else {
                partitions.push(error(p.partition_index, codes::UNKNOWN_TOPIC_OR_PARTITION));
                continue;
            };
            if let Err(code) = validate(image, broker, current, p, &new_isr, version) {
                info!(topic = %t.name, partition = p.partition_index, broker,
                    error_code = code, requested_isr = ?new_isr.iter().map(|m| m.0).collect::<Vec<_>>(),
                    "rejecting AlterPartition");
                partitions.push(error(p.partition_index, code));
                continue;
            }
            let target: Vec<i32> = new_isr.iter().map(|m| m.0).collect();
            let mut state = current.clone();
            // The leader is in the new ISR (checked above), so it stays: only the ISR changes.
            if let Some(change) =
                build_change(t.id, p.partition_index, current, target.clone(), |r| {
                    r == current.leader
                })
            {
                state = merged(current, &change);
                info!(topic = %t.name, partition = p.partition_index, broker,
                    isr = ?state.isr, partition_epoch = state.partition_epoch,
                    "altering the ISR");
                records.push(MetadataRecord::PartitionChange(change));
            }
            partitions.push(
                ResponsePartition::default()
                    .with_partition_index(p.partition_index)
                    .with_leader_id(BrokerId(state.leader))
                    .with_leader_epoch(state.leader_epoch)
                    .with_isr(state.isr.iter().map(|&b| BrokerId(b)).collect())
                    .with_partition_epoch(state.partition_epoch),
            );
        }
        topics.push(
            ResponseTopic::default()
                .with_topic_id(topic.topic_id)
                .with_partitions(partitions),
        );
    }
    Ok((
        AlterPartitionResponse::default().with_topics(topics),
        records,
    ))
}

/// (broker id, broker epoch or -1) of each member of the requested ISR.
fn requested_isr(p: &RequestPartition, version: i16) -> Vec<(i32, i64)> {
    if version >= FIRST_BROKER_EPOCHS_VERSION {
        p.new_isr_with_epochs
            .iter()
            .map(|b| (b.broker_id.0, b.broker_epoch))
            .collect()
    } else {
        p.new_isr.iter().map(|b| (b.0, -1)).collect()
    }
}

/// Kafka's `validateAlterPartitionData`, in its order.
fn validate(
    image: &MetadataImage,
    broker: i32,
    current: &PartitionRegistration,
    p: &RequestPartition,
    new_isr: &[(i32, i64)],
    version: i16,
) -> Result<(), i16> {
    // A leader ahead of this image has heard of a newer controller: let it look for that one.
    if p.leader_epoch > current.leader_epoch || p.partition_epoch > current.partition_epoch {
        return Err(codes::NOT_CONTROLLER);
    }
    if p.leader_epoch < current.leader_epoch {
        return Err(codes::FENCED_LEADER_EPOCH);
    }
    if broker != current.leader {
        return Err(codes::INVALID_REQUEST);
    }
    if p.partition_epoch < current.partition_epoch {
        return Err(codes::INVALID_UPDATE_VERSION);
    }
    let mut ids: Vec<i32> = new_isr.iter().map(|m| m.0).collect();
    ids.sort_unstable();
    let duplicate = ids.windows(2).any(|w| w[0] == w[1]);
    if ids.is_empty() || duplicate || ids.iter().any(|r| !current.replicas.contains(r)) {
        return Err(codes::INVALID_REQUEST);
    }
    if !ids.contains(&current.leader) {
        return Err(codes::INVALID_REQUEST);
    }
    // Every member must be registered, unfenced, not shutting down, and (when the leader saw
    // one) at the broker epoch the leader saw: a replica that restarted since must catch up
    // again first.
    let ineligible = new_isr.iter().any(|&(id, epoch)| {
        image.brokers.get(&id).is_none_or(|b| {
            b.fenced || b.in_controlled_shutdown || (epoch != -1 && epoch != b.epoch)
        })
    });
    if ineligible {
        return Err(if version >= INELIGIBLE_REPLICA_VERSION {
            codes::INELIGIBLE_REPLICA
        } else {
            codes::OPERATION_NOT_ATTEMPTED
        });
    }
    Ok(())
}

/// The registration after `change`, as the image will fold it.
fn merged(
    current: &PartitionRegistration,
    change: &PartitionChangeRecord,
) -> PartitionRegistration {
    let mut next = current.clone();
    if let Some(isr) = &change.isr {
        next.isr = isr.clone();
    }
    if change.leader != PartitionChangeRecord::NO_LEADER_CHANGE {
        next.leader = change.leader;
        next.leader_epoch += 1;
    }
    next.partition_epoch += 1;
    next
}

fn error(partition: i32, code: i16) -> ResponsePartition {
    ResponsePartition::default()
        .with_partition_index(partition)
        .with_error_code(code)
        .with_leader_id(BrokerId(-1))
        .with_leader_epoch(-1)
        .with_partition_epoch(-1)
}

#[cfg(test)]
mod tests {
    use kafka_protocol::messages::alter_partition_request::{BrokerState, TopicData};
    use uuid::Uuid;

    use super::*;
    use crate::metadata::records::{PartitionRecord, RegisterBrokerRecord, TopicRecord};

    const TOPIC: Uuid = Uuid::from_u128(7);

    /// Brokers 1..=3 (epochs 11, 12, 13; `fenced` ones fenced), topic t-0 on [1, 2, 3] led
    /// by 1 at leader epoch 4, partition epoch 6.
    fn image(isr: &[i32], fenced: &[i32]) -> MetadataImage {
        let mut image = MetadataImage::default();
        for id in 1..=3 {
            image.apply(&MetadataRecord::RegisterBroker(RegisterBrokerRecord {
                broker_id: id,
                broker_epoch: 10 + id as i64,
                fenced: fenced.contains(&id),
                ..RegisterBrokerRecord::default()
            }));
        }
        image.apply(&MetadataRecord::Topic(TopicRecord {
            name: "t".into(),
            topic_id: TOPIC,
        }));
        image.apply(&MetadataRecord::Partition(PartitionRecord {
            partition_id: 0,
            topic_id: TOPIC,
            replicas: vec![1, 2, 3],
            isr: isr.to_vec(),
            leader: 1,
            leader_epoch: 4,
            partition_epoch: 6,
            ..PartitionRecord::default()
        }));
        image
    }

    fn request(
        broker: i32,
        leader_epoch: i32,
        partition_epoch: i32,
        isr: &[(i32, i64)],
    ) -> AlterPartitionRequest {
        AlterPartitionRequest::default()
            .with_broker_id(BrokerId(broker))
            .with_broker_epoch(10 + broker as i64)
            .with_topics(vec![
                TopicData::default()
                    .with_topic_id(TOPIC)
                    .with_partitions(vec![
                        RequestPartition::default()
                            .with_partition_index(0)
                            .with_leader_epoch(leader_epoch)
                            .with_partition_epoch(partition_epoch)
                            .with_new_isr_with_epochs(
                                isr.iter()
                                    .map(|&(b, e)| {
                                        BrokerState::default()
                                            .with_broker_id(BrokerId(b))
                                            .with_broker_epoch(e)
                                    })
                                    .collect(),
                            ),
                    ]),
            ])
    }

    fn answer(image: &MetadataImage, req: &AlterPartitionRequest) -> (i16, Vec<i32>, i32, usize) {
        let (resp, records) = alter_partition(image, req, 3).expect("answered");
        let p = &resp.topics[0].partitions[0];
        (
            p.error_code,
            p.isr.iter().map(|b| b.0).collect(),
            p.partition_epoch,
            records.len(),
        )
    }

    #[test]
    fn the_leader_shrinks_and_expands_its_isr_with_a_new_partition_epoch() {
        let img = image(&[1, 2, 3], &[]);
        assert_eq!(
            answer(&img, &request(1, 4, 6, &[(1, 11), (2, 12)])),
            (0, vec![1, 2], 7, 1)
        );
        let img = image(&[1], &[]);
        assert_eq!(
            answer(&img, &request(1, 4, 6, &[(1, 11), (3, -1)])),
            (0, vec![1, 3], 7, 1)
        );
        // The ISR it asks for is the ISR it has: answered, nothing written.
        assert_eq!(
            answer(&img, &request(1, 4, 6, &[(1, 11)])),
            (0, vec![1], 6, 0)
        );
    }

    #[test]
    fn stale_epochs_and_requests_from_non_leaders_are_refused_as_kafka_does() {
        let img = image(&[1, 2, 3], &[]);
        let isr = [(1, 11), (2, 12)];
        assert_eq!(
            answer(&img, &request(1, 4, 5, &isr)).0,
            codes::INVALID_UPDATE_VERSION
        );
        assert_eq!(
            answer(&img, &request(1, 3, 6, &isr)).0,
            codes::FENCED_LEADER_EPOCH
        );
        assert_eq!(
            answer(&img, &request(1, 5, 6, &isr)).0,
            codes::NOT_CONTROLLER
        );
        assert_eq!(
            answer(&img, &request(2, 4, 6, &isr)).0,
            codes::INVALID_REQUEST
        );
        assert_eq!(
            answer(&img, &request(1, 4, 6, &[(2, 12)])).0,
            codes::INVALID_REQUEST,
            "the leader must stay in its ISR"
        );
        assert_eq!(
            answer(&img, &request(1, 4, 6, &[(1, 11), (4, -1)])).0,
            codes::INVALID_REQUEST,
            "not a replica"
        );
    }

    #[test]
    fn fenced_or_restarted_replicas_are_ineligible() {
        let img = image(&[1], &[3]);
        assert_eq!(
            answer(&img, &request(1, 4, 6, &[(1, 11), (3, 13)])).0,
            codes::INELIGIBLE_REPLICA
        );
        let img = image(&[1], &[]);
        assert_eq!(
            answer(&img, &request(1, 4, 6, &[(1, 11), (2, 9)])).0,
            codes::INELIGIBLE_REPLICA,
            "broker 2 registered again since the leader saw epoch 9"
        );
        // A stale epoch of the requesting broker itself is refused for the whole request.
        let req = request(1, 4, 6, &[(1, 11)]).with_broker_epoch(3);
        assert!(matches!(
            alter_partition(&img, &req, 3),
            Err(ControllerError::StaleBrokerEpoch(_))
        ));
    }
}
