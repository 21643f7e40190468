use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use proptest::prelude::*;

use super::*;
use crate::protocol::record_batch::{BatchOptions, NewRecord, encode_batch};

fn small_config() -> LogConfig {
    LogConfig {
        segment_bytes: 1024,
        index_interval_bytes: 100,
        max_index_size: 1024,
        ..LogConfig::default()
    }
}

/// A client batch of `n` records whose values are `"<tag>-<i>"` and timestamps `ts + i`.
fn client_batch(tag: &str, n: usize, ts: i64) -> Vec<u8> {
    let values: Vec<String> = (0..n).map(|i| format!("{tag}-{i}")).collect();
    let records: Vec<NewRecord<'_>> = values
        .iter()
        .enumerate()
        .map(|(i, v)| NewRecord {
            key: None,
            value: Some(v.as_bytes()),
            headers: &[],
            timestamp: ts + i as i64,
        })
        .collect();
    encode_batch(&records, &BatchOptions::default())
}

/// (offset, value, timestamp) of every record in `bytes`, checking each batch's CRC.
fn decode(bytes: &[u8]) -> Vec<(i64, Vec<u8>, i64)> {
    let mut out = Vec::new();
    for batch in BatchIter::new(bytes) {
        let batch = batch.unwrap();
        assert!(batch.is_crc_valid());
        for r in batch.records().unwrap() {
            let r = r.unwrap();
            out.push((r.offset, r.value.unwrap().to_vec(), r.timestamp));
        }
    }
    out
}

/// Everything from `from` to the end, following next_fetch_offset.
fn read_all(log: &PartitionLog, from: i64) -> Vec<(i64, Vec<u8>, i64)> {
    let mut out = Vec::new();
    let mut offset = from;
    while offset < log.log_end_offset() {
        let info = log.read(offset, 300, None, true).unwrap();
        assert!(!info.records.is_empty(), "no progress at {offset}");
        out.extend(decode(&info.records));
        offset = info.next_fetch_offset;
    }
    out
}

fn append(log: &mut PartitionLog, tag: &str, n: usize, ts: i64, epoch: i32) -> AppendInfo {
    let mut b = client_batch(tag, n, ts);
    log.append_as_leader(&mut b, epoch, ts).unwrap()
}

fn expected(batches: &[(String, usize, i64)], first_offset: i64) -> Vec<(i64, Vec<u8>, i64)> {
    let mut out = Vec::new();
    let mut offset = first_offset;
    for (tag, n, ts) in batches {
        for i in 0..*n {
            out.push((offset, format!("{tag}-{i}").into_bytes(), ts + i as i64));
            offset += 1;
        }
    }
    out
}

fn fill(log: &mut PartitionLog, count: usize) -> Vec<(String, usize, i64)> {
    let mut batches = Vec::new();
    for i in 0..count {
        let tag = format!("b{i}");
        let n = 1 + i % 4;
        let ts = 1_000 + 10 * i as i64;
        append(log, &tag, n, ts, 0);
        batches.push((tag, n, ts));
    }
    batches
}

#[test]
fn append_assigns_offsets_and_reads_round_trip_across_rolls() {
    let dir = tempfile::tempdir().unwrap();
    let pdir = partition_dir(dir.path(), "orders", 3);
    assert!(pdir.ends_with("orders-3"));
    let mut log = PartitionLog::open(&pdir, small_config()).unwrap();
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (0, 0));

    let info = append(&mut log, "first", 3, 500, 0);
    assert_eq!((info.first_offset, info.last_offset), (0, 2));
    assert_eq!((info.max_timestamp, info.offset_of_max_timestamp), (502, 2));
    assert_eq!(info.log_append_time, None);

    let batches = fill(&mut log, 60);
    let mut all = vec![("first".to_string(), 3, 500)];
    all.extend(batches);
    assert!(log.segment_count() > 3, "segments: {}", log.segment_count());
    let want = expected(&all, 0);
    assert_eq!(log.log_end_offset(), want.len() as i64);
    assert_eq!(read_all(&log, 0), want);

    // Segment files are named by base offset and each .log is within segment.bytes.
    for base in log.segment_base_offsets() {
        let [l, i, t] = log.segment_paths(base);
        assert!(l.file_name().unwrap().to_str().unwrap().len() == 24);
        assert!(fs::metadata(&l).unwrap().len() <= 1024);
        assert!(i.exists() && t.exists());
        // The first batch of each segment starts at its base offset.
        let bytes = fs::read(&l).unwrap();
        if !bytes.is_empty() {
            assert_eq!(decode(&bytes)[0].0, base);
        }
    }
    assert_eq!(
        log.size_in_bytes(),
        log.segment_base_offsets()
            .iter()
            .map(|b| fs::metadata(&log.segment_paths(*b)[0]).unwrap().len())
            .sum::<u64>()
    );
}

#[test]
fn every_offset_reads_from_the_batch_holding_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = PartitionLog::open(dir.path(), small_config()).unwrap();
    let all = fill(&mut log, 40);
    let want = expected(&all, 0);
    for (offset, _, _) in &want {
        let info = log.read(*offset, 1, None, true).unwrap();
        let got = decode(&info.records);
        let batch = BatchIter::new(&info.records).next().unwrap().unwrap();
        assert!(batch.header.base_offset() <= *offset && *offset <= batch.header.last_offset());
        assert_eq!(info.next_fetch_offset, batch.header.next_offset());
        assert!(got.iter().any(|r| r.0 == *offset));
        // Without min_one_batch a too-small max_bytes returns nothing.
        assert!(
            log.read(*offset, 1, None, false)
                .unwrap()
                .records
                .is_empty()
        );
    }
    // max_bytes never cut a batch and max_offset bounds the result.
    let info = log.read(0, 200, Some(7), false).unwrap();
    assert!(info.records.len() <= 200);
    let got = decode(&info.records);
    assert!(got.last().unwrap().0 < 7);
    assert_eq!(got, want[..got.len()].to_vec());
    assert!(log.read(7, 1000, Some(7), true).unwrap().records.is_empty());
    assert_eq!(
        log.read(log.log_end_offset(), 1000, None, true)
            .unwrap()
            .records
            .len(),
        0
    );
    let err = log
        .read(log.log_end_offset() + 1, 1000, None, true)
        .unwrap_err();
    assert_eq!(err.kafka_error_code(), 1);
}

/// Parses a trimmed `.index` and checks every entry against the `.log`.
fn check_index_file(log_path: &Path, index_path: &Path, base: i64) -> usize {
    let log_bytes = fs::read(log_path).unwrap();
    let index = fs::read(index_path).unwrap();
    assert_eq!(index.len() % 8, 0);
    for e in index.chunks_exact(8) {
        let rel = u32::from_be_bytes(e[..4].try_into().unwrap()) as i64;
        let pos = u32::from_be_bytes(e[4..].try_into().unwrap()) as usize;
        let batch = BatchIter::new(&log_bytes[pos..]).next().unwrap().unwrap();
        assert_eq!(batch.header.last_offset(), base + rel);
    }
    index.len() / 8
}

#[test]
fn restart_keeps_everything_and_index_files_match_kafka_layout() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = PartitionLog::open(dir.path(), small_config()).unwrap();
    let all = fill(&mut log, 50);
    let bases = log.segment_base_offsets();
    let leo = log.log_end_offset();
    log.close().unwrap();
    assert!(dir.path().join(CLEAN_SHUTDOWN_FILE).exists());

    let mut entries = 0;
    for &base in &bases {
        let l = dir.path().join(format!("{base:020}.log"));
        let i = dir.path().join(format!("{base:020}.index"));
        entries += check_index_file(&l, &i, base);
        assert_eq!(
            fs::metadata(dir.path().join(format!("{base:020}.timeindex")))
                .unwrap()
                .len()
                % 12,
            0
        );
    }
    assert!(entries > 0);

    let log = PartitionLog::open(dir.path(), small_config()).unwrap();
    assert!(!dir.path().join(CLEAN_SHUTDOWN_FILE).exists());
    assert_eq!(log.segment_base_offsets(), bases);
    assert_eq!(log.log_end_offset(), leo);
    assert_eq!(read_all(&log, 0), expected(&all, 0));
}

#[test]
fn torn_tail_is_truncated_on_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        segment_bytes: 1 << 20,
        ..small_config()
    };
    let mut log = PartitionLog::open(dir.path(), config.clone()).unwrap();
    let all = fill(&mut log, 10);
    let before_last = expected(&all[..9], 0);
    let last_start = {
        let p = log.segment_paths(0)[0].clone();
        fs::metadata(&p).unwrap().len() - client_batch("b9", all[9].1, 0).len() as u64
    };
    drop(log); // crash: no clean shutdown marker

    let seg = dir.path().join(format!("{:020}.log", 0));
    let f = fs::OpenOptions::new().write(true).open(&seg).unwrap();
    f.set_len(last_start + 30).unwrap();
    drop(f);
    let log = PartitionLog::open(dir.path(), config.clone()).unwrap();
    assert_eq!(fs::metadata(&seg).unwrap().len(), last_start);
    assert_eq!(log.log_end_offset(), before_last.len() as i64);
    assert_eq!(read_all(&log, 0), before_last);
    drop(log);

    // Flip a byte inside the (now) last batch: its CRC no longer matches.
    let before_two = expected(&all[..8], 0);
    let mut bytes = fs::read(&seg).unwrap();
    let n = bytes.len();
    bytes[n - 3] ^= 0x55;
    fs::write(&seg, &bytes).unwrap();
    let mut log = PartitionLog::open(dir.path(), config).unwrap();
    assert_eq!(log.log_end_offset(), before_two.len() as i64);
    assert_eq!(read_all(&log, 0), before_two);
    // Appends continue from the recovered end.
    let info = append(&mut log, "after", 2, 5_000, 1);
    assert_eq!(info.first_offset, before_two.len() as i64);
}

#[test]
fn missing_or_corrupt_index_is_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = PartitionLog::open(dir.path(), small_config()).unwrap();
    let all = fill(&mut log, 50);
    let [_, index0, time0] = log.segment_paths(0);
    log.close().unwrap();
    let original_index = fs::read(&index0).unwrap();
    let original_time = fs::read(&time0).unwrap();
    assert!(!original_index.is_empty());
    fs::remove_file(&index0).unwrap();
    fs::write(&time0, [1, 2, 3]).unwrap();

    let log = PartitionLog::open(dir.path(), small_config()).unwrap();
    assert_eq!(fs::read(&index0).unwrap(), original_index);
    assert_eq!(fs::read(&time0).unwrap(), original_time);
    assert_eq!(read_all(&log, 0), expected(&all, 0));
}

#[test]
fn truncate_to_drops_later_batches_and_epochs() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = PartitionLog::open(dir.path(), small_config()).unwrap();
    let mut all = Vec::new();
    for i in 0..30 {
        let epoch = if i < 15 { 1 } else { 2 };
        let info = append(&mut log, &format!("t{i}"), 2, 100 + i, epoch);
        assert_eq!(info.first_offset, 2 * i);
        all.push((format!("t{i}"), 2, 100 + i));
    }
    assert_eq!(log.leader_epochs(), &[(1, 0), (2, 30)]);
    assert_eq!(log.end_offset_for_epoch(1), (1, 30));
    assert_eq!(log.end_offset_for_epoch(2), (2, 60));
    let segments_before = log.segment_count();

    // Offset 21 is inside the batch [20, 21]: that whole batch goes.
    assert!(log.truncate_to(21).unwrap());
    assert_eq!(log.log_end_offset(), 20);
    assert!(log.segment_count() < segments_before);
    assert_eq!(log.leader_epochs(), &[(1, 0)]);
    assert_eq!(
        fs::read_to_string(dir.path().join(LEADER_EPOCH_CHECKPOINT)).unwrap(),
        "0\n1\n1 0\n"
    );
    assert_eq!(read_all(&log, 0), expected(&all[..10], 0));
    assert!(!log.truncate_to(500).unwrap());

    let info = append(&mut log, "new", 3, 900, 3);
    assert_eq!(info.first_offset, 20);
    let mut want = expected(&all[..10], 0);
    want.extend(expected(&[("new".into(), 3, 900)], 20));
    assert_eq!(read_all(&log, 0), want);
    log.close().unwrap();
    let log = PartitionLog::open(dir.path(), small_config()).unwrap();
    assert_eq!(read_all(&log, 0), want);
    assert_eq!(log.leader_epochs(), &[(1, 0), (3, 20)]);

    // Truncating below the first segment restarts the log at the target.
    let mut log = log;
    assert!(log.truncate_to(0).unwrap());
    assert_eq!(
        (
            log.log_start_offset(),
            log.log_end_offset(),
            log.segment_count()
        ),
        (0, 0, 1)
    );
    assert!(log.leader_epochs().is_empty());
}

#[test]
fn offset_for_timestamp_and_max_timestamp() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = PartitionLog::open(dir.path(), small_config()).unwrap();
    assert_eq!(log.offset_for_timestamp(0).unwrap(), None);
    assert_eq!(log.max_timestamp().unwrap(), None);
    // Batch i holds 3 records at timestamps 1000+10i .. 1000+10i+2, offsets 3i..3i+2.
    for i in 0..40 {
        let mut b = client_batch(&format!("x{i}"), 3, 1000 + 10 * i);
        log.append_as_leader(&mut b, 5, 0).unwrap();
    }
    fn at_ts(log: &PartitionLog, ts: i64) -> Option<(i64, i64)> {
        log.offset_for_timestamp(ts)
            .unwrap()
            .map(|t| (t.offset, t.timestamp))
    }
    let at = |ts| at_ts(&log, ts);
    assert_eq!(at(0), Some((0, 1000)));
    assert_eq!(at(1000), Some((0, 1000)));
    assert_eq!(at(1001), Some((1, 1001)));
    assert_eq!(at(1003), Some((3, 1010)));
    assert_eq!(at(1252), Some((77, 1252)));
    assert_eq!(at(1392), Some((119, 1392)));
    assert_eq!(at(1393), None);
    assert_eq!(
        log.offset_for_timestamp(1252)
            .unwrap()
            .unwrap()
            .leader_epoch,
        Some(5)
    );
    assert_eq!(
        log.max_timestamp().unwrap(),
        Some(TimestampAndOffset {
            timestamp: 1392,
            offset: 119,
            leader_epoch: Some(5)
        })
    );
    // An out-of-order batch with the max timestamp in its first record.
    let records = [
        NewRecord {
            key: None,
            value: Some(b"m"),
            headers: &[],
            timestamp: 9_000,
        },
        NewRecord {
            key: None,
            value: Some(b"n"),
            headers: &[],
            timestamp: 5,
        },
    ];
    let mut b = encode_batch(&records, &BatchOptions::default());
    log.append_as_leader(&mut b, 5, 0).unwrap();
    append(&mut log, "late", 2, 2000, 5);
    let max = log.max_timestamp().unwrap().unwrap();
    assert_eq!((max.timestamp, max.offset), (9_000, 120));
    assert_eq!(at_ts(&log, 8_000), Some((120, 9_000)));
}

#[test]
fn log_append_time_rewrites_batches() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        message_timestamp_type: TimestampType::LogAppendTime,
        ..small_config()
    };
    let mut log = PartitionLog::open(dir.path(), config).unwrap();
    let mut b = client_batch("a", 3, 10);
    let info = log.append_as_leader(&mut b, 0, 777_000).unwrap();
    assert_eq!(info.log_append_time, Some(777_000));
    assert_eq!(info.max_timestamp, 777_000);
    let read = log.read(0, 1000, None, false).unwrap();
    assert_eq!(read.records.as_ref(), b.as_slice());
    assert!(decode(&read.records).iter().all(|r| r.2 == 777_000));
    assert_eq!(
        log.offset_for_timestamp(700_000).unwrap().unwrap().offset,
        0
    );
}

#[test]
fn follower_append_keeps_offsets_and_epochs() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = PartitionLog::open(dir.path(), small_config()).unwrap();
    let mut leader_bytes = Vec::new();
    for (base, epoch) in [(0i64, 4), (3, 4), (6, 7)] {
        let mut b = client_batch("f", 3, 50);
        crate::protocol::record_batch::set_base_offset(&mut b, base).unwrap();
        crate::protocol::record_batch::set_partition_leader_epoch(&mut b, epoch).unwrap();
        leader_bytes.extend_from_slice(&b);
    }
    let info = log.append_as_follower(&leader_bytes, 0).unwrap();
    assert_eq!((info.first_offset, info.last_offset), (0, 8));
    assert_eq!(log.leader_epochs(), &[(4, 0), (7, 6)]);
    assert_eq!(
        log.read(0, 10_000, None, false).unwrap().records.as_ref(),
        leader_bytes.as_slice()
    );
    let err = log.append_as_follower(&leader_bytes, 0).unwrap_err();
    assert!(matches!(
        err,
        LogError::UnexpectedAppendOffset {
            first_offset: 0,
            log_end_offset: 9
        }
    ));
    let mut corrupt = leader_bytes[..leader_bytes.len() / 3].to_vec();
    crate::protocol::record_batch::set_base_offset(&mut corrupt, 9).unwrap();
    let n = corrupt.len();
    corrupt[n - 1] ^= 1;
    assert_eq!(
        log.append_as_follower(&corrupt, 0)
            .unwrap_err()
            .kafka_error_code(),
        2
    );
    assert_eq!(
        fs::read_to_string(dir.path().join(LEADER_EPOCH_CHECKPOINT)).unwrap(),
        "0\n2\n4 0\n7 6\n"
    );
}

#[test]
fn segment_ms_rolls_by_record_timestamps() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        segment_bytes: 1 << 20,
        segment_ms: 1000,
        ..small_config()
    };
    let mut log = PartitionLog::open(dir.path(), config).unwrap();
    append(&mut log, "a", 1, 10_000, 0);
    append(&mut log, "b", 1, 10_900, 0);
    assert_eq!(log.segment_count(), 1);
    append(&mut log, "c", 1, 11_001, 0);
    assert_eq!(log.segment_base_offsets(), vec![0, 2]);
}

#[test]
fn too_large_append_and_delete() {
    let dir = tempfile::tempdir().unwrap();
    let pdir = dir.path().join("t-0");
    let config = LogConfig {
        segment_bytes: 100,
        ..small_config()
    };
    let mut log = PartitionLog::open(&pdir, config).unwrap();
    let mut b = client_batch("big", 10, 0);
    assert_eq!(
        log.append_as_leader(&mut b, 0, 0)
            .unwrap_err()
            .kafka_error_code(),
        18
    );
    let mut garbage = vec![1u8; 30];
    assert_eq!(
        log.append_as_leader(&mut garbage, 0, 0)
            .unwrap_err()
            .kafka_error_code(),
        87
    );
    log.delete().unwrap();
    assert!(!pdir.exists());
}

#[test]
fn checkpoint_files_are_byte_exact() {
    let dir = tempfile::tempdir().unwrap();
    let path = LogDirCheckpoints::recovery_point_path(dir.path());
    assert!(LogDirCheckpoints::read(&path).unwrap().is_empty());
    let mut offsets = BTreeMap::new();
    offsets.insert(("orders".to_string(), 0), 42);
    offsets.insert(("__consumer_offsets".to_string(), 17), 0);
    offsets.insert(("orders".to_string(), 10), 9_000_000_000);
    LogDirCheckpoints::write(&path, &offsets).unwrap();
    assert_eq!(
        fs::read_to_string(&path).unwrap(),
        "0\n3\n__consumer_offsets 17 0\norders 0 42\norders 10 9000000000\n"
    );
    assert!(
        !dir.path()
            .join("recovery-point-offset-checkpoint.tmp")
            .exists()
    );
    assert_eq!(LogDirCheckpoints::read(&path).unwrap(), offsets);

    let hand = LogDirCheckpoints::log_start_offset_path(dir.path());
    fs::write(&hand, "0\n2\nfoo 1 5\nbar-baz 0 7\n").unwrap();
    let read = LogDirCheckpoints::read(&hand).unwrap();
    assert_eq!(read.get(&("foo".into(), 1)), Some(&5));
    assert_eq!(read.get(&("bar-baz".into(), 0)), Some(&7));

    let bad = LogDirCheckpoints::replication_offset_path(dir.path());
    for text in ["1\n0\n", "0\n2\nfoo 1 5\n", "0\n1\nfoo x 5\n", ""] {
        fs::write(&bad, text).unwrap();
        let err = LogDirCheckpoints::read(&bad).unwrap_err();
        assert_eq!(err.kafka_error_code(), 56, "{text:?}");
    }
}

#[test]
fn leader_epoch_checkpoint_is_rebuilt_when_missing() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = PartitionLog::open(dir.path(), small_config()).unwrap();
    append(&mut log, "a", 2, 1, 0);
    append(&mut log, "b", 2, 1, 0);
    append(&mut log, "c", 2, 1, 3);
    log.close().unwrap();
    let path = dir.path().join(LEADER_EPOCH_CHECKPOINT);
    assert_eq!(fs::read_to_string(&path).unwrap(), "0\n2\n0 0\n3 4\n");
    fs::remove_file(&path).unwrap();
    let log = PartitionLog::open(dir.path(), small_config()).unwrap();
    assert_eq!(log.leader_epochs(), &[(0, 0), (3, 4)]);
    assert_eq!(fs::read_to_string(&path).unwrap(), "0\n2\n0 0\n3 4\n");
}

#[derive(Debug, Clone)]
enum Op {
    Append { n: usize, ts: i64 },
    Reopen { clean: bool },
    Truncate { back: i64 },
    Flush,
}

fn arb_op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (1usize..6, 0i64..10_000).prop_map(|(n, ts)| Op::Append { n, ts }),
        1 => any::<bool>().prop_map(|clean| Op::Reopen { clean }),
        1 => (0i64..20).prop_map(|back| Op::Truncate { back }),
        1 => Just(Op::Flush),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]
    #[test]
    fn random_appends_rolls_reopens_and_truncations(ops in proptest::collection::vec(arb_op(), 1..40)) {
        let dir = tempfile::tempdir().unwrap();
        let config = LogConfig { segment_bytes: 400, index_interval_bytes: 64, ..small_config() };
        let mut log = Some(PartitionLog::open(dir.path(), config.clone()).unwrap());
        // The model: every record still in the log, in offset order, plus batch boundaries.
        let mut model: Vec<(i64, Vec<u8>, i64)> = Vec::new();
        let mut batch_starts: Vec<i64> = Vec::new();
        for (step, op) in ops.iter().enumerate() {
            let l = log.as_mut().unwrap();
            match op {
                Op::Append { n, ts } => {
                    let tag = format!("s{step}");
                    let info = append(l, &tag, *n, *ts, 0);
                    prop_assert_eq!(info.first_offset, model.len() as i64);
                    batch_starts.push(info.first_offset);
                    model.extend(expected(&[(tag, *n, *ts)], info.first_offset));
                }
                Op::Reopen { clean } => {
                    let l = log.take().unwrap();
                    if *clean { l.close().unwrap() } else { drop(l) }
                    log = Some(PartitionLog::open(dir.path(), config.clone()).unwrap());
                }
                Op::Truncate { back } => {
                    let target = (model.len() as i64 - back).max(0);
                    l.truncate_to(target).unwrap();
                    // The whole batch holding target goes.
                    let cut = if target >= model.len() as i64 {
                        model.len() as i64
                    } else {
                        batch_starts.iter().copied().filter(|&s| s <= target).max().unwrap_or(0)
                    };
                    batch_starts.retain(|&s| s < cut);
                    model.truncate(cut as usize);
                }
                Op::Flush => l.flush().unwrap(),
            }
            let l = log.as_ref().unwrap();
            prop_assert_eq!(l.log_end_offset(), model.len() as i64);
            prop_assert_eq!(read_all(l, 0), model.clone());
        }
    }
}
