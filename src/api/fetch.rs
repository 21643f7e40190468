//! Fetch: whole batches as stored, bounded per partition and per response, long-polling up to
//! max_wait_ms until min_bytes are available, with incremental fetch sessions (KIP-227).
//!
//! A Fetch with a replica id (ReplicaState from v15) comes from a follower: it reads up to the
//! leader's log end instead of the high watermark, is checked against the leader epoch and the
//! follower's last fetched epoch (a diverging epoch is answered, KIP-320), and records the
//! follower's position, which can move the high watermark and complete acks=all produces.

use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::messages::fetch_response::{
    EpochEndOffset, FetchableTopicResponse, PartitionData,
};
use kafka_protocol::messages::{FetchRequest, FetchResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use uuid::Uuid;

use super::{Dispatcher, RequestContext};
use crate::broker::fetch_session::{FetchPartitionSpec, FetchPlan, LastSent, TopicKey};
use crate::broker::{BrokerError, FetchedData, FollowerFetch, LeaderContext, monotonic_ms};
use crate::metadata::MetadataImage;

const FIRST_TOPIC_ID_VERSION: i16 = 13;
/// ReplicaId moved into ReplicaState (with the broker epoch) in v15 (KIP-903).
const FIRST_REPLICA_STATE_VERSION: i16 = 15;
/// Kafka's FetchRequest.READ_COMMITTED isolation level.
const READ_COMMITTED: i8 = 1;

struct Outcome {
    key: TopicKey,
    name: String,
    id: Uuid,
    data: PartitionData,
    bytes: usize,
    sent: LastSent,
    previous: Option<LastSent>,
    /// A follower was told to truncate: answer at once, as an error would be.
    diverging: bool,
}

pub async fn handle(
    d: &Dispatcher,
    _ctx: &RequestContext<'_>,
    version: i16,
    req: FetchRequest,
) -> FetchResponse {
    let by_id = version >= FIRST_TOPIC_ID_VERSION;
    let key = |name: &TopicName, id: Uuid| {
        if by_id {
            TopicKey::Id(id)
        } else {
            TopicKey::Name(name.to_string())
        }
    };
    let requested: Vec<FetchPartitionSpec> = req
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions.iter().map(move |p| FetchPartitionSpec {
                topic: key(&t.topic, t.topic_id),
                partition: p.partition,
                fetch_offset: p.fetch_offset,
                max_bytes: p.partition_max_bytes,
                current_leader_epoch: p.current_leader_epoch,
                last_fetched_epoch: p.last_fetched_epoch,
                log_start_offset: p.log_start_offset,
            })
        })
        .collect();
    let forgotten: Vec<(TopicKey, i32)> = req
        .forgotten_topics_data
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .map(move |&p| (key(&t.topic, t.topic_id), p))
        })
        .collect();
    let plan =
        match d
            .broker
            .fetch_sessions
            .plan(req.session_id, req.session_epoch, requested, forgotten)
        {
            Ok(plan) => plan,
            Err(e) => return FetchResponse::default().with_error_code(e.code()),
        };

    let deadline = Instant::now() + Duration::from_millis(req.max_wait_ms.max(0) as u64);
    let min_bytes = req.min_bytes.max(0) as usize;
    let max_bytes = if req.max_bytes <= 0 {
        i32::MAX as usize
    } else {
        req.max_bytes as usize
    };
    let (replica_id, replica_epoch) = if version >= FIRST_REPLICA_STATE_VERSION {
        (
            req.replica_state.replica_id.0,
            req.replica_state.replica_epoch,
        )
    } else {
        (req.replica_id.0, -1)
    };
    let reader = if replica_id >= 0 {
        Reader::Follower {
            replica_id,
            replica_epoch,
        }
    } else {
        Reader::Consumer
    };
    let mut first_read = true;
    let outcomes = loop {
        let notified = d.broker.data_arrived().notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let image = d.metadata.current();
        let outcomes = read_all(
            d,
            &image,
            &plan,
            max_bytes,
            req.isolation_level,
            reader,
            first_read,
        );
        first_read = false;
        let total: usize = outcomes.iter().map(|o| o.bytes).sum();
        let had_error = outcomes
            .iter()
            .any(|o| o.sent.error_code != 0 || o.diverging);
        let now = Instant::now();
        if total >= min_bytes || had_error || now >= deadline {
            break outcomes;
        }
        let _ = tokio::time::timeout(deadline - now, notified).await;
    };

    // Incremental responses carry only partitions with news.
    let outcomes: Vec<Outcome> = outcomes
        .into_iter()
        .filter(|o| !plan.incremental || o.bytes > 0 || o.previous != Some(o.sent))
        .collect();
    let sent: Vec<_> = outcomes
        .iter()
        .map(|o| (o.key.clone(), o.data.partition_index, o.sent))
        .collect();
    d.broker.fetch_sessions.update(plan.session_id, &sent);

    let mut topics: Vec<FetchableTopicResponse> = Vec::new();
    for o in outcomes {
        match topics.last_mut() {
            Some(t) if t.topic_id == o.id && t.topic.as_str() == o.name => {
                t.partitions.push(o.data)
            }
            _ => topics.push(
                FetchableTopicResponse::default()
                    .with_topic(TopicName(StrBytes::from_string(o.name)))
                    .with_topic_id(o.id)
                    .with_partitions(vec![o.data]),
            ),
        }
    }
    FetchResponse::default()
        .with_session_id(plan.session_id)
        .with_responses(topics)
}

/// Who reads: a consumer sees up to the high watermark, a follower up to the log end.
#[derive(Debug, Clone, Copy)]
enum Reader {
    Consumer,
    Follower { replica_id: i32, replica_epoch: i64 },
}

/// One partition's read: the data, and for a follower a diverging epoch instead of records.
struct Read {
    data: FetchedData,
    diverging_epoch: Option<(i32, i64)>,
}

fn read_all(
    d: &Dispatcher,
    image: &MetadataImage,
    plan: &FetchPlan,
    max_bytes: usize,
    isolation_level: i8,
    reader: Reader,
    first_read: bool,
) -> Vec<Outcome> {
    let mut total = 0usize;
    let brokers = d.broker.broker_states();
    let mut advanced = false;
    let outcomes = plan
        .partitions
        .iter()
        .map(|(spec, previous)| {
            let topic = match &spec.topic {
                TopicKey::Id(id) => image.topic_by_id(id),
                TopicKey::Name(name) => image.topic(name),
            };
            let (name, id) = match (&spec.topic, topic) {
                (_, Some(t)) => (t.name.clone(), t.id),
                (TopicKey::Id(id), None) => (String::new(), *id),
                (TopicKey::Name(n), None) => (n.clone(), Uuid::nil()),
            };
            let result = match (&spec.topic, topic) {
                (TopicKey::Id(_), None) => Err(BrokerError::UnknownTopicId),
                (TopicKey::Name(_), None) => Err(BrokerError::UnknownTopicOrPartition),
                (_, Some(t)) => d
                    .broker
                    .leader_partition(image, &t.name, spec.partition)
                    .and_then(|partition| {
                        let limit =
                            (spec.max_bytes.max(0) as usize).min(max_bytes.saturating_sub(total));
                        // The first partition with data returns at least one whole batch, so a
                        // batch larger than the limits still makes progress (KIP-74).
                        let min_one_batch = total == 0;
                        match reader {
                            Reader::Consumer => partition
                                .check_current_leader_epoch(spec.current_leader_epoch)
                                .and_then(|()| {
                                    partition.read(spec.fetch_offset, limit, min_one_batch)
                                })
                                .map(|data| Read {
                                    data,
                                    diverging_epoch: None,
                                }),
                            Reader::Follower {
                                replica_id,
                                replica_epoch,
                            } => {
                                let fetch = FollowerFetch {
                                    replica_id,
                                    replica_epoch,
                                    fetch_offset: spec.fetch_offset,
                                    last_fetched_epoch: spec.last_fetched_epoch,
                                    current_leader_epoch: spec.current_leader_epoch,
                                    log_start_offset: spec.log_start_offset,
                                };
                                // Only the request's first read records the follower's position:
                                // re-reads while long-polling are the same fetch.
                                partition
                                    .read_for_follower(
                                        &fetch,
                                        limit,
                                        min_one_batch,
                                        first_read,
                                        LeaderContext {
                                            now_ms: monotonic_ms(),
                                            brokers: &brokers,
                                            local_broker_epoch: d.broker.broker_epoch(),
                                        },
                                    )
                                    .map(|r| {
                                        // A moved log start may finish a DeleteRecords.
                                        advanced |= r.high_watermark_advanced || r.log_start_moved;
                                        if let Some(change) = r.alter_isr {
                                            d.broker.submit_alter_isr(partition.clone(), change);
                                        }
                                        Read {
                                            data: r.data,
                                            diverging_epoch: r.diverging_epoch,
                                        }
                                    })
                            }
                        }
                    }),
            };
            let data = PartitionData::default()
                .with_partition_index(spec.partition)
                .with_preferred_read_replica((-1).into())
                .with_aborted_transactions((isolation_level == READ_COMMITTED).then(Vec::new));
            let diverging = matches!(
                result,
                Ok(Read {
                    diverging_epoch: Some(_),
                    ..
                })
            );
            let (data, bytes, sent) = match result {
                Ok(Read {
                    data: f,
                    diverging_epoch,
                }) => {
                    let data = match diverging_epoch {
                        Some((epoch, end_offset)) => data.with_diverging_epoch(
                            EpochEndOffset::default()
                                .with_epoch(epoch)
                                .with_end_offset(end_offset),
                        ),
                        None => data,
                    };
                    total += f.records.len();
                    let sent = LastSent {
                        high_watermark: f.high_watermark,
                        log_start_offset: f.log_start_offset,
                        error_code: 0,
                    };
                    let bytes = f.records.len();
                    (
                        data.with_high_watermark(f.high_watermark)
                            .with_last_stable_offset(f.high_watermark)
                            .with_log_start_offset(f.log_start_offset)
                            .with_records(Some(f.records)),
                        bytes,
                        sent,
                    )
                }
                Err(e) => (
                    data.with_error_code(e.code())
                        .with_high_watermark(-1)
                        .with_last_stable_offset(-1)
                        .with_log_start_offset(-1)
                        .with_records(Some(Bytes::new())),
                    0,
                    LastSent {
                        high_watermark: -1,
                        log_start_offset: -1,
                        error_code: e.code(),
                    },
                ),
            };
            Outcome {
                key: spec.topic.clone(),
                name,
                id,
                data,
                bytes,
                sent,
                previous: *previous,
                diverging,
            }
        })
        .collect::<Vec<_>>();
    if advanced {
        // A follower caught up: acks=all produces and consumers waiting on the high watermark
        // look again.
        d.broker.notify_high_watermark_advanced();
    }
    outcomes
}
