//! UpdateRaftVoter (KIP-853): a voter tells the leader its current controller endpoints (and
//! the kraft.version range it supports), e.g. after it restarted with new listeners. Served on
//! the CONTROLLER listener by the leader of the request's epoch; the Raft driver decides. The
//! answer names the current leader and its address on the listener the request came in on, so
//! a voter that asked the wrong node learns where to go.

use kafka_protocol::messages::update_raft_voter_response::CurrentLeader;
use kafka_protocol::messages::{UpdateRaftVoterRequest, UpdateRaftVoterResponse};
use kafka_protocol::protocol::StrBytes;
use tracing::info;

use super::add_raft_voter::voter_spec;
use super::vote::{INVALID_REQUEST, same_cluster};
use super::{Dispatcher, RequestContext};
use crate::raft::driver::LeaderAndEpoch;
use crate::raft::rpc;
use crate::raft::snapshot::VoterSpec;

const NOT_LEADER_OR_FOLLOWER: i16 = 6;
const FENCED_LEADER_EPOCH: i16 = 74;
const UNKNOWN_LEADER_EPOCH: i16 = 75;

pub async fn handle(
    d: &Dispatcher,
    ctx: &RequestContext<'_>,
    _version: i16,
    req: UpdateRaftVoterRequest,
) -> UpdateRaftVoterResponse {
    let leader = *d.raft.leader().borrow();
    let answer = |code: i16| {
        let voters = d.raft.voters().borrow().clone();
        UpdateRaftVoterResponse::default()
            .with_error_code(code)
            .with_current_leader(current_leader(leader, &voters, ctx.listener_name))
    };
    let refuse = |code: i16, why: String| {
        // The response has no error message; the log says why.
        info!(peer = %ctx.peer, voter = req.voter_id, code, "UpdateRaftVoter refused: {why}");
        answer(code)
    };
    if !same_cluster(d, req.cluster_id.as_deref()) {
        return refuse(
            rpc::INCONSISTENT_CLUSTER_ID,
            super::add_raft_voter::other_cluster(req.cluster_id.as_deref(), &d.cluster_id),
        );
    }
    if let Some((code, why)) = leader_only(leader, d.node_id, req.current_leader_epoch) {
        return refuse(code, why);
    }
    let listeners = req
        .listeners
        .iter()
        .map(|l| (l.name.as_str(), l.host.as_str(), l.port));
    let voter = match voter_spec(req.voter_id, req.voter_directory_id, listeners) {
        Ok(v) => v,
        Err(why) => return refuse(INVALID_REQUEST, why),
    };
    let kraft = &req.k_raft_version_feature;
    if kraft.min_supported_version < 0 || kraft.max_supported_version < kraft.min_supported_version
    {
        return refuse(
            INVALID_REQUEST,
            format!(
                "kraft.version range {}..={} is not a range",
                kraft.min_supported_version, kraft.max_supported_version
            ),
        );
    }
    match d.raft.update_voter(voter).await {
        Ok(()) => answer(0),
        Err(e) => refuse(e.code(), e.to_string()),
    }
}

/// Kafka's check for requests only the leader of their epoch serves: an older epoch is fenced,
/// a newer one not known yet, and a node that does not lead this epoch says so.
fn leader_only(leader: LeaderAndEpoch, node_id: i32, epoch: i32) -> Option<(i16, String)> {
    if epoch < leader.epoch {
        Some((
            FENCED_LEADER_EPOCH,
            format!("epoch {epoch} is older than this node's {}", leader.epoch),
        ))
    } else if epoch > leader.epoch {
        Some((
            UNKNOWN_LEADER_EPOCH,
            format!("epoch {epoch} is newer than this node's {}", leader.epoch),
        ))
    } else if leader.leader_id != Some(node_id) {
        Some((
            NOT_LEADER_OR_FOLLOWER,
            format!("node {node_id} does not lead epoch {epoch}"),
        ))
    } else {
        None
    }
}

/// The leader and, when the voter set knows it, its endpoint on `listener` (the one the request
/// came in on, so the asker can reach it the same way). Unknown parts stay Kafka's defaults.
fn current_leader(leader: LeaderAndEpoch, voters: &[VoterSpec], listener: &str) -> CurrentLeader {
    let out = CurrentLeader::default()
        .with_leader_id(leader.leader_id.unwrap_or(-1).into())
        .with_leader_epoch(leader.epoch);
    let endpoint = leader.leader_id.and_then(|id| {
        voters
            .iter()
            .find(|v| v.id == id)?
            .endpoints
            .iter()
            .find(|(name, _, _)| name == listener)
    });
    match endpoint {
        Some((_, host, port)) => out
            .with_host(StrBytes::from_string(host.clone()))
            .with_port(i32::from(*port)),
        None => out,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leads(leader_id: Option<i32>, epoch: i32) -> LeaderAndEpoch {
        LeaderAndEpoch { leader_id, epoch }
    }

    #[test]
    fn only_the_leader_of_the_requests_epoch_serves_it() {
        assert_eq!(leader_only(leads(Some(1), 5), 1, 5), None);
        let code = |l, node, e| leader_only(l, node, e).map(|(c, _)| c);
        assert_eq!(code(leads(Some(1), 5), 1, 4), Some(FENCED_LEADER_EPOCH));
        assert_eq!(code(leads(Some(1), 5), 1, 6), Some(UNKNOWN_LEADER_EPOCH));
        assert_eq!(code(leads(Some(2), 5), 1, 5), Some(NOT_LEADER_OR_FOLLOWER));
        assert_eq!(code(leads(None, 5), 1, 5), Some(NOT_LEADER_OR_FOLLOWER));
    }

    #[test]
    fn the_answer_names_the_leader_at_the_requests_listener() {
        let voters = vec![
            VoterSpec {
                id: 1,
                directory_id: uuid::Uuid::from_u128(1),
                endpoints: vec![("CONTROLLER".into(), "ctrl1".into(), 9093)],
            },
            VoterSpec {
                id: 2,
                directory_id: uuid::Uuid::from_u128(2),
                endpoints: vec![
                    ("SSL_CTRL".into(), "ctrl2".into(), 9193),
                    ("CONTROLLER".into(), "ctrl2".into(), 9093),
                ],
            },
        ];
        let l = current_leader(leads(Some(2), 7), &voters, "CONTROLLER");
        assert_eq!(
            (l.leader_id.0, l.leader_epoch, l.host.as_str(), l.port),
            (2, 7, "ctrl2", 9093)
        );
        // Unknown leader, or no endpoint on that listener: id/epoch only.
        let l = current_leader(leads(None, 7), &voters, "CONTROLLER");
        assert_eq!((l.leader_id.0, l.host.as_str()), (-1, ""));
        let l = current_leader(leads(Some(1), 7), &voters, "SSL_CTRL");
        assert_eq!((l.leader_id.0, l.host.as_str(), l.port), (1, "", 0));
    }
}
