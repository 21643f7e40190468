//! `ServerConfig`: the typed, validated broker/controller configuration of one kraftd node.
//!
//! Owns: merging the file with `--override`s, Kafka's defaults, and the checks Kafka's
//! `KafkaConfig.validateValues` makes for KRaft nodes (roles, node id, listeners, quorum), plus
//! kraftd's own limit: only PLAINTEXT listeners are served. Every other module reads typed
//! fields from here instead of strings.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};

use super::defs::{self, BrokerKey, CleanupPolicy, CompressionType, Support, TimestampType, Value};
use super::properties::{Properties, decode_properties_bytes};
use super::{ConfigError, Origin};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ProcessRole {
    Broker,
    Controller,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecurityProtocol {
    Plaintext,
    Ssl,
    SaslPlaintext,
    SaslSsl,
}

impl SecurityProtocol {
    pub fn parse(s: &str) -> Option<SecurityProtocol> {
        match s.to_ascii_uppercase().as_str() {
            "PLAINTEXT" => Some(SecurityProtocol::Plaintext),
            "SSL" => Some(SecurityProtocol::Ssl),
            "SASL_PLAINTEXT" => Some(SecurityProtocol::SaslPlaintext),
            "SASL_SSL" => Some(SecurityProtocol::SaslSsl),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            SecurityProtocol::Plaintext => "PLAINTEXT",
            SecurityProtocol::Ssl => "SSL",
            SecurityProtocol::SaslPlaintext => "SASL_PLAINTEXT",
            SecurityProtocol::SaslSsl => "SASL_SSL",
        }
    }
}

/// One `NAME://host:port` entry. The name is upper-cased as Kafka's `ListenerName.normalised`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listener {
    pub name: String,
    /// `None` = bind to every interface (Kafka's empty host). IPv6 hosts are stored unbracketed.
    pub host: Option<String>,
    pub port: u16,
    pub security_protocol: SecurityProtocol,
}

/// One `id@host:port` entry of `controller.quorum.voters`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Voter {
    pub id: i32,
    pub host: String,
    pub port: u16,
}

#[derive(Debug, Clone)]
struct RawValue {
    value: String,
    origin: Origin,
    /// Set by kraftd (node.id <-> broker.id), not written by the user.
    synthesized: bool,
}

/// The configuration of one node, with Kafka 4.x defaults for everything not set.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    source: PathBuf,
    raw: BTreeMap<String, RawValue>,
    /// One line each: unknown keys and tuning keys kraftd ignores.
    pub warnings: Vec<String>,

    pub node_id: i32,
    pub process_roles: Vec<ProcessRole>,
    pub listeners: Vec<Listener>,
    /// Kafka's `effectiveAdvertisedBrokerListeners`: `advertised.listeners` (or `listeners` when
    /// unset) without the controller listeners.
    pub advertised_listeners: Vec<Listener>,
    /// Kafka's `effectiveAdvertisedControllerListeners`, in `controller.listener.names` order.
    pub advertised_controller_listeners: Vec<Listener>,
    pub listener_security_protocol_map: BTreeMap<String, SecurityProtocol>,
    pub controller_listener_names: Vec<String>,
    pub inter_broker_listener_name: String,
    pub controller_quorum_voters: Vec<Voter>,
    pub controller_quorum_bootstrap_servers: Vec<(String, u16)>,
    pub controller_quorum_election_timeout_ms: i32,
    pub controller_quorum_fetch_timeout_ms: i32,
    pub controller_quorum_election_backoff_max_ms: i32,
    pub controller_quorum_request_timeout_ms: i32,
    pub controller_quorum_retry_backoff_ms: i32,
    pub controller_quorum_append_linger_ms: i32,
    pub controller_quorum_auto_join_enable: bool,
    pub broker_rack: Option<String>,

    pub log_dirs: Vec<PathBuf>,
    metadata_log_dir: Option<PathBuf>,
    pub num_partitions: i32,
    pub default_replication_factor: i32,
    pub auto_create_topics_enable: bool,
    pub delete_topic_enable: bool,
    pub message_max_bytes: i32,
    pub log_segment_bytes: i32,
    /// Effective roll time: `log.roll.ms`, else `log.roll.hours` in ms.
    pub log_roll_ms: i64,
    pub log_roll_jitter_ms: i64,
    /// Effective retention: `log.retention.ms`, else minutes, else hours; negative = -1.
    pub log_retention_ms: i64,
    pub log_retention_bytes: i64,
    pub log_retention_check_interval_ms: i64,
    pub log_index_interval_bytes: i32,
    pub log_index_size_max_bytes: i32,
    pub log_flush_interval_messages: i64,
    /// Effective: `log.flush.interval.ms`, else `log.flush.scheduler.interval.ms`.
    pub log_flush_interval_ms: i64,
    pub log_flush_scheduler_interval_ms: i64,
    pub log_flush_offset_checkpoint_interval_ms: i32,
    pub log_segment_delete_delay_ms: i64,
    pub log_preallocate: bool,
    pub log_cleanup_policy: CleanupPolicy,
    pub log_cleaner_enable: bool,
    pub log_cleaner_backoff_ms: i64,
    pub log_cleaner_delete_retention_ms: i64,
    pub log_cleaner_min_compaction_lag_ms: i64,
    pub log_cleaner_max_compaction_lag_ms: i64,
    pub log_cleaner_min_cleanable_ratio: f64,
    pub log_cleaner_dedupe_buffer_size: i64,
    pub log_cleaner_io_max_bytes_per_second: f64,
    pub min_insync_replicas: i32,
    pub unclean_leader_election_enable: bool,
    pub compression_type: CompressionType,
    pub log_message_timestamp_type: TimestampType,
    pub log_message_timestamp_before_max_ms: i64,
    pub log_message_timestamp_after_max_ms: i64,
    pub fetch_max_bytes: i32,
    pub max_incremental_fetch_session_cache_slots: i32,

    pub offsets_topic_num_partitions: i32,
    pub offsets_topic_replication_factor: i16,
    pub offsets_topic_segment_bytes: i32,
    pub offsets_retention_minutes: i32,
    pub offsets_retention_check_interval_ms: i64,
    pub offsets_commit_timeout_ms: i32,
    pub offset_metadata_max_bytes: i32,
    pub transaction_state_log_num_partitions: i32,
    pub transaction_state_log_replication_factor: i16,
    pub transaction_state_log_min_isr: i32,
    pub transaction_state_log_segment_bytes: i32,
    pub transaction_max_timeout_ms: i32,
    pub transactional_id_expiration_ms: i32,
    pub producer_id_expiration_ms: i32,

    pub group_initial_rebalance_delay_ms: i32,
    pub group_min_session_timeout_ms: i32,
    pub group_max_session_timeout_ms: i32,
    pub group_max_size: i32,
    pub group_consumer_session_timeout_ms: i32,
    pub group_consumer_min_session_timeout_ms: i32,
    pub group_consumer_max_session_timeout_ms: i32,
    pub group_consumer_heartbeat_interval_ms: i32,
    pub group_consumer_min_heartbeat_interval_ms: i32,
    pub group_consumer_max_heartbeat_interval_ms: i32,
    pub group_consumer_max_size: i32,

    pub socket_request_max_bytes: i32,
    pub socket_send_buffer_bytes: i32,
    pub socket_receive_buffer_bytes: i32,
    pub socket_listen_backlog_size: i32,
    pub connections_max_idle_ms: i64,
    pub queued_max_requests: i32,
    pub queued_max_request_bytes: i64,
    pub max_connections: i32,
    pub max_connections_per_ip: i32,
    pub request_timeout_ms: i32,
    pub num_network_threads: i32,
    pub num_io_threads: i32,
    pub num_recovery_threads_per_data_dir: i32,
    pub num_replica_fetchers: i32,
    pub background_threads: i32,

    pub replica_lag_time_max_ms: i64,
    pub replica_fetch_max_bytes: i32,
    pub replica_fetch_response_max_bytes: i32,
    pub replica_fetch_wait_max_ms: i32,
    pub replica_fetch_min_bytes: i32,
    pub replica_fetch_backoff_ms: i32,
    pub replica_socket_timeout_ms: i32,
    pub replica_high_watermark_checkpoint_interval_ms: i64,
    pub auto_leader_rebalance_enable: bool,
    pub leader_imbalance_check_interval_seconds: i64,

    pub broker_heartbeat_interval_ms: i32,
    pub broker_session_timeout_ms: i32,
    pub initial_broker_registration_timeout_ms: i32,
    pub metadata_log_max_record_bytes_between_snapshots: i64,
    pub metadata_log_max_snapshot_interval_ms: i64,
    pub metadata_max_idle_interval_ms: i32,
    pub metadata_log_segment_bytes: i32,
    pub metadata_log_segment_ms: i64,
    pub metadata_max_retention_bytes: i64,
    pub metadata_max_retention_ms: i64,
}

impl ServerConfig {
    /// Reads `path` and applies `overrides` (from `--override key=value`; they win).
    pub fn load(path: &Path, overrides: &[(String, String)]) -> Result<ServerConfig, ConfigError> {
        let bytes = std::fs::read(path).map_err(|source| ConfigError::Io {
            file: path.to_path_buf(),
            source,
        })?;
        ServerConfig::from_str(&decode_properties_bytes(&bytes), path, overrides)
    }

    /// Parses `text` as the content of `source` (used in messages only).
    pub fn from_str(
        text: &str,
        source: &Path,
        overrides: &[(String, String)],
    ) -> Result<ServerConfig, ConfigError> {
        let props = Properties::parse(text).map_err(|e| {
            ConfigError::invalid(
                source,
                Origin::Line(e.line),
                "",
                e.message,
                "write a backslash-u escape as exactly four hex digits, or double the backslash",
            )
        })?;
        let mut raw: BTreeMap<String, RawValue> = props
            .iter()
            .map(|(k, v)| {
                let raw = RawValue {
                    value: v.value.clone(),
                    origin: Origin::Line(v.line),
                    synthesized: false,
                };
                (k.to_owned(), raw)
            })
            .collect();
        for (k, v) in overrides {
            let raw_value = RawValue {
                value: v.clone(),
                origin: Origin::Override,
                synthesized: false,
            };
            raw.insert(k.clone(), raw_value);
        }
        // Kafka's `populateSynonyms`: node.id and broker.id stand for each other.
        for (from, to) in [("node.id", "broker.id"), ("broker.id", "node.id")] {
            if !raw.contains_key(to)
                && let Some(v) = raw.get(from).cloned()
            {
                raw.insert(
                    to.to_owned(),
                    RawValue {
                        synthesized: true,
                        ..v
                    },
                );
            }
        }
        let loader = Loader { file: source, raw };
        let warnings = loader.warnings();
        loader.check_every_set_key()?;
        build(loader, warnings)
    }

    pub fn source(&self) -> &Path {
        &self.source
    }

    /// The value as written (after `--override`s), or `None` when unset.
    pub fn raw(&self, key: &str) -> Option<&str> {
        self.raw.get(key).map(|r| r.value.as_str())
    }

    /// The 1-based line of `key` in the file (`None` if unset or given by `--override`).
    pub fn raw_line(&self, key: &str) -> Option<u32> {
        match self.raw.get(key)?.origin {
            Origin::Line(l) => Some(l),
            _ => None,
        }
    }

    /// `metadata.log.dir`, else the first of `log_dirs`.
    pub fn metadata_log_dir(&self) -> PathBuf {
        match (&self.metadata_log_dir, self.log_dirs.first()) {
            (Some(d), _) => d.clone(),
            (None, Some(d)) => d.clone(),
            // `build` refuses an empty log dir list.
            (None, None) => PathBuf::from("/tmp/kafka-logs"),
        }
    }

    pub fn has_role(&self, role: ProcessRole) -> bool {
        self.process_roles.contains(&role)
    }

    pub fn is_broker(&self) -> bool {
        self.has_role(ProcessRole::Broker)
    }

    pub fn is_controller(&self) -> bool {
        self.has_role(ProcessRole::Controller)
    }

    /// The listener brokers use to reach the controllers (first of `controller.listener.names`).
    pub fn controller_listener_for_brokers(&self) -> Option<&str> {
        self.controller_listener_names.first().map(String::as_str)
    }

    /// The effective value of a broker key as Kafka prints it: the parsed value when set, else
    /// the default (`None` for keys whose Kafka default is null, or that kraftd does not know).
    pub fn effective_string(&self, key: &str) -> Option<String> {
        let def = defs::broker_key(key)?;
        match self.raw.get(key) {
            Some(r) => defs::parse_value(def.ty, &r.value)
                .ok()
                .map(|v| v.to_kafka_string()),
            None => def.default.map(str::to_owned),
        }
    }
}

struct Loader<'a> {
    file: &'a Path,
    raw: BTreeMap<String, RawValue>,
}

impl Loader<'_> {
    fn origin(&self, key: &str) -> Origin {
        self.raw.get(key).map_or(Origin::Absent, |r| r.origin)
    }

    fn err(&self, key: &str, problem: impl Into<String>, fix: impl Into<String>) -> ConfigError {
        ConfigError::invalid(self.file, self.origin(key), key, problem, fix)
    }

    fn is_set(&self, key: &str) -> bool {
        self.raw.contains_key(key)
    }

    fn is_set_by_user(&self, key: &str) -> bool {
        self.raw.get(key).is_some_and(|r| !r.synthesized)
    }

    /// Entries in the order the user wrote them: file lines first, then overrides.
    fn user_entries(&self) -> Vec<(&str, &RawValue)> {
        let mut v: Vec<_> = self
            .raw
            .iter()
            .filter(|(_, r)| !r.synthesized)
            .map(|(k, r)| (k.as_str(), r))
            .collect();
        v.sort_by_key(|(_, r)| match r.origin {
            Origin::Line(l) => u64::from(l),
            _ => u64::MAX,
        });
        v
    }

    fn place(&self, origin: Origin) -> String {
        match origin {
            Origin::Line(l) => format!("{}:{l}", self.file.display()),
            _ => format!("{}: --override", self.file.display()),
        }
    }

    fn warnings(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (key, r) in self.user_entries() {
            match defs::broker_key(key).map(|k| k.support) {
                None => out.push(format!(
                    "{}: unknown key '{key}' ignored",
                    self.place(r.origin)
                )),
                Some(Support::Tuning) => out.push(format!(
                    "{}: '{key}' accepted but has no effect: kraftd sizes its runtime itself",
                    self.place(r.origin)
                )),
                Some(_) => {}
            }
        }
        out
    }

    /// Type and range of every known key that is set, in the order written, so that the first
    /// error reported is the first bad line.
    fn check_every_set_key(&self) -> Result<(), ConfigError> {
        for (key, r) in self.user_entries() {
            if let Some(def) = defs::broker_key(key) {
                self.parse_checked(def, &r.value)?;
            }
        }
        Ok(())
    }

    fn parse_checked(&self, def: &BrokerKey, raw: &str) -> Result<Value, ConfigError> {
        let v = defs::parse_value(def.ty, raw).map_err(|p| self.err(def.name, p.problem, p.fix))?;
        defs::check_value(def.validator, &v).map_err(|p| self.err(def.name, p.problem, p.fix))?;
        Ok(v)
    }

    /// The typed value of a known key: as set, else its default; `None` when unset without
    /// default.
    fn value(&self, key: &str) -> Result<Option<Value>, ConfigError> {
        let def = defs::broker_key(key).ok_or_else(|| {
            self.err(
                key,
                "is not in kraftd's key table",
                "report this kraftd bug",
            )
        })?;
        match self.raw.get(key) {
            Some(r) => self.parse_checked(def, &r.value).map(Some),
            None => match def.default {
                Some(d) => self.parse_checked(def, d).map(Some),
                None => Ok(None),
            },
        }
    }

    fn opt_long(&self, key: &str) -> Result<Option<i64>, ConfigError> {
        match self.value(key)? {
            Some(Value::Int(v)) => Ok(Some(v)),
            None => Ok(None),
            Some(_) => Err(self.err(key, "has the wrong type", "report this kraftd bug")),
        }
    }

    fn long(&self, key: &str) -> Result<i64, ConfigError> {
        self.opt_long(key)?
            .ok_or_else(|| self.err(key, "has no value", "set it"))
    }

    fn int(&self, key: &str) -> Result<i32, ConfigError> {
        let v = self.long(key)?;
        i32::try_from(v).map_err(|_| {
            self.err(
                key,
                format!("{v} does not fit 32 bits"),
                "use a smaller value",
            )
        })
    }

    fn short(&self, key: &str) -> Result<i16, ConfigError> {
        let v = self.long(key)?;
        i16::try_from(v).map_err(|_| {
            self.err(
                key,
                format!("{v} does not fit 16 bits"),
                "use a smaller value",
            )
        })
    }

    fn bool(&self, key: &str) -> Result<bool, ConfigError> {
        match self.value(key)? {
            Some(Value::Bool(b)) => Ok(b),
            _ => Err(self.err(key, "has no boolean value", "set it to true or false")),
        }
    }

    fn double(&self, key: &str) -> Result<f64, ConfigError> {
        match self.value(key)? {
            Some(Value::Double(d)) => Ok(d),
            _ => Err(self.err(key, "has no numeric value", "set it to a number")),
        }
    }

    fn opt_string(&self, key: &str) -> Result<Option<String>, ConfigError> {
        match self.value(key)? {
            Some(Value::Str(s)) => Ok(Some(s)),
            Some(Value::List(l)) => Ok(Some(l.join(","))),
            _ => Ok(None),
        }
    }

    fn string(&self, key: &str) -> Result<String, ConfigError> {
        self.opt_string(key)?
            .ok_or_else(|| self.err(key, "has no value", "set it"))
    }

    fn list(&self, key: &str) -> Result<Vec<String>, ConfigError> {
        match self.value(key)? {
            Some(Value::List(l)) => Ok(l),
            Some(Value::Str(s)) => Ok(defs::split_list(&s)),
            _ => Ok(Vec::new()),
        }
    }
}

fn build(l: Loader<'_>, warnings: Vec<String>) -> Result<ServerConfig, ConfigError> {
    let process_roles = process_roles(&l)?;
    let node_id = node_id(&l)?;

    // Log time settings, resolved as KafkaConfig does.
    let log_roll_ms = match l.opt_long("log.roll.ms")? {
        Some(ms) => ms,
        None => 3_600_000 * l.long("log.roll.hours")?,
    };
    if log_roll_ms < 1 {
        let key = if l.is_set("log.roll.ms") {
            "log.roll.ms"
        } else {
            "log.roll.hours"
        };
        return Err(l.err(
            key,
            format!("{log_roll_ms} ms is below 1"),
            "use a roll time >= 1 ms",
        ));
    }
    let log_roll_jitter_ms = match l.opt_long("log.roll.jitter.ms")? {
        Some(ms) => ms,
        None => 3_600_000 * l.long("log.roll.jitter.hours")?,
    };
    if log_roll_jitter_ms < 0 {
        return Err(l.err(
            "log.roll.jitter.ms",
            format!("{log_roll_jitter_ms} is negative"),
            "use a jitter >= 0",
        ));
    }
    let (retention_key, log_retention_ms) = if let Some(ms) = l.opt_long("log.retention.ms")? {
        ("log.retention.ms", ms)
    } else if let Some(min) = l.opt_long("log.retention.minutes")? {
        ("log.retention.minutes", 60_000 * min)
    } else {
        (
            "log.retention.hours",
            3_600_000 * l.long("log.retention.hours")?,
        )
    };
    let log_retention_ms = if log_retention_ms < 0 {
        -1
    } else {
        log_retention_ms
    };
    if log_retention_ms == 0 {
        return Err(l.err(
            retention_key,
            "a retention of 0 is not allowed",
            "use -1 for no time limit or a value >= 1",
        ));
    }
    let log_flush_interval_ms = match l.opt_long("log.flush.interval.ms")? {
        Some(ms) => ms,
        None => l.long("log.flush.scheduler.interval.ms")?,
    };

    let log_dirs = log_dirs(&l)?;
    let metadata_log_dir = l
        .opt_string("metadata.log.dir")?
        .filter(|s| !s.is_empty())
        .map(PathBuf::from);

    let replica_fetch_wait_max_ms = l.int("replica.fetch.wait.max.ms")?;
    let replica_socket_timeout_ms = l.int("replica.socket.timeout.ms")?;
    let replica_lag_time_max_ms = l.long("replica.lag.time.max.ms")?;
    if replica_fetch_wait_max_ms > replica_socket_timeout_ms {
        return Err(l.err(
            "replica.socket.timeout.ms",
            format!("{replica_socket_timeout_ms} is below replica.fetch.wait.max.ms={replica_fetch_wait_max_ms}"),
            "make replica.socket.timeout.ms at least replica.fetch.wait.max.ms",
        ));
    }
    if i64::from(replica_fetch_wait_max_ms) > replica_lag_time_max_ms {
        return Err(l.err(
            "replica.fetch.wait.max.ms",
            format!("{replica_fetch_wait_max_ms} exceeds replica.lag.time.max.ms={replica_lag_time_max_ms}"),
            "make replica.fetch.wait.max.ms at most replica.lag.time.max.ms",
        ));
    }

    let net = network(&l, &process_roles, node_id)?;

    let compression_type = l.string("compression.type")?;
    let timestamp_type = l.string("log.message.timestamp.type")?;

    Ok(ServerConfig {
        source: l.file.to_path_buf(),
        warnings,
        node_id,
        process_roles,
        listeners: net.listeners,
        advertised_listeners: net.advertised_broker,
        advertised_controller_listeners: net.advertised_controller,
        listener_security_protocol_map: net.protocol_map,
        controller_listener_names: net.controller_listener_names,
        inter_broker_listener_name: net.inter_broker_listener_name,
        controller_quorum_voters: net.voters,
        controller_quorum_bootstrap_servers: net.bootstrap_servers,
        controller_quorum_election_timeout_ms: l.int("controller.quorum.election.timeout.ms")?,
        controller_quorum_fetch_timeout_ms: l.int("controller.quorum.fetch.timeout.ms")?,
        controller_quorum_election_backoff_max_ms: l
            .int("controller.quorum.election.backoff.max.ms")?,
        controller_quorum_request_timeout_ms: l.int("controller.quorum.request.timeout.ms")?,
        controller_quorum_retry_backoff_ms: l.int("controller.quorum.retry.backoff.ms")?,
        controller_quorum_append_linger_ms: l.int("controller.quorum.append.linger.ms")?,
        controller_quorum_auto_join_enable: l.bool("controller.quorum.auto.join.enable")?,
        broker_rack: l.opt_string("broker.rack")?,
        log_dirs,
        metadata_log_dir,
        num_partitions: l.int("num.partitions")?,
        default_replication_factor: l.int("default.replication.factor")?,
        auto_create_topics_enable: l.bool("auto.create.topics.enable")?,
        delete_topic_enable: l.bool("delete.topic.enable")?,
        message_max_bytes: l.int("message.max.bytes")?,
        log_segment_bytes: l.int("log.segment.bytes")?,
        log_roll_ms,
        log_roll_jitter_ms,
        log_retention_ms,
        log_retention_bytes: l.long("log.retention.bytes")?,
        log_retention_check_interval_ms: l.long("log.retention.check.interval.ms")?,
        log_index_interval_bytes: l.int("log.index.interval.bytes")?,
        log_index_size_max_bytes: l.int("log.index.size.max.bytes")?,
        log_flush_interval_messages: l.long("log.flush.interval.messages")?,
        log_flush_interval_ms,
        log_flush_scheduler_interval_ms: l.long("log.flush.scheduler.interval.ms")?,
        log_flush_offset_checkpoint_interval_ms: l
            .int("log.flush.offset.checkpoint.interval.ms")?,
        log_segment_delete_delay_ms: l.long("log.segment.delete.delay.ms")?,
        log_preallocate: l.bool("log.preallocate")?,
        log_cleanup_policy: CleanupPolicy::from_list(&l.list("log.cleanup.policy")?),
        log_cleaner_enable: l.bool("log.cleaner.enable")?,
        log_cleaner_backoff_ms: l.long("log.cleaner.backoff.ms")?,
        log_cleaner_delete_retention_ms: l.long("log.cleaner.delete.retention.ms")?,
        log_cleaner_min_compaction_lag_ms: l.long("log.cleaner.min.compaction.lag.ms")?,
        log_cleaner_max_compaction_lag_ms: l.long("log.cleaner.max.compaction.lag.ms")?,
        log_cleaner_min_cleanable_ratio: l.double("log.cleaner.min.cleanable.ratio")?,
        log_cleaner_dedupe_buffer_size: l.long("log.cleaner.dedupe.buffer.size")?,
        log_cleaner_io_max_bytes_per_second: l.double("log.cleaner.io.max.bytes.per.second")?,
        min_insync_replicas: l.int("min.insync.replicas")?,
        unclean_leader_election_enable: l.bool("unclean.leader.election.enable")?,
        compression_type: CompressionType::parse(&compression_type)
            .ok_or_else(|| l.err("compression.type", "unknown codec", "use producer"))?,
        log_message_timestamp_type: TimestampType::parse(&timestamp_type).ok_or_else(|| {
            l.err(
                "log.message.timestamp.type",
                "unknown type",
                "use CreateTime",
            )
        })?,
        log_message_timestamp_before_max_ms: l.long("log.message.timestamp.before.max.ms")?,
        log_message_timestamp_after_max_ms: l.long("log.message.timestamp.after.max.ms")?,
        fetch_max_bytes: l.int("fetch.max.bytes")?,
        max_incremental_fetch_session_cache_slots: l
            .int("max.incremental.fetch.session.cache.slots")?,
        offsets_topic_num_partitions: l.int("offsets.topic.num.partitions")?,
        offsets_topic_replication_factor: l.short("offsets.topic.replication.factor")?,
        offsets_topic_segment_bytes: l.int("offsets.topic.segment.bytes")?,
        offsets_retention_minutes: l.int("offsets.retention.minutes")?,
        offsets_retention_check_interval_ms: l.long("offsets.retention.check.interval.ms")?,
        offsets_commit_timeout_ms: l.int("offsets.commit.timeout.ms")?,
        offset_metadata_max_bytes: l.int("offset.metadata.max.bytes")?,
        transaction_state_log_num_partitions: l.int("transaction.state.log.num.partitions")?,
        transaction_state_log_replication_factor: l
            .short("transaction.state.log.replication.factor")?,
        transaction_state_log_min_isr: l.int("transaction.state.log.min.isr")?,
        transaction_state_log_segment_bytes: l.int("transaction.state.log.segment.bytes")?,
        transaction_max_timeout_ms: l.int("transaction.max.timeout.ms")?,
        transactional_id_expiration_ms: l.int("transactional.id.expiration.ms")?,
        producer_id_expiration_ms: l.int("producer.id.expiration.ms")?,
        group_initial_rebalance_delay_ms: l.int("group.initial.rebalance.delay.ms")?,
        group_min_session_timeout_ms: l.int("group.min.session.timeout.ms")?,
        group_max_session_timeout_ms: l.int("group.max.session.timeout.ms")?,
        group_max_size: l.int("group.max.size")?,
        group_consumer_session_timeout_ms: l.int("group.consumer.session.timeout.ms")?,
        group_consumer_min_session_timeout_ms: l.int("group.consumer.min.session.timeout.ms")?,
        group_consumer_max_session_timeout_ms: l.int("group.consumer.max.session.timeout.ms")?,
        group_consumer_heartbeat_interval_ms: l.int("group.consumer.heartbeat.interval.ms")?,
        group_consumer_min_heartbeat_interval_ms: l
            .int("group.consumer.min.heartbeat.interval.ms")?,
        group_consumer_max_heartbeat_interval_ms: l
            .int("group.consumer.max.heartbeat.interval.ms")?,
        group_consumer_max_size: l.int("group.consumer.max.size")?,
        socket_request_max_bytes: l.int("socket.request.max.bytes")?,
        socket_send_buffer_bytes: l.int("socket.send.buffer.bytes")?,
        socket_receive_buffer_bytes: l.int("socket.receive.buffer.bytes")?,
        socket_listen_backlog_size: l.int("socket.listen.backlog.size")?,
        connections_max_idle_ms: l.long("connections.max.idle.ms")?,
        queued_max_requests: l.int("queued.max.requests")?,
        queued_max_request_bytes: l.long("queued.max.request.bytes")?,
        max_connections: l.int("max.connections")?,
        max_connections_per_ip: l.int("max.connections.per.ip")?,
        request_timeout_ms: l.int("request.timeout.ms")?,
        num_network_threads: l.int("num.network.threads")?,
        num_io_threads: l.int("num.io.threads")?,
        num_recovery_threads_per_data_dir: l.int("num.recovery.threads.per.data.dir")?,
        num_replica_fetchers: l.int("num.replica.fetchers")?,
        background_threads: l.int("background.threads")?,
        replica_lag_time_max_ms,
        replica_fetch_max_bytes: l.int("replica.fetch.max.bytes")?,
        replica_fetch_response_max_bytes: l.int("replica.fetch.response.max.bytes")?,
        replica_fetch_wait_max_ms,
        replica_fetch_min_bytes: l.int("replica.fetch.min.bytes")?,
        replica_fetch_backoff_ms: l.int("replica.fetch.backoff.ms")?,
        replica_socket_timeout_ms,
        replica_high_watermark_checkpoint_interval_ms: l
            .long("replica.high.watermark.checkpoint.interval.ms")?,
        auto_leader_rebalance_enable: l.bool("auto.leader.rebalance.enable")?,
        leader_imbalance_check_interval_seconds: l
            .long("leader.imbalance.check.interval.seconds")?,
        broker_heartbeat_interval_ms: l.int("broker.heartbeat.interval.ms")?,
        broker_session_timeout_ms: l.int("broker.session.timeout.ms")?,
        initial_broker_registration_timeout_ms: l.int("initial.broker.registration.timeout.ms")?,
        metadata_log_max_record_bytes_between_snapshots: l
            .long("metadata.log.max.record.bytes.between.snapshots")?,
        metadata_log_max_snapshot_interval_ms: l.long("metadata.log.max.snapshot.interval.ms")?,
        metadata_max_idle_interval_ms: l.int("metadata.max.idle.interval.ms")?,
        metadata_log_segment_bytes: l.int("metadata.log.segment.bytes")?,
        metadata_log_segment_ms: l.long("metadata.log.segment.ms")?,
        metadata_max_retention_bytes: l.long("metadata.max.retention.bytes")?,
        metadata_max_retention_ms: l.long("metadata.max.retention.ms")?,
        raw: l.raw,
    })
}

fn process_roles(l: &Loader<'_>) -> Result<Vec<ProcessRole>, ConfigError> {
    let names = l.list("process.roles")?;
    if names.is_empty() {
        return Err(l.err(
            "process.roles",
            "is missing; kraftd runs only in KRaft mode",
            "set process.roles=broker,controller (or broker, or controller)",
        ));
    }
    let mut roles = Vec::new();
    for n in &names {
        let role = match n.as_str() {
            "broker" => ProcessRole::Broker,
            "controller" => ProcessRole::Controller,
            other => {
                return Err(l.err(
                    "process.roles",
                    format!("unknown role '{other}'"),
                    "use broker, controller or broker,controller",
                ));
            }
        };
        if roles.contains(&role) {
            return Err(l.err(
                "process.roles",
                format!("role '{n}' is listed twice"),
                "list each role once",
            ));
        }
        roles.push(role);
    }
    roles.sort();
    Ok(roles)
}

fn node_id(l: &Loader<'_>) -> Result<i32, ConfigError> {
    let node_id = l.int("node.id")?;
    let broker_id = l.int("broker.id")?;
    if l.is_set_by_user("node.id") && l.is_set_by_user("broker.id") && node_id != broker_id {
        return Err(l.err(
            "broker.id",
            format!("{broker_id} differs from node.id={node_id}"),
            "remove broker.id or set it to the node.id value",
        ));
    }
    if !l.is_set("node.id") {
        return Err(l.err(
            "node.id",
            "is missing; it is required in KRaft mode",
            "set node.id to this node's id (an integer >= 0), e.g. node.id=1",
        ));
    }
    if node_id < 0 {
        return Err(l.err(
            "node.id",
            format!("{node_id} is negative"),
            "use an id >= 0",
        ));
    }
    Ok(node_id)
}

fn log_dirs(l: &Loader<'_>) -> Result<Vec<PathBuf>, ConfigError> {
    let key = if l.is_set("log.dirs") {
        "log.dirs"
    } else {
        "log.dir"
    };
    let dirs = defs::split_list(&l.string(key)?);
    if dirs.is_empty() || dirs.iter().any(String::is_empty) {
        return Err(l.err(
            key,
            "names no log directory",
            "set log.dirs to one or more comma-separated directories",
        ));
    }
    let mut seen = BTreeSet::new();
    for d in &dirs {
        if !seen.insert(d.as_str()) {
            return Err(l.err(
                key,
                format!("'{d}' is listed twice"),
                "list each directory once",
            ));
        }
    }
    Ok(dirs.into_iter().map(PathBuf::from).collect())
}

struct Network {
    listeners: Vec<Listener>,
    advertised_broker: Vec<Listener>,
    advertised_controller: Vec<Listener>,
    protocol_map: BTreeMap<String, SecurityProtocol>,
    controller_listener_names: Vec<String>,
    inter_broker_listener_name: String,
    voters: Vec<Voter>,
    bootstrap_servers: Vec<(String, u16)>,
}

fn is_ssl_or_sasl_name(name: &str) -> bool {
    matches!(name, "SSL" | "SASL_SSL" | "SASL_PLAINTEXT")
}

fn network(l: &Loader<'_>, roles: &[ProcessRole], node_id: i32) -> Result<Network, ConfigError> {
    let is_broker = roles.contains(&ProcessRole::Broker);
    let is_controller = roles.contains(&ProcessRole::Controller);
    let controller_listener_names: Vec<String> = l
        .opt_string("controller.listener.names")?
        .map(|s| defs::split_list(&s))
        .unwrap_or_default()
        .into_iter()
        .filter(|s| !s.is_empty())
        .map(|s| s.to_ascii_uppercase())
        .collect();

    // listener.security.protocol.map, with Kafka's KRaft rule for an unset map: controller
    // listener names get PLAINTEXT unless some listener is named after SSL or SASL.
    let map_key = "listener.security.protocol.map";
    let mut protocol_map = BTreeMap::new();
    for entry in defs::split_list(&l.string(map_key)?) {
        let Some((name, proto)) = entry.split_once(':') else {
            return Err(l.err(
                map_key,
                format!("entry '{entry}' is not NAME:PROTOCOL"),
                "write entries like CONTROLLER:PLAINTEXT",
            ));
        };
        let name = name.trim().to_ascii_uppercase();
        let Some(protocol) = SecurityProtocol::parse(proto.trim()) else {
            return Err(l.err(
                map_key,
                format!("'{}' is not a security protocol", proto.trim()),
                "use PLAINTEXT (the only protocol kraftd serves)",
            ));
        };
        if name.is_empty() {
            return Err(l.err(
                map_key,
                format!("entry '{entry}' has no listener name"),
                "write NAME:PLAINTEXT",
            ));
        }
        protocol_map.insert(name, protocol);
    }
    let listeners_text = l.string("listeners")?;
    if !l.is_set(map_key) {
        let listener_names_ssl = defs::split_list(&listeners_text).iter().any(|e| {
            e.split_once("://")
                .is_some_and(|(n, _)| is_ssl_or_sasl_name(&n.to_ascii_uppercase()))
        });
        if !listener_names_ssl
            && !controller_listener_names
                .iter()
                .any(|n| is_ssl_or_sasl_name(n))
        {
            for n in &controller_listener_names {
                protocol_map
                    .entry(n.clone())
                    .or_insert(SecurityProtocol::Plaintext);
            }
        }
    }

    let listeners = parse_listeners(l, "listeners", &listeners_text, &protocol_map)?;
    check_duplicate_ports(l, &listeners)?;
    let advertised_all = match l.opt_string("advertised.listeners")? {
        Some(text) => parse_listeners(l, "advertised.listeners", &text, &protocol_map)?,
        None => listeners.clone(),
    };
    let advertised_key = if l.is_set("advertised.listeners") {
        "advertised.listeners"
    } else {
        "listeners"
    };
    let is_controller_listener = |x: &Listener| controller_listener_names.contains(&x.name);
    let advertised_broker: Vec<Listener> = advertised_all
        .iter()
        .filter(|x| !is_controller_listener(x))
        .cloned()
        .collect();
    let advertised_controller: Vec<Listener> = controller_listener_names
        .iter()
        .filter_map(|n| {
            advertised_all
                .iter()
                .find(|x| &x.name == n)
                .or_else(|| listeners.iter().find(|x| &x.name == n))
                .cloned()
        })
        .collect();

    let voters = parse_voters(l)?;
    let bootstrap_servers = parse_bootstrap_servers(l)?;
    if voters.is_empty() && bootstrap_servers.is_empty() {
        return Err(l.err(
            "controller.quorum.voters",
            "neither controller.quorum.voters nor controller.quorum.bootstrap.servers is set",
            "set controller.quorum.voters=1@localhost:9093 (static quorum) or controller.quorum.bootstrap.servers=localhost:9093",
        ));
    }
    let voter_ids: Vec<i32> = voters.iter().map(|v| v.id).collect();

    if is_controller {
        if !voters.is_empty() && !voter_ids.contains(&node_id) {
            return Err(l.err(
                "controller.quorum.voters",
                format!("node.id {node_id} has the controller role but is not among the voters {voter_ids:?}"),
                format!("add {node_id}@<host>:<port> to controller.quorum.voters, or correct node.id"),
            ));
        }
        if controller_listener_names.is_empty() {
            return Err(l.err(
                "controller.listener.names",
                "must be set when process.roles contains controller",
                "set controller.listener.names=CONTROLLER and add CONTROLLER://:9093 to listeners",
            ));
        }
        if let Some(missing) = controller_listener_names
            .iter()
            .find(|n| !listeners.iter().any(|x| &&x.name == n))
        {
            return Err(l.err(
                "controller.listener.names",
                format!("'{missing}' does not appear in listeners"),
                format!("add {missing}://:9093 (or another port) to listeners"),
            ));
        }
        if !is_broker && let Some(other) = listeners.iter().find(|x| !is_controller_listener(x)) {
            return Err(l.err(
                "listeners",
                format!("'{}' is not a controller listener but process.roles=controller", other.name),
                "list only the controller.listener.names listeners in listeners, or add broker to process.roles",
            ));
        }
    } else {
        // Broker only.
        if voter_ids.contains(&node_id) {
            return Err(l.err(
                "controller.quorum.voters",
                format!("node.id {node_id} is broker-only but is listed as a voter"),
                format!("remove {node_id}@... from controller.quorum.voters, or add controller to process.roles"),
            ));
        }
        if controller_listener_names.is_empty() {
            return Err(l.err(
                "controller.listener.names",
                "must be set when process.roles=broker: it names the listener used to reach the controllers",
                "set controller.listener.names=CONTROLLER",
            ));
        }
        if let Some(c) = listeners.iter().find(|x| is_controller_listener(x)) {
            return Err(l.err(
                "listeners",
                format!(
                    "'{}' is a controller listener but this node has no controller role",
                    c.name
                ),
                "remove it from listeners, or add controller to process.roles",
            ));
        }
        for n in &controller_listener_names {
            if !protocol_map.contains_key(n) {
                return Err(l.err(
                    map_key,
                    format!("controller listener '{n}' has no security protocol"),
                    format!("add {n}:PLAINTEXT to listener.security.protocol.map"),
                ));
            }
        }
        if let Some(first) = controller_listener_names.first()
            && let Some(p) = protocol_map
                .get(first)
                .filter(|p| **p != SecurityProtocol::Plaintext)
        {
            return Err(l.err(
                map_key,
                format!(
                    "controller listener '{first}' uses {}; kraftd speaks only PLAINTEXT",
                    p.name()
                ),
                format!("map {first}:PLAINTEXT"),
            ));
        }
    }

    // Inter-broker listener, as KafkaConfig.getInterBrokerListenerNameAndSecurityProtocol.
    let ibl_key = "inter.broker.listener.name";
    if l.is_set(ibl_key) && l.is_set("security.inter.broker.protocol") {
        return Err(l.err(
            ibl_key,
            "only one of inter.broker.listener.name and security.inter.broker.protocol may be set",
            "remove security.inter.broker.protocol",
        ));
    }
    let inter_broker_listener_name = match l.opt_string(ibl_key)? {
        Some(n) if !n.is_empty() => n.to_ascii_uppercase(),
        _ => l
            .string("security.inter.broker.protocol")?
            .to_ascii_uppercase(),
    };
    if l.is_set(ibl_key) && !protocol_map.contains_key(&inter_broker_listener_name) {
        return Err(l.err(
            ibl_key,
            format!("'{inter_broker_listener_name}' has no security protocol in listener.security.protocol.map"),
            format!("add {inter_broker_listener_name}:PLAINTEXT to listener.security.protocol.map"),
        ));
    }

    if is_broker {
        if advertised_broker.is_empty() {
            return Err(l.err(
                advertised_key,
                "no broker listener is left once controller listeners are removed",
                "add a broker listener such as PLAINTEXT://:9092",
            ));
        }
        let names: Vec<&str> = advertised_broker.iter().map(|x| x.name.as_str()).collect();
        if !names.contains(&inter_broker_listener_name.as_str()) {
            return Err(l.err(
                ibl_key,
                format!("'{inter_broker_listener_name}' is not among the advertised broker listeners {names:?}"),
                format!("set inter.broker.listener.name to one of {}", names.join(", ")),
            ));
        }
        if let Some(extra) = advertised_broker
            .iter()
            .find(|a| !listeners.iter().any(|x| x.name == a.name))
        {
            return Err(l.err(
                "advertised.listeners",
                format!("'{}' is advertised but not in listeners", extra.name),
                format!(
                    "add a {} listener to listeners or remove it from advertised.listeners",
                    extra.name
                ),
            ));
        }
    }
    if advertised_broker
        .iter()
        .chain(&advertised_controller)
        .any(|x| x.host.as_deref() == Some("0.0.0.0"))
    {
        return Err(l.err(
            advertised_key,
            "advertises the non-routable address 0.0.0.0",
            "advertise a host name or IP address clients can reach",
        ));
    }
    if let Some(x) = listeners
        .iter()
        .find(|x| x.security_protocol != SecurityProtocol::Plaintext)
    {
        return Err(l.err(
            "listeners",
            format!(
                "listener '{}' uses {}; kraftd serves only PLAINTEXT",
                x.name,
                x.security_protocol.name()
            ),
            format!(
                "map {}:PLAINTEXT in listener.security.protocol.map, or remove the listener",
                x.name
            ),
        ));
    }

    Ok(Network {
        listeners,
        advertised_broker,
        advertised_controller,
        protocol_map,
        controller_listener_names,
        inter_broker_listener_name,
        voters,
        bootstrap_servers,
    })
}

fn valid_host_chars(host: &str) -> bool {
    host.chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '%' | '.' | '_' | ':'))
}

/// Kafka's `SocketServerConfigs.listenerListToEndPoints` for one list.
fn parse_listeners(
    l: &Loader<'_>,
    key: &str,
    text: &str,
    protocol_map: &BTreeMap<String, SecurityProtocol>,
) -> Result<Vec<Listener>, ConfigError> {
    let mut out: Vec<Listener> = Vec::new();
    for entry in defs::split_list(text) {
        let bad = || {
            l.err(
                key,
                format!("cannot parse '{entry}' as NAME://host:port"),
                "write entries like PLAINTEXT://localhost:9092, CONTROLLER://:9093 or PLAINTEXT://[::1]:9092",
            )
        };
        let (name, address) = entry.split_once("://").ok_or_else(bad)?;
        let (host, port) = address.rsplit_once(':').ok_or_else(bad)?;
        let host = host.strip_prefix('[').unwrap_or(host);
        let host = host.strip_suffix(']').unwrap_or(host);
        if name.trim().is_empty() || !valid_host_chars(host) {
            return Err(bad());
        }
        let port: u16 = port.parse().map_err(|_| {
            l.err(
                key,
                format!("port '{port}' in '{entry}' is not in 0..65535"),
                "use a port between 0 and 65535",
            )
        })?;
        let name = name.to_ascii_uppercase();
        let Some(&security_protocol) = protocol_map.get(&name) else {
            return Err(l.err(
                key,
                format!("listener name '{name}' has no security protocol in listener.security.protocol.map"),
                format!("add {name}:PLAINTEXT to listener.security.protocol.map"),
            ));
        };
        if out.iter().any(|x| x.name == name) {
            return Err(l.err(
                key,
                format!("listener name '{name}' appears twice"),
                "give each listener a different name",
            ));
        }
        out.push(Listener {
            name,
            host: (!host.is_empty()).then(|| host.to_owned()),
            port,
            security_protocol,
        });
    }
    Ok(out)
}

/// Two listeners may share a port only if one binds an IPv4 literal and the other an IPv6
/// literal; port 0 (ephemeral) is exempt.
fn check_duplicate_ports(l: &Loader<'_>, listeners: &[Listener]) -> Result<(), ConfigError> {
    let mut by_port: BTreeMap<u16, Vec<&Listener>> = BTreeMap::new();
    for x in listeners.iter().filter(|x| x.port != 0) {
        by_port.entry(x.port).or_default().push(x);
    }
    for (port, group) in by_port {
        if group.len() < 2 {
            continue;
        }
        let is_v4 = |x: &Listener| {
            x.host
                .as_deref()
                .is_some_and(|h| h.parse::<Ipv4Addr>().is_ok())
        };
        let is_v6 = |x: &Listener| {
            x.host
                .as_deref()
                .is_some_and(|h| h.parse::<Ipv6Addr>().is_ok())
        };
        let ok = match group.as_slice() {
            [a, b] => (is_v4(a) && is_v6(b)) || (is_v6(a) && is_v4(b)),
            _ => false,
        };
        if !ok {
            let names: Vec<&str> = group.iter().map(|x| x.name.as_str()).collect();
            return Err(l.err(
                "listeners",
                format!("port {port} is used by listeners {}", names.join(" and ")),
                "give each listener a different port",
            ));
        }
    }
    Ok(())
}

/// Kafka's `Utils.getHost`/`getPort` for `host:port` (optionally bracketed IPv6).
fn parse_host_port(s: &str) -> Option<(String, u16)> {
    let (host, port) = s.rsplit_once(':')?;
    let host = host.strip_prefix('[').unwrap_or(host);
    let host = host.strip_suffix(']').unwrap_or(host);
    if host.is_empty() || !valid_host_chars(host) || !port.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    Some((host.to_owned(), port.parse().ok()?))
}

fn parse_voters(l: &Loader<'_>) -> Result<Vec<Voter>, ConfigError> {
    let key = "controller.quorum.voters";
    let mut voters: Vec<Voter> = Vec::new();
    for entry in l.list(key)? {
        let bad = |why: &str| {
            l.err(
                key,
                format!("entry '{entry}' {why}; each entry must be id@host:port"),
                "write entries like 1@localhost:9093,2@host2:9093",
            )
        };
        let parts: Vec<&str> = entry.split('@').collect();
        let [id, address] = parts.as_slice() else {
            return Err(bad("does not have exactly one '@'"));
        };
        let id: i32 = id.trim().parse().map_err(|_| bad("has a non-integer id"))?;
        let (host, port) = parse_host_port(address).ok_or_else(|| bad("has no valid host:port"))?;
        if host == "0.0.0.0" {
            return Err(bad("uses the non-routable host 0.0.0.0"));
        }
        if voters.iter().any(|v| v.id == id) {
            return Err(bad("repeats a voter id"));
        }
        voters.push(Voter { id, host, port });
    }
    Ok(voters)
}

fn parse_bootstrap_servers(l: &Loader<'_>) -> Result<Vec<(String, u16)>, ConfigError> {
    let key = "controller.quorum.bootstrap.servers";
    l.list(key)?
        .into_iter()
        .map(|entry| {
            parse_host_port(&entry).ok_or_else(|| {
                l.err(
                    key,
                    format!("entry '{entry}' is not host:port"),
                    "write entries like localhost:9093,host2:9093",
                )
            })
        })
        .collect()
}

/// The samples shipped in `config/`, embedded so tests and `kraftd` can print them.
pub const SAMPLE_SERVER: &str = include_str!("../../config/server.properties");
pub const SAMPLE_BROKER: &str = include_str!("../../config/broker.properties");
pub const SAMPLE_CONTROLLER: &str = include_str!("../../config/controller.properties");

#[cfg(test)]
#[path = "server_tests.rs"]
mod tests;
