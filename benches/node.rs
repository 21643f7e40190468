//! Whole-node figures for the README, measured on this machine in one run:
//!   - time from `kraftd start` to the client port answering ApiVersions,
//!   - resident memory of an idle started node,
//!   - produce and consume MB/s of 1 KiB records with librdkafka (the `rdkafka` crate) on loopback.
//!
//! Run: `cargo bench --bench node` (uses the release binary; add `-- --records N` to change the
//! load). Prints one line per figure; nothing here asserts a timing.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::{Offset, TopicPartitionList};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

fn kraftd() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let status = Command::new("cargo")
        .args(["build", "--release", "--bin", "kraftd"])
        .current_dir(root)
        .status()
        .expect("cargo build");
    assert!(status.success(), "release build failed");
    root.join("target/release/kraftd")
}

struct Node {
    child: Child,
    port: u16,
}

impl Drop for Node {
    fn drop(&mut self) {
        // SAFETY: SIGTERM to our own child.
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        let _ = self.child.wait();
    }
}

fn write_config(dir: &Path, port: u16, cport: u16) -> PathBuf {
    let cfg = dir.join("server.properties");
    std::fs::write(
        &cfg,
        format!(
            "process.roles=broker,controller\nnode.id=1\ncontroller.quorum.voters=1@127.0.0.1:{cport}\n\
             listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{cport}\n\
             advertised.listeners=PLAINTEXT://127.0.0.1:{port}\ncontroller.listener.names=CONTROLLER\n\
             log.dirs={}\n",
            dir.join("data").display()
        ),
    )
    .expect("config");
    cfg
}

/// One ApiVersions v0 round trip; true when answered.
fn api_versions(port: u16) -> bool {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(1)));
    // size=10, api_key=18, version=0, correlation_id=7, client_id=null
    let req = [0, 0, 0, 10, 0, 18, 0, 0, 0, 0, 0, 7, 0xff, 0xff];
    if s.write_all(&req).is_err() {
        return false;
    }
    let mut head = [0u8; 8];
    s.read_exact(&mut head).is_ok() && head[4..8] == [0, 0, 0, 7]
}

fn start(bin: &Path, cfg: &Path, port: u16) -> (Node, Duration) {
    let t0 = Instant::now();
    let child = Command::new(bin)
        .args(["start", "-c"])
        .arg(cfg)
        .arg("--auto-format")
        .env("KRAFTD_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    while !api_versions(port) {
        assert!(t0.elapsed() < Duration::from_secs(30), "node did not start");
        std::thread::sleep(Duration::from_micros(200));
    }
    (Node { child, port }, t0.elapsed())
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn main() {
    let records: usize = std::env::args()
        .skip_while(|a| a != "--records")
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000);
    let bin = kraftd();

    // Startup: a fresh (auto-formatted) node, then a restart on the same data.
    let mut fresh = Vec::new();
    let mut warm = Vec::new();
    for _ in 0..7 {
        let dir = tempfile::tempdir().expect("tempdir");
        let (port, cport) = (free_port(), free_port());
        let cfg = write_config(dir.path(), port, cport);
        let (node, t) = start(&bin, &cfg, port);
        fresh.push(t);
        drop(node);
        let (node, t) = start(&bin, &cfg, port);
        warm.push(t);
        drop(node);
    }
    println!(
        "startup to ApiVersions answered: fresh dir median {:.1} ms (min {:.1}), restart median {:.1} ms (min {:.1})",
        ms(median(fresh.clone())),
        ms(*fresh.iter().min().expect("runs")),
        ms(median(warm.clone())),
        ms(*warm.iter().min().expect("runs")),
    );

    let dir = tempfile::tempdir().expect("tempdir");
    let (port, cport) = (free_port(), free_port());
    let cfg = write_config(dir.path(), port, cport);
    let (node, _) = start(&bin, &cfg, port);
    std::thread::sleep(Duration::from_secs(1));
    println!("idle RSS after start: {} KiB", rss_kib(node.child.id()));

    let bootstrap = format!("127.0.0.1:{}", node.port);
    let value = vec![b'x'; 1024];
    for acks in ["1", "all"] {
        let topic = format!("bench-acks-{acks}");
        let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
            .set("bootstrap.servers", &bootstrap)
            .set("acks", acks)
            .set("linger.ms", "5")
            .set("batch.size", "1000000")
            .set("queue.buffering.max.kbytes", "1048576")
            .set("queue.buffering.max.messages", "1000000")
            .create()
            .expect("producer");
        let t0 = Instant::now();
        for i in 0..records {
            let key = (i as u64).to_be_bytes();
            let mut rec = BaseRecord::to(&topic).key(&key[..]).payload(&value[..]);
            loop {
                match producer.send(rec) {
                    Ok(()) => break,
                    Err((_, r)) => {
                        rec = r;
                        std::thread::sleep(Duration::from_millis(1));
                    }
                }
            }
        }
        producer.flush(Duration::from_secs(120)).expect("flush");
        let secs = t0.elapsed().as_secs_f64();
        println!(
            "produce 1 KiB records, acks={acks}: {:.1} MB/s ({:.0} records/s, {records} records)",
            records as f64 * 1024.0 / secs / 1e6,
            records as f64 / secs
        );
    }

    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("group.id", "bench")
        .set("enable.auto.commit", "false")
        .set("fetch.max.bytes", "52428800")
        .set("max.partition.fetch.bytes", "10485760")
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset("bench-acks-1", 0, Offset::Beginning)
        .expect("tpl");
    consumer.assign(&tpl).expect("assign");
    let t0 = Instant::now();
    let mut n = 0usize;
    let mut bytes = 0usize;
    while n < records {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) {
            n += 1;
            bytes += m.payload().map(|p| p.len()).unwrap_or(0);
        }
        assert!(
            t0.elapsed() < Duration::from_secs(300),
            "consume stalled at {n}"
        );
    }
    let secs = t0.elapsed().as_secs_f64();
    println!(
        "consume 1 KiB records: {:.1} MB/s ({:.0} records/s)",
        bytes as f64 / secs / 1e6,
        n as f64 / secs
    );
}
