//! AlterConfigs (legacy): the request replaces a topic's whole set of overrides.

use kafka_protocol::messages::alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::{AlterConfigsRequest, AlterConfigsResponse};
use kafka_protocol::protocol::StrBytes;

use super::{Dispatcher, RequestContext};
use crate::controller::{AlterConfigResource, ConfigOp};

pub async fn handle(
    d: &Dispatcher,
    _ctx: &RequestContext<'_>,
    _version: i16,
    req: AlterConfigsRequest,
) -> AlterConfigsResponse {
    let resources: Vec<AlterConfigResource> = req
        .resources
        .iter()
        .map(|r| AlterConfigResource {
            resource_type: r.resource_type,
            resource_name: r.resource_name.to_string(),
            ops: r
                .configs
                .iter()
                .map(|c| {
                    (
                        c.name.to_string(),
                        ConfigOp::Set,
                        c.value.as_ref().map(|v| v.to_string()),
                    )
                })
                .collect(),
            replace_all: true,
        })
        .collect();
    let results = match d
        .controller
        .alter_configs(resources.clone(), req.validate_only)
        .await
    {
        Ok(r) => r,
        Err(e) => resources.iter().map(|_| Err(e.clone())).collect(),
    };
    let responses = req
        .resources
        .into_iter()
        .zip(results)
        .map(|(r, result)| {
            let out = AlterConfigsResourceResponse::default()
                .with_resource_type(r.resource_type)
                .with_resource_name(r.resource_name)
                .with_error_message(None);
            match result {
                Ok(()) => out,
                Err(e) => out
                    .with_error_code(e.code())
                    .with_error_message(Some(StrBytes::from_string(e.to_string()))),
            }
        })
        .collect();
    AlterConfigsResponse::default().with_responses(responses)
}
