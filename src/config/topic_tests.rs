use super::*;
use std::path::Path;

const BASE: &str = "\
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@localhost:9093
listeners=PLAINTEXT://:9092,CONTROLLER://:9093
controller.listener.names=CONTROLLER
";

fn broker(extra: &str) -> ServerConfig {
    ServerConfig::from_str(&format!("{BASE}{extra}"), Path::new("s.properties"), &[])
        .unwrap_or_else(|e| panic!("{e}"))
}

fn overrides(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn find<'a>(configs: &'a [DescribedConfig], name: &str) -> &'a DescribedConfig {
    configs
        .iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("{name} described"))
}

fn syn(name: &str, value: &str, source: ConfigSource) -> ConfigSynonym {
    ConfigSynonym {
        name: name.to_owned(),
        value: Some(value.to_owned()),
        source,
    }
}

#[test]
fn table_is_sorted_with_valid_defaults_and_known_synonyms() {
    let names: Vec<_> = TOPIC_KEYS.iter().map(|k| k.name).collect();
    let mut sorted = names.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(names, sorted);
    for k in TOPIC_KEYS {
        let v = defs::parse_value(k.ty, k.default).expect("default parses");
        defs::check_value(k.validator, &v).expect("default valid");
        for (s, _) in k.synonyms {
            assert!(
                defs::broker_key(s).is_some(),
                "{} synonym {s} unknown to the broker table",
                k.name
            );
        }
    }
    assert!(topic_key("message.downconversion.enable").is_none());
}

#[test]
fn synonyms_in_kafka_order() {
    let names = |n: &str| -> Vec<&str> {
        topic_key(n)
            .expect("key")
            .synonyms
            .iter()
            .map(|(s, _)| *s)
            .collect()
    };
    assert_eq!(
        names("retention.ms"),
        vec![
            "log.retention.ms",
            "log.retention.minutes",
            "log.retention.hours"
        ]
    );
    assert_eq!(names("segment.ms"), vec!["log.roll.ms", "log.roll.hours"]);
    assert_eq!(
        names("segment.jitter.ms"),
        vec!["log.roll.jitter.ms", "log.roll.jitter.hours"]
    );
    assert_eq!(
        names("flush.ms"),
        vec!["log.flush.interval.ms", "log.flush.scheduler.interval.ms"]
    );
    assert_eq!(names("max.message.bytes"), vec!["message.max.bytes"]);
    assert_eq!(
        names("min.cleanable.dirty.ratio"),
        vec!["log.cleaner.min.cleanable.ratio"]
    );
    assert_eq!(
        names("file.delete.delay.ms"),
        vec!["log.segment.delete.delay.ms"]
    );
    assert_eq!(
        names("segment.index.bytes"),
        vec!["log.index.size.max.bytes"]
    );
}

#[test]
fn validate_topic_config_table() {
    let ok = [
        ("cleanup.policy", "compact,delete"),
        ("cleanup.policy", "compact"),
        ("compression.type", "zstd"),
        ("retention.ms", "-1"),
        ("segment.bytes", "1048576"),
        ("min.cleanable.dirty.ratio", "0.1"),
        ("message.timestamp.type", "LogAppendTime"),
        ("preallocate", "TRUE"),
        ("compression.gzip.level", "-1"),
        ("leader.replication.throttled.replicas", "0:1,1:2"),
    ];
    for (k, v) in ok {
        assert_eq!(validate_topic_config(k, v), Ok(()), "{k}={v}");
    }
    let bad: &[(&str, &str, &str)] = &[
        (
            "no.such.config",
            "1",
            "Unknown topic config name: no.such.config",
        ),
        (
            "retention.ms",
            "abc",
            "Invalid value abc for configuration retention.ms: Not a number of type LONG",
        ),
        (
            "retention.ms",
            "-2",
            "Invalid value -2 for configuration retention.ms: Value must be at least -1",
        ),
        (
            "segment.bytes",
            "14",
            "Invalid value 14 for configuration segment.bytes: Value must be at least 1048576",
        ),
        (
            "cleanup.policy",
            "archive",
            "String must be one of: compact, delete",
        ),
        (
            "compression.type",
            "brotli",
            "String must be one of: uncompressed, zstd, lz4, snappy, gzip, producer",
        ),
        (
            "message.timestamp.type",
            "Now",
            "String must be one of: CreateTime, LogAppendTime",
        ),
        ("min.insync.replicas", "0", "Value must be at least 1"),
        (
            "preallocate",
            "maybe",
            "Expected value to be either true or false",
        ),
        (
            "compression.gzip.level",
            "12",
            "Invalid value 12 for configuration compression.gzip.level",
        ),
        (
            "min.cleanable.dirty.ratio",
            "2",
            "Value must be between 0 and 1",
        ),
        (
            "max.message.bytes",
            "99999999999",
            "Not a number of type INT",
        ),
        ("remote.storage.enable", "true", "Tiered Storage"),
    ];
    for (k, v, msg) in bad {
        let err = validate_topic_config(k, v).expect_err("refused");
        assert_eq!(err.error_code(), 40);
        assert!(err.to_string().contains(msg), "{k}={v}: {err}");
        assert!(err.to_string().contains(k), "names the key: {err}");
    }
}

#[test]
fn compaction_lag_conflict() {
    let b = broker("");
    let o = overrides(&[
        ("min.compaction.lag.ms", "10"),
        ("max.compaction.lag.ms", "5"),
    ]);
    let err = validate_topic_configs(&o, &b).expect_err("conflict");
    assert_eq!(err.error_code(), INVALID_CONFIG);
    assert!(
        err.to_string()
            .contains("min.compaction.lag.ms (10) > max.compaction.lag.ms (5)"),
        "{err}"
    );
}

#[test]
fn resolve_uses_override_then_broker_synonyms_then_default() {
    let b = broker(
        "log.retention.hours=24\nlog.roll.hours=2\nmessage.max.bytes=2000000\nlog.cleanup.policy=compact\n",
    );
    let t = TopicConfig::resolve(&BTreeMap::new(), &b);
    assert_eq!(t.retention_ms, 86_400_000);
    assert_eq!(t.segment_ms, 7_200_000);
    assert_eq!(t.max_message_bytes, 2_000_000);
    assert_eq!(
        t.cleanup_policy,
        CleanupPolicy {
            delete: false,
            compact: true
        }
    );
    assert_eq!(t.segment_bytes, 1_073_741_824);
    assert_eq!(t.index_interval_bytes, 4096);
    assert_eq!(t.segment_index_bytes, 10_485_760);
    assert_eq!(t.flush_ms, i64::MAX);
    assert_eq!(t.message_timestamp_type, TimestampType::CreateTime);
    assert_eq!(t.message_timestamp_after_max_ms, 3_600_000);
    assert_eq!(t.min_insync_replicas, 1);
    assert_eq!(t.compression_type, CompressionType::Producer);
    assert_eq!(t.local_retention_ms, -2);

    let o = overrides(&[
        ("retention.ms", "1000"),
        ("segment.bytes", "2097152"),
        ("cleanup.policy", "compact,delete"),
        ("message.timestamp.type", "LogAppendTime"),
        ("min.insync.replicas", "2"),
        ("retention.bytes", "not-a-number"),
    ]);
    let t = TopicConfig::resolve(&o, &b);
    assert_eq!(t.retention_ms, 1000);
    assert_eq!(t.segment_bytes, 2_097_152);
    assert_eq!(
        t.cleanup_policy,
        CleanupPolicy {
            delete: true,
            compact: true
        }
    );
    assert_eq!(t.message_timestamp_type, TimestampType::LogAppendTime);
    assert_eq!(t.min_insync_replicas, 2);
    // An invalid stored override falls back to the broker value.
    assert_eq!(t.retention_bytes, -1);

    let b = broker("log.retention.minutes=30\nlog.retention.hours=5\n");
    assert_eq!(
        TopicConfig::resolve(&BTreeMap::new(), &b).retention_ms,
        1_800_000
    );
    let b = broker("log.retention.ms=-5\n");
    assert_eq!(TopicConfig::resolve(&BTreeMap::new(), &b).retention_ms, -1);
}

#[test]
fn describe_topic_sources_match_kafka() {
    let b =
        broker("log.segment.bytes=536870912\nlog.retention.hours=24\nlog.retention.ms=3600000\n");
    let o = overrides(&[("cleanup.policy", "compact")]);
    let d = describe_topic_configs(&o, &b, true);
    assert_eq!(d.len(), TOPIC_KEYS.len());

    let c = find(&d, "cleanup.policy");
    assert_eq!(c.value.as_deref(), Some("compact"));
    assert_eq!(c.source, ConfigSource::DynamicTopicConfig);
    assert_eq!(c.source.code(), 1);
    assert_eq!(
        c.synonyms,
        vec![
            syn(
                "cleanup.policy",
                "compact",
                ConfigSource::DynamicTopicConfig
            ),
            syn("log.cleanup.policy", "delete", ConfigSource::DefaultConfig),
        ]
    );
    assert_eq!(c.config_type, ConfigType::List);
    assert_eq!(c.config_type.code(), 7);
    assert!(!c.read_only && !c.is_sensitive);

    let c = find(&d, "segment.bytes");
    assert_eq!(c.value.as_deref(), Some("536870912"));
    assert_eq!(c.source, ConfigSource::StaticBrokerConfig);
    assert_eq!(c.source.code(), 4);
    assert_eq!(
        c.synonyms,
        vec![
            syn(
                "log.segment.bytes",
                "536870912",
                ConfigSource::StaticBrokerConfig
            ),
            syn(
                "log.segment.bytes",
                "1073741824",
                ConfigSource::DefaultConfig
            ),
        ]
    );

    let c = find(&d, "retention.ms");
    assert_eq!(c.value.as_deref(), Some("3600000"));
    assert_eq!(c.source, ConfigSource::StaticBrokerConfig);
    assert_eq!(
        c.synonyms,
        vec![
            syn(
                "log.retention.ms",
                "3600000",
                ConfigSource::StaticBrokerConfig
            ),
            syn(
                "log.retention.hours",
                "24",
                ConfigSource::StaticBrokerConfig
            ),
            syn("log.retention.hours", "168", ConfigSource::DefaultConfig),
        ]
    );

    let c = find(&d, "max.message.bytes");
    assert_eq!(c.value.as_deref(), Some("1048588"));
    assert_eq!(c.source, ConfigSource::DefaultConfig);
    assert_eq!(c.source.code(), 5);
    assert_eq!(
        c.synonyms,
        vec![syn(
            "message.max.bytes",
            "1048588",
            ConfigSource::DefaultConfig
        )]
    );

    let c = find(&d, "remote.storage.enable");
    assert_eq!(
        (c.source, c.synonyms.len()),
        (ConfigSource::DefaultConfig, 0)
    );
    assert_eq!(c.config_type.code(), 1);

    let c = find(&d, "min.cleanable.dirty.ratio");
    assert_eq!(c.value.as_deref(), Some("0.5"));
    assert_eq!(c.config_type.code(), 6);

    let without = describe_topic_configs(&o, &b, false);
    assert!(without.iter().all(|c| c.synonyms.is_empty()));
    assert_eq!(
        find(&without, "segment.bytes").source,
        ConfigSource::StaticBrokerConfig
    );
}

/// Kafka's `ConfigHelper` drops every synonym listed before the first synonym's own name, so
/// `retention.ms` reports DEFAULT_CONFIG and no synonyms when only `log.retention.hours` is set,
/// though the value comes from it.
#[test]
fn describe_topic_retention_from_hours_only_is_reported_as_default() {
    let b = broker("log.retention.hours=24\n");
    let d = describe_topic_configs(&BTreeMap::new(), &b, true);
    let c = find(&d, "retention.ms");
    assert_eq!(c.value.as_deref(), Some("86400000"));
    assert_eq!(c.source, ConfigSource::DefaultConfig);
    assert!(c.synonyms.is_empty());
    let c = find(&d, "segment.ms");
    assert_eq!(c.value.as_deref(), Some("604800000"));
    assert_eq!(c.source, ConfigSource::DefaultConfig);
}

#[test]
fn describe_broker_configs_sources_and_read_only() {
    let b = broker("num.partitions=3\nlog.retention.hours=24\nlog.retention.ms=100\n");
    let d = describe_broker_configs(&b, true);
    assert_eq!(d.len(), defs::BROKER_KEYS.len());
    assert!(d.windows(2).all(|w| w[0].name < w[1].name));

    let c = find(&d, "num.partitions");
    assert_eq!(
        (c.value.as_deref(), c.source, c.read_only),
        (Some("3"), ConfigSource::StaticBrokerConfig, true)
    );
    assert_eq!(
        c.synonyms,
        vec![
            syn("num.partitions", "3", ConfigSource::StaticBrokerConfig),
            syn("num.partitions", "1", ConfigSource::DefaultConfig)
        ]
    );

    let c = find(&d, "message.max.bytes");
    assert_eq!(
        (c.value.as_deref(), c.source, c.read_only),
        (Some("1048588"), ConfigSource::DefaultConfig, false)
    );

    let c = find(&d, "log.retention.hours");
    assert_eq!(c.source, ConfigSource::StaticBrokerConfig);
    assert_eq!(
        c.synonyms,
        vec![
            syn(
                "log.retention.hours",
                "24",
                ConfigSource::StaticBrokerConfig
            ),
            syn("log.retention.hours", "168", ConfigSource::DefaultConfig)
        ]
    );
    let c = find(&d, "log.retention.ms");
    assert_eq!(c.value.as_deref(), Some("100"));
    assert_eq!(
        c.synonyms[0],
        syn("log.retention.ms", "100", ConfigSource::StaticBrokerConfig)
    );
    assert_eq!(c.synonyms.len(), 3);
    let c = find(&d, "log.retention.minutes");
    assert_eq!(
        (c.value.as_deref(), c.source),
        (None, ConfigSource::DefaultConfig)
    );

    let c = find(&d, "broker.rack");
    assert_eq!(
        (c.value.as_deref(), c.source, c.synonyms.len()),
        (None, ConfigSource::DefaultConfig, 0)
    );

    // node.id stands for broker.id, as Kafka's populateSynonyms.
    let c = find(&d, "broker.id");
    assert_eq!(
        (c.value.as_deref(), c.source),
        (Some("1"), ConfigSource::StaticBrokerConfig)
    );

    let c = find(&d, "process.roles");
    assert_eq!(c.value.as_deref(), Some("broker,controller"));
    assert_eq!(c.config_type, ConfigType::List);
    assert!(c.read_only);
    assert!(!find(&d, "listeners").read_only);
}
