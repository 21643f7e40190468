//! librdkafka (the `rdkafka` crate, built from its bundled source) against the real binary.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::Node;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};

const TIMEOUT: Duration = Duration::from_secs(30);

fn admin(node: &Node) -> AdminClient<DefaultClientContext> {
    ClientConfig::new()
        .set("bootstrap.servers", node.bootstrap())
        .create()
        .expect("admin client")
}

async fn create_topic(node: &Node, name: &str, partitions: i32, configs: &[(&str, &str)]) {
    let mut topic = NewTopic::new(name, partitions, TopicReplication::Fixed(1));
    for (k, v) in configs {
        topic = topic.set(k, v);
    }
    let results = admin(node)
        .create_topics(
            [&topic],
            &AdminOptions::new().operation_timeout(Some(TIMEOUT)),
        )
        .await
        .expect("create_topics");
    for r in results {
        r.expect("topic created");
    }
}

/// zlib's CRC-32: librdkafka's default `consistent_random` partitioner hashes keys with it.
fn crc32(data: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &b in data {
        crc ^= b as u32;
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

struct Sent {
    key: String,
    value: String,
    header: String,
    timestamp: i64,
}

fn producer(node: &Node, codec: &str) -> FutureProducer {
    ClientConfig::new()
        .set("bootstrap.servers", node.bootstrap())
        .set("compression.codec", codec)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "5")
        .create()
        .expect("producer")
}

/// Produces `count` keyed records with headers and explicit timestamps; returns what was sent,
/// by (partition, offset).
async fn produce(
    producer: &FutureProducer,
    topic: &str,
    count: usize,
    tag: &str,
) -> HashMap<(i32, i64), Sent> {
    let base_ts = 1_700_000_000_000i64;
    let mut futures = Vec::with_capacity(count);
    let mut sent = Vec::with_capacity(count);
    for i in 0..count {
        let key = format!("key-{i}");
        let value = format!("value-{i}-{tag}-").repeat(1 + i % 7);
        let header = format!("h-{i}");
        let ts = base_ts + i as i64;
        let record = FutureRecord::to(topic)
            .key(&key)
            .payload(&value)
            .timestamp(ts)
            .headers(OwnedHeaders::new().insert(Header {
                key: "idx",
                value: Some(header.as_bytes()),
            }));
        futures.push(producer.send_result(record).expect("queue"));
        sent.push(Sent {
            key,
            value,
            header,
            timestamp: ts,
        });
    }
    let mut by_offset = HashMap::new();
    for (fut, s) in futures.into_iter().zip(sent) {
        let delivery = fut.await.expect("delivery future").expect("delivered");
        by_offset.insert((delivery.partition, delivery.offset), s);
    }
    by_offset
}

/// Reads every partition from the beginning until `count` records arrived; checks each against
/// what was sent.
fn consume_and_check(node: &Node, topic: &str, partitions: i32, sent: &HashMap<(i32, i64), Sent>) {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", node.bootstrap())
        // librdkafka wants a group id even for assign(); no offsets are committed.
        .set("group.id", "kraftd-test-reader")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false")
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&tpl).expect("assign");
    let mut next_offset: HashMap<i32, i64> = HashMap::new();
    let mut received = 0usize;
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while received < sent.len() {
        assert!(
            std::time::Instant::now() < deadline,
            "consumed only {received} of {}",
            sent.len()
        );
        let Some(msg) = consumer.poll(Duration::from_millis(200)) else {
            continue;
        };
        let msg = msg.expect("consume");
        let p = msg.partition();
        let expected_offset = next_offset.entry(p).or_insert(0);
        assert_eq!(
            msg.offset(),
            *expected_offset,
            "offsets are dense in partition {p}"
        );
        *expected_offset += 1;
        let s = sent
            .get(&(p, msg.offset()))
            .unwrap_or_else(|| panic!("unexpected record at {p}/{}", msg.offset()));
        assert_eq!(msg.key(), Some(s.key.as_bytes()));
        assert_eq!(msg.payload(), Some(s.value.as_bytes()));
        assert_eq!(msg.timestamp().to_millis(), Some(s.timestamp));
        let headers = msg.headers().expect("headers");
        assert_eq!(headers.count(), 1);
        let h = headers.get(0);
        assert_eq!(h.key, "idx");
        assert_eq!(h.value, Some(s.header.as_bytes()));
        assert_eq!(
            p as u32,
            crc32(s.key.as_bytes()) % partitions as u32,
            "librdkafka's partitioner placed {}",
            s.key
        );
        received += 1;
    }
    let total: i64 = next_offset.values().sum();
    assert_eq!(total as usize, sent.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_keyed_records_in_every_codec_read_back_exactly() {
    let node = Node::start(&[]);
    for codec in ["none", "gzip", "snappy", "lz4", "zstd"] {
        let topic = format!("codec-{codec}");
        create_topic(&node, &topic, 3, &[]).await;
        let producer = producer(&node, codec);
        let sent = produce(&producer, &topic, 10_000, codec).await;
        assert_eq!(sent.len(), 10_000);
        consume_and_check(&node, &topic, 3, &sent);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topics_and_records_survive_a_restart() {
    let mut node = Node::start(&[]);
    create_topic(&node, "durable", 2, &[("retention.ms", "86400000")]).await;
    let sent = produce(&producer(&node, "lz4"), "durable", 2_000, "before").await;
    node.restart();
    consume_and_check(&node, "durable", 2, &sent);
    let md = admin(&node)
        .inner()
        .fetch_metadata(Some("durable"), TIMEOUT)
        .expect("metadata");
    assert_eq!(md.topics()[0].partitions().len(), 2);
    // New records continue the offsets.
    let more = produce(&producer(&node, "none"), "durable", 10, "after").await;
    for (p, o) in more.keys() {
        assert!(*o >= sent.keys().filter(|(sp, _)| sp == p).count() as i64);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_lists_this_broker_and_auto_creates_topics() {
    let node = Node::start(&[("num.partitions", "4")]);
    let producer = producer(&node, "none");
    let sent = produce(&producer, "auto-created", 100, "x").await;
    assert_eq!(sent.len(), 100);
    let md = admin(&node)
        .inner()
        .fetch_metadata(None, TIMEOUT)
        .expect("metadata");
    assert_eq!(md.brokers().len(), 1);
    assert_eq!(md.brokers()[0].id(), 1);
    assert_eq!(md.brokers()[0].host(), "127.0.0.1");
    assert_eq!(md.brokers()[0].port(), node.client_port as i32);
    let topic = md
        .topics()
        .iter()
        .find(|t| t.name() == "auto-created")
        .expect("auto-created topic listed");
    assert_eq!(topic.partitions().len(), 4);
    for p in topic.partitions() {
        assert_eq!(p.leader(), 1);
    }
}
