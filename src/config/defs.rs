//! The table of broker (server.properties) keys kraftd knows: Kafka's name, type, default,
//! validator, whether Kafka can change it dynamically, and what kraftd does with it.
//!
//! Owns: defaults and ranges, checked against Apache Kafka 4.x (`ServerConfigs`, `KRaftConfigs`,
//! `ServerLogConfigs`, `LogConfig.SERVER_CONFIG_DEF`, `SocketServerConfigs`, `QuorumConfig`,
//! `GroupCoordinatorConfig`, `TransactionLogConfig`, `ReplicationConfigs`, `CleanerConfig`,
//! `DynamicBrokerConfig`). Typed parsing of one value lives here too, so broker and topic configs
//! parse numbers, booleans and lists exactly alike (Java's `ConfigDef.parseType`).

/// Kafka's `ConfigDef.Type`, numbered as DescribeConfigs v3+ `ConfigType` on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(i8)]
pub enum ConfigType {
    Unknown = 0,
    Boolean = 1,
    String = 2,
    Int = 3,
    Short = 4,
    Long = 5,
    Double = 6,
    List = 7,
    Class = 8,
    Password = 9,
}

impl ConfigType {
    pub fn code(self) -> i8 {
        self as i8
    }

    /// The word used in error messages ("expected a 32-bit integer").
    pub fn expected(self) -> &'static str {
        match self {
            ConfigType::Boolean => "a boolean (true or false)",
            ConfigType::Int => "a 32-bit integer",
            ConfigType::Short => "a 16-bit integer",
            ConfigType::Long => "a 64-bit integer",
            ConfigType::Double => "a number",
            ConfigType::List => "a comma-separated list",
            _ => "a string",
        }
    }
}

/// Kafka's value validators that apply to the keys we know.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Validator {
    None,
    AtLeast(i64),
    Between(i64, i64),
    DoubleBetween(f64, f64),
    /// One of these strings (case-sensitive, as `ValidString.in`).
    OneOf(&'static [&'static str]),
    /// Every list element one of these (as `ValidList.in`).
    ListOf(&'static [&'static str]),
    /// `CompressionType.GZIP.levelValidator()`: 1..=9 or -1.
    GzipLevel,
}

/// What kraftd does with a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Support {
    /// kraftd honours it.
    Used,
    /// Accepted with a warning: kraftd sizes its runtime itself.
    Tuning,
    /// Accepted without a warning (it appears in Kafka's sample files) but has no effect.
    Accepted,
}

/// Grouping for the sample files and CONFIG.md.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Section {
    Basics,
    Quorum,
    Sockets,
    LogBasics,
    Retention,
    Flush,
    Cleaner,
    Topics,
    InternalTopics,
    Groups,
    Replication,
    Metadata,
    Threads,
}

impl Section {
    pub const ALL: [Section; 13] = [
        Section::Basics,
        Section::Quorum,
        Section::Sockets,
        Section::LogBasics,
        Section::Retention,
        Section::Flush,
        Section::Cleaner,
        Section::Topics,
        Section::InternalTopics,
        Section::Groups,
        Section::Replication,
        Section::Metadata,
        Section::Threads,
    ];

    pub fn title(self) -> &'static str {
        match self {
            Section::Basics => "Server Basics",
            Section::Quorum => "KRaft Controller Quorum",
            Section::Sockets => "Socket Server Settings",
            Section::LogBasics => "Log Basics",
            Section::Retention => "Log Retention Policy",
            Section::Flush => "Log Flush Policy",
            Section::Cleaner => "Log Cleaner (compaction)",
            Section::Topics => "Topic Defaults",
            Section::InternalTopics => "Internal Topic Settings",
            Section::Groups => "Group Coordinator Settings",
            Section::Replication => "Replication",
            Section::Metadata => "Metadata Log and Broker Lifecycle",
            Section::Threads => "Thread Pools (accepted; kraftd sizes its runtime itself)",
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub struct BrokerKey {
    pub name: &'static str,
    pub ty: ConfigType,
    /// Kafka's default as Kafka prints it; `None` where Kafka's default is null.
    pub default: Option<&'static str>,
    pub validator: Validator,
    pub support: Support,
    /// In Kafka's `DynamicBrokerConfig.AllDynamicConfigs`: DescribeConfigs reports
    /// `read_only = !dynamic`.
    pub dynamic: bool,
    pub section: Section,
    pub doc: &'static str,
}

pub const LONG_MAX: &str = "9223372036854775807";
pub const INT_MAX: &str = "2147483647";
pub const COMPRESSION_TYPES: &[&str] =
    &["uncompressed", "zstd", "lz4", "snappy", "gzip", "producer"];
pub const CLEANUP_POLICIES: &[&str] = &["compact", "delete"];
pub const TIMESTAMP_TYPES: &[&str] = &["CreateTime", "LogAppendTime"];
/// `SecurityProtocol.values()` order, which is the order of Kafka's default map.
pub const DEFAULT_LISTENER_SECURITY_PROTOCOL_MAP: &str =
    "PLAINTEXT:PLAINTEXT,SSL:SSL,SASL_PLAINTEXT:SASL_PLAINTEXT,SASL_SSL:SASL_SSL";
/// Kafka 4.x raised the floor of `log.segment.bytes` / `segment.bytes` to 1 MiB (KIP-1030).
pub const MIN_SEGMENT_BYTES: i64 = 1024 * 1024;

const fn key(
    name: &'static str,
    ty: ConfigType,
    default: Option<&'static str>,
    validator: Validator,
    section: Section,
    doc: &'static str,
) -> BrokerKey {
    BrokerKey {
        name,
        ty,
        default,
        validator,
        support: Support::Used,
        dynamic: false,
        section,
        doc,
    }
}

const fn dynamic(mut k: BrokerKey) -> BrokerKey {
    k.dynamic = true;
    k
}

const fn tuning(mut k: BrokerKey) -> BrokerKey {
    k.support = Support::Tuning;
    k
}

const fn accepted(mut k: BrokerKey) -> BrokerKey {
    k.support = Support::Accepted;
    k
}

use ConfigType as T;
use Section as S;
use Validator as V;

/// Every broker key kraftd knows, in the order the sample files list them.
#[rustfmt::skip]
pub static BROKER_KEYS: &[BrokerKey] = &[
    // Server basics
    key("process.roles", T::List, Some(""), V::ListOf(&["broker", "controller"]), S::Basics,
        "The roles this node plays: broker, controller, or broker,controller (combined). Required."),
    key("node.id", T::Int, Some("-1"), V::None, S::Basics,
        "The node id for all roles of this process; must be >= 0. Required."),
    key("broker.id", T::Int, Some("-1"), V::None, S::Basics,
        "Legacy synonym of node.id; if both are set they must be equal."),
    key("broker.rack", T::String, None, V::None, S::Basics,
        "Rack of this broker, used for rack-aware replica placement."),
    // Quorum
    key("controller.quorum.voters", T::List, Some(""), V::None, S::Quorum,
        "Static quorum: comma-separated id@host:port of every controller."),
    key("controller.quorum.bootstrap.servers", T::List, Some(""), V::None, S::Quorum,
        "Dynamic quorum (KIP-853): comma-separated host:port of controllers to bootstrap from."),
    key("controller.listener.names", T::String, None, V::None, S::Quorum,
        "Listener names used by controllers; brokers use the first to reach the quorum."),
    key("controller.quorum.election.timeout.ms", T::Int, Some("1000"), V::None, S::Quorum,
        "Max time without a leader before a voter starts an election."),
    key("controller.quorum.fetch.timeout.ms", T::Int, Some("2000"), V::None, S::Quorum,
        "Max time without a successful fetch from the leader before a voter becomes a candidate."),
    key("controller.quorum.election.backoff.max.ms", T::Int, Some("1000"), V::None, S::Quorum,
        "Max backoff before a new election (binary exponential backoff)."),
    key("controller.quorum.append.linger.ms", T::Int, Some("25"), V::None, S::Quorum,
        "How long the leader waits for writes to accumulate before flushing the metadata log."),
    key("controller.quorum.request.timeout.ms", T::Int, Some("2000"), V::None, S::Quorum,
        "Timeout of a quorum request before it is retried."),
    key("controller.quorum.retry.backoff.ms", T::Int, Some("20"), V::None, S::Quorum,
        "Backoff before retrying a failed quorum request."),
    key("controller.quorum.auto.join.enable", T::Boolean, Some("false"), V::None, S::Quorum,
        "A controller of a dynamic quorum that is not a voter asks the leader to add it (AddRaftVoter) once caught up."),
    // Sockets
    dynamic(key("listeners", T::String, Some("PLAINTEXT://:9092"), V::None, S::Sockets,
        "Comma-separated NAME://host:port to bind; empty host = all interfaces, [::1] for IPv6.")),
    dynamic(key("advertised.listeners", T::String, None, V::None, S::Sockets,
        "Addresses given to clients; defaults to listeners. Controller listeners are never advertised to clients.")),
    dynamic(key("listener.security.protocol.map", T::String, Some(DEFAULT_LISTENER_SECURITY_PROTOCOL_MAP), V::None, S::Sockets,
        "NAME:PROTOCOL pairs. kraftd serves only PLAINTEXT.")),
    key("inter.broker.listener.name", T::String, None, V::None, S::Sockets,
        "Listener brokers use to talk to each other; defaults to the one named after security.inter.broker.protocol."),
    key("security.inter.broker.protocol", T::String, Some("PLAINTEXT"), V::OneOf(&["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]), S::Sockets,
        "Names the inter-broker listener when inter.broker.listener.name is unset."),
    key("socket.send.buffer.bytes", T::Int, Some("102400"), V::None, S::Sockets,
        "SO_SNDBUF of accepted sockets; -1 keeps the OS default."),
    key("socket.receive.buffer.bytes", T::Int, Some("102400"), V::None, S::Sockets,
        "SO_RCVBUF of accepted sockets; -1 keeps the OS default."),
    key("socket.request.max.bytes", T::Int, Some("104857600"), V::AtLeast(1), S::Sockets,
        "Largest request accepted; a bigger size prefix closes the connection."),
    key("socket.listen.backlog.size", T::Int, Some("50"), V::AtLeast(1), S::Sockets,
        "Listen backlog of each listener socket."),
    key("connections.max.idle.ms", T::Long, Some("600000"), V::None, S::Sockets,
        "Idle connections are closed after this long."),
    key("queued.max.requests", T::Int, Some("500"), V::AtLeast(1), S::Sockets,
        "Requests queued per node before reading from sockets pauses."),
    key("queued.max.request.bytes", T::Long, Some("-1"), V::None, S::Sockets,
        "Bytes of queued requests before reading pauses; -1 = no limit."),
    dynamic(key("max.connections", T::Int, Some(INT_MAX), V::AtLeast(0), S::Sockets,
        "Max connections to this node.")),
    dynamic(key("max.connections.per.ip", T::Int, Some(INT_MAX), V::AtLeast(0), S::Sockets,
        "Max connections from one IP address.")),
    key("request.timeout.ms", T::Int, Some("30000"), V::None, S::Sockets,
        "Timeout of requests this node sends."),
    // Log basics
    key("log.dirs", T::String, None, V::None, S::LogBasics,
        "Comma-separated data directories; wins over log.dir."),
    key("log.dir", T::String, Some("/tmp/kafka-logs"), V::None, S::LogBasics,
        "Data directory used when log.dirs is unset."),
    key("metadata.log.dir", T::String, None, V::None, S::LogBasics,
        "Directory of the __cluster_metadata log; defaults to the first log dir."),
    dynamic(key("log.segment.bytes", T::Int, Some("1073741824"), V::AtLeast(MIN_SEGMENT_BYTES), S::LogBasics,
        "Max size of a segment file before a new one is rolled.")),
    dynamic(key("log.roll.ms", T::Long, None, V::None, S::LogBasics,
        "Max age of the active segment before a roll; wins over log.roll.hours.")),
    key("log.roll.hours", T::Int, Some("168"), V::AtLeast(1), S::LogBasics,
        "Max age of the active segment in hours, when log.roll.ms is unset."),
    dynamic(key("log.roll.jitter.ms", T::Long, None, V::None, S::LogBasics,
        "Max random jitter subtracted from the roll time; wins over log.roll.jitter.hours.")),
    key("log.roll.jitter.hours", T::Int, Some("0"), V::AtLeast(0), S::LogBasics,
        "Roll jitter in hours, when log.roll.jitter.ms is unset."),
    dynamic(key("log.index.interval.bytes", T::Int, Some("4096"), V::AtLeast(0), S::LogBasics,
        "Bytes appended between two offset-index entries.")),
    dynamic(key("log.index.size.max.bytes", T::Int, Some("10485760"), V::AtLeast(4), S::LogBasics,
        "Max size of an offset or time index file.")),
    dynamic(key("log.preallocate", T::Boolean, Some("false"), V::None, S::LogBasics,
        "Preallocate segment files at their full size.")),
    dynamic(key("log.segment.delete.delay.ms", T::Long, Some("60000"), V::AtLeast(0), S::LogBasics,
        "Delay before a deleted segment's files are removed from disk.")),
    key("log.flush.offset.checkpoint.interval.ms", T::Int, Some("60000"), V::AtLeast(0), S::LogBasics,
        "How often the recovery-point checkpoint is written."),
    key("log.flush.start.offset.checkpoint.interval.ms", T::Int, Some("60000"), V::AtLeast(0), S::LogBasics,
        "How often the log-start-offset checkpoint is written."),
    // Retention
    dynamic(key("log.retention.ms", T::Long, None, V::None, S::Retention,
        "Delete segments older than this; -1 = no time limit. Wins over minutes and hours.")),
    key("log.retention.minutes", T::Int, None, V::None, S::Retention,
        "Retention in minutes, when log.retention.ms is unset."),
    key("log.retention.hours", T::Int, Some("168"), V::None, S::Retention,
        "Retention in hours, when log.retention.ms and log.retention.minutes are unset."),
    dynamic(key("log.retention.bytes", T::Long, Some("-1"), V::None, S::Retention,
        "Max size of a partition before old segments are deleted; -1 = no size limit.")),
    key("log.retention.check.interval.ms", T::Long, Some("300000"), V::AtLeast(1), S::Retention,
        "How often retention is enforced."),
    dynamic(key("log.cleanup.policy", T::List, Some("delete"), V::ListOf(CLEANUP_POLICIES), S::Retention,
        "Default cleanup policy: delete, compact or both.")),
    dynamic(accepted(key("log.local.retention.ms", T::Long, Some("-2"), V::AtLeast(-2), S::Retention,
        "Tiered storage local retention (not supported by kraftd); -2 = use log.retention.ms."))),
    dynamic(accepted(key("log.local.retention.bytes", T::Long, Some("-2"), V::AtLeast(-2), S::Retention,
        "Tiered storage local retention (not supported by kraftd); -2 = use log.retention.bytes."))),
    // Flush
    dynamic(key("log.flush.interval.messages", T::Long, Some(LONG_MAX), V::AtLeast(1), S::Flush,
        "Messages appended to a partition before an fsync.")),
    dynamic(key("log.flush.interval.ms", T::Long, None, V::None, S::Flush,
        "Max time a message stays unflushed; defaults to log.flush.scheduler.interval.ms.")),
    key("log.flush.scheduler.interval.ms", T::Long, Some(LONG_MAX), V::None, S::Flush,
        "How often the flusher checks whether a log needs an fsync."),
    // Cleaner
    key("log.cleaner.enable", T::Boolean, Some("true"), V::None, S::Cleaner,
        "Run the log cleaner for compacted topics."),
    dynamic(tuning(key("log.cleaner.threads", T::Int, Some("1"), V::AtLeast(0), S::Cleaner,
        "Threads compacting logs."))),
    dynamic(key("log.cleaner.backoff.ms", T::Long, Some("15000"), V::AtLeast(0), S::Cleaner,
        "Sleep when there is no log to clean.")),
    dynamic(key("log.cleaner.dedupe.buffer.size", T::Long, Some("134217728"), V::None, S::Cleaner,
        "Memory for the cleaner's key map; kraftd sizes each round's map to the dirty bytes, up to this.")),
    dynamic(key("log.cleaner.io.max.bytes.per.second", T::Double, Some("1.7976931348623157E308"), V::None, S::Cleaner,
        "The cleaner's read and write rate limit.")),
    dynamic(key("log.cleaner.delete.retention.ms", T::Long, Some("86400000"), V::AtLeast(0), S::Cleaner,
        "How long tombstones are kept in compacted topics.")),
    dynamic(key("log.cleaner.min.compaction.lag.ms", T::Long, Some("0"), V::AtLeast(0), S::Cleaner,
        "Min age of a message before it can be compacted.")),
    dynamic(key("log.cleaner.max.compaction.lag.ms", T::Long, Some(LONG_MAX), V::AtLeast(1), S::Cleaner,
        "Max age of a message before it must be compacted.")),
    dynamic(key("log.cleaner.min.cleanable.ratio", T::Double, Some("0.5"), V::DoubleBetween(0.0, 1.0), S::Cleaner,
        "Min dirty/total ratio of a log before it is cleaned.")),
    // Topic defaults
    key("num.partitions", T::Int, Some("1"), V::AtLeast(1), S::Topics,
        "Partitions of auto-created topics and of CreateTopics with -1 partitions."),
    key("default.replication.factor", T::Int, Some("1"), V::None, S::Topics,
        "Replication factor of auto-created topics and of CreateTopics with -1."),
    key("auto.create.topics.enable", T::Boolean, Some("true"), V::None, S::Topics,
        "Create a topic when a client asks for metadata of an unknown one."),
    key("delete.topic.enable", T::Boolean, Some("true"), V::None, S::Topics,
        "Allow DeleteTopics."),
    dynamic(key("message.max.bytes", T::Int, Some("1048588"), V::AtLeast(0), S::Topics,
        "Largest record batch accepted (topic override: max.message.bytes).")),
    dynamic(key("min.insync.replicas", T::Int, Some("1"), V::AtLeast(1), S::Topics,
        "Min in-sync replicas for acks=all produce requests.")),
    dynamic(key("unclean.leader.election.enable", T::Boolean, Some("false"), V::None, S::Topics,
        "Allow an out-of-sync replica to become leader (may lose data).")),
    dynamic(key("compression.type", T::String, Some("producer"), V::OneOf(COMPRESSION_TYPES), S::Topics,
        "Compression of stored batches; producer keeps the producer's codec.")),
    dynamic(key("compression.gzip.level", T::Int, Some("-1"), V::GzipLevel, S::Topics,
        "gzip level when compression.type=gzip.")),
    dynamic(key("compression.lz4.level", T::Int, Some("9"), V::Between(1, 17), S::Topics,
        "lz4 level when compression.type=lz4.")),
    dynamic(key("compression.zstd.level", T::Int, Some("3"), V::Between(-131072, 22), S::Topics,
        "zstd level when compression.type=zstd.")),
    dynamic(key("log.message.timestamp.type", T::String, Some("CreateTime"), V::OneOf(TIMESTAMP_TYPES), S::Topics,
        "CreateTime keeps the producer's timestamp; LogAppendTime stamps the broker's clock.")),
    dynamic(key("log.message.timestamp.before.max.ms", T::Long, Some(LONG_MAX), V::AtLeast(0), S::Topics,
        "Max amount a CreateTime timestamp may be in the past.")),
    dynamic(key("log.message.timestamp.after.max.ms", T::Long, Some("3600000"), V::AtLeast(0), S::Topics,
        "Max amount a CreateTime timestamp may be in the future.")),
    key("fetch.max.bytes", T::Int, Some("57671680"), V::AtLeast(1024), S::Topics,
        "Max bytes returned by one fetch request."),
    key("max.incremental.fetch.session.cache.slots", T::Int, Some("1000"), V::AtLeast(0), S::Topics,
        "Incremental fetch sessions (KIP-227) kept per broker."),
    // Internal topics
    key("offsets.topic.num.partitions", T::Int, Some("50"), V::AtLeast(1), S::InternalTopics,
        "Partitions of __consumer_offsets (fixed once created)."),
    key("offsets.topic.replication.factor", T::Short, Some("3"), V::AtLeast(1), S::InternalTopics,
        "Replication factor of __consumer_offsets, capped at the live brokers when it is created."),
    key("offsets.topic.segment.bytes", T::Int, Some("104857600"), V::AtLeast(1), S::InternalTopics,
        "Segment size of __consumer_offsets."),
    key("offsets.retention.minutes", T::Int, Some("10080"), V::AtLeast(1), S::InternalTopics,
        "Committed offsets of an empty group are dropped after this long."),
    key("offsets.retention.check.interval.ms", T::Long, Some("600000"), V::AtLeast(1), S::InternalTopics,
        "How often stale offsets are looked for."),
    key("offsets.commit.timeout.ms", T::Int, Some("5000"), V::AtLeast(1), S::InternalTopics,
        "Max wait for an offset commit to be replicated."),
    key("offset.metadata.max.bytes", T::Int, Some("4096"), V::None, S::InternalTopics,
        "Max size of the metadata string of a committed offset."),
    key("transaction.state.log.num.partitions", T::Int, Some("50"), V::AtLeast(1), S::InternalTopics,
        "Partitions of __transaction_state."),
    key("transaction.state.log.replication.factor", T::Short, Some("3"), V::AtLeast(1), S::InternalTopics,
        "Replication factor of __transaction_state."),
    key("transaction.state.log.min.isr", T::Int, Some("2"), V::AtLeast(1), S::InternalTopics,
        "min.insync.replicas of __transaction_state."),
    key("transaction.state.log.segment.bytes", T::Int, Some("104857600"), V::AtLeast(1), S::InternalTopics,
        "Segment size of __transaction_state."),
    key("transaction.max.timeout.ms", T::Int, Some("900000"), V::AtLeast(1), S::InternalTopics,
        "Largest transaction timeout a producer may ask for."),
    key("transactional.id.expiration.ms", T::Int, Some("604800000"), V::AtLeast(1), S::InternalTopics,
        "A transactional id without activity expires after this long."),
    dynamic(key("producer.id.expiration.ms", T::Int, Some("86400000"), V::AtLeast(1), S::InternalTopics,
        "Idempotent producer state expires after this long without writes.")),
    accepted(key("share.coordinator.state.topic.replication.factor", T::Short, Some("3"), V::AtLeast(1), S::InternalTopics,
        "Share groups (KIP-932) are not supported by kraftd; accepted for compatibility.")),
    accepted(key("share.coordinator.state.topic.min.isr", T::Short, Some("2"), V::AtLeast(1), S::InternalTopics,
        "Share groups (KIP-932) are not supported by kraftd; accepted for compatibility.")),
    // Groups
    key("group.initial.rebalance.delay.ms", T::Int, Some("3000"), V::None, S::Groups,
        "Delay before the first rebalance of a new classic group."),
    key("group.min.session.timeout.ms", T::Int, Some("6000"), V::None, S::Groups,
        "Smallest session timeout a classic group member may ask for."),
    key("group.max.session.timeout.ms", T::Int, Some("1800000"), V::None, S::Groups,
        "Largest session timeout a classic group member may ask for."),
    key("group.max.size", T::Int, Some(INT_MAX), V::AtLeast(1), S::Groups,
        "Max members of a classic group."),
    key("group.consumer.session.timeout.ms", T::Int, Some("45000"), V::AtLeast(1), S::Groups,
        "Session timeout of consumer-protocol (KIP-848) members."),
    key("group.consumer.min.session.timeout.ms", T::Int, Some("45000"), V::AtLeast(1), S::Groups,
        "Smallest consumer-protocol session timeout."),
    key("group.consumer.max.session.timeout.ms", T::Int, Some("60000"), V::AtLeast(1), S::Groups,
        "Largest consumer-protocol session timeout."),
    key("group.consumer.heartbeat.interval.ms", T::Int, Some("5000"), V::AtLeast(1), S::Groups,
        "Heartbeat interval given to consumer-protocol members."),
    key("group.consumer.min.heartbeat.interval.ms", T::Int, Some("5000"), V::AtLeast(1), S::Groups,
        "Smallest consumer-protocol heartbeat interval."),
    key("group.consumer.max.heartbeat.interval.ms", T::Int, Some("15000"), V::AtLeast(1), S::Groups,
        "Largest consumer-protocol heartbeat interval."),
    key("group.consumer.max.size", T::Int, Some(INT_MAX), V::AtLeast(1), S::Groups,
        "Max members of a consumer-protocol group."),
    // Replication
    key("replica.lag.time.max.ms", T::Long, Some("30000"), V::None, S::Replication,
        "A follower not caught up for this long leaves the ISR."),
    key("replica.fetch.max.bytes", T::Int, Some("1048576"), V::AtLeast(0), S::Replication,
        "Bytes per partition a follower fetches."),
    key("replica.fetch.response.max.bytes", T::Int, Some("10485760"), V::AtLeast(0), S::Replication,
        "Bytes per follower fetch response."),
    key("replica.fetch.wait.max.ms", T::Int, Some("500"), V::None, S::Replication,
        "Max wait of a follower fetch; must not exceed replica.lag.time.max.ms."),
    key("replica.fetch.min.bytes", T::Int, Some("1"), V::None, S::Replication,
        "Min bytes before a follower fetch is answered."),
    key("replica.fetch.backoff.ms", T::Int, Some("1000"), V::AtLeast(0), S::Replication,
        "Backoff after a follower fetch error."),
    key("replica.socket.timeout.ms", T::Int, Some("30000"), V::None, S::Replication,
        "Socket timeout of follower fetches; must be >= replica.fetch.wait.max.ms."),
    key("replica.high.watermark.checkpoint.interval.ms", T::Long, Some("5000"), V::None, S::Replication,
        "How often high watermarks are checkpointed."),
    key("auto.leader.rebalance.enable", T::Boolean, Some("true"), V::None, S::Replication,
        "Move leadership back to preferred replicas."),
    key("leader.imbalance.check.interval.seconds", T::Long, Some("300"), V::AtLeast(1), S::Replication,
        "How often the controller moves leadership back to preferred replicas."),
    key("leader.imbalance.per.broker.percentage", T::Int, Some("10"), V::None, S::Replication,
        "Accepted, not used: as Kafka's KRaft controller, every imbalanced partition is balanced."),
    // Metadata and broker lifecycle
    key("broker.heartbeat.interval.ms", T::Int, Some("2000"), V::None, S::Metadata,
        "Interval of broker heartbeats to the active controller."),
    key("broker.session.timeout.ms", T::Int, Some("9000"), V::None, S::Metadata,
        "A broker without heartbeats for this long is fenced."),
    key("initial.broker.registration.timeout.ms", T::Int, Some("60000"), V::None, S::Metadata,
        "A broker that cannot register within this long exits."),
    key("metadata.log.max.record.bytes.between.snapshots", T::Long, Some("20971520"), V::AtLeast(1), S::Metadata,
        "Metadata bytes after the last snapshot that trigger a new one."),
    key("metadata.log.max.snapshot.interval.ms", T::Long, Some("3600000"), V::AtLeast(0), S::Metadata,
        "Max time before a snapshot of new metadata is taken; 0 disables."),
    key("metadata.max.idle.interval.ms", T::Int, Some("500"), V::AtLeast(0), S::Metadata,
        "How often the active controller appends a no-op record; 0 disables."),
    key("metadata.log.segment.bytes", T::Int, Some("1073741824"), V::AtLeast(12), S::Metadata,
        "Segment size of the metadata log."),
    key("metadata.log.segment.ms", T::Long, Some("604800000"), V::None, S::Metadata,
        "Max age of a metadata log segment before it is rolled."),
    key("metadata.max.retention.bytes", T::Long, Some("104857600"), V::None, S::Metadata,
        "Metadata log + snapshots size after which old ones are deleted."),
    key("metadata.max.retention.ms", T::Long, Some("604800000"), V::None, S::Metadata,
        "Age after which old metadata segments and snapshots are deleted."),
    // Threads
    dynamic(tuning(key("num.network.threads", T::Int, Some("3"), V::AtLeast(1), S::Threads,
        "Kafka's network threads."))),
    dynamic(tuning(key("num.io.threads", T::Int, Some("8"), V::AtLeast(1), S::Threads,
        "Kafka's request handler threads."))),
    dynamic(tuning(key("num.recovery.threads.per.data.dir", T::Int, Some("2"), V::AtLeast(1), S::Threads,
        "Kafka's log recovery threads per data dir."))),
    dynamic(tuning(key("num.replica.fetchers", T::Int, Some("1"), V::None, S::Threads,
        "Kafka's follower fetcher threads per source broker."))),
    dynamic(tuning(key("background.threads", T::Int, Some("10"), V::AtLeast(1), S::Threads,
        "Kafka's background task threads."))),
];

/// `message.timestamp.type` / `log.message.timestamp.type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimestampType {
    CreateTime,
    LogAppendTime,
}

impl TimestampType {
    pub fn parse(s: &str) -> Option<TimestampType> {
        match s {
            "CreateTime" => Some(TimestampType::CreateTime),
            "LogAppendTime" => Some(TimestampType::LogAppendTime),
            _ => None,
        }
    }
}

/// Kafka's `BrokerCompressionType`: `Producer` keeps whatever codec the producer used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompressionType {
    Uncompressed,
    Zstd,
    Lz4,
    Snappy,
    Gzip,
    Producer,
}

impl CompressionType {
    pub fn parse(s: &str) -> Option<CompressionType> {
        match s {
            "uncompressed" => Some(CompressionType::Uncompressed),
            "zstd" => Some(CompressionType::Zstd),
            "lz4" => Some(CompressionType::Lz4),
            "snappy" => Some(CompressionType::Snappy),
            "gzip" => Some(CompressionType::Gzip),
            "producer" => Some(CompressionType::Producer),
            _ => None,
        }
    }
}

/// `cleanup.policy`: delete, compact, both, or (an empty list) neither.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CleanupPolicy {
    pub delete: bool,
    pub compact: bool,
}

impl CleanupPolicy {
    pub fn from_list(items: &[String]) -> CleanupPolicy {
        CleanupPolicy {
            delete: items.iter().any(|i| i.eq_ignore_ascii_case("delete")),
            compact: items.iter().any(|i| i.eq_ignore_ascii_case("compact")),
        }
    }
}

pub fn broker_key(name: &str) -> Option<&'static BrokerKey> {
    BROKER_KEYS.iter().find(|k| k.name == name)
}

/// A typed value after Kafka's `ConfigDef.parseType`.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Bool(bool),
    Int(i64),
    Double(f64),
    Str(String),
    List(Vec<String>),
}

impl Value {
    /// The string Kafka's `ConfigDef.convertToString` would print.
    pub fn to_kafka_string(&self) -> String {
        match self {
            Value::Bool(b) => b.to_string(),
            Value::Int(i) => i.to_string(),
            Value::Double(d) => format_double(*d),
            Value::Str(s) => s.clone(),
            Value::List(l) => l.join(","),
        }
    }
}

/// Java's `Double.toString` for the values that matter here (0.5, 1.0, 0.25).
fn format_double(d: f64) -> String {
    if d.fract() == 0.0 && d.abs() < 1e7 {
        format!("{d:.1}")
    } else {
        d.to_string()
    }
}

/// Why one value is not acceptable; worded to complete "<key>: ...".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValueProblem {
    pub problem: String,
    pub fix: String,
}

pub fn parse_value(ty: ConfigType, raw: &str) -> Result<Value, ValueProblem> {
    let trimmed = raw.trim();
    let not_type = || ValueProblem {
        problem: format!("'{raw}' is not {}", ty.expected()),
        fix: format!("write {}", ty.expected()),
    };
    match ty {
        ConfigType::Boolean => {
            if trimmed.eq_ignore_ascii_case("true") {
                Ok(Value::Bool(true))
            } else if trimmed.eq_ignore_ascii_case("false") {
                Ok(Value::Bool(false))
            } else {
                Err(not_type())
            }
        }
        ConfigType::Int => trimmed
            .parse::<i32>()
            .map(|v| Value::Int(i64::from(v)))
            .map_err(|_| not_type()),
        ConfigType::Short => trimmed
            .parse::<i16>()
            .map(|v| Value::Int(i64::from(v)))
            .map_err(|_| not_type()),
        ConfigType::Long => trimmed
            .parse::<i64>()
            .map(Value::Int)
            .map_err(|_| not_type()),
        ConfigType::Double => match trimmed.parse::<f64>() {
            Ok(v) if v.is_finite() => Ok(Value::Double(v)),
            _ => Err(not_type()),
        },
        ConfigType::List => Ok(Value::List(split_list(trimmed))),
        _ => Ok(Value::Str(trimmed.to_owned())),
    }
}

/// Kafka splits lists on `\s*,\s*`; an empty string is the empty list.
pub fn split_list(s: &str) -> Vec<String> {
    let s = s.trim();
    if s.is_empty() {
        return Vec::new();
    }
    s.split(',').map(|p| p.trim().to_owned()).collect()
}

pub fn check_value(validator: Validator, value: &Value) -> Result<(), ValueProblem> {
    match (validator, value) {
        (Validator::AtLeast(min), Value::Int(v)) if *v < min => Err(ValueProblem {
            problem: format!("{v} is below the minimum {min}"),
            fix: format!("use a value >= {min}"),
        }),
        (Validator::Between(lo, hi), Value::Int(v)) if *v < lo || *v > hi => Err(ValueProblem {
            problem: format!("{v} is outside [{lo}, {hi}]"),
            fix: format!("use a value between {lo} and {hi}"),
        }),
        (Validator::DoubleBetween(lo, hi), Value::Double(v)) if *v < lo || *v > hi => {
            Err(ValueProblem {
                problem: format!("{v} is outside [{lo}, {hi}]"),
                fix: format!("use a value between {lo} and {hi}"),
            })
        }
        (Validator::GzipLevel, Value::Int(v)) if *v != -1 && !(1..=9).contains(v) => {
            Err(ValueProblem {
                problem: format!("{v} is not a gzip level"),
                fix: "use -1 (default) or 1..9".to_owned(),
            })
        }
        (Validator::OneOf(allowed), Value::Str(s)) if !allowed.contains(&s.as_str()) => {
            Err(ValueProblem {
                problem: format!("'{s}' is not one of {}", allowed.join(", ")),
                fix: format!("use one of {}", allowed.join(", ")),
            })
        }
        (Validator::ListOf(allowed), Value::List(items)) => {
            match items.iter().find(|i| !allowed.contains(&i.as_str())) {
                Some(bad) => Err(ValueProblem {
                    problem: format!("'{bad}' is not one of {}", allowed.join(", ")),
                    fix: format!("list only {}", allowed.join(", ")),
                }),
                None => Ok(()),
            }
        }
        _ => Ok(()),
    }
}

/// The CONFIG.md table (also checked by a test against the shipped file).
pub fn render_config_markdown() -> String {
    let mut out = String::from(
        "# kraftd configuration keys\n\n\
         kraftd reads an ordinary Apache Kafka KRaft `server.properties`. These are the keys it knows, \
         with Apache Kafka 4.x defaults. Other keys are reported as `unknown key ... ignored`. \
         Keys marked *(tuning)* are accepted with a warning: kraftd sizes its runtime itself. \
         Keys marked *(accepted)* are accepted for compatibility and have no effect.\n\n\
         | key | default | meaning |\n|---|---|---|\n",
    );
    for section in Section::ALL {
        for k in BROKER_KEYS.iter().filter(|k| k.section == section) {
            let default = match k.default {
                Some("") => "(empty)".to_owned(),
                Some(d) => format!("`{d}`"),
                None => "(none)".to_owned(),
            };
            let note = match k.support {
                Support::Used => "",
                Support::Tuning => " *(tuning)*",
                Support::Accepted => " *(accepted)*",
            };
            out.push_str(&format!(
                "| `{}` | {} | {}{} |\n",
                k.name, default, k.doc, note
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_has_unique_names_and_valid_defaults() {
        let mut seen = std::collections::BTreeSet::new();
        for k in BROKER_KEYS {
            assert!(seen.insert(k.name), "duplicate {}", k.name);
            if let Some(d) = k.default {
                let v = parse_value(k.ty, d).unwrap_or_else(|e| panic!("{}: {e:?}", k.name));
                check_value(k.validator, &v).unwrap_or_else(|e| panic!("{}: {e:?}", k.name));
            }
        }
    }

    #[test]
    fn defaults_match_kafka_4() {
        let d = |n: &str| broker_key(n).and_then(|k| k.default);
        assert_eq!(d("message.max.bytes"), Some("1048588"));
        assert_eq!(d("socket.request.max.bytes"), Some("104857600"));
        assert_eq!(d("connections.max.idle.ms"), Some("600000"));
        assert_eq!(d("queued.max.requests"), Some("500"));
        assert_eq!(d("offsets.topic.num.partitions"), Some("50"));
        assert_eq!(d("controller.quorum.fetch.timeout.ms"), Some("2000"));
        assert_eq!(d("compression.type"), Some("producer"));
        assert_eq!(d("num.recovery.threads.per.data.dir"), Some("2"));
        assert_eq!(d("log.message.timestamp.after.max.ms"), Some("3600000"));
        assert_eq!(d("log.dir"), Some("/tmp/kafka-logs"));
        assert_eq!(d("log.retention.ms"), None);
    }

    #[test]
    fn parse_value_follows_java() {
        assert_eq!(parse_value(ConfigType::Int, " 42 "), Ok(Value::Int(42)));
        assert_eq!(parse_value(ConfigType::Int, "+7"), Ok(Value::Int(7)));
        assert!(parse_value(ConfigType::Int, "2147483648").is_err());
        assert!(parse_value(ConfigType::Short, "40000").is_err());
        assert_eq!(
            parse_value(ConfigType::Boolean, "TRUE"),
            Ok(Value::Bool(true))
        );
        assert!(parse_value(ConfigType::Boolean, "yes").is_err());
        assert_eq!(
            parse_value(ConfigType::List, " a , b ,c"),
            Ok(Value::List(vec!["a".into(), "b".into(), "c".into()]))
        );
        assert_eq!(parse_value(ConfigType::List, "  "), Ok(Value::List(vec![])));
        assert_eq!(Value::Double(0.5).to_kafka_string(), "0.5");
        assert_eq!(Value::Double(1.0).to_kafka_string(), "1.0");
    }
}
