//! Real-process durability: records acknowledged with acks=all survive SIGKILL of the node, and a
//! corrupted log tail is cut off on restart without serving a corrupt batch.

mod common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::Node;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};

const TIMEOUT: Duration = Duration::from_secs(30);

/// (partition, offset) -> (key, value).
type Records = BTreeMap<(i32, i64), (Vec<u8>, Vec<u8>)>;

async fn create_topic(node: &Node, name: &str, partitions: i32) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", node.bootstrap())
        .create()
        .expect("admin");
    let topic = NewTopic::new(name, partitions, TopicReplication::Fixed(1));
    for r in admin
        .create_topics(
            [&topic],
            &AdminOptions::new().operation_timeout(Some(TIMEOUT)),
        )
        .await
        .expect("create")
    {
        r.expect("created");
    }
}

/// Everything in `topic`, by (partition, offset), read with CRC checks on.
fn read_all(
    node: &Node,
    topic: &str,
    partitions: i32,
    at_least: usize,
) -> BTreeMap<(i32, i64), (Vec<u8>, Vec<u8>)> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", node.bootstrap())
        .set("group.id", "durability-reader")
        .set("enable.auto.commit", "false")
        .set("check.crcs", "true")
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&tpl).expect("assign");
    let mut out = BTreeMap::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut quiet_since = Instant::now();
    loop {
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                out.insert(
                    (m.partition(), m.offset()),
                    (
                        m.key().unwrap_or_default().to_vec(),
                        m.payload().unwrap_or_default().to_vec(),
                    ),
                );
                quiet_since = Instant::now();
            }
            Some(Err(e)) => panic!("consume error (a corrupt batch was served?): {e}"),
            None => {}
        }
        if out.len() >= at_least && quiet_since.elapsed() > Duration::from_millis(1500) {
            return out;
        }
        assert!(
            Instant::now() < deadline,
            "read only {} of at least {at_least}",
            out.len()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_records_survive_sigkill_during_produce() {
    let mut node = Node::start(&[]);
    create_topic(&node, "crash", 3).await;
    let acked: Arc<Mutex<Records>> = Arc::default();
    for round in 0..3 {
        let producer: FutureProducer = ClientConfig::new()
            .set("bootstrap.servers", node.bootstrap())
            .set("acks", "all")
            .set("enable.idempotence", "true")
            .set("linger.ms", "2")
            .set("message.timeout.ms", "5000")
            .create()
            .expect("producer");
        // Keep producing while the node is killed part-way through.
        let target = (round + 1) * 3_000;
        let mut i = 0usize;
        let mut in_flight = Vec::new();
        loop {
            let key = format!("r{round}-k{i}").into_bytes();
            let value = format!("r{round}-v{i}-").repeat(1 + i % 5).into_bytes();
            let fut = producer
                .send_result(FutureRecord::to("crash").key(&key).payload(&value))
                .expect("queue");
            in_flight.push((fut, key, value));
            i += 1;
            if in_flight.len() >= 200 {
                for (fut, key, value) in in_flight.drain(..) {
                    if let Ok(Ok(d)) = fut.await {
                        acked
                            .lock()
                            .unwrap()
                            .insert((d.partition, d.offset), (key, value));
                    }
                }
            }
            if acked.lock().unwrap().len() >= target {
                // Kill with requests in flight; whatever was acknowledged before must survive.
                node.kill();
                for (fut, key, value) in in_flight.drain(..) {
                    if let Ok(Ok(d)) = fut.await {
                        acked
                            .lock()
                            .unwrap()
                            .insert((d.partition, d.offset), (key, value));
                    }
                }
                break;
            }
        }
        drop(producer);
        node.launch(&[]);
    }
    let acked = acked.lock().unwrap().clone();
    assert!(acked.len() >= 9_000, "acked {}", acked.len());
    let stored = read_all(&node, "crash", 3, acked.len());
    for (pos, record) in &acked {
        assert_eq!(
            stored.get(pos),
            Some(record),
            "acknowledged record at {pos:?} lost or changed"
        );
    }
    // Offsets stay dense: nothing acknowledged was overwritten by a later round.
    for p in 0..3 {
        let offsets: Vec<i64> = stored
            .keys()
            .filter(|(sp, _)| *sp == p)
            .map(|(_, o)| *o)
            .collect();
        assert_eq!(
            offsets,
            (0..offsets.len() as i64).collect::<Vec<_>>(),
            "partition {p}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_tail_is_cut_off_and_never_served() {
    let mut node = Node::start(&[]);
    create_topic(&node, "torn", 1).await;
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", node.bootstrap())
        .set("linger.ms", "0")
        .create()
        .expect("producer");
    for i in 0..20 {
        let value = format!("value-{i}");
        producer
            .send(FutureRecord::to("torn").key("k").payload(&value), TIMEOUT)
            .await
            .expect("delivered");
    }
    drop(producer);
    // SIGKILL so there is no clean-shutdown marker, then flip a byte inside the last batch.
    node.kill();
    let log = node
        .data_dir()
        .join("torn-0")
        .join("00000000000000000000.log");
    let mut bytes = std::fs::read(&log).expect("segment");
    let len = bytes.len();
    bytes[len - 3] ^= 0x5a;
    std::fs::write(&log, &bytes).expect("write");
    node.launch(&[]);
    assert!(
        node.log().contains("truncat"),
        "recovery logs what it cut off:\n{}",
        node.log()
    );
    let stored = read_all(&node, "torn", 1, 19);
    let values: Vec<String> = stored
        .values()
        .map(|(_, v)| String::from_utf8(v.clone()).unwrap())
        .collect();
    let expected: Vec<String> = (0..19).map(|i| format!("value-{i}")).collect();
    assert_eq!(
        values, expected,
        "the 19 intact records, and not the corrupt 20th"
    );
    // New records continue at offset 19.
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", node.bootstrap())
        .create()
        .expect("producer");
    let d = producer
        .send(FutureRecord::to("torn").key("k").payload("after"), TIMEOUT)
        .await
        .expect("delivered");
    assert_eq!((d.partition, d.offset), (0, 19));
}
