//! Idempotent-producer state per partition, as Kafka's ProducerStateManager: the epoch and the
//! last five batches of each producer id, to answer retries with their original offsets and to
//! refuse gaps.

use std::collections::{HashMap, VecDeque};

use super::BrokerError;

/// Kafka keeps this many batches per producer for duplicate detection (and clients keep at most
/// this many in flight).
pub const NUM_BATCHES_TO_RETAIN: usize = 5;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchMetadata {
    pub first_seq: i32,
    pub last_seq: i32,
    pub first_offset: i64,
    pub last_offset: i64,
}

#[derive(Debug, Default)]
struct ProducerEntry {
    epoch: i16,
    batches: VecDeque<BatchMetadata>,
}

#[derive(Debug, Default)]
pub struct ProducerStateTable {
    producers: HashMap<i64, ProducerEntry>,
}

/// What to do with a batch.
#[derive(Debug, PartialEq, Eq)]
pub enum SequenceCheck {
    Append,
    /// A retry of a batch already in the log: answer with its offsets, append nothing.
    Duplicate(BatchMetadata),
}

/// Sequence numbers wrap at i32::MAX, as Kafka's do.
fn next_seq(seq: i32) -> i32 {
    if seq == i32::MAX { 0 } else { seq + 1 }
}

impl ProducerStateTable {
    pub fn check(
        &self,
        producer_id: i64,
        epoch: i16,
        first_seq: i32,
        last_seq: i32,
    ) -> Result<SequenceCheck, BrokerError> {
        let Some(entry) = self.producers.get(&producer_id) else {
            // No state (new or expired producer): any sequence starts it, as in Kafka.
            return Ok(SequenceCheck::Append);
        };
        if epoch < entry.epoch {
            return Err(BrokerError::InvalidProducerEpoch {
                producer_id,
                got: epoch,
                current: entry.epoch,
            });
        }
        if epoch > entry.epoch {
            if first_seq != 0 {
                return Err(BrokerError::OutOfOrderSequence {
                    producer_id,
                    expected: 0,
                    got: first_seq,
                });
            }
            return Ok(SequenceCheck::Append);
        }
        if let Some(dup) = entry
            .batches
            .iter()
            .find(|b| b.first_seq == first_seq && b.last_seq == last_seq)
        {
            return Ok(SequenceCheck::Duplicate(*dup));
        }
        let expected = entry
            .batches
            .back()
            .map(|b| next_seq(b.last_seq))
            .unwrap_or(0);
        if first_seq != expected {
            return Err(BrokerError::OutOfOrderSequence {
                producer_id,
                expected,
                got: first_seq,
            });
        }
        Ok(SequenceCheck::Append)
    }

    pub fn record(&mut self, producer_id: i64, epoch: i16, batch: BatchMetadata) {
        let entry = self.producers.entry(producer_id).or_default();
        if epoch != entry.epoch {
            entry.epoch = epoch;
            entry.batches.clear();
        }
        if entry.batches.len() == NUM_BATCHES_TO_RETAIN {
            entry.batches.pop_front();
        }
        entry.batches.push_back(batch);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(first_seq: i32, last_seq: i32, first_offset: i64) -> BatchMetadata {
        BatchMetadata {
            first_seq,
            last_seq,
            first_offset,
            last_offset: first_offset + (last_seq - first_seq) as i64,
        }
    }

    #[test]
    fn duplicates_gaps_and_fencing() {
        let mut t = ProducerStateTable::default();
        assert_eq!(t.check(7, 0, 0, 9).unwrap(), SequenceCheck::Append);
        t.record(7, 0, meta(0, 9, 100));
        assert_eq!(t.check(7, 0, 10, 19).unwrap(), SequenceCheck::Append);
        t.record(7, 0, meta(10, 19, 110));
        // A retry of the first batch gets its original offsets.
        assert_eq!(
            t.check(7, 0, 0, 9).unwrap(),
            SequenceCheck::Duplicate(meta(0, 9, 100))
        );
        // A gap.
        let gap = t.check(7, 0, 25, 30).unwrap_err();
        assert_eq!(gap.code(), 45);
        assert!(gap.to_string().contains("expected 20, got 25"));
        // An older epoch is fenced; a newer epoch must restart at 0.
        assert_eq!(t.check(7, -1, 20, 20).unwrap_err().code(), 47);
        assert_eq!(t.check(7, 1, 5, 5).unwrap_err().code(), 45);
        assert_eq!(t.check(7, 1, 0, 0).unwrap(), SequenceCheck::Append);
    }

    #[test]
    fn keeps_only_five_batches() {
        let mut t = ProducerStateTable::default();
        for i in 0..7 {
            t.record(1, 0, meta(i, i, i as i64));
        }
        assert_eq!(t.check(1, 0, 1, 1).unwrap_err().code(), 45);
        assert_eq!(
            t.check(1, 0, 2, 2).unwrap(),
            SequenceCheck::Duplicate(meta(2, 2, 2))
        );
    }

    #[test]
    fn sequence_wraps() {
        let mut t = ProducerStateTable::default();
        t.record(1, 0, meta(i32::MAX - 1, i32::MAX, 0));
        assert_eq!(t.check(1, 0, 0, 3).unwrap(), SequenceCheck::Append);
    }
}
