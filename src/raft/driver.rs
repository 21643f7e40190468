//! The I/O shell around `RaftCore`: owns the metadata log (`__cluster_metadata-0`) and the
//! quorum-state file, appends proposals as record batches, makes them durable, and publishes the
//! high watermark and the leader. Readers (the metadata loader) read committed batches through
//! the shared log handle.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::LeaderChangeMessage;
use kafka_protocol::messages::leader_change_message::Voter as LeaderChangeVoter;
use kafka_protocol::protocol::Encodable;
use tokio::sync::{mpsc, oneshot, watch};
use tracing::{error, info};

use super::METADATA_LOG_DIR_NAME;
use super::core::{Action, LogSummary, RaftCore, Timeouts};
use super::quorum_state::{ElectionState, QuorumStateFile};
use crate::log::{LogConfig, LogError, PartitionLog, ReadInfo};
use crate::protocol::record_batch::{self, BatchOptions, NewRecord};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LeaderAndEpoch {
    pub leader_id: Option<i32>,
    pub epoch: i32,
}

#[derive(Debug, thiserror::Error)]
pub enum RaftError {
    #[error("this node is not the metadata quorum leader (leader: {0:?})")]
    NotLeader(Option<i32>),
    #[error("the raft driver has stopped")]
    Shutdown,
    #[error("metadata log: {0}")]
    Log(#[from] LogError),
    #[error("cannot encode a control record: {0}")]
    Encode(String),
    #[error("{0}")]
    QuorumState(#[from] super::quorum_state::QuorumStateError),
}

/// Proposals waiting while one is appended; a full queue applies back-pressure to the controller.
const PROPOSAL_QUEUE: usize = 1024;
/// Proposals folded into one append + fsync.
const MAX_PROPOSALS_PER_APPEND: usize = 256;

struct Proposal {
    records: Vec<Bytes>,
    reply: oneshot::Sender<Result<i64, RaftError>>,
}

#[derive(Clone)]
pub struct RaftHandle {
    proposals: mpsc::Sender<Proposal>,
    high_watermark: watch::Receiver<i64>,
    leader: watch::Receiver<LeaderAndEpoch>,
    log: Arc<Mutex<PartitionLog>>,
}

impl RaftHandle {
    /// Appends `records` as one batch; returns the offset of the last one once it is durable
    /// locally (not yet committed: see `wait_committed`).
    pub async fn propose(&self, records: Vec<Bytes>) -> Result<i64, RaftError> {
        let (reply, rx) = oneshot::channel();
        self.proposals
            .send(Proposal { records, reply })
            .await
            .map_err(|_| RaftError::Shutdown)?;
        rx.await.map_err(|_| RaftError::Shutdown)?
    }

    /// Waits until `offset` is below the high watermark.
    pub async fn wait_committed(&self, offset: i64) -> Result<(), RaftError> {
        let mut hw = self.high_watermark.clone();
        hw.wait_for(|&hw| hw > offset)
            .await
            .map(|_| ())
            .map_err(|_| RaftError::Shutdown)
    }

    pub fn high_watermark(&self) -> watch::Receiver<i64> {
        self.high_watermark.clone()
    }

    pub fn leader(&self) -> watch::Receiver<LeaderAndEpoch> {
        self.leader.clone()
    }

    /// Committed batches from `offset` (whole batches, at least one if any).
    pub fn read_committed(&self, offset: i64, max_bytes: usize) -> Result<ReadInfo, RaftError> {
        let hw = *self.high_watermark.borrow();
        let log = self.log.lock().map_err(|_| RaftError::Shutdown)?;
        Ok(log.read(offset, max_bytes, Some(hw), true)?)
    }
}

pub struct RaftConfig {
    pub node_id: i32,
    pub voters: Vec<i32>,
    pub metadata_log_dir: PathBuf,
}

pub struct RaftDriver {
    core: RaftCore,
    config: RaftConfig,
    log: Arc<Mutex<PartitionLog>>,
    quorum_state: QuorumStateFile,
    proposals: mpsc::Receiver<Proposal>,
    high_watermark: watch::Sender<i64>,
    leader: watch::Sender<LeaderAndEpoch>,
}

#[derive(Debug, thiserror::Error)]
pub enum RaftStartError {
    #[error("{0}")]
    QuorumState(#[from] super::quorum_state::QuorumStateError),
    #[error("metadata log {dir}: {source}")]
    Log { dir: PathBuf, source: LogError },
}

impl RaftDriver {
    pub fn open(config: RaftConfig) -> Result<(RaftDriver, RaftHandle), RaftStartError> {
        let dir = metadata_partition_dir(&config.metadata_log_dir);
        let log = PartitionLog::open(&dir, LogConfig::default()).map_err(|source| {
            RaftStartError::Log {
                dir: dir.clone(),
                source,
            }
        })?;
        let quorum_state = QuorumStateFile::new(&dir);
        let stored = quorum_state.read()?;
        let election = stored.map(|s| s.election).unwrap_or_default();
        let summary = LogSummary {
            start_offset: log.log_start_offset(),
            end_offset: log.log_end_offset(),
            epochs: log.leader_epochs().to_vec(),
            snapshot: None,
        };
        let core = RaftCore::new(
            config.node_id,
            config.voters.clone(),
            Timeouts::default(),
            election,
            summary,
            rand_seed(),
            0,
        );
        let log = Arc::new(Mutex::new(log));
        let (ptx, prx) = mpsc::channel(PROPOSAL_QUEUE);
        let (hw_tx, hw_rx) = watch::channel(0);
        let (leader_tx, leader_rx) = watch::channel(LeaderAndEpoch {
            leader_id: None,
            epoch: election.epoch,
        });
        let handle = RaftHandle {
            proposals: ptx,
            high_watermark: hw_rx,
            leader: leader_rx,
            log: log.clone(),
        };
        Ok((
            RaftDriver {
                core,
                config,
                log,
                quorum_state,
                proposals: prx,
                high_watermark: hw_tx,
                leader: leader_tx,
            },
            handle,
        ))
    }

    /// Runs until `shutdown`; then flushes and closes the metadata log.
    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) -> Result<(), RaftError> {
        let actions = self.core.start(0);
        self.execute(actions)?;
        loop {
            tokio::select! {
                first = self.proposals.recv() => {
                    let Some(first) = first else { break };
                    let mut batch = vec![first];
                    while batch.len() < MAX_PROPOSALS_PER_APPEND {
                        match self.proposals.try_recv() {
                            Ok(p) => batch.push(p),
                            Err(_) => break,
                        }
                    }
                    self.append_proposals(batch)?;
                }
                _ = shutdown.changed() => break,
            }
        }
        self.proposals.close();
        let mut log = self.log.lock().map_err(|_| RaftError::Shutdown)?;
        log.close_in_place()?;
        Ok(())
    }

    fn append_proposals(&mut self, proposals: Vec<Proposal>) -> Result<(), RaftError> {
        let Some(epoch) = self.core.leader_epoch() else {
            let leader = self.leader.borrow().leader_id;
            for p in proposals {
                let _ = p.reply.send(Err(RaftError::NotLeader(leader)));
            }
            return Ok(());
        };
        let mut results = Vec::with_capacity(proposals.len());
        let end = {
            let mut log = self.log.lock().map_err(|_| RaftError::Shutdown)?;
            for p in &proposals {
                let mut batch = encode_batch(&p.records);
                let info = log.append_as_leader(&mut batch, epoch, now_ms());
                results.push(info.map(|i| i.last_offset));
            }
            if let Err(e) = log.flush() {
                // A metadata log that cannot be made durable cannot be trusted: stop leading.
                error!(error = %e, "cannot flush the metadata log");
                return Err(e.into());
            }
            log.log_end_offset()
        };
        let actions = self.core.on_local_flush(end);
        self.execute(actions)?;
        for (p, r) in proposals.into_iter().zip(results) {
            let _ = p.reply.send(r.map_err(RaftError::from));
        }
        Ok(())
    }

    fn execute(&mut self, actions: Vec<Action>) -> Result<(), RaftError> {
        for action in actions {
            match action {
                Action::PersistElection(state) => self.persist(&state)?,
                Action::LeaderChanged { epoch, leader_id } => {
                    info!(epoch, leader = ?leader_id, "metadata quorum leader changed");
                    self.leader
                        .send_replace(LeaderAndEpoch { leader_id, epoch });
                }
                Action::AppendLeaderChange { epoch, leader_id } => {
                    let value = leader_change_value(leader_id, &self.config.voters)?;
                    let end = {
                        let mut log = self.log.lock().map_err(|_| RaftError::Shutdown)?;
                        let mut batch = encode_control_batch(&value);
                        log.append_as_leader(&mut batch, epoch, now_ms())?;
                        log.flush()?;
                        log.log_end_offset()
                    };
                    let more = self.core.on_local_flush(end);
                    self.execute(more)?;
                }
                Action::AdvanceHighWatermark(hw) => {
                    self.high_watermark.send_replace(hw);
                }
                _ => {}
            }
        }
        Ok(())
    }

    fn persist(&self, state: &ElectionState) -> Result<(), RaftError> {
        Ok(self.quorum_state.write(state, &self.config.voters)?)
    }
}

pub fn metadata_partition_dir(metadata_log_dir: &Path) -> PathBuf {
    metadata_log_dir.join(METADATA_LOG_DIR_NAME)
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Metadata records go into the log as an uncompressed v2 batch of key-less records, as Kafka's.
fn encode_batch(values: &[Bytes]) -> BytesMut {
    let ts = now_ms();
    let records: Vec<NewRecord<'_>> = values
        .iter()
        .map(|v| NewRecord {
            key: None,
            value: Some(v),
            headers: &[],
            timestamp: ts,
        })
        .collect();
    BytesMut::from(&record_batch::encode_batch(&records, &BatchOptions::default())[..])
}

/// Kafka's ControlRecordType key: version 0, type 2 (LEADER_CHANGE).
const LEADER_CHANGE_KEY: [u8; 4] = [0, 0, 0, 2];

fn encode_control_batch(value: &[u8]) -> BytesMut {
    let record = NewRecord {
        key: Some(&LEADER_CHANGE_KEY),
        value: Some(value),
        headers: &[],
        timestamp: now_ms(),
    };
    let options = BatchOptions {
        is_control: true,
        ..BatchOptions::default()
    };
    BytesMut::from(&record_batch::encode_batch(&[record], &options)[..])
}

fn leader_change_value(leader_id: i32, voters: &[i32]) -> Result<Bytes, RaftError> {
    let voters: Vec<LeaderChangeVoter> = voters
        .iter()
        .map(|&v| LeaderChangeVoter::default().with_voter_id(v))
        .collect();
    let msg = LeaderChangeMessage::default()
        .with_version(0)
        .with_leader_id(leader_id.into())
        .with_voters(voters.clone())
        .with_granting_voters(voters);
    let mut buf = BytesMut::new();
    msg.encode(&mut buf, 0)
        .map_err(|e| RaftError::Encode(e.to_string()))?;
    Ok(buf.freeze())
}

fn rand_seed() -> u64 {
    uuid::Uuid::new_v4().as_u64_pair().0
}
