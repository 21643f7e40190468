//! Running the client scripts under tests/ (Python, Node, shell) against a node: bounded in
//! time, in their own process group, failing loudly with the command that installs what is
//! missing.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::Node;

pub const PIP_INSTALL: &str = "python3 -m pip install -r tests/python/requirements.txt";
pub const NPM_INSTALL: &str = "(cd tests/js && npm ci)";

pub fn tests_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests")
}

pub fn script(rel: &str) -> String {
    tests_dir().join(rel).display().to_string()
}

/// Fails the test unless `program args` runs and exits 0, naming the command that installs it.
pub fn require(program: &str, args: &[&str], what: &str, install: &str) {
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

/// Runs `program args` for at most `timeout` and asserts exit status 0; on failure the panic
/// message holds the script's stdout and stderr and the end of the node's log. The script runs in
/// its own process group, so a timeout also kills the member processes it started.
pub fn run_script(
    node: &Node,
    name: &str,
    timeout: Duration,
    program: &str,
    args: &[&str],
) -> String {
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
