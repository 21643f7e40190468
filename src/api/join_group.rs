//! JoinGroup: the classic rebalance's join phase.

use std::time::Duration;

use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::{JoinGroupRequest, JoinGroupResponse};
use kafka_protocol::protocol::StrBytes;

use super::{Dispatcher, RequestContext};
use crate::group::classic::JoinRequest;

/// KIP-394: from v4 a new member is first handed its id.
const FIRST_MEMBER_ID_REQUIRED_VERSION: i16 = 4;

pub async fn handle(
    d: &Dispatcher,
    ctx: &RequestContext<'_>,
    version: i16,
    req: JoinGroupRequest,
) -> JoinGroupResponse {
    let rebalance_timeout = if req.rebalance_timeout_ms > 0 {
        req.rebalance_timeout_ms
    } else {
        // v0 has no rebalance timeout: Kafka uses the session timeout.
        req.session_timeout_ms
    };
    let join = JoinRequest {
        member_id: req.member_id.to_string(),
        group_instance_id: req.group_instance_id.as_ref().map(|s| s.to_string()),
        client_id: ctx.client_id.clone(),
        client_host: format!("/{}", ctx.peer.ip()),
        session_timeout: Duration::from_millis(req.session_timeout_ms.max(0) as u64),
        rebalance_timeout: Duration::from_millis(rebalance_timeout.max(0) as u64),
        protocol_type: req.protocol_type.to_string(),
        protocols: req
            .protocols
            .iter()
            .map(|p| (p.name.to_string(), p.metadata.clone()))
            .collect(),
        require_known_member_id: version >= FIRST_MEMBER_ID_REQUIRED_VERSION,
    };
    let r = d.groups.join(req.group_id.as_str(), join).await;
    let resp = JoinGroupResponse::default()
        .with_error_code(r.error)
        .with_generation_id(r.generation_id)
        .with_leader(StrBytes::from_string(r.leader))
        .with_member_id(StrBytes::from_string(r.member_id))
        .with_members(
            r.members
                .into_iter()
                .map(|(id, instance, metadata)| {
                    JoinGroupResponseMember::default()
                        .with_member_id(StrBytes::from_string(id))
                        .with_group_instance_id(if version >= 5 {
                            instance.map(StrBytes::from_string)
                        } else {
                            None
                        })
                        .with_metadata(metadata)
                })
                .collect(),
        );
    let named = |s: Option<String>| s.map(StrBytes::from_string);
    if version >= 7 {
        resp.with_protocol_type(named(r.protocol_type))
            .with_protocol_name(named(r.protocol_name))
    } else {
        // Before v7 the protocol name is a non-null string.
        resp.with_protocol_type(None)
            .with_protocol_name(Some(StrBytes::from_string(
                r.protocol_name.unwrap_or_default(),
            )))
    }
}
