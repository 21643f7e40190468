//! DeleteRecords: moves each partition's log start offset; reads below it then get
//! OFFSET_OUT_OF_RANGE. As Kafka's DelayedDeleteRecords, the answer waits (up to the request's
//! timeout) until every live replica has moved its log start too, and reports that low
//! watermark.

use std::time::Duration;

use kafka_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
};
use kafka_protocol::messages::{DeleteRecordsRequest, DeleteRecordsResponse};

use super::{Dispatcher, RequestContext};

pub async fn handle(
    d: &Dispatcher,
    _ctx: &RequestContext<'_>,
    _version: i16,
    req: DeleteRecordsRequest,
) -> DeleteRecordsResponse {
    let image = d.metadata.current();
    // Every partition's log start moves first; then one shared deadline for the replicas.
    let deleted: Vec<Vec<_>> = req
        .topics
        .iter()
        .map(|t| {
            t.partitions
                .iter()
                .map(|p| {
                    d.broker
                        .leader_partition(&image, t.name.as_str(), p.partition_index)
                        .and_then(|partition| {
                            let start = partition.delete_records(p.offset)?;
                            Ok((partition, start))
                        })
                })
                .collect()
        })
        .collect();
    let deadline =
        tokio::time::Instant::now() + Duration::from_millis(req.timeout_ms.max(0) as u64);
    let mut topics = Vec::with_capacity(req.topics.len());
    for (t, results) in req.topics.into_iter().zip(deleted) {
        let mut partitions = Vec::with_capacity(results.len());
        for (p, result) in t.partitions.iter().zip(results) {
            let result = match result {
                Ok((partition, start)) => {
                    let left = deadline.saturating_duration_since(tokio::time::Instant::now());
                    d.broker
                        .wait_for_low_watermark(&partition, start, left)
                        .await
                }
                Err(e) => Err(e),
            };
            let out =
                DeleteRecordsPartitionResult::default().with_partition_index(p.partition_index);
            partitions.push(match result {
                Ok(low_watermark) => out.with_low_watermark(low_watermark),
                Err(e) => out.with_low_watermark(-1).with_error_code(e.code()),
            });
        }
        topics.push(
            DeleteRecordsTopicResult::default()
                .with_name(t.name)
                .with_partitions(partitions),
        );
    }
    DeleteRecordsResponse::default().with_topics(topics)
}
