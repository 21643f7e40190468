//! `kraftd quorum status|replication` against a real node: the fields and layout of
//! kafka-metadata-quorum.sh describe --status/--replication, their JSON forms, and the one-line
//! errors for an address that is dead, mistyped or not a controller listener. `add-voter` and
//! `remove-voter` (add-controller/remove-controller): what they check before asking, and the
//! one-line error when the leader of a static single-voter quorum refuses.

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

// ---- add-voter / remove-voter ----

/// Node 1's cluster id, from the meta.properties `--auto-format` wrote.
fn cluster_id_of(node: &Node) -> String {
    let text = std::fs::read_to_string(node.data_dir().join("meta.properties")).expect("meta");
    text.lines()
        .find_map(|l| l.strip_prefix("cluster.id="))
        .expect("cluster.id")
        .to_string()
}

/// The config of controller 2, joining the quorum `bootstrap` names as Kafka 4.x's do (through
/// controller.quorum.bootstrap.servers), in a dir of its own; not formatted.
fn second_controller(bootstrap: &str, roles: &str) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let listeners = if roles == "broker" {
        format!("PLAINTEXT://127.0.0.1:{port}")
    } else {
        format!("CONTROLLER://127.0.0.1:{port}")
    };
    let text = format!(
        "process.roles={roles}\nnode.id=2\n\
         controller.quorum.bootstrap.servers={bootstrap}\n\
         listeners={listeners}\n\
         controller.listener.names=CONTROLLER\n\
         log.dirs={}\n",
        dir.path().join("data").display()
    );
    let path = dir.path().join("server.properties");
    std::fs::write(&path, text).expect("write config");
    let path = path.display().to_string();
    (dir, path)
}

fn format(config: &str, cluster_id: &str) {
    let (code, _, err) = run_kraftd(&[
        "storage",
        "format",
        "-t",
        cluster_id,
        "-c",
        config,
        "--no-initial-controllers",
    ]);
    assert_eq!(code, 0, "format: {err}");
}

fn assert_one_error_line(code: i32, out: &str, err: &str) {
    assert_eq!(code, 1, "stdout: {out} stderr: {err}");
    assert_eq!(out, "", "nothing on stdout");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("kraftd: ") && err.contains(" Fix: "),
        "{err}"
    );
}

#[test]
fn add_voter_refuses_a_controller_that_is_not_formatted_or_not_a_controller() {
    // Checked before any connection: the address need not answer.
    let dead = format!("127.0.0.1:{}", free_port());
    let (_dir, config) = second_controller(&dead, "controller");
    let (code, out, err) = quorum(&["add-voter", "--bootstrap-controller", &dead, "-c", &config]);
    assert_one_error_line(code, &out, &err);
    assert!(
        err.contains(
            "is not formatted (no meta.properties), so node 2 has no directory id yet. \
             Fix: run kraftd storage format -t <the quorum's cluster id> -c "
        ) && err.contains("--no-initial-controllers first"),
        "{err}"
    );

    let (_dir, config) = second_controller(&dead, "broker");
    format(&config, "u79uuCXFSG-TEKL0JOGOlQ");
    let (code, out, err) = quorum(&["add-voter", "--bootstrap-controller", &dead, "-c", &config]);
    assert_one_error_line(code, &out, &err);
    assert!(
        err.contains("process.roles does not include controller, so node 2 cannot become a voter"),
        "{err}"
    );
}

#[test]
fn add_controller_against_a_static_voter_prints_the_leaders_refusal() {
    let node = Node::start(&[]);
    let leader = controller(&node);
    let (_dir, config) = second_controller(&leader, "controller");
    format(&config, &cluster_id_of(&node));
    // Kafka's spelling: add-controller --command-config.
    let (code, out, err) = quorum(&[
        "add-controller",
        "--bootstrap-controller",
        &leader,
        "--command-config",
        &config,
        "--timeout-ms",
        "10000",
    ]);
    assert_one_error_line(code, &out, &err);
    // A static quorum (controller.quorum.voters) cannot gain a voter; the error code is the
    // leader's to choose.
    assert!(
        err.starts_with(&format!(
            "kraftd: cannot add controller 2: the leader (node 1 at {leader}) answered "
        )),
        "{err}"
    );
}

#[test]
fn add_voter_formatted_for_another_cluster_is_refused_by_the_leader() {
    let node = Node::start(&[]);
    let leader = controller(&node);
    let (_dir, config) = second_controller(&leader, "controller");
    let (_, other, _) = run_kraftd(&["storage", "random-uuid"]);
    format(&config, other.trim());
    let (code, out, err) = quorum(&[
        "add-voter",
        "--bootstrap-controller",
        &leader,
        "-c",
        &config,
    ]);
    assert_one_error_line(code, &out, &err);
    assert!(
        err.contains("answered INCONSISTENT_CLUSTER_ID")
            && err.contains(&format!(
                "formatted with cluster id {}, not the quorum's",
                other.trim()
            )),
        "{err}"
    );
}

#[test]
fn remove_voter_of_an_unknown_or_the_only_voter_fails_with_one_line() {
    let node = Node::start(&[]);
    let leader = controller(&node);
    let (code, out, err) = quorum(&[
        "remove-controller",
        "--bootstrap-controller",
        &leader,
        "--controller-id",
        "9",
    ]);
    assert_one_error_line(code, &out, &err);
    assert_eq!(
        err,
        "kraftd: cannot remove controller 9: VOTER_NOT_FOUND: the leader (node 1) lists the \
         voters 1. Fix: pass the id of a voter (kraftd quorum status lists them)\n"
    );

    // Voter 1 of a static quorum is named by the zero directory id; as the only voter it cannot
    // leave (Kafka's VOTER_NOT_FOUND).
    let (code, out, err) = quorum(&["remove-voter", "--bootstrap-controller", &leader, "-i", "1"]);
    assert_one_error_line(code, &out, &err);
    assert!(err.contains("VOTER_NOT_FOUND"), "{err}");
    assert!(err.contains("or is the only one"), "{err}");

    // A directory id that is not the voter's is refused too, and the voter stays.
    let (_, dir, _) = run_kraftd(&["storage", "random-uuid"]);
    let (code, out, err) = quorum(&[
        "remove-voter",
        "--bootstrap-controller",
        &leader,
        "-i",
        "1",
        "--controller-directory-id",
        dir.trim(),
    ]);
    assert_one_error_line(code, &out, &err);
    assert!(
        err.starts_with(&format!(
            "kraftd: cannot remove controller 1: the leader (node 1 at {leader}) answered "
        )),
        "{err}"
    );
    assert_eq!(
        status_fields(&quorum(&["status", "--bootstrap-controller", &leader]).1)["LeaderId"],
        "1",
        "the voter is still there"
    );
}
