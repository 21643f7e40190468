//! `kraftd quorum status|replication` against a real node: the fields and layout of
//! kafka-metadata-quorum.sh describe --status/--replication, their JSON forms, and the one-line
//! errors for an address that is dead, mistyped or not a controller listener.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::{Node, free_port, run_kraftd};

/// `Key:   value` lines into a map, checking Kafka's alignment (values start at column 24).
fn status_fields(out: &str) -> BTreeMap<String, String> {
    out.lines()
        .map(|line| {
            let (key, _) = line.split_once(':').expect("Key: value");
            assert_eq!(
                line.get(24..).map(|v| !v.starts_with(' ')),
                Some(true),
                "value of {key} starts at column 24: {line:?}"
            );
            (key.to_string(), line[24..].to_string())
        })
        .collect()
}

/// The replication table: cells split at tabs, padding trimmed.
fn table(out: &str) -> Vec<Vec<String>> {
    out.lines()
        .map(|l| {
            l.trim_end_matches('\t')
                .split('\t')
                .map(|c| c.trim_end().to_string())
                .collect()
        })
        .collect()
}

fn quorum(args: &[&str]) -> (i32, String, String) {
    let mut all = vec!["quorum"];
    all.extend_from_slice(args);
    run_kraftd(&all)
}

fn controller(node: &Node) -> String {
    format!("127.0.0.1:{}", node.controller_port)
}

#[test]
fn status_of_a_single_node_quorum() {
    let node = Node::start(&[]);
    let (code, out, err) = quorum(&["status", "--bootstrap-controller", &controller(&node)]);
    assert_eq!(code, 0, "stderr: {err}");
    let keys: Vec<&str> = out.lines().filter_map(|l| l.split(':').next()).collect();
    // Kafka's order; ClusterId leads only if the controller listener also serves
    // DescribeCluster (DescribeQuorum carries no cluster id).
    let keys = keys.strip_prefix(&["ClusterId"]).unwrap_or(&keys);
    assert_eq!(
        keys,
        [
            "LeaderId",
            "LeaderEpoch",
            "HighWatermark",
            "MaxFollowerLag",
            "MaxFollowerLagTimeMs",
            "CurrentVoters",
            "CurrentObservers"
        ],
        "{out}"
    );
    let f = status_fields(&out);
    assert_eq!(f["LeaderId"], "1");
    let epoch: i32 = f["LeaderEpoch"].parse().expect("epoch");
    assert!(epoch >= 1, "{out}");
    let hw: i64 = f["HighWatermark"].parse().expect("hw");
    assert!(hw > 0, "the broker's registration is committed: {out}");
    assert_eq!(f["MaxFollowerLag"], "0");
    assert_eq!(f["MaxFollowerLagTimeMs"], "0");
    assert_eq!(
        f["CurrentVoters"],
        format!(
            "[{{\"id\": 1, \"directoryId\": null, \"endpoints\": [\"CONTROLLER://127.0.0.1:{}\"]}}]",
            node.controller_port
        )
    );
    assert_eq!(f["CurrentObservers"], "[]");
}

#[test]
fn replication_lists_the_node_as_leader_with_no_lag() {
    let node = Node::start(&[]);
    let (code, out, err) = quorum(&["replication", "--bootstrap-controller", &controller(&node)]);
    assert_eq!(code, 0, "stderr: {err}");
    let rows = table(&out);
    assert_eq!(
        rows[0],
        [
            "NodeId",
            "DirectoryId",
            "LogEndOffset",
            "Lag",
            "LastFetchTimestamp",
            "LastCaughtUpTimestamp",
            "Status"
        ]
    );
    assert_eq!(rows.len(), 2, "{out}");
    let leader = &rows[1];
    assert_eq!(leader[0], "1");
    assert_eq!(
        leader[1], "AAAAAAAAAAAAAAAAAAAAAA",
        "no directory id: Kafka's zero uuid"
    );
    assert!(leader[2].parse::<i64>().expect("leo") > 0, "{out}");
    assert_eq!(leader[3], "0");
    assert!(leader[4].parse::<i64>().expect("epoch ms") > 0, "{out}");
    assert_eq!(leader[6], "Leader");

    let (code, out, err) = quorum(&[
        "replication",
        "--bootstrap-controller",
        &controller(&node),
        "--human-readable",
    ]);
    assert_eq!(code, 0, "stderr: {err}");
    let rows = table(&out);
    for cell in [&rows[1][4], &rows[1][5]] {
        let ms = cell.strip_suffix(" ms ago").expect("N ms ago");
        assert!(ms.parse::<u64>().is_ok(), "{out}");
    }
}

#[test]
fn json_forms_carry_the_same_facts() {
    let node = Node::start(&[]);
    let addr = controller(&node);
    let (code, out, err) = quorum(&["status", "--bootstrap-controller", &addr, "--json"]);
    assert_eq!(code, 0, "stderr: {err}");
    let s: serde_json::Value = serde_json::from_str(&out).expect("status JSON");
    assert_eq!(s["leaderId"], 1);
    assert!(s["leaderEpoch"].as_i64().expect("epoch") >= 1);
    assert!(s["highWatermark"].as_i64().expect("hw") > 0);
    assert_eq!(s["maxFollowerLag"], 0);
    assert_eq!(s["currentVoters"][0]["id"], 1);
    assert_eq!(
        s["currentVoters"][0]["endpoints"][0],
        format!("CONTROLLER://{addr}")
    );
    assert_eq!(s["currentObservers"], serde_json::json!([]));

    let (code, out, err) = quorum(&["replication", "--bootstrap-controller", &addr, "--json"]);
    assert_eq!(code, 0, "stderr: {err}");
    let r: serde_json::Value = serde_json::from_str(&out).expect("replication JSON");
    let rows = r.as_array().expect("array");
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["nodeId"], 1);
    assert_eq!(rows[0]["lag"], 0);
    assert_eq!(rows[0]["status"], "Leader");
    assert!(rows[0]["logEndOffset"].as_i64().expect("leo") > 0);
}

#[test]
fn a_dead_address_in_the_list_is_skipped() {
    let node = Node::start(&[]);
    let dead = format!("127.0.0.1:{}", free_port());
    let list = format!("{dead},{}", controller(&node));
    let (code, out, err) = quorum(&["status", "--bootstrap-controller", &list]);
    assert_eq!(code, 0, "stderr: {err}");
    assert_eq!(status_fields(&out)["LeaderId"], "1");
}

#[test]
fn a_dead_address_fails_fast_with_one_line_naming_it() {
    let dead = format!("127.0.0.1:{}", free_port());
    let started = Instant::now();
    let (code, out, err) = quorum(&["status", "--bootstrap-controller", &dead]);
    assert_eq!(code, 1);
    assert_eq!(out, "");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with(&format!(
            "kraftd: cannot reach {dead} (connection refused). Fix: "
        )),
        "{err}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "a refused connection is not waited out"
    );

    let (code, _, err) = quorum(&["replication", "--bootstrap-controller", &dead]);
    assert_eq!(code, 1);
    assert!(err.contains("cannot reach"), "{err}");
}

#[test]
fn a_broker_port_is_named_as_not_a_controller_listener() {
    let node = Node::start(&[]);
    let (code, _, err) = quorum(&["status", "--bootstrap-controller", &node.bootstrap()]);
    assert_eq!(code, 1);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains(&format!(
            "{} does not serve DescribeQuorum",
            node.bootstrap()
        )) && err.contains("Fix: "),
        "{err}"
    );
}

#[test]
fn a_malformed_address_is_named_before_connecting() {
    let (code, _, err) = quorum(&["status", "--bootstrap-controller", "localhost"]);
    assert_eq!(code, 1);
    assert_eq!(
        err,
        "kraftd: --bootstrap-controller: 'localhost' is not host:port. Fix: write it as \
         --bootstrap-controller localhost:9093[,host2:9093]\n"
    );
}

#[test]
fn every_voter_of_a_three_node_quorum_leads_the_command_to_the_same_leader() {
    let cluster = common::cluster::Cluster::start(3, &[]);
    let mut leaders = Vec::new();
    for node in &cluster.nodes {
        // The default --timeout-ms waits out the first election.
        let (code, out, err) = quorum(&["status", "--bootstrap-controller", &controller(node)]);
        assert_eq!(code, 0, "stderr: {err}");
        let f = status_fields(&out);
        let voters: serde_json::Value =
            serde_json::from_str(&f["CurrentVoters"]).expect("CurrentVoters is JSON");
        let ids: Vec<i64> = voters
            .as_array()
            .expect("list")
            .iter()
            .filter_map(|v| v["id"].as_i64())
            .collect();
        assert_eq!(ids, [1, 2, 3], "{out}");
        leaders.push((f["LeaderId"].clone(), f["LeaderEpoch"].clone()));
    }
    assert!(
        leaders.windows(2).all(|w| w[0] == w[1]),
        "one leader whichever voter is asked: {leaders:?}"
    );

    let (code, out, err) = quorum(&[
        "replication",
        "--bootstrap-controller",
        &controller(&cluster.nodes[0]),
    ]);
    assert_eq!(code, 0, "stderr: {err}");
    let rows = table(&out);
    let status: Vec<(&str, &str)> = rows[1..]
        .iter()
        .map(|r| (r[0].as_str(), r[6].as_str()))
        .collect();
    assert_eq!(status.len(), 3, "{out}");
    assert_eq!(status[0], (leaders[0].0.as_str(), "Leader"), "{out}");
    assert!(status[1..].iter().all(|(_, s)| *s == "Follower"), "{out}");
}
