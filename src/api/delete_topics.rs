//! DeleteTopics: by name (v0-5) or by name or id (v6+).

use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::{DeleteTopicsRequest, DeleteTopicsResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use uuid::Uuid;

use super::{Dispatcher, RequestContext};
use crate::controller::{ControllerError, TopicRef};

pub async fn handle(
    d: &Dispatcher,
    _ctx: &RequestContext<'_>,
    version: i16,
    req: DeleteTopicsRequest,
) -> DeleteTopicsResponse {
    let refs: Vec<TopicRef> = if version >= 6 {
        req.topics
            .iter()
            .map(|t| match &t.name {
                Some(n) => TopicRef::Name(n.to_string()),
                None => TopicRef::Id(t.topic_id),
            })
            .collect()
    } else {
        req.topic_names
            .iter()
            .map(|n| TopicRef::Name(n.to_string()))
            .collect()
    };
    let results = match d.controller.delete_topics(refs.clone()).await {
        Ok(r) => r,
        Err(e) => refs.iter().map(|_| Err(e.clone())).collect(),
    };
    let responses = refs
        .into_iter()
        .zip(results)
        .map(|(r, result)| {
            let (name, id) = match &r {
                TopicRef::Name(n) => (Some(n.clone()), Uuid::nil()),
                TopicRef::Id(id) => (None, *id),
            };
            let out = DeletableTopicResult::default();
            match result {
                Ok((name, id)) => out
                    .with_name(Some(TopicName(StrBytes::from_string(name))))
                    .with_topic_id(id),
                Err(e) => error_result(out, name, id, e),
            }
        })
        .collect();
    DeleteTopicsResponse::default().with_responses(responses)
}

fn error_result(
    out: DeletableTopicResult,
    name: Option<String>,
    id: Uuid,
    e: ControllerError,
) -> DeletableTopicResult {
    out.with_name(name.map(|n| TopicName(StrBytes::from_string(n))))
        .with_topic_id(id)
        .with_error_code(e.code())
        .with_error_message(Some(StrBytes::from_string(e.to_string())))
}
