//! IncrementalAlterConfigs: SET / DELETE / APPEND / SUBTRACT per key, validated by the
//! controller and applied live.

use kafka_protocol::messages::incremental_alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::{IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse};
use kafka_protocol::protocol::StrBytes;

use super::{Dispatcher, RequestContext};
use crate::controller::{AlterConfigResource, ConfigOp, ControllerError};

pub async fn handle(
    d: &Dispatcher,
    _ctx: &RequestContext<'_>,
    _version: i16,
    req: IncrementalAlterConfigsRequest,
) -> IncrementalAlterConfigsResponse {
    let keys: Vec<(i8, StrBytes)> = req
        .resources
        .iter()
        .map(|r| (r.resource_type, r.resource_name.clone()))
        .collect();
    let mut parsed = Vec::new();
    let mut early: Vec<Option<ControllerError>> = Vec::new();
    for r in req.resources {
        let ops: Result<Vec<_>, ControllerError> = r
            .configs
            .into_iter()
            .map(|c| {
                let op = ConfigOp::from_code(c.config_operation).ok_or_else(|| {
                    ControllerError::InvalidRequest(format!(
                        "Unknown config operation {} for {}",
                        c.config_operation, c.name
                    ))
                })?;
                Ok((c.name.to_string(), op, c.value.map(|v| v.to_string())))
            })
            .collect();
        match ops {
            Ok(ops) => {
                parsed.push(AlterConfigResource {
                    resource_type: r.resource_type,
                    resource_name: r.resource_name.to_string(),
                    ops,
                    replace_all: false,
                });
                early.push(None);
            }
            Err(e) => early.push(Some(e)),
        }
    }
    let mut results = match d
        .controller
        .alter_configs(parsed.clone(), req.validate_only)
        .await
    {
        Ok(r) => r,
        Err(e) => parsed.iter().map(|_| Err(e.clone())).collect(),
    }
    .into_iter();
    let responses = keys
        .into_iter()
        .zip(early)
        .map(|((ty, name), early)| {
            let result = match early {
                Some(e) => Err(e),
                None => results
                    .next()
                    .unwrap_or(Err(ControllerError::NotController)),
            };
            let out = AlterConfigsResourceResponse::default()
                .with_resource_type(ty)
                .with_resource_name(name)
                .with_error_message(None);
            match result {
                Ok(()) => out,
                Err(e) => out
                    .with_error_code(e.code())
                    .with_error_message(Some(StrBytes::from_string(e.to_string()))),
            }
        })
        .collect();
    IncrementalAlterConfigsResponse::default().with_responses(responses)
}
