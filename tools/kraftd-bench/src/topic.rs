//! Topic set-up through the admin API, and the partition layout the clients need.

use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::types::RDKafkaErrorCode;

const METADATA_WAIT: Duration = Duration::from_secs(30);

/// Creates `topic` with `partitions` when it is missing (an existing topic is used as it is),
/// then waits until every partition has a leader. Returns the partition count.
pub fn ensure_topic(
    config: &ClientConfig,
    topic: &str,
    partitions: i32,
    replication_factor: i32,
) -> Result<i32, String> {
    let admin: AdminClient<DefaultClientContext> =
        config.create().map_err(|e| format!("admin client: {e}"))?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .map_err(|e| format!("runtime: {e}"))?;
    let new = NewTopic::new(
        topic,
        partitions,
        TopicReplication::Fixed(replication_factor),
    );
    let opts = AdminOptions::new().operation_timeout(Some(METADATA_WAIT));
    let results = runtime
        .block_on(admin.create_topics([&new], &opts))
        .map_err(|e| format!("CreateTopics {topic}: {e}"))?;
    for r in results {
        match r {
            Ok(_) => eprintln!("created topic {topic} with {partitions} partitions"),
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((name, code)) => return Err(format!("CreateTopics {name}: {code}")),
        }
    }
    let count = wait_for_leaders(config, topic)?;
    if count != partitions {
        eprintln!("topic {topic} exists with {count} partitions; using them");
    }
    Ok(count)
}

/// Partition count of an existing topic once every partition has a leader.
pub fn wait_for_leaders(config: &ClientConfig, topic: &str) -> Result<i32, String> {
    let client: BaseConsumer = config
        .create()
        .map_err(|e| format!("metadata client: {e}"))?;
    let deadline = Instant::now() + METADATA_WAIT;
    loop {
        let last = match client.fetch_metadata(Some(topic), Duration::from_secs(5)) {
            Ok(md) => match md.topics().iter().find(|t| t.name() == topic) {
                Some(t) if t.error().is_none() && !t.partitions().is_empty() => {
                    if t.partitions().iter().all(|p| p.leader() >= 0) {
                        return Ok(t.partitions().len() as i32);
                    }
                    "partitions without a leader".to_string()
                }
                Some(t) => match t.error() {
                    Some(e) => format!("{:?}", RDKafkaErrorCode::from(e)),
                    None => "no partitions".to_string(),
                },
                None => "not in metadata".to_string(),
            },
            Err(e) => e.to_string(),
        };
        if Instant::now() > deadline {
            return Err(format!("topic {topic}: {last} after {METADATA_WAIT:?}"));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// (low, high) watermarks of every partition.
pub fn watermarks(
    config: &ClientConfig,
    topic: &str,
    partitions: i32,
) -> Result<Vec<(i64, i64)>, String> {
    let client: BaseConsumer = config
        .create()
        .map_err(|e| format!("watermark client: {e}"))?;
    (0..partitions)
        .map(|p| {
            client
                .fetch_watermarks(topic, p, Duration::from_secs(10))
                .map_err(|e| format!("ListOffsets {topic}-{p}: {e}"))
        })
        .collect()
}
