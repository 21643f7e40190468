//! Fetch: whole batches as stored, bounded per partition and per response, long-polling up to
//! max_wait_ms until min_bytes are available. Sessions (KIP-227) are declined with session id 0,
//! which clients answer with full fetches, as Kafka allows.

use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::{FetchRequest, FetchResponse, TopicName};
use kafka_protocol::protocol::StrBytes;

use super::{Dispatcher, RequestContext};
use crate::broker::BrokerError;

const FIRST_TOPIC_ID_VERSION: i16 = 13;
/// Kafka's FetchRequest.READ_COMMITTED isolation level.
const READ_COMMITTED: i8 = 1;

pub async fn handle(
    d: &Dispatcher,
    _ctx: &RequestContext,
    version: i16,
    req: FetchRequest,
) -> FetchResponse {
    let deadline = Instant::now() + Duration::from_millis(req.max_wait_ms.max(0) as u64);
    let min_bytes = req.min_bytes.max(0) as usize;
    let max_bytes = if req.max_bytes <= 0 {
        i32::MAX as usize
    } else {
        req.max_bytes as usize
    };
    loop {
        let (responses, total, had_error) = read_all(d, version, &req, max_bytes);
        let now = Instant::now();
        if total >= min_bytes || had_error || now >= deadline {
            return FetchResponse::default()
                .with_session_id(0)
                .with_responses(responses);
        }
        d.broker.wait_for_data(deadline - now).await;
    }
}

fn read_all(
    d: &Dispatcher,
    version: i16,
    req: &FetchRequest,
    max_bytes: usize,
) -> (Vec<FetchableTopicResponse>, usize, bool) {
    let image = d.metadata.current();
    let mut total = 0usize;
    let mut had_error = false;
    let mut out = Vec::with_capacity(req.topics.len());
    for topic in &req.topics {
        let name: Option<String> = if version >= FIRST_TOPIC_ID_VERSION {
            image.topic_by_id(&topic.topic_id).map(|t| t.name.clone())
        } else {
            Some(topic.topic.to_string())
        };
        let mut partitions = Vec::with_capacity(topic.partitions.len());
        for p in &topic.partitions {
            let result = (|| {
                let Some(name) = name.as_deref() else {
                    return Err(BrokerError::UnknownTopicId);
                };
                let partition = d.broker.leader_partition(&image, name, p.partition)?;
                let remaining = max_bytes.saturating_sub(total);
                let limit = (p.partition_max_bytes.max(0) as usize).min(remaining);
                // The first partition with data returns at least one whole batch, so a batch
                // larger than the limits still makes progress (KIP-74).
                partition.read(p.fetch_offset, limit, total == 0)
            })();
            let data = PartitionData::default()
                .with_partition_index(p.partition)
                .with_preferred_read_replica((-1).into())
                .with_aborted_transactions((req.isolation_level == READ_COMMITTED).then(Vec::new));
            partitions.push(match result {
                Ok(f) => {
                    total += f.records.len();
                    data.with_high_watermark(f.high_watermark)
                        .with_last_stable_offset(f.high_watermark)
                        .with_log_start_offset(f.log_start_offset)
                        .with_records(Some(f.records))
                }
                Err(e) => {
                    had_error = true;
                    data.with_error_code(e.code())
                        .with_high_watermark(-1)
                        .with_last_stable_offset(-1)
                        .with_log_start_offset(-1)
                        .with_records(Some(Bytes::new()))
                }
            });
        }
        out.push(
            FetchableTopicResponse::default()
                .with_topic(TopicName(StrBytes::from_string(name.unwrap_or_default())))
                .with_topic_id(topic.topic_id)
                .with_partitions(partitions),
        );
    }
    (out, total, had_error)
}
