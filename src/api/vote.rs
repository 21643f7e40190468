//! Vote (KIP-595, pre-vote KIP-996): a candidate asks this voter for its vote. Served on the
//! CONTROLLER listener; the Raft core decides.

use kafka_protocol::messages::{VoteRequest, VoteResponse};

use super::{Dispatcher, RequestContext};
use crate::raft::core::{Request, Response};
use crate::raft::rpc;

pub async fn handle(
    d: &Dispatcher,
    _ctx: &RequestContext<'_>,
    _version: i16,
    req: VoteRequest,
) -> VoteResponse {
    if !same_cluster(d, req.cluster_id.as_deref()) {
        return VoteResponse::default().with_error_code(rpc::INCONSISTENT_CLUSTER_ID);
    }
    let Ok(vote) = rpc::vote_request_from(&req) else {
        return VoteResponse::default().with_error_code(INVALID_REQUEST);
    };
    match d
        .raft
        .handle_request(vote.candidate_id, Request::Vote(vote))
        .await
    {
        Ok(Response::Vote(v)) => rpc::vote_response(&v),
        _ => VoteResponse::default().with_error_code(UNKNOWN_SERVER_ERROR),
    }
}

pub(super) const INVALID_REQUEST: i16 = 42;
pub(super) const UNKNOWN_SERVER_ERROR: i16 = -1;

/// Raft requests carry the cluster id; one from another cluster must not move our quorum.
pub(super) fn same_cluster(d: &Dispatcher, cluster_id: Option<&str>) -> bool {
    cluster_id.is_none_or(|c| c == d.cluster_id)
}
