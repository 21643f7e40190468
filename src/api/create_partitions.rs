//! CreatePartitions: add partitions to existing topics.

use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::{CreatePartitionsRequest, CreatePartitionsResponse};
use kafka_protocol::protocol::StrBytes;

use super::{Dispatcher, RequestContext};
use crate::controller::NewPartitions;

pub async fn handle(
    d: &Dispatcher,
    _ctx: &RequestContext<'_>,
    _version: i16,
    req: CreatePartitionsRequest,
) -> CreatePartitionsResponse {
    let names: Vec<_> = req.topics.iter().map(|t| t.name.clone()).collect();
    let topics = req
        .topics
        .into_iter()
        .map(|t| NewPartitions {
            name: t.name.to_string(),
            count: t.count,
            assignments: t.assignments.map(|a| {
                a.into_iter()
                    .map(|a| a.broker_ids.into_iter().map(|b| b.0).collect())
                    .collect()
            }),
        })
        .collect();
    let results = match d
        .controller
        .create_partitions(topics, req.validate_only)
        .await
    {
        Ok(r) => r,
        Err(e) => names.iter().map(|_| Err(e.clone())).collect(),
    };
    let results = names
        .into_iter()
        .zip(results)
        .map(|(name, r)| {
            let out = CreatePartitionsTopicResult::default().with_name(name);
            match r {
                Ok(()) => out,
                Err(e) => out
                    .with_error_code(e.code())
                    .with_error_message(Some(StrBytes::from_string(e.to_string()))),
            }
        })
        .collect();
    CreatePartitionsResponse::default().with_results(results)
}
