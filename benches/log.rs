//! Log engine figures for the README: append MB/s, sequential read MB/s, index lookup ns,
//! recovery s/GB, compaction MB/s, and CRC32C GB/s (the ceiling every append and recovery pays
//! per byte).
//!
//! Run: `cargo bench --bench log` (about a minute on 2 cores; filter with e.g.
//! `cargo bench --bench log -- append`). Logs live in a temp dir under $TMPDIR, so that is the
//! filesystem measured; the data written by a bench stays in the page cache, as a broker's
//! recent data does.

use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use kraftd::log::{LogConfig, PartitionLog};
use kraftd::protocol::record_batch::{BATCH_HEADER_LEN, BatchOptions, NewRecord, encode_batch};

/// Producer batches as librdkafka's and Java's defaults make them under load.
const BATCH_BYTES: usize = 16 * 1024;
/// The log the read, lookup and recovery benches work on.
const LOG_BYTES: u64 = 256 * 1024 * 1024;
/// The append bench empties its log (untimed) past this size, to bound the disk it uses.
const APPEND_LOG_CAP: u64 = 512 * 1024 * 1024;
const READ_CHUNK: usize = 1024 * 1024;

/// One uncompressed batch of `record_size`-byte values filling at most BATCH_BYTES.
fn batch_of(record_size: usize) -> (Vec<u8>, usize) {
    let value: Vec<u8> = (0..record_size).map(|i| b'a' + (i % 26) as u8).collect();
    // Per record: length, attributes, two deltas, null key, value length and headers count
    // take at most 16 bytes for these sizes.
    let count = (BATCH_BYTES - BATCH_HEADER_LEN) / (record_size + 16);
    let records: Vec<NewRecord<'_>> = (0..count)
        .map(|i| NewRecord {
            key: None,
            value: Some(&value),
            headers: &[],
            timestamp: 1_700_000_000_000 + i as i64,
        })
        .collect();
    let batch = encode_batch(&records, &BatchOptions::default());
    assert!(batch.len() <= BATCH_BYTES, "batch of {} bytes", batch.len());
    (batch, count)
}

/// A log of about LOG_BYTES of 1 KiB-record batches, left open.
fn filled_log(dir: &Path) -> PartitionLog {
    let mut log = PartitionLog::open(dir, LogConfig::default()).expect("open log");
    let (mut batch, _) = batch_of(1024);
    while log.size_in_bytes() < LOG_BYTES {
        log.append_as_leader(&mut batch, 0, 0).expect("append");
    }
    log
}

fn now_ms() -> i64 {
    1_700_000_000_000
}

fn append(c: &mut Criterion) {
    let mut g = c.benchmark_group("append");
    g.warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(20);
    for record_size in [100usize, 1024] {
        let (mut batch, count) = batch_of(record_size);
        let dir = tempfile::tempdir().expect("tempdir");
        let mut log = PartitionLog::open(dir.path(), LogConfig::default()).expect("open");
        g.throughput(Throughput::BytesDecimal(batch.len() as u64));
        let name = format!("{record_size}B_records_{count}_per_16KiB_batch");
        g.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let mut spent = Duration::ZERO;
                for _ in 0..iters {
                    let t = Instant::now();
                    // Offsets and the leader epoch are rewritten in place, as on produce.
                    let info = log.append_as_leader(&mut batch, 0, now_ms());
                    spent += t.elapsed();
                    black_box(info.expect("append"));
                    if log.size_in_bytes() > APPEND_LOG_CAP {
                        log.truncate_to(0).expect("truncate");
                    }
                }
                spent
            })
        });
    }
    g.finish();
}

fn sequential_read(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = filled_log(dir.path());
    let size = log.size_in_bytes();
    let end = log.log_end_offset();
    let mut g = c.benchmark_group("read");
    g.warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4))
        .sample_size(10)
        .throughput(Throughput::BytesDecimal(size));
    g.bench_function("sequential_256MiB_in_1MiB_chunks", |b| {
        b.iter(|| {
            let mut offset = 0;
            let mut bytes = 0usize;
            while offset < end {
                let r = log.read(offset, READ_CHUNK, None, true).expect("read");
                bytes += r.records.len();
                offset = r.next_fetch_offset;
            }
            black_box(bytes)
        })
    });
    // A fetch at a random offset: segment search, index lookup, a short scan to the batch,
    // and one pread of that first batch.
    let mut x: u64 = 0x2545_F491_4F6C_DD1D;
    g.throughput(Throughput::Elements(1))
        .measurement_time(Duration::from_secs(2))
        .sample_size(20);
    g.bench_function("index_lookup_random_offset_first_batch", |b| {
        b.iter(|| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let offset = (x % end as u64) as i64;
            let r = log.read(offset, 1, None, true).expect("read");
            black_box(r.records.len())
        })
    });
    g.finish();
}

fn recovery(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = filled_log(dir.path());
    let size = log.size_in_bytes();
    // Dropped without close(): no clean-shutdown marker, as after kill -9.
    drop(log);
    let mut g = c.benchmark_group("recovery");
    g.warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5))
        .sample_size(10)
        .throughput(Throughput::BytesDecimal(size));
    g.bench_function("open_256MiB_without_clean_shutdown_marker", |b| {
        b.iter(|| {
            let log = PartitionLog::open(dir.path(), LogConfig::default()).expect("recover");
            assert_eq!(
                log.size_in_bytes(),
                size,
                "recovery must keep every valid batch"
            );
            // Dropped, not closed, so the next open recovers again.
            black_box(log.log_end_offset())
        })
    });
    g.finish();
}

fn crc32c(c: &mut Criterion) {
    let buf: Vec<u8> = (0..READ_CHUNK).map(|i| (i * 31 % 251) as u8).collect();
    let mut g = c.benchmark_group("crc32c");
    g.warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .throughput(Throughput::BytesDecimal(buf.len() as u64));
    g.bench_function("1MiB", |b| b.iter(|| ::crc32c::crc32c(black_box(&buf))));
    g.finish();
}

/// The cleaner on a 64 MiB log of 100-byte keyed records with 10% unique keys, in 8 MiB
/// segments: plan, rewrite and swap, measured as MB/s of log cleaned. Each iteration cleans a
/// fresh copy (the copy is not timed).
fn compaction(c: &mut Criterion) {
    use kraftd::log::{CompactionConfig, OffsetMap};
    const LOG: u64 = 64 * 1024 * 1024;
    let source = tempfile::tempdir().expect("tempdir");
    let config = LogConfig {
        segment_bytes: 8 * 1024 * 1024,
        ..LogConfig::default()
    };
    let value = [b'v'; 100];
    let per_batch = (BATCH_BYTES - BATCH_HEADER_LEN) / (100 + 24);
    let total_records = (LOG / (100 + 24)) as usize;
    let unique = total_records / 10;
    let keys: Vec<String> = (0..unique).map(|k| format!("key-{k:08}")).collect();
    {
        let mut log = PartitionLog::open(source.path(), config.clone()).expect("open");
        let mut n = 0usize;
        while log.size_in_bytes() < LOG {
            let records: Vec<NewRecord<'_>> = (0..per_batch)
                .map(|j| NewRecord {
                    key: Some(keys[(n + j) * 7919 % unique].as_bytes()),
                    value: Some(&value),
                    headers: &[],
                    timestamp: 1_600_000_000_000,
                })
                .collect();
            n += per_batch;
            let mut batch = encode_batch(&records, &BatchOptions::default());
            log.append_as_leader(&mut batch, 0, 0).expect("append");
        }
        log.close().expect("close");
    }
    let copy = |to: &Path| {
        for e in std::fs::read_dir(source.path())
            .expect("read dir")
            .flatten()
        {
            std::fs::copy(e.path(), to.join(e.file_name())).expect("copy");
        }
    };
    let mut g = c.benchmark_group("compaction");
    g.sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(15))
        .throughput(Throughput::BytesDecimal(LOG));
    g.bench_function("64MiB_100B_records_10pct_unique_keys", |b| {
        b.iter_batched(
            || {
                let dir = tempfile::tempdir().expect("tempdir");
                copy(dir.path());
                let log = PartitionLog::open(dir.path(), config.clone()).expect("open copy");
                (dir, log)
            },
            |(dir, mut log)| {
                let end = log.log_end_offset();
                let plan = log
                    .prepare_clean(&CompactionConfig::default(), None, end, now_ms())
                    .expect("plan")
                    .expect("something to clean");
                let mut map = OffsetMap::new(64 * 1024 * 1024, 0.9);
                let cleaned = plan.clean(&mut map, None).expect("clean");
                let outcome = log.commit_clean(cleaned).expect("swap");
                assert!(outcome.bytes_after < outcome.bytes_before / 2);
                (dir, log)
            },
            criterion::BatchSize::PerIteration,
        )
    });
    g.finish();
}

criterion_group!(
    benches,
    append,
    sequential_read,
    recovery,
    crc32c,
    compaction
);
criterion_main!(benches);
