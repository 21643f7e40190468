//! Produce: validate each partition's batch (CRC, size, sequence) and append it as sent. With
//! acks=all the answer waits, up to the request's timeout, until the ISR has every appended
//! batch (Kafka's DelayedProduce); acks=1 answers after the local append.

use std::sync::Arc;
use std::time::{Duration, Instant};

use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse};
use kafka_protocol::protocol::StrBytes;

use super::{Dispatcher, RequestContext};
use crate::broker::{BrokerError, Partition, monotonic_ms};

/// Topics are named by id from v13 (KIP-516).
const FIRST_TOPIC_ID_VERSION: i16 = 13;

/// An appended batch an acks=all produce still waits on: where its answer goes, and the offset
/// the high watermark must reach.
struct AwaitingReplicas {
    topic: usize,
    partition: usize,
    leader: Arc<Partition>,
    required_offset: i64,
}

pub async fn handle(
    d: &Dispatcher,
    _ctx: &RequestContext<'_>,
    version: i16,
    req: ProduceRequest,
) -> Produced {
    let acks = req.acks;
    let image = d.metadata.current();
    let brokers = d.broker.broker_states();
    let mut responses = Vec::with_capacity(req.topic_data.len());
    let mut appended = false;
    let mut advanced = false;
    let mut awaiting = Vec::new();
    for (topic_pos, topic) in req.topic_data.into_iter().enumerate() {
        let name = if version >= FIRST_TOPIC_ID_VERSION {
            image.topic_by_id(&topic.topic_id).map(|t| t.name.clone())
        } else {
            Some(topic.name.to_string())
        };
        let max_message_bytes = name
            .as_deref()
            .map(|n| d.broker.max_message_bytes(n, &image))
            .unwrap_or(0);
        let partition_responses = topic
            .partition_data
            .into_iter()
            .enumerate()
            .map(|(partition_pos, p)| {
                let result = (|| {
                    if !matches!(acks, -1..=1) {
                        return Err(BrokerError::InvalidRequiredAcks);
                    }
                    let Some(name) = name.as_deref() else {
                        return Err(BrokerError::UnknownTopicId);
                    };
                    let partition = d.broker.leader_partition(&image, name, p.index)?;
                    let records = p.records.unwrap_or_default();
                    partition
                        .append_records_as_leader(
                            &records,
                            max_message_bytes,
                            acks,
                            monotonic_ms(),
                            &brokers,
                        )
                        .map(|r| (r, partition))
                })();
                let resp = PartitionProduceResponse::default()
                    .with_index(p.index)
                    .with_log_append_time_ms(-1)
                    .with_log_start_offset(-1)
                    .with_base_offset(-1);
                match result {
                    Ok((r, partition)) => {
                        appended = true;
                        advanced |= r.high_watermark_advanced;
                        if acks == -1 {
                            awaiting.push(AwaitingReplicas {
                                topic: topic_pos,
                                partition: partition_pos,
                                leader: partition,
                                required_offset: r.required_offset,
                            });
                        }
                        resp.with_base_offset(r.base_offset)
                            .with_log_append_time_ms(r.log_append_time)
                            .with_log_start_offset(r.log_start_offset)
                    }
                    Err(e) => with_error(resp, &e),
                }
            })
            .collect();
        responses.push(
            TopicProduceResponse::default()
                .with_name(topic.name)
                .with_topic_id(topic.topic_id)
                .with_partition_responses(partition_responses),
        );
    }
    if appended {
        d.broker.notify_data_arrived();
    }
    if advanced {
        d.broker.notify_high_watermark_advanced();
    }
    if acks == 0 {
        // No response: a failed acks=0 produce is signalled, as Kafka does, by closing the
        // connection, so the client refreshes its metadata instead of silently losing more.
        let failed = responses
            .iter()
            .flat_map(|t| &t.partition_responses)
            .any(|p| p.error_code != 0);
        return if failed {
            Produced::FailedWithoutResponse
        } else {
            Produced::NoResponse
        };
    }
    let timeout = Duration::from_millis(req.timeout_ms.max(0) as u64);
    for (pos, error) in wait_for_replicas(d, awaiting, timeout).await {
        if let Some(p) = responses
            .get_mut(pos.0)
            .and_then(|t| t.partition_responses.get_mut(pos.1))
        {
            *p = with_error(std::mem::take(p), &error);
        }
    }
    Produced::Respond(ProduceResponse::default().with_responses(responses))
}

fn with_error(resp: PartitionProduceResponse, e: &BrokerError) -> PartitionProduceResponse {
    resp.with_error_code(e.code())
        .with_error_message(Some(StrBytes::from_string(e.to_string())))
}

/// Waits until the high watermark of every awaited partition reaches its batch, or `timeout`.
/// Returns the partitions that failed: (topic, partition) positions in the response, and why.
async fn wait_for_replicas(
    d: &Dispatcher,
    mut awaiting: Vec<AwaitingReplicas>,
    timeout: Duration,
) -> Vec<((usize, usize), BrokerError)> {
    let deadline = Instant::now() + timeout;
    let mut failed = Vec::new();
    loop {
        // Registered before checking, so a high watermark move in between is not missed.
        let acknowledged = d.broker.replicas_acknowledged().notified();
        tokio::pin!(acknowledged);
        acknowledged.as_mut().enable();
        awaiting.retain(|a| {
            match a
                .leader
                .check_enough_replicas_reach_offset(a.required_offset)
            {
                Ok(true) => false,
                Ok(false) => true,
                Err(e) => {
                    failed.push(((a.topic, a.partition), e));
                    false
                }
            }
        });
        if awaiting.is_empty() {
            return failed;
        }
        let now = Instant::now();
        if now >= deadline {
            failed.extend(
                awaiting
                    .iter()
                    .map(|a| ((a.topic, a.partition), BrokerError::RequestTimedOut)),
            );
            return failed;
        }
        let _ = tokio::time::timeout(deadline - now, acknowledged).await;
    }
}

pub enum Produced {
    Respond(ProduceResponse),
    /// acks=0 and everything was appended.
    NoResponse,
    /// acks=0 and some partition failed.
    FailedWithoutResponse,
}
