//! Topic-level configs: Kafka's `LogConfig` table (type, default, validator), each key's broker
//! synonyms in Kafka's order (`ServerTopicConfigSynonyms`), the effective typed `TopicConfig`
//! of a topic, and the DescribeConfigs view of topic and broker configs (`ConfigHelper`).
//!
//! It must not store topic overrides: the metadata image owns them and passes them in.

use std::collections::BTreeMap;

use super::defs::{
    self, CleanupPolicy, CompressionType, ConfigType, LONG_MAX, MIN_SEGMENT_BYTES, TimestampType,
    Validator, Value,
};
use super::server::ServerConfig;

/// How a broker synonym's value becomes the topic value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Conversion {
    Same,
    HoursToMs,
    MinutesToMs,
}

#[derive(Debug, Clone, Copy)]
pub struct TopicKey {
    pub name: &'static str,
    pub ty: ConfigType,
    pub default: &'static str,
    pub validator: Validator,
    /// Broker configs that supply the default, highest priority first.
    pub synonyms: &'static [(&'static str, Conversion)],
    pub doc: &'static str,
}

use ConfigType as T;
use Conversion as C;
use Validator as V;

/// Every topic config of Kafka 4.x, sorted by name. (`message.format.version`,
/// `message.timestamp.difference.max.ms` and `message.downconversion.enable` were removed in 4.0.)
#[rustfmt::skip]
pub static TOPIC_KEYS: &[TopicKey] = &[
    TopicKey { name: "cleanup.policy", ty: T::List, default: "delete", validator: V::ListOf(defs::CLEANUP_POLICIES),
        synonyms: &[("log.cleanup.policy", C::Same)], doc: "delete, compact, or both (comma-separated)." },
    TopicKey { name: "compression.gzip.level", ty: T::Int, default: "-1", validator: V::GzipLevel,
        synonyms: &[("compression.gzip.level", C::Same)], doc: "gzip level when compression.type=gzip." },
    TopicKey { name: "compression.lz4.level", ty: T::Int, default: "9", validator: V::Between(1, 17),
        synonyms: &[("compression.lz4.level", C::Same)], doc: "lz4 level when compression.type=lz4." },
    TopicKey { name: "compression.type", ty: T::String, default: "producer", validator: V::OneOf(defs::COMPRESSION_TYPES),
        synonyms: &[("compression.type", C::Same)], doc: "Codec of stored batches; producer keeps the producer's codec." },
    TopicKey { name: "compression.zstd.level", ty: T::Int, default: "3", validator: V::Between(-131072, 22),
        synonyms: &[("compression.zstd.level", C::Same)], doc: "zstd level when compression.type=zstd." },
    TopicKey { name: "delete.retention.ms", ty: T::Long, default: "86400000", validator: V::AtLeast(0),
        synonyms: &[("log.cleaner.delete.retention.ms", C::Same)], doc: "How long tombstones are kept in a compacted topic." },
    TopicKey { name: "file.delete.delay.ms", ty: T::Long, default: "60000", validator: V::AtLeast(0),
        synonyms: &[("log.segment.delete.delay.ms", C::Same)], doc: "Delay before a deleted segment's files are removed." },
    TopicKey { name: "flush.messages", ty: T::Long, default: LONG_MAX, validator: V::AtLeast(1),
        synonyms: &[("log.flush.interval.messages", C::Same)], doc: "Messages between two fsyncs." },
    TopicKey { name: "flush.ms", ty: T::Long, default: LONG_MAX, validator: V::AtLeast(0),
        synonyms: &[("log.flush.interval.ms", C::Same), ("log.flush.scheduler.interval.ms", C::Same)],
        doc: "Max time between two fsyncs." },
    TopicKey { name: "follower.replication.throttled.replicas", ty: T::List, default: "", validator: V::None,
        synonyms: &[], doc: "Replicas throttled on the follower side (partition:broker list or *)." },
    TopicKey { name: "index.interval.bytes", ty: T::Int, default: "4096", validator: V::AtLeast(0),
        synonyms: &[("log.index.interval.bytes", C::Same)], doc: "Bytes between two offset-index entries." },
    TopicKey { name: "leader.replication.throttled.replicas", ty: T::List, default: "", validator: V::None,
        synonyms: &[], doc: "Replicas throttled on the leader side (partition:broker list or *)." },
    TopicKey { name: "local.retention.bytes", ty: T::Long, default: "-2", validator: V::AtLeast(-2),
        synonyms: &[("log.local.retention.bytes", C::Same)], doc: "Tiered storage local retention; -2 = retention.bytes." },
    TopicKey { name: "local.retention.ms", ty: T::Long, default: "-2", validator: V::AtLeast(-2),
        synonyms: &[("log.local.retention.ms", C::Same)], doc: "Tiered storage local retention; -2 = retention.ms." },
    TopicKey { name: "max.compaction.lag.ms", ty: T::Long, default: LONG_MAX, validator: V::AtLeast(1),
        synonyms: &[("log.cleaner.max.compaction.lag.ms", C::Same)], doc: "Max age of a message before it must be compacted." },
    TopicKey { name: "max.message.bytes", ty: T::Int, default: "1048588", validator: V::AtLeast(0),
        synonyms: &[("message.max.bytes", C::Same)], doc: "Largest record batch accepted." },
    TopicKey { name: "message.timestamp.after.max.ms", ty: T::Long, default: "3600000", validator: V::AtLeast(0),
        synonyms: &[("log.message.timestamp.after.max.ms", C::Same)], doc: "Max amount a CreateTime timestamp may be in the future." },
    TopicKey { name: "message.timestamp.before.max.ms", ty: T::Long, default: LONG_MAX, validator: V::AtLeast(0),
        synonyms: &[("log.message.timestamp.before.max.ms", C::Same)], doc: "Max amount a CreateTime timestamp may be in the past." },
    TopicKey { name: "message.timestamp.type", ty: T::String, default: "CreateTime", validator: V::OneOf(defs::TIMESTAMP_TYPES),
        synonyms: &[("log.message.timestamp.type", C::Same)], doc: "CreateTime or LogAppendTime." },
    TopicKey { name: "min.cleanable.dirty.ratio", ty: T::Double, default: "0.5", validator: V::DoubleBetween(0.0, 1.0),
        synonyms: &[("log.cleaner.min.cleanable.ratio", C::Same)], doc: "Min dirty ratio before the log is compacted." },
    TopicKey { name: "min.compaction.lag.ms", ty: T::Long, default: "0", validator: V::AtLeast(0),
        synonyms: &[("log.cleaner.min.compaction.lag.ms", C::Same)], doc: "Min age of a message before it may be compacted." },
    TopicKey { name: "min.insync.replicas", ty: T::Int, default: "1", validator: V::AtLeast(1),
        synonyms: &[("min.insync.replicas", C::Same)], doc: "Min in-sync replicas for acks=all." },
    TopicKey { name: "preallocate", ty: T::Boolean, default: "false", validator: V::None,
        synonyms: &[("log.preallocate", C::Same)], doc: "Preallocate segment files." },
    TopicKey { name: "remote.log.copy.disable", ty: T::Boolean, default: "false", validator: V::None,
        synonyms: &[], doc: "Tiered storage: stop copying segments to remote storage." },
    TopicKey { name: "remote.log.delete.on.disable", ty: T::Boolean, default: "false", validator: V::None,
        synonyms: &[], doc: "Tiered storage: delete remote data when tiering is disabled." },
    TopicKey { name: "remote.storage.enable", ty: T::Boolean, default: "false", validator: V::None,
        synonyms: &[], doc: "Tiered storage (not supported by kraftd)." },
    TopicKey { name: "retention.bytes", ty: T::Long, default: "-1", validator: V::None,
        synonyms: &[("log.retention.bytes", C::Same)], doc: "Max partition size before old segments are deleted; -1 = none." },
    TopicKey { name: "retention.ms", ty: T::Long, default: "604800000", validator: V::AtLeast(-1),
        synonyms: &[("log.retention.ms", C::Same), ("log.retention.minutes", C::MinutesToMs), ("log.retention.hours", C::HoursToMs)],
        doc: "Max age of a segment before deletion; -1 = none." },
    TopicKey { name: "segment.bytes", ty: T::Int, default: "1073741824", validator: V::AtLeast(MIN_SEGMENT_BYTES),
        synonyms: &[("log.segment.bytes", C::Same)], doc: "Max size of a segment file." },
    TopicKey { name: "segment.index.bytes", ty: T::Int, default: "10485760", validator: V::AtLeast(4),
        synonyms: &[("log.index.size.max.bytes", C::Same)], doc: "Max size of an index file." },
    TopicKey { name: "segment.jitter.ms", ty: T::Long, default: "0", validator: V::AtLeast(0),
        synonyms: &[("log.roll.jitter.ms", C::Same), ("log.roll.jitter.hours", C::HoursToMs)], doc: "Max random jitter subtracted from segment.ms." },
    TopicKey { name: "segment.ms", ty: T::Long, default: "604800000", validator: V::AtLeast(1),
        synonyms: &[("log.roll.ms", C::Same), ("log.roll.hours", C::HoursToMs)], doc: "Max age of the active segment before a roll." },
    TopicKey { name: "unclean.leader.election.enable", ty: T::Boolean, default: "false", validator: V::None,
        synonyms: &[("unclean.leader.election.enable", C::Same)], doc: "Allow an out-of-sync replica to become leader." },
];

pub fn topic_key(name: &str) -> Option<&'static TopicKey> {
    TOPIC_KEYS.iter().find(|k| k.name == name)
}

/// Kafka's wire error code for every topic config error.
pub const INVALID_CONFIG: i16 = 40;

/// A topic config that Kafka would refuse with INVALID_CONFIG; messages follow Kafka's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TopicConfigError {
    #[error("Unknown topic config name: {0}")]
    UnknownConfig(String),
    #[error("Invalid value {value} for configuration {name}: {reason}")]
    InvalidValue {
        name: String,
        value: String,
        reason: String,
    },
    #[error("{0}")]
    Conflict(String),
}

impl TopicConfigError {
    /// Kafka's `Errors.INVALID_CONFIG`.
    pub fn error_code(&self) -> i16 {
        INVALID_CONFIG
    }
}

fn type_reason(ty: ConfigType) -> String {
    match ty {
        ConfigType::Boolean => "Expected value to be either true or false".to_owned(),
        ConfigType::Int => "Not a number of type INT".to_owned(),
        ConfigType::Short => "Not a number of type SHORT".to_owned(),
        ConfigType::Long => "Not a number of type LONG".to_owned(),
        ConfigType::Double => "Not a number of type DOUBLE".to_owned(),
        _ => "Invalid value".to_owned(),
    }
}

fn validator_reason(v: Validator) -> String {
    match v {
        Validator::AtLeast(min) => format!("Value must be at least {min}"),
        Validator::Between(lo, hi) => format!("Value must be between {lo} and {hi}"),
        Validator::DoubleBetween(lo, hi) => format!("Value must be between {lo} and {hi}"),
        Validator::OneOf(allowed) | Validator::ListOf(allowed) => {
            format!("String must be one of: {}", allowed.join(", "))
        }
        Validator::GzipLevel => "Value must be between 1 and 9, or -1 (default)".to_owned(),
        Validator::None => "Invalid value".to_owned(),
    }
}

fn parse_topic_value(key: &TopicKey, value: &str) -> Result<Value, TopicConfigError> {
    let invalid = |reason: String| TopicConfigError::InvalidValue {
        name: key.name.to_owned(),
        value: value.to_owned(),
        reason,
    };
    let v = defs::parse_value(key.ty, value).map_err(|_| invalid(type_reason(key.ty)))?;
    defs::check_value(key.validator, &v).map_err(|_| invalid(validator_reason(key.validator)))?;
    Ok(v)
}

/// Checks one topic config as CreateTopics / IncrementalAlterConfigs do.
pub fn validate_topic_config(name: &str, value: &str) -> Result<(), TopicConfigError> {
    let key = topic_key(name).ok_or_else(|| TopicConfigError::UnknownConfig(name.to_owned()))?;
    let v = parse_topic_value(key, value)?;
    if name == "remote.storage.enable" && v == Value::Bool(true) {
        return Err(TopicConfigError::InvalidValue {
            name: name.to_owned(),
            value: value.to_owned(),
            reason: "Tiered Storage functionality is not supported by kraftd".to_owned(),
        });
    }
    Ok(())
}

/// Checks a set of overrides: each key, then the cross-key rule of `LogConfig.validateValues`.
pub fn validate_topic_configs(
    overrides: &BTreeMap<String, String>,
    broker: &ServerConfig,
) -> Result<(), TopicConfigError> {
    for (k, v) in overrides {
        validate_topic_config(k, v)?;
    }
    let resolved = TopicConfig::resolve(overrides, broker);
    if resolved.min_compaction_lag_ms > resolved.max_compaction_lag_ms {
        return Err(TopicConfigError::Conflict(format!(
            "conflict topic config setting min.compaction.lag.ms ({}) > max.compaction.lag.ms ({})",
            resolved.min_compaction_lag_ms, resolved.max_compaction_lag_ms
        )));
    }
    Ok(())
}

/// The effective configuration of one topic: its overrides, else the broker's settings, else
/// Kafka's defaults (Kafka's `LogConfig.fromProps(extractLogConfigMap, overrides)`).
#[derive(Debug, Clone, PartialEq)]
pub struct TopicConfig {
    pub cleanup_policy: CleanupPolicy,
    pub compression_type: CompressionType,
    pub compression_gzip_level: i32,
    pub compression_lz4_level: i32,
    pub compression_zstd_level: i32,
    pub delete_retention_ms: i64,
    pub file_delete_delay_ms: i64,
    pub flush_messages: i64,
    pub flush_ms: i64,
    pub index_interval_bytes: i32,
    pub local_retention_bytes: i64,
    pub local_retention_ms: i64,
    pub max_compaction_lag_ms: i64,
    pub max_message_bytes: i32,
    pub message_timestamp_after_max_ms: i64,
    pub message_timestamp_before_max_ms: i64,
    pub message_timestamp_type: TimestampType,
    pub min_cleanable_dirty_ratio: f64,
    pub min_compaction_lag_ms: i64,
    pub min_insync_replicas: i32,
    pub preallocate: bool,
    pub remote_storage_enable: bool,
    pub retention_bytes: i64,
    pub retention_ms: i64,
    pub segment_bytes: i32,
    pub segment_index_bytes: i32,
    pub segment_jitter_ms: i64,
    pub segment_ms: i64,
    pub unclean_leader_election_enable: bool,
}

/// The broker's value for a topic key, already converted (hours to ms...), as a string.
fn broker_value(key: &TopicKey, broker: &ServerConfig) -> Option<String> {
    match key.name {
        "retention.ms" => Some(broker.log_retention_ms.to_string()),
        "segment.ms" => Some(broker.log_roll_ms.to_string()),
        "segment.jitter.ms" => Some(broker.log_roll_jitter_ms.to_string()),
        "flush.ms" => Some(broker.log_flush_interval_ms.to_string()),
        _ => key
            .synonyms
            .first()
            .and_then(|(s, _)| broker.effective_string(s)),
    }
}

/// The effective typed value: a valid override, else the broker's, else the default. Invalid
/// overrides are ignored here: callers validate before storing them.
fn effective(key: &TopicKey, overrides: &BTreeMap<String, String>, broker: &ServerConfig) -> Value {
    let candidates = [overrides.get(key.name).cloned(), broker_value(key, broker)];
    candidates
        .into_iter()
        .flatten()
        .find_map(|s| parse_topic_value(key, &s).ok())
        .or_else(|| defs::parse_value(key.ty, key.default).ok())
        .unwrap_or(Value::Str(String::new()))
}

impl TopicConfig {
    pub fn resolve(overrides: &BTreeMap<String, String>, broker: &ServerConfig) -> TopicConfig {
        let get = |name: &str| -> Value {
            match topic_key(name) {
                Some(k) => effective(k, overrides, broker),
                None => Value::Str(String::new()),
            }
        };
        let long = |name: &str| match get(name) {
            Value::Int(v) => v,
            _ => 0,
        };
        let int = |name: &str| i32::try_from(long(name)).unwrap_or(i32::MAX);
        let boolean = |name: &str| matches!(get(name), Value::Bool(true));
        let string = |name: &str| match get(name) {
            Value::Str(s) => s,
            _ => String::new(),
        };
        TopicConfig {
            cleanup_policy: match get("cleanup.policy") {
                Value::List(l) => CleanupPolicy::from_list(&l),
                _ => CleanupPolicy::default(),
            },
            compression_type: CompressionType::parse(&string("compression.type"))
                .unwrap_or(CompressionType::Producer),
            compression_gzip_level: int("compression.gzip.level"),
            compression_lz4_level: int("compression.lz4.level"),
            compression_zstd_level: int("compression.zstd.level"),
            delete_retention_ms: long("delete.retention.ms"),
            file_delete_delay_ms: long("file.delete.delay.ms"),
            flush_messages: long("flush.messages"),
            flush_ms: long("flush.ms"),
            index_interval_bytes: int("index.interval.bytes"),
            local_retention_bytes: long("local.retention.bytes"),
            local_retention_ms: long("local.retention.ms"),
            max_compaction_lag_ms: long("max.compaction.lag.ms"),
            max_message_bytes: int("max.message.bytes"),
            message_timestamp_after_max_ms: long("message.timestamp.after.max.ms"),
            message_timestamp_before_max_ms: long("message.timestamp.before.max.ms"),
            message_timestamp_type: TimestampType::parse(&string("message.timestamp.type"))
                .unwrap_or(TimestampType::CreateTime),
            min_cleanable_dirty_ratio: match get("min.cleanable.dirty.ratio") {
                Value::Double(d) => d,
                _ => 0.5,
            },
            min_compaction_lag_ms: long("min.compaction.lag.ms"),
            min_insync_replicas: int("min.insync.replicas"),
            preallocate: boolean("preallocate"),
            remote_storage_enable: boolean("remote.storage.enable"),
            retention_bytes: long("retention.bytes"),
            retention_ms: long("retention.ms"),
            segment_bytes: int("segment.bytes"),
            segment_index_bytes: int("segment.index.bytes"),
            segment_jitter_ms: long("segment.jitter.ms"),
            segment_ms: long("segment.ms"),
            unclean_leader_election_enable: boolean("unclean.leader.election.enable"),
        }
    }
}

/// DescribeConfigs `ConfigSource`, numbered as on the wire (DescribeConfigsResponse v1+).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i8)]
pub enum ConfigSource {
    Unknown = 0,
    DynamicTopicConfig = 1,
    DynamicBrokerConfig = 2,
    DynamicDefaultBrokerConfig = 3,
    StaticBrokerConfig = 4,
    DefaultConfig = 5,
    DynamicBrokerLoggerConfig = 6,
    ClientMetricsConfig = 7,
    GroupConfig = 8,
}

impl ConfigSource {
    pub fn code(self) -> i8 {
        self as i8
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigSynonym {
    pub name: String,
    pub value: Option<String>,
    pub source: ConfigSource,
}

/// One entry of a DescribeConfigs response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DescribedConfig {
    pub name: String,
    pub value: Option<String>,
    pub read_only: bool,
    pub source: ConfigSource,
    pub is_sensitive: bool,
    pub config_type: ConfigType,
    pub documentation: Option<String>,
    pub synonyms: Vec<ConfigSynonym>,
}

/// Kafka's `DynamicBrokerConfig.brokerConfigSynonyms`: the keys that stand for the same setting.
fn broker_config_synonyms(name: &str) -> &'static [&'static str] {
    match name {
        "log.roll.ms" | "log.roll.hours" => &["log.roll.ms", "log.roll.hours"],
        "log.roll.jitter.ms" | "log.roll.jitter.hours" => {
            &["log.roll.jitter.ms", "log.roll.jitter.hours"]
        }
        "log.flush.interval.ms" => &["log.flush.interval.ms", "log.flush.scheduler.interval.ms"],
        "log.retention.ms" | "log.retention.minutes" | "log.retention.hours" => &[
            "log.retention.ms",
            "log.retention.minutes",
            "log.retention.hours",
        ],
        _ => &[],
    }
}

/// Kafka's `ConfigHelper.configSynonyms` for a static-only broker: the static settings of the
/// synonyms in order, then their non-null defaults, then everything before `name` dropped.
/// (So `retention.ms` lists no synonym unless `log.retention.ms` itself is set or has a default.)
fn static_synonyms(name: &str, broker: &ServerConfig) -> Vec<ConfigSynonym> {
    let group = broker_config_synonyms(name);
    let own = [name];
    let names: &[&str] = if group.is_empty() { &own } else { group };
    let mut out = Vec::new();
    for n in names {
        if let Some(v) = broker.raw(n) {
            out.push(ConfigSynonym {
                name: (*n).to_owned(),
                value: Some(v.to_owned()),
                source: ConfigSource::StaticBrokerConfig,
            });
        }
    }
    for n in names {
        if let Some(d) = defs::broker_key(n).and_then(|k| k.default) {
            out.push(ConfigSynonym {
                name: (*n).to_owned(),
                value: Some(d.to_owned()),
                source: ConfigSource::DefaultConfig,
            });
        }
    }
    match out.iter().position(|s| s.name == name) {
        Some(i) => out.split_off(i),
        None => Vec::new(),
    }
}

/// DescribeConfigs for a topic, as Kafka's `ConfigHelper.createTopicConfigEntry`, sorted by name.
pub fn describe_topic_configs(
    overrides: &BTreeMap<String, String>,
    broker: &ServerConfig,
    include_synonyms: bool,
) -> Vec<DescribedConfig> {
    TOPIC_KEYS
        .iter()
        .map(|key| {
            let mut synonyms = Vec::new();
            if let Some(v) = overrides.get(key.name) {
                synonyms.push(ConfigSynonym {
                    name: key.name.to_owned(),
                    value: Some(v.clone()),
                    source: ConfigSource::DynamicTopicConfig,
                });
            }
            if let Some((first, _)) = key.synonyms.first() {
                synonyms.extend(static_synonyms(first, broker));
            }
            let source = synonyms
                .first()
                .map_or(ConfigSource::DefaultConfig, |s| s.source);
            DescribedConfig {
                name: key.name.to_owned(),
                value: Some(effective(key, overrides, broker).to_kafka_string()),
                read_only: false,
                source,
                is_sensitive: false,
                config_type: key.ty,
                documentation: Some(key.doc.to_owned()),
                synonyms: if include_synonyms {
                    synonyms
                } else {
                    Vec::new()
                },
            }
        })
        .collect()
}

/// DescribeConfigs for this broker, as Kafka's `createBrokerConfigEntry`: every key kraftd
/// knows, sorted by name; `read_only` unless Kafka can change the key dynamically.
pub fn describe_broker_configs(
    broker: &ServerConfig,
    include_synonyms: bool,
) -> Vec<DescribedConfig> {
    let mut keys: Vec<_> = defs::BROKER_KEYS.iter().collect();
    keys.sort_by_key(|k| k.name);
    keys.into_iter()
        .map(|k| {
            let synonyms = static_synonyms(k.name, broker);
            let source = synonyms
                .first()
                .map_or(ConfigSource::DefaultConfig, |s| s.source);
            DescribedConfig {
                name: k.name.to_owned(),
                value: broker.effective_string(k.name),
                read_only: !k.dynamic,
                source,
                is_sensitive: false,
                config_type: k.ty,
                documentation: Some(k.doc.to_owned()),
                synonyms: if include_synonyms {
                    synonyms
                } else {
                    Vec::new()
                },
            }
        })
        .collect()
}

#[cfg(test)]
#[path = "topic_tests.rs"]
mod tests;
