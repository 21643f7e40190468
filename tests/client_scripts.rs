//! Real clients in other languages against the real binary: each test starts a node and runs one
//! script from tests/ that produces, reads back and asserts exact content (see each script's top
//! comment). A missing interpreter or package fails the test with the command that installs it
//! (all of them: `bash .ci/run`); nothing is skipped.

mod common;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::Node;

/// A script that takes longer than this is killed and the test fails.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(240);

const PIP_INSTALL: &str = "python3 -m pip install -r tests/python/requirements.txt";
const NPM_INSTALL: &str = "(cd tests/js && npm ci)";
const APT_INSTALL_KCAT: &str = "apt-get install -y kcat";

fn tests_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests")
}

/// Fails the test unless `program args` runs and exits 0, naming the command that installs it.
fn require(program: &str, args: &[&str], what: &str, install: &str) {
    let ok = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(
        ok,
        "{what} is missing: run `bash .ci/run` once, or install it with `{install}` (from the repo root)"
    );
}

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

/// Runs `program args` with a bounded time and asserts exit status 0; on failure the panic
/// message holds the script's stdout and stderr and the end of the node's log.
fn run_script(node: &Node, name: &str, program: &str, args: &[&str]) -> String {
    let out_path = node.dir.path().join(format!("{name}.stdout"));
    let err_path = node.dir.path().join(format!("{name}.stderr"));
    let started = Instant::now();
    let mut child = Command::new(program)
        .args(args)
        .current_dir(tests_dir().parent().expect("repo root"))
        .env("PYTHONDONTWRITEBYTECODE", "1")
        // cargo puts its build dirs on LD_LIBRARY_PATH, among them rdkafka-sys's librdkafka.so.1:
        // with it, Debian's kcat would load that newer librdkafka instead of its own 2.0.2.
        .env_remove("LD_LIBRARY_PATH")
        .stdin(Stdio::null())
        .stdout(File::create(&out_path).expect("stdout file"))
        .stderr(File::create(&err_path).expect("stderr file"))
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for script") {
            break Some(status);
        }
        if started.elapsed() > SCRIPT_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let stdout = std::fs::read_to_string(&out_path).unwrap_or_default();
    let stderr = std::fs::read_to_string(&err_path).unwrap_or_default();
    let verdict = match status {
        Some(s) if s.success() => {
            println!("{name}: {:.1?}: {}", started.elapsed(), stdout.trim_end());
            return stdout;
        }
        Some(s) => format!("exited with {s}"),
        None => format!("was killed after {SCRIPT_TIMEOUT:?}"),
    };
    let log = node.log();
    let log_tail: Vec<&str> = log.lines().rev().take(40).collect();
    panic!(
        "{name} ({program} {}) {verdict} after {:.1?}\n--- stdout:\n{stdout}\n--- stderr:\n{stderr}\n--- last lines of the kraftd log:\n{}",
        args.join(" "),
        started.elapsed(),
        log_tail.into_iter().rev().collect::<Vec<_>>().join("\n")
    );
}

fn script(rel: &str) -> String {
    tests_dir().join(rel).display().to_string()
}

#[test]
fn kafka_python_produces_every_codec_and_reads_back_exactly() {
    require_python_clients();
    let node = Node::start(&[]);
    let out = run_script(
        &node,
        "check_kafka_python",
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
        "bash",
        &[&script("kcat.sh"), &node.bootstrap()],
    );
    assert!(out.contains("kcat OK"), "no summary line in:\n{out}");
}
