//! RemoveRaftVoter (KIP-853): `kraftd quorum remove-voter` (`kafka-metadata-quorum.sh
//! remove-controller`) asks the leader to drop a voter, named by its id and directory id. Served
//! on the CONTROLLER listener; the Raft driver decides and answers once the smaller voter set is
//! committed (a removed leader resigns afterwards).

use kafka_protocol::messages::{RemoveRaftVoterRequest, RemoveRaftVoterResponse};
use kafka_protocol::protocol::StrBytes;

use super::add_raft_voter::other_cluster;
use super::vote::{INVALID_REQUEST, same_cluster};
use super::{Dispatcher, RequestContext};
use crate::raft::rpc;

pub async fn handle(
    d: &Dispatcher,
    _ctx: &RequestContext<'_>,
    _version: i16,
    req: RemoveRaftVoterRequest,
) -> RemoveRaftVoterResponse {
    if !same_cluster(d, req.cluster_id.as_deref()) {
        return refused(
            rpc::INCONSISTENT_CLUSTER_ID,
            other_cluster(req.cluster_id.as_deref(), &d.cluster_id),
        );
    }
    if let Err(why) = voter_key(req.voter_id) {
        return refused(INVALID_REQUEST, format!("RemoveRaftVoter: {why}"));
    }
    match d
        .raft
        .remove_voter(req.voter_id, req.voter_directory_id)
        .await
    {
        Ok(()) => RemoveRaftVoterResponse::default(),
        Err(e) => refused(e.code(), e.to_string()),
    }
}

fn refused(code: i16, message: String) -> RemoveRaftVoterResponse {
    RemoveRaftVoterResponse::default()
        .with_error_code(code)
        .with_error_message(Some(StrBytes::from_string(message)))
}

/// A voter is named by its id and, as Kafka's ReplicaKey, the directory id DescribeQuorum
/// reports for it; that is the zero uuid for a voter of a static quorum (controller.quorum.voters),
/// which the driver accepts only for such a voter.
fn voter_key(voter_id: i32) -> Result<(), String> {
    if voter_id < 0 {
        return Err(format!("voter id {voter_id} is negative"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_voter_is_named_by_a_valid_id() {
        assert_eq!(voter_key(3), Ok(()));
        assert!(voter_key(-1).expect_err("negative").contains("negative"));
    }
}
