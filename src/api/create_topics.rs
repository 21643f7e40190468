//! CreateTopics: validated and committed by the controller; validate_only checks without writing.

use std::collections::BTreeMap;

use kafka_protocol::messages::create_topics_response::CreatableTopicResult;
use kafka_protocol::messages::{CreateTopicsRequest, CreateTopicsResponse};
use kafka_protocol::protocol::StrBytes;

use super::{Dispatcher, RequestContext};
use crate::controller::NewTopic;

pub async fn handle(
    d: &Dispatcher,
    _ctx: &RequestContext<'_>,
    _version: i16,
    req: CreateTopicsRequest,
) -> CreateTopicsResponse {
    let names: Vec<_> = req.topics.iter().map(|t| t.name.clone()).collect();
    let topics: Vec<NewTopic> = req
        .topics
        .into_iter()
        .map(|t| NewTopic {
            name: t.name.to_string(),
            num_partitions: t.num_partitions,
            replication_factor: t.replication_factor,
            assignments: t
                .assignments
                .into_iter()
                .map(|a| {
                    (
                        a.partition_index,
                        a.broker_ids.into_iter().map(|b| b.0).collect(),
                    )
                })
                .collect::<BTreeMap<_, _>>(),
            configs: t
                .configs
                .into_iter()
                .map(|c| (c.name.to_string(), c.value.map(|v| v.to_string())))
                .collect(),
        })
        .collect();
    let results = match d.controller.create_topics(topics, req.validate_only).await {
        Ok(r) => r,
        Err(e) => names.iter().map(|_| Err(e.clone())).collect(),
    };
    let topics = names
        .into_iter()
        .zip(results)
        .map(|(name, r)| {
            let out = CreatableTopicResult::default()
                .with_name(name)
                .with_error_message(None);
            match r {
                Ok(created) => out
                    .with_topic_id(created.topic_id)
                    .with_num_partitions(created.num_partitions)
                    .with_replication_factor(created.replication_factor),
                Err(e) => out
                    .with_error_code(e.code())
                    .with_error_message(Some(StrBytes::from_string(e.to_string())))
                    .with_num_partitions(-1)
                    .with_replication_factor(-1),
            }
        })
        .collect();
    CreateTopicsResponse::default().with_topics(topics)
}
