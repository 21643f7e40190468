//! BeginQuorumEpoch (KIP-595): a newly elected leader tells this voter it leads the epoch.

use kafka_protocol::messages::{BeginQuorumEpochRequest, BeginQuorumEpochResponse};

use super::vote::{INVALID_REQUEST, UNKNOWN_SERVER_ERROR, same_cluster};
use super::{Dispatcher, RequestContext};
use crate::raft::core::{Request, Response};
use crate::raft::rpc;

pub async fn handle(
    d: &Dispatcher,
    _ctx: &RequestContext<'_>,
    _version: i16,
    req: BeginQuorumEpochRequest,
) -> BeginQuorumEpochResponse {
    if !same_cluster(d, req.cluster_id.as_deref()) {
        return BeginQuorumEpochResponse::default().with_error_code(rpc::INCONSISTENT_CLUSTER_ID);
    }
    let Ok(begin) = rpc::begin_epoch_request_from(&req) else {
        return BeginQuorumEpochResponse::default().with_error_code(INVALID_REQUEST);
    };
    let endpoints = rpc::begin_epoch_leader_endpoints(&req);
    match d
        .raft
        .handle_request_with_endpoints(begin.leader_id, Request::BeginEpoch(begin), endpoints)
        .await
    {
        Ok(Response::BeginEpoch(r)) => rpc::begin_epoch_response(&r),
        _ => BeginQuorumEpochResponse::default().with_error_code(UNKNOWN_SERVER_ERROR),
    }
}
