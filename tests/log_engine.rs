//! The log engine through real clients: DeleteRecords moves the log start offset (and it
//! survives a restart), retention deletes old segments, and a clean shutdown writes Kafka's
//! checkpoint files.

mod common;

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

fn admin(node: &Node) -> AdminClient<DefaultClientContext> {
    ClientConfig::new()
        .set("bootstrap.servers", node.bootstrap())
        .create()
        .expect("admin")
}

async fn create_topic(node: &Node, name: &str, configs: &[(&str, &str)]) {
    let mut topic = NewTopic::new(name, 1, TopicReplication::Fixed(1));
    for (k, v) in configs {
        topic = topic.set(k, v);
    }
    for r in admin(node)
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

/// Produces `count` records numbered from the partition's current end offset.
async fn produce(node: &Node, topic: &str, count: usize, size: usize) {
    let (_, start) = watermarks(node, topic);
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", node.bootstrap())
        .set("linger.ms", "5")
        .create()
        .expect("producer");
    let mut futures = Vec::new();
    for i in start as usize..start as usize + count {
        let mut value = format!("{i:08}").into_bytes();
        value.resize(size, b'.');
        futures.push(
            producer
                .send_result(FutureRecord::<(), _>::to(topic).payload(&value))
                .expect("queue"),
        );
    }
    for f in futures {
        f.await.expect("future").expect("delivered");
    }
}

fn watermarks(node: &Node, topic: &str) -> (i64, i64) {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", node.bootstrap())
        .create()
        .expect("consumer");
    consumer
        .fetch_watermarks(topic, 0, TIMEOUT)
        .expect("watermarks")
}

/// The first record a consumer gets when it asks for `offset` (librdkafka resets to the earliest
/// available offset after OFFSET_OUT_OF_RANGE, as configured).
fn first_record_from(node: &Node, topic: &str, offset: i64) -> (i64, String) {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", node.bootstrap())
        .set("group.id", "log-engine-reader")
        .set("auto.offset.reset", "earliest")
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Offset(offset))
        .unwrap();
    consumer.assign(&tpl).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) {
            let v = String::from_utf8_lossy(&m.payload().unwrap()[..8]).to_string();
            return (m.offset(), v);
        }
        assert!(Instant::now() < deadline, "no record");
    }
}

fn segment_files(node: &Node, topic: &str) -> Vec<String> {
    let mut files: Vec<String> = std::fs::read_dir(node.data_dir().join(format!("{topic}-0")))
        .expect("partition dir")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().to_string())
        .filter(|n| n.ends_with(".log"))
        .collect();
    files.sort();
    files
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_records_moves_the_log_start_and_survives_restart() {
    let mut node = Node::start(&[]);
    create_topic(&node, "trim", &[]).await;
    produce(&node, "trim", 100, 100).await;
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset("trim", 0, Offset::Offset(40))
        .unwrap();
    let result = admin(&node)
        .delete_records(&tpl, &AdminOptions::new().operation_timeout(Some(TIMEOUT)))
        .await
        .expect("delete_records");
    let e = &result.elements()[0];
    assert_eq!(
        e.offset(),
        Offset::Offset(40),
        "low watermark in the response"
    );
    assert_eq!(watermarks(&node, "trim"), (40, 100));
    // Asking for offset 10 is out of range: the consumer resets to the new start.
    assert_eq!(
        first_record_from(&node, "trim", 10),
        (40, "00000040".to_string())
    );
    // Beyond the high watermark is refused.
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset("trim", 0, Offset::Offset(500))
        .unwrap();
    let refused = admin(&node)
        .delete_records(&tpl, &AdminOptions::new().operation_timeout(Some(TIMEOUT)))
        .await;
    let refused_ok = match refused {
        Ok(tpl) => tpl.elements()[0].error().is_err(),
        Err(_) => true,
    };
    assert!(
        refused_ok,
        "an offset past the high watermark is OFFSET_OUT_OF_RANGE"
    );
    node.restart();
    assert_eq!(
        watermarks(&node, "trim"),
        (40, 100),
        "log start kept across restart"
    );
    // The clean shutdown wrote Kafka's checkpoint files.
    let lso = std::fs::read_to_string(node.data_dir().join("log-start-offset-checkpoint")).unwrap();
    assert!(lso.starts_with("0\n"), "{lso}");
    assert!(lso.lines().any(|l| l == "trim 0 40"), "{lso}");
    let hw =
        std::fs::read_to_string(node.data_dir().join("replication-offset-checkpoint")).unwrap();
    assert!(hw.lines().any(|l| l == "trim 0 100"), "{hw}");
    let rp =
        std::fs::read_to_string(node.data_dir().join("recovery-point-offset-checkpoint")).unwrap();
    assert!(rp.lines().any(|l| l == "trim 0 100"), "{rp}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn time_retention_deletes_old_segments_and_keeps_offsets() {
    let node = Node::start(&[("log.retention.check.interval.ms", "200")]);
    // 1 MiB segments (Kafka 4's minimum); records older than 2 s expire.
    create_topic(
        &node,
        "expiring",
        &[("segment.bytes", "1048576"), ("retention.ms", "2000")],
    )
    .await;
    produce(&node, "expiring", 4000, 1024).await;
    let before = segment_files(&node, "expiring");
    assert!(before.len() >= 4, "several segments: {before:?}");
    // Let those records age past retention.ms, then write newer ones that must be kept.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    produce(&node, "expiring", 500, 1024).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    let low = loop {
        let (low, high) = watermarks(&node, "expiring");
        if low > 0 {
            assert_eq!(high, 4500, "offsets do not change");
            break low;
        }
        assert!(Instant::now() < deadline, "retention never ran");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(low <= 4000, "the new records are kept (log start {low})");
    let after = segment_files(&node, "expiring");
    assert!(after.len() < before.len() + 1, "{before:?} -> {after:?}");
    assert_ne!(after.first(), before.first(), "the oldest segment is gone");
    let (offset, value) = first_record_from(&node, "expiring", 0);
    assert_eq!(offset, low);
    assert_eq!(value, format!("{low:08}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn size_retention_keeps_the_newest_segments() {
    let node = Node::start(&[("log.retention.check.interval.ms", "200")]);
    create_topic(
        &node,
        "bounded",
        &[("segment.bytes", "1048576"), ("retention.bytes", "2097152")],
    )
    .await;
    produce(&node, "bounded", 6000, 1024).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let total: u64 = std::fs::read_dir(node.data_dir().join("bounded-0"))
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().ends_with(".log"))
            .map(|e| e.metadata().unwrap().len())
            .sum();
        if total <= 2 * 1048576 + 1048576 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "size retention never ran: {total} bytes"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The files can go a moment before the log start offset is published: poll for it.
    let (mut low, mut high) = watermarks(&node, "bounded");
    while low == 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
        (low, high) = watermarks(&node, "bounded");
    }
    assert!(low > 0 && high == 6000, "{low}..{high}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compaction_keeps_the_latest_value_per_key_at_its_offset() {
    use std::collections::HashMap;
    let node = Node::start(&[("log.cleaner.backoff.ms", "200")]);
    create_topic(
        &node,
        "compacted",
        &[
            ("cleanup.policy", "compact"),
            ("segment.bytes", "1048576"),
            ("min.cleanable.dirty.ratio", "0.01"),
        ],
    )
    .await;
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", node.bootstrap())
        .set("linger.ms", "5")
        .create()
        .expect("producer");
    // 4000 updates of 100 keys (1 KiB values, ~4 segments), then tombstones for keys 0..9.
    let mut produced: HashMap<i64, (String, Option<String>)> = HashMap::new();
    let mut futures = Vec::new();
    for i in 0..4100usize {
        let key = format!("key-{:03}", if i < 4000 { i % 100 } else { i - 4000 });
        let value = (!(4000..4010).contains(&i)).then(|| {
            let mut v = format!("{i:08}");
            v.push_str(&".".repeat(1016));
            v
        });
        let record = match &value {
            Some(v) => FutureRecord::to("compacted").key(&key).payload(v),
            None => FutureRecord::to("compacted").key(&key),
        };
        futures.push((producer.send_result(record).expect("queue"), key, value));
    }
    for (f, key, value) in futures {
        let offset = f.await.expect("future").expect("delivered").offset;
        produced.insert(offset, (key, value));
    }
    let latest: HashMap<String, i64> = {
        let mut m = HashMap::new();
        let mut offsets: Vec<_> = produced.keys().copied().collect();
        offsets.sort();
        for o in offsets {
            m.insert(produced[&o].0.clone(), o);
        }
        m
    };
    let dir = node.data_dir().join("compacted-0");
    let size = || -> u64 {
        std::fs::read_dir(&dir)
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().ends_with(".log"))
            .map(|e| e.metadata().unwrap().len())
            .sum()
    };
    // About 4 MiB was produced (4000 values of 1 KiB). The cleaner may already have run while
    // records arrived (a slow machine), so wait for the log to end up below half of that
    // rather than comparing with a size taken after producing.
    let produced_bytes: u64 = 4000 * 1024;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let now = size();
        if node.log().contains("bytes_after=") && now < produced_bytes / 2 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "compaction did not shrink the log below half of {produced_bytes} bytes (now {now}):\n{}",
            node.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Read everything back: each record sits at its original offset, and the last record per
    // key is the latest one produced.
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", node.bootstrap())
        .set("group.id", "compaction-reader")
        .set("enable.partition.eof", "true")
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset("compacted", 0, Offset::Beginning)
        .unwrap();
    consumer.assign(&tpl).unwrap();
    let mut last_seen: HashMap<String, i64> = HashMap::new();
    let mut count = 0usize;
    let mut previous = -1i64;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        assert!(Instant::now() < deadline, "read did not finish");
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => {
                let offset = m.offset();
                assert!(offset > previous, "offsets increase");
                previous = offset;
                let (key, value) = &produced[&offset];
                assert_eq!(m.key(), Some(key.as_bytes()), "key at offset {offset}");
                assert_eq!(
                    m.payload().map(|p| p.to_vec()),
                    value.as_ref().map(|v| v.as_bytes().to_vec())
                );
                last_seen.insert(key.clone(), offset);
                count += 1;
            }
            Some(Err(rdkafka::error::KafkaError::PartitionEOF(_))) => break,
            Some(Err(e)) => panic!("{e}"),
            None => {}
        }
    }
    assert!(count < 4100, "records were compacted away ({count} left)");
    assert_eq!(last_seen, latest, "the latest record of every key is kept");
}
