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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_with_an_unreplicated_tail_truncates_it_when_it_returns_as_a_follower() {
    let mut cluster = Cluster::start(3, FAST_FENCING);
    cluster.wait_for("three unfenced brokers", TIMEOUT, || {
        cluster
            .nodes
            .iter()
            .all(|n| brokers(&n.bootstrap()) == vec![1, 2, 3])
    });
    create_topic(&cluster.bootstrap(), "divergent", &[]).await;
    let mut state = None;
    cluster.wait_for("divergent-0 with a full ISR", TIMEOUT, || {
        state = partition_state(&cluster.bootstrap(), "divergent");
        state
            .as_ref()
            .is_some_and(|(_, _, isr)| isr == &vec![1, 2, 3])
    });
    let (leader, replicas, _) = state.expect("state");
    let followers: Vec<i32> = replicas.iter().copied().filter(|&r| r != leader).collect();
    let mut acked = produce(
        &producer(&cluster.bootstrap(), "all"),
        "divergent",
        &values("committed", 50),
    )
    .await;

    // The followers freeze (SIGSTOP) once their last long-poll at the leader has come back
    // empty; the leader alone takes 20 acks=1 records nobody else will ever see.
    for &f in &followers {
        cluster.node(f).pause();
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let lost = produce(
        &producer(&bootstrap_of(&cluster, &[leader]), "1"),
        "divergent",
        &values("lost", 20),
    )
    .await;
    assert_eq!(lost.first().map(|l| l.0), Some(50));
    cluster.node(leader).kill();
    for &f in &followers {
        cluster.node(f).resume();
    }

    // A follower takes over at leader epoch 1 from offset 50; new records reuse offsets 50..
    let bootstrap = bootstrap_of(&cluster, &followers);
    cluster.wait_for("a new leader without the old one", TIMEOUT, || {
        partition_state(&bootstrap, "divergent")
            .is_some_and(|(l, _, isr)| followers.contains(&l) && !isr.contains(&leader))
    });
    let after = produce(
        &producer(&bootstrap, "all"),
        "divergent",
        &values("after", 30),
    )
    .await;
    assert_eq!(after.first().map(|a| a.0), Some(50));
    acked.extend(after);

    // The old leader returns as a follower: its epoch-0 tail [50, 70) diverges from the new
    // leader's log, so it truncates to 50 and fetches the new records.
    cluster.node(leader).launch(&[]);
    cluster.wait_for("the old leader back in the ISR", TIMEOUT, || {
        partition_state(&bootstrap, "divergent").is_some_and(|(_, _, isr)| isr == vec![1, 2, 3])
    });
    let log = cluster.node(leader).log();
    assert!(
        log.contains("truncated a divergent log tail to the leader's"),
        "{}",
        common::cluster::tail(&log, 40)
    );
    // Make it the leader again (replica order) and read everything from it.
    let current = partition_state(&bootstrap, "divergent").map(|s| s.0);
    for &f in &followers {
        if Some(f) == current {
            cluster.node(f).kill();
        }
    }
    let rest: Vec<i32> = replicas
        .iter()
        .copied()
        .filter(|&r| Some(r) != current)
        .collect();
    let bootstrap = bootstrap_of(&cluster, &rest);
    cluster.wait_for("the old leader leading again", TIMEOUT, || {
        partition_state(&bootstrap, "divergent").is_some_and(|(l, _, _)| l == leader)
    });
    assert_eq!(
        consume_all(&bootstrap, "divergent", acked.len()),
        acked,
        "the acknowledged records, and none of the lost tail"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn min_insync_replicas_refuses_acks_all_when_the_isr_is_too_small() {
    use rdkafka::error::{KafkaError, RDKafkaErrorCode};

    // One controller and three brokers (ids 2..=4), so brokers can die without the quorum.
    // A follower silent for 1 s leaves the ISR through AlterPartition; a dead broker is fenced
    // (and leaves every ISR) after 4 s.
    let mut cluster = Cluster::start_split_with(
        1,
        3,
        &[],
        &[
            ("broker.session.timeout.ms", "4000"),
            ("broker.heartbeat.interval.ms", "300"),
            ("replica.lag.time.max.ms", "1000"),
        ],
    );
    let all = bootstrap_of(&cluster, &[2, 3, 4]);
    cluster.wait_for("three unfenced brokers", TIMEOUT, || {
        brokers(&all) == vec![2, 3, 4]
    });
    create_topic(&all, "guarded", &[("min.insync.replicas", "2")]).await;
    let mut state = None;
    cluster.wait_for("guarded-0 with a full ISR", TIMEOUT, || {
        state = partition_state(&all, "guarded");
        state
            .as_ref()
            .is_some_and(|(_, _, isr)| isr == &vec![2, 3, 4])
    });
    let (leader, replicas, _) = state.expect("state");
    let followers: Vec<i32> = replicas.iter().copied().filter(|&r| r != leader).collect();
    let (a, b) = (followers[0], followers[1]);
    let strict = ClientConfig::new()
        .set("bootstrap.servers", &all)
        .set("acks", "all")
        .set("retries", "0")
        .set("message.timeout.ms", "10000")
        .create::<FutureProducer>()
        .expect("producer");
    let mut acked = produce(&strict, "guarded", &values("three", 10)).await;

    // Follower a stops fetching. The next acks=all record waits for it until it has lagged
    // replica.lag.time.max.ms behind the leader's end; then the leader shrinks the ISR through
    // the controller and the record is committed by the two left in sync.
    cluster.node(a).pause();
    let paused_at = Instant::now();
    acked.extend(produce(&strict, "guarded", &values("two", 10)).await);
    eprintln!(
        "acks=all with a silent follower took {} ms",
        paused_at.elapsed().as_millis()
    );
    let mut two = vec![leader, b];
    two.sort();
    // The image reaches the leader's Metadata answers a moment after the commit.
    cluster.wait_for("the ISR without the silent follower", TIMEOUT, || {
        partition_state(&bootstrap_of(&cluster, &[leader]), "guarded").map(|s| s.2)
            == Some(two.clone())
    });
    let log = cluster.node(leader).log();
    assert!(
        log.contains("ISR change committed"),
        "the leader shrank the ISR itself:\n{}",
        common::cluster::tail(&log, 40)
    );

    // Follower b dies too: fenced, out of the ISR, and acks=all is refused before anything is
    // written, while acks=1 still works.
    cluster.node(b).kill();
    cluster.wait_for("the leader alone in the ISR", TIMEOUT, || {
        partition_state(&bootstrap_of(&cluster, &[leader]), "guarded")
            .is_some_and(|(_, _, isr)| isr == vec![leader])
    });
    let refused = strict
        .send(
            FutureRecord::<(), _>::to("guarded")
                .partition(0)
                .payload("refused"),
            Duration::from_secs(10),
        )
        .await;
    assert!(
        matches!(
            refused,
            Err((
                KafkaError::MessageProduction(RDKafkaErrorCode::NotEnoughReplicas),
                _
            ))
        ),
        "{refused:?}"
    );
    let one = produce(
        &producer(&bootstrap_of(&cluster, &[leader]), "1"),
        "guarded",
        &values("one", 1),
    )
    .await;
    assert_eq!(
        one[0].0,
        acked.len() as i64,
        "nothing was written for the refused record"
    );

    // Follower a wakes up, catches up and rejoins the ISR: acks=all works again.
    cluster.node(a).resume();
    cluster.wait_for("the woken follower back in the ISR", TIMEOUT, || {
        partition_state(&bootstrap_of(&cluster, &[leader]), "guarded")
            .is_some_and(|(_, _, isr)| isr.contains(&a) && isr.len() == 2)
    });
    produce(&strict, "guarded", &values("again", 5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_records_answers_once_every_replica_moved_its_log_start() {
    let mut cluster = Cluster::start(3, FAST_FENCING);
    cluster.wait_for("three unfenced brokers", TIMEOUT, || {
        cluster
            .nodes
            .iter()
            .all(|n| brokers(&n.bootstrap()) == vec![1, 2, 3])
    });
    create_topic(&cluster.bootstrap(), "trimmed", &[]).await;
    let mut leader = -1;
    cluster.wait_for(
        "trimmed-0 with all three in its ISR",
        TIMEOUT,
        || match partition_state(&cluster.bootstrap(), "trimmed") {
            Some((l, _, isr)) if isr == vec![1, 2, 3] => {
                leader = l;
                true
            }
            _ => false,
        },
    );
    let acked = produce(
        &producer(&cluster.bootstrap(), "all"),
        "trimmed",
        &values("r", 10),
    )
    .await;
    assert_eq!(acked.last().map(|a| a.0), Some(9));

    // DeleteRecords answers with the low watermark once every live replica moved its log
    // start there (Kafka's DelayedDeleteRecords), not just the leader.
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset("trimmed", 0, Offset::Offset(6))
        .expect("tpl");
    let result = admin(&cluster.bootstrap())
        .delete_records(
            &tpl,
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(30))),
        )
        .await
        .expect("delete_records");
    let p = result.find_partition("trimmed", 0).expect("partition");
    assert_eq!(p.error(), Ok(()));
    assert_eq!(p.offset(), Offset::Offset(6));

    // So the next leader starts there too: SIGKILL this one, and the survivors serve from 6.
    cluster.node(leader).kill();
    let survivors: Vec<i32> = [1, 2, 3].into_iter().filter(|&id| id != leader).collect();
    let bootstrap = bootstrap_of(&cluster, &survivors);
    cluster.wait_for("a new leader", TIMEOUT, || {
        partition_state(&bootstrap, "trimmed").is_some_and(|(l, _, _)| survivors.contains(&l))
    });
    let expected: Vec<(i64, String)> = acked.into_iter().skip(6).collect();
    assert_eq!(consume_all(&bootstrap, "trimmed", 4), expected);
}
