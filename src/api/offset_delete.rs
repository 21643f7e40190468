//! OffsetDelete: removes a group's committed offsets for partitions no member is subscribed to.

use kafka_protocol::messages::offset_delete_response::{
    OffsetDeleteResponsePartition, OffsetDeleteResponseTopic,
};
use kafka_protocol::messages::{
    ConsumerProtocolSubscription, OffsetDeleteRequest, OffsetDeleteResponse,
};
use kafka_protocol::protocol::Decodable;

use super::{Dispatcher, RequestContext};

/// Whether a consumer-protocol subscription (any version Kafka clients send) names `topic`.
fn subscribed(metadata: &bytes::Bytes, topic: &str) -> bool {
    let mut buf = metadata.clone();
    if buf.len() < 2 {
        return false;
    }
    let version = i16::from_be_bytes([buf[0], buf[1]]);
    let _ = bytes::Buf::get_i16(&mut buf);
    ConsumerProtocolSubscription::decode(&mut buf, version.clamp(0, 3))
        .map(|s| s.topics.iter().any(|t| t.as_str() == topic))
        .unwrap_or(false)
}

pub async fn handle(
    d: &Dispatcher,
    _ctx: &RequestContext<'_>,
    _version: i16,
    req: OffsetDeleteRequest,
) -> OffsetDeleteResponse {
    let partitions: Vec<(String, i32)> = req
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .map(move |p| (t.name.to_string(), p.partition_index))
        })
        .collect();
    match d
        .groups
        .delete_offsets(req.group_id.as_str(), partitions, subscribed)
        .await
    {
        Err(e) => OffsetDeleteResponse::default().with_error_code(e.code()),
        Ok(codes) => {
            let mut codes = codes.into_iter();
            OffsetDeleteResponse::default().with_topics(
                req.topics
                    .into_iter()
                    .map(|t| {
                        OffsetDeleteResponseTopic::default()
                            .with_name(t.name)
                            .with_partitions(
                                t.partitions
                                    .iter()
                                    .map(|p| {
                                        OffsetDeleteResponsePartition::default()
                                            .with_partition_index(p.partition_index)
                                            .with_error_code(codes.next().unwrap_or(0))
                                    })
                                    .collect(),
                            )
                    })
                    .collect(),
            )
        }
    }
}
