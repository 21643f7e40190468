//! The `kraftd` command line against the real binary: `version`, `storage random-uuid | format |
//! info`, `start` failures (one line: where, which key, the fix), `--daemon`, and clean shutdown
//! on SIGTERM / SIGINT.

mod common;

use std::io::Read;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use common::{free_port, kraftd_bin, run_kraftd};

/// A failing `start` must give up within this.
const FAIL_FAST: Duration = Duration::from_secs(10);
/// A signalled node must be gone within this.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// A single combined node's config in a temp dir, not started. Line numbers of the base config
/// are fixed (see `BASE_LINES`) so tests can name the line an error must point at.
struct Setup {
    dir: tempfile::TempDir,
    client_port: u16,
    controller_port: u16,
    config_path: PathBuf,
}

/// Line of each key in `Setup::base_lines`.
const LINE_PROCESS_ROLES: u32 = 1;
const LINE_VOTERS: u32 = 3;
const LINE_LISTENERS: u32 = 4;
const LINE_CONTROLLER_LISTENER_NAMES: u32 = 6;
/// The first line `extra` / `replace` additions land on.
const LINE_FIRST_EXTRA: u32 = 8;

impl Setup {
    fn new() -> Setup {
        let dir = tempfile::tempdir().expect("tempdir");
        let config_path = dir.path().join("server.properties");
        Setup {
            dir,
            client_port: free_port(),
            controller_port: free_port(),
            config_path,
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn data_dir(&self) -> PathBuf {
        self.path("data")
    }

    /// (key, value) in file order; line N is entry N-1.
    fn base_lines(&self) -> Vec<(String, String)> {
        let (c, k) = (self.client_port, self.controller_port);
        [
            ("process.roles", "broker,controller".to_string()),
            ("node.id", "1".to_string()),
            ("controller.quorum.voters", format!("1@127.0.0.1:{k}")),
            (
                "listeners",
                format!("PLAINTEXT://127.0.0.1:{c},CONTROLLER://127.0.0.1:{k}"),
            ),
            ("advertised.listeners", format!("PLAINTEXT://127.0.0.1:{c}")),
            ("controller.listener.names", "CONTROLLER".to_string()),
            ("log.dirs", self.data_dir().display().to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }

    /// Writes the base config with `replace` substituted in place (a `None` value drops the line,
    /// shifting later lines up) and `extra` appended from line `LINE_FIRST_EXTRA`.
    fn write(&self, replace: &[(&str, Option<&str>)], extra: &[(&str, &str)]) -> &Path {
        let mut text = String::new();
        for (k, v) in self.base_lines() {
            match replace.iter().find(|(rk, _)| *rk == k) {
                Some((_, None)) => {}
                Some((_, Some(nv))) => text.push_str(&format!("{k}={nv}\n")),
                None => text.push_str(&format!("{k}={v}\n")),
            }
        }
        for (k, v) in extra {
            text.push_str(&format!("{k}={v}\n"));
        }
        std::fs::write(&self.config_path, text).expect("write config");
        &self.config_path
    }

    fn config(&self) -> &str {
        self.config_path.to_str().expect("utf-8 path")
    }
}

/// Runs `kraftd <args>` with a deadline: a command that hangs instead of failing is a failure.
fn run_bounded(args: &[&str], timeout: Duration) -> (i32, String, String, Duration) {
    let started = Instant::now();
    let mut child = Command::new(kraftd_bin())
        .args(args)
        .env("KRAFTD_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn kraftd");
    let mut out = child.stdout.take().expect("stdout");
    let mut err = child.stderr.take().expect("stderr");
    let out_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        if started.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            panic!("kraftd {args:?} still running after {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let elapsed = started.elapsed();
    (
        status.code().unwrap_or(-1),
        out_reader.join().expect("stdout reader"),
        err_reader.join().expect("stderr reader"),
        elapsed,
    )
}

/// The fatal line `kraftd: <message>` that the command line prints on stderr.
fn fatal_line(stderr: &str) -> &str {
    let lines: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("kraftd: "))
        .collect();
    assert_eq!(
        lines.len(),
        1,
        "expected exactly one 'kraftd: ' line on stderr, got:\n{stderr}"
    );
    lines[0]
}

/// `start -c <config>` must exit 1 within seconds; returns its fatal line.
fn start_fails(setup: &Setup, extra_args: &[&str]) -> String {
    let mut args = vec!["start", "-c", setup.config()];
    args.extend_from_slice(extra_args);
    let (code, _out, err, elapsed) = run_bounded(&args, FAIL_FAST);
    assert_eq!(code, 1, "start must exit 1; stderr:\n{err}");
    assert!(elapsed < FAIL_FAST, "took {elapsed:?}");
    fatal_line(&err).to_string()
}

/// Asserts `line` is `kraftd: <file>:<line>: <key>: ... Fix: ...`.
fn assert_config_error(line: &str, setup: &Setup, file_line: u32, key: &str, problem: &str) {
    let prefix = format!("kraftd: {}:{file_line}: {key}: ", setup.config());
    assert!(
        line.starts_with(&prefix),
        "expected the line to start with {prefix:?}, got {line:?}"
    );
    assert!(line.contains(problem), "expected {problem:?} in {line:?}");
    assert!(line.contains(". Fix: "), "no fix in {line:?}");
}

fn read_meta(dir: &Path) -> Vec<(String, String)> {
    let text = std::fs::read_to_string(dir.join("meta.properties"))
        .unwrap_or_else(|e| panic!("{}/meta.properties: {e}", dir.display()));
    let mut kv: Vec<(String, String)> = text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let (k, v) = l.split_once('=').expect("key=value");
            (k.to_string(), v.to_string())
        })
        .collect();
    kv.sort();
    kv
}

fn meta_value(meta: &[(String, String)], key: &str) -> String {
    meta.iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.clone())
        .unwrap_or_else(|| panic!("no {key} in {meta:?}"))
}

fn decode_kafka_uuid(id: &str) -> Vec<u8> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(id)
        .unwrap_or_else(|e| panic!("{id:?} is not URL-safe base64: {e}"))
}

fn random_uuid() -> String {
    let (code, out, err) = run_kraftd(&["storage", "random-uuid"]);
    assert_eq!(code, 0, "random-uuid failed: {err}");
    out.trim_end().to_string()
}

fn format_ok(setup: &Setup, cluster_id: &str) -> String {
    let (code, out, err) =
        run_kraftd(&["storage", "format", "-t", cluster_id, "-c", setup.config()]);
    assert_eq!(code, 0, "format failed:\n{out}\n{err}");
    out
}

// ---- version, random-uuid ----

#[test]
fn version_prints_name_and_semver() {
    let (code, out, err) = run_kraftd(&["version"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, format!("kraftd {}\n", env!("CARGO_PKG_VERSION")));
    let semver = out.trim_end().strip_prefix("kraftd ").expect("prefix");
    let parts: Vec<&str> = semver.split('.').collect();
    assert_eq!(parts.len(), 3, "{semver} is not MAJOR.MINOR.PATCH");
    for p in parts {
        let numeric = p.split(['-', '+']).next().unwrap_or("");
        assert!(
            numeric.parse::<u64>().is_ok(),
            "{semver}: '{p}' is not a number"
        );
    }
}

#[test]
fn random_uuid_is_22_url_safe_chars_of_16_bytes_and_fresh_each_call() {
    let mut seen = Vec::new();
    for _ in 0..5 {
        let (code, out, err) = run_kraftd(&["storage", "random-uuid"]);
        assert_eq!(code, 0, "{err}");
        assert!(out.ends_with('\n') && out.lines().count() == 1, "{out:?}");
        let id = out.trim_end().to_string();
        assert_eq!(id.len(), 22, "{id:?}");
        assert!(
            id.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
            "{id:?} has characters outside URL-safe base64"
        );
        assert_eq!(decode_kafka_uuid(&id).len(), 16, "{id:?}");
        assert!(!seen.contains(&id), "{id} repeated");
        seen.push(id);
    }
}

// ---- storage format ----

#[test]
fn format_writes_meta_properties_into_every_log_dir_and_the_metadata_dir() {
    let setup = Setup::new();
    let (a, b, meta) = (
        setup.path("logs-a"),
        setup.path("logs-b"),
        setup.path("metadata"),
    );
    let log_dirs = format!("{},{}", a.display(), b.display());
    let meta_dir = meta.display().to_string();
    // node.id=7 must be a voter.
    let voters = format!("7@127.0.0.1:{}", setup.controller_port);
    setup.write(
        &[
            ("log.dirs", Some(&log_dirs)),
            ("node.id", Some("7")),
            ("controller.quorum.voters", Some(&voters)),
        ],
        &[("metadata.log.dir", &meta_dir)],
    );
    let cluster_id = random_uuid();
    let out = format_ok(&setup, &cluster_id);
    for d in [&a, &b, &meta] {
        assert!(
            out.lines()
                .any(|l| l == format!("Formatting {}", d.display())),
            "no 'Formatting {}' line in:\n{out}",
            d.display()
        );
    }
    assert_eq!(
        out.lines().filter(|l| l.starts_with("Formatting ")).count(),
        3,
        "{out}"
    );
    let mut directory_ids = Vec::new();
    for d in [&a, &b, &meta] {
        let m = read_meta(d);
        let keys: Vec<&str> = m.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            keys,
            ["cluster.id", "directory.id", "node.id", "version"],
            "{}: {m:?}",
            d.display()
        );
        assert_eq!(meta_value(&m, "version"), "1");
        assert_eq!(meta_value(&m, "node.id"), "7");
        assert_eq!(meta_value(&m, "cluster.id"), cluster_id);
        let dir_id = meta_value(&m, "directory.id");
        assert_eq!(decode_kafka_uuid(&dir_id).len(), 16, "{dir_id}");
        assert!(!directory_ids.contains(&dir_id), "directory.id repeated");
        directory_ids.push(dir_id);
    }

    // Again: refused, naming the way out; nothing rewritten.
    let before = read_meta(&a);
    let (code, out, err) =
        run_kraftd(&["storage", "format", "-t", &cluster_id, "-c", setup.config()]);
    assert_eq!(code, 1, "{out}{err}");
    let line = fatal_line(&err);
    assert!(line.contains("already formatted"), "{line}");
    assert!(line.contains("--ignore-formatted"), "{line}");
    assert!(line.contains(&a.display().to_string()), "{line}");
    assert_eq!(read_meta(&a), before);

    // With --ignore-formatted: 0, and still nothing rewritten.
    let (code, out, err) = run_kraftd(&[
        "storage",
        "format",
        "-t",
        &cluster_id,
        "-c",
        setup.config(),
        "--ignore-formatted",
    ]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(out, "All of the log directories are already formatted.\n");
    assert_eq!(read_meta(&a), before);
}

#[test]
fn format_with_ignore_formatted_formats_only_the_new_dir() {
    let setup = Setup::new();
    setup.write(&[], &[]);
    let cluster_id = random_uuid();
    format_ok(&setup, &cluster_id);
    let before = read_meta(&setup.data_dir());
    let extra = setup.path("data2");
    let dirs = format!("{},{}", setup.data_dir().display(), extra.display());
    setup.write(&[("log.dirs", Some(&dirs))], &[]);
    let (code, out, err) = run_kraftd(&[
        "storage",
        "format",
        "-t",
        &cluster_id,
        "-c",
        setup.config(),
        "--ignore-formatted",
    ]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(out, format!("Formatting {}\n", extra.display()));
    assert_eq!(read_meta(&setup.data_dir()), before);
    assert_eq!(meta_value(&read_meta(&extra), "cluster.id"), cluster_id);
}

#[test]
fn format_rejects_an_invalid_cluster_id_by_name() {
    let setup = Setup::new();
    setup.write(&[], &[]);
    for bad in [
        "not-a-uuid",
        "abc!defghijklmnopqrstu",
        "AAAAAAAAAAAAAAAAAAAAAAAA",
    ] {
        let (code, out, err) = run_kraftd(&["storage", "format", "-t", bad, "-c", setup.config()]);
        assert_eq!(code, 1, "{bad}: {out}{err}");
        let line = fatal_line(&err);
        assert!(line.contains(&format!("'{bad}'")), "{line}");
        assert!(line.contains("random-uuid"), "{line}");
        assert!(
            !setup.data_dir().join("meta.properties").exists(),
            "{bad} wrote meta.properties"
        );
    }
}

// ---- storage info ----

#[test]
fn info_shows_formatted_dirs_and_reports_node_id_mismatch_and_unformatted_dir() {
    let setup = Setup::new();
    setup.write(&[], &[]);
    let cluster_id = random_uuid();
    format_ok(&setup, &cluster_id);
    let data = setup.data_dir().display().to_string();

    let (code, out, err) = run_kraftd(&["storage", "info", "-c", setup.config()]);
    assert_eq!(code, 0, "{out}{err}");
    let m = read_meta(&setup.data_dir());
    // Without metadata.log.dir the first log dir holds the metadata log, as in Kafka.
    let want = format!(
        "{data} (metadata log dir): formatted: cluster.id={cluster_id} node.id=1 directory.id={} version=1",
        meta_value(&m, "directory.id")
    );
    assert!(out.lines().any(|l| l == want), "no {want:?} in:\n{out}");
    assert!(out.contains("Found no problems."), "{out}");

    // The config now says node.id=2 (and a second, unformatted log dir).
    let voters = format!("2@127.0.0.1:{}", setup.controller_port);
    let new_dir = setup.path("fresh");
    let dirs = format!("{data},{}", new_dir.display());
    setup.write(
        &[
            ("node.id", Some("2")),
            ("controller.quorum.voters", Some(&voters)),
            ("log.dirs", Some(&dirs)),
        ],
        &[],
    );
    let (code, out, err) = run_kraftd(&["storage", "info", "-c", setup.config()]);
    assert_eq!(code, 1, "{out}{err}");
    let mismatch = format!(
        "Problem: {data}: node.id=1 differs from node.id=2 in {}",
        setup.config()
    );
    assert!(
        out.lines().any(|l| l == mismatch),
        "no {mismatch:?} in:\n{out}"
    );
    let unformatted = format!("Problem: {} is not formatted", new_dir.display());
    assert!(
        out.lines().any(|l| l == unformatted),
        "no {unformatted:?} in:\n{out}"
    );
    assert!(
        out.lines()
            .any(|l| l == format!("{} (log dir): not formatted", new_dir.display())),
        "{out}"
    );
    assert_eq!(fatal_line(&err), "kraftd: 2 problem(s) found");
}

// ---- start: refusals ----

#[test]
fn start_on_unformatted_dirs_fails_fast_with_the_format_command() {
    let setup = Setup::new();
    setup.write(&[], &[]);
    let line = start_fails(&setup, &[]);
    assert!(
        line.contains(&format!(
            "log directory {} is not formatted",
            setup.data_dir().display()
        )),
        "{line}"
    );
    assert!(line.contains("kraftd storage format -t"), "{line}");
    assert!(line.contains(&format!("-c {}", setup.config())), "{line}");
    assert!(line.contains("Fix: "), "{line}");
    assert!(!setup.data_dir().join("meta.properties").exists());
}

#[test]
fn start_refuses_dirs_formatted_for_another_node_id() {
    let setup = Setup::new();
    setup.write(&[], &[]);
    format_ok(&setup, &random_uuid());
    let voters = format!("3@127.0.0.1:{}", setup.controller_port);
    setup.write(
        &[
            ("node.id", Some("3")),
            ("controller.quorum.voters", Some(&voters)),
        ],
        &[],
    );
    let line = start_fails(&setup, &[]);
    assert!(
        line.contains("node.id=1") && line.contains("node.id=3") && line.contains("Fix: "),
        "{line}"
    );
}

/// STYLE.md: "A fatal error at start prints one line".
#[test]
fn a_fatal_start_error_is_exactly_one_stderr_line() {
    let setup = Setup::new();
    setup.write(&[("node.id", None)], &[]);
    let (code, _out, err, _) = run_bounded(&["start", "-c", setup.config()], FAIL_FAST);
    assert_eq!(code, 1);
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "stderr:\n{err}");
}

#[test]
fn start_config_error_missing_node_id() {
    let setup = Setup::new();
    setup.write(&[("node.id", None)], &[]);
    let line = start_fails(&setup, &[]);
    // Absent keys have no line to point at: "<file>: node.id: ...".
    let prefix = format!("kraftd: {}: node.id: ", setup.config());
    assert!(line.starts_with(&prefix), "{line}");
    assert!(
        line.contains("missing") && line.contains(". Fix: "),
        "{line}"
    );
}

#[test]
fn start_config_error_bad_process_roles() {
    let setup = Setup::new();
    setup.write(&[("process.roles", Some("broker,bogus"))], &[]);
    let line = start_fails(&setup, &[]);
    assert_config_error(
        &line,
        &setup,
        LINE_PROCESS_ROLES,
        "process.roles",
        "'bogus'",
    );
}

#[test]
fn start_config_error_voter_syntax() {
    let setup = Setup::new();
    setup.write(&[("controller.quorum.voters", Some("1@127.0.0.1"))], &[]);
    let line = start_fails(&setup, &[]);
    assert_config_error(
        &line,
        &setup,
        LINE_VOTERS,
        "controller.quorum.voters",
        "'1@127.0.0.1'",
    );
}

#[test]
fn start_config_error_node_id_not_a_voter() {
    let setup = Setup::new();
    let voters = format!("2@127.0.0.1:{}", setup.controller_port);
    setup.write(&[("controller.quorum.voters", Some(&voters))], &[]);
    let line = start_fails(&setup, &[]);
    assert_config_error(
        &line,
        &setup,
        LINE_VOTERS,
        "controller.quorum.voters",
        "node.id 1",
    );
}

#[test]
fn start_config_error_controller_listener_missing_from_listeners() {
    let setup = Setup::new();
    let listeners = format!("PLAINTEXT://127.0.0.1:{}", setup.client_port);
    setup.write(&[("listeners", Some(&listeners))], &[]);
    let line = start_fails(&setup, &[]);
    assert_config_error(
        &line,
        &setup,
        LINE_CONTROLLER_LISTENER_NAMES,
        "controller.listener.names",
        "'CONTROLLER' does not appear in listeners",
    );
}

#[test]
fn start_config_error_duplicate_ports() {
    let setup = Setup::new();
    let p = setup.controller_port;
    let listeners = format!("PLAINTEXT://127.0.0.1:{p},CONTROLLER://127.0.0.1:{p}");
    setup.write(&[("listeners", Some(&listeners))], &[]);
    let line = start_fails(&setup, &[]);
    assert_config_error(
        &line,
        &setup,
        LINE_LISTENERS,
        "listeners",
        &format!("port {p}"),
    );
}

#[test]
fn start_config_error_non_numeric_num_partitions() {
    let setup = Setup::new();
    setup.write(&[], &[("num.partitions", "abc")]);
    let line = start_fails(&setup, &[]);
    assert_config_error(&line, &setup, LINE_FIRST_EXTRA, "num.partitions", "'abc'");
}

#[test]
fn start_config_error_ssl_listener() {
    let setup = Setup::new();
    let listeners = format!(
        "SSL://127.0.0.1:{},CONTROLLER://127.0.0.1:{}",
        setup.client_port, setup.controller_port
    );
    let advertised = format!("SSL://127.0.0.1:{}", setup.client_port);
    setup.write(
        &[
            ("listeners", Some(&listeners)),
            ("advertised.listeners", Some(&advertised)),
        ],
        &[
            (
                "listener.security.protocol.map",
                "CONTROLLER:PLAINTEXT,SSL:SSL",
            ),
            ("inter.broker.listener.name", "SSL"),
        ],
    );
    let line = start_fails(&setup, &[]);
    assert_config_error(&line, &setup, LINE_LISTENERS, "listeners", "'SSL' uses SSL");
    assert!(line.contains("PLAINTEXT"), "{line}");
}

#[test]
fn start_config_error_from_override_names_override() {
    let setup = Setup::new();
    setup.write(&[], &[]);
    let line = start_fails(&setup, &["--override", "num.partitions=abc"]);
    let prefix = format!("kraftd: {}: --override num.partitions: ", setup.config());
    assert!(line.starts_with(&prefix), "{line}");
    assert!(line.contains("'abc'") && line.contains(". Fix: "), "{line}");

    let line = start_fails(&setup, &["--override", "novalue"]);
    assert!(
        line.contains("--override novalue") && line.contains("Fix: "),
        "{line}"
    );
}

#[test]
fn unknown_key_is_a_warning_and_the_node_still_starts() {
    let mut node = common::Node::start(&[("no.such.key", "1")]);
    // The common Node's base config has 7 lines; the extra key is line 8.
    let want = format!(
        "{}:8: unknown key 'no.such.key' ignored",
        node.config_path.display()
    );
    let log = node.log();
    assert!(
        log.lines()
            .any(|l| l.contains(" WARN ") && l.contains(&want)),
        "no warning {want:?} in:\n{log}"
    );
    TcpStream::connect(("127.0.0.1", node.client_port)).expect("client port serves");
    let status = node.stop();
    assert_eq!(status.code(), Some(0));
}

// ---- daemon ----

fn pid_alive(pid: i32) -> bool {
    // A zombie (exited, not yet reaped by whoever adopted it) counts as gone.
    // SAFETY: kill(2) with signal 0 only checks for existence.
    if unsafe { libc::kill(pid, 0) } != 0 {
        return false;
    }
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(") ")
            .map(|(_, rest)| !rest.starts_with('Z'))
            .unwrap_or(true),
        Err(_) => false,
    }
}

/// Kills a daemon left behind by a failing test.
struct DaemonGuard(i32);

impl Drop for DaemonGuard {
    fn drop(&mut self) {
        if self.0 > 0 && pid_alive(self.0) {
            // SAFETY: kill(2) on the daemon this test started.
            unsafe {
                libc::kill(self.0, libc::SIGKILL);
            }
        }
    }
}

#[test]
fn daemon_returns_once_serving_and_stops_cleanly_on_sigterm() {
    let setup = Setup::new();
    setup.write(&[], &[]);
    format_ok(&setup, &random_uuid());
    let pid_file = setup.path("kraftd.pid");
    let log_file = setup.path("kraftd.log");
    let (code, out, err, elapsed) = run_bounded(
        &[
            "start",
            "-c",
            setup.config(),
            "--daemon",
            "--pid-file",
            pid_file.to_str().unwrap(),
            "--log-file",
            log_file.to_str().unwrap(),
        ],
        common::START_TIMEOUT,
    );
    // Connect before anything else: the daemon must already serve when start returns.
    let connected = TcpStream::connect(("127.0.0.1", setup.client_port));
    let pid_text = std::fs::read_to_string(&pid_file).unwrap_or_default();
    let pid: i32 = pid_text.trim().parse().unwrap_or(0);
    let _guard = DaemonGuard(pid);
    assert_eq!(
        code, 0,
        "daemon start failed after {elapsed:?}:\n{out}\n{err}"
    );
    connected.expect("client port accepts right after start --daemon returns");
    TcpStream::connect(("127.0.0.1", setup.controller_port)).expect("controller port accepts");
    assert_eq!(pid_text, format!("{pid}\n"), "pid file");
    assert!(pid > 1 && pid_alive(pid), "pid {pid} is not alive");
    assert!(out.contains(&format!("pid {pid}")), "{out}");
    let log = std::fs::read_to_string(&log_file).unwrap_or_default();
    assert!(log.contains("kraftd started"), "{log}");

    // SAFETY: kill(2) on the daemon this test started.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    let deadline = Instant::now() + STOP_TIMEOUT;
    while pid_alive(pid) {
        assert!(
            Instant::now() < deadline,
            "daemon {pid} still alive {STOP_TIMEOUT:?} after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let log = std::fs::read_to_string(&log_file).unwrap_or_default();
    assert!(log.contains("received SIGTERM"), "{log}");
    assert!(log.contains("shut down cleanly"), "{log}");
    assert!(!log.contains("panicked"), "{log}");
    assert!(!pid_file.exists(), "a clean stop removes the pid file");
}

#[test]
fn daemon_with_a_bad_config_fails_and_prints_the_error_line() {
    let setup = Setup::new();
    setup.write(&[], &[("num.partitions", "abc")]);
    let pid_file = setup.path("kraftd.pid");
    let log_file = setup.path("kraftd.log");
    let (code, out, err, _) = run_bounded(
        &[
            "start",
            "-c",
            setup.config(),
            "--daemon",
            "--pid-file",
            pid_file.to_str().unwrap(),
            "--log-file",
            log_file.to_str().unwrap(),
        ],
        FAIL_FAST,
    );
    assert_ne!(code, 0, "{out}{err}");
    let line = fatal_line(&err);
    let want = format!(
        "{}:{LINE_FIRST_EXTRA}: num.partitions: 'abc'",
        setup.config()
    );
    assert!(line.contains(&want), "expected {want:?} in {line:?}");
    assert!(line.contains("Fix: "), "{line}");
    assert!(
        !pid_file.exists(),
        "no pid file for a daemon that never served"
    );
}

// ---- foreground shutdown ----

/// A foreground `kraftd start` whose pid we hold, so we can send it any signal.
struct Foreground {
    setup: Setup,
    log_path: PathBuf,
    child: Child,
}

impl Foreground {
    fn start() -> Foreground {
        let setup = Setup::new();
        setup.write(&[], &[]);
        let log_path = setup.path("kraftd.stderr");
        let log = std::fs::File::create(&log_path).expect("log file");
        let mut child = Command::new(kraftd_bin())
            .args(["start", "-c", setup.config(), "--auto-format"])
            .env("KRAFTD_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn kraftd");
        let deadline = Instant::now() + common::START_TIMEOUT;
        loop {
            let text = std::fs::read_to_string(&log_path).unwrap_or_default();
            if text.contains("kraftd started") {
                break;
            }
            if let Some(status) = child.try_wait().expect("wait") {
                panic!("kraftd exited during start ({status}):\n{text}");
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("kraftd did not start:\n{text}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Foreground {
            setup,
            log_path,
            child,
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// Sends `sig` and returns (exit code, time to exit).
    fn signal_and_wait(&mut self, sig: i32) -> (Option<i32>, Duration) {
        // SAFETY: kill(2) on our own child.
        assert_eq!(unsafe { libc::kill(self.child.id() as i32, sig) }, 0);
        let sent = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return (status.code(), sent.elapsed());
            }
            if sent.elapsed() > STOP_TIMEOUT {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!(
                    "kraftd still running {STOP_TIMEOUT:?} after signal {sig}:\n{}",
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Foreground {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn assert_clean_stop_on(sig: i32, name: &str) {
    let mut node = Foreground::start();
    // An open client connection must not hold the shutdown up.
    let _idle = TcpStream::connect(("127.0.0.1", node.setup.client_port)).expect("connect");
    let (code, took) = node.signal_and_wait(sig);
    let log = node.log();
    assert_eq!(code, Some(0), "exit after {name}:\n{log}");
    assert!(took < STOP_TIMEOUT, "{took:?}");
    assert!(log.contains(&format!("received {name}")), "{log}");
    assert!(log.contains("shut down cleanly"), "{log}");
    assert!(!log.contains("panicked"), "{log}");
    assert!(
        TcpStream::connect(("127.0.0.1", node.setup.client_port)).is_err(),
        "client port still accepting after exit"
    );
}

#[test]
fn sigterm_stops_a_foreground_node_cleanly() {
    assert_clean_stop_on(libc::SIGTERM, "SIGTERM");
}

#[test]
fn sigint_stops_a_foreground_node_cleanly() {
    assert_clean_stop_on(libc::SIGINT, "SIGINT");
}

// ---- systemd ----

/// Type=notify: kraftd tells $NOTIFY_SOCKET READY=1 once it serves and STOPPING=1 when a clean
/// shutdown begins, as config/kraftd.service expects.
#[test]
fn systemd_notify_ready_then_stopping() {
    use std::os::unix::net::UnixDatagram;
    let setup = Setup::new();
    setup.write(&[], &[]);
    let socket_path = setup.path("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).expect("bind notify socket");
    socket
        .set_read_timeout(Some(common::START_TIMEOUT))
        .expect("timeout");
    let log = std::fs::File::create(setup.path("kraftd.stderr")).expect("log");
    let mut child = Command::new(kraftd_bin())
        .args(["start", "-c", setup.config(), "--auto-format"])
        .env("NOTIFY_SOCKET", &socket_path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("spawn kraftd");
    let mut buf = [0u8; 64];
    let n = socket
        .recv(&mut buf)
        .expect("READY=1 within the start timeout");
    assert_eq!(&buf[..n], b"READY=1");
    // Ready means serving: the client port answers now.
    TcpStream::connect(("127.0.0.1", setup.client_port)).expect("client port serves");
    // SAFETY: SIGTERM to our own child.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    let n = socket.recv(&mut buf).expect("STOPPING=1");
    assert_eq!(&buf[..n], b"STOPPING=1");
    let deadline = Instant::now() + STOP_TIMEOUT;
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            assert_eq!(status.code(), Some(0));
            break;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("kraftd did not exit after SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

// ---- metadata dump ----

#[test]
fn metadata_dump_prints_the_metadata_log_as_records() {
    let mut node = common::Node::start(&[]);
    assert!(node.stop().success());
    let (code, out, err) =
        common::run_kraftd(&["metadata", "dump", "-c", node.config_path.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert!(
        lines[0].starts_with("# ") && lines[0].ends_with("00000000000000000000.log"),
        "{out}"
    );
    assert!(
        out.contains("  0: LeaderChange(leaderId=1, voters=[1])"),
        "{out}"
    );
    assert!(
        out.contains("FeatureLevelRecord(name=metadata.version, featureLevel=21)"),
        "{out}"
    );
    assert!(out.contains("RegisterBrokerRecord(brokerId=1,"), "{out}");
    // Unfenced as Kafka does from metadata.version 3.3-IV2 on.
    assert!(
        out.contains("BrokerRegistrationChangeRecord(brokerId=1, brokerEpoch=3, fenced=-1,"),
        "{out}"
    );
    // Offsets are printed in order, each once.
    let offsets: Vec<i64> = lines
        .iter()
        .filter_map(|l| l.strip_prefix("  "))
        .filter_map(|l| l.split(':').next()?.parse().ok())
        .collect();
    assert_eq!(offsets, (0..offsets.len() as i64).collect::<Vec<_>>());
}
