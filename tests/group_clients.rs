//! Classic consumer groups with real clients in other languages: each test starts a node and runs
//! one script that forms groups, consumes, commits, resumes and administers them, asserting exact
//! partitions, offsets, values and group states (see each script's top comment). A missing
//! interpreter or package fails the test with the command that installs it (all of them:
//! `bash .ci/run`); nothing is skipped.

mod common;

use std::time::Duration;

use common::Node;
use common::scripts::{NPM_INSTALL, PIP_INSTALL, require, run_script, script, tests_dir};

/// A node whose first rebalance of a group does not wait: Kafka's sample configs set this to 0
/// for development, and the default 3 s would only slow every test here down.
fn node() -> Node {
    Node::start(&[("group.initial.rebalance.delay.ms", "0")])
}

fn require_python_module(module: &str, package: &str) {
    require(
        "python3",
        &["--version"],
        "python3",
        "apt-get install -y python3 python3-pip",
    );
    require(
        "python3",
        &["-c", &format!("import {module}")],
        &format!("the Python package {package}"),
        PIP_INSTALL,
    );
}

fn require_kafkajs() {
    require(
        "node",
        &["--version"],
        "node",
        "apt-get install -y nodejs npm",
    );
    let kafkajs = tests_dir().join("js/node_modules/kafkajs/package.json");
    assert!(
        kafkajs.exists(),
        "kafkajs is not installed in tests/js: run `bash .ci/run` once, or `{NPM_INSTALL}` (from the repo root)"
    );
}

/// Three librdkafka member processes split 6 partitions; one is SIGKILLed and the survivors take
/// its partitions within session.timeout.ms and read every later record exactly once.
fn confluent_kafka_survivors_take_over(strategy: &str) {
    require_python_module("confluent_kafka", "confluent-kafka");
    // KIP-848 members get their session timeout and heartbeat interval from the broker.
    let node = Node::start(&[
        ("group.initial.rebalance.delay.ms", "0"),
        ("group.consumer.min.session.timeout.ms", "1000"),
        ("group.consumer.session.timeout.ms", "6000"),
        ("group.consumer.min.heartbeat.interval.ms", "100"),
        ("group.consumer.heartbeat.interval.ms", "500"),
    ]);
    let out = run_script(
        &node,
        &format!("group_confluent_kafka_{strategy}"),
        Duration::from_secs(60),
        "python3",
        &[
            &script("python/group_confluent_kafka.py"),
            &node.bootstrap(),
            strategy,
        ],
    );
    assert!(
        out.contains("confluent-kafka groups OK"),
        "no summary line in:\n{out}"
    );
}

#[test]
fn confluent_kafka_eager_survivors_take_over_a_killed_members_partitions() {
    confluent_kafka_survivors_take_over("range");
}

#[test]
fn confluent_kafka_cooperative_survivors_keep_theirs_and_gain_a_killed_members_partitions() {
    confluent_kafka_survivors_take_over("cooperative-sticky");
}

/// The same with KIP-848 (group.protocol=consumer): server-side assignment, and the coordinator
/// expires the killed member after group.consumer.session.timeout.ms.
#[test]
fn confluent_kafka_kip848_survivors_keep_theirs_and_gain_a_killed_members_partitions() {
    confluent_kafka_survivors_take_over("consumer");
}

#[test]
fn kafka_python_group_commits_resumes_and_is_administered() {
    require_python_module("kafka", "kafka-python");
    let node = node();
    let out = run_script(
        &node,
        "group_kafka_python",
        Duration::from_secs(60),
        "python3",
        &[&script("python/group_kafka_python.py"), &node.bootstrap()],
    );
    assert!(
        out.contains("kafka-python groups OK"),
        "no summary line in:\n{out}"
    );
}

#[test]
fn aiokafka_group_resumes_at_the_commit_after_a_restart() {
    require_python_module("aiokafka", "aiokafka");
    let node = node();
    let out = run_script(
        &node,
        "group_aiokafka",
        Duration::from_secs(60),
        "python3",
        &[&script("python/group_aiokafka.py"), &node.bootstrap()],
    );
    assert!(
        out.contains("aiokafka groups OK"),
        "no summary line in:\n{out}"
    );
}

#[test]
fn kafkajs_group_reads_everything_once_resumes_and_is_administered() {
    require_kafkajs();
    let node = node();
    let out = run_script(
        &node,
        "group_kafkajs",
        Duration::from_secs(60),
        "node",
        &[&script("js/group_kafkajs.js"), &node.bootstrap()],
    );
    assert!(
        out.contains("kafkajs groups OK"),
        "no summary line in:\n{out}"
    );
}
