//! Multi-node KRaft clusters of real `kraftd` processes on loopback: elections over the
//! CONTROLLER listener, metadata replicated to every node, forwarding to the active controller,
//! failover after SIGKILL, catch-up after restart, and a clean stop of every node at once.

mod common;

use std::time::{Duration, Instant};

use common::cluster::Cluster;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;

const TIMEOUT: Duration = Duration::from_secs(30);

fn admin(bootstrap: &str) -> AdminClient<DefaultClientContext> {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("admin client")
}

/// (controller id, broker ids, topics) as one node's Metadata answer has them.
fn metadata(bootstrap: &str) -> Option<(i32, Vec<i32>, Vec<String>)> {
    let client = admin(bootstrap);
    let md = client
        .inner()
        .fetch_metadata(None, Duration::from_secs(3))
        .ok()?;
    let mut brokers: Vec<i32> = md.brokers().iter().map(|b| b.id()).collect();
    brokers.sort();
    let mut topics: Vec<String> = md.topics().iter().map(|t| t.name().to_string()).collect();
    topics.sort();
    Some((md.orig_broker_id(), brokers, topics))
}

/// Whether a node's broker has been unfenced (its log says so).
fn unfenced(cluster: &Cluster, id: i32) -> bool {
    cluster.nodes[(id - 1) as usize]
        .log()
        .contains("the broker has been unfenced")
}

/// The node whose log last said it leads the quorum.
fn leader(cluster: &Cluster) -> Option<i32> {
    let mut best: Option<(usize, i32)> = None;
    for (i, n) in cluster.nodes.iter().enumerate() {
        let log = n.log();
        if let Some(pos) = log.rfind("this node leads the metadata quorum") {
            let after = &log[pos..];
            let lost = after.contains("no longer the active controller")
                || after.contains("resigned as metadata quorum leader");
            if !lost && best.is_none_or(|(p, _)| pos > p) {
                best = Some((pos, i as i32 + 1));
            }
        }
    }
    best.map(|(_, id)| id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_elect_replicate_fail_over_and_stop() {
    let mut cluster = Cluster::start(3, &[]);
    // Every node registers (through the active controller) and every node serves the same
    // metadata: three brokers.
    cluster.wait_for("three registered brokers on every node", TIMEOUT, || {
        (1..=3).all(|id| unfenced(&cluster, id))
            && cluster
                .nodes
                .iter()
                .all(|n| metadata(&n.bootstrap()).is_some_and(|(_, b, _)| b == vec![1, 2, 3]))
    });
    let first = leader(&cluster).expect("a leader");

    // A topic created through a node that does not lead is forwarded to the one that does.
    let other = if first == 1 { 2 } else { 1 };
    let bootstrap = cluster.node(other).bootstrap();
    let results = admin(&bootstrap)
        .create_topics(
            [&NewTopic::new("orders", 6, TopicReplication::Fixed(1))],
            &AdminOptions::new().operation_timeout(Some(TIMEOUT)),
        )
        .await
        .expect("create");
    assert_eq!(results[0].as_ref().map(|s| s.as_str()), Ok("orders"));
    cluster.wait_for("orders on every node", TIMEOUT, || {
        cluster.nodes.iter().all(|n| {
            metadata(&n.bootstrap()).is_some_and(|(_, _, t)| t.contains(&"orders".to_string()))
        })
    });

    // SIGKILL the leader; the survivors elect another and accept a new topic.
    let killed_at = Instant::now();
    cluster.node(first).kill();
    let bootstrap: String = cluster
        .nodes
        .iter()
        .enumerate()
        .filter(|(i, _)| *i as i32 + 1 != first)
        .map(|(_, n)| n.bootstrap())
        .collect::<Vec<_>>()
        .join(",");
    let admin_after = admin(&bootstrap);
    loop {
        let r = admin_after
            .create_topics(
                [&NewTopic::new(
                    "after-failover",
                    1,
                    TopicReplication::Fixed(1),
                )],
                &AdminOptions::new().operation_timeout(Some(Duration::from_secs(5))),
            )
            .await;
        if let Ok(results) = &r
            && results[0].is_ok()
        {
            break;
        }
        assert!(
            killed_at.elapsed() < TIMEOUT,
            "no CreateTopics success within {TIMEOUT:?} of killing the leader: {r:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eprintln!(
        "failover: SIGKILL of leader {first} to successful CreateTopics: {} ms",
        killed_at.elapsed().as_millis()
    );

    // The killed node comes back and catches up.
    cluster.node(first).launch(&[]);
    let back = cluster.node(first).bootstrap();
    cluster.wait_for("the restarted node to catch up", TIMEOUT, || {
        metadata(&back).is_some_and(|(_, b, t)| {
            b == vec![1, 2, 3] && t.contains(&"after-failover".to_string())
        })
    });

    // SIGTERM to every node at once: each exits 0 by itself.
    for n in &cluster.nodes {
        n.terminate();
    }
    for (i, n) in cluster.nodes.iter_mut().enumerate() {
        let status = n.wait_exit(Duration::from_secs(20));
        assert!(
            status.success(),
            "node {} exited with {status}:\n{}",
            i + 1,
            common::cluster::tail(&n.log(), 30)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_voter_alone_says_what_it_waits_for_and_still_stops() {
    let mut cluster = Cluster::start(3, &[]);
    // Only node 1 runs: it can never win an election alone.
    cluster.node(2).kill();
    cluster.node(3).kill();
    let port2 = cluster.node(2).controller_port;
    let port3 = cluster.node(3).controller_port;
    cluster.node(1).kill();
    cluster.node(1).launch(&[]);
    cluster.wait_for("the waiting-for-majority line", TIMEOUT, || {
        cluster.nodes[0]
            .log()
            .contains("waiting for a majority of the metadata quorum")
    });
    let log = cluster.nodes[0].log();
    let line = log
        .lines()
        .find(|l| l.contains("waiting for a majority"))
        .expect("line");
    assert!(line.contains("2 of 3 voters are needed"), "{line}");
    assert!(line.contains("reached 1: [1 (this node)]"), "{line}");
    assert!(
        line.contains(&format!("2@127.0.0.1:{port2} (connection refused)")),
        "{line}"
    );
    assert!(
        line.contains(&format!("3@127.0.0.1:{port3} (connection refused)")),
        "{line}"
    );
    // Said once, not in a loop.
    std::thread::sleep(Duration::from_secs(2));
    let count = cluster.nodes[0]
        .log()
        .matches("waiting for a majority")
        .count();
    assert_eq!(count, 1, "the same situation is reported once");

    // Clients get a retriable answer, not a hang.
    let started = Instant::now();
    let results = admin(&cluster.nodes[0].bootstrap())
        .create_topics(
            [&NewTopic::new("t", 1, TopicReplication::Fixed(1))],
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))),
        )
        .await;
    let code = match &results {
        Ok(r) => r[0].as_ref().err().map(|(_, c)| *c),
        Err(_) => None,
    };
    assert_eq!(
        code,
        Some(rdkafka::types::RDKafkaErrorCode::NotController),
        "{results:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(15));

    // A second voter comes back: a leader is elected and the node says so.
    cluster.node(2).launch(&[]);
    cluster.wait_for("a leader again", TIMEOUT, || {
        cluster.nodes[0]
            .log()
            .contains("the metadata quorum has a leader again")
    });

    // Stop both; neither needs the other to exit.
    cluster.nodes[0].terminate();
    cluster.nodes[1].terminate();
    for i in 0..2 {
        let status = cluster.nodes[i].wait_exit(Duration::from_secs(20));
        assert!(status.success(), "node {} exited with {status}", i + 1);
    }
}

/// Leader of each partition of `topic` as `bootstrap` reports it.
fn leaders(bootstrap: &str, topic: &str) -> Option<Vec<i32>> {
    let client = admin(bootstrap);
    let md = client
        .inner()
        .fetch_metadata(Some(topic), Duration::from_secs(3))
        .ok()?;
    let t = md.topics().iter().find(|t| t.name() == topic)?;
    if t.error().is_some() {
        return None;
    }
    let mut parts: Vec<(i32, i32)> = t
        .partitions()
        .iter()
        .map(|p| (p.id(), p.leader()))
        .collect();
    parts.sort();
    Some(parts.into_iter().map(|(_, l)| l).collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_serve_records_from_the_broker_that_leads_each_partition() {
    use rdkafka::Message;
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::producer::{FutureProducer, FutureRecord};
    use rdkafka::{Offset, TopicPartitionList};

    let mut cluster = Cluster::start(2, &[]);
    cluster.wait_for("two registered brokers on both nodes", TIMEOUT, || {
        (1..=2).all(|id| unfenced(&cluster, id))
            && cluster
                .nodes
                .iter()
                .all(|n| metadata(&n.bootstrap()).is_some_and(|(_, b, _)| b == vec![1, 2]))
    });
    // Created through node 2, with one config; its four partitions spread over both brokers.
    let results = admin(&cluster.nodes[1].bootstrap())
        .create_topics(
            [&NewTopic::new("events", 4, TopicReplication::Fixed(1))
                .set("retention.ms", "86400000")],
            &AdminOptions::new().operation_timeout(Some(TIMEOUT)),
        )
        .await
        .expect("create");
    assert!(results[0].is_ok(), "{results:?}");
    let mut seen = None;
    cluster.wait_for("the same partition leaders on both nodes", TIMEOUT, || {
        let a = leaders(&cluster.nodes[0].bootstrap(), "events");
        let b = leaders(&cluster.nodes[1].bootstrap(), "events");
        let same = a.is_some() && a == b;
        if same {
            seen = a;
        }
        same
    });
    let layout = seen.expect("leaders");
    assert!(layout.contains(&1) && layout.contains(&2), "{layout:?}");

    // Records produced through node 1's bootstrap go to each partition's leader, wherever it is.
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", cluster.nodes[0].bootstrap())
        .set("acks", "all")
        .create()
        .expect("producer");
    let mut sent = Vec::new();
    for i in 0..200 {
        let p = i % 4;
        let value = format!("value-{i}");
        let delivery = producer
            .send(
                FutureRecord::to("events")
                    .partition(p)
                    .key(&format!("k{i}"))
                    .payload(&value),
                Duration::from_secs(10),
            )
            .await
            .expect("delivered");
        assert_eq!(delivery.partition, p);
        sent.push((delivery.partition, delivery.offset, value));
    }
    // Every node's log holds exactly the partitions it leads.
    for (p, &leader) in layout.iter().enumerate() {
        for (i, n) in cluster.nodes.iter().enumerate() {
            let dir = n.data_dir().join(format!("events-{p}"));
            assert_eq!(
                dir.exists(),
                leader == i as i32 + 1,
                "events-{p} on node {}",
                i + 1
            );
        }
    }

    // A consumer group: its coordinator is whichever broker leads its __consumer_offsets
    // partition (created through the active controller on first use); offsets committed there
    // are read back after the restart below.
    let group_consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", cluster.nodes[0].bootstrap())
        .set("group.id", "cluster-group")
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .create()
        .expect("group consumer");
    group_consumer.subscribe(&["events"]).expect("subscribe");
    let mut consumed = 0;
    let deadline = Instant::now() + TIMEOUT;
    while consumed < sent.len() && Instant::now() < deadline {
        if let Some(Ok(_)) = group_consumer.poll(Duration::from_millis(200)) {
            consumed += 1;
        }
    }
    assert_eq!(consumed, sent.len(), "the group read every record");
    group_consumer
        .commit_consumer_state(rdkafka::consumer::CommitMode::Sync)
        .expect("commit");
    drop(group_consumer);

    // SIGTERM both at once, start both again: topic, config and records are all there.
    for n in &cluster.nodes {
        n.terminate();
    }
    for n in cluster.nodes.iter_mut() {
        assert!(n.wait_exit(Duration::from_secs(20)).success());
    }
    for n in cluster.nodes.iter_mut() {
        n.launch(&[]);
    }
    cluster.wait_for("both brokers back", TIMEOUT, || {
        leaders(&cluster.nodes[1].bootstrap(), "events").as_ref() == Some(&layout)
            && metadata(&cluster.nodes[0].bootstrap()).is_some_and(|(_, b, _)| b == vec![1, 2])
    });
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", cluster.nodes[1].bootstrap())
        .set("group.id", "cluster-reader")
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    for p in 0..4 {
        tpl.add_partition_offset("events", p, Offset::Beginning)
            .expect("tpl");
    }
    consumer.assign(&tpl).expect("assign");
    let mut got = Vec::new();
    let mut errors = Vec::new();
    let deadline = Instant::now() + TIMEOUT;
    while got.len() < sent.len() && Instant::now() < deadline {
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => {
                let value = String::from_utf8_lossy(m.payload().unwrap_or_default()).to_string();
                got.push((m.partition(), m.offset(), value));
            }
            Some(Err(e)) => errors.push(e.to_string()),
            None => {}
        }
    }
    got.sort();
    sent.sort();
    if got != sent {
        // What the client was told, and what the nodes said meanwhile.
        eprintln!("consumer errors: {errors:?}");
        for (i, n) in cluster.nodes.iter().enumerate() {
            eprintln!(
                "--- node {} ---\n{}",
                i + 1,
                common::cluster::tail(&n.log(), 40)
            );
        }
    }
    assert_eq!(
        got, sent,
        "every record, at its offset, after a full restart"
    );
    let configs = admin(&cluster.nodes[0].bootstrap())
        .describe_configs(
            [&rdkafka::admin::ResourceSpecifier::Topic("events")],
            &AdminOptions::new(),
        )
        .await
        .expect("describe");
    // The group's committed offsets survived too: 50 records in each partition.
    let reader: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", cluster.nodes[1].bootstrap())
        .set("group.id", "cluster-group")
        .create()
        .expect("offset reader");
    let mut tpl = TopicPartitionList::new();
    for p in 0..4 {
        tpl.add_partition("events", p);
    }
    let committed = reader.committed_offsets(tpl, TIMEOUT).expect("committed");
    for p in 0..4 {
        let offset = committed
            .find_partition("events", p)
            .map(|e| e.offset())
            .expect("partition");
        assert_eq!(offset, Offset::Offset(50), "committed offset of events-{p}");
    }
    let config = configs[0].as_ref().expect("config");
    assert_eq!(
        config
            .get("retention.ms")
            .and_then(|e| e.value.clone())
            .as_deref(),
        Some("86400000")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn split_roles_three_controllers_and_brokers_that_join_later() {
    // Controllers 1-3 form the quorum; broker 4 starts with them, broker 5 joins later.
    let mut cluster = Cluster::start_split(3, 2, &[5]);
    let broker4 = cluster.nodes[3].bootstrap();
    cluster.wait_for("broker 4 registered", TIMEOUT, || unfenced(&cluster, 4));
    let results = admin(&broker4)
        .create_topics(
            [&NewTopic::new("split", 2, TopicReplication::Fixed(1))],
            &AdminOptions::new().operation_timeout(Some(TIMEOUT)),
        )
        .await
        .expect("create");
    assert!(results[0].is_ok(), "{results:?}");

    // A broker-only node joins the running cluster: it finds the quorum through the voters,
    // registers, and serves the same metadata.
    cluster.nodes[4].launch(&[]);
    let broker5 = cluster.nodes[4].bootstrap();
    cluster.wait_for("both brokers, same topics, on both", TIMEOUT, || {
        let (Some((_, b4, t4)), Some((_, b5, t5))) = (metadata(&broker4), metadata(&broker5))
        else {
            return false;
        };
        b4 == vec![4, 5] && b4 == b5 && t4 == vec!["split".to_string()] && t4 == t5
    });
    // Controllers serve no client traffic: their only listener is the CONTROLLER one.
    assert!(!cluster.nodes[0].log().contains("listener=PLAINTEXT"));

    // SIGKILL the active controller: the other two elect a successor, and a topic created
    // through broker 5 (forwarded) succeeds.
    let first = leader(&cluster).expect("a leader");
    assert!((1..=3).contains(&first), "a controller leads, not {first}");
    let killed_at = Instant::now();
    cluster.node(first).kill();
    let admin5 = admin(&broker5);
    loop {
        let r = admin5
            .create_topics(
                [&NewTopic::new("split-after", 1, TopicReplication::Fixed(1))],
                &AdminOptions::new().operation_timeout(Some(Duration::from_secs(5))),
            )
            .await;
        if let Ok(results) = &r
            && results[0].is_ok()
        {
            break;
        }
        assert!(killed_at.elapsed() < TIMEOUT, "{r:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    cluster.wait_for("split-after on broker 4", TIMEOUT, || {
        metadata(&broker4).is_some_and(|(_, _, t)| t.contains(&"split-after".to_string()))
    });

    // Everything that runs stops by itself on SIGTERM, at once.
    for (i, n) in cluster.nodes.iter().enumerate() {
        if i as i32 + 1 != first {
            n.terminate();
        }
    }
    for (i, n) in cluster.nodes.iter_mut().enumerate() {
        if i as i32 + 1 != first {
            let status = n.wait_exit(Duration::from_secs(20));
            assert!(status.success(), "node {} exited with {status}", i + 1);
        }
    }
}

#[test]
fn a_changed_voter_list_is_named_with_the_file_and_the_fix() {
    let mut node = common::Node::start(&[]);
    assert!(node.stop().success());
    let config = std::fs::read_to_string(&node.config_path).expect("config");
    let voters_line = format!(
        "controller.quorum.voters=1@127.0.0.1:{}",
        node.controller_port
    );
    assert!(config.contains(&voters_line));
    let changed = config.replace(
        &voters_line,
        &format!("{voters_line},2@127.0.0.1:{}", common::free_port()),
    );
    std::fs::write(&node.config_path, changed).expect("write");
    let path = node.config_path.display().to_string();
    let (code, _, err) = common::run_kraftd(&["start", "-c", &path]);
    assert_eq!(code, 1, "{err}");
    let line = err.lines().last().unwrap_or_default();
    assert!(line.contains(&path), "{line}");
    assert!(
        line.contains("controller.quorum.voters names voters [1, 2] but this node's metadata log was formed with voters [1]"),
        "{line}"
    );
    assert!(line.contains("quorum-state"), "{line}");
    assert!(line.contains("added [2]"), "{line}");
    assert!(
        line.contains("Fix: set controller.quorum.voters back to ids [1]"),
        "{line}"
    );
    // The supported path: the new node joins as an observer and is added through the quorum.
    let contact = format!("127.0.0.1:{}", node.controller_port);
    assert!(
        line.contains(&format!(
            "controller.quorum.bootstrap.servers={contact} instead of controller.quorum.voters"
        )),
        "{line}"
    );
    assert!(line.contains("--no-initial-controllers"), "{line}");
    assert!(
        line.contains(&format!(
            "kraftd quorum add-voter --bootstrap-controller {contact} -c <its file>"
        )),
        "{line}"
    );
    // Nothing was lost: with the old list back, the node starts on its data.
    std::fs::write(&node.config_path, config).expect("restore");
    node.launch(&[]);
    assert!(node.stop().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_voter_that_fell_behind_the_trimmed_log_catches_up_from_a_snapshot() {
    // Small metadata segments, frequent snapshots and no retention: the leader trims its log
    // below each snapshot, so a voter that was down must fetch the snapshot (KIP-630).
    let mut cluster = Cluster::start(
        3,
        &[
            ("metadata.log.segment.bytes", "2048"),
            ("metadata.log.max.record.bytes.between.snapshots", "1024"),
            ("metadata.max.retention.bytes", "1"),
        ],
    );
    cluster.wait_for("three unfenced brokers", TIMEOUT, || {
        (1..=3).all(|id| unfenced(&cluster, id))
    });
    // Node 3 goes down (cleanly, so it is not the one leading when it comes back).
    cluster.node(3).terminate();
    assert!(cluster.node(3).wait_exit(Duration::from_secs(20)).success());
    let bootstrap = format!(
        "{},{}",
        cluster.nodes[0].bootstrap(),
        cluster.nodes[1].bootstrap()
    );
    let admin = admin(&bootstrap);
    let names: Vec<String> = (0..40).map(|i| format!("topic-{i:02}")).collect();
    let deadline = Instant::now() + TIMEOUT;
    for chunk in names.chunks(10) {
        let mut pending: Vec<&String> = chunk.iter().collect();
        // Node 3 led, maybe, and handed over as it stopped: NOT_CONTROLLER is retriable, and a
        // retry may find a topic that the first attempt did create.
        while !pending.is_empty() {
            let topics: Vec<NewTopic> = pending
                .iter()
                .map(|n| NewTopic::new(n, 1, TopicReplication::Fixed(1)))
                .collect();
            let results = admin
                .create_topics(
                    topics.iter(),
                    &AdminOptions::new().operation_timeout(Some(TIMEOUT)),
                )
                .await
                .expect("create");
            let mut retry = Vec::new();
            for r in &results {
                match r {
                    Ok(_) => {}
                    Err((_, rdkafka::types::RDKafkaErrorCode::TopicAlreadyExists)) => {}
                    Err((name, rdkafka::types::RDKafkaErrorCode::NotController)) => {
                        retry.push(chunk.iter().find(|n| *n == name).expect("ours"));
                    }
                    Err(e) => panic!("create failed: {e:?}"),
                }
            }
            pending = retry;
            assert!(
                Instant::now() < deadline,
                "topics never created: {pending:?}"
            );
            if !pending.is_empty() {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    cluster.wait_for("the leader trimming its log", TIMEOUT, || {
        cluster.nodes[..2].iter().any(|n| {
            n.log()
                .contains("trimmed the metadata log below its snapshot")
        })
    });

    cluster.node(3).launch(&[]);
    let node3 = cluster.nodes[2].bootstrap();
    cluster.wait_for(
        "node 3 installing a snapshot and seeing every topic",
        TIMEOUT,
        || {
            cluster.nodes[2]
                .log()
                .contains("installed the leader's snapshot of the metadata log")
                && metadata(&node3).is_some_and(|(_, b, t)| {
                    b == vec![1, 2, 3] && names.iter().all(|n| t.contains(n))
                })
        },
    );
    for n in &cluster.nodes {
        n.terminate();
    }
    for n in cluster.nodes.iter_mut() {
        assert!(n.wait_exit(Duration::from_secs(20)).success());
    }
}

/// Kafka 4.x's quickstart: `controller.quorum.bootstrap.servers` instead of voters, formatted
/// with `--standalone` (or `start --auto-format`, which does the same for such a controller).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_standalone_formatted_dynamic_quorum_starts_and_serves() {
    for auto_format in [false, true] {
        let dir = tempfile::tempdir().expect("tempdir");
        let client_port = common::free_port();
        let controller_port = common::free_port();
        let text = format!(
            "process.roles=broker,controller\nnode.id=1\n\
             controller.quorum.bootstrap.servers=127.0.0.1:{controller_port}\n\
             listeners=PLAINTEXT://127.0.0.1:{client_port},CONTROLLER://127.0.0.1:{controller_port}\n\
             advertised.listeners=PLAINTEXT://127.0.0.1:{client_port},CONTROLLER://127.0.0.1:{controller_port}\n\
             controller.listener.names=CONTROLLER\n\
             log.dirs={}\n",
            dir.path().join("data").display()
        );
        let mut node = common::Node::prepare(dir, client_port, controller_port, &text);
        let config = node.config_path.display().to_string();
        if auto_format {
            node.launch(&["--auto-format"]);
        } else {
            let (code, out, err) = common::run_kraftd(&["storage", "random-uuid"]);
            assert_eq!(code, 0, "{err}");
            let (code, _, err) = common::run_kraftd(&[
                "storage",
                "format",
                "--standalone",
                "-t",
                out.trim(),
                "-c",
                &config,
            ]);
            assert_eq!(code, 0, "{err}");
            node.launch(&[]);
        }
        let bootstrap = node.bootstrap();
        let results = admin(&bootstrap)
            .create_topics(
                [&NewTopic::new(
                    "quickstart-events",
                    1,
                    TopicReplication::Fixed(1),
                )],
                &AdminOptions::new().operation_timeout(Some(TIMEOUT)),
            )
            .await
            .expect("create");
        assert!(results[0].is_ok(), "{results:?}");
        let controller = format!("127.0.0.1:{controller_port}");
        let (code, out, err) =
            common::run_kraftd(&["quorum", "status", "--bootstrap-controller", &controller]);
        assert_eq!(code, 0, "{err}");
        assert!(out.contains("LeaderId:               1"), "{out}");
        assert!(
            out.contains(&format!("CONTROLLER://127.0.0.1:{controller_port}")),
            "{out}"
        );
        // A restart finds the same single voter in its metadata log.
        node.restart();
        assert!(
            metadata(&bootstrap)
                .is_some_and(|(_, _, t)| t.contains(&"quickstart-events".to_string()))
        );
        assert!(node.stop().success());
    }
}
