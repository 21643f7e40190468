//! Classic consumer groups with real clients in other languages: each test starts a node and runs
//! one script that forms groups, consumes, commits, resumes and administers them, asserting exact
//! partitions, offsets, values and group states (see each script's top comment). A missing
//! interpreter or package fails the test with the command that installs it (all of them:
//! `bash .ci/run`); nothing is skipped.

mod common;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::Node;

const PIP_INSTALL: &str = "python3 -m pip install -r tests/python/requirements.txt";
const NPM_INSTALL: &str = "(cd tests/js && npm ci)";

fn tests_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests")
}

fn script(rel: &str) -> String {
    tests_dir().join(rel).display().to_string()
}

/// A node whose first rebalance of a group does not wait: Kafka's sample configs set this to 0
/// for development, and the default 3 s would only slow every test here down.
fn node() -> Node {
    Node::start(&[("group.initial.rebalance.delay.ms", "0")])
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

/// Runs `program args` for at most `timeout` and asserts exit status 0; on failure the panic
/// message holds the script's stdout and stderr and the end of the node's log. The script runs in
/// its own process group, so a timeout also kills the member processes it started.
fn run_script(node: &Node, name: &str, timeout: Duration, program: &str, args: &[&str]) -> String {
    use std::os::unix::process::CommandExt;

    let out_path = node.dir.path().join(format!("{name}.stdout"));
    let err_path = node.dir.path().join(format!("{name}.stderr"));
    let started = Instant::now();
    let mut child = Command::new(program)
        .args(args)
        .current_dir(tests_dir().parent().expect("repo root"))
        .env("PYTHONDONTWRITEBYTECODE", "1")
        // cargo's LD_LIBRARY_PATH holds rdkafka-sys's librdkafka; the scripts use their own.
        .env_remove("LD_LIBRARY_PATH")
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(File::create(&out_path).expect("stdout file"))
        .stderr(File::create(&err_path).expect("stderr file"))
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for script") {
            break Some(status);
        }
        if started.elapsed() > timeout {
            // SAFETY: kill(2) on the process group of our own child (its pid, see process_group).
            unsafe {
                libc::kill(-(child.id() as i32), libc::SIGKILL);
            }
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
        None => format!("was killed after {timeout:?}"),
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
