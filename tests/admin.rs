//! Topic and config administration through librdkafka's admin client.

mod common;

use std::time::Duration;

use common::Node;
use rdkafka::admin::{
    AdminClient, AdminOptions, AlterConfig, ConfigSource, NewPartitions, NewTopic,
    ResourceSpecifier, TopicReplication,
};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::producer::{FutureProducer, FutureRecord};

const TIMEOUT: Duration = Duration::from_secs(30);

fn admin(node: &Node) -> AdminClient<DefaultClientContext> {
    ClientConfig::new()
        .set("bootstrap.servers", node.bootstrap())
        .create()
        .expect("admin client")
}

fn opts() -> AdminOptions {
    AdminOptions::new().operation_timeout(Some(TIMEOUT))
}

async fn create(
    admin: &AdminClient<DefaultClientContext>,
    topic: NewTopic<'_>,
    options: &AdminOptions,
) -> Result<String, RDKafkaErrorCode> {
    let mut results = admin
        .create_topics([&topic], options)
        .await
        .expect("request");
    results.remove(0).map_err(|(_, code)| code)
}

fn partition_count(node: &Node, topic: &str) -> Option<usize> {
    let md = admin(node)
        .inner()
        .fetch_metadata(None, TIMEOUT)
        .expect("metadata");
    md.topics()
        .iter()
        .find(|t| t.name() == topic)
        .map(|t| t.partitions().len())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_topics_validates_like_kafka() {
    let node = Node::start(&[]);
    let admin = admin(&node);
    const ONE: TopicReplication<'static> = TopicReplication::Fixed(1);
    assert_eq!(
        create(&admin, NewTopic::new("orders", 3, ONE), &opts()).await,
        Ok("orders".into())
    );
    assert_eq!(
        create(&admin, NewTopic::new("orders", 3, ONE), &opts()).await,
        Err(RDKafkaErrorCode::TopicAlreadyExists)
    );
    let long = "x".repeat(250);
    for bad in ["..", "has space", long.as_str()] {
        assert_eq!(
            create(&admin, NewTopic::new(bad, 1, ONE), &opts()).await,
            Err(RDKafkaErrorCode::InvalidTopic),
            "{bad}"
        );
    }
    assert_eq!(
        create(
            &admin,
            NewTopic::new("orders_", 1, TopicReplication::Fixed(3)),
            &opts()
        )
        .await,
        Err(RDKafkaErrorCode::InvalidReplicationFactor)
    );
    assert_eq!(
        create(
            &admin,
            NewTopic::new("cfg", 1, ONE).set("retention.ms", "soon"),
            &opts()
        )
        .await,
        Err(RDKafkaErrorCode::InvalidConfig)
    );
    assert_eq!(
        create(
            &admin,
            NewTopic::new("cfg", 1, ONE).set("no.such.key", "1"),
            &opts()
        )
        .await,
        Err(RDKafkaErrorCode::InvalidConfig)
    );
    // validate_only checks without creating.
    assert_eq!(
        create(
            &admin,
            NewTopic::new("dry", 2, ONE),
            &opts().validate_only(true)
        )
        .await,
        Ok("dry".into())
    );
    assert_eq!(partition_count(&node, "dry"), None);
    assert_eq!(partition_count(&node, "orders"), Some(3));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn describe_and_alter_configs_with_sources() {
    let node = Node::start(&[("log.retention.hours", "72")]);
    let admin = admin(&node);
    create(
        &admin,
        NewTopic::new("t", 1, TopicReplication::Fixed(1)).set("cleanup.policy", "compact"),
        &opts(),
    )
    .await
    .unwrap();
    let described = admin
        .describe_configs([&ResourceSpecifier::Topic("t")], &opts())
        .await
        .unwrap()
        .remove(0)
        .unwrap();
    let policy = described.get("cleanup.policy").unwrap();
    assert_eq!(policy.value.as_deref(), Some("compact"));
    assert_eq!(policy.source, ConfigSource::DynamicTopic);
    let segment = described.get("segment.bytes").unwrap();
    assert_eq!(segment.value.as_deref(), Some("1073741824"));
    assert_eq!(segment.source, ConfigSource::Default);
    // The static log.retention.hours=72 is what retention.ms resolves to.
    assert_eq!(
        described.get("retention.ms").unwrap().value.as_deref(),
        Some("259200000")
    );

    let broker = admin
        .describe_configs([&ResourceSpecifier::Broker(1)], &opts())
        .await
        .unwrap()
        .remove(0)
        .unwrap();
    let hours = broker.get("log.retention.hours").unwrap();
    assert_eq!(hours.value.as_deref(), Some("72"));
    assert_eq!(hours.source, ConfigSource::StaticBroker);
    assert_eq!(
        broker.get("num.partitions").unwrap().source,
        ConfigSource::Default
    );

    // Legacy AlterConfigs replaces the set: cleanup.policy goes, max.message.bytes comes.
    let alter = AlterConfig::new(ResourceSpecifier::Topic("t")).set("max.message.bytes", "2048");
    admin
        .alter_configs([&alter], &opts())
        .await
        .unwrap()
        .remove(0)
        .unwrap();
    let after = admin
        .describe_configs([&ResourceSpecifier::Topic("t")], &opts())
        .await
        .unwrap()
        .remove(0)
        .unwrap();
    assert_eq!(
        after.get("max.message.bytes").unwrap().value.as_deref(),
        Some("2048")
    );
    assert_eq!(
        after.get("cleanup.policy").unwrap().value.as_deref(),
        Some("delete")
    );
    assert_eq!(
        after.get("cleanup.policy").unwrap().source,
        ConfigSource::Default
    );

    // And it applies live: a 4 KiB record is now too large.
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", node.bootstrap())
        .set("message.max.bytes", "100000")
        .create()
        .unwrap();
    let big = vec![7u8; 4096];
    let err = producer
        .send(FutureRecord::<(), _>::to("t").payload(&big), TIMEOUT)
        .await
        .unwrap_err();
    assert_eq!(
        err.0.rdkafka_error_code(),
        Some(RDKafkaErrorCode::MessageSizeTooLarge)
    );
    let small = vec![7u8; 100];
    let delivery = producer
        .send(FutureRecord::<(), _>::to("t").payload(&small), TIMEOUT)
        .await
        .unwrap();
    assert_eq!((delivery.partition, delivery.offset), (0, 0));

    // An invalid value changes nothing. (The rdkafka crate reports every AlterConfigs resource as
    // Ok, so the check is on the configs themselves; tests/wire.rs checks the error code.)
    let bad = AlterConfig::new(ResourceSpecifier::Topic("t")).set("retention.bytes", "lots");
    let _ = admin.alter_configs([&bad], &opts()).await.unwrap();
    let unchanged = admin
        .describe_configs([&ResourceSpecifier::Topic("t")], &opts())
        .await
        .unwrap()
        .remove(0)
        .unwrap();
    assert_eq!(
        unchanged.get("max.message.bytes").unwrap().value.as_deref(),
        Some("2048")
    );
    assert_eq!(
        unchanged.get("retention.bytes").unwrap().value.as_deref(),
        Some("-1")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_partitions_and_delete_topics() {
    let node = Node::start(&[]);
    let admin = admin(&node);
    create(
        &admin,
        NewTopic::new("grow", 2, TopicReplication::Fixed(1)),
        &opts(),
    )
    .await
    .unwrap();
    let r = admin
        .create_partitions([&NewPartitions::new("grow", 5)], &opts())
        .await
        .unwrap();
    assert_eq!(r[0], Ok("grow".to_string()));
    assert_eq!(partition_count(&node, "grow"), Some(5));
    let shrink = admin
        .create_partitions([&NewPartitions::new("grow", 3)], &opts())
        .await
        .unwrap();
    assert_eq!(
        shrink[0],
        Err(("grow".to_string(), RDKafkaErrorCode::InvalidPartitions))
    );
    for p in 0..5 {
        assert!(node.data_dir().join(format!("grow-{p}")).is_dir());
    }

    let deleted = admin.delete_topics(&["grow"], &opts()).await.unwrap();
    assert_eq!(deleted[0], Ok("grow".to_string()));
    assert_eq!(partition_count(&node, "grow"), None);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while node.data_dir().join("grow-0").exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "partition dir removed"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let missing = admin.delete_topics(&["grow"], &opts()).await.unwrap();
    assert_eq!(
        missing[0],
        Err((
            "grow".to_string(),
            RDKafkaErrorCode::UnknownTopicOrPartition
        ))
    );
}
