use super::*;
use crate::config::defs::{BROKER_KEYS, Section};

const FILE: &str = "/etc/kraftd/server.properties";

const COMBINED: &str = "\
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@localhost:9093
listeners=PLAINTEXT://:9092,CONTROLLER://:9093
advertised.listeners=PLAINTEXT://localhost:9092
controller.listener.names=CONTROLLER
log.dirs=/tmp/kraftd-combined-logs
";

fn load(text: &str) -> Result<ServerConfig, ConfigError> {
    ServerConfig::from_str(text, Path::new(FILE), &[])
}

fn load_ok(text: &str) -> ServerConfig {
    load(text).unwrap_or_else(|e| panic!("{e}"))
}

/// Replaces (or appends) `key=value` lines of `base`, keeping the other lines where they are.
fn with(base: &str, changes: &[(&str, Option<&str>)]) -> String {
    let mut lines: Vec<String> = base.lines().map(str::to_owned).collect();
    for (key, value) in changes {
        let pos = lines.iter().position(|l| l.split('=').next() == Some(*key));
        match (pos, value) {
            (Some(i), Some(v)) => lines[i] = format!("{key}={v}"),
            (Some(i), None) => {
                lines.remove(i);
            }
            (None, Some(v)) => lines.push(format!("{key}={v}")),
            (None, None) => {}
        }
    }
    lines.join("\n") + "\n"
}

fn line_of(text: &str, key: &str) -> u32 {
    let i = text
        .lines()
        .position(|l| l.split('=').next() == Some(key))
        .expect("key in text");
    u32::try_from(i + 1).expect("small")
}

/// Asserts the one-line error names the file, the line (when the key is in the file), the key,
/// the problem and a fix.
fn assert_error(text: &str, key: &str, problem_part: &str) -> String {
    let err = load(text).expect_err("must be refused");
    let msg = err.to_string();
    assert_eq!(err.key(), Some(key), "{msg}");
    let place = if text.lines().any(|l| l.split('=').next() == Some(key)) {
        format!("{FILE}:{}: {key}: ", line_of(text, key))
    } else {
        format!("{FILE}: {key}: ")
    };
    assert!(
        msg.starts_with(&place),
        "expected prefix {place:?} in {msg:?}"
    );
    assert!(
        msg.contains(problem_part),
        "expected {problem_part:?} in {msg:?}"
    );
    assert!(msg.contains(". Fix: "), "{msg}");
    assert!(!msg.contains('\n'), "{msg}");
    msg
}

#[test]
fn combined_node_parses_with_kafka_defaults() {
    let c = load_ok(COMBINED);
    assert_eq!(c.node_id, 1);
    assert_eq!(
        c.process_roles,
        vec![ProcessRole::Broker, ProcessRole::Controller]
    );
    assert_eq!(
        c.listeners,
        vec![
            Listener {
                name: "PLAINTEXT".into(),
                host: None,
                port: 9092,
                security_protocol: SecurityProtocol::Plaintext
            },
            Listener {
                name: "CONTROLLER".into(),
                host: None,
                port: 9093,
                security_protocol: SecurityProtocol::Plaintext
            },
        ]
    );
    assert_eq!(c.advertised_listeners.len(), 1);
    assert_eq!(c.advertised_listeners[0].host.as_deref(), Some("localhost"));
    assert_eq!(c.advertised_controller_listeners[0].port, 9093);
    assert_eq!(c.advertised_controller_listeners[0].host, None);
    assert_eq!(c.inter_broker_listener_name, "PLAINTEXT");
    assert_eq!(
        c.controller_quorum_voters,
        vec![Voter {
            id: 1,
            host: "localhost".into(),
            port: 9093
        }]
    );
    assert_eq!(c.log_dirs, vec![PathBuf::from("/tmp/kraftd-combined-logs")]);
    assert_eq!(
        c.metadata_log_dir(),
        PathBuf::from("/tmp/kraftd-combined-logs")
    );
    // Kafka 4.x defaults.
    assert_eq!(c.message_max_bytes, 1_048_588);
    assert_eq!(c.socket_request_max_bytes, 104_857_600);
    assert_eq!(c.connections_max_idle_ms, 600_000);
    assert_eq!(c.queued_max_requests, 500);
    assert_eq!(c.num_partitions, 1);
    assert_eq!(c.default_replication_factor, 1);
    assert!(c.auto_create_topics_enable);
    assert!(c.delete_topic_enable);
    assert_eq!(c.log_segment_bytes, 1_073_741_824);
    assert_eq!(c.log_roll_ms, 604_800_000);
    assert_eq!(c.log_retention_ms, 604_800_000);
    assert_eq!(c.log_retention_bytes, -1);
    assert_eq!(c.log_retention_check_interval_ms, 300_000);
    assert_eq!(c.log_index_interval_bytes, 4096);
    assert_eq!(c.log_index_size_max_bytes, 10_485_760);
    assert_eq!(c.log_flush_interval_messages, i64::MAX);
    assert_eq!(c.log_flush_interval_ms, i64::MAX);
    assert_eq!(
        c.log_cleanup_policy,
        CleanupPolicy {
            delete: true,
            compact: false
        }
    );
    assert_eq!(c.offsets_topic_num_partitions, 50);
    assert_eq!(c.offsets_topic_replication_factor, 3);
    assert_eq!(c.offsets_retention_minutes, 10_080);
    assert_eq!(c.transaction_state_log_replication_factor, 3);
    assert_eq!(c.transaction_state_log_min_isr, 2);
    assert_eq!(c.group_initial_rebalance_delay_ms, 3000);
    assert_eq!(c.group_min_session_timeout_ms, 6000);
    assert_eq!(c.group_max_session_timeout_ms, 1_800_000);
    assert_eq!(c.group_consumer_heartbeat_interval_ms, 5000);
    assert_eq!(c.group_consumer_session_timeout_ms, 45_000);
    assert_eq!(c.controller_quorum_election_timeout_ms, 1000);
    assert_eq!(c.controller_quorum_fetch_timeout_ms, 2000);
    assert_eq!(c.controller_quorum_election_backoff_max_ms, 1000);
    assert_eq!(c.controller_quorum_request_timeout_ms, 2000);
    assert_eq!(c.controller_quorum_append_linger_ms, 25);
    assert_eq!(c.broker_session_timeout_ms, 9000);
    assert_eq!(c.broker_heartbeat_interval_ms, 2000);
    assert_eq!(
        c.metadata_log_max_record_bytes_between_snapshots,
        20 * 1024 * 1024
    );
    assert_eq!(c.metadata_max_idle_interval_ms, 500);
    assert_eq!(c.min_insync_replicas, 1);
    assert!(!c.unclean_leader_election_enable);
    assert_eq!(c.compression_type, CompressionType::Producer);
    assert_eq!(c.log_message_timestamp_type, TimestampType::CreateTime);
    assert_eq!(c.log_message_timestamp_after_max_ms, 3_600_000);
    assert_eq!(c.replica_lag_time_max_ms, 30_000);
    assert_eq!(c.fetch_max_bytes, 55 * 1024 * 1024);
    assert_eq!(c.num_recovery_threads_per_data_dir, 2);
    assert_eq!(c.broker_rack, None);
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    assert_eq!(c.raw("node.id"), Some("1"));
    assert_eq!(c.raw_line("log.dirs"), Some(7));
    assert_eq!(c.raw("log.retention.hours"), None);
    assert_eq!(c.source(), Path::new(FILE));
}

#[test]
fn log_dirs_win_over_log_dir_and_log_dir_has_kafka_default() {
    let c = load_ok(&with(
        COMBINED,
        &[("log.dir", Some("/a")), ("log.dirs", Some("/b, /c"))],
    ));
    assert_eq!(c.log_dirs, vec![PathBuf::from("/b"), PathBuf::from("/c")]);
    let c = load_ok(&with(
        COMBINED,
        &[("log.dirs", None), ("log.dir", Some("/a"))],
    ));
    assert_eq!(c.log_dirs, vec![PathBuf::from("/a")]);
    let c = load_ok(&with(COMBINED, &[("log.dirs", None)]));
    assert_eq!(c.log_dirs, vec![PathBuf::from("/tmp/kafka-logs")]);
    let c = load_ok(&with(COMBINED, &[("metadata.log.dir", Some("/meta"))]));
    assert_eq!(c.metadata_log_dir(), PathBuf::from("/meta"));
}

#[test]
fn retention_resolves_ms_then_minutes_then_hours() {
    let c = load_ok(&with(COMBINED, &[("log.retention.hours", Some("2"))]));
    assert_eq!(c.log_retention_ms, 7_200_000);
    let c = load_ok(&with(
        COMBINED,
        &[
            ("log.retention.hours", Some("2")),
            ("log.retention.minutes", Some("3")),
        ],
    ));
    assert_eq!(c.log_retention_ms, 180_000);
    let c = load_ok(&with(
        COMBINED,
        &[
            ("log.retention.hours", Some("2")),
            ("log.retention.minutes", Some("3")),
            ("log.retention.ms", Some("5")),
        ],
    ));
    assert_eq!(c.log_retention_ms, 5);
    let c = load_ok(&with(COMBINED, &[("log.retention.ms", Some("-7"))]));
    assert_eq!(c.log_retention_ms, -1);
    let c = load_ok(&with(
        COMBINED,
        &[
            ("log.roll.hours", Some("1")),
            ("log.flush.scheduler.interval.ms", Some("10")),
        ],
    ));
    assert_eq!(c.log_roll_ms, 3_600_000);
    assert_eq!(c.log_flush_interval_ms, 10);
}

#[test]
fn overrides_win_and_errors_name_override() {
    let overrides = vec![
        ("num.partitions".to_owned(), "6".to_owned()),
        ("broker.rack".to_owned(), "r1".to_owned()),
    ];
    let c = ServerConfig::from_str(
        &with(COMBINED, &[("num.partitions", Some("3"))]),
        Path::new(FILE),
        &overrides,
    )
    .expect("valid");
    assert_eq!(c.num_partitions, 6);
    assert_eq!(c.broker_rack.as_deref(), Some("r1"));
    assert_eq!(c.raw("num.partitions"), Some("6"));
    assert_eq!(c.raw_line("num.partitions"), None);

    let bad = vec![("num.partitions".to_owned(), "0".to_owned())];
    let err = ServerConfig::from_str(COMBINED, Path::new(FILE), &bad).expect_err("refused");
    assert_eq!(
        err.to_string(),
        format!(
            "{FILE}: --override num.partitions: 0 is below the minimum 1. Fix: use a value >= 1"
        )
    );
    let unknown = vec![("no.such.key".to_owned(), "1".to_owned())];
    let c = ServerConfig::from_str(COMBINED, Path::new(FILE), &unknown).expect("valid");
    assert_eq!(
        c.warnings,
        vec![format!(
            "{FILE}: --override: unknown key 'no.such.key' ignored"
        )]
    );
}

#[test]
fn warnings_for_unknown_and_tuning_keys() {
    let text = with(
        COMBINED,
        &[
            ("zookeeper.connect", Some("localhost:2181")),
            ("num.io.threads", Some("8")),
        ],
    );
    let c = load_ok(&text);
    assert_eq!(
        c.warnings,
        vec![
            format!("{FILE}:8: unknown key 'zookeeper.connect' ignored"),
            format!(
                "{FILE}:9: 'num.io.threads' accepted but has no effect: kraftd sizes its runtime itself"
            ),
        ]
    );
    assert_eq!(c.num_io_threads, 8);
}

#[test]
fn ipv6_and_hosts_in_listeners() {
    let c = load_ok(&with(
        COMBINED,
        &[
            (
                "listeners",
                Some("PLAINTEXT://[::1]:9092,CONTROLLER://127.0.0.1:9093"),
            ),
            ("advertised.listeners", Some("PLAINTEXT://[::1]:9092")),
        ],
    ));
    assert_eq!(c.listeners[0].host.as_deref(), Some("::1"));
    assert_eq!(c.listeners[1].host.as_deref(), Some("127.0.0.1"));
    // Same port allowed once on an IPv4 and once on an IPv6 literal.
    load_ok(&with(
        COMBINED,
        &[
            (
                "listeners",
                Some("PLAINTEXT://127.0.0.1:9092,INTERNAL://[::1]:9092,CONTROLLER://:9093"),
            ),
            (
                "listener.security.protocol.map",
                Some("PLAINTEXT:PLAINTEXT,INTERNAL:PLAINTEXT,CONTROLLER:PLAINTEXT"),
            ),
        ],
    ));
}

#[test]
fn advertised_defaults_to_listeners_minus_controller_listeners() {
    let c = load_ok(&with(COMBINED, &[("advertised.listeners", None)]));
    assert_eq!(
        c.advertised_listeners
            .iter()
            .map(|l| l.name.as_str())
            .collect::<Vec<_>>(),
        vec!["PLAINTEXT"]
    );
    assert_eq!(c.advertised_controller_listeners[0].name, "CONTROLLER");
    // Kafka 3.9+/4.x: advertising the controller listener is allowed; clients never see it.
    let c = load_ok(&with(
        COMBINED,
        &[(
            "advertised.listeners",
            Some("PLAINTEXT://h:9092,CONTROLLER://c:9093"),
        )],
    ));
    assert_eq!(c.advertised_listeners.len(), 1);
    assert_eq!(
        c.advertised_controller_listeners[0].host.as_deref(),
        Some("c")
    );
}

#[test]
fn controller_listener_gets_plaintext_when_map_is_unset() {
    let c = load_ok(COMBINED);
    assert_eq!(
        c.listener_security_protocol_map.get("CONTROLLER"),
        Some(&SecurityProtocol::Plaintext)
    );
    assert_eq!(
        c.listener_security_protocol_map.get("SASL_SSL"),
        Some(&SecurityProtocol::SaslSsl)
    );
    // An explicit map gets no implicit entries.
    assert_error(
        &with(
            COMBINED,
            &[(
                "listener.security.protocol.map",
                Some("PLAINTEXT:PLAINTEXT"),
            )],
        ),
        "listeners",
        "listener name 'CONTROLLER' has no security protocol",
    );
}

#[test]
fn error_process_roles() {
    assert_error(
        &with(COMBINED, &[("process.roles", None)]),
        "process.roles",
        "is missing",
    );
    assert_error(
        &with(COMBINED, &[("process.roles", Some("broker,zookeeper"))]),
        "process.roles",
        "'zookeeper'",
    );
    assert_error(
        &with(COMBINED, &[("process.roles", Some("broker,broker"))]),
        "process.roles",
        "listed twice",
    );
}

#[test]
fn error_node_id() {
    assert_error(
        &with(COMBINED, &[("node.id", None)]),
        "node.id",
        "is missing",
    );
    assert_error(
        &with(COMBINED, &[("node.id", Some("-3"))]),
        "node.id",
        "-3 is negative",
    );
    assert_error(
        &with(COMBINED, &[("node.id", Some("one"))]),
        "node.id",
        "'one' is not a 32-bit integer",
    );
    assert_error(
        &with(COMBINED, &[("broker.id", Some("2"))]),
        "broker.id",
        "differs from node.id=1",
    );
    let c = load_ok(&with(
        COMBINED,
        &[("node.id", None), ("broker.id", Some("1"))],
    ));
    assert_eq!(c.node_id, 1);
}

#[test]
fn error_controller_not_in_voters() {
    let msg = assert_error(
        &with(
            COMBINED,
            &[(
                "controller.quorum.voters",
                Some("2@localhost:9093,3@h:9093"),
            )],
        ),
        "controller.quorum.voters",
        "node.id 1 has the controller role but is not among the voters [2, 3]",
    );
    assert!(msg.contains("Fix: add 1@<host>:<port>"), "{msg}");
    // With a dynamic quorum there is no voter list to check.
    load_ok(&with(
        COMBINED,
        &[
            ("controller.quorum.voters", None),
            (
                "controller.quorum.bootstrap.servers",
                Some("localhost:9093"),
            ),
        ],
    ));
}

#[test]
fn error_controller_listener_names() {
    assert_error(
        &with(
            COMBINED,
            &[
                ("controller.listener.names", None),
                (
                    "listener.security.protocol.map",
                    Some("PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT"),
                ),
            ],
        ),
        "controller.listener.names",
        "must be set when process.roles contains controller",
    );
    assert_error(
        &with(
            COMBINED,
            &[
                ("controller.listener.names", Some("QUORUM")),
                (
                    "listener.security.protocol.map",
                    Some("PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,QUORUM:PLAINTEXT"),
                ),
            ],
        ),
        "controller.listener.names",
        "'QUORUM' does not appear in listeners",
    );
}

const BROKER_ONLY: &str = "\
process.roles=broker
node.id=2
controller.quorum.voters=1@localhost:9093
listeners=PLAINTEXT://:9092
controller.listener.names=CONTROLLER
log.dirs=/tmp/kraftd-broker-logs
";

#[test]
fn broker_only_node() {
    let c = load_ok(BROKER_ONLY);
    assert!(c.is_broker() && !c.is_controller());
    assert_eq!(c.controller_listener_for_brokers(), Some("CONTROLLER"));
    assert_eq!(
        c.listener_security_protocol_map.get("CONTROLLER"),
        Some(&SecurityProtocol::Plaintext)
    );
    assert_error(
        &with(
            BROKER_ONLY,
            &[("listeners", Some("PLAINTEXT://:9092,CONTROLLER://:9093"))],
        ),
        "listeners",
        "'CONTROLLER' is a controller listener but this node has no controller role",
    );
    assert_error(
        &with(BROKER_ONLY, &[("node.id", Some("1"))]),
        "controller.quorum.voters",
        "node.id 1 is broker-only but is listed as a voter",
    );
    assert_error(
        &with(BROKER_ONLY, &[("controller.listener.names", None)]),
        "controller.listener.names",
        "must be set when process.roles=broker",
    );
    assert_error(
        &with(
            BROKER_ONLY,
            &[(
                "listener.security.protocol.map",
                Some("PLAINTEXT:PLAINTEXT"),
            )],
        ),
        "listener.security.protocol.map",
        "controller listener 'CONTROLLER' has no security protocol",
    );
    assert_error(
        &with(
            BROKER_ONLY,
            &[(
                "listener.security.protocol.map",
                Some("PLAINTEXT:PLAINTEXT,CONTROLLER:SSL"),
            )],
        ),
        "listener.security.protocol.map",
        "kraftd speaks only PLAINTEXT",
    );
}

#[test]
fn controller_only_node_rejects_broker_listeners() {
    let text = "\
process.roles=controller
node.id=1
controller.quorum.voters=1@localhost:9093
listeners=CONTROLLER://:9093,PLAINTEXT://:9092
controller.listener.names=CONTROLLER
";
    assert_error(
        text,
        "listeners",
        "'PLAINTEXT' is not a controller listener but process.roles=controller",
    );
}

#[test]
fn error_listener_syntax_and_duplicates() {
    assert_error(
        &with(
            COMBINED,
            &[("listeners", Some("PLAINTEXT:9092,CONTROLLER://:9093"))],
        ),
        "listeners",
        "cannot parse 'PLAINTEXT:9092'",
    );
    assert_error(
        &with(
            COMBINED,
            &[("listeners", Some("PLAINTEXT://:99999,CONTROLLER://:9093"))],
        ),
        "listeners",
        "port '99999'",
    );
    assert_error(
        &with(
            COMBINED,
            &[("listeners", Some("PLAINTEXT://:9092,CONTROLLER://:9092"))],
        ),
        "listeners",
        "port 9092 is used by listeners PLAINTEXT and CONTROLLER",
    );
    assert_error(
        &with(
            COMBINED,
            &[(
                "listeners",
                Some("PLAINTEXT://:9092,plaintext://:9094,CONTROLLER://:9093"),
            )],
        ),
        "listeners",
        "listener name 'PLAINTEXT' appears twice",
    );
    assert_error(
        &with(
            COMBINED,
            &[(
                "listeners",
                Some("PLAINTEXT://:9092,CLIENT://:9094,CONTROLLER://:9093"),
            )],
        ),
        "listeners",
        "listener name 'CLIENT' has no security protocol in listener.security.protocol.map",
    );
}

#[test]
fn error_tls_and_sasl_listeners_are_refused() {
    let msg = assert_error(
        &with(
            COMBINED,
            &[
                (
                    "listeners",
                    Some("PLAINTEXT://:9092,SSL://:9094,CONTROLLER://:9093"),
                ),
                (
                    "listener.security.protocol.map",
                    Some("PLAINTEXT:PLAINTEXT,SSL:SSL,CONTROLLER:PLAINTEXT"),
                ),
            ],
        ),
        "listeners",
        "listener 'SSL' uses SSL; kraftd serves only PLAINTEXT",
    );
    assert!(msg.contains("Fix: map SSL:PLAINTEXT"), "{msg}");
    assert_error(
        &with(
            COMBINED,
            &[
                (
                    "listeners",
                    Some("SASL_PLAINTEXT://:9092,CONTROLLER://:9093"),
                ),
                ("advertised.listeners", None),
                ("inter.broker.listener.name", Some("SASL_PLAINTEXT")),
                (
                    "listener.security.protocol.map",
                    Some("SASL_PLAINTEXT:SASL_PLAINTEXT,CONTROLLER:PLAINTEXT"),
                ),
            ],
        ),
        "listeners",
        "uses SASL_PLAINTEXT",
    );
}

#[test]
fn error_voters_syntax_names_the_entry() {
    for (value, part) in [
        (
            "1@localhost:9093,2localhost:9093",
            "entry '2localhost:9093' does not have exactly one '@'",
        ),
        (
            "x@localhost:9093",
            "entry 'x@localhost:9093' has a non-integer id",
        ),
        ("1@localhost", "entry '1@localhost' has no valid host:port"),
        ("1@0.0.0.0:9093", "non-routable"),
    ] {
        assert_error(
            &with(COMBINED, &[("controller.quorum.voters", Some(value))]),
            "controller.quorum.voters",
            part,
        );
    }
    assert_error(
        &with(
            COMBINED,
            &[
                ("controller.quorum.voters", None),
                ("controller.quorum.bootstrap.servers", Some("nohostport")),
            ],
        ),
        "controller.quorum.bootstrap.servers",
        "entry 'nohostport' is not host:port",
    );
    assert_error(
        &with(COMBINED, &[("controller.quorum.voters", None)]),
        "controller.quorum.voters",
        "neither controller.quorum.voters nor controller.quorum.bootstrap.servers is set",
    );
}

#[test]
fn error_inter_broker_listener() {
    assert_error(
        &with(
            COMBINED,
            &[("inter.broker.listener.name", Some("CONTROLLER"))],
        ),
        "inter.broker.listener.name",
        "'CONTROLLER' is not among the advertised broker listeners",
    );
    assert_error(
        &with(
            COMBINED,
            &[
                ("listeners", Some("CLIENT://:9092,CONTROLLER://:9093")),
                ("advertised.listeners", None),
                (
                    "listener.security.protocol.map",
                    Some("CLIENT:PLAINTEXT,CONTROLLER:PLAINTEXT"),
                ),
            ],
        ),
        "inter.broker.listener.name",
        "'PLAINTEXT' is not among the advertised broker listeners [\"CLIENT\"]",
    );
    assert_error(
        &with(
            COMBINED,
            &[("advertised.listeners", Some("PLAINTEXT://0.0.0.0:9092"))],
        ),
        "advertised.listeners",
        "non-routable address 0.0.0.0",
    );
}

#[test]
fn ssl_named_listener_disables_implicit_controller_mapping() {
    // Kafka adds CONTROLLER:PLAINTEXT to an unset map only when no listener is named SSL/SASL_*.
    assert_error(
        &with(
            COMBINED,
            &[(
                "listeners",
                Some("PLAINTEXT://:9092,SSL://:9094,CONTROLLER://:9093"),
            )],
        ),
        "listeners",
        "listener name 'CONTROLLER' has no security protocol",
    );
}

#[test]
fn error_bad_numbers_booleans_and_ranges() {
    let cases: &[(&str, &str, &str)] = &[
        ("message.max.bytes", "-1", "-1 is below the minimum 0"),
        (
            "log.segment.bytes",
            "1000",
            "1000 is below the minimum 1048576",
        ),
        ("num.partitions", "0", "0 is below the minimum 1"),
        (
            "offsets.topic.num.partitions",
            "0",
            "0 is below the minimum 1",
        ),
        (
            "offsets.topic.replication.factor",
            "70000",
            "'70000' is not a 16-bit integer",
        ),
        (
            "auto.create.topics.enable",
            "yes",
            "'yes' is not a boolean (true or false)",
        ),
        (
            "log.retention.bytes",
            "1GB",
            "'1GB' is not a 64-bit integer",
        ),
        (
            "log.cleanup.policy",
            "delete,archive",
            "'archive' is not one of compact, delete",
        ),
        ("compression.type", "brotli", "'brotli' is not one of"),
        (
            "log.cleaner.min.cleanable.ratio",
            "1.5",
            "1.5 is outside [0, 1]",
        ),
        ("log.retention.ms", "0", "a retention of 0 is not allowed"),
        ("log.roll.ms", "0", "0 ms is below 1"),
        (
            "replica.socket.timeout.ms",
            "100",
            "100 is below replica.fetch.wait.max.ms=500",
        ),
    ];
    for (key, value, part) in cases {
        let msg = assert_error(&with(COMBINED, &[(key, Some(value))]), key, part);
        assert!(msg.starts_with(&format!("{FILE}:8: {key}: ")), "{msg}");
    }
}

#[test]
fn first_bad_line_is_reported() {
    let text = with(
        COMBINED,
        &[
            ("num.partitions", Some("x")),
            ("message.max.bytes", Some("y")),
        ],
    );
    let err = load(&text).expect_err("refused");
    assert_eq!(err.key(), Some("num.partitions"));
    assert_eq!(err.line(), Some(8));
}

#[test]
fn properties_syntax_error_names_the_line() {
    let err = load("process.roles=broker\nnode.id=\\u00zz\n").expect_err("refused");
    assert_eq!(err.line(), Some(2));
    assert!(
        err.to_string().starts_with(&format!("{FILE}:2: malformed")),
        "{err}"
    );
    assert_eq!(err.key(), None);
}

#[test]
fn load_reads_a_file_and_reports_io_errors() {
    let dir = std::env::temp_dir().join(format!("kraftd-config-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("tmp dir");
    let path = dir.join("server.properties");
    std::fs::write(&path, COMBINED).expect("write");
    let c = ServerConfig::load(&path, &[]).expect("valid");
    assert_eq!(c.source(), path.as_path());
    let missing = dir.join("missing.properties");
    let err = ServerConfig::load(&missing, &[]).expect_err("missing");
    assert!(
        err.to_string()
            .starts_with(&format!("{}: cannot read the file", missing.display())),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).expect("cleanup");
}

/// Kafka's KRaft sample files (3.x config/kraft/*.properties and 4.x config/*.properties): every
/// key must be accepted without a warning.
#[test]
fn kafka_sample_files_load_without_warnings() {
    let kafka_combined = "\
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@localhost:9093
listeners=PLAINTEXT://:9092,CONTROLLER://:9093
inter.broker.listener.name=PLAINTEXT
advertised.listeners=PLAINTEXT://localhost:9092,CONTROLLER://localhost:9093
controller.listener.names=CONTROLLER
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,SSL:SSL,SASL_PLAINTEXT:SASL_PLAINTEXT,SASL_SSL:SASL_SSL
num.network.threads=3
num.io.threads=8
socket.send.buffer.bytes=102400
socket.receive.buffer.bytes=102400
socket.request.max.bytes=104857600
log.dirs=/tmp/kraft-combined-logs
num.partitions=1
num.recovery.threads.per.data.dir=1
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
#log.flush.interval.messages=10000
#log.flush.interval.ms=1000
log.retention.hours=168
#log.retention.bytes=1073741824
log.segment.bytes=1073741824
log.retention.check.interval.ms=300000
";
    let broker = "\
process.roles=broker
node.id=2
controller.quorum.bootstrap.servers=localhost:9093
listeners=PLAINTEXT://localhost:9092
inter.broker.listener.name=PLAINTEXT
advertised.listeners=PLAINTEXT://localhost:9092
controller.listener.names=CONTROLLER
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,SSL:SSL,SASL_PLAINTEXT:SASL_PLAINTEXT,SASL_SSL:SASL_SSL
log.dirs=/tmp/kraft-broker-logs
";
    let controller = "\
process.roles=controller
node.id=1
controller.quorum.bootstrap.servers=localhost:9093
listeners=CONTROLLER://:9093
advertised.listeners=CONTROLLER://localhost:9093
controller.listener.names=CONTROLLER
log.dirs=/tmp/kraft-controller-logs
";
    let tail: String = kafka_combined
        .lines()
        .skip(8)
        .map(|l| format!("{l}\n"))
        .collect();
    for text in [
        kafka_combined.to_owned(),
        format!("{broker}{tail}"),
        format!("{controller}{tail}"),
    ] {
        let c = load(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        let unexpected: Vec<_> = c
            .warnings
            .iter()
            .filter(|w| w.contains("unknown key"))
            .collect();
        assert!(unexpected.is_empty(), "{unexpected:?}");
    }
    let c = load_ok(kafka_combined);
    assert_eq!(c.offsets_topic_replication_factor, 1);
    assert_eq!(
        c.advertised_controller_listeners[0].host.as_deref(),
        Some("localhost")
    );
}

#[derive(Clone, Copy)]
enum Sample {
    Combined,
    Broker,
    Controller,
}

fn sample_settings(s: Sample) -> (&'static str, &'static [(&'static str, &'static str)]) {
    match s {
        Sample::Combined => (
            "A single node that is both broker and controller (combined mode).",
            &[
                ("process.roles", "broker,controller"),
                ("node.id", "1"),
                ("controller.quorum.voters", "1@localhost:9093"),
                ("controller.listener.names", "CONTROLLER"),
                ("listeners", "PLAINTEXT://:9092,CONTROLLER://:9093"),
                ("advertised.listeners", "PLAINTEXT://localhost:9092"),
                (
                    "listener.security.protocol.map",
                    "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
                ),
                ("inter.broker.listener.name", "PLAINTEXT"),
                ("log.dirs", "/tmp/kraftd-combined-logs"),
                ("offsets.topic.replication.factor", "1"),
                ("transaction.state.log.replication.factor", "1"),
                ("transaction.state.log.min.isr", "1"),
                ("share.coordinator.state.topic.replication.factor", "1"),
                ("share.coordinator.state.topic.min.isr", "1"),
            ],
        ),
        Sample::Broker => (
            "A broker-only node; it joins the quorum of controller.properties (node 1).",
            &[
                ("process.roles", "broker"),
                ("node.id", "2"),
                ("controller.quorum.voters", "1@localhost:9093"),
                ("controller.listener.names", "CONTROLLER"),
                ("listeners", "PLAINTEXT://:9092"),
                ("advertised.listeners", "PLAINTEXT://localhost:9092"),
                (
                    "listener.security.protocol.map",
                    "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
                ),
                ("inter.broker.listener.name", "PLAINTEXT"),
                ("log.dirs", "/tmp/kraftd-broker-logs"),
                ("offsets.topic.replication.factor", "1"),
                ("transaction.state.log.replication.factor", "1"),
                ("transaction.state.log.min.isr", "1"),
                ("share.coordinator.state.topic.replication.factor", "1"),
                ("share.coordinator.state.topic.min.isr", "1"),
            ],
        ),
        Sample::Controller => (
            "A controller-only node: a one-voter metadata quorum for broker.properties.",
            &[
                ("process.roles", "controller"),
                ("node.id", "1"),
                ("controller.quorum.voters", "1@localhost:9093"),
                ("controller.listener.names", "CONTROLLER"),
                ("listeners", "CONTROLLER://:9093"),
                ("advertised.listeners", "CONTROLLER://localhost:9093"),
                ("listener.security.protocol.map", "CONTROLLER:PLAINTEXT"),
                ("log.dirs", "/tmp/kraftd-controller-logs"),
            ],
        ),
    }
}

/// Renders a sample: the node's own settings active, every other key commented out at its
/// default, each with a comment saying what it does.
fn render_sample(s: Sample) -> String {
    let (title, settings) = sample_settings(s);
    let mut out = format!(
        "# kraftd sample configuration. {title}\n\
         # An ordinary Apache Kafka KRaft server.properties: Kafka's keys, Kafka 4.x defaults.\n\
         # Keys commented out are shown at their default. kraftd serves only PLAINTEXT listeners.\n\
         # Before the first start: kraftd storage format -t <cluster-id> -c <this file>\n"
    );
    for section in Section::ALL {
        out.push_str(&format!(
            "\n############################# {} #############################\n",
            section.title()
        ));
        for k in BROKER_KEYS.iter().filter(|k| k.section == section) {
            let default = match k.default {
                Some("") => "(empty)".to_owned(),
                Some(d) => d.to_owned(),
                None => "(none)".to_owned(),
            };
            out.push_str(&format!("\n# {} Default: {default}\n", k.doc));
            match settings.iter().find(|(n, _)| *n == k.name) {
                Some((_, v)) => out.push_str(&format!("{}={v}\n", k.name)),
                None => out.push_str(&format!("#{}={}\n", k.name, k.default.unwrap_or(""))),
            }
        }
    }
    out
}

fn check_shipped(path: &str, shipped: &str, expected: &str) {
    if std::env::var_os("KRAFTD_WRITE_SAMPLES").is_some() {
        std::fs::write(Path::new(env!("CARGO_MANIFEST_DIR")).join(path), expected)
            .expect("write sample");
        return;
    }
    assert_eq!(
        shipped, expected,
        "{path} is stale: rerun the tests with KRAFTD_WRITE_SAMPLES=1"
    );
}

#[test]
fn shipped_samples_are_current_and_valid() {
    for (s, path, shipped) in [
        (Sample::Combined, "config/server.properties", SAMPLE_SERVER),
        (Sample::Broker, "config/broker.properties", SAMPLE_BROKER),
        (
            Sample::Controller,
            "config/controller.properties",
            SAMPLE_CONTROLLER,
        ),
    ] {
        check_shipped(path, shipped, &render_sample(s));
        if std::env::var_os("KRAFTD_WRITE_SAMPLES").is_some() {
            continue;
        }
        let c =
            ServerConfig::from_str(shipped, Path::new(path), &[]).unwrap_or_else(|e| panic!("{e}"));
        let unknown: Vec<_> = c
            .warnings
            .iter()
            .filter(|w| w.contains("unknown"))
            .collect();
        assert!(unknown.is_empty(), "{unknown:?}");
    }
    if std::env::var_os("KRAFTD_WRITE_SAMPLES").is_some() {
        return;
    }
    let c =
        ServerConfig::from_str(SAMPLE_SERVER, Path::new("server.properties"), &[]).expect("valid");
    assert_eq!(c.node_id, 1);
    assert!(c.is_broker() && c.is_controller());
    assert_eq!(c.log_dirs, vec![PathBuf::from("/tmp/kraftd-combined-logs")]);
    assert_eq!(c.advertised_listeners[0].host.as_deref(), Some("localhost"));
    let b =
        ServerConfig::from_str(SAMPLE_BROKER, Path::new("broker.properties"), &[]).expect("valid");
    assert_eq!((b.node_id, b.is_controller()), (2, false));
    let ctl = ServerConfig::from_str(SAMPLE_CONTROLLER, Path::new("controller.properties"), &[])
        .expect("valid");
    assert_eq!((ctl.node_id, ctl.is_broker()), (1, false));
    // Every key kraftd knows appears in each sample.
    for k in BROKER_KEYS {
        for text in [SAMPLE_SERVER, SAMPLE_BROKER, SAMPLE_CONTROLLER] {
            assert!(
                text.contains(&format!("{}=", k.name)),
                "{} missing from a sample",
                k.name
            );
        }
    }
}

#[test]
fn config_md_is_current() {
    let shipped = include_str!("../../config/CONFIG.md");
    check_shipped(
        "config/CONFIG.md",
        shipped,
        &crate::config::defs::render_config_markdown(),
    );
}

#[test]
fn readme_carries_the_current_key_table() {
    let readme = include_str!("../../README.md");
    let table = crate::config::defs::render_config_markdown();
    let rows = table.lines().filter(|l| l.starts_with("| `"));
    for row in rows {
        assert!(
            readme.contains(row),
            "README.md is missing or has a stale row: {row}"
        );
    }
}
