use kafka_protocol::ResponseError;

use crate::log::LogError;
use crate::protocol::record_batch::BatchError;

/// Why a produce or fetch on one partition failed; each variant is exactly one Kafka error code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BrokerError {
    #[error("This server does not host this topic-partition.")]
    UnknownTopicOrPartition,
    #[error("This server does not host this topic ID.")]
    UnknownTopicId,
    #[error("This broker is not the leader for that topic-partition.")]
    NotLeaderOrFollower,
    #[error("{0}")]
    Batch(BatchError),
    #[error("The requested offset is not within the range of offsets maintained by the server.")]
    OffsetOutOfRange,
    #[error(
        "Out of order sequence number for producer {producer_id}: expected {expected}, got {got}"
    )]
    OutOfOrderSequence {
        producer_id: i64,
        expected: i32,
        got: i32,
    },
    #[error("Producer {producer_id} used epoch {got}, older than the current epoch {current}")]
    InvalidProducerEpoch {
        producer_id: i64,
        got: i16,
        current: i16,
    },
    #[error("Produce request specified an invalid value for required acks.")]
    InvalidRequiredAcks,
    #[error("Disk error when trying to access log file on the disk: {0}")]
    KafkaStorage(String),
    #[error("The cluster is still loading its metadata; retry.")]
    NotReady,
    #[error(
        "The size of the current ISR ({isr_size}) is insufficient to satisfy the min.isr requirement of {min_isr}"
    )]
    NotEnoughReplicas { isr_size: usize, min_isr: usize },
    #[error(
        "The ISR shrank to {isr_size} below the min.isr requirement of {min_isr} after the records were appended"
    )]
    NotEnoughReplicasAfterAppend { isr_size: usize, min_isr: usize },
    #[error("The in-sync replicas did not acknowledge the records within the request timeout.")]
    RequestTimedOut,
    #[error("The leader epoch in the request is older than the epoch on the broker.")]
    FencedLeaderEpoch,
    #[error("The leader epoch in the request is newer than the epoch on the broker.")]
    UnknownLeaderEpoch,
}

impl BrokerError {
    pub fn code(&self) -> i16 {
        match self {
            BrokerError::UnknownTopicOrPartition => ResponseError::UnknownTopicOrPartition.code(),
            BrokerError::UnknownTopicId => ResponseError::UnknownTopicId.code(),
            BrokerError::NotLeaderOrFollower => ResponseError::NotLeaderOrFollower.code(),
            BrokerError::Batch(b) => b.kafka_error_code(),
            BrokerError::OffsetOutOfRange => ResponseError::OffsetOutOfRange.code(),
            BrokerError::OutOfOrderSequence { .. } => {
                ResponseError::OutOfOrderSequenceNumber.code()
            }
            BrokerError::InvalidProducerEpoch { .. } => ResponseError::InvalidProducerEpoch.code(),
            BrokerError::InvalidRequiredAcks => ResponseError::InvalidRequiredAcks.code(),
            BrokerError::KafkaStorage(_) => ResponseError::KafkaStorageError.code(),
            BrokerError::NotReady => ResponseError::LeaderNotAvailable.code(),
            BrokerError::NotEnoughReplicas { .. } => ResponseError::NotEnoughReplicas.code(),
            BrokerError::NotEnoughReplicasAfterAppend { .. } => {
                ResponseError::NotEnoughReplicasAfterAppend.code()
            }
            BrokerError::RequestTimedOut => ResponseError::RequestTimedOut.code(),
            BrokerError::FencedLeaderEpoch => ResponseError::FencedLeaderEpoch.code(),
            BrokerError::UnknownLeaderEpoch => ResponseError::UnknownLeaderEpoch.code(),
        }
    }
}

impl From<LogError> for BrokerError {
    fn from(e: LogError) -> Self {
        match e.kafka_error_code() {
            1 => BrokerError::OffsetOutOfRange,
            _ => BrokerError::KafkaStorage(e.to_string()),
        }
    }
}

impl From<BatchError> for BrokerError {
    fn from(e: BatchError) -> Self {
        BrokerError::Batch(e)
    }
}
