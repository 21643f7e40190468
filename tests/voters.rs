//! Dynamic KRaft membership (KIP-853) with real `kraftd` processes on loopback: controllers
//! join a running quorum as observers and become voters with `kraftd quorum add-voter`, leave it
//! with `remove-voter`, the new voters carry elections after the first is killed, restarts keep
//! the voter set from the metadata log, and a static quorum grows without losing data.

mod common;

use std::time::{Duration, Instant};

use common::Node;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Message, TopicPartitionList};

const TIMEOUT: Duration = Duration::from_secs(40);

fn admin(bootstrap: &str) -> AdminClient<DefaultClientContext> {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("admin client")
}

/// A combined node whose config finds the quorum through `bootstrap_controllers` (Kafka 4.x's
/// `controller.quorum.bootstrap.servers`), or through `static_voters` when given.
fn prepare(id: i32, bootstrap_controllers: &str, static_voters: Option<&str>) -> Node {
    prepare_with_roles(
        id,
        "broker,controller",
        bootstrap_controllers,
        static_voters,
    )
}

fn prepare_with_roles(
    id: i32,
    roles: &str,
    bootstrap_controllers: &str,
    static_voters: Option<&str>,
) -> Node {
    let dir = tempfile::tempdir().expect("tempdir");
    let client_port = common::free_port();
    let controller_port = common::free_port();
    let quorum = match static_voters {
        Some(v) => format!("controller.quorum.voters={v}"),
        None => format!(
            "controller.quorum.bootstrap.servers={}",
            if bootstrap_controllers.is_empty() {
                format!("127.0.0.1:{controller_port}")
            } else {
                bootstrap_controllers.to_string()
            }
        ),
    };
    // A broker-only node has no CONTROLLER listener of its own.
    let listeners = if roles == "broker" {
        format!("PLAINTEXT://127.0.0.1:{client_port}")
    } else {
        format!("PLAINTEXT://127.0.0.1:{client_port},CONTROLLER://127.0.0.1:{controller_port}")
    };
    let text = format!(
        "process.roles={roles}\nnode.id={id}\n{quorum}\n\
         listeners={listeners}\nadvertised.listeners={listeners}\n\
         controller.listener.names=CONTROLLER\n\
         log.dirs={}\n",
        dir.path().join("data").display()
    );
    Node::prepare(dir, client_port, controller_port, &text)
}

fn format(node: &Node, cluster_id: &str, flag: Option<&str>) {
    let config = node.config_path.display().to_string();
    let mut args = vec!["storage", "format", "-t", cluster_id, "-c", &config];
    args.extend(flag);
    let (code, _, err) = common::run_kraftd(&args);
    assert_eq!(code, 0, "format: {err}");
}

fn controller(node: &Node) -> String {
    format!("127.0.0.1:{}", node.controller_port)
}

/// (leader id, voter ids, observer ids) as `kraftd quorum status --json` reports them.
fn quorum(bootstrap_controller: &str) -> Option<(i32, Vec<i32>, Vec<i32>)> {
    let (code, out, _) = common::run_kraftd(&[
        "quorum",
        "status",
        "--bootstrap-controller",
        bootstrap_controller,
        "--json",
    ]);
    if code != 0 {
        return None;
    }
    let v: serde_json::Value = serde_json::from_str(&out).ok()?;
    let ids = |key: &str| -> Vec<i32> {
        let mut ids: Vec<i32> = v[key]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|r| r["id"].as_i64())
                    .map(|i| i as i32)
                    .collect()
            })
            .unwrap_or_default();
        ids.sort();
        ids
    };
    Some((
        v["leaderId"].as_i64()? as i32,
        ids("currentVoters"),
        ids("currentObservers"),
    ))
}

/// Each voter's (id, directory id, endpoints) as `kraftd quorum status --json` reports them.
fn voters(bootstrap_controller: &str) -> Vec<(i32, Option<String>, Vec<String>)> {
    let (_, out, _) = common::run_kraftd(&[
        "quorum",
        "status",
        "--bootstrap-controller",
        bootstrap_controller,
        "--json",
    ]);
    let Ok(v) = serde_json::from_str::<serde_json::Value>(&out) else {
        return Vec::new();
    };
    v["currentVoters"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|r| {
                    (
                        r["id"].as_i64().unwrap_or(-1) as i32,
                        r["directoryId"].as_str().map(str::to_string),
                        r["endpoints"]
                            .as_array()
                            .map(|e| {
                                e.iter()
                                    .filter_map(|x| x.as_str().map(str::to_string))
                                    .collect()
                            })
                            .unwrap_or_default(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

fn new_cluster_id() -> String {
    let (code, out, err) = common::run_kraftd(&["storage", "random-uuid"]);
    assert_eq!(code, 0, "{err}");
    out.trim().to_string()
}

/// Moves a stopped `node`'s controller listener to a free port in its config, and starts it.
fn relaunch_on_a_new_controller_port(node: &mut Node) {
    let old_port = node.controller_port;
    let new_port = common::free_port();
    let text = std::fs::read_to_string(&node.config_path)
        .expect("config")
        .replace(&format!(":{old_port}"), &format!(":{new_port}"));
    std::fs::write(&node.config_path, text).expect("config");
    node.controller_port = new_port;
    node.launch(&[]);
}

/// Waits until the voter set names `port` as voter `id`'s only endpoint.
fn wait_for_endpoint(contact: &str, id: i32, port: u16) {
    let endpoint = format!("CONTROLLER://127.0.0.1:{port}");
    wait_for(&format!("voter {id}'s endpoint {endpoint}"), || {
        voters(contact)
            .iter()
            .any(|(v, _, e)| *v == id && e == std::slice::from_ref(&endpoint))
    });
}

fn wait_for(what: &str, mut check: impl FnMut() -> bool) {
    let start = Instant::now();
    while !check() {
        assert!(start.elapsed() < TIMEOUT, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// `kraftd quorum add-voter` for `node`, retried while the leader reports that the new node has
/// not caught up yet (REQUEST_TIMED_OUT), as an operator would.
fn add_voter(contact: &str, node: &Node) -> String {
    let config = node.config_path.display().to_string();
    let start = Instant::now();
    loop {
        let (code, out, err) = common::run_kraftd(&[
            "quorum",
            "add-voter",
            "--bootstrap-controller",
            contact,
            "-c",
            &config,
        ]);
        if code == 0 {
            return out;
        }
        assert!(
            start.elapsed() < TIMEOUT && err.contains("REQUEST_TIMED_OUT"),
            "add-voter failed: {err}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

async fn create_topic(bootstrap: &str, name: &str) {
    let start = Instant::now();
    let admin = admin(bootstrap);
    loop {
        let r = admin
            .create_topics(
                [&NewTopic::new(name, 1, TopicReplication::Fixed(1))],
                &AdminOptions::new().operation_timeout(Some(Duration::from_secs(5))),
            )
            .await;
        if let Ok(results) = &r
            && results[0].is_ok()
        {
            return;
        }
        assert!(start.elapsed() < TIMEOUT, "CreateTopics {name}: {r:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn produce(bootstrap: &str, topic: &str, values: &[&str]) {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("acks", "all")
        .create()
        .expect("producer");
    for v in values {
        producer
            .send(
                FutureRecord::<(), str>::to(topic).partition(0).payload(v),
                Duration::from_secs(20),
            )
            .await
            .map_err(|(e, _)| e)
            .expect("produce");
    }
}

fn read_all(bootstrap: &str, topic: &str, count: usize) -> Vec<String> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "voters-test-reader")
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, rdkafka::Offset::Beginning)
        .expect("tpl");
    consumer.assign(&tpl).expect("assign");
    let mut out = Vec::new();
    let start = Instant::now();
    while out.len() < count && start.elapsed() < TIMEOUT {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(200)) {
            out.push(String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned());
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_standalone_quorum_grows_to_three_voters_fails_over_and_shrinks() {
    let cluster_id = new_cluster_id();

    // Kafka 4.x's quickstart: one controller formatted --standalone ...
    let mut first = prepare(1, "", None);
    format(&first, &cluster_id, Some("--standalone"));
    first.launch(&[]);
    let contact = controller(&first);
    create_topic(&first.bootstrap(), "before").await;
    produce(&first.bootstrap(), "before", &["a", "b", "c"]).await;

    // ... and two more formatted --no-initial-controllers that start as observers.
    let mut nodes = vec![first];
    for id in [2, 3] {
        let mut n = prepare(id, &contact, None);
        format(&n, &cluster_id, Some("--no-initial-controllers"));
        n.launch(&[]);
        nodes.push(n);
    }
    wait_for("nodes 2 and 3 to observe the quorum", || {
        quorum(&contact).is_some_and(|(_, v, o)| v == vec![1] && o == vec![2, 3])
    });

    for id in [2, 3] {
        let out = add_voter(&contact, &nodes[id - 1]);
        assert!(out.contains(&format!("Added controller {id}")), "{out}");
        assert!(
            out.contains(&format!(
                "CONTROLLER://127.0.0.1:{}",
                nodes[id - 1].controller_port
            )),
            "{out}"
        );
    }
    let (leader, voter_ids, _) = quorum(&contact).expect("status");
    assert_eq!((leader, voter_ids), (1, vec![1, 2, 3]));

    // A broker-only node finds the quorum through the bootstrap servers too, and serves.
    let mut broker = prepare_with_roles(4, "broker", &contact, None);
    format(&broker, &cluster_id, None);
    broker.launch(&[]);
    wait_for("broker 4 in every node's metadata", || {
        nodes.iter().chain([&broker]).all(|n| {
            admin(&n.bootstrap())
                .inner()
                .fetch_metadata(None, Duration::from_secs(3))
                .is_ok_and(|md| md.brokers().iter().any(|b| b.id() == 4))
        })
    });
    // Every voter knows the new set from its own log.
    for n in &nodes[1..] {
        let log = n.log();
        assert!(log.contains("metadata quorum voter set"), "{log}");
    }
    // A follower restarted on another controller port tells the leader (UpdateRaftVoter) and
    // the voter set follows.
    assert!(nodes[2].stop().success());
    relaunch_on_a_new_controller_port(&mut nodes[2]);
    wait_for_endpoint(&contact, 3, nodes[2].controller_port);
    assert!(
        nodes[2]
            .log()
            .contains("announcing this voter's endpoints to the leader")
    );

    // Adding a voter twice is refused with Kafka's error.
    let config = nodes[1].config_path.display().to_string();
    let (code, _, err) = common::run_kraftd(&[
        "quorum",
        "add-voter",
        "--bootstrap-controller",
        &contact,
        "-c",
        &config,
    ]);
    assert_ne!(code, 0);
    assert!(err.contains("DUPLICATE_VOTER"), "{err}");

    // The first controller dies: the two voters it added elect a leader between them and take
    // metadata changes; records acknowledged before are still there.
    nodes[0].kill();
    let survivors = format!("{},{}", nodes[1].bootstrap(), nodes[2].bootstrap());
    let contact2 = controller(&nodes[1]);
    wait_for("a new leader among 2 and 3", || {
        quorum(&contact2).is_some_and(|(l, v, _)| (l == 2 || l == 3) && v == vec![1, 2, 3])
    });
    create_topic(&survivors, "after").await;

    // It comes back as a voter and catches up.
    nodes[0].launch(&[]);
    wait_for("node 1 to catch up", || {
        let (_, out, _) = common::run_kraftd(&[
            "quorum",
            "replication",
            "--bootstrap-controller",
            &contact2,
            "--json",
        ]);
        serde_json::from_str::<serde_json::Value>(&out).is_ok_and(|rows| {
            rows.as_array().is_some_and(|rows| {
                rows.iter()
                    .any(|r| r["nodeId"] == 1 && r["lag"] == 0 && r["status"] == "Follower")
            })
        })
    });

    // Node 3 leaves the voters; it carries on as an observer.
    let (code, out, err) = common::run_kraftd(&[
        "quorum",
        "remove-voter",
        "--bootstrap-controller",
        &contact2,
        "--controller-id",
        "3",
    ]);
    assert_eq!(code, 0, "remove-voter: {err}");
    assert!(out.contains("Removed controller 3"), "{out}");
    wait_for("voters [1, 2] with 3 observing", || {
        quorum(&contact2).is_some_and(|(_, v, o)| v == vec![1, 2] && o.contains(&3))
    });

    // A full restart keeps the voter set (it lives in the metadata log) and every record.
    for n in &nodes {
        n.terminate();
    }
    for n in nodes.iter_mut() {
        assert!(
            n.wait_exit(Duration::from_secs(20)).success(),
            "{}",
            n.log()
        );
    }
    for n in nodes.iter_mut() {
        n.launch(&[]);
    }
    wait_for("the same voters after a restart", || {
        quorum(&contact2).is_some_and(|(l, v, _)| l > 0 && v == vec![1, 2])
    });
    let all = format!("{},{}", nodes[0].bootstrap(), nodes[1].bootstrap());
    assert_eq!(read_all(&all, "before", 3), vec!["a", "b", "c"]);
    for n in nodes.iter_mut().chain([&mut broker]) {
        assert!(n.stop().success());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_static_quorum_adds_a_voter_without_losing_data() {
    // A static one-voter quorum, as `controller.quorum.voters` and a plain format make it.
    let mut first = Node::start(&[]);
    let contact = controller(&first);
    create_topic(&first.bootstrap(), "kept").await;
    produce(&first.bootstrap(), "kept", &["x", "y"]).await;
    let static_config = std::fs::read_to_string(&first.config_path).expect("config");
    let meta = std::fs::read_to_string(first.data_dir().join("meta.properties")).expect("meta");
    let cluster_id = meta
        .lines()
        .find_map(|l| l.strip_prefix("cluster.id="))
        .expect("cluster.id in meta.properties")
        .to_string();

    // The new controller joins through the bootstrap servers and is added: the first change of
    // a static quorum moves the voter set into the log (kraft.version 1).
    let mut second = prepare(2, &contact, None);
    format(&second, &cluster_id, Some("--no-initial-controllers"));
    second.launch(&[]);
    wait_for("node 2 to observe", || {
        quorum(&contact).is_some_and(|(_, _, o)| o.contains(&2))
    });
    let out = add_voter(&contact, &second);
    assert!(out.contains("Added controller 2"), "{out}");
    assert_eq!(quorum(&contact).map(|q| q.1), Some(vec![1, 2]));
    assert!(first.log().contains("kraft.version is now 1"));

    // Node 1 restarts with its old config (voters=1 only): the log's set rules, and it says so.
    first.restart();
    wait_for("the quorum back with both voters", || {
        quorum(&contact).is_some_and(|(l, v, _)| l > 0 && v == vec![1, 2])
    });
    assert!(
        first
            .log()
            .contains("controller.quorum.voters differs from the voter set in the metadata log")
    );
    assert_eq!(
        static_config,
        std::fs::read_to_string(&first.config_path).unwrap()
    );
    let both = format!("{},{}", first.bootstrap(), second.bootstrap());
    assert_eq!(read_all(&both, "kept", 2), vec!["x", "y"]);

    // The static voter had no directory id in the set; the leader records its own
    // (UpdateRaftVoter's leader side).
    let dir_of_1 = std::fs::read_to_string(first.data_dir().join("meta.properties"))
        .expect("meta")
        .lines()
        .find_map(|l| l.strip_prefix("directory.id=").map(str::to_string));
    wait_for("voter 1's directory id in the voter set", || {
        voters(&contact)
            .iter()
            .any(|(id, dir, _)| *id == 1 && dir.is_some() && *dir == dir_of_1)
    });

    // A voter restarted on another controller port tells the leader (UpdateRaftVoter), and
    // the voter set names its new endpoint.
    assert!(second.stop().success());
    // Node 1 alone has no majority of two: it stops leading, so the restarted node 2 must be
    // the one to lead and tell node 1 its new address (BeginQuorumEpoch's leader endpoints).
    wait_for("node 1 to wait for a majority", || {
        first
            .log()
            .contains("waiting for a majority of the metadata quorum")
    });
    relaunch_on_a_new_controller_port(&mut second);
    wait_for_endpoint(&contact, 2, second.controller_port);
    // Here node 2 leads, so it records its own endpoint (UpdateRaftVoter's leader side).
    let log = second.log();
    assert!(
        log.contains("recording this leader's own new endpoints")
            || log.contains("announcing this voter's endpoints to the leader"),
        "{log}"
    );
    for n in [&mut first, &mut second] {
        assert!(n.stop().success());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_static_quorum_removes_a_voter_with_the_command_its_error_names() {
    // Three voters from controller.quorum.voters: none has a directory id.
    let mut cluster = common::cluster::Cluster::start(3, &[]);
    let contact = controller(&cluster.nodes[0]);
    wait_for("a leader", || {
        quorum(&contact).is_some_and(|(l, v, _)| l > 0 && v == vec![1, 2, 3])
    });
    // What the "voter list changed" error tells an operator who dropped node 3 from the list.
    let (code, out, err) = common::run_kraftd(&[
        "quorum",
        "remove-voter",
        "--bootstrap-controller",
        &contact,
        "--controller-id",
        "3",
    ]);
    assert_eq!(code, 0, "remove-voter: {err}");
    assert!(out.contains("Removed controller 3"), "{out}");
    wait_for("voters [1, 2]", || {
        quorum(&contact).is_some_and(|(l, v, _)| l > 0 && v == vec![1, 2])
    });
    // Node 3 carries on as an observer; nodes 1 and 2 restart with a list without it.
    assert!(cluster.node(3).stop().success());
    for id in [1, 2] {
        let node = cluster.node(id);
        assert!(node.stop().success());
        let text = std::fs::read_to_string(&node.config_path).expect("config");
        let voters_line = text
            .lines()
            .find(|l| l.starts_with("controller.quorum.voters="))
            .expect("voters line")
            .to_string();
        let shorter: Vec<&str> = voters_line
            .trim_start_matches("controller.quorum.voters=")
            .split(',')
            .filter(|v| !v.starts_with("3@"))
            .collect();
        let text = text.replace(
            &voters_line,
            &format!("controller.quorum.voters={}", shorter.join(",")),
        );
        std::fs::write(&node.config_path, text).expect("config");
    }
    for id in [1, 2] {
        cluster.node(id).launch(&[]);
    }
    wait_for("the two voters lead again", || {
        quorum(&contact).is_some_and(|(l, v, _)| l > 0 && v == vec![1, 2])
    });
    for id in [1, 2] {
        let node = cluster.node(id);
        assert!(!node.log().contains("differs from the voter set"));
        assert!(node.stop().success());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_controller_with_auto_join_becomes_a_voter_by_itself() {
    let cluster_id = new_cluster_id();
    let mut first = prepare(1, "", None);
    format(&first, &cluster_id, Some("--standalone"));
    first.launch(&[]);
    let contact = controller(&first);
    let mut second = prepare(2, &contact, None);
    std::fs::write(
        &second.config_path,
        std::fs::read_to_string(&second.config_path).expect("config")
            + "controller.quorum.auto.join.enable=true\n",
    )
    .expect("config");
    format(&second, &cluster_id, Some("--no-initial-controllers"));
    second.launch(&[]);
    wait_for("node 2 to join the voters by itself", || {
        quorum(&contact).is_some_and(|(l, v, _)| l == 1 && v == vec![1, 2])
    });
    assert!(
        second
            .log()
            .contains("asking the leader to make this controller a voter")
    );
    // It stays a voter across a restart, and asks nothing more.
    second.restart();
    wait_for("the same two voters", || {
        quorum(&contact).is_some_and(|(l, v, _)| l > 0 && v == vec![1, 2])
    });
    for n in [&mut first, &mut second] {
        assert!(n.stop().success());
    }
}
