//! The active controller: turns requests that change the cluster (create/delete topics, add
//! partitions, alter configs, register brokers, allocate producer ids) into metadata records,
//! proposes them to the Raft leader and answers once they are committed and applied.
//!
//! Requests are handled one at a time against the newest image, so a check and the records it
//! leads to never interleave with another request's. It never writes state anywhere but the
//! metadata log.

mod configs;
mod errors;
mod forwarding;
mod placement;
mod topics;

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot, watch};
use tracing::{info, warn};
use uuid::Uuid;

pub use configs::{AlterConfigResource, ConfigOp};
pub use errors::ControllerError;
pub use forwarding::ControllerForwarder;
pub use topics::{CreatedTopic, NewPartitions, NewTopic, TopicRef, validate_topic_name};

use crate::metadata::records::{
    BrokerEndpoint, FeatureLevelRecord, MetadataRecord, NoOpRecord, ProducerIdsRecord,
    RegisterBrokerRecord, UnfenceBrokerRecord,
};
use crate::metadata::{MetadataImage, MetadataReader};
use crate::raft::RaftHandle;

/// metadata.version written when a new cluster's log is bootstrapped: 3.9-IV0, the newest level
/// whose records kraftd reads and writes in full.
pub const BOOTSTRAP_METADATA_VERSION: i16 = 21;
/// Producer ids handed to a broker at a time, as Kafka's controller does.
pub const PRODUCER_ID_BLOCK_SIZE: i64 = 1000;
/// Requests queued ahead of the one being handled.
const REQUEST_QUEUE: usize = 256;

pub struct BrokerToRegister {
    pub broker_id: i32,
    pub incarnation_id: Uuid,
    pub endpoints: Vec<BrokerEndpoint>,
    pub rack: Option<String>,
}

enum Request {
    CreateTopics {
        topics: Vec<NewTopic>,
        validate_only: bool,
        reply: oneshot::Sender<Vec<Result<CreatedTopic, ControllerError>>>,
    },
    DeleteTopics {
        topics: Vec<topics::TopicRef>,
        reply: oneshot::Sender<Vec<Result<(String, Uuid), ControllerError>>>,
    },
    CreatePartitions {
        topics: Vec<NewPartitions>,
        validate_only: bool,
        reply: oneshot::Sender<Vec<Result<(), ControllerError>>>,
    },
    AlterConfigs {
        resources: Vec<AlterConfigResource>,
        validate_only: bool,
        reply: oneshot::Sender<Vec<Result<(), ControllerError>>>,
    },
    RegisterBroker {
        broker: BrokerToRegister,
        reply: oneshot::Sender<Result<i64, ControllerError>>,
    },
    UnfenceBroker {
        broker_id: i32,
        broker_epoch: i64,
        reply: oneshot::Sender<Result<(), ControllerError>>,
    },
    AllocateProducerIds {
        broker_id: i32,
        broker_epoch: i64,
        reply: oneshot::Sender<Result<(i64, i64), ControllerError>>,
    },
}

/// How brokers (and the API layer) reach the active controller.
#[derive(Clone)]
pub struct ControllerHandle {
    tx: mpsc::Sender<Request>,
    /// Reaches the active controller on another node for this node's own needs.
    forwarder: Option<Arc<ControllerForwarder>>,
}

impl ControllerHandle {
    async fn call<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> Request,
    ) -> Result<T, ControllerError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(make(reply))
            .await
            .map_err(|_| ControllerError::NotController)?;
        rx.await.map_err(|_| ControllerError::NotController)
    }

    /// Lets this handle reach the active controller on another node (see `forwarding`).
    pub fn with_forwarder(mut self, forwarder: Arc<ControllerForwarder>) -> ControllerHandle {
        self.forwarder = Some(forwarder);
        self
    }

    /// The forwarder, when the active controller runs on another node.
    fn remote(&self) -> Option<&ControllerForwarder> {
        self.forwarder.as_deref().filter(|f| !f.is_local_leader())
    }

    pub async fn create_topics(
        &self,
        topics: Vec<NewTopic>,
        validate_only: bool,
    ) -> Result<Vec<Result<CreatedTopic, ControllerError>>, ControllerError> {
        if let Some(remote) = self.remote() {
            return forwarding::create_topics(remote, topics, validate_only).await;
        }
        self.call(|reply| Request::CreateTopics {
            topics,
            validate_only,
            reply,
        })
        .await
    }

    pub async fn delete_topics(
        &self,
        topics: Vec<topics::TopicRef>,
    ) -> Result<Vec<Result<(String, Uuid), ControllerError>>, ControllerError> {
        self.call(|reply| Request::DeleteTopics { topics, reply })
            .await
    }

    pub async fn create_partitions(
        &self,
        topics: Vec<NewPartitions>,
        validate_only: bool,
    ) -> Result<Vec<Result<(), ControllerError>>, ControllerError> {
        self.call(|reply| Request::CreatePartitions {
            topics,
            validate_only,
            reply,
        })
        .await
    }

    /// One result per resource.
    pub async fn alter_configs(
        &self,
        resources: Vec<AlterConfigResource>,
        validate_only: bool,
    ) -> Result<Vec<Result<(), ControllerError>>, ControllerError> {
        self.call(|reply| Request::AlterConfigs {
            resources,
            validate_only,
            reply,
        })
        .await
    }

    pub async fn register_broker(&self, broker: BrokerToRegister) -> Result<i64, ControllerError> {
        self.call(|reply| Request::RegisterBroker { broker, reply })
            .await?
    }

    pub async fn unfence_broker(
        &self,
        broker_id: i32,
        broker_epoch: i64,
    ) -> Result<(), ControllerError> {
        self.call(|reply| Request::UnfenceBroker {
            broker_id,
            broker_epoch,
            reply,
        })
        .await?
    }

    /// A block of producer ids: (first id, count).
    pub async fn allocate_producer_ids(
        &self,
        broker_id: i32,
        broker_epoch: i64,
    ) -> Result<(i64, i64), ControllerError> {
        if let Some(remote) = self.remote() {
            return forwarding::allocate_producer_ids(remote, broker_id, broker_epoch).await;
        }
        self.call(|reply| Request::AllocateProducerIds {
            broker_id,
            broker_epoch,
            reply,
        })
        .await?
    }
}

/// Answers a request NOT_CONTROLLER without looking at it.
fn reject(request: Request) {
    let e = ControllerError::NotController;
    match request {
        Request::CreateTopics { reply, .. } => drop(reply),
        Request::DeleteTopics { reply, .. } => drop(reply),
        Request::CreatePartitions { reply, .. } => drop(reply),
        Request::AlterConfigs { reply, .. } => drop(reply),
        Request::RegisterBroker { reply, .. } => {
            let _ = reply.send(Err(e));
        }
        Request::UnfenceBroker { reply, .. } => {
            let _ = reply.send(Err(e));
        }
        Request::AllocateProducerIds { reply, .. } => {
            let _ = reply.send(Err(e));
        }
    }
}

/// Settings the controller needs from the node's config.
#[derive(Debug, Clone)]
pub struct ControllerConfig {
    pub node_id: i32,
    /// The node's static config: topic configs fall back to it when validated.
    pub broker: Arc<crate::config::ServerConfig>,
    pub default_num_partitions: i32,
    pub default_replication_factor: i16,
    pub delete_topic_enable: bool,
}

pub struct QuorumController {
    config: ControllerConfig,
    raft: RaftHandle,
    metadata: MetadataReader,
    requests: mpsc::Receiver<Request>,
}

impl QuorumController {
    pub fn new(
        config: ControllerConfig,
        raft: RaftHandle,
        metadata: MetadataReader,
    ) -> (QuorumController, ControllerHandle) {
        let (tx, rx) = mpsc::channel(REQUEST_QUEUE);
        (
            QuorumController {
                config,
                raft,
                metadata,
                requests: rx,
            },
            ControllerHandle {
                tx,
                forwarder: None,
            },
        )
    }

    /// Serves requests while this node leads the metadata quorum; otherwise answers every
    /// request NOT_CONTROLLER at once, so callers retry elsewhere instead of waiting.
    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) {
        let mut leader = self.raft.leader();
        let mut active_epoch: Option<i32> = None;
        loop {
            let current = *leader.borrow_and_update();
            let leads = current.leader_id == Some(self.config.node_id);
            if leads && active_epoch != Some(current.epoch) {
                // Make sure the image holds everything committed before serving.
                match self.activate().await {
                    Ok(()) => active_epoch = Some(current.epoch),
                    Err(e) => {
                        warn!(error = %e, "controller could not activate; waiting for the next election");
                    }
                }
                continue;
            }
            if !leads && active_epoch.take().is_some() {
                info!(
                    node_id = self.config.node_id,
                    "no longer the active controller"
                );
            }
            tokio::select! {
                r = self.requests.recv() => match r {
                    Some(request) => {
                        let still = *self.raft.leader().borrow();
                        if active_epoch.is_some() && active_epoch == Some(still.epoch)
                            && still.leader_id == Some(self.config.node_id)
                        {
                            self.handle(request).await;
                        } else {
                            reject(request);
                        }
                    }
                    None => return,
                },
                r = leader.changed() => if r.is_err() { return },
                _ = shutdown.changed() => return,
            }
        }
    }

    /// Commits a NoOpRecord so the image is known to hold every earlier record, then bootstraps a
    /// new cluster's features.
    async fn activate(&mut self) -> Result<(), ControllerError> {
        let image = self
            .commit(vec![MetadataRecord::NoOp(NoOpRecord {})])
            .await?;
        if !image.features.contains_key("metadata.version") {
            self.commit(vec![MetadataRecord::FeatureLevel(FeatureLevelRecord {
                name: "metadata.version".into(),
                feature_level: BOOTSTRAP_METADATA_VERSION,
            })])
            .await?;
            info!(
                metadata_version = BOOTSTRAP_METADATA_VERSION,
                "bootstrapped a new cluster's metadata log"
            );
        }
        info!(
            node_id = self.config.node_id,
            "became the active controller"
        );
        Ok(())
    }

    /// Proposes `records` as one batch and returns the image that includes them.
    async fn commit(
        &self,
        records: Vec<MetadataRecord>,
    ) -> Result<Arc<MetadataImage>, ControllerError> {
        if records.is_empty() {
            return Ok(self.metadata.current());
        }
        let values: Vec<Bytes> = records.iter().map(|r| Bytes::from(r.encode())).collect();
        let (last, epoch) = self.raft.propose(values).await.map_err(|e| match e {
            crate::raft::RaftError::NotLeader(_) => ControllerError::NotController,
            other => ControllerError::Unknown(other.to_string()),
        })?;
        self.raft
            .wait_committed(last, epoch)
            .await
            .map_err(|_| ControllerError::NotController)?;
        self.metadata
            .wait_for_offset(last + 1)
            .await
            .ok_or(ControllerError::NotController)
    }

    async fn handle(&mut self, request: Request) {
        let image = self.metadata.current();
        match request {
            Request::CreateTopics {
                topics,
                validate_only,
                reply,
            } => {
                let (results, records) = topics::create_topics(&self.config, &image, topics);
                let results = self.commit_unless(validate_only, records, results).await;
                let _ = reply.send(results);
            }
            Request::DeleteTopics { topics, reply } => {
                let (results, records) = topics::delete_topics(&self.config, &image, topics);
                let results = self.commit_unless(false, records, results).await;
                let _ = reply.send(results);
            }
            Request::CreatePartitions {
                topics,
                validate_only,
                reply,
            } => {
                let (results, records) = topics::create_partitions(&image, topics);
                let results = self.commit_unless(validate_only, records, results).await;
                let _ = reply.send(results);
            }
            Request::AlterConfigs {
                resources,
                validate_only,
                reply,
            } => {
                let (results, records) =
                    configs::alter_configs(&self.config.broker, &image, resources);
                let results = self.commit_unless(validate_only, records, results).await;
                let _ = reply.send(results);
            }
            Request::RegisterBroker { broker, reply } => {
                let result = self.register_broker(&image, broker).await;
                let _ = reply.send(result);
            }
            Request::UnfenceBroker {
                broker_id,
                broker_epoch,
                reply,
            } => {
                let result = match image.brokers.get(&broker_id) {
                    Some(b) if b.epoch == broker_epoch => {
                        if b.fenced {
                            self.commit(vec![MetadataRecord::UnfenceBroker(UnfenceBrokerRecord {
                                id: broker_id,
                                epoch: broker_epoch,
                            })])
                            .await
                            .map(|_| ())
                        } else {
                            Ok(())
                        }
                    }
                    _ => Err(ControllerError::BrokerIdNotRegistered(format!(
                        "Broker {broker_id} with epoch {broker_epoch} is not registered"
                    ))),
                };
                let _ = reply.send(result);
            }
            Request::AllocateProducerIds {
                broker_id,
                broker_epoch,
                reply,
            } => {
                let start = image.next_producer_id;
                let result = self
                    .commit(vec![MetadataRecord::ProducerIds(ProducerIdsRecord {
                        broker_id,
                        broker_epoch,
                        next_producer_id: start + PRODUCER_ID_BLOCK_SIZE,
                    })])
                    .await
                    .map(|_| (start, PRODUCER_ID_BLOCK_SIZE));
                let _ = reply.send(result);
            }
        }
    }

    /// Commits the records of the successful results; if the commit fails, every success turns
    /// into that failure.
    async fn commit_unless<T>(
        &self,
        validate_only: bool,
        records: Vec<MetadataRecord>,
        results: Vec<Result<T, ControllerError>>,
    ) -> Vec<Result<T, ControllerError>> {
        if validate_only || records.is_empty() {
            return results;
        }
        match self.commit(records).await {
            Ok(_) => results,
            Err(e) => results.into_iter().map(|r| r.and(Err(e.clone()))).collect(),
        }
    }

    async fn register_broker(
        &self,
        image: &MetadataImage,
        broker: BrokerToRegister,
    ) -> Result<i64, ControllerError> {
        // The broker epoch is the offset of its registration record, as in Kafka.
        let epoch_guess = image.offset;
        let mut features = BTreeMap::new();
        features.insert(
            "metadata.version".to_string(),
            (1i16, BOOTSTRAP_METADATA_VERSION),
        );
        let record = RegisterBrokerRecord {
            broker_id: broker.broker_id,
            is_migrating_zk_broker: false,
            incarnation_id: broker.incarnation_id,
            broker_epoch: epoch_guess,
            end_points: broker.endpoints,
            features: features
                .into_iter()
                .map(
                    |(name, (min, max))| crate::metadata::records::BrokerFeature {
                        name,
                        min_supported_version: min,
                        max_supported_version: max,
                    },
                )
                .collect(),
            rack: broker.rack,
            fenced: true,
            in_controlled_shutdown: false,
            log_dirs: Vec::new(),
        };
        let image = self
            .commit(vec![MetadataRecord::RegisterBroker(record)])
            .await?;
        image
            .brokers
            .get(&broker.broker_id)
            .map(|b| b.epoch)
            .ok_or_else(|| ControllerError::Unknown("registration was not applied".into()))
    }
}
