//! The partitions this node hosts, kept in step with the metadata image: a partition is opened
//! when the image makes this node one of its replicas and deleted when its topic is removed;
//! its role (leader or follower, with the leader epoch) follows its registration. Also what
//! connects partitions to the rest of the node: the wake-ups of waiting fetches and acks=all
//! produces, and the queue of ISR changes for the controller.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use tokio::sync::{Notify, mpsc};
use tracing::{error, info, warn};

use super::fetch_session::FetchSessionCache;
use super::replication::{AlterIsr, BrokerStates};
use super::{BrokerError, Partition, monotonic_ms};
use crate::config::ServerConfig;
use crate::controller::ControllerHandle;
use crate::log::{
    CompactionConfig, DEFAULT_DEDUPE_LOAD_FACTOR, LogConfig, LogDirCheckpoints, LogOpenOptions,
    OffsetMap, PartitionLog, Throttler, cleaner_offset_checkpoint_path,
};
use crate::metadata::{MetadataImage, MetadataPublisher, PartitionRegistration, TopicImage};
use crate::protocol::record_batch::TimestampType;

pub type TopicPartition = (String, i32);

/// Where a partition's ISR changes go, to be sent to the controller.
pub type AlterIsrQueue = mpsc::UnboundedSender<(Arc<Partition>, AlterIsr)>;

pub struct ReplicaManager {
    node_id: i32,
    config: Arc<ServerConfig>,
    partitions: RwLock<HashMap<TopicPartition, Arc<Partition>>>,
    /// Woken on every append and every high watermark move, so long-polling fetches re-read.
    data_arrived: Notify,
    /// Woken when a leader's high watermark moves or a role changes: acks=all produces
    /// waiting for their ISR look again (Kafka's DelayedProduce purgatory).
    replicas_acknowledged: Notify,
    /// What the image says of each broker, for ISR eligibility.
    broker_states: RwLock<Arc<BrokerStates>>,
    /// This broker's epoch once registered (-1 before): sent in ISR changes and fetches.
    broker_epoch: AtomicI64,
    /// Off until the broker has caught up with the metadata log: a restarted broker's own
    /// stale image may still name it leader of partitions that moved on, and it must not
    /// serve them (Kafka installs its publishers only after the initial catch-up).
    roles_enabled: std::sync::atomic::AtomicBool,
    /// Serialises image application, so enabling roles never races an image being applied.
    applying: Mutex<()>,
    /// The newest image the metadata loader delivered: what enabling roles applies.
    latest_image: Mutex<Option<Arc<MetadataImage>>>,
    /// Set once roles are enabled: the replica fetchers look at the partitions again then, as
    /// no new image may follow for a while to wake them.
    roles_enabled_signal: tokio::sync::watch::Sender<bool>,
    /// ISR changes for the controller (`alter_partition`). At most one change per partition
    /// is in flight, so the queue is bounded by the partitions this node leads.
    alter_isr_queue: Mutex<Option<AlterIsrQueue>>,
    pub fetch_sessions: FetchSessionCache,
    /// Per log dir: (recovery points, log start offsets) read from its checkpoint files at start.
    startup_checkpoints: Mutex<HashMap<PathBuf, StartupCheckpoints>>,
    /// cleaner-offset-checkpoint: where each compacted partition's dirty part begins.
    cleaner_offsets: Mutex<Option<BTreeMap<(String, i32), i64>>>,
}

/// (recovery points, log start offsets, high watermarks) of one log dir.
type StartupCheckpoints = (
    BTreeMap<(String, i32), i64>,
    BTreeMap<(String, i32), i64>,
    BTreeMap<(String, i32), i64>,
);

/// `partition.metadata`, Kafka's file binding a partition dir to its topic id.
fn write_partition_metadata(dir: &Path, topic_id: &uuid::Uuid) -> std::io::Result<()> {
    let text = format!(
        "version: 0\ntopic_id: {}\n",
        crate::log::meta_properties::kafka_uuid_string(topic_id)
    );
    std::fs::write(dir.join("partition.metadata"), text)
}

fn read_partition_metadata(dir: &Path) -> Option<uuid::Uuid> {
    let text = std::fs::read_to_string(dir.join("partition.metadata")).ok()?;
    let id = text
        .lines()
        .find_map(|l| l.strip_prefix("topic_id:"))?
        .trim();
    crate::log::meta_properties::parse_kafka_uuid(id)
}

impl ReplicaManager {
    pub fn new(config: Arc<ServerConfig>) -> ReplicaManager {
        ReplicaManager {
            node_id: config.node_id,
            partitions: RwLock::new(HashMap::new()),
            data_arrived: Notify::new(),
            replicas_acknowledged: Notify::new(),
            broker_states: RwLock::new(Arc::new(BrokerStates::default())),
            broker_epoch: AtomicI64::new(-1),
            alter_isr_queue: Mutex::new(None),
            roles_enabled: std::sync::atomic::AtomicBool::new(false),
            applying: Mutex::new(()),
            latest_image: Mutex::new(None),
            roles_enabled_signal: tokio::sync::watch::Sender::new(false),
            startup_checkpoints: Mutex::new(HashMap::new()),
            cleaner_offsets: Mutex::new(None),
            fetch_sessions: FetchSessionCache::new(
                config.max_incremental_fetch_session_cache_slots.max(0) as usize,
            ),
            config,
        }
    }

    pub fn get(&self, topic: &str, partition: i32) -> Option<Arc<Partition>> {
        self.partitions
            .read()
            .ok()?
            .get(&(topic.to_string(), partition))
            .cloned()
    }

    /// The partition if this node leads it; the Kafka error otherwise.
    pub fn leader_partition(
        &self,
        image: &MetadataImage,
        topic: &str,
        partition: i32,
    ) -> Result<Arc<Partition>, BrokerError> {
        // Until the broker has caught up with the metadata log after a start, its image may not
        // know the topic yet: say "not the leader here" (retriable; clients refresh metadata)
        // rather than UNKNOWN_TOPIC_OR_PARTITION, which librdkafka hands to the application.
        // Kafka's broker does not accept clients at all before that point.
        if !self.roles_enabled.load(Ordering::Acquire) {
            return Err(BrokerError::NotLeaderOrFollower);
        }
        let t = image
            .topic(topic)
            .ok_or(BrokerError::UnknownTopicOrPartition)?;
        let p = t
            .partitions
            .get(&partition)
            .ok_or(BrokerError::UnknownTopicOrPartition)?;
        if p.leader != self.node_id {
            return Err(BrokerError::NotLeaderOrFollower);
        }
        match self.get(topic, partition) {
            Some(p) if p.is_leader() => Ok(p),
            _ => Err(BrokerError::NotLeaderOrFollower),
        }
    }

    pub fn notify_data_arrived(&self) {
        self.data_arrived.notify_waiters();
    }

    /// A leader's high watermark moved: consumers may read further and acks=all produces may
    /// be done.
    pub fn notify_high_watermark_advanced(&self) {
        self.replicas_acknowledged.notify_waiters();
        self.data_arrived.notify_waiters();
    }

    /// Woken when acks=all produces should look at their partitions again. Register
    /// (`Notified::enable`) before checking, as with `data_arrived`.
    pub fn replicas_acknowledged(&self) -> &Notify {
        &self.replicas_acknowledged
    }

    /// Waits (up to `timeout`) until `partition`'s high watermark reaches `required_offset`:
    /// an acks=all write by this node itself (Kafka's DelayedProduce for one partition).
    pub async fn wait_for_high_watermark(
        &self,
        partition: &Partition,
        required_offset: i64,
        timeout: Duration,
    ) -> Result<(), BrokerError> {
        self.wait_for_replicas(timeout, || {
            Ok(partition
                .check_enough_replicas_reach_offset(required_offset)?
                .then_some(()))
        })
        .await
    }

    /// Waits (up to `timeout`) until every live replica of `partition` has moved its log start
    /// to `required_offset` (Kafka's DelayedDeleteRecords); returns the low watermark.
    pub async fn wait_for_low_watermark(
        &self,
        partition: &Partition,
        required_offset: i64,
        timeout: Duration,
    ) -> Result<i64, BrokerError> {
        self.wait_for_replicas(timeout, || {
            if !partition.is_leader() {
                return Err(BrokerError::NotLeaderOrFollower);
            }
            let low = partition.low_watermark(&self.broker_states())?;
            Ok((low >= required_offset).then_some(low))
        })
        .await
    }

    /// Re-evaluates `done` each time followers acknowledge something, until it yields a value,
    /// fails, or `timeout` passes (REQUEST_TIMED_OUT).
    async fn wait_for_replicas<T>(
        &self,
        timeout: Duration,
        done: impl Fn() -> Result<Option<T>, BrokerError>,
    ) -> Result<T, BrokerError> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let acknowledged = self.replicas_acknowledged.notified();
            tokio::pin!(acknowledged);
            acknowledged.as_mut().enable();
            if let Some(v) = done()? {
                return Ok(v);
            }
            if tokio::time::timeout_at(deadline, acknowledged)
                .await
                .is_err()
            {
                return done()?.ok_or(BrokerError::RequestTimedOut);
            }
        }
    }

    pub fn broker_states(&self) -> Arc<BrokerStates> {
        self.broker_states
            .read()
            .map(|b| b.clone())
            .unwrap_or_default()
    }

    pub fn set_broker_epoch(&self, epoch: i64) {
        self.broker_epoch.store(epoch, Ordering::Release);
    }

    pub fn broker_epoch(&self) -> i64 {
        self.broker_epoch.load(Ordering::Acquire)
    }

    pub fn node_id(&self) -> i32 {
        self.node_id
    }

    pub fn config(&self) -> &ServerConfig {
        &self.config
    }

    /// Where ISR changes go; until set they stay pending (as with an unreachable controller).
    pub fn set_alter_isr_queue(&self, tx: AlterIsrQueue) {
        if let Ok(mut q) = self.alter_isr_queue.lock() {
            *q = Some(tx);
        }
    }

    /// Queues an ISR change of `partition` for the controller.
    pub fn submit_alter_isr(&self, partition: Arc<Partition>, change: AlterIsr) {
        info!(
            topic = %partition.topic,
            partition = partition.index,
            leader_epoch = change.leader_epoch,
            partition_epoch = change.partition_epoch,
            new_isr = ?change.new_isr.iter().map(|(b, _)| *b).collect::<Vec<_>>(),
            "proposing an ISR change"
        );
        if let Ok(q) = self.alter_isr_queue.lock()
            && let Some(tx) = q.as_ref()
        {
            let _ = tx.send((partition, change));
        }
    }

    /// Kafka's periodic `maybeShrinkIsr` over every partition this node leads.
    pub fn shrink_isrs(&self) {
        let now = monotonic_ms();
        let epoch = self.broker_epoch();
        for p in self.all_partitions() {
            if p.is_leader()
                && let Some(change) = p.maybe_shrink_isr(now, epoch)
            {
                self.submit_alter_isr(p, change);
            }
        }
    }

    /// Kafka's `isr-expiration` task: every replica.lag.time.max.ms / 2, followers that fell
    /// behind leave the ISRs this node leads.
    pub async fn run_isr_expiration(
        self: Arc<Self>,
        mut shutdown: tokio::sync::watch::Receiver<bool>,
    ) {
        let every = Duration::from_millis((self.config.replica_lag_time_max_ms / 2).max(10) as u64);
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => self.shrink_isrs(),
                _ = shutdown.changed() => return,
            }
        }
    }

    /// The min.insync.replicas that applies to `topic`.
    fn min_insync_replicas(&self, topic: &str, image: &MetadataImage) -> i32 {
        let overrides = image.topic_configs(topic);
        crate::config::topic::TopicConfig::resolve(&overrides, &self.config).min_insync_replicas
    }

    /// Woken by every append. Long-polls register (`Notified::enable`) before they read, so an
    /// append between the read and the wait is not missed.
    pub fn data_arrived(&self) -> &Notify {
        &self.data_arrived
    }

    fn log_config(&self, topic: &str, image: &MetadataImage) -> LogConfig {
        let overrides = image.topic_configs(topic);
        let resolved = crate::config::topic::TopicConfig::resolve(&overrides, &self.config);
        LogConfig {
            segment_bytes: resolved.segment_bytes.max(0) as u64,
            segment_ms: resolved.segment_ms,
            index_interval_bytes: resolved.index_interval_bytes.max(0) as u32,
            max_index_size: resolved.segment_index_bytes.max(0) as u32,
            flush_interval_messages: resolved.flush_messages.max(0) as u64,
            flush_interval_ms: resolved.flush_ms,
            message_timestamp_type: match resolved.message_timestamp_type {
                crate::config::defs::TimestampType::CreateTime => TimestampType::CreateTime,
                crate::config::defs::TimestampType::LogAppendTime => TimestampType::LogAppendTime,
            },
        }
    }

    /// The max.message.bytes that applies to `topic`.
    pub fn max_message_bytes(&self, topic: &str, image: &MetadataImage) -> usize {
        let overrides = image.topic_configs(topic);
        crate::config::topic::TopicConfig::resolve(&overrides, &self.config).max_message_bytes
            as usize
    }

    /// The dir a partition lives in: where it already is, else the log dir hosting the fewest.
    fn partition_dir(&self, name: &str) -> PathBuf {
        for dir in &self.config.log_dirs {
            let candidate = dir.join(name);
            if candidate.exists() {
                return candidate;
            }
        }
        let counts = self.partitions.read().map(|p| p.len()).unwrap_or(0);
        let idx = counts % self.config.log_dirs.len().max(1);
        self.config
            .log_dirs
            .get(idx)
            .cloned()
            .unwrap_or_default()
            .join(name)
    }

    /// The broker has caught up with the metadata log: partitions take the roles `image` gives
    /// them from now on.
    /// Applies the roles of the newest image the loader delivered, under the same lock as
    /// every delivery, so an older image (one read from the metadata reader a moment before)
    /// can never overwrite the roles of a newer one.
    pub fn enable_roles(&self) {
        {
            let _applying = self.applying.lock();
            self.roles_enabled.store(true, Ordering::Release);
            let latest = self.latest_image.lock().ok().and_then(|l| l.clone());
            if let Some(image) = latest {
                self.apply_image_locked(&image);
            }
        }
        self.roles_enabled_signal.send_replace(true);
    }

    /// Changes to true once `enable_roles` has applied the roles.
    pub fn roles_enabled(&self) -> tokio::sync::watch::Receiver<bool> {
        self.roles_enabled_signal.subscribe()
    }

    /// Brings the hosted partitions in line with `image`; the caller holds `applying`.
    fn apply_image_locked(&self, image: &MetadataImage) {
        let roles = self.roles_enabled.load(Ordering::Acquire);
        let brokers = Arc::new(BrokerStates::from_image(image));
        if let Ok(mut b) = self.broker_states.write() {
            *b = brokers.clone();
        }
        let mut wanted = HashMap::new();
        for topic in image.topics() {
            for (&index, reg) in &topic.partitions {
                if reg.replicas.contains(&self.node_id) {
                    wanted.insert((topic.name.clone(), index), (topic.clone(), reg.clone()));
                }
            }
        }
        // Remove partitions whose topic is gone (or was re-created with a new id).
        let stale: Vec<TopicPartition> = {
            let Ok(parts) = self.partitions.read() else {
                return;
            };
            parts
                .iter()
                .filter(|(tp, p)| match wanted.get(*tp) {
                    None => true,
                    Some((t, _)) => t.id != p.topic_id,
                })
                .map(|(tp, _)| tp.clone())
                .collect()
        };
        for tp in stale {
            let removed = self.partitions.write().ok().and_then(|mut p| p.remove(&tp));
            if let Some(p) = removed {
                match Arc::try_unwrap(p) {
                    Ok(p) => {
                        if let Some(log) = p.into_log()
                            && let Err(e) = log.delete()
                        {
                            warn!(topic = %tp.0, partition = tp.1, error = %e, "cannot delete log");
                        }
                    }
                    Err(p) => {
                        // A request still holds it: delete the files by path; the request's
                        // reads fail with a storage error, as in Kafka.
                        let dir = self.partition_dir(&format!("{}-{}", p.topic, p.index));
                        let _ = std::fs::remove_dir_all(dir);
                    }
                }
                info!(topic = %tp.0, partition = tp.1, "deleted partition");
            }
        }
        let mut to_open = Vec::new();
        for ((name, index), (topic, reg)) in wanted {
            match self.get(&name, index) {
                Some(p) => {
                    p.update_log_config(self.log_config(&name, image));
                    if roles {
                        self.set_role(&p, &reg, image, &brokers);
                    }
                }
                None => to_open.push((name, index, topic, reg)),
            }
        }
        // Opening a log touches (and at start fsyncs) its dir: open many on a few threads, so a
        // node with hundreds of partitions still starts in milliseconds.
        let next = Mutex::new(to_open.into_iter());
        std::thread::scope(|scope| {
            for _ in 0..OPEN_THREADS {
                scope.spawn(|| {
                    loop {
                        let Some((name, index, topic, reg)) =
                            next.lock().ok().and_then(|mut it| it.next())
                        else {
                            return;
                        };
                        if let Some(p) = self.open_partition(&name, index, &topic, image)
                            && roles
                        {
                            self.set_role(&p, &reg, image, &brokers);
                        }
                    }
                });
            }
        });
        // High watermarks and roles may have changed: a waiting acks=all produce on a partition
        // this node no longer leads must answer NOT_LEADER_OR_FOLLOWER now, not at its timeout.
        self.notify_high_watermark_advanced();
    }

    /// Applies a partition's registration.
    fn set_role(
        &self,
        p: &Partition,
        reg: &PartitionRegistration,
        image: &MetadataImage,
        brokers: &BrokerStates,
    ) {
        let was = (p.is_leader(), p.leader_epoch());
        let min_isr = self.min_insync_replicas(&p.topic, image);
        match p.apply_registration(reg, min_isr, monotonic_ms(), brokers) {
            Ok(_) => {
                let now = (p.is_leader(), p.leader_epoch());
                if now != was {
                    info!(
                        topic = %p.topic,
                        partition = p.index,
                        role = if now.0 { "leader" } else { "follower" },
                        leader = reg.leader,
                        leader_epoch = now.1,
                        isr = ?reg.isr,
                        log_end_offset = p.log_end_offset(),
                        high_watermark = p.high_watermark(),
                        "partition role changed"
                    );
                }
            }
            Err(e) => {
                error!(topic = %p.topic, partition = p.index, error = %e, "cannot apply the partition's new state");
            }
        }
    }

    fn open_partition(
        &self,
        name: &str,
        index: i32,
        topic: &TopicImage,
        image: &MetadataImage,
    ) -> Option<Arc<Partition>> {
        let dir = self.partition_dir(&format!("{name}-{index}"));
        if let Some(id) = read_partition_metadata(&dir)
            && id != topic.id
        {
            // Left over from an earlier topic of the same name.
            let _ = std::fs::remove_dir_all(&dir);
        }
        let (options, checkpointed_hw) = self.startup_checkpoints(&dir, name, index);
        let log = match PartitionLog::open_with(&dir, self.log_config(name, image), options) {
            Ok(log) => log,
            Err(e) => {
                error!(dir = %dir.display(), error = %e, "cannot open partition log");
                return None;
            }
        };
        if let Err(e) = write_partition_metadata(&dir, &topic.id) {
            error!(dir = %dir.display(), error = %e, "cannot write partition.metadata");
        }
        let p = Arc::new(Partition::new(
            name.to_string(),
            topic.id,
            index,
            log,
            self.node_id,
            self.config.replica_lag_time_max_ms,
            checkpointed_hw.unwrap_or(0),
        ));
        if let Ok(mut parts) = self.partitions.write() {
            parts.insert((name.to_string(), index), p.clone());
        }
        Some(p)
    }

    /// Deletes partition dirs that no topic of `image` owns: left behind when the node stopped
    /// between committing a topic deletion and removing its files. Call once the image is
    /// caught up, so that no live topic is mistaken for a stray.
    pub fn remove_stray_logs(&self, image: &MetadataImage) {
        for log_dir in &self.config.log_dirs {
            let Ok(entries) = std::fs::read_dir(log_dir) else {
                continue;
            };
            for entry in entries.flatten() {
                let path = entry.path();
                let Some(topic_id) = read_partition_metadata(&path) else {
                    continue;
                };
                let owned = image.topic_by_id(&topic_id).is_some_and(|t| {
                    path.file_name()
                        .and_then(|n| n.to_str())
                        .and_then(|n| n.rsplit_once('-'))
                        .is_some_and(|(name, p)| {
                            name == t.name
                                && p.parse::<i32>()
                                    .is_ok_and(|p| t.partitions.contains_key(&p))
                        })
                });
                if !owned {
                    match std::fs::remove_dir_all(&path) {
                        Ok(()) => {
                            info!(dir = %path.display(), "deleted stray partition dir (its topic was deleted)")
                        }
                        Err(e) => {
                            warn!(dir = %path.display(), error = %e, "cannot delete stray partition dir")
                        }
                    }
                }
            }
        }
    }

    /// What the log dir's checkpoint files said at start about this partition, with its high
    /// watermark from replication-offset-checkpoint. Read once per log dir: later the files
    /// are written by this process.
    fn startup_checkpoints(
        &self,
        partition_dir: &Path,
        topic: &str,
        index: i32,
    ) -> (LogOpenOptions, Option<i64>) {
        let Some(log_dir) = partition_dir.parent() else {
            return (LogOpenOptions::default(), None);
        };
        let Ok(mut cache) = self.startup_checkpoints.lock() else {
            return (LogOpenOptions::default(), None);
        };
        let maps = cache.entry(log_dir.to_path_buf()).or_insert_with(|| {
            let read = |path: PathBuf| match LogDirCheckpoints::read(&path) {
                Ok(map) => map,
                Err(e) => {
                    warn!(file = %path.display(), error = %e, "ignoring unreadable checkpoint file");
                    Default::default()
                }
            };
            (
                read(LogDirCheckpoints::recovery_point_path(log_dir)),
                read(LogDirCheckpoints::log_start_offset_path(log_dir)),
                read(LogDirCheckpoints::replication_offset_path(log_dir)),
            )
        });
        let hw = maps.2.get(&(topic.to_string(), index)).copied();
        (
            LogOpenOptions::from_checkpoints(&maps.0, &maps.1, topic, index),
            hw,
        )
    }

    /// Writes recovery-point-offset-checkpoint, log-start-offset-checkpoint and
    /// replication-offset-checkpoint in every log dir, as Kafka does periodically and on a clean
    /// shutdown.
    pub fn write_checkpoints(&self, partitions: &[Arc<Partition>]) {
        type Maps = (
            BTreeMap<(String, i32), i64>,
            BTreeMap<(String, i32), i64>,
            BTreeMap<(String, i32), i64>,
        );
        let mut by_dir: HashMap<PathBuf, Maps> = HashMap::new();
        for dir in &self.config.log_dirs {
            by_dir.entry(dir.clone()).or_default();
        }
        for p in partitions {
            let Some((dir, recovery, start)) = p.checkpoint_offsets() else {
                continue;
            };
            let key = (p.topic.clone(), p.index);
            let maps = by_dir.entry(dir).or_default();
            maps.0.insert(key.clone(), recovery);
            maps.1.insert(key.clone(), start);
            maps.2.insert(key, p.high_watermark());
        }
        let cleaner = self.cleaner_offsets().unwrap_or_default();
        for (dir, (recovery, start, hw)) in by_dir {
            let cleaned: BTreeMap<(String, i32), i64> = cleaner
                .iter()
                .filter(|(k, _)| recovery.contains_key(*k))
                .map(|(k, v)| (k.clone(), *v))
                .collect();
            for (path, map) in [
                (cleaner_offset_checkpoint_path(&dir), cleaned),
                (LogDirCheckpoints::recovery_point_path(&dir), recovery),
                (LogDirCheckpoints::log_start_offset_path(&dir), start),
                (LogDirCheckpoints::replication_offset_path(&dir), hw),
            ] {
                if let Err(e) = LogDirCheckpoints::write(&path, &map) {
                    warn!(file = %path.display(), error = %e, "cannot write checkpoint file");
                }
            }
        }
    }

    /// Log housekeeping until shutdown: retention and age-based rolls every
    /// log.retention.check.interval.ms, time-based flushes every second, checkpoint files every
    /// log.flush.offset.checkpoint.interval.ms.
    pub async fn run_maintenance(
        self: Arc<Self>,
        metadata: crate::metadata::MetadataReader,
        mut shutdown: tokio::sync::watch::Receiver<bool>,
    ) {
        let retention_every =
            Duration::from_millis(self.config.log_retention_check_interval_ms.max(100) as u64);
        let checkpoint_every = Duration::from_millis(
            self.config.log_flush_offset_checkpoint_interval_ms.max(100) as u64,
        );
        let mut tick = tokio::time::interval(Duration::from_millis(
            retention_every.as_millis().min(1000) as u64,
        ));
        let mut last_retention = std::time::Instant::now();
        let mut last_checkpoint = std::time::Instant::now();
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = shutdown.changed() => return,
            }
            let now = std::time::Instant::now();
            let retention_due = now.duration_since(last_retention) >= retention_every;
            let checkpoint_due = now.duration_since(last_checkpoint) >= checkpoint_every;
            if retention_due {
                last_retention = now;
            }
            if checkpoint_due {
                last_checkpoint = now;
            }
            let this = self.clone();
            let image = metadata.current();
            let _ = tokio::task::spawn_blocking(move || {
                let partitions = this.all_partitions();
                let now_ms = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_millis() as i64);
                let mut deleted = 0;
                for p in &partitions {
                    let overrides = image.topic_configs(&p.topic);
                    let cfg = crate::config::topic::TopicConfig::resolve(&overrides, &this.config);
                    let retention = if !retention_due {
                        // Between retention checks only flushes (and rolls) are due.
                        Some((-1, -1))
                    } else if cfg.cleanup_policy.delete {
                        Some((cfg.retention_ms, cfg.retention_bytes))
                    } else {
                        None
                    };
                    match p.maintain(now_ms, retention) {
                        Ok(n) => deleted += n,
                        Err(e) => warn!(topic = %p.topic, partition = p.index, error = %e, "log maintenance failed"),
                    }
                }
                if deleted > 0 {
                    info!(segments = deleted, "retention deleted old segments");
                }
                if checkpoint_due {
                    this.write_checkpoints(&partitions);
                }
            })
            .await;
        }
    }

    /// Every log dir's cleaner-offset-checkpoint, read on first use.
    fn cleaner_offsets(&self) -> Option<BTreeMap<(String, i32), i64>> {
        let mut guard = self.cleaner_offsets.lock().ok()?;
        if guard.is_none() {
            let mut all = BTreeMap::new();
            for dir in &self.config.log_dirs {
                if let Ok(map) = LogDirCheckpoints::read(&cleaner_offset_checkpoint_path(dir)) {
                    all.extend(map);
                }
            }
            *guard = Some(all);
        }
        guard.clone()
    }

    fn set_cleaner_offset(&self, topic: &str, partition: i32, offset: i64) {
        let _ = self.cleaner_offsets();
        if let Ok(mut guard) = self.cleaner_offsets.lock()
            && let Some(map) = guard.as_mut()
        {
            map.insert((topic.to_string(), partition), offset);
        }
    }

    /// Compacts topics with cleanup.policy containing compact, one partition at a time, every
    /// log.cleaner.backoff.ms. Only the plan and the swap hold a partition's lock; the rewrite
    /// runs without it, so produce and fetch never wait on the cleaner's I/O.
    pub async fn run_cleaner(
        self: Arc<Self>,
        metadata: crate::metadata::MetadataReader,
        mut shutdown: tokio::sync::watch::Receiver<bool>,
    ) {
        if !self.config.log_cleaner_enable {
            return;
        }
        let backoff = Duration::from_millis(self.config.log_cleaner_backoff_ms.max(10) as u64);
        loop {
            tokio::select! {
                _ = tokio::time::sleep(backoff) => {}
                _ = shutdown.changed() => return,
            }
            let this = self.clone();
            let image = metadata.current();
            let _ = tokio::task::spawn_blocking(move || this.clean_once(&image)).await;
        }
    }

    fn clean_once(&self, image: &MetadataImage) {
        let last_clean = self.cleaner_offsets().unwrap_or_default();
        for p in self.all_partitions() {
            let overrides = image.topic_configs(&p.topic);
            let cfg = crate::config::topic::TopicConfig::resolve(&overrides, &self.config);
            if !cfg.cleanup_policy.compact {
                continue;
            }
            let compaction = CompactionConfig {
                delete_retention_ms: cfg.delete_retention_ms,
                min_compaction_lag_ms: cfg.min_compaction_lag_ms,
                max_compaction_lag_ms: cfg.max_compaction_lag_ms,
                min_cleanable_dirty_ratio: cfg.min_cleanable_dirty_ratio,
            };
            let now_ms = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as i64);
            let last = last_clean.get(&(p.topic.clone(), p.index)).copied();
            let plan = match p.prepare_clean(&compaction, last, now_ms) {
                Ok(Some(plan)) => plan,
                Ok(None) => continue,
                Err(e) => {
                    warn!(topic = %p.topic, partition = p.index, error = %e, "cannot plan a clean");
                    continue;
                }
            };
            // Each entry is 24 bytes; a record takes at least ~8: size the map to the dirty
            // bytes (up to log.cleaner.dedupe.buffer.size) so an idle node stays small.
            let map_bytes = (plan.cleanable_bytes as usize).saturating_mul(3).clamp(
                1 << 16,
                self.config.log_cleaner_dedupe_buffer_size.max(1 << 16) as usize,
            );
            let mut map = OffsetMap::new(map_bytes, DEFAULT_DEDUPE_LOAD_FACTOR);
            let rate = self.config.log_cleaner_io_max_bytes_per_second;
            let mut throttler = (rate.is_finite() && rate < 1e15).then(|| Throttler::new(rate));
            let started = std::time::Instant::now();
            let cleaned = match plan.clean(&mut map, throttler.as_mut()) {
                Ok(c) => c,
                Err(e) => {
                    warn!(topic = %p.topic, partition = p.index, error = %e, "compaction failed");
                    continue;
                }
            };
            match p.commit_clean(cleaned) {
                Ok(outcome) => {
                    if let Some(offset) = outcome.first_dirty_offset {
                        self.set_cleaner_offset(&p.topic, p.index, offset);
                    }
                    info!(
                        topic = %p.topic,
                        partition = p.index,
                        bytes_before = outcome.bytes_before,
                        bytes_after = outcome.bytes_after,
                        segments = outcome.segments_replaced,
                        ms = started.elapsed().as_millis() as u64,
                        "compacted"
                    );
                }
                Err(e) => {
                    warn!(topic = %p.topic, partition = p.index, error = %e, "cannot swap cleaned segments")
                }
            }
        }
    }

    pub fn all_partitions(&self) -> Vec<Arc<Partition>> {
        self.partitions
            .read()
            .map(|p| p.values().cloned().collect())
            .unwrap_or_default()
    }

    /// Flushes and closes every log: the clean-shutdown path.
    pub fn shutdown(&self) {
        let parts: Vec<_> = match self.partitions.write() {
            Ok(mut p) => p.drain().map(|(_, v)| v).collect(),
            Err(_) => return,
        };
        // Flush first so the checkpoints name durable offsets, then close.
        for p in &parts {
            let _ = p.flush();
        }
        self.write_checkpoints(&parts);
        // Each close fsyncs its files; closing on a few threads keeps a node with many partitions
        // from spending seconds in sequential fsyncs.
        let next = std::sync::Mutex::new(parts.into_iter());
        std::thread::scope(|scope| {
            for _ in 0..SHUTDOWN_THREADS {
                scope.spawn(|| {
                    loop {
                        let Some(p) = next.lock().ok().and_then(|mut it| it.next()) else {
                            return;
                        };
                        close_partition(p);
                    }
                });
            }
        });
    }
}

/// Threads that flush and close logs at shutdown.
const SHUTDOWN_THREADS: usize = 8;
/// Threads that open partition logs when an image adds many at once (e.g. at start).
const OPEN_THREADS: usize = 8;

fn close_partition(p: Arc<Partition>) {
    let name = format!("{}-{}", p.topic, p.index);
    match Arc::try_unwrap(p) {
        Ok(p) => {
            if let Some(log) = p.into_log()
                && let Err(e) = log.close()
            {
                warn!(partition = %name, error = %e, "cannot close log cleanly");
            }
        }
        Err(p) => {
            let _ = p.flush();
        }
    }
}

impl MetadataPublisher for ReplicaManager {
    fn publish(&self, image: &Arc<MetadataImage>) {
        let _applying = self.applying.lock();
        if let Ok(mut latest) = self.latest_image.lock() {
            *latest = Some(image.clone());
        }
        self.apply_image_locked(image);
    }
}

/// Hands out producer ids from blocks the controller allocates (ProducerIdsRecord).
pub struct ProducerIdManager {
    block: Mutex<(i64, i64)>,
}

impl Default for ProducerIdManager {
    fn default() -> Self {
        ProducerIdManager {
            block: Mutex::new((0, 0)),
        }
    }
}

impl ProducerIdManager {
    pub async fn next_id(
        &self,
        controller: &ControllerHandle,
        broker_id: i32,
        broker_epoch: i64,
    ) -> Result<i64, crate::controller::ControllerError> {
        if let Some(id) = self.take() {
            return Ok(id);
        }
        let (start, len) = controller
            .allocate_producer_ids(broker_id, broker_epoch)
            .await?;
        let mut block = self
            .block
            .lock()
            .map_err(|_| crate::controller::ControllerError::Unknown("poisoned".into()))?;
        *block = (start + 1, start + len);
        Ok(start)
    }

    fn take(&self) -> Option<i64> {
        let mut block = self.block.lock().ok()?;
        if block.0 < block.1 {
            let id = block.0;
            block.0 += 1;
            Some(id)
        } else {
            None
        }
    }
}
