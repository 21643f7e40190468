//! One hosted partition: its log, its leader state and its idempotent-producer state, behind a
//! lock of its own so that no lock is shared across partitions.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicI64, Ordering};

use bytes::{Bytes, BytesMut};
use uuid::Uuid;

use super::BrokerError;
use super::producer_state::{BatchMetadata, ProducerStateTable, SequenceCheck};
use crate::log::PartitionLog;
use crate::protocol::record_batch::{set_max_timestamp, validate_produce_records};

struct PartitionState {
    log: PartitionLog,
    producers: ProducerStateTable,
}

pub struct Partition {
    pub topic: String,
    pub topic_id: Uuid,
    pub index: i32,
    state: Mutex<PartitionState>,
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
}

pub struct FetchedData {
    pub records: Bytes,
    pub high_watermark: i64,
    pub log_start_offset: i64,
}

impl Partition {
    pub fn new(topic: String, topic_id: Uuid, index: i32, log: PartitionLog) -> Partition {
        let leo = log.log_end_offset();
        let lso = log.log_start_offset();
        Partition {
            topic,
            topic_id,
            index,
            state: Mutex::new(PartitionState {
                log,
                producers: ProducerStateTable::default(),
            }),
            is_leader: AtomicBool::new(false),
            leader_epoch: AtomicI32::new(-1),
            // A lone replica's log is all committed; followers (later) learn the leader's.
            high_watermark: AtomicI64::new(leo),
            log_start_offset: AtomicI64::new(lso),
            log_end_offset: AtomicI64::new(leo),
        }
    }

    pub fn make_leader(&self, leader_epoch: i32) {
        self.leader_epoch.store(leader_epoch, Ordering::Release);
        self.is_leader.store(true, Ordering::Release);
    }

    pub fn make_follower(&self, leader_epoch: i32) {
        self.leader_epoch.store(leader_epoch, Ordering::Release);
        self.is_leader.store(false, Ordering::Release);
    }

    pub fn is_leader(&self) -> bool {
        self.is_leader.load(Ordering::Acquire)
    }

    pub fn leader_epoch(&self) -> i32 {
        self.leader_epoch.load(Ordering::Acquire)
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

    /// Validates and appends one produce batch as leader. The batch bytes are written as sent
    /// (offsets and leader epoch rewritten in the header only).
    pub fn append_records_as_leader(
        &self,
        records: &Bytes,
        max_message_bytes: usize,
    ) -> Result<AppendResult, BrokerError> {
        if !self.is_leader() {
            return Err(BrokerError::NotLeaderOrFollower);
        }
        let info = validate_produce_records(records, max_message_bytes)?;
        let mut state = self.lock()?;
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
                    });
                }
            }
        }
        let mut buf = BytesMut::from(&records[info.range.clone()]);
        if info.max_timestamp != info.header_max_timestamp {
            // Kafka rewrites a header maxTimestamp that disagrees with the records.
            set_max_timestamp(&mut buf, info.timestamp_type, info.max_timestamp)?;
        }
        let appended = state
            .log
            .append_as_leader(&mut buf, self.leader_epoch(), now_ms())?;
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
        let leo = state.log.log_end_offset();
        let lso = state.log.log_start_offset();
        self.log_end_offset.store(leo, Ordering::Release);
        // The only in-sync replica is this one, so what is appended is committed.
        self.high_watermark.store(leo, Ordering::Release);
        Ok(AppendResult {
            base_offset: appended.first_offset,
            log_append_time: appended.log_append_time.unwrap_or(-1),
            log_start_offset: lso,
        })
    }

    /// Whole batches from `fetch_offset`, at most `max_bytes` (but at least one batch if
    /// `min_one_batch`), below the high watermark.
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

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
