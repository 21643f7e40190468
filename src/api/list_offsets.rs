//! ListOffsets: earliest, latest, by timestamp and max timestamp (KIP-734).

use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};

use super::{Dispatcher, RequestContext};
use crate::broker::BrokerError;

const LATEST: i64 = -1;
const EARLIEST: i64 = -2;
const MAX_TIMESTAMP: i64 = -3;
const EARLIEST_LOCAL: i64 = -4;

pub async fn handle(
    d: &Dispatcher,
    _ctx: &RequestContext<'_>,
    version: i16,
    req: ListOffsetsRequest,
) -> ListOffsetsResponse {
    let image = d.metadata.current();
    // A follower asking its leader (replica id >= 0) learns the log end, not the high
    // watermark, as in Kafka: it needs the leader's whole log to truncate against.
    let from_replica = req.replica_id.0 >= 0;
    let topics = req
        .topics
        .into_iter()
        .map(|topic| {
            let partitions = topic
                .partitions
                .iter()
                .map(|p| {
                    let result = (|| {
                        let partition = d.broker.leader_partition(
                            &image,
                            topic.name.as_str(),
                            p.partition_index,
                        )?;
                        partition.check_current_leader_epoch(p.current_leader_epoch)?;
                        let (timestamp, offset) = match p.timestamp {
                            LATEST if from_replica => (-1, partition.log_end_offset()),
                            LATEST => (-1, partition.high_watermark()),
                            EARLIEST | EARLIEST_LOCAL => (-1, partition.log_start_offset()),
                            MAX_TIMESTAMP => partition.max_timestamp()?,
                            ts if ts >= 0 => partition
                                .offset_for_timestamp(ts)?
                                .map(|(offset, ts)| (ts, offset))
                                .unwrap_or((-1, -1)),
                            _ => (-1, -1),
                        };
                        Ok::<_, BrokerError>((timestamp, offset, partition.leader_epoch()))
                    })();
                    let resp = ListOffsetsPartitionResponse::default()
                        .with_partition_index(p.partition_index);
                    match result {
                        Ok((timestamp, offset, epoch)) => resp
                            .with_timestamp(timestamp)
                            .with_offset(offset)
                            // The field exists from v4; older clients (kcat 1.7 / librdkafka
                            // 2.0) ask with v2.
                            .with_leader_epoch(if version >= 4 { epoch } else { -1 }),
                        Err(e) => resp
                            .with_error_code(e.code())
                            .with_timestamp(-1)
                            .with_offset(-1)
                            .with_leader_epoch(-1),
                    }
                })
                .collect();
            ListOffsetsTopicResponse::default()
                .with_name(topic.name)
                .with_partitions(partitions)
        })
        .collect();
    ListOffsetsResponse::default().with_topics(topics)
}
