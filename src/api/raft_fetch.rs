//! Fetch on the CONTROLLER listener: followers and observers pull the metadata log from the
//! Raft leader (KIP-595). The core validates the position (divergence, snapshot); the driver
//! reads the records and holds an empty answer up to the fetcher's max wait.

use kafka_protocol::messages::{FetchRequest, FetchResponse};

use super::vote::{INVALID_REQUEST, UNKNOWN_SERVER_ERROR, same_cluster};
use super::{Dispatcher, RequestContext};
use crate::raft::rpc;

pub async fn handle(
    d: &Dispatcher,
    _ctx: &RequestContext<'_>,
    version: i16,
    req: FetchRequest,
) -> FetchResponse {
    if !same_cluster(d, req.cluster_id.as_deref()) {
        return FetchResponse::default().with_error_code(rpc::INCONSISTENT_CLUSTER_ID);
    }
    let Ok((fetch, max_wait_ms)) = rpc::fetch_request_from(&req, version) else {
        return FetchResponse::default().with_error_code(INVALID_REQUEST);
    };
    match d.raft.handle_fetch(fetch, max_wait_ms).await {
        Ok((response, records)) => {
            let answer = rpc::fetch_response(&response, records);
            // Name where the leader listens: an observer that asked a bootstrap server, or a
            // voter that joined after the leader, may not know it (KIP-853).
            // This node's own endpoint when it leads: the voter set may still hold an old one.
            let leader = response.leader_id.and_then(|id| {
                if id == d.node_id {
                    let l = d.config.advertised_controller_listeners.first()?;
                    Some((
                        id,
                        l.host.clone().unwrap_or_else(|| "localhost".into()),
                        l.port,
                    ))
                } else {
                    d.raft
                        .voter_addresses()
                        .into_iter()
                        .find(|v| v.id == id)
                        .map(|v| (v.id, v.host, v.port))
                }
            });
            match leader {
                Some((id, host, port)) => rpc::with_leader_endpoint(answer, id, &host, port),
                None => answer,
            }
        }
        Err(_) => FetchResponse::default().with_error_code(UNKNOWN_SERVER_ERROR),
    }
}
