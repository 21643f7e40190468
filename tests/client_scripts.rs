//! Real clients in other languages against the real binary: each test starts a node and runs one
//! script from tests/ that produces, reads back and asserts exact content (see each script's top
//! comment). A missing interpreter or package fails the test with the command that installs it
//! (all of them: `bash .ci/run`); nothing is skipped.

mod common;

use std::time::Duration;

use common::Node;
use common::scripts::{NPM_INSTALL, PIP_INSTALL, require, run_script, script, tests_dir};

/// A script that takes longer than this is killed and the test fails.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(240);

const APT_INSTALL_KCAT: &str = "apt-get install -y kcat";

fn require_python_clients() {
    require(
        "python3",
        &["--version"],
        "python3",
        "apt-get install -y python3 python3-pip",
    );
    require(
        "python3",
        &[
            "-c",
            "import kafka, confluent_kafka, snappy, lz4.frame, zstandard",
        ],
        "the Python client packages (kafka-python, confluent-kafka, python-snappy, lz4, zstandard)",
        PIP_INSTALL,
    );
}

#[test]
fn kafka_python_produces_every_codec_and_reads_back_exactly() {
    require_python_clients();
    let node = Node::start(&[]);
    let out = run_script(
        &node,
        "check_kafka_python",
        SCRIPT_TIMEOUT,
        "python3",
        &[&script("python/check_kafka_python.py"), &node.bootstrap()],
    );
    assert!(
        out.contains("kafka-python OK"),
        "no summary line in:\n{out}"
    );
}

#[test]
fn confluent_kafka_produces_every_codec_and_reads_back_exactly() {
    require_python_clients();
    let node = Node::start(&[]);
    let out = run_script(
        &node,
        "check_confluent_kafka",
        SCRIPT_TIMEOUT,
        "python3",
        &[
            &script("python/check_confluent_kafka.py"),
            &node.bootstrap(),
        ],
    );
    assert!(
        out.contains("confluent-kafka OK"),
        "no summary line in:\n{out}"
    );
}

#[test]
fn kafkajs_produces_idempotently_and_reads_back_exactly() {
    // kafkajs reads back through tests/python/read_topic.py (kafka-python), so both are needed.
    require_python_clients();
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
    let node = Node::start(&[]);
    let out = run_script(
        &node,
        "check_kafkajs",
        SCRIPT_TIMEOUT,
        "node",
        &[&script("js/check_kafkajs.js"), &node.bootstrap()],
    );
    assert!(out.contains("kafkajs OK"), "no summary line in:\n{out}");
}

#[test]
fn kcat_lists_produces_and_consumes_exactly() {
    require("bash", &["--version"], "bash", "apt-get install -y bash");
    require("kcat", &["-V"], "kcat", APT_INSTALL_KCAT);
    let node = Node::start(&[]);
    let out = run_script(
        &node,
        "kcat",
        SCRIPT_TIMEOUT,
        "bash",
        &[&script("kcat.sh"), &node.bootstrap()],
    );
    assert!(out.contains("kcat OK"), "no summary line in:\n{out}");
}
