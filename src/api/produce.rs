//! Produce: validate each partition's batch (CRC, size, sequence) and append it as sent.

use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse};
use kafka_protocol::protocol::StrBytes;

use super::{Dispatcher, RequestContext};
use crate::broker::BrokerError;

/// Topics are named by id from v13 (KIP-516).
const FIRST_TOPIC_ID_VERSION: i16 = 13;

pub async fn handle(
    d: &Dispatcher,
    _ctx: &RequestContext<'_>,
    version: i16,
    req: ProduceRequest,
) -> Produced {
    let acks = req.acks;
    let image = d.metadata.current();
    let mut responses = Vec::with_capacity(req.topic_data.len());
    let mut appended = false;
    for topic in req.topic_data {
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
            .map(|p| {
                let result = (|| {
                    if !matches!(acks, -1..=1) {
                        return Err(BrokerError::InvalidRequiredAcks);
                    }
                    let Some(name) = name.as_deref() else {
                        return Err(BrokerError::UnknownTopicId);
                    };
                    let partition = d.broker.leader_partition(&image, name, p.index)?;
                    let records = p.records.unwrap_or_default();
                    partition.append_records_as_leader(&records, max_message_bytes)
                })();
                let resp = PartitionProduceResponse::default()
                    .with_index(p.index)
                    .with_log_append_time_ms(-1)
                    .with_log_start_offset(-1)
                    .with_base_offset(-1);
                match result {
                    Ok(r) => {
                        appended = true;
                        resp.with_base_offset(r.base_offset)
                            .with_log_append_time_ms(r.log_append_time)
                            .with_log_start_offset(r.log_start_offset)
                    }
                    Err(e) => resp
                        .with_error_code(e.code())
                        .with_error_message(Some(StrBytes::from_string(e.to_string()))),
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
    Produced::Respond(ProduceResponse::default().with_responses(responses))
}

pub enum Produced {
    Respond(ProduceResponse),
    /// acks=0 and everything was appended.
    NoResponse,
    /// acks=0 and some partition failed.
    FailedWithoutResponse,
}
