//! Log start offset, retention, rolling by time, flush policy, recovery from the recovery
//! point and bounded file descriptors.

use std::fs;
use std::path::Path;

use proptest::prelude::*;

use super::super::*;
use crate::protocol::record_batch::{BatchOptions, NewRecord, encode_batch};

fn config(segment_bytes: u64) -> LogConfig {
    LogConfig {
        segment_bytes,
        index_interval_bytes: 100,
        max_index_size: 1024,
        ..LogConfig::default()
    }
}

/// One batch of `n` records valued `"<tag>-<i>"` at timestamp `ts`.
fn batch(tag: &str, n: usize, ts: i64) -> Vec<u8> {
    let values: Vec<String> = (0..n).map(|i| format!("{tag}-{i}")).collect();
    let records: Vec<NewRecord<'_>> = values
        .iter()
        .map(|v| NewRecord {
            key: None,
            value: Some(v.as_bytes()),
            headers: &[],
            timestamp: ts,
        })
        .collect();
    encode_batch(&records, &BatchOptions::default())
}

fn append(log: &mut PartitionLog, tag: &str, n: usize, ts: i64) -> AppendInfo {
    let mut b = batch(tag, n, ts);
    log.append_as_leader(&mut b, 0, ts).unwrap()
}

/// (offset, value) of every record readable from `from` to the log end.
fn read_from(log: &PartitionLog, from: i64) -> Vec<(i64, String)> {
    let mut out = Vec::new();
    let mut offset = from;
    while offset < log.log_end_offset() {
        let info = log.read(offset, 4096, None, true).unwrap();
        assert!(!info.records.is_empty(), "no progress at {offset}");
        for b in BatchIter::new(&info.records) {
            let b = b.unwrap();
            assert!(b.is_crc_valid());
            for r in b.records().unwrap() {
                let r = r.unwrap();
                let v = String::from_utf8(r.value.unwrap().to_vec()).unwrap();
                out.push((r.offset, v));
            }
        }
        offset = info.next_fetch_offset;
    }
    out
}

/// Appends `count` single-record batches "r<i>-0" with timestamps `ts0 + i`.
fn fill(log: &mut PartitionLog, count: usize, ts0: i64) {
    for i in 0..count {
        append(log, &format!("r{i}"), 1, ts0 + i as i64);
    }
}

fn log_files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".log"))
        .collect();
    names.sort();
    names
}

#[test]
fn delete_records_moves_log_start_and_deletes_whole_segments_below_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = PartitionLog::open(dir.path(), config(300)).unwrap();
    fill(&mut log, 30, 1_000);
    let bases = log.segment_base_offsets();
    assert!(bases.len() >= 4, "{bases:?}");
    // A target inside the third segment: the first two go, the third stays.
    let target = bases[2] + 1;
    assert_eq!(log.delete_records_before(target).unwrap(), target);
    assert_eq!(log.log_start_offset(), target);
    assert_eq!(log.segment_base_offsets(), bases[2..].to_vec());
    assert!(!log.segment_paths(bases[0])[0].exists());
    assert!(!log.segment_paths(bases[1])[2].exists());
    // Reads below the log start are out of range; from it they return what was written.
    let err = log.read(target - 1, 1000, None, true).unwrap_err();
    assert!(
        matches!(err, LogError::OffsetOutOfRange { offset, log_start_offset, .. }
        if offset == target - 1 && log_start_offset == target)
    );
    let got = read_from(&log, target);
    assert_eq!(got.first(), Some(&(target, format!("r{target}-0"))));
    assert_eq!(got.last(), Some(&(29, "r29-0".to_string())));
    // ListOffsets by timestamp never answers below the log start.
    assert_eq!(log.offset_for_timestamp(0).unwrap().unwrap().offset, target);
    // Lower targets change nothing; past the log end is refused.
    assert_eq!(log.delete_records_before(1).unwrap(), target);
    assert_eq!(
        log.delete_records_before(-1)
            .unwrap_err()
            .kafka_error_code(),
        1
    );
    assert_eq!(
        log.delete_records_before(31)
            .unwrap_err()
            .kafka_error_code(),
        1
    );
    // Up to the log end: everything below is deleted but the active segment stays.
    assert_eq!(log.delete_records_before(30).unwrap(), 30);
    assert_eq!(log.segment_count(), 1);
    assert_eq!(read_from(&log, 30), vec![]);
    let info = append(&mut log, "after", 1, 5_000);
    assert_eq!(info.first_offset, 30);
    assert_eq!(read_from(&log, 30), vec![(30, "after-0".to_string())]);
}

#[test]
fn log_start_offset_and_recovery_point_survive_restart_through_checkpoints() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = PartitionLog::open(dir.path(), config(300)).unwrap();
    fill(&mut log, 30, 1_000);
    log.delete_records_before(17).unwrap();
    let first_base = log.segment_base_offsets()[0];
    assert!(first_base < 17);
    log.flush().unwrap();
    // What the broker writes on shutdown, in Kafka's files.
    let mut lso = std::collections::BTreeMap::new();
    lso.insert(("t".to_string(), 0), log.log_start_offset());
    let mut rp = std::collections::BTreeMap::new();
    rp.insert(("t".to_string(), 0), log.recovery_point());
    assert_eq!(log.recovery_point(), 30);
    LogDirCheckpoints::write(&LogDirCheckpoints::log_start_offset_path(dir.path()), &lso).unwrap();
    LogDirCheckpoints::write(&LogDirCheckpoints::recovery_point_path(dir.path()), &rp).unwrap();
    assert_eq!(
        fs::read_to_string(dir.path().join(LOG_START_OFFSET_CHECKPOINT)).unwrap(),
        "0\n1\nt 0 17\n"
    );
    log.close().unwrap();

    let lso =
        LogDirCheckpoints::read(&LogDirCheckpoints::log_start_offset_path(dir.path())).unwrap();
    let rp = LogDirCheckpoints::read(&LogDirCheckpoints::recovery_point_path(dir.path())).unwrap();
    let options = LogOpenOptions::from_checkpoints(&rp, &lso, "t", 0);
    assert_eq!(
        options,
        LogOpenOptions {
            log_start_offset: Some(17),
            recovery_point: Some(30)
        }
    );
    let log = PartitionLog::open_with(dir.path(), config(300), options).unwrap();
    assert_eq!(log.log_start_offset(), 17);
    assert_eq!(log.segment_base_offsets()[0], first_base);
    assert!(log.read(16, 100, None, true).is_err());
    assert_eq!(read_from(&log, 17).len(), 13);
    drop(log);

    // A checkpointed start past the log end (files lost) restarts the log there, as Kafka.
    let log = PartitionLog::open_with(
        dir.path(),
        config(300),
        LogOpenOptions {
            log_start_offset: Some(50),
            recovery_point: Some(30),
        },
    )
    .unwrap();
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (50, 50));
    assert_eq!(log_files(dir.path()), vec![format!("{:020}.log", 50)]);
}

#[test]
fn time_retention_deletes_expired_segments_and_keeps_an_active_one() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = PartitionLog::open(dir.path(), config(300)).unwrap();
    // Old records at 1_000.., then new ones at 100_000..
    fill(&mut log, 12, 1_000);
    let old_end = log.log_end_offset();
    for i in 0..12 {
        append(&mut log, &format!("n{i}"), 1, 100_000 + i);
    }
    let before = log.segment_base_offsets();
    let leo = log.log_end_offset();
    // Infinite retention deletes nothing.
    assert_eq!(
        log.enforce_retention(200_000, -1, -1, leo)
            .unwrap()
            .deleted_segments,
        0
    );
    // Records older than 50s at now=110_000: every segment whose largest timestamp < 60_000.
    let r = log.enforce_retention(110_000, 50_000, -1, leo).unwrap();
    let remaining = log.segment_base_offsets();
    assert!(r.deleted_segments > 0);
    assert_eq!(r.deleted_segments + remaining.len(), before.len());
    assert_eq!(r.new_log_start_offset, remaining[0]);
    assert_eq!(log.log_start_offset(), remaining[0]);
    // The first remaining segment is the one holding the first new record (or the boundary).
    assert!(remaining[0] <= old_end);
    let got = read_from(&log, log.log_start_offset());
    assert!(got.iter().any(|(o, v)| *o == old_end && v == "n0-0"));
    assert_eq!(got.last(), Some(&(leo - 1, "n11-0".to_string())));
    // Segments above the high watermark are kept even if expired.
    let kept = log.segment_count();
    assert_eq!(
        log.enforce_retention(10_000_000, 1, -1, log.log_start_offset())
            .unwrap()
            .deleted_segments,
        0
    );
    assert_eq!(log.segment_count(), kept);
    // Everything expired: a new empty active segment is rolled at the log end first.
    let r = log.enforce_retention(10_000_000, 1, -1, leo).unwrap();
    assert_eq!(r.deleted_segments, kept);
    assert_eq!(log.segment_base_offsets(), vec![leo]);
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (leo, leo));
    assert_eq!(log_files(dir.path()), vec![format!("{leo:020}.log")]);
    // An empty active segment is never deleted.
    assert_eq!(
        log.enforce_retention(10_000_000, 1, 0, leo)
            .unwrap()
            .deleted_segments,
        0
    );
    assert_eq!(append(&mut log, "x", 1, 5).first_offset, leo);
    assert_eq!(read_from(&log, leo), vec![(leo, "x-0".to_string())]);
}

#[test]
fn size_retention_deletes_oldest_while_the_rest_stays_above_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = PartitionLog::open(dir.path(), config(300)).unwrap();
    fill(&mut log, 40, 1_000);
    let leo = log.log_end_offset();
    let sizes: Vec<u64> = log
        .segment_base_offsets()
        .iter()
        .map(|b| fs::metadata(&log.segment_paths(*b)[0]).unwrap().len())
        .collect();
    let total: u64 = sizes.iter().sum();
    assert_eq!(total, log.size_in_bytes());
    let limit = total / 2;
    // Kafka's rule: delete the oldest while size - segment.size >= retention.bytes.
    let mut expect_deleted = 0;
    let mut size = total;
    for s in &sizes {
        if size - s < limit {
            break;
        }
        size -= s;
        expect_deleted += 1;
    }
    let r = log.enforce_retention(0, -1, limit as i64, leo).unwrap();
    assert_eq!(r.deleted_segments, expect_deleted);
    assert_eq!(r.deleted_bytes, total - size);
    assert_eq!(log.size_in_bytes(), size);
    assert!(log.size_in_bytes() >= limit);
    assert_eq!(
        read_from(&log, log.log_start_offset()).last(),
        Some(&(39, "r39-0".to_string()))
    );
    // Running again deletes nothing more.
    assert_eq!(
        log.enforce_retention(0, -1, limit as i64, leo)
            .unwrap()
            .deleted_segments,
        0
    );
}

#[test]
fn maybe_roll_follows_segment_ms_and_jitter_never_exceeds_it() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = LogConfig {
        segment_ms: 1_000,
        ..config(1 << 20)
    };
    let mut log = PartitionLog::open(dir.path(), cfg).unwrap();
    assert!(
        !log.maybe_roll(1_000_000).unwrap(),
        "an empty segment never rolls"
    );
    append(&mut log, "a", 2, 10_000);
    assert!(!log.maybe_roll(10_999).unwrap());
    assert!(log.maybe_roll(11_001).unwrap());
    assert_eq!(log.segment_base_offsets(), vec![0, 2]);
    // The sealed segment's data is durable, so the recovery point moved to the roll.
    assert_eq!(log.recovery_point(), 2);
    // With jitter each new segment rolls somewhere in (segment.ms - jitter, segment.ms].
    log.set_segment_jitter_ms(500);
    append(&mut log, "b", 1, 20_000);
    assert!(!log.maybe_roll(20_000).unwrap());
    assert!(log.maybe_roll(20_000 + 1_001).unwrap());
    append(&mut log, "c", 1, 30_000);
    assert!(
        !log.maybe_roll(30_000 + 500).unwrap(),
        "jitter stays below segment.ms and 500"
    );
    assert_eq!(read_from(&log, 0).len(), 4);
}

#[test]
fn flush_messages_fsyncs_before_returning_and_flush_ms_on_the_timer() {
    let dir = tempfile::tempdir().unwrap();
    // flush.messages=1: the documented "fsync before acknowledging" setting.
    let cfg = LogConfig {
        flush_interval_messages: 1,
        ..config(1 << 20)
    };
    let mut log = PartitionLog::open(&dir.path().join("sync"), cfg).unwrap();
    append(&mut log, "a", 3, 1);
    assert_eq!((log.recovery_point(), log.unflushed_messages()), (3, 0));
    append(&mut log, "b", 2, 2);
    assert_eq!(log.recovery_point(), 5);

    // Defaults leave flushing to the OS: the recovery point stays behind.
    let mut log = PartitionLog::open(&dir.path().join("os"), config(1 << 20)).unwrap();
    append(&mut log, "a", 3, 1);
    assert_eq!((log.recovery_point(), log.unflushed_messages()), (0, 3));
    assert!(!log.maybe_flush(i64::MAX / 2).unwrap());

    // flush.ms=100: maybe_flush fsyncs once 100 ms passed since the last flush.
    let cfg = LogConfig {
        flush_interval_ms: 100,
        ..config(1 << 20)
    };
    let mut log = PartitionLog::open(&dir.path().join("timer"), cfg).unwrap();
    assert!(!log.maybe_flush(1_000).unwrap());
    append(&mut log, "a", 2, 1_010);
    assert!(!log.maybe_flush(1_050).unwrap());
    assert_eq!(log.recovery_point(), 0);
    assert!(log.maybe_flush(1_100).unwrap());
    assert_eq!(log.recovery_point(), 2);
    assert!(!log.maybe_flush(5_000).unwrap(), "nothing unflushed");
}

/// Flips one byte in the middle of the batch holding `offset` (not its header's length).
fn corrupt_batch_at(log: &PartitionLog, offset: i64) -> (std::path::PathBuf, u64) {
    let bases = log.segment_base_offsets();
    let base = *bases.iter().filter(|b| **b <= offset).max().unwrap();
    let path = log.segment_paths(base)[0].clone();
    let mut bytes = fs::read(&path).unwrap();
    let mut pos = 0usize;
    for b in BatchIter::new(&bytes.clone()) {
        let b = b.unwrap();
        if b.header.last_offset() >= offset {
            pos = b.position;
            bytes[pos + b.bytes.len() - 2] ^= 0x40;
            break;
        }
    }
    fs::write(&path, &bytes).unwrap();
    (path, pos as u64)
}

#[test]
fn unclean_open_scans_every_segment_above_the_recovery_point() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = PartitionLog::open(dir.path(), config(300)).unwrap();
    fill(&mut log, 40, 1_000);
    let bases = log.segment_base_offsets();
    assert!(bases.len() >= 5);
    let target = bases[2] + 1; // inside a middle segment
    let (path, pos) = corrupt_batch_at(&log, target);
    drop(log); // crash: no clean-shutdown marker

    // Recovery point below the corruption: the middle segment is scanned and cut there, and
    // every later segment is deleted.
    let rp = bases[1];
    let log = PartitionLog::open_with(
        dir.path(),
        config(300),
        LogOpenOptions {
            log_start_offset: None,
            recovery_point: Some(rp),
        },
    )
    .unwrap();
    assert_eq!(fs::metadata(&path).unwrap().len(), pos);
    assert_eq!(log.segment_base_offsets(), bases[..3].to_vec());
    assert_eq!(log.log_end_offset(), target);
    let got = read_from(&log, 0);
    assert_eq!(got.len() as i64, target);
    assert_eq!(
        got.last(),
        Some(&(target - 1, format!("r{}-0", target - 1)))
    );
    assert_eq!(log.recovery_point(), target);
}

#[test]
fn corruption_below_the_recovery_point_is_not_scanned_without_the_marker() {
    // Documented behaviour: data below the recovery point was fsynced before the checkpoint
    // was written, so an unclean open trusts it, as Kafka does; a bad byte there surfaces only
    // when a reader's CRC check (the client's) finds it.
    let dir = tempfile::tempdir().unwrap();
    let mut log = PartitionLog::open(dir.path(), config(300)).unwrap();
    fill(&mut log, 40, 1_000);
    let bases = log.segment_base_offsets();
    let (path, _) = corrupt_batch_at(&log, bases[1] + 1);
    let len = fs::metadata(&path).unwrap().len();
    drop(log);
    let log = PartitionLog::open_with(
        dir.path(),
        config(300),
        LogOpenOptions {
            log_start_offset: None,
            recovery_point: Some(bases[3]),
        },
    )
    .unwrap();
    assert_eq!(fs::metadata(&path).unwrap().len(), len);
    assert_eq!(log.segment_base_offsets(), bases);
    assert_eq!(log.log_end_offset(), 40);
}

#[test]
fn epochs_follow_the_log_start_offset() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = PartitionLog::open(dir.path(), config(300)).unwrap();
    for (i, epoch) in [1, 1, 2, 2, 3, 3].iter().enumerate() {
        let mut b = batch(&format!("e{i}"), 5, 1);
        log.append_as_leader(&mut b, *epoch, 1).unwrap();
    }
    assert_eq!(log.leader_epochs(), &[(1, 0), (2, 10), (3, 20)]);
    log.delete_records_before(12).unwrap();
    assert_eq!(log.leader_epochs(), &[(2, 12), (3, 20)]);
    log.flush().unwrap();
    assert_eq!(
        fs::read_to_string(dir.path().join(LEADER_EPOCH_CHECKPOINT)).unwrap(),
        "0\n2\n2 12\n3 20\n"
    );
}

fn open_fds() -> usize {
    fs::read_dir("/proc/self/fd")
        .map(|d| d.count())
        .unwrap_or(0)
}

/// Writes a partition dir as a clean shutdown left it: `segments` one-batch segments of one
/// record each ("l<l>r<i>-0" at timestamp 1000+i), trimmed indexes and the marker. (Rolling
/// 2,000 segments through appends costs four fsyncs each, too slow for a unit test.)
fn write_clean_log(dir: &Path, l: usize, segments: i64) {
    fs::create_dir_all(dir).unwrap();
    for i in 0..segments {
        let mut b = batch(&format!("l{l}r{i}"), 1, 1_000 + i);
        crate::protocol::record_batch::set_base_offset(&mut b, i).unwrap();
        fs::write(dir.join(format!("{i:020}.log")), &b).unwrap();
        fs::write(dir.join(format!("{i:020}.index")), []).unwrap();
        let mut time_entry = (1_000 + i).to_be_bytes().to_vec();
        time_entry.extend_from_slice(&0u32.to_be_bytes());
        fs::write(dir.join(format!("{i:020}.timeindex")), time_entry).unwrap();
    }
    fs::write(dir.join(CLEAN_SHUTDOWN_FILE), []).unwrap();
}

/// The handle cache's limit is process-wide: tests that change it run one at a time.
static HANDLE_LIMIT: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[test]
fn thousands_of_segments_stay_readable_with_bounded_descriptors() {
    let _serial = HANDLE_LIMIT.lock().unwrap_or_else(|e| e.into_inner());
    handles::set_max_open_segment_handles(64);
    let dir = tempfile::tempdir().unwrap();
    let logs_n = 40;
    for l in 0..logs_n {
        write_clean_log(&dir.path().join(format!("t-{l}")), l, 50);
    }
    let baseline = open_fds();
    let mut logs = Vec::new();
    for l in 0..logs_n {
        let log = PartitionLog::open(&dir.path().join(format!("t-{l}")), config(80)).unwrap();
        assert_eq!(log.segment_count(), 50);
        logs.push(log);
    }
    // 2,000 segments: each log's active segment keeps .log/.index/.timeindex, inactive ones
    // hold nothing of their own, the cache at most 64. Other tests in this process open files
    // at the same time, so the process-wide count gets generous slack: it is there to catch a
    // handle per segment (thousands).
    let bound = baseline + 3 * logs_n + 64 + 512;
    assert!(
        open_fds() <= bound,
        "{} fds open, bound {bound}",
        open_fds()
    );
    // Every record of every log reads back, twice (cold and through the cache).
    for _ in 0..2 {
        for (l, log) in logs.iter().enumerate() {
            let got = read_from(log, 0);
            assert_eq!(got.len(), 50);
            for (i, (offset, value)) in got.iter().enumerate() {
                assert_eq!(
                    (*offset, value.as_str()),
                    (i as i64, format!("l{l}r{i}-0").as_str())
                );
            }
            // By timestamp, which walks inactive segments' indexes and files.
            assert_eq!(log.offset_for_timestamp(1_030).unwrap().unwrap().offset, 30);
        }
        assert!(
            open_fds() <= bound,
            "{} fds open, bound {bound}",
            open_fds()
        );
        assert!(handles::open_segment_handles() <= handles::max_open_segment_handles());
    }
    // Appends that roll, retention and reopening keep working with the same bound.
    let mut log = logs.pop().unwrap();
    for i in 50..60 {
        append(&mut log, &format!("l{}r{i}", logs_n - 1), 1, 1_000 + i);
    }
    assert_eq!(log.segment_count(), 60);
    // retention.bytes=0 (Kafka: size - segment.size >= 0 holds for every segment) deletes
    // all 60 after rolling an empty active segment at the log end.
    let r = log
        .enforce_retention(0, -1, 0, log.log_end_offset())
        .unwrap();
    assert_eq!((r.deleted_segments, r.new_log_start_offset), (60, 60));
    append(&mut log, "last", 1, 2_000);
    log.close().unwrap();
    let log =
        PartitionLog::open(&dir.path().join(format!("t-{}", logs_n - 1)), config(80)).unwrap();
    assert_eq!(log.segment_base_offsets(), vec![60]);
    assert_eq!(read_from(&log, 60), vec![(60, "last-0".to_string())]);
    assert!(
        open_fds() <= bound,
        "{} fds open, bound {bound}",
        open_fds()
    );
    handles::set_max_open_segment_handles(handles::DEFAULT_MAX_OPEN_SEGMENT_HANDLES);
}

/// Cold (open per read) versus cached reads of inactive segments; run with
/// `cargo test --release --lib segment_read_cost -- --ignored --nocapture`.
#[test]
#[ignore]
fn segment_read_cost() {
    let _serial = HANDLE_LIMIT.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let mut log = PartitionLog::open(dir.path(), config(80)).unwrap();
    for i in 0..2_000 {
        append(&mut log, &format!("r{i}"), 1, i);
    }
    let read_all = |log: &PartitionLog| {
        let start = std::time::Instant::now();
        for o in 0..1_999 {
            let r = log.read(o, 4096, None, true).unwrap();
            assert!(!r.records.is_empty());
        }
        start.elapsed().as_secs_f64() * 1e6 / 1_999.0
    };
    handles::set_max_open_segment_handles(16);
    let opens = handles::segment_handle_opens();
    let cold = read_all(&log);
    let cold_opens = handles::segment_handle_opens() - opens;
    handles::set_max_open_segment_handles(4096);
    read_all(&log);
    let opens = handles::segment_handle_opens();
    let warm = read_all(&log);
    let warm_opens = handles::segment_handle_opens() - opens;
    println!(
        "cold read: {cold:.2} us ({cold_opens} opens); cached read: {warm:.2} us ({warm_opens} opens)"
    );
    handles::set_max_open_segment_handles(handles::DEFAULT_MAX_OPEN_SEGMENT_HANDLES);
}

#[derive(Debug, Clone)]
enum Op {
    Append { n: usize, ts: i64 },
    DeleteRecords { ahead: i64 },
    Retention { age: i64, bytes: i64 },
    Reopen { clean: bool },
    Roll { at: i64 },
}

fn arb_op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => (1usize..5, 0i64..1_000).prop_map(|(n, ts)| Op::Append { n, ts }),
        1 => (0i64..15).prop_map(|ahead| Op::DeleteRecords { ahead }),
        1 => (-1i64..1_000, -1i64..2_000).prop_map(|(age, bytes)| Op::Retention { age, bytes }),
        1 => any::<bool>().prop_map(|clean| Op::Reopen { clean }),
        1 => (0i64..2_000).prop_map(|at| Op::Roll { at }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]
    /// Whatever retention, DeleteRecords, rolls and restarts do, the log reads back exactly
    /// the acknowledged records from its log start offset, the start never goes back, only
    /// whole segments below it are gone, and there is always an active segment.
    #[test]
    fn retention_and_delete_records_keep_exactly_the_records_above_the_start(
        ops in proptest::collection::vec(arb_op(), 1..50)
    ) {
        let _serial = HANDLE_LIMIT.lock().unwrap_or_else(|e| e.into_inner());
        handles::set_max_open_segment_handles(16);
        let dir = tempfile::tempdir().unwrap();
        let cfg = LogConfig { segment_ms: 500, ..config(250) };
        let mut log = Some(PartitionLog::open(dir.path(), cfg.clone()).unwrap());
        let mut model: Vec<(i64, String)> = Vec::new();
        for (step, op) in ops.iter().enumerate() {
            let l = log.as_mut().unwrap();
            let before_start = l.log_start_offset();
            match op {
                Op::Append { n, ts } => {
                    let tag = format!("s{step}");
                    let info = append(l, &tag, *n, *ts);
                    prop_assert_eq!(info.first_offset, model.len() as i64);
                    for i in 0..*n {
                        model.push((info.first_offset + i as i64, format!("{tag}-{i}")));
                    }
                }
                Op::DeleteRecords { ahead } => {
                    let target = (before_start + ahead).min(l.log_end_offset());
                    prop_assert_eq!(l.delete_records_before(target).unwrap(), target.max(before_start));
                }
                Op::Retention { age, bytes } => {
                    let leo = l.log_end_offset();
                    let r = l.enforce_retention(1_000, *age, *bytes, leo).unwrap();
                    prop_assert_eq!(r.new_log_start_offset, l.log_start_offset());
                    // Size alone never takes the log below retention.bytes (time may).
                    if *age < 0 && *bytes >= 0 && r.deleted_segments > 0 {
                        prop_assert!(l.size_in_bytes() as i64 >= *bytes || l.segment_count() == 1);
                    }
                }
                Op::Reopen { clean } => {
                    let l = log.take().unwrap();
                    let options = LogOpenOptions {
                        log_start_offset: Some(l.log_start_offset()),
                        recovery_point: Some(l.recovery_point()),
                    };
                    if *clean { l.close().unwrap() } else { drop(l) }
                    log = Some(PartitionLog::open_with(dir.path(), cfg.clone(), options).unwrap());
                }
                Op::Roll { at } => { log.as_mut().unwrap().maybe_roll(*at).unwrap(); }
            }
            let l = log.as_ref().unwrap();
            let start = l.log_start_offset();
            prop_assert!(start >= before_start);
            prop_assert!(l.segment_count() >= 1);
            prop_assert!(l.segment_base_offsets()[0] <= start);
            prop_assert_eq!(l.log_end_offset(), model.len() as i64);
            let want: Vec<(i64, String)> = model.iter().filter(|(o, _)| *o >= start).cloned().collect();
            let got: Vec<(i64, String)> = read_from(l, start).into_iter().filter(|(o, _)| *o >= start).collect();
            prop_assert_eq!(got, want);
            if start > 0 {
                prop_assert!(l.read(start - 1, 100, None, true).is_err());
            }
        }
        handles::set_max_open_segment_handles(handles::DEFAULT_MAX_OPEN_SEGMENT_HANDLES);
    }
}
