//! DescribeConfigs for topics and this broker, with sources and synonyms as Kafka reports them.

use kafka_protocol::ResponseError;
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult, DescribeConfigsSynonym,
};
use kafka_protocol::messages::{DescribeConfigsRequest, DescribeConfigsResponse};
use kafka_protocol::protocol::StrBytes;

use super::{Dispatcher, RequestContext};
use crate::config::topic::{DescribedConfig, describe_broker_configs, describe_topic_configs};
use crate::metadata::records::config_resource_type;

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

pub async fn handle(
    d: &Dispatcher,
    _ctx: &RequestContext<'_>,
    _version: i16,
    req: DescribeConfigsRequest,
) -> DescribeConfigsResponse {
    let image = d.metadata.current();
    let results = req
        .resources
        .into_iter()
        .map(|r| {
            let out = DescribeConfigsResult::default()
                .with_resource_type(r.resource_type)
                .with_resource_name(r.resource_name.clone())
                .with_error_message(None);
            let name = r.resource_name.as_str();
            let described: Result<Vec<DescribedConfig>, (ResponseError, String)> = match r
                .resource_type
            {
                config_resource_type::TOPIC => match image.topic(name) {
                    Some(_) => Ok(describe_topic_configs(
                        &image.topic_configs(name),
                        &d.config,
                        req.include_synonyms,
                    )),
                    None => Err((
                        ResponseError::UnknownTopicOrPartition,
                        format!("Topic {name} does not exist"),
                    )),
                },
                config_resource_type::BROKER
                    if name.is_empty() || name == d.node_id.to_string() =>
                {
                    Ok(describe_broker_configs(&d.config, req.include_synonyms))
                }
                config_resource_type::BROKER => Err((
                    ResponseError::InvalidRequest,
                    format!(
                        "Unexpected broker id, expected {} or empty string, but received {name}",
                        d.node_id
                    ),
                )),
                other => Err((
                    ResponseError::InvalidRequest,
                    format!("Unsupported resource type {other}"),
                )),
            };
            match described {
                Ok(configs) => {
                    // Null or empty both mean every key, as in Kafka's ConfigHelper.
                    let wanted = r.configuration_keys.as_ref().filter(|k| !k.is_empty());
                    out.with_configs(
                        configs
                            .into_iter()
                            .filter(|c| {
                                wanted.is_none_or(|keys| keys.iter().any(|k| k.as_str() == c.name))
                            })
                            .map(|c| entry(c, req.include_documentation))
                            .collect(),
                    )
                }
                Err((error, message)) => out
                    .with_error_code(error.code())
                    .with_error_message(Some(s(&message))),
            }
        })
        .collect();
    DescribeConfigsResponse::default().with_results(results)
}

fn entry(c: DescribedConfig, include_documentation: bool) -> DescribeConfigsResourceResult {
    DescribeConfigsResourceResult::default()
        .with_name(s(&c.name))
        .with_value(if c.is_sensitive {
            None
        } else {
            c.value.as_deref().map(s)
        })
        .with_read_only(c.read_only)
        .with_config_source(c.source.code())
        .with_is_sensitive(c.is_sensitive)
        .with_config_type(c.config_type.code())
        .with_documentation(if include_documentation {
            c.documentation.as_deref().map(s)
        } else {
            None
        })
        .with_synonyms(
            c.synonyms
                .into_iter()
                .map(|syn| {
                    DescribeConfigsSynonym::default()
                        .with_name(s(&syn.name))
                        .with_value(syn.value.as_deref().map(s))
                        .with_source(syn.source.code())
                })
                .collect(),
        )
}
