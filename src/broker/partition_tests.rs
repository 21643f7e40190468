//! One partition replicated between a leader and followers, each a real log in a temp dir: the
//! leader's side of follower fetches (positions, high watermark, diverging epochs) and the
//! follower's appends and truncations, as Kafka's Partition and fetcher threads do them.

use bytes::Bytes;

use super::*;
use crate::log::{LogConfig, PartitionLog};
use crate::metadata::MetadataImage;
use crate::metadata::records::{MetadataRecord, RegisterBrokerRecord};
use crate::protocol::record_batch::{BatchOptions, NewRecord, encode_batch};

const LAG: i64 = 30_000;

fn batch(values: &[&str]) -> Bytes {
    let records: Vec<NewRecord<'_>> = values
        .iter()
        .map(|v| NewRecord {
            key: None,
            value: Some(v.as_bytes()),
            headers: &[],
            timestamp: 1_000,
        })
        .collect();
    Bytes::from(encode_batch(&records, &BatchOptions::default()))
}

fn brokers(ids: &[i32]) -> BrokerStates {
    let mut image = MetadataImage::default();
    for &id in ids {
        image.apply(&MetadataRecord::RegisterBroker(RegisterBrokerRecord {
            broker_id: id,
            broker_epoch: 100 + id as i64,
            fenced: false,
            ..RegisterBrokerRecord::default()
        }));
    }
    BrokerStates::from_image(&image)
}

fn registration(isr: &[i32], leader: i32, epoch: i32, pe: i32) -> PartitionRegistration {
    PartitionRegistration {
        replicas: vec![1, 2, 3],
        isr: isr.to_vec(),
        leader,
        leader_epoch: epoch,
        partition_epoch: pe,
    }
}

struct Replica {
    _dir: tempfile::TempDir,
    p: Partition,
}

fn replica(node: i32) -> Replica {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = PartitionLog::open(&dir.path().join("t-0"), LogConfig::default()).expect("log");
    let p = Partition::new("t".into(), Uuid::nil(), 0, log, node, LAG, 0);
    Replica { _dir: dir, p }
}

fn follower_fetch(replica_id: i32, fetch_offset: i64, last_fetched_epoch: i32) -> FollowerFetch {
    FollowerFetch {
        replica_id,
        replica_epoch: 100 + replica_id as i64,
        fetch_offset,
        last_fetched_epoch,
        current_leader_epoch: -1,
        log_start_offset: 0,
    }
}

/// What the leader answers `follower`'s fetch at its log end; appended as the fetcher would.
fn replicate(leader: &Partition, follower: &Partition, follower_id: i32, now: i64) -> i64 {
    let pos = follower.follower_position().expect("following");
    let read = leader
        .read_for_follower(
            &follower_fetch(follower_id, pos.fetch_offset, pos.last_fetched_epoch),
            1 << 20,
            true,
            true,
            LeaderContext {
                now_ms: now,
                brokers: &brokers(&[1, 2, 3]),
                local_broker_epoch: 101,
            },
        )
        .expect("read");
    assert_eq!(read.diverging_epoch, None);
    follower
        .append_as_follower(
            pos.leader_epoch,
            &read.data.records,
            read.data.high_watermark,
            read.data.log_start_offset,
        )
        .expect("append");
    follower.log_end_offset()
}

#[test]
fn a_follower_refuses_produce_and_a_leader_commits_only_what_the_isr_has() {
    let b = brokers(&[1, 2, 3]);
    let (l, f2, f3) = (replica(1), replica(2), replica(3));
    let reg = registration(&[1, 2, 3], 1, 0, 0);
    for r in [&l, &f2, &f3] {
        r.p.apply_registration(&reg, 1, 0, &b).expect("apply");
    }
    assert!(l.p.is_leader() && !f2.p.is_leader());
    assert_eq!(
        f2.p.append_records_as_leader(&batch(&["x"]), 1 << 20, -1, 0, &b),
        Err(BrokerError::NotLeaderOrFollower)
    );
    let r =
        l.p.append_records_as_leader(&batch(&["a", "b"]), 1 << 20, -1, 0, &b)
            .expect("append");
    assert_eq!((r.base_offset, r.required_offset), (0, 2));
    assert!(!r.high_watermark_advanced, "the followers have nothing yet");
    assert_eq!(l.p.check_enough_replicas_reach_offset(2), Ok(false));
    // Consumers see nothing above the high watermark.
    assert!(l.p.read(0, 1 << 20, true).expect("read").records.is_empty());

    assert_eq!(replicate(&l.p, &f2.p, 2, 10), 2);
    assert_eq!(
        l.p.high_watermark(),
        0,
        "follower 3 is in the ISR and has nothing"
    );
    assert_eq!(replicate(&l.p, &f3.p, 3, 10), 2);
    // The followers' next fetches report their new ends.
    replicate(&l.p, &f2.p, 2, 20);
    replicate(&l.p, &f3.p, 3, 20);
    assert_eq!(l.p.high_watermark(), 2);
    assert_eq!(l.p.check_enough_replicas_reach_offset(2), Ok(true));
    // The followers learn it with their next answer, bounded by their own ends.
    replicate(&l.p, &f2.p, 2, 30);
    assert_eq!(f2.p.high_watermark(), 2);
    assert_eq!(
        l.p.read(0, 1 << 20, true).expect("read").records.len(),
        batch(&["a", "b"]).len()
    );
}

#[test]
fn min_insync_replicas_refuses_acks_all_but_not_acks_one() {
    let b = brokers(&[1, 2, 3]);
    let l = replica(1);
    l.p.apply_registration(&registration(&[1], 1, 0, 0), 2, 0, &b)
        .expect("apply");
    assert!(matches!(
        l.p.append_records_as_leader(&batch(&["a"]), 1 << 20, -1, 0, &b),
        Err(BrokerError::NotEnoughReplicas {
            isr_size: 1,
            min_isr: 2
        })
    ));
    assert_eq!(l.p.log_end_offset(), 0, "nothing was written");
    let r =
        l.p.append_records_as_leader(&batch(&["a"]), 1 << 20, 1, 0, &b)
            .expect("acks=1");
    assert_eq!(r.base_offset, 0);
    // Under min ISR the high watermark stays (Kafka since KIP-966).
    assert_eq!(l.p.high_watermark(), 0);
}

#[test]
fn fetches_with_stale_or_future_leader_epochs_are_refused() {
    let b = brokers(&[1, 2, 3]);
    let l = replica(1);
    l.p.apply_registration(&registration(&[1, 2, 3], 1, 5, 5), 1, 0, &b)
        .expect("apply");
    let read = |epoch| {
        l.p.read_for_follower(
            &FollowerFetch {
                current_leader_epoch: epoch,
                ..follower_fetch(2, 0, -1)
            },
            1024,
            true,
            true,
            LeaderContext {
                now_ms: 0,
                brokers: &b,
                local_broker_epoch: 101,
            },
        )
        .map(|_| ())
    };
    assert_eq!(read(4), Err(BrokerError::FencedLeaderEpoch));
    assert_eq!(read(6), Err(BrokerError::UnknownLeaderEpoch));
    assert_eq!(read(5), Ok(()));
    let f = replica(2);
    f.p.apply_registration(&registration(&[1, 2, 3], 1, 5, 5), 1, 0, &b)
        .expect("apply");
    assert_eq!(
        f.p.read_for_follower(
            &follower_fetch(3, 0, -1),
            1024,
            true,
            true,
            LeaderContext {
                now_ms: 0,
                brokers: &b,
                local_broker_epoch: 102,
            },
        )
        .map(|_| ()),
        Err(BrokerError::NotLeaderOrFollower)
    );
}

#[test]
fn a_follower_with_a_divergent_tail_truncates_to_the_leaders_epoch_end() {
    let b = brokers(&[1, 2, 3]);
    // Node 2 led epoch 0 and appended 3 records; only the first 2 reached node 1.
    let (n1, n2) = (replica(1), replica(2));
    let reg0 = registration(&[1, 2], 2, 0, 0);
    n1.p.apply_registration(&reg0, 1, 0, &b).expect("apply");
    n2.p.apply_registration(&reg0, 1, 0, &b).expect("apply");
    n2.p.append_records_as_leader(&batch(&["a", "b"]), 1 << 20, 1, 0, &b)
        .expect("append");
    replicate(&n2.p, &n1.p, 1, 10);
    n2.p.append_records_as_leader(&batch(&["c"]), 1 << 20, 1, 0, &b)
        .expect("append");
    // Node 2 dies; node 1 leads epoch 1 and appends its own record at offset 2.
    let reg1 = registration(&[1], 1, 1, 1);
    n1.p.apply_registration(&reg1, 1, 0, &b).expect("apply");
    n1.p.append_records_as_leader(&batch(&["d"]), 1 << 20, 1, 0, &b)
        .expect("append");
    // Node 2 comes back as a follower of epoch 1, with its tail [2, 3) of epoch 0.
    n2.p.apply_registration(&registration(&[1], 1, 1, 2), 1, 0, &b)
        .expect("apply");
    let pos = n2.p.follower_position().expect("following");
    assert_eq!((pos.fetch_offset, pos.last_fetched_epoch), (3, 0));
    let read =
        n1.p.read_for_follower(
            &follower_fetch(2, pos.fetch_offset, pos.last_fetched_epoch),
            1 << 20,
            true,
            true,
            LeaderContext {
                now_ms: 0,
                brokers: &b,
                local_broker_epoch: 101,
            },
        )
        .expect("read");
    assert_eq!(
        read.diverging_epoch,
        Some((0, 2)),
        "epoch 0 ends at 2 on the leader"
    );
    assert!(read.data.records.is_empty());
    let to =
        n2.p.truncate_to_diverging_epoch(pos.leader_epoch, 0, 2)
            .expect("truncate");
    assert_eq!((to, n2.p.log_end_offset()), (2, 2));
    // Now it fetches the leader's record of epoch 1 at offset 2.
    assert_eq!(replicate(&n1.p, &n2.p, 2, 20), 3);
    let got = n2.p.follower_position().expect("following");
    assert_eq!(got.last_fetched_epoch, 1);
    // An answer meant for an older epoch is not applied.
    assert_eq!(
        n2.p.truncate_to(0, 0),
        Err(BrokerError::NotLeaderOrFollower)
    );
}

#[test]
fn a_caught_up_follower_is_proposed_for_the_isr_and_counted_at_once() {
    let b = brokers(&[1, 2, 3]);
    let (l, f2) = (replica(1), replica(2));
    let reg = registration(&[1], 1, 0, 0);
    l.p.apply_registration(&reg, 1, 0, &b).expect("apply");
    f2.p.apply_registration(&reg, 1, 0, &b).expect("apply");
    l.p.append_records_as_leader(&batch(&["a"]), 1 << 20, -1, 0, &b)
        .expect("append");
    assert_eq!(l.p.high_watermark(), 1, "alone in the ISR");
    replicate(&l.p, &f2.p, 2, 10);
    // Its next fetch is at the high watermark: the leader proposes it for the ISR.
    let read =
        l.p.read_for_follower(
            &follower_fetch(2, 1, 0),
            1 << 20,
            true,
            true,
            LeaderContext {
                now_ms: 20,
                brokers: &b,
                local_broker_epoch: 101,
            },
        )
        .expect("read");
    let change = read.alter_isr.expect("an ISR expansion");
    assert_eq!(change.new_isr, vec![(1, 101), (2, 102)]);
    // From now on the leader's appends wait for node 2 too.
    l.p.append_records_as_leader(&batch(&["b"]), 1 << 20, -1, 0, &b)
        .expect("append");
    assert_eq!(l.p.high_watermark(), 1);
    assert_eq!(l.p.pending_isr_change(change.change_id), Some(vec![1, 2]));
}
