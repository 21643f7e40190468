//! kraftd-bench: a load tool for any Kafka-compatible server, built on librdkafka.
//!
//!   produce  send fixed-size records; throughput and send -> ack latency
//!   consume  read a topic from the beginning (manual assignment, no consumer group)
//!   e2e      produce and consume at once; latency from the send time embedded in each value
//!
//! A progress line goes to stderr once per second; the summary goes to stdout (`--json` for one
//! JSON object). Latencies go into fixed-size histograms, so memory does not grow with the run.

mod clients;
mod histogram;
mod stats;
mod topic;

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand, ValueEnum};
use rdkafka::Offset;
use rdkafka::config::ClientConfig;
use serde_json::json;

use clients::{ConsumerJob, Limit, ProducerJob, TIMESTAMP_LEN};
use stats::{Stats, ms};

/// Default length of a produce or e2e run when neither --records nor --duration is given.
const DEFAULT_DURATION: Duration = Duration::from_secs(30);
/// A consumer that sees nothing new for this long after the producers finished (e2e) or at
/// all (consume) stops: the records it waits for are not coming.
const IDLE_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Parser)]
#[command(
    name = "kraftd-bench",
    version,
    about = "Load tool for Kafka-compatible servers"
)]
struct Cli {
    #[command(subcommand)]
    mode: Mode,
}

#[derive(Subcommand)]
enum Mode {
    /// Produce records; report throughput and send -> ack latency.
    Produce(Args),
    /// Consume a topic from the beginning; report throughput.
    Consume(Args),
    /// Produce and consume at once; report produce -> consume latency.
    E2e(Args),
}

#[derive(Clone, Copy, ValueEnum)]
enum Compression {
    None,
    Gzip,
    Snappy,
    Lz4,
    Zstd,
}

impl Compression {
    fn name(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Snappy => "snappy",
            Compression::Lz4 => "lz4",
            Compression::Zstd => "zstd",
        }
    }
}

#[derive(clap::Args, Clone)]
struct Args {
    /// Bootstrap server(s), HOST:PORT[,HOST:PORT...].
    #[arg(long, short = 'b', value_name = "HOST:PORT")]
    bootstrap_server: String,
    #[arg(long, short = 't', default_value = "kraftd-bench")]
    topic: String,
    /// Bytes of each record's value (no key).
    #[arg(long, default_value_t = 1024)]
    record_size: usize,
    /// Records to produce (or to consume); split evenly over the producers.
    #[arg(long, conflicts_with = "duration")]
    records: Option<u64>,
    /// How long to produce (or consume): e.g. 30s, 500ms, 2m. Default for produce/e2e: 30s;
    /// consume reads what the topic held at the start.
    #[arg(long, value_parser = parse_duration)]
    duration: Option<Duration>,
    /// Partitions of the topic when it has to be created (an existing topic keeps its own).
    #[arg(long, default_value_t = 6)]
    partitions: i32,
    /// Replication factor when creating the topic; -1 = the broker's default.
    #[arg(long, default_value_t = -1, allow_hyphen_values = true)]
    replication_factor: i32,
    #[arg(long, default_value = "all", value_parser = ["all", "-1", "1", "0"])]
    acks: String,
    #[arg(long, value_enum, default_value_t = Compression::None)]
    compression: Compression,
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..))]
    producers: u16,
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..))]
    consumers: u16,
    /// Target records per second over all producers; 0 = unlimited.
    #[arg(long, default_value_t = 0)]
    rate: u64,
    #[arg(long, default_value_t = 5)]
    linger_ms: u64,
    /// Producer batch.size in bytes (librdkafka's default when absent).
    #[arg(long)]
    batch_size: Option<u64>,
    /// Any librdkafka property for every client, e.g. -X fetch.max.bytes=52428800.
    #[arg(short = 'X', long = "property", value_name = "KEY=VALUE", value_parser = parse_property)]
    properties: Vec<(String, String)>,
    /// Print the summary as one JSON object on stdout.
    #[arg(long)]
    json: bool,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("'{s}' is not a duration like 30s, 500ms or 2m"))?;
    let secs = match unit {
        "" | "s" => n,
        "ms" => n / 1e3,
        "m" | "min" => n * 60.0,
        "h" => n * 3600.0,
        _ => return Err(format!("unknown unit '{unit}' in '{s}' (ms, s, m, h)")),
    };
    Duration::try_from_secs_f64(secs).map_err(|e| format!("'{s}': {e}"))
}

fn parse_property(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!("'{s}' is not KEY=VALUE")),
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Produce,
    Consume,
    E2e,
}

fn base_config(args: &Args) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &args.bootstrap_server);
    for (k, v) in &args.properties {
        c.set(k, v);
    }
    c
}

fn producer_config(args: &Args) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &args.bootstrap_server)
        .set("acks", &args.acks)
        .set("compression.type", args.compression.name())
        .set("linger.ms", args.linger_ms.to_string());
    if let Some(b) = args.batch_size {
        c.set("batch.size", b.to_string());
    }
    for (k, v) in &args.properties {
        c.set(k, v);
    }
    c
}

fn consumer_config(args: &Args) -> ClientConfig {
    let mut c = ClientConfig::new();
    // librdkafka's consumer wants a group.id even for assign(); no group is joined and no
    // offset is committed, so it need not exist on the server.
    c.set("bootstrap.servers", &args.bootstrap_server)
        .set("group.id", "kraftd-bench")
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("enable.partition.eof", "false");
    for (k, v) in &args.properties {
        c.set(k, v);
    }
    c
}

struct Run {
    kind: Kind,
    args: Args,
    partitions: i32,
    produced: Arc<Stats>,
    consumed: Arc<Stats>,
    stop: Arc<AtomicBool>,
    producers: Vec<JoinHandle<Result<u64, String>>>,
    consumers: Vec<JoinHandle<Result<(), String>>>,
}

fn start_producers(run: &mut Run, limit_total: Option<u64>, until: Option<Instant>) {
    let args = &run.args;
    let n = u64::from(args.producers);
    let pool = Arc::new(clients::payload_pool(args.record_size));
    run.produced.mark_started();
    for i in 0..n {
        let limit = match (limit_total, until) {
            (Some(total), _) => Limit::Records(total / n + u64::from(i < total % n)),
            (None, Some(t)) => Limit::Until(t),
            (None, None) => Limit::Until(Instant::now() + DEFAULT_DURATION),
        };
        let job = ProducerJob {
            config: producer_config(args),
            topic: args.topic.clone(),
            partitions: run.partitions,
            first_partition: (i as i32) % run.partitions,
            record_size: args.record_size,
            limit,
            rate: args.rate as f64 / n as f64,
            embed_timestamp: run.kind == Kind::E2e,
            pool: pool.clone(),
            stats: run.produced.clone(),
            stop: run.stop.clone(),
        };
        run.producers
            .push(std::thread::spawn(move || clients::run_producer(job)));
    }
}

fn start_consumers(run: &mut Run, starts: &[Offset]) {
    let args = &run.args;
    let n = usize::from(args.consumers).min(starts.len().max(1));
    run.consumed.mark_started();
    for c in 0..n {
        let assignment = starts
            .iter()
            .enumerate()
            .filter(|(p, _)| p % n == c)
            .map(|(p, o)| (p as i32, *o))
            .collect();
        let job = ConsumerJob {
            config: consumer_config(args),
            topic: args.topic.clone(),
            assignment,
            embedded_timestamp: run.kind == Kind::E2e,
            stats: run.consumed.clone(),
            stop: run.stop.clone(),
        };
        run.consumers
            .push(std::thread::spawn(move || clients::run_consumer(job)));
    }
}

fn progress(name: &str, s: &Stats, prev: &mut (u64, u64), dt: f64) -> String {
    let i = s.take_interval();
    let (dr, db) = (i.records - prev.0, i.bytes - prev.1);
    *prev = (i.records, i.bytes);
    let mut line = format!(
        "{name} {:>9.0} rec/s {:>7.1} MB/s",
        dr as f64 / dt,
        db as f64 / dt / 1e6
    );
    if i.has_latency {
        line.push_str(&format!(
            " p50 {:.2} p99 {:.2} max {:.2} ms",
            ms(i.p50_ns),
            ms(i.p99_ns),
            ms(i.max_ns)
        ));
    }
    line.push_str(&format!(" (total {})", i.records));
    line
}

fn run(kind: Kind, args: Args) -> Result<(), String> {
    if kind == Kind::E2e && args.record_size < TIMESTAMP_LEN {
        return Err(format!(
            "e2e needs --record-size >= {TIMESTAMP_LEN} (the send time is embedded)"
        ));
    }
    if args.partitions < 1 {
        return Err("--partitions must be at least 1".into());
    }
    let admin = base_config(&args);
    let partitions = match kind {
        Kind::Consume => topic::wait_for_leaders(&admin, &args.topic)?,
        _ => topic::ensure_topic(
            &admin,
            &args.topic,
            args.partitions,
            args.replication_factor,
        )?,
    };
    let epoch = Instant::now();
    let mut run = Run {
        kind,
        args: args.clone(),
        partitions,
        produced: Arc::new(Stats::new(epoch)),
        consumed: Arc::new(Stats::new(epoch)),
        stop: Arc::new(AtomicBool::new(false)),
        producers: Vec::new(),
        consumers: Vec::new(),
    };
    let until = args.duration.map(|d| Instant::now() + d);
    let mut consume_target = None;
    match kind {
        Kind::Produce => start_producers(&mut run, args.records, until),
        Kind::Consume => {
            let marks = topic::watermarks(&admin, &args.topic, partitions)?;
            consume_target = match (args.records, args.duration) {
                (Some(n), _) => Some(n),
                (None, Some(_)) => None,
                (None, None) => Some(marks.iter().map(|(lo, hi)| (hi - lo).max(0) as u64).sum()),
            };
            let starts = vec![Offset::Beginning; partitions as usize];
            start_consumers(&mut run, &starts);
        }
        Kind::E2e => {
            // Start exactly at today's end (not Offset::End, which the client resolves later
            // and could land after the first records produced).
            let marks = topic::watermarks(&admin, &args.topic, partitions)?;
            let starts: Vec<Offset> = marks.iter().map(|(_, hi)| Offset::Offset(*hi)).collect();
            start_consumers(&mut run, &starts);
            start_producers(&mut run, args.records, until);
        }
    }

    let begun = Instant::now();
    let mut next_tick = begun + Duration::from_secs(1);
    let mut last_tick = begun;
    let (mut prev_p, mut prev_c) = ((0, 0), (0, 0));
    let mut last_progress = (Instant::now(), 0u64);
    let mut producers_done_at: Option<Instant> = None;
    loop {
        std::thread::sleep(Duration::from_millis(20));
        let now = Instant::now();
        if now >= next_tick {
            let dt = (now - last_tick).as_secs_f64();
            let t = (now - begun).as_secs_f64();
            let mut line = format!("{t:6.1}s");
            if kind != Kind::Consume {
                line.push(' ');
                line.push_str(&progress("produce", &run.produced, &mut prev_p, dt));
            }
            if kind != Kind::Produce {
                let name = if kind == Kind::E2e {
                    " | e2e"
                } else {
                    " consume"
                };
                line.push_str(&progress(name, &run.consumed, &mut prev_c, dt));
            }
            eprintln!("{line}");
            last_tick = now;
            next_tick += Duration::from_secs(1);
        }
        let consumed = run.consumed.records();
        if consumed != last_progress.1 {
            last_progress = (now, consumed);
        }
        let producers_done = run.producers.iter().all(JoinHandle::is_finished);
        if producers_done && producers_done_at.is_none() {
            producers_done_at = Some(now);
        }
        // A consumer only returns before the stop flag when it failed: nothing more will come.
        let consumer_failed = run.consumers.iter().any(JoinHandle::is_finished);
        let done = consumer_failed
            || match kind {
                Kind::Produce => producers_done,
                Kind::Consume => {
                    consume_target.is_some_and(|n| consumed >= n)
                        || until.is_some_and(|t| now >= t)
                        || (consume_target.is_some() && now - last_progress.0 > IDLE_TIMEOUT)
                }
                Kind::E2e => producers_done_at.is_some_and(|t| {
                    consumed >= run.produced.records()
                        || (now - t > IDLE_TIMEOUT && now - last_progress.0 > IDLE_TIMEOUT)
                }),
            };
        if done {
            break;
        }
    }
    run.stop.store(true, Ordering::Relaxed);
    let mut failures = Vec::new();
    for h in run.producers.drain(..) {
        match h.join() {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => failures.push(e),
            Err(_) => failures.push("a producer thread panicked".into()),
        }
    }
    for h in run.consumers.drain(..) {
        match h.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => failures.push(e),
            Err(_) => failures.push("a consumer thread panicked".into()),
        }
    }
    report(&run);
    if failures.is_empty() {
        Ok(())
    } else {
        Err(failures.join("; "))
    }
}

fn report(run: &Run) {
    let a = &run.args;
    let produce = (run.kind != Kind::Consume).then(|| run.produced.summary(true));
    let consume = (run.kind != Kind::Produce).then(|| run.consumed.summary(run.kind == Kind::E2e));
    if a.json {
        let mode = match run.kind {
            Kind::Produce => "produce",
            Kind::Consume => "consume",
            Kind::E2e => "e2e",
        };
        let mut v = json!({
            "mode": mode,
            "topic": a.topic,
            "partitions": run.partitions,
            "record_size": a.record_size,
            "acks": a.acks,
            "compression": a.compression.name(),
            "producers": a.producers,
            "consumers": a.consumers,
            "rate": a.rate,
            "linger_ms": a.linger_ms,
        });
        if let Some(p) = &produce {
            v["produce"] = p.json();
        }
        if let Some(c) = &consume {
            v[if run.kind == Kind::E2e {
                "e2e"
            } else {
                "consume"
            }] = c.json();
        }
        println!("{v}");
        return;
    }
    if let Some(p) = &produce {
        println!("{}", p.line("produce", "ack"));
    }
    if let Some(c) = &consume {
        let what = if run.kind == Kind::E2e {
            "e2e"
        } else {
            "consume"
        };
        println!("{}", c.line(what, "end-to-end"));
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let (kind, args) = match cli.mode {
        Mode::Produce(a) => (Kind::Produce, a),
        Mode::Consume(a) => (Kind::Consume, a),
        Mode::E2e(a) => (Kind::E2e, a),
    };
    match run(kind, args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("kraftd-bench: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("45"), Ok(Duration::from_secs(45)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1.5h"), Ok(Duration::from_secs(5400)));
        assert!(parse_duration("3 weeks").is_err());
        assert!(parse_duration("s").is_err());
    }

    #[test]
    fn cli_parses_the_documented_flags() {
        let cli = Cli::try_parse_from([
            "kraftd-bench",
            "produce",
            "--bootstrap-server",
            "127.0.0.1:9092",
            "--acks",
            "1",
            "--compression",
            "zstd",
            "--records",
            "1000",
            "--producers",
            "2",
            "-X",
            "socket.nagle.disable=true",
        ])
        .expect("parses");
        let Mode::Produce(a) = cli.mode else {
            panic!("not produce")
        };
        assert_eq!(a.acks, "1");
        assert_eq!(a.compression.name(), "zstd");
        assert_eq!((a.records, a.producers, a.partitions), (Some(1000), 2, 6));
        assert_eq!(
            a.properties,
            vec![("socket.nagle.disable".to_string(), "true".to_string())]
        );
        let both = Cli::try_parse_from([
            "kraftd-bench",
            "e2e",
            "-b",
            "h:1",
            "--records",
            "1",
            "--duration",
            "1s",
        ]);
        assert!(both.is_err(), "--records and --duration exclude each other");
        let acks = Cli::try_parse_from(["kraftd-bench", "produce", "-b", "h:1", "--acks", "2"]);
        assert!(acks.is_err());
    }
}
