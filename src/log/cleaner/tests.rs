//! Cleaner tests. Results are checked with kafka-protocol's independent batch decoder (it
//! verifies each CRC and decompresses all four codecs) as well as with our own header view.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use bytes::Bytes;
use kafka_protocol::records::{
    Compression as KCompression, Record, RecordBatchDecoder, RecordBatchEncoder,
    RecordEncodeOptions, TimestampType as KTimestampType,
};
use proptest::prelude::*;

use super::*;
use crate::log::LogConfig;
use crate::protocol::record_batch::BatchIter;

const NOW: i64 = 1_000_000;
const RETENTION: i64 = 10_000;

fn log_config() -> LogConfig {
    LogConfig {
        segment_bytes: 2048,
        index_interval_bytes: 200,
        max_index_size: 4096,
        ..LogConfig::default()
    }
}

fn compaction() -> CompactionConfig {
    CompactionConfig {
        delete_retention_ms: RETENTION,
        min_compaction_lag_ms: 0,
        max_compaction_lag_ms: i64::MAX,
        min_cleanable_dirty_ratio: 0.0,
    }
}

/// (key, value) of one record; `None` value is a tombstone, `None` key an unkeyed record.
type Kv = (Option<Vec<u8>>, Option<Vec<u8>>);

fn batch(records: &[Kv], codec: KCompression, producer: Option<(i64, i32)>) -> Vec<u8> {
    let recs: Vec<Record> = records
        .iter()
        .enumerate()
        .map(|(i, (k, v))| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: 0,
            producer_id: producer.map_or(-1, |p| p.0),
            producer_epoch: producer.map_or(-1, |_| 0),
            timestamp_type: KTimestampType::Creation,
            offset: i as i64,
            // offset - sequence must be constant or the encoder splits the batch.
            sequence: producer.map_or(i as i32 - 1, |p| p.1 + i as i32),
            timestamp: 500 + i as i64,
            key: k.clone().map(Bytes::from),
            value: v.clone().map(Bytes::from),
            headers: Default::default(),
        })
        .collect();
    let mut buf = bytes::BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        &recs,
        &RecordEncodeOptions {
            version: 2,
            compression: codec,
        },
    )
    .unwrap();
    buf.to_vec()
}

/// `n` bytes that compress poorly, so compressed test logs still span several segments.
fn noise(seed: u64, n: usize) -> String {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            char::from(b'a' + (x % 26) as u8)
        })
        .collect()
}

fn kv(k: &str, v: Option<&str>) -> Kv {
    (
        Some(k.as_bytes().to_vec()),
        v.map(|v| v.as_bytes().to_vec()),
    )
}

/// One record as read back: offset, key, value, plus its batch's base offset.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Read {
    offset: i64,
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
}

/// Every stored batch (whole bytes) from the log start, following next_fetch_offset.
fn read_batches(log: &PartitionLog) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut offset = log.log_start_offset();
    while offset < log.log_end_offset() {
        let info = log.read(offset, 1 << 20, None, true).unwrap();
        assert!(!info.records.is_empty(), "no progress at {offset}");
        for b in BatchIter::new(&info.records) {
            let b = b.unwrap();
            assert!(
                b.is_crc_valid(),
                "bad CRC in batch at {}",
                b.header.base_offset()
            );
            out.push(b.bytes.to_vec());
        }
        offset = info.next_fetch_offset;
    }
    out
}

fn decode_all(batches: &[Vec<u8>]) -> Vec<Read> {
    let mut out = Vec::new();
    for b in batches {
        let mut bytes = Bytes::copy_from_slice(b);
        let set = RecordBatchDecoder::decode(&mut bytes).unwrap();
        for r in set.records {
            out.push(Read {
                offset: r.offset,
                key: r.key.map(|k| k.to_vec()),
                value: r.value.map(|v| v.to_vec()),
            });
        }
    }
    out
}

fn run_round(
    log: &mut PartitionLog,
    checkpoint: Option<i64>,
    map: &mut OffsetMap,
    now: i64,
) -> Option<(CleanOutcome, CleanerStats)> {
    let hw = log.log_end_offset();
    let plan = log
        .prepare_clean(&compaction(), checkpoint, hw, now)
        .unwrap()?;
    let cleaned = plan.clean(map, None).unwrap();
    let stats = cleaned.stats.clone();
    Some((log.commit_clean(cleaned).unwrap(), stats))
}

fn active_bytes(log: &PartitionLog) -> Vec<u8> {
    let base = *log.segment_base_offsets().last().unwrap();
    std::fs::read(&log.segment_paths(base)[0]).unwrap()
}

fn append_all(log: &mut PartitionLog, batches: &[Vec<u8>]) -> Vec<(i64, i64)> {
    batches
        .iter()
        .map(|b| {
            let mut b = b.clone();
            let info = log.append_as_leader(&mut b, 0, NOW).unwrap();
            (info.first_offset, info.last_offset)
        })
        .collect()
}

#[test]
fn keeps_latest_per_key_and_tombstones_until_the_horizon() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = PartitionLog::open(dir.path(), log_config()).unwrap();
    let mut batches = Vec::new();
    for round in 0..6 {
        let mut recs = Vec::new();
        for k in (0..4).filter(|&k| round <= 3 || k != 1) {
            recs.push(kv(
                &format!("k{k}"),
                Some(&format!("v{round}-{k}-{}", "x".repeat(150))),
            ));
        }
        if round == 3 {
            recs.push(kv("k1", None)); // delete k1 after its round-3 value
            recs.push((None, Some(b"no key".to_vec())));
        }
        batches.push(batch(&recs, KCompression::None, None));
    }
    append_all(&mut log, &batches);
    assert!(log.segment_count() >= 3, "{}", log.segment_count());
    let before = decode_all(&read_batches(&log));
    let active_before = active_bytes(&log);
    let active_base = *log.segment_base_offsets().last().unwrap();

    let mut map = OffsetMap::new(1 << 20, 0.9);
    let (outcome, stats) = run_round(&mut log, None, &mut map, NOW).unwrap();
    assert_eq!(outcome.first_dirty_offset, Some(active_base));
    assert!(stats.batches_rewritten > 0);
    assert_eq!(active_bytes(&log), active_before, "active segment changed");

    let after_batches = read_batches(&log);
    let after = decode_all(&after_batches);
    // Expected: below the active segment, each key's last record; at and above it, everything.
    let mut last: HashMap<Vec<u8>, i64> = HashMap::new();
    for r in before.iter().filter(|r| r.offset < active_base) {
        if let Some(k) = &r.key {
            last.insert(k.clone(), r.offset);
        }
    }
    let expected: Vec<Read> = before
        .iter()
        .filter(|r| r.offset >= active_base || r.key.as_ref().is_some_and(|k| last[k] == r.offset))
        .cloned()
        .collect();
    assert_eq!(after, expected);
    assert!(after.windows(2).all(|w| w[0].offset < w[1].offset));

    // The tombstone (k1's last record) survived, and its batch now carries the delete horizon
    // as baseTimestamp.
    let tombstone = after
        .iter()
        .find(|r| r.key.as_deref() == Some(b"k1") && r.value.is_none());
    assert!(tombstone.is_some_and(|t| t.offset < active_base));
    if let Some(t) = tombstone {
        let holder = after_batches
            .iter()
            .find(|b| {
                let h = BatchHeader::parse(b).unwrap();
                h.base_offset() <= t.offset && t.offset <= h.last_offset()
            })
            .unwrap();
        let h = BatchHeader::parse(holder).unwrap();
        assert!(h.has_delete_horizon());
        assert_eq!(h.base_timestamp(), NOW + RETENTION);
    }

    // A fetch from an offset that was cleaned away returns the next kept batch.
    let removed = before
        .iter()
        .map(|r| r.offset)
        .find(|o| !after.iter().any(|r| r.offset == *o))
        .unwrap();
    let info = log.read(removed, 1 << 20, None, true).unwrap();
    let first = decode_all(&[BatchIter::new(&info.records)
        .next()
        .unwrap()
        .unwrap()
        .bytes
        .to_vec()]);
    assert!(first.iter().any(|r| r.offset > removed));
    assert_eq!(
        first,
        after
            .iter()
            .filter(|r| first.contains(r))
            .cloned()
            .collect::<Vec<_>>()
    );

    // Reopening finds the same records (indexes written by the cleaner load as valid).
    drop(log);
    let mut log = PartitionLog::open(dir.path(), log_config()).unwrap();
    assert_eq!(decode_all(&read_batches(&log)), after);

    // New data rolls more segments; a later round past the horizon drops the tombstone.
    let more: Vec<Vec<u8>> = (0..4)
        .map(|i| {
            batch(
                &[kv("k9", Some(&format!("late-{i}-{}", "y".repeat(300))))],
                KCompression::None,
                None,
            )
        })
        .collect();
    append_all(&mut log, &more);
    let (outcome, _) = run_round(
        &mut log,
        outcome.first_dirty_offset,
        &mut map,
        NOW + RETENTION + 1,
    )
    .unwrap();
    assert!(outcome.first_dirty_offset.is_some());
    let final_records = decode_all(&read_batches(&log));
    assert!(
        !final_records
            .iter()
            .any(|r| r.key.as_deref() == Some(b"k1") && r.value.is_none())
    );
    assert!(!final_records.iter().any(|r| r.key.is_none()));
}

#[test]
fn compressed_batches_are_rebuilt_with_their_codec() {
    for codec in [
        KCompression::Gzip,
        KCompression::Snappy,
        KCompression::Lz4,
        KCompression::Zstd,
    ] {
        let dir = tempfile::tempdir().unwrap();
        let mut log = PartitionLog::open(dir.path(), log_config()).unwrap();
        let mut batches = Vec::new();
        for round in 0..8 {
            let recs: Vec<Kv> = (0..5)
                .map(|k| {
                    kv(
                        &format!("key-{}", (k + round) % 7),
                        Some(&format!("{round}:{k}:{}", noise(round * 10 + k, 200))),
                    )
                })
                .collect();
            batches.push(batch(&recs, codec, None));
        }
        append_all(&mut log, &batches);
        let before = decode_all(&read_batches(&log));
        let codecs_before: BTreeMap<i64, u8> = read_batches(&log)
            .iter()
            .map(|b| {
                let h = BatchHeader::parse(b).unwrap();
                (h.base_offset(), h.compression_id())
            })
            .collect();
        let active_base = *log.segment_base_offsets().last().unwrap();
        let mut map = OffsetMap::new(1 << 16, 0.9);
        let (_, stats) = run_round(&mut log, None, &mut map, NOW).unwrap();
        assert!(stats.batches_rewritten > 0, "{codec:?}: {stats:?}");
        let after_batches = read_batches(&log);
        for b in &after_batches {
            let h = BatchHeader::parse(b).unwrap();
            assert_eq!(
                Some(&h.compression_id()),
                codecs_before.get(&h.base_offset()),
                "{codec:?}"
            );
        }
        let after = decode_all(&after_batches);
        let mut last: HashMap<Vec<u8>, i64> = HashMap::new();
        for r in before.iter().filter(|r| r.offset < active_base) {
            last.insert(r.key.clone().unwrap(), r.offset);
        }
        let expected: Vec<Read> = before
            .iter()
            .filter(|r| r.offset >= active_base || last[r.key.as_ref().unwrap()] == r.offset)
            .cloned()
            .collect();
        assert_eq!(after, expected, "{codec:?}");
    }
}

#[test]
fn the_last_batch_of_a_producer_keeps_an_empty_header() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = PartitionLog::open(dir.path(), log_config()).unwrap();
    let pad = "p".repeat(600);
    let batches = vec![
        batch(
            &[kv("a", Some(&pad)), kv("b", Some(&pad))],
            KCompression::None,
            Some((7, 0)),
        ),
        batch(
            &[kv("a", Some(&pad)), kv("b", Some(&pad))],
            KCompression::None,
            Some((7, 2)),
        ),
        batch(
            &[kv("a", Some(&pad)), kv("b", Some(&pad))],
            KCompression::None,
            None,
        ),
        batch(
            &[kv("a", Some(&pad)), kv("b", Some(&pad))],
            KCompression::None,
            None,
        ),
        batch(
            &[kv("a", Some(&pad)), kv("b", Some(&pad))],
            KCompression::None,
            None,
        ),
        batch(&[kv("c", Some("active"))], KCompression::None, None),
    ];
    let offsets = append_all(&mut log, &batches);
    // One batch per segment; the last two share the active one.
    assert_eq!(log.segment_count(), 5);
    let mut map = OffsetMap::new(1 << 16, 0.9);
    run_round(&mut log, None, &mut map, NOW).unwrap();
    let after = read_batches(&log);
    let headers: Vec<(i64, i32, i32, i64, i32)> = after
        .iter()
        .map(|b| {
            let h = BatchHeader::parse(b).unwrap();
            (
                h.base_offset(),
                h.last_offset_delta(),
                h.records_count(),
                h.producer_id(),
                h.base_sequence(),
            )
        })
        .collect();
    // Producer 7's first batch is gone; its last one stays as an empty header with its offsets
    // and sequence; the superseded plain batch at offset 4 is gone; offset 6 is the latest
    // below the active segment.
    assert_eq!(
        headers,
        vec![
            (offsets[1].0, 1, 0, 7, 2),
            (offsets[3].0, 1, 2, -1, -1),
            (offsets[4].0, 1, 2, -1, -1),
            (offsets[5].0, 0, 1, -1, -1),
        ]
    );
}

#[test]
fn a_tiny_offset_map_cleans_in_several_correct_rounds() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = PartitionLog::open(dir.path(), log_config()).unwrap();
    let batches: Vec<Vec<u8>> = (0..30)
        .map(|i| {
            batch(
                &[kv(
                    &format!("k{}", i % 5),
                    Some(&format!("{i}-{}", "v".repeat(100))),
                )],
                KCompression::None,
                None,
            )
        })
        .collect();
    append_all(&mut log, &batches);
    let before = decode_all(&read_batches(&log));
    let active_base = *log.segment_base_offsets().last().unwrap();
    // Two slots: the map holds one key per round.
    let mut map = OffsetMap::new(2 * OFFSET_MAP_ENTRY_BYTES, 0.9);
    assert_eq!(map.max_entries(), 1);
    let mut checkpoint = None;
    let mut rounds = 0;
    while let Some((outcome, _)) = run_round(&mut log, checkpoint, &mut map, NOW) {
        let end = outcome.first_dirty_offset.unwrap();
        assert!(checkpoint.is_none_or(|c| end > c), "no progress");
        checkpoint = Some(end);
        rounds += 1;
        // Every key's latest record overall is still there after each round.
        let now = decode_all(&read_batches(&log));
        let mut last: HashMap<Vec<u8>, &Read> = HashMap::new();
        for r in &before {
            last.insert(r.key.clone().unwrap(), r);
        }
        for r in last.values() {
            assert!(now.contains(r), "lost {r:?} after round {rounds}");
        }
        assert!(rounds < 100);
    }
    assert!(
        rounds > 1,
        "expected a partial clean per round, got {rounds}"
    );
    assert_eq!(checkpoint, Some(active_base));
    // One more round with a large map leaves exactly one record per key below the active
    // segment (the latest), whatever the tiny rounds left.
    let mut big = OffsetMap::new(1 << 16, 0.9);
    let plan = log
        .prepare_clean(
            &compaction(),
            Some(log.log_start_offset()),
            log.log_end_offset(),
            NOW,
        )
        .unwrap()
        .unwrap();
    let cleaned = plan.clean(&mut big, None).unwrap();
    log.commit_clean(cleaned).unwrap();
    let after = decode_all(&read_batches(&log));
    let mut last: HashMap<Vec<u8>, i64> = HashMap::new();
    for r in before.iter().filter(|r| r.offset < active_base) {
        last.insert(r.key.clone().unwrap(), r.offset);
    }
    let expected: Vec<Read> = before
        .iter()
        .filter(|r| r.offset >= active_base || last[r.key.as_ref().unwrap()] == r.offset)
        .cloned()
        .collect();
    assert_eq!(after, expected);
}

#[test]
fn nothing_to_clean_below_the_ratio_or_with_one_segment() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = PartitionLog::open(dir.path(), log_config()).unwrap();
    append_all(
        &mut log,
        &[batch(&[kv("a", Some("1"))], KCompression::None, None)],
    );
    assert!(
        log.prepare_clean(&compaction(), None, 100, NOW)
            .unwrap()
            .is_none()
    );
    let big: Vec<Vec<u8>> = (0..6)
        .map(|i| {
            batch(
                &[kv("a", Some(&format!("{i}{}", "q".repeat(900))))],
                KCompression::None,
                None,
            )
        })
        .collect();
    append_all(&mut log, &big);
    let hw = log.log_end_offset();
    let strict = CompactionConfig {
        min_cleanable_dirty_ratio: 1.0,
        ..compaction()
    };
    assert!(log.prepare_clean(&strict, None, hw, NOW).unwrap().is_none());
    // A high watermark inside the first segment leaves nothing cleanable.
    assert!(
        log.prepare_clean(&compaction(), None, 1, NOW)
            .unwrap()
            .is_none()
    );
    // min.compaction.lag.ms: records with timestamps near NOW are too young.
    let lagged = CompactionConfig {
        min_compaction_lag_ms: 1_000_000_000,
        ..compaction()
    };
    assert!(log.prepare_clean(&lagged, None, hw, NOW).unwrap().is_none());
    // max.compaction.lag.ms forces a round the ratio alone would not start.
    let forced = CompactionConfig {
        max_compaction_lag_ms: 1,
        ..strict
    };
    let plan = log.prepare_clean(&forced, None, hw, NOW).unwrap().unwrap();
    assert!(plan.forced);
}

#[test]
fn a_truncation_during_cleaning_voids_the_round() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = PartitionLog::open(dir.path(), log_config()).unwrap();
    let batches: Vec<Vec<u8>> = (0..10)
        .map(|i| {
            batch(
                &[kv(&format!("k{}", i % 2), Some(&"w".repeat(500)))],
                KCompression::None,
                None,
            )
        })
        .collect();
    append_all(&mut log, &batches);
    let before = read_batches(&log);
    let plan = log
        .prepare_clean(&compaction(), None, log.log_end_offset(), NOW)
        .unwrap()
        .unwrap();
    let mut map = OffsetMap::new(1 << 16, 0.9);
    let cleaned = plan.clean(&mut map, None).unwrap();
    log.truncate_to(3).unwrap();
    let outcome = log.commit_clean(cleaned).unwrap();
    assert_eq!(outcome.first_dirty_offset, None);
    assert_eq!(outcome.segments_replaced, 0);
    let after = read_batches(&log);
    assert_eq!(after[..], before[..after.len()]);
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .ends_with(CLEANED_FILE_SUFFIX)
        })
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn appends_during_cleaning_are_kept() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = PartitionLog::open(dir.path(), log_config()).unwrap();
    let batches: Vec<Vec<u8>> = (0..8)
        .map(|i| {
            batch(
                &[kv(&format!("k{}", i % 2), Some(&"w".repeat(500)))],
                KCompression::None,
                None,
            )
        })
        .collect();
    append_all(&mut log, &batches);
    let plan = log
        .prepare_clean(&compaction(), None, log.log_end_offset(), NOW)
        .unwrap()
        .unwrap();
    // Produce goes on (and rolls) while the cleaner works on its snapshot.
    append_all(&mut log, &batches);
    let tail_from = plan.first_uncleanable_offset;
    let tail_before: Vec<Read> = decode_all(&read_batches(&log))
        .into_iter()
        .filter(|r| r.offset >= tail_from)
        .collect();
    let mut map = OffsetMap::new(1 << 16, 0.9);
    let cleaned = plan.clean(&mut map, None).unwrap();
    let outcome = log.commit_clean(cleaned).unwrap();
    assert_eq!(outcome.first_dirty_offset, Some(tail_from));
    let after = decode_all(&read_batches(&log));
    let tail_after: Vec<Read> = after
        .iter()
        .filter(|r| r.offset >= tail_from)
        .cloned()
        .collect();
    assert_eq!(tail_after, tail_before);
    assert_eq!(after.iter().filter(|r| r.offset < tail_from).count(), 2);
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

/// Leaves the files a crash would leave at each point of the swap, reopens, and expects either
/// the original records (before the commit point) or the cleaned ones (after it).
#[test]
fn a_crash_in_the_middle_of_a_swap_recovers() {
    #[derive(Debug, Clone, Copy)]
    enum Crash {
        CleanedOnly,
        At(SwapStep),
        IndexRenamedLogNot,
    }
    for crash in [
        Crash::CleanedOnly,
        Crash::At(SwapStep::Swapped),
        Crash::At(SwapStep::OldDeleted),
        Crash::IndexRenamedLogNot,
    ] {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("t-0");
        let mut log = PartitionLog::open(&dir, log_config()).unwrap();
        let batches: Vec<Vec<u8>> = (0..12)
            .map(|i| {
                batch(
                    &[kv(
                        &format!("k{}", i % 3),
                        Some(&format!("{i}{}", "c".repeat(400))),
                    )],
                    KCompression::None,
                    None,
                )
            })
            .collect();
        append_all(&mut log, &batches);
        let original = decode_all(&read_batches(&log));
        let plan = log
            .prepare_clean(&compaction(), None, log.log_end_offset(), NOW)
            .unwrap()
            .unwrap();
        let mut map = OffsetMap::new(1 << 16, 0.9);
        let mut cleaned = plan.clean(&mut map, None).unwrap();
        // The reference result: the same cleaned files committed normally in a copy.
        let reference_dir = root.path().join("t-1");
        copy_dir(&dir, &reference_dir);
        let expected = {
            let mut reference = PartitionLog::open(&reference_dir, log_config()).unwrap();
            let leftovers = std::fs::read_dir(&reference_dir)
                .unwrap()
                .filter(|e| {
                    e.as_ref()
                        .unwrap()
                        .file_name()
                        .to_string_lossy()
                        .contains(".cleaned")
                })
                .count();
            // Opening the copy rolled the copied `.cleaned` files back, so clean it again.
            assert_eq!(leftovers, 0);
            let plan = reference
                .prepare_clean(&compaction(), None, reference.log_end_offset(), NOW)
                .unwrap()
                .unwrap();
            let c = plan.clean(&mut map, None).unwrap();
            reference.commit_clean(c).unwrap();
            decode_all(&read_batches(&reference))
        };
        assert_ne!(expected, original);
        for group in &mut cleaned.groups {
            let bases: Vec<i64> = group.replaced.iter().map(|&(b, _)| b).collect();
            match crash {
                Crash::CleanedOnly => {}
                Crash::At(step) => swap_in(&dir, group.base_offset, &bases, step).unwrap(),
                Crash::IndexRenamedLogNot => {
                    swap_in(&dir, group.base_offset, &bases, SwapStep::OldDeleted).unwrap();
                    let index = dir.join(segment_file_name(group.base_offset, ".index"));
                    std::fs::rename(with_suffix(&index, SWAP_FILE_SUFFIX), &index).unwrap();
                }
            }
            group.pending = matches!(crash, Crash::CleanedOnly);
        }
        std::mem::forget(cleaned);
        drop(log);
        let log = PartitionLog::open(&dir, log_config()).unwrap();
        let recovered = decode_all(&read_batches(&log));
        match crash {
            Crash::CleanedOnly => assert_eq!(recovered, original, "{crash:?}"),
            _ => assert_eq!(recovered, expected, "{crash:?}"),
        }
        let names: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(
            !names
                .iter()
                .any(|n| n.ends_with(".cleaned") || n.ends_with(".swap")),
            "{crash:?}: {names:?}"
        );
    }
}

#[test]
fn codecs_round_trip_and_refuse_bombs() {
    let data: Vec<u8> = (0..100_000u32)
        .flat_map(|i| (i % 251).to_be_bytes())
        .collect();
    for codec in [
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ] {
        let mut c = Vec::new();
        compress(codec, &data, &mut c).unwrap();
        let mut d = vec![1, 2, 3];
        decompress(codec, &c, data.len(), &mut d).unwrap();
        assert_eq!(&d[..3], &[1, 2, 3]);
        assert_eq!(&d[3..], &data[..], "{codec:?}");
        let mut small = Vec::new();
        assert!(
            decompress(codec, &c, data.len() - 1, &mut small).is_err(),
            "{codec:?}"
        );
    }
    // Raw (unframed) snappy, as librdkafka writes, is read too.
    let raw = snap::raw::Encoder::new().compress_vec(&data).unwrap();
    let mut d = Vec::new();
    decompress(Compression::Snappy, &raw, data.len(), &mut d).unwrap();
    assert_eq!(d, data);
}

#[test]
fn offset_map_updates_keys_and_stops_when_full() {
    let mut map = OffsetMap::new(10 * OFFSET_MAP_ENTRY_BYTES, 0.5);
    assert_eq!((map.slots(), map.max_entries()), (10, 5));
    for i in 0..5 {
        let h = map.hash(format!("key{i}").as_bytes());
        assert!(map.put(h, i));
    }
    let h6 = map.hash(b"key6");
    assert!(!map.put(h6, 6), "a new key must not fit");
    let h0 = map.hash(b"key0");
    assert!(map.put(h0, 60), "an existing key is updated");
    assert_eq!(map.get(h0), Some(60));
    assert_eq!(map.get(h6), None);
    assert_eq!(map.len(), 5);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// Random keyed appends, updates and deletes over many segments, any codec, any map size:
    /// after rounds of cleaning every key's latest record is there at its offset, nothing else
    /// below the cleaned range's end survives for a key, offsets increase, CRCs hold, and the
    /// active segment is untouched.
    #[test]
    fn cleaning_keeps_exactly_the_latest_record_per_key(
        ops in proptest::collection::vec(
            (proptest::collection::vec((0u8..12, proptest::option::weighted(0.85, 0usize..120)), 1..6), 0usize..5),
            4..40,
        ),
        map_entries in 1usize..40,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let mut log = PartitionLog::open(dir.path(), log_config()).unwrap();
        let codecs = [KCompression::None, KCompression::Gzip, KCompression::Snappy, KCompression::Lz4, KCompression::Zstd];
        let batches: Vec<Vec<u8>> = ops
            .iter()
            .enumerate()
            .map(|(i, (recs, codec))| {
                let recs: Vec<Kv> = recs
                    .iter()
                    .map(|(k, v)| (Some(vec![b'k', *k]), v.map(|n| format!("{i}:{}", "v".repeat(n)).into_bytes())))
                    .collect();
                batch(&recs, codecs[*codec], None)
            })
            .collect();
        append_all(&mut log, &batches);
        let before = decode_all(&read_batches(&log));
        let active_before = active_bytes(&log);
        let active_base = *log.segment_base_offsets().last().unwrap();
        let mut map = OffsetMap::new((map_entries + 1) * OFFSET_MAP_ENTRY_BYTES, 0.99);
        let mut checkpoint = None;
        let mut rounds = 0;
        while let Some((outcome, _)) = run_round(&mut log, checkpoint, &mut map, NOW) {
            checkpoint = outcome.first_dirty_offset;
            rounds += 1;
            prop_assert!(rounds < 200);
        }
        prop_assert_eq!(active_bytes(&log), active_before);
        let after = decode_all(&read_batches(&log));
        prop_assert!(after.windows(2).all(|w| w[0].offset < w[1].offset));
        for r in &after {
            prop_assert!(before.contains(r), "invented {:?}", r);
        }
        let mut last: HashMap<Vec<u8>, &Read> = HashMap::new();
        for r in &before {
            last.insert(r.key.clone().unwrap(), r);
        }
        for r in last.values() {
            prop_assert!(after.contains(r), "lost latest {:?}", r);
        }
        if rounds > 0 {
            prop_assert_eq!(checkpoint, Some(active_base));
            // A final round with room for every key leaves one record per key below the
            // active segment; tombstones stay (their horizon has not passed).
            let mut big = OffsetMap::new(1 << 16, 0.9);
            let plan = log.prepare_clean(&compaction(), Some(log.log_start_offset()), log.log_end_offset(), NOW).unwrap().unwrap();
            log.commit_clean(plan.clean(&mut big, None).unwrap()).unwrap();
            let after = decode_all(&read_batches(&log));
            let mut last_below: HashMap<Vec<u8>, i64> = HashMap::new();
            for r in before.iter().filter(|r| r.offset < active_base) {
                last_below.insert(r.key.clone().unwrap(), r.offset);
            }
            let expected: Vec<Read> = before
                .iter()
                .filter(|r| r.offset >= active_base || last_below[r.key.as_ref().unwrap()] == r.offset)
                .cloned()
                .collect();
            prop_assert_eq!(&after, &expected);
            // Past the horizon the tombstones below the active segment go as well.
            let plan = log.prepare_clean(&compaction(), Some(log.log_start_offset()), log.log_end_offset(), NOW + RETENTION).unwrap().unwrap();
            log.commit_clean(plan.clean(&mut big, None).unwrap()).unwrap();
            let gone = decode_all(&read_batches(&log));
            let expected: Vec<Read> = expected
                .into_iter()
                .filter(|r| r.offset >= active_base || r.value.is_some())
                .collect();
            prop_assert_eq!(gone, expected);
        }
    }
}

/// Compaction throughput: `KRAFTD_CLEANER_BENCH_MB=256 cargo test --release --lib
/// cleaner_throughput -- --ignored --nocapture`. 100-byte records in 16 KiB batches, 10% of
/// the records' keys unique.
#[test]
#[ignore]
fn cleaner_throughput() {
    let mb: usize = std::env::var("KRAFTD_CLEANER_BENCH_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(64);
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        segment_bytes: 64 * 1024 * 1024,
        ..LogConfig::default()
    };
    let mut log = PartitionLog::open(dir.path(), config).unwrap();
    let total_records = mb * 1024 * 1024 / 100;
    let unique = total_records / 10;
    let per_batch = 16 * 1024 / 100;
    let mut appended = 0usize;
    let value = [b'x'; 80];
    let mut state = 0x2545_f491_4f6c_dd1du64;
    while appended < total_records {
        let keys: Vec<String> = (0..per_batch)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                format!("key-{:08}", state as usize % unique)
            })
            .collect();
        let recs: Vec<crate::protocol::record_batch::NewRecord<'_>> = keys
            .iter()
            .map(|k| crate::protocol::record_batch::NewRecord {
                key: Some(k.as_bytes()),
                value: Some(&value[..]),
                headers: &[],
                timestamp: NOW,
            })
            .collect();
        let mut b = crate::protocol::record_batch::encode_batch(
            &recs,
            &crate::protocol::record_batch::BatchOptions::default(),
        );
        log.append_as_leader(&mut b, 0, NOW).unwrap();
        appended += per_batch;
    }
    // Roll so that everything is cleanable.
    let mut last = batch(&[kv("last", Some("x"))], KCompression::None, None);
    let config = log.config().clone();
    log.set_config(LogConfig {
        segment_bytes: 128,
        ..config.clone()
    });
    log.append_as_leader(&mut last, 0, NOW).unwrap();
    log.set_config(config);
    log.flush().unwrap();
    let size = log.size_in_bytes();
    let mut map = OffsetMap::new(DEFAULT_DEDUPE_BUFFER_SIZE, DEFAULT_DEDUPE_LOAD_FACTOR);
    let start = Instant::now();
    let plan = log
        .prepare_clean(&compaction(), None, log.log_end_offset(), NOW)
        .unwrap()
        .unwrap();
    let cleaned = plan.clean(&mut map, None).unwrap();
    let clean_time = start.elapsed();
    let stats = cleaned.stats.clone();
    let commit_start = Instant::now();
    let outcome = log.commit_clean(cleaned).unwrap();
    let commit_time = commit_start.elapsed();
    println!(
        "cleaned {:.1} MiB ({} records, {} kept) in {:.2}s = {:.1} MB/s; read {:.1} MiB, \
         wrote {:.1} MiB; commit under lock {:.1} ms; {:?}",
        size as f64 / 1048576.0,
        stats.records_read,
        stats.records_retained,
        clean_time.as_secs_f64(),
        size as f64 / 1e6 / clean_time.as_secs_f64(),
        stats.bytes_read as f64 / 1048576.0,
        stats.bytes_written as f64 / 1048576.0,
        commit_time.as_secs_f64() * 1e3,
        outcome,
    );
}
