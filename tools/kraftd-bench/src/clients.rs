//! The load itself: producer threads (one librdkafka producer each) that send fixed-size
//! records round-robin over the partitions, and consumer threads that read assigned partitions.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{ClientContext, Offset, TopicPartitionList};

use crate::stats::Stats;

/// Bytes an e2e record starts with: its send time in ns after the run's epoch, big-endian.
pub const TIMESTAMP_LEN: usize = 8;

/// How long `flush` waits for outstanding acks after the last send.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(120);

/// When a producer stops sending.
#[derive(Clone, Copy, Debug)]
pub enum Limit {
    Records(u64),
    Until(Instant),
}

/// Records a delivery report's latency (send -> ack) and size.
struct AckContext {
    stats: Arc<Stats>,
}

impl ClientContext for AckContext {}

impl ProducerContext for AckContext {
    /// The send time in ns after the run's epoch: no allocation per record.
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, sent_ns: usize) {
        match result {
            Ok(m) => {
                let latency = self.stats.now_ns().saturating_sub(sent_ns as u64);
                self.stats.record(m.payload_len() as u64, Some(latency));
            }
            Err(_) => self.stats.error(),
        }
    }
}

/// Payload bytes: random upper-case letters (as Kafka's perf tool), so compression has
/// realistic work to do rather than a run of one byte.
pub fn payload_pool(record_size: usize) -> Vec<u8> {
    let len = record_size + 64 * 1024;
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..len)
        .map(|_| {
            // xorshift64: cheap and good enough to defeat a compressor's run-length tricks.
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            b'A' + (x % 26) as u8
        })
        .collect()
}

pub struct ProducerJob {
    pub config: ClientConfig,
    pub topic: String,
    pub partitions: i32,
    /// Offsets the round-robin so producers do not all start on partition 0.
    pub first_partition: i32,
    pub record_size: usize,
    pub limit: Limit,
    /// Records per second for this producer; 0 = as fast as the client takes them.
    pub rate: f64,
    pub embed_timestamp: bool,
    pub pool: Arc<Vec<u8>>,
    pub stats: Arc<Stats>,
    pub stop: Arc<AtomicBool>,
}

/// Sends until the limit, then waits for every ack. Returns the number of records sent.
pub fn run_producer(job: ProducerJob) -> Result<u64, String> {
    let producer: ThreadedProducer<AckContext> = job
        .config
        .create_with_context(AckContext {
            stats: job.stats.clone(),
        })
        .map_err(|e| format!("producer: {e}"))?;
    let mut value = vec![0u8; job.record_size];
    let span = job.pool.len() - job.record_size;
    let started = Instant::now();
    let mut sent = 0u64;
    loop {
        match job.limit {
            Limit::Records(n) if sent >= n => break,
            Limit::Until(t) if sent.is_multiple_of(256) && Instant::now() >= t => break,
            _ => {}
        }
        if sent.is_multiple_of(256) && job.stop.load(Ordering::Relaxed) {
            break;
        }
        if job.rate > 0.0 {
            // Send in bursts of at most ~1 ms of records: sleeping per record would cost more
            // than the gap between records at high rates.
            let due = started + Duration::from_secs_f64(sent as f64 / job.rate);
            let now = Instant::now();
            if due > now + Duration::from_millis(1) {
                std::thread::sleep(due - now);
            }
        }
        let start = (sent as usize).wrapping_mul(7919) % span.max(1);
        value.copy_from_slice(&job.pool[start..start + job.record_size]);
        let sent_ns = job.stats.now_ns();
        if job.embed_timestamp {
            value[..TIMESTAMP_LEN].copy_from_slice(&sent_ns.to_be_bytes());
        }
        let partition = ((sent + job.first_partition as u64) % job.partitions as u64) as i32;
        let mut record: BaseRecord<(), [u8], usize> =
            BaseRecord::with_opaque_to(&job.topic, sent_ns as usize)
                .payload(&value[..])
                .partition(partition);
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                    // The client's queue is full: wait for acks to drain it, as a blocking
                    // send() of the Java producer would.
                    record = r;
                    std::thread::sleep(Duration::from_micros(200));
                }
                Err((e, _)) => return Err(format!("send: {e}")),
            }
        }
        sent += 1;
    }
    producer
        .flush(FLUSH_TIMEOUT)
        .map_err(|e| format!("flush: {e}"))?;
    Ok(sent)
}

pub struct ConsumerJob {
    pub config: ClientConfig,
    pub topic: String,
    /// (partition, start offset) this consumer is assigned.
    pub assignment: Vec<(i32, Offset)>,
    /// e2e: take the latency from the timestamp at the start of each value.
    pub embedded_timestamp: bool,
    pub stats: Arc<Stats>,
    pub stop: Arc<AtomicBool>,
}

/// Reads its partitions (manual assignment, no group) until told to stop.
pub fn run_consumer(job: ConsumerJob) -> Result<(), String> {
    let consumer: BaseConsumer = job.config.create().map_err(|e| format!("consumer: {e}"))?;
    let mut tpl = TopicPartitionList::new();
    for &(p, offset) in &job.assignment {
        tpl.add_partition_offset(&job.topic, p, offset)
            .map_err(|e| format!("assignment {}-{p}: {e}", job.topic))?;
    }
    consumer.assign(&tpl).map_err(|e| format!("assign: {e}"))?;
    let mut reported = false;
    while !job.stop.load(Ordering::Relaxed) {
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                let payload = m.payload().unwrap_or(&[]);
                let latency = if job.embedded_timestamp {
                    payload
                        .get(..TIMESTAMP_LEN)
                        .and_then(|b| <[u8; TIMESTAMP_LEN]>::try_from(b).ok())
                        .map(|b| job.stats.now_ns().saturating_sub(u64::from_be_bytes(b)))
                } else {
                    None
                };
                job.stats.record(payload.len() as u64, latency);
            }
            Some(Err(e)) => {
                job.stats.error();
                if !reported {
                    eprintln!("consumer error (later ones are only counted): {e}");
                    reported = true;
                }
            }
            None => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_pool_is_letters_and_not_a_run() {
        let pool = payload_pool(1024);
        assert_eq!(pool.len(), 1024 + 64 * 1024);
        assert!(pool.iter().all(u8::is_ascii_uppercase));
        let distinct = (b'A'..=b'Z').filter(|c| pool.contains(c)).count();
        assert_eq!(distinct, 26);
    }
}
