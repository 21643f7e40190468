//! Partition data replicated between brokers, with real `kraftd` processes and a real client
//! (librdkafka): acks=all records survive SIGKILL of the partition leader and are served by the
//! new leader at their offsets; a follower that was down catches up, truncating a divergent
//! tail; min.insync.replicas refuses acks=all once too few replicas are in sync.

mod common;

use std::time::{Duration, Instant};

use common::cluster::Cluster;
use rdkafka::Message;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};

const TIMEOUT: Duration = Duration::from_secs(60);

/// Fast failure detection, so a SIGKILLed broker is fenced (and its leaderships move) within
/// seconds instead of Kafka's 9 s.
const FAST_FENCING: &[(&str, &str)] = &[
    ("broker.session.timeout.ms", "3000"),
    ("broker.heartbeat.interval.ms", "300"),
];

fn admin(bootstrap: &str) -> AdminClient<DefaultClientContext> {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("admin client")
}

/// (leader, replicas, isr) of `topic`-0 as the node at `bootstrap` reports it.
fn partition_state(bootstrap: &str, topic: &str) -> Option<(i32, Vec<i32>, Vec<i32>)> {
    let md = admin(bootstrap)
        .inner()
        .fetch_metadata(Some(topic), Duration::from_secs(3))
        .ok()?;
    let t = md.topics().iter().find(|t| t.name() == topic)?;
    let p = t.partitions().iter().find(|p| p.id() == 0)?;
    if t.error().is_some() || p.error().is_some() {
        return None;
    }
    let mut isr = p.isr().to_vec();
    isr.sort();
    Some((p.leader(), p.replicas().to_vec(), isr))
}

fn brokers(bootstrap: &str) -> Vec<i32> {
    let Ok(md) = admin(bootstrap)
        .inner()
        .fetch_metadata(None, Duration::from_secs(3))
    else {
        return Vec::new();
    };
    let mut b: Vec<i32> = md.brokers().iter().map(|b| b.id()).collect();
    b.sort();
    b
}

fn bootstrap_of(cluster: &Cluster, ids: &[i32]) -> String {
    ids.iter()
        .map(|&id| cluster.nodes[(id - 1) as usize].bootstrap())
        .collect::<Vec<_>>()
        .join(",")
}

fn producer(bootstrap: &str, acks: &str) -> FutureProducer {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("acks", acks)
        .set("message.timeout.ms", "30000")
        .create()
        .expect("producer")
}

/// Sends `values` one at a time (each acknowledged before the next) and returns
/// (offset, value) of each.
async fn produce(producer: &FutureProducer, topic: &str, values: &[String]) -> Vec<(i64, String)> {
    let mut acked = Vec::new();
    for v in values {
        let (partition, offset) = producer
            .send(
                FutureRecord::<(), _>::to(topic).partition(0).payload(v),
                Duration::from_secs(30),
            )
            .await
            .map(|d| (d.partition, d.offset))
            .unwrap_or_else(|(e, _)| panic!("{v} not acknowledged: {e}"));
        assert_eq!(partition, 0);
        acked.push((offset, v.clone()));
    }
    acked
}

/// Every record of `topic`-0 from the start, as (offset, value), read from `bootstrap` until
/// `expected` records came or the timeout passed.
fn consume_all(bootstrap: &str, topic: &str, expected: usize) -> Vec<(i64, String)> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "replication-reader")
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Beginning)
        .expect("tpl");
    consumer.assign(&tpl).expect("assign");
    let mut got = Vec::new();
    let deadline = Instant::now() + TIMEOUT;
    while got.len() < expected && Instant::now() < deadline {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(200)) {
            let value = String::from_utf8_lossy(m.payload().unwrap_or_default()).to_string();
            got.push((m.offset(), value));
        }
    }
    // Anything beyond what was expected would show up here too.
    if let Some(Ok(m)) = consumer.poll(Duration::from_millis(500)) {
        got.push((
            m.offset(),
            String::from_utf8_lossy(m.payload().unwrap_or_default()).to_string(),
        ));
    }
    got
}

fn values(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}-{i}")).collect()
}

async fn create_topic(bootstrap: &str, topic: &str, configs: &[(&str, &str)]) {
    let mut new = NewTopic::new(topic, 1, TopicReplication::Fixed(3));
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acks_all_records_survive_sigkill_of_the_leader_and_a_restarted_follower_catches_up() {
    let mut cluster = Cluster::start(3, FAST_FENCING);
    cluster.wait_for("three unfenced brokers", TIMEOUT, || {
        cluster
            .nodes
            .iter()
            .all(|n| brokers(&n.bootstrap()) == vec![1, 2, 3])
    });
    create_topic(&cluster.bootstrap(), "replicated", &[]).await;
    let mut state = None;
    cluster.wait_for("replicated-0 with its ISR on every node", TIMEOUT, || {
        let states: Vec<_> = cluster
            .nodes
            .iter()
            .map(|n| partition_state(&n.bootstrap(), "replicated"))
            .collect();
        let same = states.iter().all(|s| s.is_some() && *s == states[0]);
        if same {
            state = states[0].clone();
        }
        same
    });
    let (first_leader, replicas, isr) = state.expect("state");
    assert_eq!(isr, vec![1, 2, 3]);

    // acks=all: each record is acknowledged only once all three replicas have it.
    let mut acked = produce(
        &producer(&cluster.bootstrap(), "all"),
        "replicated",
        &values("before", 200),
    )
    .await;
    assert_eq!(acked.first().map(|a| a.0), Some(0));

    // SIGKILL the leader: the controller fences it and elects the next ISR replica, which
    // serves every acknowledged record at its offset.
    cluster.node(first_leader).kill();
    let survivors: Vec<i32> = replicas
        .iter()
        .copied()
        .filter(|&r| r != first_leader)
        .collect();
    let bootstrap = bootstrap_of(&cluster, &survivors);
    let killed_at = Instant::now();
    let mut second_leader = -1;
    cluster.wait_for(
        "a new leader from the ISR",
        TIMEOUT,
        || match partition_state(&bootstrap, "replicated") {
            Some((l, _, isr)) if survivors.contains(&l) && !isr.contains(&first_leader) => {
                second_leader = l;
                true
            }
            _ => false,
        },
    );
    eprintln!(
        "leader {first_leader} SIGKILLed; {second_leader} leads after {} ms",
        killed_at.elapsed().as_millis()
    );
    assert_eq!(
        second_leader, survivors[0],
        "the first surviving replica in replica order"
    );
    assert_eq!(consume_all(&bootstrap, "replicated", acked.len()), acked);

    // Writes go on with two replicas in sync.
    acked.extend(
        produce(
            &producer(&bootstrap, "all"),
            "replicated",
            &values("during", 100),
        )
        .await,
    );

    // The killed broker comes back as a follower, catches up and rejoins the ISR.
    cluster.node(first_leader).launch(&[]);
    cluster.wait_for("the restarted broker back in the ISR", TIMEOUT, || {
        partition_state(&bootstrap, "replicated")
            .is_some_and(|(l, _, isr)| l == second_leader && isr == vec![1, 2, 3])
    });
    acked.extend(
        produce(
            &producer(&cluster.bootstrap(), "all"),
            "replicated",
            &values("after", 100),
        )
        .await,
    );

    // Now the second leader dies: replica order makes the restarted broker the next leader,
    // and it must have everything.
    cluster.node(second_leader).kill();
    let rest: Vec<i32> = replicas
        .iter()
        .copied()
        .filter(|&r| r != second_leader)
        .collect();
    let bootstrap = bootstrap_of(&cluster, &rest);
    cluster.wait_for("the restarted broker leading", TIMEOUT, || {
        partition_state(&bootstrap, "replicated").is_some_and(|(l, _, _)| l == first_leader)
    });
    let got = consume_all(&bootstrap, "replicated", acked.len());
    assert_eq!(got.len(), acked.len());
    assert_eq!(
        got, acked,
        "every acknowledged record, at its offset, from the caught-up broker"
    );
}
