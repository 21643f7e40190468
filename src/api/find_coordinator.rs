//! FindCoordinator: the broker leading a group's `__consumer_offsets` partition (one key, or a
//! batch from v4). Transaction coordinators are not served yet.

use kafka_protocol::ResponseError;
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::{FindCoordinatorRequest, FindCoordinatorResponse};
use kafka_protocol::protocol::StrBytes;

use super::{Dispatcher, RequestContext};

const KEY_TYPE_GROUP: i8 = 0;
const FIRST_BATCHED_VERSION: i16 = 4;

async fn lookup(d: &Dispatcher, ctx: &RequestContext<'_>, key: &str, key_type: i8) -> Coordinator {
    let out = Coordinator::default()
        .with_key(StrBytes::from_string(key.to_string()))
        .with_node_id((-1).into())
        .with_error_message(None);
    if key_type != KEY_TYPE_GROUP {
        return out
            .with_error_code(ResponseError::CoordinatorNotAvailable.code())
            .with_error_message(Some(StrBytes::from_static_str(
                "kraftd has no transaction coordinator yet",
            )));
    }
    let node = match d.groups.find_coordinator(key).await {
        Ok(node) => node,
        Err(e) => return out.with_error_code(e.code()),
    };
    let image = d.metadata.current();
    let endpoint = image
        .brokers
        .get(&node)
        .filter(|b| !b.fenced)
        .and_then(|b| b.endpoints.iter().find(|e| e.name == ctx.listener_name));
    match endpoint {
        Some(ep) => out
            .with_node_id(node.into())
            .with_host(StrBytes::from_string(ep.host.clone()))
            .with_port(ep.port as i32),
        None => out.with_error_code(ResponseError::CoordinatorNotAvailable.code()),
    }
}

pub async fn handle(
    d: &Dispatcher,
    ctx: &RequestContext<'_>,
    version: i16,
    req: FindCoordinatorRequest,
) -> FindCoordinatorResponse {
    if version >= FIRST_BATCHED_VERSION {
        let mut coordinators = Vec::with_capacity(req.coordinator_keys.len());
        for key in &req.coordinator_keys {
            coordinators.push(lookup(d, ctx, key.as_str(), req.key_type).await);
        }
        return FindCoordinatorResponse::default()
            .with_error_message(None)
            .with_coordinators(coordinators);
    }
    let c = lookup(d, ctx, req.key.as_str(), req.key_type).await;
    FindCoordinatorResponse::default()
        .with_error_code(c.error_code)
        .with_error_message(if version >= 1 { c.error_message } else { None })
        .with_node_id(c.node_id)
        .with_host(c.host)
        .with_port(c.port)
}
