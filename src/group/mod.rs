//! The group coordinator for classic consumer groups: membership and rebalances (`classic`),
//! committed offsets, and their durable form in the compacted internal topic
//! `__consumer_offsets` (`records`, Kafka's key/value schemas). A group lives in the partition
//! `abs(hash(group)) % offsets.topic.num.partitions`; the node leading that partition is its
//! coordinator and loads the partition before answering for its groups.

pub mod classic;
pub mod consumer;
pub mod records;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::ResponseError;
use tokio::sync::watch;
use tracing::{info, warn};

use crate::broker::ReplicaManager;
use crate::config::ServerConfig;
use crate::controller::{ControllerHandle, NewTopic};
use crate::metadata::MetadataReader;
use crate::protocol::record_batch::{BatchIter, BatchOptions, NewRecord, encode_batch};
use classic::{Group, GroupState, JoinRequest, JoinResult, SyncResult};
use consumer::{Change, ConsumerGroup};
use records::{
    ConsumerGroupCurrentMemberAssignmentValue, ConsumerGroupMemberMetadataValue,
    ConsumerGroupMetadataValue, ConsumerGroupTargetAssignmentMemberValue,
    ConsumerGroupTargetAssignmentMetadataValue, GroupRecordKey, GroupValue, OffsetValue,
    partition_for_group,
};

pub const OFFSETS_TOPIC: &str = "__consumer_offsets";
/// How often session and rebalance timeouts are checked.
const TICK: Duration = Duration::from_millis(100);
/// Bytes read per step when loading a partition.
const LOAD_CHUNK: usize = 1 << 20;

/// One committed offset, as OffsetCommit carries it.
#[derive(Debug, Clone)]
pub struct OffsetToCommit {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: Option<String>,
}

#[derive(Debug, Clone)]
pub struct FetchedOffset {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: String,
}

#[derive(Debug, Clone)]
pub struct DescribedMember {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub metadata: Bytes,
    pub assignment: Bytes,
}

#[derive(Debug, Clone)]
pub struct DescribedGroup {
    pub state: &'static str,
    pub protocol_type: String,
    pub protocol: String,
    pub members: Vec<DescribedMember>,
}

pub struct GroupCoordinator {
    config: Arc<ServerConfig>,
    node_id: i32,
    metadata: MetadataReader,
    broker: Arc<ReplicaManager>,
    controller: ControllerHandle,
    groups: Mutex<HashMap<String, Group>>,
    /// KIP-848 groups. Their committed offsets live in `groups` like every group's.
    consumer_groups: Mutex<HashMap<String, ConsumerGroup>>,
    loaded: Mutex<HashSet<i32>>,
    /// Partitions being replayed now; their groups answer COORDINATOR_LOAD_IN_PROGRESS.
    loading: Mutex<HashSet<i32>>,
}

/// The KIP-848 group a replayed record belongs to, created on its first record.
fn replayed<'a>(groups: &'a mut HashMap<String, ConsumerGroup>, id: &str) -> &'a mut ConsumerGroup {
    groups
        .entry(id.to_string())
        .or_insert_with(|| ConsumerGroup::new(id))
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

impl GroupCoordinator {
    pub fn new(
        config: Arc<ServerConfig>,
        metadata: MetadataReader,
        broker: Arc<ReplicaManager>,
        controller: ControllerHandle,
    ) -> GroupCoordinator {
        GroupCoordinator {
            node_id: config.node_id,
            config,
            metadata,
            broker,
            controller,
            groups: Mutex::new(HashMap::new()),
            consumer_groups: Mutex::new(HashMap::new()),
            loaded: Mutex::new(HashSet::new()),
            loading: Mutex::new(HashSet::new()),
        }
    }

    fn partitions(&self) -> i32 {
        self.config.offsets_topic_num_partitions.max(1)
    }

    pub fn partition_for(&self, group: &str) -> i32 {
        partition_for_group(group, self.partitions())
    }

    /// Creates `__consumer_offsets` on first use, as Kafka does. Its replication factor is capped
    /// at the number of live brokers (with a warning) instead of failing every FindCoordinator.
    async fn ensure_offsets_topic(&self) -> Result<(), ResponseError> {
        if self.metadata.current().topic(OFFSETS_TOPIC).is_some() {
            return Ok(());
        }
        // Capped at the live brokers, instead of failing every FindCoordinator until enough
        // brokers have joined as Kafka does: a one- or two-node cluster still gets its groups.
        let live = self.metadata.current().live_brokers().count().max(1) as i16;
        let wanted = self.config.offsets_topic_replication_factor.max(1);
        if wanted > live {
            warn!(
                wanted,
                live,
                "offsets.topic.replication.factor is larger than the live brokers; creating __consumer_offsets with replication factor {live}"
            );
        }
        let mut configs = BTreeMap::new();
        configs.insert("cleanup.policy".to_string(), Some("compact".to_string()));
        configs.insert(
            "segment.bytes".to_string(),
            Some(self.config.offsets_topic_segment_bytes.to_string()),
        );
        configs.insert("compression.type".to_string(), Some("producer".to_string()));
        let result = self
            .controller
            .create_topics(
                vec![NewTopic {
                    name: OFFSETS_TOPIC.to_string(),
                    num_partitions: self.partitions(),
                    replication_factor: wanted.min(live),
                    assignments: BTreeMap::new(),
                    configs,
                }],
                false,
            )
            .await
            .map_err(|_| ResponseError::CoordinatorNotAvailable)?;
        match result.into_iter().next() {
            Some(Ok(_)) => {
                info!(partitions = self.partitions(), "created __consumer_offsets");
                Ok(())
            }
            Some(Err(e)) if e.code() == ResponseError::TopicAlreadyExists.code() => Ok(()),
            _ => Err(ResponseError::CoordinatorNotAvailable),
        }
    }

    /// FindCoordinator for a group: the broker leading its partition.
    pub async fn find_coordinator(&self, group: &str) -> Result<i32, ResponseError> {
        self.ensure_offsets_topic().await?;
        let image = self.metadata.current();
        let leader = image
            .topic(OFFSETS_TOPIC)
            .and_then(|t| t.partitions.get(&self.partition_for(group)))
            .map(|p| p.leader)
            .unwrap_or(-1);
        if leader < 0 {
            return Err(ResponseError::CoordinatorNotAvailable);
        }
        Ok(leader)
    }

    /// The group's partition, once this node coordinates it and has loaded it.
    async fn ready(&self, group: &str) -> Result<i32, ResponseError> {
        if group.is_empty() {
            return Err(ResponseError::InvalidGroupId);
        }
        let partition = self.partition_for(group);
        let image = self.metadata.current();
        let Some(topic) = image.topic(OFFSETS_TOPIC) else {
            return Err(ResponseError::CoordinatorNotAvailable);
        };
        match topic.partitions.get(&partition) {
            Some(p) if p.leader == self.node_id => {}
            Some(_) => return Err(ResponseError::NotCoordinator),
            None => return Err(ResponseError::CoordinatorNotAvailable),
        }
        self.ensure_loaded(partition)?;
        Ok(partition)
    }

    /// Loads `partition` unless it is loaded. While another request or the background preload
    /// is replaying it, the answer is COORDINATOR_LOAD_IN_PROGRESS, as Kafka's; clients retry.
    fn ensure_loaded(&self, partition: i32) -> Result<(), ResponseError> {
        if self.is_loaded(partition) {
            return Ok(());
        }
        {
            let mut loading = self
                .loading
                .lock()
                .map_err(|_| ResponseError::CoordinatorNotAvailable)?;
            if !loading.insert(partition) {
                return Err(ResponseError::CoordinatorLoadInProgress);
            }
        }
        // Replaying reads the log: keep it off the async workers' hot path.
        let result = tokio::task::block_in_place(|| self.load_partition(partition));
        if let Ok(mut loading) = self.loading.lock() {
            loading.remove(&partition);
        }
        result
    }

    fn is_loaded(&self, partition: i32) -> bool {
        self.loaded.lock().is_ok_and(|l| l.contains(&partition))
    }

    /// Replays a `__consumer_offsets` partition into the groups it holds.
    fn load_partition(&self, partition: i32) -> Result<(), ResponseError> {
        let image = self.metadata.current();
        let log = self
            .broker
            .leader_partition(&image, OFFSETS_TOPIC, partition)
            .map_err(|_| ResponseError::CoordinatorLoadInProgress)?;
        let started = Instant::now();
        let mut offset = log.log_start_offset();
        // To the log end, not the high watermark (as Kafka's GroupMetadataManager): a new
        // leader's records past its high watermark are committed once its followers fetch them,
        // and the commits they hold must be in the groups served from now on.
        let end = log.log_end_offset();
        let mut loaded_groups: HashMap<String, Group> = HashMap::new();
        let mut consumer_groups: HashMap<String, ConsumerGroup> = HashMap::new();
        let now = Instant::now();
        let to_assignment = |tps: Vec<(uuid::Uuid, Vec<i32>)>| -> consumer::Assignment {
            tps.into_iter()
                .map(|(t, ps)| (t, ps.into_iter().collect()))
                .collect()
        };
        let mut records = 0usize;
        while offset < end {
            let data = log
                .read_to_log_end(offset, LOAD_CHUNK)
                .map_err(|_| ResponseError::CoordinatorLoadInProgress)?;
            if data.records.is_empty() {
                break;
            }
            for batch in BatchIter::new(&data.records) {
                let Ok(batch) = batch else { break };
                offset = batch.header.next_offset();
                let Some(iter) = batch.records() else {
                    warn!(
                        partition,
                        "skipping a compressed batch in __consumer_offsets"
                    );
                    continue;
                };
                for rec in iter.flatten() {
                    records += 1;
                    let Some(key) = rec
                        .key
                        .and_then(|k| GroupRecordKey::decode(k).ok().flatten())
                    else {
                        continue;
                    };
                    match (&key, rec.value) {
                        (GroupRecordKey::ConsumerGroupMetadata { group }, Some(v)) => {
                            if let Ok(v) = ConsumerGroupMetadataValue::decode(v) {
                                replayed(&mut consumer_groups, group).restore_epoch(v.epoch);
                            }
                            continue;
                        }
                        (GroupRecordKey::ConsumerGroupMetadata { group }, None) => {
                            consumer_groups.remove(group);
                            continue;
                        }
                        (GroupRecordKey::ConsumerGroupMemberMetadata { group, member_id }, v) => {
                            let g = replayed(&mut consumer_groups, group);
                            match v.map(ConsumerGroupMemberMetadataValue::decode) {
                                Some(Ok(v)) => g.restore_member(
                                    member_id,
                                    v.instance_id,
                                    v.rack_id,
                                    v.client_id,
                                    v.client_host,
                                    v.subscribed_topic_names,
                                    v.server_assignor,
                                    v.rebalance_timeout_ms,
                                    now,
                                ),
                                None => g.restore_member_removed(member_id),
                                Some(Err(_)) => {}
                            }
                            continue;
                        }
                        (
                            GroupRecordKey::ConsumerGroupTargetAssignmentMetadata { group },
                            Some(v),
                        ) => {
                            if let Ok(v) = ConsumerGroupTargetAssignmentMetadataValue::decode(v) {
                                replayed(&mut consumer_groups, group)
                                    .restore_assignment_epoch(v.assignment_epoch);
                            }
                            continue;
                        }
                        (
                            GroupRecordKey::ConsumerGroupTargetAssignmentMember {
                                group,
                                member_id,
                            },
                            Some(v),
                        ) => {
                            if let Ok(v) = ConsumerGroupTargetAssignmentMemberValue::decode(v) {
                                replayed(&mut consumer_groups, group)
                                    .restore_target(member_id, to_assignment(v.topic_partitions));
                            }
                            continue;
                        }
                        (
                            GroupRecordKey::ConsumerGroupCurrentMemberAssignment {
                                group,
                                member_id,
                            },
                            Some(v),
                        ) => {
                            if let Ok(v) = ConsumerGroupCurrentMemberAssignmentValue::decode(v)
                                && let Some(g) = consumer_groups.get_mut(group)
                            {
                                g.restore_current(
                                    member_id,
                                    v.member_epoch,
                                    to_assignment(v.assigned_partitions),
                                    to_assignment(v.partitions_pending_revocation),
                                    now,
                                );
                            }
                            continue;
                        }
                        (
                            GroupRecordKey::ConsumerGroupTargetAssignmentMetadata { .. }
                            | GroupRecordKey::ConsumerGroupTargetAssignmentMember { .. }
                            | GroupRecordKey::ConsumerGroupCurrentMemberAssignment { .. },
                            None,
                        ) => continue,
                        _ => {}
                    }
                    let group = loaded_groups
                        .entry(key.group().to_string())
                        .or_insert_with(|| Group::new(key.group()));
                    match (key, rec.value) {
                        (
                            GroupRecordKey::Offset {
                                topic, partition, ..
                            },
                            Some(v),
                        ) => {
                            if let Ok(v) = OffsetValue::decode(v) {
                                group.offsets.insert((topic, partition), v);
                            }
                        }
                        (
                            GroupRecordKey::Offset {
                                topic, partition, ..
                            },
                            None,
                        ) => {
                            group.offsets.remove(&(topic, partition));
                        }
                        (GroupRecordKey::Group { .. }, Some(v)) => {
                            if let Ok(v) = GroupValue::decode(v) {
                                group.restore(v, Instant::now());
                            }
                        }
                        (GroupRecordKey::Group { .. }, None) => {
                            group.state = GroupState::Dead;
                        }
                        _ => {}
                    }
                }
            }
        }
        let mut groups = self
            .groups
            .lock()
            .map_err(|_| ResponseError::CoordinatorNotAvailable)?;
        let count = loaded_groups.len();
        for (id, g) in loaded_groups {
            let gone = g.state == GroupState::Dead && g.offsets.is_empty();
            if !gone {
                groups.insert(id, g);
            }
        }
        let topics = |name: &str| image.topic(name).map(|t| (t.id, t.partitions.len() as i32));
        if let Ok(mut cgs) = self.consumer_groups.lock() {
            for (id, mut g) in consumer_groups {
                g.restore_done(&topics);
                cgs.insert(id, g);
            }
        }
        if let Ok(mut l) = self.loaded.lock() {
            l.insert(partition);
        }

        if records > 0 {
            info!(
                partition,
                groups = count,
                records,
                ms = started.elapsed().as_millis() as u64,
                "loaded __consumer_offsets partition"
            );
        }
        Ok(())
    }

    /// Appends records to the group's partition; the ISR has them once the leader's high
    /// watermark passes the returned offset. What a client is answered on goes through
    /// `persist_replicated`; only the coordinator's own timers (expiry, session timeouts) write
    /// without waiting, as nobody waits for them.
    fn persist(
        &self,
        partition: i32,
        records: Vec<(Bytes, Option<Bytes>)>,
    ) -> Result<Option<(Arc<crate::broker::Partition>, i64)>, ResponseError> {
        if records.is_empty() {
            return Ok(None);
        }
        let ts = now_ms();
        let new: Vec<NewRecord<'_>> = records
            .iter()
            .map(|(k, v)| NewRecord {
                key: Some(k),
                value: v.as_deref(),
                headers: &[],
                timestamp: ts,
            })
            .collect();
        let batch = Bytes::from(encode_batch(&new, &BatchOptions::default()));
        let image = self.metadata.current();
        let log = self
            .broker
            .leader_partition(&image, OFFSETS_TOPIC, partition)
            .map_err(|_| ResponseError::NotCoordinator)?;
        let brokers = self.broker.broker_states();
        let appended = log
            .append_records_as_leader(
                &batch,
                usize::MAX,
                1,
                crate::broker::monotonic_ms(),
                &brokers,
            )
            .map_err(|e| {
                warn!(partition, error = %e, "cannot write to __consumer_offsets");
                ResponseError::CoordinatorNotAvailable
            })?;
        if appended.high_watermark_advanced {
            self.broker.notify_high_watermark_advanced();
        }
        self.broker.notify_data_arrived();
        Ok(Some((log, appended.required_offset)))
    }

    /// `persist`, answering once the ISR has the records (Kafka's offset commits wait as an
    /// acks=all produce does, up to offsets.commit.timeout.ms).
    async fn persist_replicated(
        &self,
        partition: i32,
        records: Vec<(Bytes, Option<Bytes>)>,
    ) -> Result<(), ResponseError> {
        let Some((log, required_offset)) = self.persist(partition, records)? else {
            return Ok(());
        };
        let timeout = Duration::from_millis(self.config.offsets_commit_timeout_ms.max(0) as u64);
        self.broker
            .wait_for_high_watermark(&log, required_offset, timeout)
            .await
            .map_err(|e| {
                warn!(partition, error = %e, "offsets not replicated to the ISR");
                ResponseError::CoordinatorNotAvailable
            })
    }

    fn with_groups<T>(
        &self,
        f: impl FnOnce(&mut HashMap<String, Group>) -> T,
    ) -> Result<T, ResponseError> {
        let mut groups = self
            .groups
            .lock()
            .map_err(|_| ResponseError::CoordinatorNotAvailable)?;
        Ok(f(&mut groups))
    }

    fn group_record(group: &Group) -> (Bytes, Option<Bytes>) {
        (
            GroupRecordKey::Group {
                group: group.id.clone(),
            }
            .encode(),
            Some(group.to_record().encode()),
        )
    }

    pub async fn join(&self, group_id: &str, req: JoinRequest) -> JoinResult {
        let member_id = req.member_id.clone();
        let min = Duration::from_millis(self.config.group_min_session_timeout_ms.max(0) as u64);
        let max = Duration::from_millis(self.config.group_max_session_timeout_ms.max(0) as u64);
        if req.session_timeout < min || req.session_timeout > max {
            return JoinResult::error(ResponseError::InvalidSessionTimeout, &member_id);
        }
        if let Err(e) = self.ready(group_id).await {
            return JoinResult::error(e, &member_id);
        }
        let delay =
            Duration::from_millis(self.config.group_initial_rebalance_delay_ms.max(0) as u64);
        let max_size = self.config.group_max_size.max(1) as usize;
        let rx = self.with_groups(|groups| {
            let g = groups
                .entry(group_id.to_string())
                .or_insert_with(|| Group::new(group_id));
            g.max_size = max_size;
            g.join(req, Instant::now(), delay)
        });
        match rx {
            Ok(Ok(rx)) => rx.await.unwrap_or_else(|_| {
                JoinResult::error(ResponseError::CoordinatorNotAvailable, &member_id)
            }),
            Ok(Err(result)) => *result,
            Err(e) => JoinResult::error(e, &member_id),
        }
    }

    pub async fn sync(
        &self,
        group_id: &str,
        member_id: &str,
        instance: Option<&str>,
        generation: i32,
        assignments: Vec<(String, Bytes)>,
    ) -> SyncResult {
        let partition = match self.ready(group_id).await {
            Ok(p) => p,
            Err(e) => return SyncResult::error(e),
        };
        let outcome = self.with_groups(|groups| match groups.get_mut(group_id) {
            None => Err(SyncResult::error(ResponseError::UnknownMemberId)),
            Some(g) => g
                .sync(member_id, instance, generation, assignments)
                .map(|(rx, effects)| (rx, effects.persist_group.then(|| Self::group_record(g)))),
        });
        let (rx, record) = match outcome {
            Ok(Ok(x)) => x,
            Ok(Err(result)) => return result,
            Err(e) => return SyncResult::error(e),
        };
        if let Some(record) = record {
            // Durable on the ISR before any member hears of the assignment, as Kafka's.
            let error = self.persist_replicated(partition, vec![record]).await.err();
            let _ = self.with_groups(|groups| {
                if let Some(g) = groups.get_mut(group_id) {
                    g.complete_sync(generation, error);
                }
            });
        }
        rx.await
            .unwrap_or_else(|_| SyncResult::error(ResponseError::CoordinatorNotAvailable))
    }

    pub async fn heartbeat(
        &self,
        group_id: &str,
        member_id: &str,
        instance: Option<&str>,
        generation: i32,
    ) -> i16 {
        if let Err(e) = self.ready(group_id).await {
            return e.code();
        }
        self.with_groups(|groups| match groups.get_mut(group_id) {
            None => ResponseError::UnknownMemberId.code(),
            Some(g) => match g.heartbeat(member_id, instance, generation, Instant::now()) {
                Ok(()) => 0,
                Err(e) => e.code(),
            },
        })
        .unwrap_or_else(|e| e.code())
    }

    /// LeaveGroup: one result per (member id, group instance id).
    pub async fn leave(
        &self,
        group_id: &str,
        members: &[(String, Option<String>)],
    ) -> Result<Vec<i16>, i16> {
        let partition = self.ready(group_id).await.map_err(|e| e.code())?;
        let (codes, record) = self
            .with_groups(|groups| {
                let Some(g) = groups.get_mut(group_id) else {
                    return (
                        members
                            .iter()
                            .map(|_| ResponseError::UnknownMemberId.code())
                            .collect(),
                        None,
                    );
                };
                let codes: Vec<i16> = members
                    .iter()
                    .map(
                        |(id, instance)| match g.leave(id, instance.as_deref(), Instant::now()) {
                            Ok(()) => 0,
                            Err(e) => e.code(),
                        },
                    )
                    .collect();
                let record = (g.state == GroupState::Empty).then(|| Self::group_record(g));
                (codes, record)
            })
            .map_err(|e| e.code())?;
        if let Some(record) = record {
            let _ = self.persist(partition, vec![record]);
        }
        Ok(codes)
    }

    /// OffsetCommit; `Err` is a group-level error for every partition.
    pub async fn commit_offsets(
        &self,
        group_id: &str,
        generation: i32,
        member_id: &str,
        instance: Option<&str>,
        offsets: Vec<OffsetToCommit>,
    ) -> Result<Vec<i16>, ResponseError> {
        let partition = self.ready(group_id).await?;
        let max_metadata = self.config.offset_metadata_max_bytes.max(0) as usize;
        let consumer_member_epoch = self.with_consumer_groups(|cgs| {
            cgs.get(group_id)
                .and_then(|g| g.members.get(member_id))
                .map(|m| m.member_epoch)
        })?;
        if let Some(epoch) = consumer_member_epoch {
            // KIP-848 members commit with their member epoch.
            if generation != epoch {
                return Err(ResponseError::StaleMemberEpoch);
            }
        }
        self.with_groups(|groups| {
            let g = groups
                .entry(group_id.to_string())
                .or_insert_with(|| Group::new(group_id));
            if g.state == GroupState::Dead {
                return Err(ResponseError::CoordinatorNotAvailable);
            }
            if consumer_member_epoch.is_some() {
                return Ok(());
            }
            if generation < 0 && member_id.is_empty() {
                // A simple (standalone) consumer: only while no members are active.
                if !g.is_empty() {
                    return Err(ResponseError::UnknownMemberId);
                }
                return Ok(());
            }
            if g.state == GroupState::CompletingRebalance {
                return Err(ResponseError::RebalanceInProgress);
            }
            if let Some(instance) = instance
                && g.members.values().any(|m| {
                    m.group_instance_id.as_deref() == Some(instance) && m.member_id != member_id
                })
            {
                return Err(ResponseError::FencedInstanceId);
            }
            if !g.members.contains_key(member_id) {
                return Err(ResponseError::UnknownMemberId);
            }
            if generation != g.generation {
                return Err(ResponseError::IllegalGeneration);
            }
            Ok(())
        })??;
        let ts = now_ms();
        let mut codes = Vec::with_capacity(offsets.len());
        let mut records = Vec::new();
        let mut accepted = Vec::new();
        for o in offsets {
            let metadata = o.metadata.clone().unwrap_or_default();
            if metadata.len() > max_metadata {
                codes.push(ResponseError::OffsetMetadataTooLarge.code());
                continue;
            }
            let value = OffsetValue {
                offset: o.offset,
                leader_epoch: o.leader_epoch,
                metadata,
                commit_timestamp: ts,
            };
            records.push((
                GroupRecordKey::Offset {
                    group: group_id.to_string(),
                    topic: o.topic.clone(),
                    partition: o.partition,
                }
                .encode(),
                Some(value.encode()),
            ));
            accepted.push(((o.topic, o.partition), value));
            codes.push(0);
        }
        self.persist_replicated(partition, records).await?;
        self.with_groups(|groups| {
            if let Some(g) = groups.get_mut(group_id) {
                for (k, v) in accepted {
                    g.offsets.insert(k, v);
                }
            }
        })?;
        Ok(codes)
    }

    /// OffsetFetch: `None` topics means every committed offset of the group. Partitions with
    /// nothing committed answer offset -1, as Kafka does.
    pub async fn fetch_offsets(
        &self,
        group_id: &str,
        topics: Option<Vec<(String, Vec<i32>)>>,
    ) -> Result<Vec<FetchedOffset>, ResponseError> {
        self.ready(group_id).await?;
        self.with_groups(|groups| {
            let g = groups.get(group_id);
            match topics {
                None => {
                    let mut all: Vec<FetchedOffset> = g
                        .map(|g| {
                            g.offsets
                                .iter()
                                .map(|((t, p), v)| FetchedOffset {
                                    topic: t.clone(),
                                    partition: *p,
                                    offset: v.offset,
                                    leader_epoch: v.leader_epoch,
                                    metadata: v.metadata.clone(),
                                })
                                .collect()
                        })
                        .unwrap_or_default();
                    all.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
                    all
                }
                Some(topics) => topics
                    .into_iter()
                    .flat_map(|(t, ps)| ps.into_iter().map(move |p| (t.clone(), p)))
                    .map(|(t, p)| {
                        let v = g.and_then(|g| g.offsets.get(&(t.clone(), p)));
                        FetchedOffset {
                            offset: v.map_or(-1, |v| v.offset),
                            leader_epoch: v.map_or(-1, |v| v.leader_epoch),
                            metadata: v.map(|v| v.metadata.clone()).unwrap_or_default(),
                            topic: t,
                            partition: p,
                        }
                    })
                    .collect(),
            }
        })
    }

    /// ListGroups: (group id, protocol type, state, group type) of every group this node
    /// coordinates.
    pub async fn list_groups(&self) -> Vec<(String, String, &'static str, &'static str)> {
        // Load every partition this node leads so that groups from before a restart are listed.
        for p in 0..self.partitions() {
            let _ = self.ready_partition(p).await;
        }
        let consumer: Vec<(String, String, &'static str, &'static str)> = self
            .with_consumer_groups(|cgs| {
                cgs.values()
                    .map(|g| (g.id.clone(), "consumer".to_string(), g.state(), "consumer"))
                    .collect()
            })
            .unwrap_or_default();
        self.with_groups(|groups| {
            let mut out: Vec<_> = groups
                .values()
                .filter(|g| g.state != GroupState::Dead)
                .filter(|g| !consumer.iter().any(|c| c.0 == g.id))
                .map(|g| {
                    (
                        g.id.clone(),
                        g.protocol_type.clone().unwrap_or_default(),
                        g.state.name(),
                        "classic",
                    )
                })
                .chain(consumer.iter().cloned())
                .collect();
            out.sort();
            out
        })
        .unwrap_or_default()
    }

    fn next_unloaded_partition(&self) -> Option<i32> {
        let image = self.metadata.current();
        let topic = image.topic(OFFSETS_TOPIC)?;
        topic
            .partitions
            .iter()
            .filter(|(_, p)| p.leader == self.node_id)
            .map(|(i, _)| *i)
            .find(|i| !self.is_loaded(*i))
    }

    async fn ready_partition(&self, partition: i32) -> Result<(), ResponseError> {
        let image = self.metadata.current();
        let leads = image
            .topic(OFFSETS_TOPIC)
            .and_then(|t| t.partitions.get(&partition))
            .is_some_and(|p| p.leader == self.node_id);
        if !leads {
            return Ok(());
        }
        self.ensure_loaded(partition)
    }

    pub async fn describe_group(&self, group_id: &str) -> Result<DescribedGroup, ResponseError> {
        self.ready(group_id).await?;
        self.with_groups(|groups| match groups.get(group_id) {
            None => DescribedGroup {
                state: GroupState::Dead.name(),
                protocol_type: String::new(),
                protocol: String::new(),
                members: Vec::new(),
            },
            Some(g) => {
                let protocol = g.protocol.clone().unwrap_or_default();
                DescribedGroup {
                    state: g.state.name(),
                    protocol_type: g.protocol_type.clone().unwrap_or_default(),
                    protocol: protocol.clone(),
                    members: g
                        .members
                        .values()
                        .map(|m| DescribedMember {
                            member_id: m.member_id.clone(),
                            group_instance_id: m.group_instance_id.clone(),
                            client_id: m.client_id.clone(),
                            client_host: m.client_host.clone(),
                            metadata: m.metadata(&protocol),
                            assignment: m.assignment.clone(),
                        })
                        .collect(),
                }
            }
        })
    }

    /// DeleteGroups: only groups without active members; writes tombstones for the group and
    /// every offset it committed.
    pub async fn delete_group(&self, group_id: &str) -> Result<(), ResponseError> {
        let partition = self.ready(group_id).await?;
        let consumer_members =
            self.with_consumer_groups(|cgs| cgs.get(group_id).map(|g| g.members.len()))?;
        match consumer_members {
            Some(n) if n > 0 => return Err(ResponseError::NonEmptyGroup),
            Some(_) => {
                self.with_consumer_groups(|cgs| cgs.remove(group_id))?;
                self.persist_replicated(
                    partition,
                    vec![
                        (
                            GroupRecordKey::ConsumerGroupTargetAssignmentMetadata {
                                group: group_id.to_string(),
                            }
                            .encode(),
                            None,
                        ),
                        (
                            GroupRecordKey::ConsumerGroupMetadata {
                                group: group_id.to_string(),
                            }
                            .encode(),
                            None,
                        ),
                    ],
                )
                .await?;
                let exists = self.with_groups(|g| g.contains_key(group_id))?;
                if !exists {
                    return Ok(());
                }
            }
            None => {}
        }
        let records = self.with_groups(|groups| {
            let Some(g) = groups.get(group_id) else {
                return Err(ResponseError::GroupIdNotFound);
            };
            if g.state == GroupState::Dead {
                return Err(ResponseError::GroupIdNotFound);
            }
            if !g.is_empty() {
                return Err(ResponseError::NonEmptyGroup);
            }
            let mut records: Vec<(Bytes, Option<Bytes>)> = g
                .offsets
                .keys()
                .map(|(t, p)| {
                    (
                        GroupRecordKey::Offset {
                            group: group_id.to_string(),
                            topic: t.clone(),
                            partition: *p,
                        }
                        .encode(),
                        None,
                    )
                })
                .collect();
            records.push((
                GroupRecordKey::Group {
                    group: group_id.to_string(),
                }
                .encode(),
                None,
            ));
            Ok(records)
        });
        self.persist_replicated(partition, records??).await?;
        self.with_groups(|groups| groups.remove(group_id))?;
        Ok(())
    }

    /// OffsetDelete: refuses partitions of topics the group's members are subscribed to.
    pub async fn delete_offsets(
        &self,
        group_id: &str,
        partitions: Vec<(String, i32)>,
        subscribed: impl Fn(&Bytes, &str) -> bool,
    ) -> Result<Vec<i16>, ResponseError> {
        let partition = self.ready(group_id).await?;
        let (codes, records) = self.with_groups(|groups| {
            let Some(g) = groups.get_mut(group_id) else {
                return Err(ResponseError::GroupIdNotFound);
            };
            let protocol = g.protocol.clone().unwrap_or_default();
            let mut codes = Vec::new();
            let mut records = Vec::new();
            for (t, p) in &partitions {
                let in_use = g
                    .members
                    .values()
                    .any(|m| subscribed(&m.metadata(&protocol), t));
                if in_use {
                    codes.push(ResponseError::GroupSubscribedToTopic.code());
                    continue;
                }
                if g.offsets.remove(&(t.clone(), *p)).is_some() {
                    records.push((
                        GroupRecordKey::Offset {
                            group: group_id.to_string(),
                            topic: t.clone(),
                            partition: *p,
                        }
                        .encode(),
                        None,
                    ));
                }
                codes.push(0);
            }
            Ok((codes, records))
        })??;
        self.persist_replicated(partition, records).await?;
        Ok(codes)
    }

    /// Kafka's ConsumerGroup* records for what changed in a KIP-848 group.
    fn consumer_records(g: &ConsumerGroup, changes: Vec<Change>) -> Vec<(Bytes, Option<Bytes>)> {
        let group = g.id.clone();
        let parts = |a: &consumer::Assignment| -> Vec<(uuid::Uuid, Vec<i32>)> {
            a.iter()
                .map(|(t, ps)| (*t, ps.iter().copied().collect()))
                .collect()
        };
        let mut out = Vec::new();
        let mut seen = HashSet::new();
        for change in changes {
            if !seen.insert(format!("{change:?}")) {
                continue;
            }
            match change {
                Change::GroupEpoch => out.push((
                    GroupRecordKey::ConsumerGroupMetadata {
                        group: group.clone(),
                    }
                    .encode(),
                    Some(
                        ConsumerGroupMetadataValue {
                            epoch: g.group_epoch,
                            ..Default::default()
                        }
                        .encode(),
                    ),
                )),
                Change::MemberMetadata(id) => {
                    if let Some(m) = g.members.get(&id) {
                        out.push((
                            GroupRecordKey::ConsumerGroupMemberMetadata {
                                group: group.clone(),
                                member_id: id.clone(),
                            }
                            .encode(),
                            Some(
                                ConsumerGroupMemberMetadataValue {
                                    instance_id: m.instance_id.clone(),
                                    rack_id: m.rack_id.clone(),
                                    client_id: m.client_id.clone(),
                                    client_host: m.client_host.clone(),
                                    subscribed_topic_names: m.subscribed.iter().cloned().collect(),
                                    subscribed_topic_regex: None,
                                    rebalance_timeout_ms: m.rebalance_timeout.as_millis() as i32,
                                    server_assignor: Some(g.assignor.clone()),
                                    classic_member_metadata: None,
                                }
                                .encode(),
                            ),
                        ));
                    }
                }
                Change::MemberRemoved(id) => {
                    for key in [
                        GroupRecordKey::ConsumerGroupCurrentMemberAssignment {
                            group: group.clone(),
                            member_id: id.clone(),
                        },
                        GroupRecordKey::ConsumerGroupTargetAssignmentMember {
                            group: group.clone(),
                            member_id: id.clone(),
                        },
                        GroupRecordKey::ConsumerGroupMemberMetadata {
                            group: group.clone(),
                            member_id: id.clone(),
                        },
                    ] {
                        out.push((key.encode(), None));
                    }
                }
                Change::TargetAssignment => {
                    for (id, a) in &g.target {
                        out.push((
                            GroupRecordKey::ConsumerGroupTargetAssignmentMember {
                                group: group.clone(),
                                member_id: id.clone(),
                            }
                            .encode(),
                            Some(
                                ConsumerGroupTargetAssignmentMemberValue {
                                    topic_partitions: parts(a),
                                }
                                .encode(),
                            ),
                        ));
                    }
                    out.push((
                        GroupRecordKey::ConsumerGroupTargetAssignmentMetadata {
                            group: group.clone(),
                        }
                        .encode(),
                        Some(
                            ConsumerGroupTargetAssignmentMetadataValue {
                                assignment_epoch: g.assignment_epoch,
                                ..Default::default()
                            }
                            .encode(),
                        ),
                    ));
                }
                Change::CurrentAssignment(id) => {
                    if let Some(m) = g.members.get(&id) {
                        out.push((
                            GroupRecordKey::ConsumerGroupCurrentMemberAssignment {
                                group: group.clone(),
                                member_id: id.clone(),
                            }
                            .encode(),
                            Some(
                                ConsumerGroupCurrentMemberAssignmentValue {
                                    member_epoch: m.member_epoch,
                                    previous_member_epoch: m.member_epoch,
                                    // Kafka's MemberState: 0 STABLE, 1 UNREVOKED_PARTITIONS.
                                    state: i8::from(!m.pending_revocation.is_empty()),
                                    assigned_partitions: parts(&m.assigned),
                                    partitions_pending_revocation: parts(&m.pending_revocation),
                                }
                                .encode(),
                            ),
                        ));
                    }
                }
            }
        }
        out
    }

    fn with_consumer_groups<T>(
        &self,
        f: impl FnOnce(&mut HashMap<String, ConsumerGroup>) -> T,
    ) -> Result<T, ResponseError> {
        let mut groups = self
            .consumer_groups
            .lock()
            .map_err(|_| ResponseError::CoordinatorNotAvailable)?;
        Ok(f(&mut groups))
    }

    /// ConsumerGroupHeartbeat (KIP-848).
    pub async fn consumer_heartbeat(
        &self,
        group_id: &str,
        req: consumer::HeartbeatRequest,
    ) -> Result<consumer::HeartbeatResult, (ResponseError, String)> {
        self.ready(group_id).await.map_err(|e| (e, e.to_string()))?;
        let classic_in_use = self
            .with_groups(|g| g.get(group_id).is_some_and(|g| !g.is_empty()))
            .map_err(|e| (e, e.to_string()))?;
        if classic_in_use {
            return Err((
                ResponseError::GroupIdNotFound,
                format!(
                    "Group {group_id} is a classic group with active members, not a consumer group."
                ),
            ));
        }
        let image = self.metadata.current();
        let topics = |name: &str| image.topic(name).map(|t| (t.id, t.partitions.len() as i32));
        let max_size = self.config.group_consumer_max_size.max(1) as usize;
        let (result, records) = self
            .with_consumer_groups(|cgs| {
                let g = cgs
                    .entry(group_id.to_string())
                    .or_insert_with(|| ConsumerGroup::new(group_id));
                g.max_size = max_size;
                let result = g.heartbeat(req, Instant::now(), &topics);
                let changes = g.take_changes();
                (result, Self::consumer_records(g, changes))
            })
            .map_err(|e| (e, e.to_string()))?;
        // Durable on the ISR before the member hears of it, as Kafka's coordinator.
        self.persist_replicated(self.partition_for(group_id), records)
            .await
            .map_err(|e| (e, e.to_string()))?;
        result.map_err(|e| (e, e.to_string()))
    }

    /// ConsumerGroupDescribe: a snapshot of one KIP-848 group.
    pub async fn describe_consumer_group<T>(
        &self,
        group_id: &str,
        f: impl FnOnce(Option<&ConsumerGroup>) -> T,
    ) -> Result<T, ResponseError> {
        self.ready(group_id).await?;
        self.with_consumer_groups(|cgs| f(cgs.get(group_id)))
    }

    /// The heartbeat interval KIP-848 members are told to use.
    pub fn consumer_heartbeat_interval_ms(&self) -> i32 {
        self.config.group_consumer_heartbeat_interval_ms
    }

    /// Removes expired offsets of empty groups and writes their tombstones.
    fn expire_offsets(&self) {
        let retention_ms = i64::from(self.config.offsets_retention_minutes.max(0)) * 60_000;
        let now = now_ms();
        let expired = self
            .with_groups(|groups| {
                let mut out = Vec::new();
                for g in groups.values_mut() {
                    for (topic, partition) in g.expire_offsets(now, retention_ms) {
                        out.push((g.id.clone(), topic, partition));
                    }
                }
                out
            })
            .unwrap_or_default();
        for (group, topic, partition) in expired {
            let key = GroupRecordKey::Offset {
                group: group.clone(),
                topic,
                partition,
            };
            let _ = self.persist(self.partition_for(&group), vec![(key.encode(), None)]);
        }
    }

    /// Drives session and rebalance timeouts, and offset expiry, until shutdown.
    pub async fn run(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        let mut interval = tokio::time::interval(TICK);
        let expiry_every =
            Duration::from_millis(self.config.offsets_retention_check_interval_ms.max(1000) as u64);
        let mut last_expiry = Instant::now();
        loop {
            tokio::select! {
                _ = interval.tick() => {}
                _ = shutdown.changed() => return,
            }
            // Load the partitions this node leads ahead of the first request for their groups
            // (one per tick, so requests for loaded groups are never held up for long).
            if let Some(p) = self.next_unloaded_partition() {
                let _ = self.ensure_loaded(p);
            }
            let now = Instant::now();
            if now.duration_since(last_expiry) >= expiry_every {
                last_expiry = now;
                self.expire_offsets();
            }
            let to_persist = self
                .with_groups(|groups| {
                    groups
                        .values_mut()
                        .filter_map(|g| {
                            g.tick(now)
                                .persist_group
                                .then(|| (g.id.clone(), Self::group_record(g)))
                        })
                        .collect::<Vec<_>>()
                })
                .unwrap_or_default();
            for (group, record) in to_persist {
                let _ = self.persist(self.partition_for(&group), vec![record]);
            }
            let image = self.metadata.current();
            let topics = |name: &str| image.topic(name).map(|t| (t.id, t.partitions.len() as i32));
            let session =
                Duration::from_millis(self.config.group_consumer_session_timeout_ms.max(0) as u64);
            let expired = self
                .with_consumer_groups(|cgs| {
                    cgs.values_mut()
                        .filter_map(|g| {
                            g.tick(now, session, &topics);
                            let changes = g.take_changes();
                            (!changes.is_empty())
                                .then(|| (g.id.clone(), Self::consumer_records(g, changes)))
                        })
                        .collect::<Vec<_>>()
                })
                .unwrap_or_default();
            for (group, records) in expired {
                let _ = self.persist(self.partition_for(&group), records);
            }
        }
    }
}
