//! Sends the ISR changes partition leaders decide to the active controller (Kafka's
//! AlterPartitionManager): whatever is queued goes as one AlterPartition v3, one request in
//! flight at a time; each partition's answer goes back to that partition, which commits the
//! new ISR, drops a refused change, or asks for it to be sent again after a pause.
//!
//! It decides nothing about ISRs itself.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::messages::alter_partition_request::{BrokerState, PartitionData, TopicData};
use kafka_protocol::messages::{AlterPartitionRequest, AlterPartitionResponse, BrokerId};
use tokio::sync::{mpsc, watch};
use tracing::{debug, info};
use uuid::Uuid;

use super::replication::{AlterIsr, AlterIsrOutcome};
use super::{ControllerChannel, Partition, ReplicaManager, monotonic_ms};

/// Changes sent in one request; the rest wait for the next.
const MAX_CHANGES_PER_REQUEST: usize = 1000;
/// Pause before sending changes again that the controller could not take (Kafka retries
/// AlterPartition after its retry backoff).
const RETRY_BACKOFF: Duration = Duration::from_millis(100);
/// Kafka's NOT_CONTROLLER: what a change that got no answer is treated as.
const NOT_CONTROLLER: i16 = 41;

type Change = (Arc<Partition>, AlterIsr);

/// Runs until shutdown, sending what `queue` receives.
pub async fn run_alter_partition_manager(
    replicas: Arc<ReplicaManager>,
    channel: ControllerChannel,
    mut queue: mpsc::UnboundedReceiver<Change>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut retry: Vec<Change> = Vec::new();
    loop {
        let mut batch = std::mem::take(&mut retry);
        if batch.is_empty() {
            tokio::select! {
                c = queue.recv() => match c {
                    Some(c) => batch.push(c),
                    None => return,
                },
                _ = shutdown.changed() => return,
            }
        }
        while batch.len() < MAX_CHANGES_PER_REQUEST {
            match queue.try_recv() {
                Ok(c) => batch.push(c),
                Err(_) => break,
            }
        }
        // A partition sends its newest change only: an older one is no longer pending.
        let mut newest: HashMap<(Uuid, i32), Change> = HashMap::new();
        for (p, change) in batch {
            newest.insert((p.topic_id, p.index), (p, change));
        }
        let batch: Vec<Change> = newest.into_values().collect();
        let request = request(replicas.node_id(), replicas.broker_epoch(), &batch);
        let answer = tokio::select! {
            a = channel.alter_partition(request) => a,
            _ = shutdown.changed() => return,
        };
        let outcomes = match answer {
            Ok(response) => outcomes(&response, &batch),
            Err(e) => {
                debug!(error = %e, "no answer to AlterPartition; retrying");
                vec![
                    AlterIsrOutcome::Failed {
                        error_code: NOT_CONTROLLER
                    };
                    batch.len()
                ]
            }
        };
        let brokers = replicas.broker_states();
        let mut advanced = false;
        for ((p, change), outcome) in batch.into_iter().zip(outcomes) {
            let (moved, again) =
                p.handle_alter_isr(change.change_id, &outcome, monotonic_ms(), &brokers);
            advanced |= moved;
            match &outcome {
                AlterIsrOutcome::Committed {
                    isr,
                    partition_epoch,
                    ..
                } => {
                    info!(topic = %p.topic, partition = p.index, isr = ?isr,
                        partition_epoch, "ISR change committed")
                }
                AlterIsrOutcome::Failed { error_code } => {
                    info!(topic = %p.topic, partition = p.index, error_code,
                        retry = again, "ISR change refused")
                }
            }
            if again {
                retry.push((p, change));
            }
        }
        if advanced {
            replicas.notify_high_watermark_advanced();
        }
        if !retry.is_empty() {
            tokio::select! {
                _ = tokio::time::sleep(RETRY_BACKOFF) => {}
                _ = shutdown.changed() => return,
            }
        }
    }
}

fn request(broker_id: i32, broker_epoch: i64, batch: &[Change]) -> AlterPartitionRequest {
    let mut topics: Vec<TopicData> = Vec::new();
    for (p, change) in batch {
        let data = PartitionData::default()
            .with_partition_index(p.index)
            .with_leader_epoch(change.leader_epoch)
            .with_partition_epoch(change.partition_epoch)
            .with_new_isr_with_epochs(
                change
                    .new_isr
                    .iter()
                    .map(|&(b, e)| {
                        BrokerState::default()
                            .with_broker_id(BrokerId(b))
                            .with_broker_epoch(e)
                    })
                    .collect(),
            );
        match topics.iter_mut().find(|t| t.topic_id == p.topic_id) {
            Some(t) => t.partitions.push(data),
            None => topics.push(
                TopicData::default()
                    .with_topic_id(p.topic_id)
                    .with_partitions(vec![data]),
            ),
        }
    }
    AlterPartitionRequest::default()
        .with_broker_id(BrokerId(broker_id))
        .with_broker_epoch(broker_epoch)
        .with_topics(topics)
}

/// Each change's outcome, in `batch` order. A whole-request error applies to every change; a
/// partition the answer leaves out counts as not attempted by a controller that moved on.
fn outcomes(response: &AlterPartitionResponse, batch: &[Change]) -> Vec<AlterIsrOutcome> {
    batch
        .iter()
        .map(|(p, _)| {
            if response.error_code != 0 {
                return AlterIsrOutcome::Failed {
                    error_code: response.error_code,
                };
            }
            let answer = response
                .topics
                .iter()
                .filter(|t| t.topic_id == p.topic_id)
                .flat_map(|t| &t.partitions)
                .find(|d| d.partition_index == p.index);
            match answer {
                Some(d) if d.error_code == 0 => AlterIsrOutcome::Committed {
                    leader_epoch: d.leader_epoch,
                    partition_epoch: d.partition_epoch,
                    isr: d.isr.iter().map(|b| b.0).collect(),
                },
                Some(d) => AlterIsrOutcome::Failed {
                    error_code: d.error_code,
                },
                None => AlterIsrOutcome::Failed {
                    error_code: NOT_CONTROLLER,
                },
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use kafka_protocol::messages::alter_partition_response::{
        PartitionData as ResponsePartition, TopicData as ResponseTopic,
    };

    use super::*;
    use crate::log::{LogConfig, PartitionLog};

    fn partition(dir: &std::path::Path, topic_id: Uuid, index: i32) -> Arc<Partition> {
        let log =
            PartitionLog::open(&dir.join(format!("t-{index}")), LogConfig::default()).expect("log");
        Arc::new(Partition::new(
            "t".into(),
            topic_id,
            index,
            log,
            1,
            30_000,
            0,
        ))
    }

    fn change(new_isr: &[(i32, i64)]) -> AlterIsr {
        AlterIsr {
            change_id: 1,
            leader_epoch: 3,
            partition_epoch: 7,
            new_isr: new_isr.to_vec(),
        }
    }

    #[test]
    fn changes_go_as_one_v3_request_and_answers_come_back_per_partition() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (a, b) = (Uuid::from_u128(1), Uuid::from_u128(2));
        let batch = vec![
            (partition(dir.path(), a, 0), change(&[(1, 10), (2, 20)])),
            (partition(dir.path(), a, 1), change(&[(1, 10)])),
            (partition(dir.path(), b, 0), change(&[(1, 10), (3, -1)])),
        ];
        let req = request(1, 10, &batch);
        assert_eq!((req.broker_id.0, req.broker_epoch), (1, 10));
        assert_eq!(req.topics.len(), 2, "grouped by topic id");
        let p = &req.topics[0].partitions[0];
        assert_eq!((p.leader_epoch, p.partition_epoch), (3, 7));
        let isr: Vec<(i32, i64)> = p
            .new_isr_with_epochs
            .iter()
            .map(|s| (s.broker_id.0, s.broker_epoch))
            .collect();
        assert_eq!(isr, vec![(1, 10), (2, 20)]);

        let response = AlterPartitionResponse::default().with_topics(vec![
            ResponseTopic::default()
                .with_topic_id(a)
                .with_partitions(vec![
                    ResponsePartition::default()
                        .with_partition_index(0)
                        .with_leader_epoch(3)
                        .with_partition_epoch(8)
                        .with_isr(vec![BrokerId(1), BrokerId(2)]),
                    ResponsePartition::default()
                        .with_partition_index(1)
                        .with_error_code(107),
                ]),
        ]);
        assert_eq!(
            outcomes(&response, &batch),
            vec![
                AlterIsrOutcome::Committed {
                    leader_epoch: 3,
                    partition_epoch: 8,
                    isr: vec![1, 2],
                },
                AlterIsrOutcome::Failed { error_code: 107 },
                // Left out of the answer: try again.
                AlterIsrOutcome::Failed {
                    error_code: NOT_CONTROLLER
                },
            ]
        );
        // A whole-request error (a stale broker epoch, say) applies to every change.
        let refused = AlterPartitionResponse::default().with_error_code(77);
        assert!(
            outcomes(&refused, &batch)
                .iter()
                .all(|o| *o == AlterIsrOutcome::Failed { error_code: 77 })
        );
    }
}
