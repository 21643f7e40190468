//! `start --daemon`, like `kafka-server-start.sh -daemon`: re-run ourselves detached in a new
//! session with output to the log file, and return 0 only once the child reports that it serves
//! (over a pipe). If the child dies first, its last log line is the error.

use std::io::Read;
use std::os::unix::io::FromRawFd;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};

use super::StartArgs;

pub(crate) fn spawn(args: &StartArgs) -> Result<(), String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find own executable: {e}"))?;
    let child_args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--daemon" && a != "--daemon-mode")
        .collect();
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&args.log_file)
        .map_err(|e| format!("--log-file {}: {e}", args.log_file.display()))?;
    let log_err = log
        .try_clone()
        .map_err(|e| format!("--log-file {}: {e}", args.log_file.display()))?;
    let mut fds = [0i32; 2];
    // SAFETY: plain pipe(2) into a local array.
    if unsafe { libc::pipe(fds.as_mut_ptr()) } != 0 {
        return Err(format!(
            "cannot create a pipe: {}",
            std::io::Error::last_os_error()
        ));
    }
    let (read_fd, write_fd) = (fds[0], fds[1]);
    let pid_file = std::path::absolute(&args.pid_file).unwrap_or(args.pid_file.clone());
    let mut cmd = Command::new(exe);
    cmd.args(&child_args)
        .env("KRAFTD_READY_FD", write_fd.to_string())
        .env("KRAFTD_PID_FILE", &pid_file)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log_err);
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            libc::setsid();
            libc::close(read_fd);
            Ok(())
        });
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot start the daemon: {e}"))?;
    // SAFETY: we own write_fd and no longer need it in the parent.
    unsafe {
        libc::close(write_fd);
    }
    // SAFETY: read_fd is ours; File takes ownership and closes it.
    let mut pipe = unsafe { std::fs::File::from_raw_fd(read_fd) };
    let mut buf = String::new();
    let _ = pipe.read_to_string(&mut buf);
    if buf.starts_with("READY") {
        std::fs::write(&pid_file, format!("{}\n", child.id()))
            .map_err(|e| format!("--pid-file {}: {e}", pid_file.display()))?;
        println!(
            "kraftd started in the background (pid {}); log: {}; pid file: {}",
            child.id(),
            args.log_file.display(),
            pid_file.display()
        );
        return Ok(());
    }
    let status = child.wait().ok();
    let last = std::fs::read_to_string(&args.log_file)
        .ok()
        .and_then(|t| {
            t.lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .map(String::from)
        })
        .unwrap_or_default();
    Err(format!(
        "the daemon exited before serving ({}); last log line: {last}",
        status
            .map(|s| s.to_string())
            .unwrap_or_else(|| "unknown status".into())
    ))
}
