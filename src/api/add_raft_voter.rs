//! AddRaftVoter (KIP-853): `kraftd quorum add-voter` (`kafka-metadata-quorum.sh add-controller`)
//! asks the leader to make a controller that fetches as an observer a voter. Served on the
//! CONTROLLER listener; the Raft driver decides and answers once the new voter set is committed.
//! This file turns the request into a `VoterSpec` and bounds the wait by the request's timeout;
//! it must not judge the voter set itself (only the driver knows it).

use std::time::Duration;

use kafka_protocol::messages::{AddRaftVoterRequest, AddRaftVoterResponse};
use kafka_protocol::protocol::StrBytes;

use super::vote::{INVALID_REQUEST, same_cluster};
use super::{Dispatcher, RequestContext};
use crate::log::meta_properties::kafka_uuid_string;
use crate::raft::rpc;
use crate::raft::snapshot::VoterSpec;

pub(super) const REQUEST_TIMED_OUT: i16 = 7;
/// A voter announces one endpoint per controller listener; more than this is not a real node.
pub(super) const MAX_LISTENERS_PER_VOTER: usize = 16;

pub async fn handle(
    d: &Dispatcher,
    _ctx: &RequestContext<'_>,
    _version: i16,
    req: AddRaftVoterRequest,
) -> AddRaftVoterResponse {
    if !same_cluster(d, req.cluster_id.as_deref()) {
        return refused(
            rpc::INCONSISTENT_CLUSTER_ID,
            other_cluster(req.cluster_id.as_deref(), &d.cluster_id),
        );
    }
    let listeners = req
        .listeners
        .iter()
        .map(|l| (l.name.as_str(), l.host.as_str(), l.port));
    let voter = match voter_spec(req.voter_id, req.voter_directory_id, listeners) {
        Ok(v) => v,
        Err(why) => return refused(INVALID_REQUEST, format!("AddRaftVoter: {why}")),
    };
    let Some(wait) = request_timeout(req.timeout_ms) else {
        return refused(
            INVALID_REQUEST,
            format!(
                "AddRaftVoter: timeout_ms {} is not positive; it bounds how long the leader waits \
                 for the new voter to catch up and the change to commit",
                req.timeout_ms
            ),
        );
    };
    let (id, directory_id) = (voter.id, voter.directory_id);
    match tokio::time::timeout(wait, d.raft.add_voter(voter)).await {
        Ok(Ok(())) => AddRaftVoterResponse::default(),
        Ok(Err(e)) => refused(e.code(), e.to_string()),
        // The change may still go ahead: the driver keeps it until it commits or fails.
        Err(_) => refused(
            REQUEST_TIMED_OUT,
            format!(
                "voter {id} (directory id {}) was not added within the request's timeout of {} \
                 ms; the change may still complete",
                kafka_uuid_string(&directory_id),
                wait.as_millis()
            ),
        ),
    }
}

fn refused(code: i16, message: String) -> AddRaftVoterResponse {
    AddRaftVoterResponse::default()
        .with_error_code(code)
        .with_error_message(Some(StrBytes::from_string(message)))
}

/// Kafka's INCONSISTENT_CLUSTER_ID text, shared by the voter-change APIs.
pub(super) fn other_cluster(theirs: Option<&str>, ours: &str) -> String {
    format!(
        "the request's cluster id \"{}\" is not this cluster's (\"{ours}\")",
        theirs.unwrap_or_default()
    )
}

/// The request's timeout as a duration; `None` when it is not positive.
fn request_timeout(timeout_ms: i32) -> Option<Duration> {
    u64::try_from(timeout_ms)
        .ok()
        .filter(|&ms| ms > 0)
        .map(Duration::from_millis)
}

/// A voter named on the wire (AddRaftVoter, UpdateRaftVoter): an id, the directory id of its
/// metadata log dir, and its controller listeners as `(name, host, port)`. What no driver could
/// use is refused here, with the reason.
pub(super) fn voter_spec<'a>(
    voter_id: i32,
    directory_id: uuid::Uuid,
    listeners: impl ExactSizeIterator<Item = (&'a str, &'a str, u16)>,
) -> Result<VoterSpec, String> {
    if voter_id < 0 {
        return Err(format!("voter id {voter_id} is negative"));
    }
    if directory_id.is_nil() {
        return Err(format!(
            "voter {voter_id} has no directory id (the zero uuid); a voter is named by its id and \
             the directory.id of its metadata log dir"
        ));
    }
    if listeners.len() == 0 {
        return Err(format!(
            "voter {voter_id} names no listener; the other voters reach it only through its \
             controller listener endpoints"
        ));
    }
    if listeners.len() > MAX_LISTENERS_PER_VOTER {
        return Err(format!(
            "voter {voter_id} names {} listeners, more than the {MAX_LISTENERS_PER_VOTER} allowed",
            listeners.len()
        ));
    }
    let mut endpoints: Vec<(String, String, u16)> = Vec::with_capacity(listeners.len());
    for (name, host, port) in listeners {
        if name.is_empty() || host.is_empty() || port == 0 {
            return Err(format!(
                "voter {voter_id} names listener '{name}' at '{host}:{port}', which is not a \
                 usable name and host:port"
            ));
        }
        if endpoints.iter().any(|(n, _, _)| n == name) {
            return Err(format!("voter {voter_id} names listener '{name}' twice"));
        }
        endpoints.push((name.to_string(), host.to_string(), port));
    }
    Ok(VoterSpec {
        id: voter_id,
        directory_id,
        endpoints,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIR: uuid::Uuid = uuid::Uuid::from_u128(0x1234);

    fn spec(
        id: i32,
        dir: uuid::Uuid,
        listeners: &[(&'static str, &'static str, u16)],
    ) -> Result<VoterSpec, String> {
        voter_spec(id, dir, listeners.iter().copied())
    }

    #[test]
    fn listeners_become_the_voters_endpoints_in_order() {
        let v = spec(
            2,
            DIR,
            &[
                ("CONTROLLER", "ctrl2", 9093),
                ("CONTROLLER_SSL", "ctrl2", 9094),
            ],
        )
        .expect("valid");
        assert_eq!(
            v,
            VoterSpec {
                id: 2,
                directory_id: DIR,
                endpoints: vec![
                    ("CONTROLLER".into(), "ctrl2".into(), 9093),
                    ("CONTROLLER_SSL".into(), "ctrl2".into(), 9094),
                ],
            }
        );
    }

    #[test]
    fn a_voter_no_driver_could_use_is_refused_with_the_reason() {
        let ok = [("CONTROLLER", "h", 9093)];
        let cases: [(Result<VoterSpec, String>, &str); 6] = [
            (spec(-1, DIR, &ok), "negative"),
            (spec(2, uuid::Uuid::nil(), &ok), "no directory id"),
            (spec(2, DIR, &[]), "names no listener"),
            (spec(2, DIR, &[("CONTROLLER", "", 9093)]), "usable"),
            (spec(2, DIR, &[("CONTROLLER", "h", 0)]), "usable"),
            (
                spec(2, DIR, &[("CONTROLLER", "h", 1), ("CONTROLLER", "h", 2)]),
                "twice",
            ),
        ];
        for (result, why) in cases {
            let err = result.expect_err(why);
            assert!(err.contains(why), "{err}");
        }
        let many: Vec<(&str, &str, u16)> = (1..=MAX_LISTENERS_PER_VOTER as u16 + 1)
            .map(|p| ("L", "h", p))
            .collect();
        let err = voter_spec(2, DIR, many.into_iter()).expect_err("too many");
        assert!(err.contains("more than the 16 allowed"), "{err}");
    }

    #[test]
    fn only_a_positive_timeout_bounds_the_wait() {
        assert_eq!(request_timeout(30_000), Some(Duration::from_secs(30)));
        assert_eq!(request_timeout(0), None);
        assert_eq!(request_timeout(-1), None);
    }
}
