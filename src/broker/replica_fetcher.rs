//! Followers fetch their partitions from the leaders (Kafka's ReplicaFetcherManager and
//! ReplicaFetcherThread): one task per leader broker, each fetching every partition this node
//! follows on that leader with replica id = this broker, over the leader's
//! `inter.broker.listener.name` listener.
//!
//! A fetcher keeps no position of its own: each request asks for the log end offset and latest
//! epoch the partition has now (KIP-320: no truncation to the high watermark on becoming a
//! follower; a diverging epoch in the answer says where to truncate). What a leader answers is
//! appended as it came, with the leader's offsets and epochs; the follower's high watermark is
//! the leader's, bounded by its own log end. Assignments follow the metadata image: a new leader
//! (or leader epoch) moves the partition to that leader's fetcher.
//!
//! It must not fetch for a partition it does not follow: every write checks, under the
//! partition's lock, that the partition still follows the epoch the request was sent for.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic, ReplicaState};
use kafka_protocol::messages::fetch_response::PartitionData;
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::{BrokerId, FetchRequest, ListOffsetsRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};
use uuid::Uuid;

use super::{FollowerPosition, Partition, ReplicaManager};
use crate::metadata::{MetadataImage, MetadataReader};
use crate::network::client::KafkaConnection;

/// Fetch v17 (Kafka 3.9/4.x): topic ids, ReplicaState with the broker epoch.
const FETCH_VERSION: i16 = 17;
/// ListOffsets v8: the first version with topic-level fields Kafka's followers use today.
const LIST_OFFSETS_VERSION: i16 = 8;
/// Kafka's ListOffsetsRequest.LATEST_TIMESTAMP / EARLIEST_TIMESTAMP.
const LATEST_TIMESTAMP: i64 = -1;
const EARLIEST_TIMESTAMP: i64 = -2;
/// Kafka's FINAL_EPOCH: a full fetch without a session.
const SESSIONLESS_EPOCH: i32 = -1;

mod codes {
    pub const NONE: i16 = 0;
    pub const OFFSET_OUT_OF_RANGE: i16 = 1;
}

/// What one fetcher fetches: the leader's address and the partitions it follows there.
#[derive(Clone)]
struct Assignment {
    /// Which image this comes from: partitions held back after errors get a fresh try on a
    /// new one, as Kafka re-adds partitions on new metadata.
    generation: u64,
    addr: String,
    partitions: Vec<Arc<Partition>>,
}

/// The settings a fetcher reads from the node's config.
#[derive(Debug, Clone, Copy)]
struct FetchSettings {
    node_id: i32,
    max_wait_ms: i32,
    min_bytes: i32,
    response_max_bytes: i32,
    partition_max_bytes: i32,
    backoff: Duration,
    socket_timeout: Duration,
}

struct Fetcher {
    assignment: watch::Sender<Assignment>,
    task: JoinHandle<()>,
}

/// Runs the fetchers until shutdown, re-assigning partitions on every new image; at shutdown
/// every fetcher is stopped and joined, so no fetch touches a log being closed.
pub async fn run_replica_fetchers(
    replicas: Arc<ReplicaManager>,
    metadata: MetadataReader,
    mut shutdown: watch::Receiver<bool>,
) {
    let config = replicas.config();
    let settings = FetchSettings {
        node_id: replicas.node_id(),
        max_wait_ms: config.replica_fetch_wait_max_ms.max(0),
        min_bytes: config.replica_fetch_min_bytes.max(1),
        response_max_bytes: config.replica_fetch_response_max_bytes.max(1),
        partition_max_bytes: config.replica_fetch_max_bytes.max(1),
        backoff: Duration::from_millis(config.replica_fetch_backoff_ms.max(10) as u64),
        socket_timeout: Duration::from_millis(config.replica_socket_timeout_ms.max(1000) as u64),
    };
    let listener = config.inter_broker_listener_name.clone();
    let mut images = metadata.subscribe();
    // The partitions' roles come from images, but only once the broker enabled them: a
    // restarted broker may get its last image before that, and no other for a while.
    let mut roles_enabled = replicas.roles_enabled();
    let mut fetchers: HashMap<i32, Fetcher> = HashMap::new();
    let mut generation = 0u64;
    loop {
        let image = images.borrow_and_update().clone();
        generation += 1;
        let wanted = assignments(&replicas, &image, &listener, generation);
        fetchers.retain(|leader, _| {
            let keep = wanted.contains_key(leader);
            if !keep {
                info!(
                    leader,
                    "stopping the replica fetcher: this node follows nothing there"
                );
            }
            keep
        });
        for (leader, assignment) in wanted {
            match fetchers.get(&leader) {
                Some(f) if !f.task.is_finished() => {
                    f.assignment.send_replace(assignment);
                }
                _ => {
                    info!(leader, addr = %assignment.addr, partitions = assignment.partitions.len(),
                        "starting a replica fetcher");
                    let (tx, rx) = watch::channel(assignment);
                    let task = tokio::spawn(fetch_from_leader(
                        leader,
                        settings,
                        replicas.clone(),
                        rx,
                        shutdown.clone(),
                    ));
                    fetchers.insert(
                        leader,
                        Fetcher {
                            assignment: tx,
                            task,
                        },
                    );
                }
            }
        }
        tokio::select! {
            r = images.changed() => if r.is_err() { break },
            r = roles_enabled.changed() => if r.is_err() { break },
            _ = shutdown.changed() => break,
        }
    }
    for (_, f) in fetchers.drain() {
        drop(f.assignment);
        let _ = f.task.await;
    }
}

/// The partitions this node follows, by leader, with each leader's address.
fn assignments(
    replicas: &ReplicaManager,
    image: &MetadataImage,
    listener: &str,
    generation: u64,
) -> BTreeMap<i32, Assignment> {
    let mut by_leader: BTreeMap<i32, Assignment> = BTreeMap::new();
    for p in replicas.all_partitions() {
        let Some(pos) = p.follower_position() else {
            continue;
        };
        let Some(addr) = image.brokers.get(&pos.leader_id).and_then(|b| {
            b.endpoints
                .iter()
                .find(|e| e.name == listener)
                .map(|e| format!("{}:{}", e.host, e.port))
        }) else {
            debug!(topic = %p.topic, partition = p.index, leader = pos.leader_id,
                "the leader has no {listener} endpoint in the image yet");
            continue;
        };
        by_leader
            .entry(pos.leader_id)
            .or_insert_with(|| Assignment {
                generation,
                addr,
                partitions: Vec::new(),
            })
            .partitions
            .push(p);
    }
    by_leader
}

/// A partition in one request: what was asked, so the answer is applied to that epoch only.
struct InFlight {
    partition: Arc<Partition>,
    position: FollowerPosition,
}

/// Kafka's ReplicaFetcherThread for one leader.
async fn fetch_from_leader(
    leader: i32,
    settings: FetchSettings,
    replicas: Arc<ReplicaManager>,
    mut assignment: watch::Receiver<Assignment>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut conn: Option<KafkaConnection> = None;
    // Partitions held back after an error, until this instant or the next assignment.
    let mut delayed: HashMap<(Uuid, i32), Instant> = HashMap::new();
    // Logged once per outage, not once per attempt.
    let mut unreachable = false;
    let mut generation = 0;
    loop {
        // A dropped assignment means the manager no longer wants this fetcher.
        if *shutdown.borrow() || assignment.has_changed().is_err() {
            return;
        }
        let current = assignment.borrow_and_update().clone();
        if current.generation != generation {
            // New metadata: every partition gets a fresh try.
            generation = current.generation;
            delayed.clear();
        }
        let now = Instant::now();
        delayed.retain(|_, until| *until > now);
        let targets: Vec<InFlight> = current
            .partitions
            .iter()
            .filter(|p| !delayed.contains_key(&(p.topic_id, p.index)))
            .filter_map(|p| {
                let position = p
                    .follower_position()
                    .filter(|pos| pos.leader_id == leader)?;
                Some(InFlight {
                    partition: p.clone(),
                    position,
                })
            })
            .collect();
        if targets.is_empty() {
            let next_retry = delayed.values().min().copied();
            tokio::select! {
                r = assignment.changed() => if r.is_err() { return },
                _ = shutdown.changed() => return,
                _ = sleep_until(next_retry) => {}
            }
            continue;
        }
        let mut c = match conn.take() {
            Some(c) => c,
            None => match KafkaConnection::connect(
                &current.addr,
                &format!("kraftd-replica-fetcher-{}", settings.node_id),
                settings.socket_timeout,
            )
            .await
            {
                Ok(c) => c,
                Err(e) => {
                    if !unreachable {
                        warn!(leader, error = %e, "cannot reach the partition leader; retrying");
                        unreachable = true;
                    }
                    backoff(settings.backoff, &mut assignment, &mut shutdown).await;
                    continue;
                }
            },
        };
        let request = fetch_request(&settings, replicas.broker_epoch(), &targets);
        let answer = tokio::select! {
            r = c.send(FETCH_VERSION, &request, settings.socket_timeout) => r,
            _ = shutdown.changed() => return,
        };
        let response = match answer {
            Ok(r) => r,
            Err(e) => {
                if !unreachable {
                    warn!(leader, error = %e, "fetch from the partition leader failed; retrying");
                    unreachable = true;
                }
                backoff(settings.backoff, &mut assignment, &mut shutdown).await;
                continue;
            }
        };
        if unreachable {
            info!(leader, "fetching from the partition leader again");
            unreachable = false;
        }
        if response.error_code != codes::NONE {
            debug!(
                leader,
                error_code = response.error_code,
                "the leader refused the fetch"
            );
            conn = Some(c);
            backoff(settings.backoff, &mut assignment, &mut shutdown).await;
            continue;
        }
        let by_key: HashMap<(Uuid, i32), &InFlight> = targets
            .iter()
            .map(|t| ((t.partition.topic_id, t.partition.index), t))
            .collect();
        for topic in &response.responses {
            for data in &topic.partitions {
                let Some(target) = by_key.get(&(topic.topic_id, data.partition_index)) else {
                    continue;
                };
                let ok = match data.error_code {
                    codes::NONE => process_partition_data(target, data),
                    codes::OFFSET_OUT_OF_RANGE => {
                        handle_out_of_range(&mut c, &settings, target).await
                    }
                    code => {
                        debug!(leader, topic = %target.partition.topic,
                            partition = target.partition.index, error_code = code,
                            "partition fetch failed; backing off");
                        false
                    }
                };
                if !ok {
                    delayed.insert(
                        (target.partition.topic_id, target.partition.index),
                        Instant::now() + settings.backoff,
                    );
                }
            }
        }
        conn = Some(c);
    }
}

fn fetch_request(
    settings: &FetchSettings,
    broker_epoch: i64,
    targets: &[InFlight],
) -> FetchRequest {
    let mut topics: Vec<FetchTopic> = Vec::new();
    for t in targets {
        let partition = FetchPartition::default()
            .with_partition(t.partition.index)
            .with_current_leader_epoch(t.position.leader_epoch)
            .with_fetch_offset(t.position.fetch_offset)
            .with_last_fetched_epoch(t.position.last_fetched_epoch)
            .with_log_start_offset(t.position.log_start_offset)
            .with_partition_max_bytes(settings.partition_max_bytes);
        match topics.last_mut() {
            Some(topic) if topic.topic_id == t.partition.topic_id => {
                topic.partitions.push(partition)
            }
            _ => topics.push(
                FetchTopic::default()
                    .with_topic_id(t.partition.topic_id)
                    .with_partitions(vec![partition]),
            ),
        }
    }
    FetchRequest::default()
        .with_replica_state(
            ReplicaState::default()
                .with_replica_id(BrokerId(settings.node_id))
                .with_replica_epoch(broker_epoch),
        )
        .with_max_wait_ms(settings.max_wait_ms)
        .with_min_bytes(settings.min_bytes)
        .with_max_bytes(settings.response_max_bytes)
        .with_isolation_level(0)
        .with_session_id(0)
        .with_session_epoch(SESSIONLESS_EPOCH)
        .with_topics(topics)
}

/// Applies one partition's records (or diverging epoch). Returns false to back the partition
/// off (it no longer follows that epoch, or its log refused the data).
fn process_partition_data(target: &InFlight, data: &PartitionData) -> bool {
    let p = &target.partition;
    let epoch = target.position.leader_epoch;
    let diverging = &data.diverging_epoch;
    if diverging.epoch >= 0 || diverging.end_offset >= 0 {
        return match p.truncate_to_diverging_epoch(epoch, diverging.epoch, diverging.end_offset) {
            Ok(offset) => {
                info!(topic = %p.topic, partition = p.index, leader_epoch = epoch,
                    diverging_epoch = diverging.epoch, leader_end_offset = diverging.end_offset,
                    log_end_offset_was = target.position.fetch_offset, truncated_to = offset,
                    "truncated a divergent log tail to the leader's");
                true
            }
            Err(e) => {
                warn!(topic = %p.topic, partition = p.index, error = %e, "cannot truncate");
                false
            }
        };
    }
    let records = data.records.clone().unwrap_or_default();
    match p.append_as_follower(epoch, &records, data.high_watermark, data.log_start_offset) {
        Ok(_) => true,
        Err(e) => {
            warn!(topic = %p.topic, partition = p.index, error = %e,
                "cannot append what the leader sent");
            false
        }
    }
}

/// Kafka's `fetchOffsetAndTruncate`: the leader says the fetch offset is out of its range.
/// Behind the leader's log start: restart the log there. Past the leader's end (its log was
/// cut by an unclean election): truncate to it. Returns whether the partition may fetch on.
async fn handle_out_of_range(
    conn: &mut KafkaConnection,
    settings: &FetchSettings,
    target: &InFlight,
) -> bool {
    let p = &target.partition;
    let epoch = target.position.leader_epoch;
    let leo = target.position.fetch_offset;
    let Some(leader_end) = list_offset(conn, settings, target, LATEST_TIMESTAMP).await else {
        return false;
    };
    let result = if leader_end < leo {
        warn!(topic = %p.topic, partition = p.index, log_end_offset = leo, leader_end_offset = leader_end,
            "the leader's log ends before this replica's; truncating to it");
        p.truncate_to(epoch, leader_end)
    } else {
        let Some(leader_start) = list_offset(conn, settings, target, EARLIEST_TIMESTAMP).await
        else {
            return false;
        };
        if leader_start > leo {
            warn!(topic = %p.topic, partition = p.index, log_end_offset = leo,
                leader_log_start_offset = leader_start,
                "this replica is behind the leader's log start; restarting its log there");
            p.truncate_fully_and_start_at(epoch, leader_start)
        } else {
            Ok(())
        }
    };
    match result {
        Ok(()) => true,
        Err(e) => {
            warn!(topic = %p.topic, partition = p.index, error = %e, "cannot truncate");
            false
        }
    }
}

/// One ListOffsets to the leader as a replica (so LATEST is its log end).
async fn list_offset(
    conn: &mut KafkaConnection,
    settings: &FetchSettings,
    target: &InFlight,
    timestamp: i64,
) -> Option<i64> {
    let request = ListOffsetsRequest::default()
        .with_replica_id(BrokerId(settings.node_id))
        .with_topics(vec![
            ListOffsetsTopic::default()
                .with_name(TopicName(StrBytes::from_string(
                    target.partition.topic.clone(),
                )))
                .with_partitions(vec![
                    ListOffsetsPartition::default()
                        .with_partition_index(target.partition.index)
                        .with_current_leader_epoch(target.position.leader_epoch)
                        .with_timestamp(timestamp),
                ]),
        ]);
    let response = conn
        .send(LIST_OFFSETS_VERSION, &request, settings.socket_timeout)
        .await
        .ok()?;
    let p = response.topics.first()?.partitions.first()?;
    (p.error_code == codes::NONE).then_some(p.offset)
}

/// Waits `backoff`, or less if the assignment changes or the node stops.
async fn backoff(
    backoff: Duration,
    assignment: &mut watch::Receiver<Assignment>,
    shutdown: &mut watch::Receiver<bool>,
) {
    tokio::select! {
        _ = tokio::time::sleep(backoff) => {}
        _ = assignment.changed() => {}
        _ = shutdown.changed() => {}
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d.into()).await,
        None => std::future::pending().await,
    }
}
