//! EndQuorumEpoch (KIP-595): a resigning leader asks this voter to start an election now.

use kafka_protocol::messages::{EndQuorumEpochRequest, EndQuorumEpochResponse};

use super::vote::{INVALID_REQUEST, UNKNOWN_SERVER_ERROR, same_cluster};
use super::{Dispatcher, RequestContext};
use crate::raft::core::{Request, Response};
use crate::raft::rpc;

pub async fn handle(
    d: &Dispatcher,
    _ctx: &RequestContext<'_>,
    _version: i16,
    req: EndQuorumEpochRequest,
) -> EndQuorumEpochResponse {
    if !same_cluster(d, req.cluster_id.as_deref()) {
        return EndQuorumEpochResponse::default().with_error_code(rpc::INCONSISTENT_CLUSTER_ID);
    }
    let Ok(end) = rpc::end_epoch_request_from(&req) else {
        return EndQuorumEpochResponse::default().with_error_code(INVALID_REQUEST);
    };
    match d
        .raft
        .handle_request(end.leader_id, Request::EndEpoch(end))
        .await
    {
        Ok(Response::EndEpoch(r)) => rpc::end_epoch_response(&r),
        _ => EndQuorumEpochResponse::default().with_error_code(UNKNOWN_SERVER_ERROR),
    }
}
