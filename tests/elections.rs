//! Leader elections beyond failover, with real `kraftd` processes: leadership goes back to the
//! preferred replica by itself (`auto.leader.rebalance.enable`) or when asked (ElectLeaders,
//! `kafka-leader-election.sh`, driven here by confluent-kafka's `elect_leaders`), and a partition
//! whose whole ISR died stays leaderless unless unclean elections are allowed — by topic config
//! (automatic) or by an UNCLEAN ElectLeaders.

mod common;

use std::time::{Duration, Instant};

use common::cluster::Cluster;
use common::scripts::{PIP_INSTALL, require, run_script, script};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;

const TIMEOUT: Duration = Duration::from_secs(60);

const FAST_FENCING: [(&str, &str); 2] = [
    ("broker.session.timeout.ms", "3000"),
    ("broker.heartbeat.interval.ms", "300"),
];

fn admin(bootstrap: &str) -> AdminClient<DefaultClientContext> {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("admin client")
}

/// (leader, isr) of `topic`-0 as the broker at `bootstrap` reports it.
fn leader_and_isr(bootstrap: &str, topic: &str) -> Option<(i32, Vec<i32>)> {
    let md = admin(bootstrap)
        .inner()
        .fetch_metadata(Some(topic), Duration::from_secs(3))
        .ok()?;
    let t = md.topics().iter().find(|t| t.name() == topic)?;
    let p = t.partitions().iter().find(|p| p.id() == 0)?;
    if t.error().is_some() {
        return None;
    }
    let mut isr = p.isr().to_vec();
    isr.sort();
    Some((p.leader(), isr))
}

async fn create(bootstrap: &str, topic: &str, replicas: &[i32], configs: &[(&str, &str)]) {
    let assignment: &[&[i32]] = &[replicas];
    let mut new = NewTopic::new(topic, 1, TopicReplication::Variable(assignment));
    for (k, v) in configs {
        new = new.set(k, v);
    }
    let results = admin(bootstrap)
        .create_topics(
            [&new],
            &AdminOptions::new().operation_timeout(Some(TIMEOUT)),
        )
        .await
        .expect("create");
    assert!(results[0].is_ok(), "{results:?}");
}

/// confluent-kafka's `elect_leaders` for `topic`-0: the Kafka error name, or None on success.
fn elect(cluster: &Cluster, via: i32, kind: &str, topic: &str) -> Option<String> {
    let node = &cluster.nodes[(via - 1) as usize];
    let out = run_script(
        node,
        &format!("elect-{kind}-{topic}"),
        Duration::from_secs(60),
        "python3",
        &[
            &script("python/elect_leaders.py"),
            &node.bootstrap(),
            kind,
            topic,
            "0",
        ],
    );
    let v: serde_json::Value = serde_json::from_str(out.trim()).expect("json");
    v["error"].as_str().map(str::to_string)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leadership_returns_to_the_preferred_replica_by_itself() {
    let mut extra = FAST_FENCING.to_vec();
    extra.push(("leader.imbalance.check.interval.seconds", "1"));
    let mut cluster = Cluster::start(3, &extra);
    cluster.wait_for("three brokers", TIMEOUT, || {
        cluster.nodes.iter().all(|n| {
            admin(&n.bootstrap())
                .inner()
                .fetch_metadata(None, Duration::from_secs(3))
                .is_ok_and(|md| md.brokers().len() == 3)
        })
    });
    create(&cluster.bootstrap(), "balanced", &[2, 3, 1], &[]).await;
    cluster.wait_for("replica 2 leading with a full ISR", TIMEOUT, || {
        leader_and_isr(&cluster.bootstrap(), "balanced") == Some((2, vec![1, 2, 3]))
    });

    // The preferred replica dies: leadership moves on.
    cluster.node(2).kill();
    let survivors = format!(
        "{},{}",
        cluster.node(1).bootstrap(),
        cluster.node(3).bootstrap()
    );
    let (one, three) = (cluster.node(1).bootstrap(), cluster.node(3).bootstrap());
    cluster.wait_for("another leader, seen by both survivors", TIMEOUT, || {
        [&one, &three]
            .iter()
            .all(|b| leader_and_isr(b, "balanced").is_some_and(|(l, _)| l == 3 || l == 1))
    });

    // It comes back, catches up, and leads again without anyone asking.
    let back = Instant::now();
    cluster.node(2).launch(&[]);
    // Asked of the nodes that stayed up: the restarted one may answer from its old image for a
    // moment while it catches up.
    cluster.wait_for("replica 2 leading again", TIMEOUT, || {
        leader_and_isr(&survivors, "balanced") == Some((2, vec![1, 2, 3]))
    });
    eprintln!(
        "preferred leader back {} ms after its restart",
        back.elapsed().as_millis()
    );
    let logs: Vec<String> = cluster.nodes.iter().map(|n| n.log()).collect();
    assert!(
        logs.iter()
            .any(|l| l.contains("moving leadership back to preferred replicas")),
        "{}",
        logs.join("\n-----\n")
    );
    for n in &cluster.nodes {
        n.terminate();
    }
    for n in cluster.nodes.iter_mut() {
        assert!(n.wait_exit(Duration::from_secs(20)).success());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn elect_leaders_preferred_and_unclean_and_the_unclean_topic_config() {
    require(
        "python3",
        &["-c", "import confluent_kafka"],
        "confluent-kafka",
        PIP_INSTALL,
    );
    // One controller and brokers 2 and 3, so brokers can die while the quorum lives on.
    let mut extra = FAST_FENCING.to_vec();
    extra.push(("auto.leader.rebalance.enable", "false"));
    extra.push(("replica.lag.time.max.ms", "2000"));
    let mut cluster = Cluster::start_split_with(1, 2, &[], &extra);
    let both = format!(
        "{},{}",
        cluster.node(2).bootstrap(),
        cluster.node(3).bootstrap()
    );
    cluster.wait_for("brokers 2 and 3", TIMEOUT, || {
        admin(&both)
            .inner()
            .fetch_metadata(None, Duration::from_secs(3))
            .is_ok_and(|md| md.brokers().len() == 2)
    });

    // PREFERRED: after a restart, replica 2 is back in the ISR but does not lead (automatic
    // rebalancing is off) until asked.
    create(&both, "pref", &[2, 3], &[]).await;
    cluster.wait_for("pref led by 2", TIMEOUT, || {
        leader_and_isr(&both, "pref") == Some((2, vec![2, 3]))
    });
    cluster.node(2).kill();
    let three = cluster.node(3).bootstrap();
    cluster.wait_for("pref led by 3", TIMEOUT, || {
        leader_and_isr(&three, "pref").is_some_and(|(l, _)| l == 3)
    });
    cluster.node(2).launch(&[]);
    cluster.wait_for("2 back in pref's ISR", TIMEOUT, || {
        leader_and_isr(&both, "pref") == Some((3, vec![2, 3]))
    });
    assert_eq!(elect(&cluster, 3, "preferred", "pref"), None);
    cluster.wait_for("pref led by 2 again", TIMEOUT, || {
        leader_and_isr(&both, "pref") == Some((2, vec![2, 3]))
    });
    assert_eq!(
        elect(&cluster, 3, "preferred", "pref").as_deref(),
        Some("ELECTION_NOT_NEEDED")
    );

    // UNCLEAN: replica 3 falls out of the ISR (frozen), then the only ISR member dies.
    create(&both, "lossy", &[2, 3], &[]).await;
    create(
        &both,
        "lossy-auto",
        &[2, 3],
        &[("unclean.leader.election.enable", "true")],
    )
    .await;
    for t in ["lossy", "lossy-auto"] {
        cluster.wait_for("a full ISR", TIMEOUT, || {
            leader_and_isr(&both, t) == Some((2, vec![2, 3]))
        });
    }
    cluster.node(3).pause();
    let two = cluster.node(2).bootstrap();
    for t in ["lossy", "lossy-auto"] {
        cluster.wait_for("the ISR shrunk to 2", TIMEOUT, || {
            leader_and_isr(&two, t) == Some((2, vec![2]))
        });
    }
    cluster.node(2).kill();
    cluster.node(3).resume();
    // The topic that allows it gets replica 3 as leader by itself; the other stays leaderless.
    cluster.wait_for("lossy-auto led by 3 alone", TIMEOUT, || {
        leader_and_isr(&three, "lossy-auto") == Some((3, vec![3]))
    });
    let since = Instant::now();
    while since.elapsed() < Duration::from_secs(3) {
        let state = leader_and_isr(&three, "lossy");
        assert!(
            state.as_ref().is_none_or(|(l, _)| *l == -1),
            "lossy got a leader without an unclean election: {state:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(elect(&cluster, 3, "unclean", "lossy"), None);
    cluster.wait_for("lossy led by 3 alone", TIMEOUT, || {
        leader_and_isr(&three, "lossy") == Some((3, vec![3]))
    });
    assert!(
        cluster
            .node(1)
            .log()
            .contains("electing leaders outside the ISR")
    );
}
