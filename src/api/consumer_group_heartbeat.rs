//! ConsumerGroupHeartbeat (KIP-848): join, stay, reconcile and leave a consumer group whose
//! assignment the coordinator computes.

use kafka_protocol::ResponseError;
use kafka_protocol::messages::consumer_group_heartbeat_response::{Assignment, TopicPartitions};
use kafka_protocol::messages::{ConsumerGroupHeartbeatRequest, ConsumerGroupHeartbeatResponse};
use kafka_protocol::protocol::StrBytes;

use super::{Dispatcher, RequestContext};
use crate::group::consumer::{self, HeartbeatRequest};

/// From v1 the client picks its member id (KIP-1082); v0 members get one from the coordinator.
const CLIENT_MEMBER_ID_VERSION: i16 = 1;

pub async fn handle(
    d: &Dispatcher,
    ctx: &RequestContext<'_>,
    version: i16,
    req: ConsumerGroupHeartbeatRequest,
) -> ConsumerGroupHeartbeatResponse {
    let error = |e: ResponseError, msg: String| {
        ConsumerGroupHeartbeatResponse::default()
            .with_error_code(e.code())
            .with_error_message(Some(StrBytes::from_string(msg)))
            .with_member_id(None)
            .with_assignment(None)
    };
    let mut member_id = req.member_id.to_string();
    if member_id.is_empty() {
        if version >= CLIENT_MEMBER_ID_VERSION || req.member_epoch != 0 {
            return error(
                ResponseError::InvalidRequest,
                "MemberId can't be empty.".into(),
            );
        }
        member_id = uuid::Uuid::new_v4().to_string();
    }
    let owned = req.topic_partitions.map(|tps| {
        tps.into_iter()
            .map(|tp| (tp.topic_id, tp.partitions.into_iter().collect()))
            .collect::<consumer::Assignment>()
    });
    let hb = HeartbeatRequest {
        member_id,
        member_epoch: req.member_epoch,
        instance_id: req.instance_id.map(|s| s.to_string()),
        rack_id: req.rack_id.map(|s| s.to_string()),
        rebalance_timeout_ms: req.rebalance_timeout_ms,
        subscribed_topic_names: req
            .subscribed_topic_names
            .map(|ns| ns.into_iter().map(|n| n.to_string()).collect()),
        server_assignor: req.server_assignor.map(|s| s.to_string()),
        owned,
        client_id: ctx.client_id.clone(),
        client_host: format!("/{}", ctx.peer.ip()),
    };
    match d.groups.consumer_heartbeat(req.group_id.as_str(), hb).await {
        Err((e, msg)) => error(e, msg),
        Ok(r) => ConsumerGroupHeartbeatResponse::default()
            .with_error_message(None)
            .with_member_id(Some(StrBytes::from_string(r.member_id)))
            .with_member_epoch(r.member_epoch)
            .with_heartbeat_interval_ms(d.groups.consumer_heartbeat_interval_ms())
            .with_assignment(r.assignment.map(|a| {
                Assignment::default().with_topic_partitions(
                    a.into_iter()
                        .map(|(id, ps)| {
                            TopicPartitions::default()
                                .with_topic_id(id)
                                .with_partitions(ps.into_iter().collect())
                        })
                        .collect(),
                )
            })),
    }
}
