//! Starts the real `kraftd` binary on loopback with free ports in a temp dir, and stops it.
#![allow(dead_code)]

pub mod cluster;
pub mod scripts;

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

pub const START_TIMEOUT: Duration = Duration::from_secs(30);

/// A port free on loopback now, for a node to bind later. Picked below Linux's ephemeral range
/// (32768 and up): a port the kernel hands out for port 0 can be taken, before the node binds
/// it, as the source port of any outgoing connection (a client of another test), which then
/// fails the start with "Address already in use". Spread over the range by a per-process seed,
/// and never handed out twice by one process.
pub fn free_port() -> u16 {
    use std::sync::OnceLock;
    use std::sync::atomic::{AtomicU32, Ordering};
    const LOW: u32 = 15_000;
    // 17,000 ports; a step coprime with it visits each once.
    const SPAN: u32 = 17_000;
    const STEP: u32 = 997;
    static SEED: OnceLock<u32> = OnceLock::new();
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let seed = *SEED.get_or_init(|| {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        std::process::id().wrapping_mul(7919) ^ nanos
    });
    for _ in 0..SPAN {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = LOW + seed.wrapping_add(n.wrapping_mul(STEP)) % SPAN;
        if TcpListener::bind(("127.0.0.1", port as u16)).is_ok() {
            return port as u16;
        }
    }
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("no free port")
}

pub fn kraftd_bin() -> &'static str {
    env!("CARGO_BIN_EXE_kraftd")
}

pub struct Node {
    pub dir: tempfile::TempDir,
    pub client_port: u16,
    pub controller_port: u16,
    pub config_path: PathBuf,
    pub log_path: PathBuf,
    child: Option<Child>,
}

impl Node {
    /// A node whose config text the caller wrote (see `cluster`); not yet launched.
    pub fn prepare(
        dir: tempfile::TempDir,
        client_port: u16,
        controller_port: u16,
        config_text: &str,
    ) -> Node {
        let config_path = dir.path().join("server.properties");
        std::fs::write(&config_path, config_text).expect("write config");
        let log_path = dir.path().join("kraftd.stderr");
        Node {
            dir,
            client_port,
            controller_port,
            config_path,
            log_path,
            child: None,
        }
    }

    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| c.try_wait().ok().flatten().is_none())
    }

    /// Sends SIGTERM without waiting (to stop several nodes at once).
    pub fn terminate(&self) {
        self.signal(libc::SIGTERM);
    }

    /// Waits (bounded) for a node told to stop to exit.
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        self.wait(timeout)
    }

    /// A combined broker+controller single node with `extra` keys appended to its config.
    pub fn start(extra: &[(&str, &str)]) -> Node {
        let dir = tempfile::tempdir().expect("tempdir");
        let client_port = free_port();
        let controller_port = free_port();
        let config_path = dir.path().join("server.properties");
        let mut text = format!(
            "process.roles=broker,controller\nnode.id=1\n\
             controller.quorum.voters=1@127.0.0.1:{controller_port}\n\
             listeners=PLAINTEXT://127.0.0.1:{client_port},CONTROLLER://127.0.0.1:{controller_port}\n\
             advertised.listeners=PLAINTEXT://127.0.0.1:{client_port}\n\
             controller.listener.names=CONTROLLER\n\
             log.dirs={}\n",
            dir.path().join("data").display()
        );
        for (k, v) in extra {
            text.push_str(&format!("{k}={v}\n"));
        }
        std::fs::write(&config_path, text).expect("write config");
        let log_path = dir.path().join("kraftd.stderr");
        let mut node = Node {
            dir,
            client_port,
            controller_port,
            config_path,
            log_path,
            child: None,
        };
        node.launch(&["--auto-format"]);
        node
    }

    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.client_port)
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Runs `kraftd start` and waits for its "kraftd started" line.
    pub fn launch(&mut self, args: &[&str]) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_path)
            .expect("log file");
        let start_len = std::fs::metadata(&self.log_path)
            .map(|m| m.len())
            .unwrap_or(0);
        let child = Command::new(kraftd_bin())
            .arg("start")
            .arg("-c")
            .arg(&self.config_path)
            .args(args)
            .env("KRAFTD_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn kraftd");
        self.child = Some(child);
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let text = std::fs::read_to_string(&self.log_path).unwrap_or_default();
            let new = text.get(start_len as usize..).unwrap_or("");
            if new.contains("kraftd started") {
                return;
            }
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!("kraftd exited during start ({status}):\n{new}");
            }
            if Instant::now() > deadline {
                panic!("kraftd did not start in {START_TIMEOUT:?}:\n{new}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    fn signal(&self, sig: i32) {
        if let Some(c) = &self.child {
            // SAFETY: kill(2) on our own child's pid.
            unsafe {
                libc::kill(c.id() as i32, sig);
            }
        }
    }

    /// SIGTERM and wait (bounded) for the exit status.
    pub fn stop(&mut self) -> ExitStatus {
        self.signal(libc::SIGTERM);
        self.wait(Duration::from_secs(20))
    }

    pub fn kill(&mut self) {
        self.signal(libc::SIGKILL);
        let _ = self.wait(Duration::from_secs(10));
    }

    /// SIGSTOP: the process stays, silent (no fetches, no heartbeats), until `resume`.
    pub fn pause(&self) {
        self.signal(libc::SIGSTOP);
    }

    pub fn resume(&self) {
        self.signal(libc::SIGCONT);
    }

    fn wait(&mut self, timeout: Duration) -> ExitStatus {
        let mut child = self.child.take().expect("not running");
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = child.try_wait().expect("wait") {
                return status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("kraftd did not exit within {timeout:?}:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn restart(&mut self) {
        let status = self.stop();
        assert!(status.success(), "clean stop exits 0, got {status}");
        self.launch(&[]);
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Runs `kraftd <args>` to completion and returns (exit code, stdout, stderr).
pub fn run_kraftd(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(kraftd_bin())
        .args(args)
        .output()
        .expect("run kraftd");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

pub fn read_lines(path: &Path) -> Vec<String> {
    std::fs::File::open(path)
        .map(|f| BufReader::new(f).lines().map_while(Result::ok).collect())
        .unwrap_or_default()
}
