//! One hosted partition: its log, its replication state (role, leader epoch, ISR, what the
//! leader knows of its followers) and its idempotent-producer state, behind a lock of its own so
//! that no lock is shared across partitions.
//!
//! The leader appends produce batches and serves consumers up to the high watermark and
//! followers up to its log end; a follower appends what it fetched from its leader, keeping the
//! leader's offsets and epochs, and takes its high watermark from the leader's answers. Role
//! changes take the same lock as appends, so an append never lands in a role it was not
//! checked against.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicI64, Ordering};

use bytes::{Bytes, BytesMut};
use uuid::Uuid;

use super::BrokerError;
use super::producer_state::{BatchMetadata, ProducerStateTable, SequenceCheck};
use super::replication::{
    AlterIsr, AlterIsrOutcome, BrokerStates, ReplicationState, Role, Transition,
};
use crate::log::PartitionLog;
use crate::metadata::PartitionRegistration;
use crate::protocol::record_batch::{BatchIter, set_max_timestamp, validate_produce_records};

struct PartitionState {
    log: PartitionLog,
    producers: ProducerStateTable,
    replication: ReplicationState,
    /// The registration last applied, so an image that did not change this partition leaves a
    /// pending ISR change alone.
    applied: Option<PartitionRegistration>,
}

pub struct Partition {
    pub topic: String,
    pub topic_id: Uuid,
    pub index: i32,
    state: Mutex<PartitionState>,
    // Copies of what the lock guards, for readers that need no consistent view.
    is_leader: AtomicBool,
    leader_epoch: AtomicI32,
    /// Offsets below this are committed; readable by consumers.
    high_watermark: AtomicI64,
    log_start_offset: AtomicI64,
    log_end_offset: AtomicI64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendResult {
    pub base_offset: i64,
    pub log_append_time: i64,
    pub log_start_offset: i64,
    /// The offset after the batch: an acks=all produce is done when the high watermark
    /// reaches it.
    pub required_offset: i64,
    pub high_watermark_advanced: bool,
}

pub struct FetchedData {
    pub records: Bytes,
    pub high_watermark: i64,
    pub log_start_offset: i64,
}

/// One partition of a follower's Fetch, as the leader reads it.
#[derive(Debug, Clone, Copy)]
pub struct FollowerFetch {
    pub replica_id: i32,
    /// The follower's broker epoch (Fetch v15+), or -1.
    pub replica_epoch: i64,
    pub fetch_offset: i64,
    /// The epoch of the last batch the follower has, or -1.
    pub last_fetched_epoch: i32,
    /// The leader epoch the follower believes current, or -1 to skip the check.
    pub current_leader_epoch: i32,
    pub log_start_offset: i64,
}

/// The leader's answer to one partition of a follower's Fetch.
pub struct FollowerRead {
    pub data: FetchedData,
    /// Set when the follower's log diverges from this one: (epoch, end offset) it must
    /// truncate to, and no records.
    pub diverging_epoch: Option<(i32, i64)>,
    pub high_watermark_advanced: bool,
    /// The follower reported a new log start offset: a DeleteRecords may be done.
    pub log_start_moved: bool,
    /// An ISR expansion for the controller.
    pub alter_isr: Option<AlterIsr>,
}

/// What the leader's side of a follower fetch needs from the node: the time, the brokers as
/// the image has them, and this broker's epoch (for ISR changes).
#[derive(Clone, Copy)]
pub struct LeaderContext<'a> {
    pub now_ms: i64,
    pub brokers: &'a BrokerStates,
    pub local_broker_epoch: i64,
}

/// Where a follower fetches from next, read under the lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FollowerPosition {
    pub leader_id: i32,
    pub leader_epoch: i32,
    pub fetch_offset: i64,
    pub last_fetched_epoch: i32,
    pub log_start_offset: i64,
}

impl Partition {
    /// `high_watermark` is what replication-offset-checkpoint said (0 when absent, as Kafka).
    pub fn new(
        topic: String,
        topic_id: Uuid,
        index: i32,
        log: PartitionLog,
        node_id: i32,
        replica_lag_time_max_ms: i64,
        high_watermark: i64,
    ) -> Partition {
        let leo = log.log_end_offset();
        let lso = log.log_start_offset();
        let hw = high_watermark.clamp(lso, leo);
        Partition {
            topic,
            topic_id,
            index,
            state: Mutex::new(PartitionState {
                log,
                producers: ProducerStateTable::default(),
                replication: ReplicationState::new(node_id, replica_lag_time_max_ms),
                applied: None,
            }),
            is_leader: AtomicBool::new(false),
            leader_epoch: AtomicI32::new(-1),
            high_watermark: AtomicI64::new(hw),
            log_start_offset: AtomicI64::new(lso),
            log_end_offset: AtomicI64::new(leo),
        }
    }

    pub fn is_leader(&self) -> bool {
        self.is_leader.load(Ordering::Acquire)
    }

    pub fn leader_epoch(&self) -> i32 {
        self.leader_epoch.load(Ordering::Acquire)
    }

    /// OffsetForLeaderEpoch (KIP-101/320): the epoch at or below `leader_epoch` this log knows
    /// and the offset where it ends (the next epoch's start, or the log end for the latest),
    /// after checking the requester's `current_leader_epoch`. A client compares it with its
    /// position to detect a log truncated under it; (-1, -1) when no such epoch is here.
    pub fn last_offset_for_leader_epoch(
        &self,
        current_leader_epoch: i32,
        leader_epoch: i32,
    ) -> Result<(i32, i64), BrokerError> {
        let state = self.lock()?;
        check_current_leader_epoch(state.replication.leader_epoch, current_leader_epoch)?;
        Ok(state.log.end_offset_for_epoch(leader_epoch))
    }

    /// A client's `current_leader_epoch` (Fetch v9+, ListOffsets v4+): one behind this
    /// replica's epoch is FENCED_LEADER_EPOCH, one ahead UNKNOWN_LEADER_EPOCH, both retriable
    /// and answered by a metadata refresh (KIP-320); -1 skips the check.
    pub fn check_current_leader_epoch(&self, requested: i32) -> Result<(), BrokerError> {
        check_current_leader_epoch(self.leader_epoch(), requested)
    }

    pub fn high_watermark(&self) -> i64 {
        self.high_watermark.load(Ordering::Acquire)
    }

    pub fn log_start_offset(&self) -> i64 {
        self.log_start_offset.load(Ordering::Acquire)
    }

    pub fn log_end_offset(&self) -> i64 {
        self.log_end_offset.load(Ordering::Acquire)
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, PartitionState>, BrokerError> {
        self.state.lock().map_err(|_| {
            BrokerError::KafkaStorage(format!("{}-{} log is poisoned", self.topic, self.index))
        })
    }

    /// Publishes the lock-guarded offsets to the atomics; call with the lock held.
    fn publish_offsets(&self, state: &PartitionState) {
        self.log_end_offset
            .store(state.log.log_end_offset(), Ordering::Release);
        self.log_start_offset
            .store(state.log.log_start_offset(), Ordering::Release);
    }

    /// The leader's high watermark may move (Kafka's `maybeIncrementLeaderHW`); only upwards.
    /// Call with the lock held. Returns whether it moved.
    fn maybe_increment_leader_hw(
        &self,
        state: &PartitionState,
        now_ms: i64,
        brokers: &BrokerStates,
    ) -> bool {
        let leo = state.log.log_end_offset();
        let Some(candidate) = state
            .replication
            .high_watermark_candidate(leo, now_ms, brokers)
        else {
            return false;
        };
        let candidate = candidate.min(leo);
        if candidate > self.high_watermark() {
            self.high_watermark.store(candidate, Ordering::Release);
            true
        } else {
            false
        }
    }

    /// Applies this partition's registration from a new image (Kafka's `makeLeader` /
    /// `makeFollower`); an unchanged registration is a no-op. Returns whether the high
    /// watermark moved.
    pub fn apply_registration(
        &self,
        reg: &PartitionRegistration,
        min_insync_replicas: i32,
        now_ms: i64,
        brokers: &BrokerStates,
    ) -> Result<bool, BrokerError> {
        let mut state = self.lock()?;
        state.replication.min_insync_replicas = min_insync_replicas;
        if state.applied.as_ref() == Some(reg) {
            // min.insync.replicas may have changed.
            return Ok(state.replication.is_leader()
                && self.maybe_increment_leader_hw(&state, now_ms, brokers));
        }
        state.applied = Some(reg.clone());
        let leo = state.log.log_end_offset();
        let transition = state.replication.apply_registration(reg, leo, now_ms);
        if transition == Transition::NewLeaderEpoch {
            // A follower of this epoch that holds later epochs' batches (from a leader elected
            // and deposed quickly) must find where to truncate: the epoch starts here.
            state.log.assign_epoch_start_offset(reg.leader_epoch, leo)?;
        }
        self.leader_epoch
            .store(state.replication.leader_epoch, Ordering::Release);
        self.is_leader
            .store(state.replication.is_leader(), Ordering::Release);
        Ok(
            state.replication.is_leader()
                && self.maybe_increment_leader_hw(&state, now_ms, brokers),
        )
    }

    /// Validates and appends one produce batch as leader. The batch bytes are written as sent
    /// (offsets and leader epoch rewritten in the header only). With acks=all the ISR must
    /// hold min.insync.replicas first (Kafka's NOT_ENOUGH_REPLICAS).
    pub fn append_records_as_leader(
        &self,
        records: &Bytes,
        max_message_bytes: usize,
        required_acks: i16,
        now_ms: i64,
        brokers: &BrokerStates,
    ) -> Result<AppendResult, BrokerError> {
        if !self.is_leader() {
            return Err(BrokerError::NotLeaderOrFollower);
        }
        let info = validate_produce_records(records, max_message_bytes)?;
        let mut state = self.lock()?;
        let Some(leader) = state.replication.leader() else {
            return Err(BrokerError::NotLeaderOrFollower);
        };
        let isr_size = leader.isr.isr().len();
        let min_isr = state.replication.effective_min_isr();
        if required_acks == -1 && isr_size < min_isr {
            return Err(BrokerError::NotEnoughReplicas { isr_size, min_isr });
        }
        let idempotent = info.producer_id >= 0;
        let last_seq = if info.base_sequence >= 0 {
            info.base_sequence.wrapping_add(info.last_offset_delta) & i32::MAX
        } else {
            -1
        };
        if idempotent {
            match state.producers.check(
                info.producer_id,
                info.producer_epoch,
                info.base_sequence,
                last_seq,
            )? {
                SequenceCheck::Append => {}
                SequenceCheck::Duplicate(dup) => {
                    return Ok(AppendResult {
                        base_offset: dup.first_offset,
                        log_append_time: -1,
                        log_start_offset: state.log.log_start_offset(),
                        required_offset: dup.last_offset + 1,
                        high_watermark_advanced: false,
                    });
                }
            }
        }
        let mut buf = BytesMut::from(&records[info.range.clone()]);
        if info.max_timestamp != info.header_max_timestamp {
            // Kafka rewrites a header maxTimestamp that disagrees with the records.
            set_max_timestamp(&mut buf, info.timestamp_type, info.max_timestamp)?;
        }
        let leader_epoch = state.replication.leader_epoch;
        let appended = state
            .log
            .append_as_leader(&mut buf, leader_epoch, wall_clock_ms())?;
        if idempotent {
            state.producers.record(
                info.producer_id,
                info.producer_epoch,
                BatchMetadata {
                    first_seq: info.base_sequence,
                    last_seq,
                    first_offset: appended.first_offset,
                    last_offset: appended.last_offset,
                },
            );
        }
        self.publish_offsets(&state);
        // With the leader alone in the ISR, what it appends is committed at once.
        let advanced = self.maybe_increment_leader_hw(&state, now_ms, brokers);
        Ok(AppendResult {
            base_offset: appended.first_offset,
            log_append_time: appended.log_append_time.unwrap_or(-1),
            log_start_offset: state.log.log_start_offset(),
            required_offset: appended.last_offset + 1,
            high_watermark_advanced: advanced,
        })
    }

    /// Kafka's `checkEnoughReplicasReachOffset` for a waiting acks=all produce: `Ok(true)` once
    /// the high watermark has reached `required_offset`.
    pub fn check_enough_replicas_reach_offset(
        &self,
        required_offset: i64,
    ) -> Result<bool, BrokerError> {
        let state = self.lock()?;
        let Some(leader) = state.replication.leader() else {
            return Err(BrokerError::NotLeaderOrFollower);
        };
        if self.high_watermark() < required_offset {
            return Ok(false);
        }
        // Appended and committed, but the ISR shrank below min.insync.replicas meanwhile.
        let isr_size = leader.isr.maximal_len();
        let min_isr = state.replication.effective_min_isr();
        if isr_size < min_isr {
            return Err(BrokerError::NotEnoughReplicasAfterAppend { isr_size, min_isr });
        }
        Ok(true)
    }

    /// Whole batches from `fetch_offset`, at most `max_bytes` (but at least one batch if
    /// `min_one_batch`), below the high watermark: what a consumer may read.
    pub fn read(
        &self,
        fetch_offset: i64,
        max_bytes: usize,
        min_one_batch: bool,
    ) -> Result<FetchedData, BrokerError> {
        let hw = self.high_watermark();
        let state = self.lock()?;
        let lso = state.log.log_start_offset();
        if fetch_offset == hw {
            return Ok(FetchedData {
                records: Bytes::new(),
                high_watermark: hw,
                log_start_offset: lso,
            });
        }
        if fetch_offset < lso || fetch_offset > state.log.log_end_offset() {
            return Err(BrokerError::OffsetOutOfRange);
        }
        let read = state
            .log
            .read(fetch_offset, max_bytes, Some(hw), min_one_batch)?;
        Ok(FetchedData {
            records: read.records,
            high_watermark: hw,
            log_start_offset: lso,
        })
    }

    /// Whole batches from `fetch_offset` up to the log end, for this node's own readers that
    /// replay a log it leads (the group coordinator loading `__consumer_offsets`).
    pub fn read_to_log_end(
        &self,
        fetch_offset: i64,
        max_bytes: usize,
    ) -> Result<FetchedData, BrokerError> {
        let hw = self.high_watermark();
        let state = self.lock()?;
        let read = state.log.read(fetch_offset, max_bytes, None, true)?;
        Ok(FetchedData {
            records: read.records,
            high_watermark: hw,
            log_start_offset: read.log_start_offset,
        })
    }

    /// The leader's side of a follower's Fetch (Kafka's `fetchRecords` from a follower): checks
    /// the leader epoch and the follower, finds a diverging epoch from `last_fetched_epoch`,
    /// reads up to the log end, and — when `update_state` (the first read of a request) —
    /// records the follower's position, which may move the high watermark and expand the ISR.
    pub fn read_for_follower(
        &self,
        fetch: &FollowerFetch,
        max_bytes: usize,
        min_one_batch: bool,
        update_state: bool,
        ctx: LeaderContext<'_>,
    ) -> Result<FollowerRead, BrokerError> {
        let LeaderContext {
            now_ms,
            brokers,
            local_broker_epoch,
        } = ctx;
        let mut state = self.lock()?;
        check_current_leader_epoch(state.replication.leader_epoch, fetch.current_leader_epoch)?;
        state
            .replication
            .check_follower(fetch.replica_id, fetch.replica_epoch, brokers)?;
        // Offsets as they were before the read, so appends after it do not keep a follower out
        // of sync (as Kafka's `readRecords`).
        let hw = self.high_watermark();
        let lso = state.log.log_start_offset();
        let leo = state.log.log_end_offset();
        let empty = |hw| FetchedData {
            records: Bytes::new(),
            high_watermark: hw,
            log_start_offset: lso,
        };
        if fetch.last_fetched_epoch >= 0 {
            let (epoch, end_offset) = state.log.end_offset_for_epoch(fetch.last_fetched_epoch);
            if epoch < 0 || end_offset < 0 {
                // This leader has no epoch at or below the follower's: nothing to match.
                return Err(BrokerError::OffsetOutOfRange);
            }
            if fetch.fetch_offset < lso {
                return Err(BrokerError::OffsetOutOfRange);
            }
            if epoch < fetch.last_fetched_epoch || end_offset < fetch.fetch_offset {
                return Ok(FollowerRead {
                    data: empty(hw),
                    diverging_epoch: Some((epoch, end_offset)),
                    high_watermark_advanced: false,
                    log_start_moved: false,
                    alter_isr: None,
                });
            }
        }
        if fetch.fetch_offset < lso || fetch.fetch_offset > leo {
            return Err(BrokerError::OffsetOutOfRange);
        }
        let records = state
            .log
            .read(fetch.fetch_offset, max_bytes, None, min_one_batch)?
            .records;
        let mut advanced = false;
        let mut alter_isr = None;
        let mut log_start_moved = false;
        if update_state {
            let start_before = state
                .replication
                .follower_log_start_offset(fetch.replica_id);
            let moved = state.replication.update_follower(
                fetch.replica_id,
                fetch.fetch_offset,
                fetch.log_start_offset,
                fetch.replica_epoch,
                leo,
                now_ms,
            );
            alter_isr = state.replication.maybe_expand_isr(
                fetch.replica_id,
                self.high_watermark(),
                brokers,
                local_broker_epoch,
            );
            if moved || alter_isr.is_some() {
                advanced = self.maybe_increment_leader_hw(&state, now_ms, brokers);
            }
            log_start_moved = start_before
                != state
                    .replication
                    .follower_log_start_offset(fetch.replica_id);
        }
        Ok(FollowerRead {
            data: FetchedData {
                records,
                high_watermark: hw,
                log_start_offset: lso,
            },
            diverging_epoch: None,
            high_watermark_advanced: advanced,
            log_start_moved,
            alter_isr,
        })
    }

    /// Kafka's `maybeShrinkIsr`, run periodically on the leader.
    pub fn maybe_shrink_isr(&self, now_ms: i64, local_broker_epoch: i64) -> Option<AlterIsr> {
        let mut state = self.lock().ok()?;
        if !state.replication.is_leader() {
            return None;
        }
        let leo = state.log.log_end_offset();
        state
            .replication
            .maybe_shrink_isr(leo, now_ms, local_broker_epoch)
    }

    /// The ISR a pending change `change_id` proposes, if it is still pending (for resending).
    pub fn pending_isr_change(&self, change_id: u64) -> Option<Vec<i32>> {
        self.lock().ok()?.replication.pending_change(change_id)
    }

    /// The controller's answer to an ISR change. Returns (high watermark moved, send again).
    pub fn handle_alter_isr(
        &self,
        change_id: u64,
        outcome: &AlterIsrOutcome,
        now_ms: i64,
        brokers: &BrokerStates,
    ) -> (bool, bool) {
        let Ok(mut state) = self.lock() else {
            return (false, false);
        };
        let retry = state.replication.handle_alter_isr(change_id, outcome);
        let advanced = state.replication.is_leader()
            && self.maybe_increment_leader_hw(&state, now_ms, brokers);
        (advanced, retry)
    }

    /// What a follower's next Fetch asks its leader for; `None` unless following.
    pub fn follower_position(&self) -> Option<FollowerPosition> {
        let state = self.lock().ok()?;
        let Role::Follower { leader_id } = state.replication.role else {
            return None;
        };
        Some(FollowerPosition {
            leader_id,
            leader_epoch: state.replication.leader_epoch,
            fetch_offset: state.log.log_end_offset(),
            last_fetched_epoch: state.log.latest_epoch().unwrap_or(-1),
            log_start_offset: state.log.log_start_offset(),
        })
    }

    /// Checks, under the lock, that this replica still follows `leader_epoch`: a fetched answer
    /// for an older epoch (or after becoming leader) must not touch the log.
    fn still_following(state: &PartitionState, leader_epoch: i32) -> Result<(), BrokerError> {
        match state.replication.role {
            Role::Follower { .. } if state.replication.leader_epoch == leader_epoch => Ok(()),
            _ => Err(BrokerError::NotLeaderOrFollower),
        }
    }

    /// Appends batches fetched from the leader (Kafka's `appendRecordsToFollowerOrFutureReplica`)
    /// and takes the leader's high watermark, bounded by this log's end, and its log start.
    /// Returns the bytes appended.
    pub fn append_as_follower(
        &self,
        leader_epoch: i32,
        records: &Bytes,
        leader_high_watermark: i64,
        leader_log_start_offset: i64,
    ) -> Result<usize, BrokerError> {
        let mut state = self.lock()?;
        Self::still_following(&state, leader_epoch)?;
        let mut appended = 0;
        if !records.is_empty() {
            // A batch cut short by the leader's byte limit is dropped; the next fetch gets it.
            let whole = whole_batches(records);
            if !whole.is_empty() {
                state.log.append_as_follower(&whole, wall_clock_ms())?;
                record_producer_batches(&mut state.producers, &whole);
                appended = whole.len();
            }
        }
        let leo = state.log.log_end_offset();
        // A follower's high watermark follows the leader's, never past its own log.
        let hw = leader_high_watermark.min(leo).max(0);
        if leader_log_start_offset > state.log.log_start_offset() && leader_log_start_offset <= hw {
            state.log.delete_records_before(leader_log_start_offset)?;
        }
        self.high_watermark
            .store(hw.max(state.log.log_start_offset()), Ordering::Release);
        self.publish_offsets(&state);
        Ok(appended)
    }

    /// Kafka's truncation on a diverging epoch (`getOffsetTruncationState`): the leader said its
    /// log holds `epoch` up to `end_offset`. Returns the offset truncated to.
    pub fn truncate_to_diverging_epoch(
        &self,
        leader_epoch: i32,
        epoch: i32,
        end_offset: i64,
    ) -> Result<i64, BrokerError> {
        let mut state = self.lock()?;
        Self::still_following(&state, leader_epoch)?;
        let leo = state.log.log_end_offset();
        let (local_epoch, local_end) = state.log.end_offset_for_epoch(epoch);
        let target = if local_epoch < 0 || local_end < 0 {
            // No epoch at or below the leader's here: the leader's offset is the bound.
            end_offset
        } else if local_epoch != epoch {
            // This log does not know the leader's epoch: cut to the end of the largest epoch
            // below it; the next fetch checks again from there.
            local_end
        } else {
            local_end.min(end_offset)
        }
        .min(leo);
        self.truncate_locked(&mut state, target)?;
        Ok(target)
    }

    /// Truncates the follower's log to `offset` (the leader's end, after an out-of-range).
    pub fn truncate_to(&self, leader_epoch: i32, offset: i64) -> Result<(), BrokerError> {
        let mut state = self.lock()?;
        Self::still_following(&state, leader_epoch)?;
        self.truncate_locked(&mut state, offset)
    }

    fn truncate_locked(&self, state: &mut PartitionState, offset: i64) -> Result<(), BrokerError> {
        state.log.truncate_to(offset)?;
        let leo = state.log.log_end_offset();
        if self.high_watermark() > leo {
            self.high_watermark.store(leo, Ordering::Release);
        }
        self.publish_offsets(state);
        Ok(())
    }

    /// Drops the whole log and restarts it at `offset`: the follower was below the leader's log
    /// start (Kafka's `truncateFullyAndStartAt`).
    pub fn truncate_fully_and_start_at(
        &self,
        leader_epoch: i32,
        offset: i64,
    ) -> Result<(), BrokerError> {
        let mut state = self.lock()?;
        Self::still_following(&state, leader_epoch)?;
        state.log.truncate_fully_and_start_at(offset)?;
        self.high_watermark.store(offset, Ordering::Release);
        self.publish_offsets(&state);
        Ok(())
    }

    /// ListOffsets: the first offset whose timestamp is at or after `timestamp`.
    pub fn offset_for_timestamp(&self, timestamp: i64) -> Result<Option<(i64, i64)>, BrokerError> {
        let state = self.lock()?;
        Ok(state
            .log
            .offset_for_timestamp(timestamp)?
            .map(|t| (t.offset, t.timestamp)))
    }

    /// ListOffsets MAX_TIMESTAMP: (timestamp, offset), or (-1, -1) for an empty log.
    pub fn max_timestamp(&self) -> Result<(i64, i64), BrokerError> {
        let state = self.lock()?;
        Ok(state
            .log
            .max_timestamp()?
            .map(|t| (t.timestamp, t.offset))
            .unwrap_or((-1, -1)))
    }

    pub fn size_in_bytes(&self) -> u64 {
        self.lock().map(|s| s.log.size_in_bytes()).unwrap_or(0)
    }

    /// DeleteRecords: -1 means the high watermark; an offset above it is out of range, as in
    /// Kafka. Returns the new log start offset (the response's low watermark).
    pub fn delete_records(&self, offset: i64) -> Result<i64, BrokerError> {
        if !self.is_leader() {
            return Err(BrokerError::NotLeaderOrFollower);
        }
        let hw = self.high_watermark();
        let offset = if offset == -1 { hw } else { offset };
        if offset < 0 || offset > hw {
            return Err(BrokerError::OffsetOutOfRange);
        }
        let mut state = self.lock()?;
        let start = state.log.delete_records_before(offset)?;
        self.log_start_offset.store(start, Ordering::Release);
        Ok(start)
    }

    /// The low watermark (see `ReplicationState::low_watermark`); a follower's own log start
    /// when it does not lead.
    pub fn low_watermark(&self, brokers: &BrokerStates) -> Result<i64, BrokerError> {
        let state = self.lock()?;
        let local = state.log.log_start_offset();
        Ok(state
            .replication
            .low_watermark(local, brokers)
            .unwrap_or(local))
    }

    /// The periodic work on this log: roll by age (segment.ms), delete by retention, flush by
    /// time (flush.ms). `retention` is (retention.ms, retention.bytes), or None for a
    /// compact-only topic. Returns the segments deleted.
    pub fn maintain(
        &self,
        now_ms: i64,
        retention: Option<(i64, i64)>,
    ) -> Result<usize, BrokerError> {
        let hw = self.high_watermark();
        let mut state = self.lock()?;
        state.log.maybe_roll(now_ms)?;
        let (ms, bytes) = retention.unwrap_or((-1, -1));
        let result = state.log.enforce_retention(now_ms, ms, bytes, hw)?;
        state.log.maybe_flush(now_ms)?;
        self.log_start_offset
            .store(state.log.log_start_offset(), Ordering::Release);
        Ok(result.deleted_segments)
    }

    /// The cleaner's first step, under this partition's lock: what to compact, if anything.
    pub fn prepare_clean(
        &self,
        config: &crate::log::CompactionConfig,
        last_clean_offset: Option<i64>,
        now_ms: i64,
    ) -> Result<Option<crate::log::CleanPlan>, BrokerError> {
        let hw = self.high_watermark();
        let state = self.lock()?;
        Ok(state
            .log
            .prepare_clean(config, last_clean_offset, hw, now_ms)?)
    }

    /// The cleaner's last step, under this partition's lock: swap the cleaned segments in.
    pub fn commit_clean(
        &self,
        cleaned: crate::log::CleanedSegments,
    ) -> Result<crate::log::CleanOutcome, BrokerError> {
        let mut state = self.lock()?;
        Ok(state.log.commit_clean(cleaned)?)
    }

    /// (log dir, recovery point, log start offset) for the log dir's checkpoint files.
    pub fn checkpoint_offsets(&self) -> Option<(std::path::PathBuf, i64, i64)> {
        let state = self.lock().ok()?;
        let log_dir = state.log.dir().parent()?.to_path_buf();
        Some((
            log_dir,
            state.log.recovery_point(),
            state.log.log_start_offset(),
        ))
    }

    /// Topic configs changed: the log follows them from its next append.
    pub fn update_log_config(&self, config: crate::log::LogConfig) {
        if let Ok(mut state) = self.lock()
            && *state.log.config() != config
        {
            state.log.set_config(config);
        }
    }

    pub fn flush(&self) -> Result<(), BrokerError> {
        let mut state = self.lock()?;
        Ok(state.log.flush()?)
    }

    /// Takes the log out for close or delete; the partition is unusable afterwards.
    pub fn into_log(self) -> Option<PartitionLog> {
        self.state.into_inner().ok().map(|s| s.log)
    }
}

/// Wall-clock milliseconds, for record timestamps (LogAppendTime) and segment ages.
fn wall_clock_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Milliseconds on a monotonic clock, for replica lag: a wall-clock step must not push every
/// follower out of the ISR at once.
pub fn monotonic_ms() -> i64 {
    static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    START
        .get_or_init(std::time::Instant::now)
        .elapsed()
        .as_millis() as i64
}

/// Kafka's `checkCurrentLeaderEpoch`: a requester behind this replica's epoch is fenced; one
/// ahead of it knows of an epoch this replica has not seen yet. -1 skips the check.
fn check_current_leader_epoch(local: i32, requested: i32) -> Result<(), BrokerError> {
    if requested < 0 || requested == local {
        Ok(())
    } else if requested < local {
        Err(BrokerError::FencedLeaderEpoch)
    } else {
        Err(BrokerError::UnknownLeaderEpoch)
    }
}

/// The complete batches at the front of `records`.
fn whole_batches(records: &Bytes) -> Bytes {
    let end = BatchIter::new(records)
        .map_while(Result::ok)
        .last()
        .map_or(0, |b| b.position + b.bytes.len());
    records.slice(..end)
}

/// Keeps the idempotent-producer state of a follower in step with its leader's, so that after
/// a failover a producer's retry is still recognised as a duplicate.
fn record_producer_batches(producers: &mut ProducerStateTable, records: &[u8]) {
    for batch in BatchIter::new(records).map_while(Result::ok) {
        let h = batch.header;
        if h.producer_id() < 0 || h.is_control() {
            continue;
        }
        let first_seq = h.base_sequence();
        let last_seq = if first_seq >= 0 {
            first_seq.wrapping_add(h.last_offset_delta()) & i32::MAX
        } else {
            -1
        };
        producers.record(
            h.producer_id(),
            h.producer_epoch(),
            BatchMetadata {
                first_seq,
                last_seq,
                first_offset: h.base_offset(),
                last_offset: h.last_offset(),
            },
        );
    }
}

#[cfg(test)]
#[path = "partition_tests.rs"]
mod tests;
