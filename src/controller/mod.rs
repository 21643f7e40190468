//! The active controller: turns requests that change the cluster (create/delete topics, add
//! partitions, alter configs, register brokers, allocate producer ids) into metadata records,
//! proposes them to the Raft leader and answers once they are committed and applied.
//!
//! Requests are handled one at a time against the newest image, so a check and the records it
//! leads to never interleave with another request's. It never writes state anywhere but the
//! metadata log, except the brokers' sessions (`brokers`), which are soft state as in Kafka:
//! they live only while this node is the active controller.

mod alter_partition;
mod brokers;
mod configs;
pub mod elections;
mod errors;
mod forwarding;
mod partition_change;
mod placement;
mod topics;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::{
    AlterPartitionRequest, AlterPartitionResponse, BrokerHeartbeatRequest,
    BrokerRegistrationRequest,
};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;
use tracing::{debug, info, warn};
use uuid::Uuid;

pub use brokers::{
    BrokerControlState, BrokerHeartbeatReply, BrokerRegistrationReply, HeartbeatInputs,
    MAX_REGISTERED_BROKERS, METADATA_VERSION_FEATURE, MINIMUM_KRAFT_METADATA_VERSION,
    heartbeat_response, next_broker_state, registration_response, session_expired,
};
pub use configs::{AlterConfigResource, ConfigOp};
pub use errors::ControllerError;
pub use forwarding::ControllerForwarder;
pub use topics::{CreatedTopic, NewPartitions, NewTopic, TopicRef, validate_topic_name};

use crate::metadata::records::{FeatureLevelRecord, MetadataRecord, NoOpRecord, ProducerIdsRecord};
use crate::metadata::{MetadataImage, MetadataReader};
use crate::raft::RaftHandle;
use brokers::BrokerHeartbeatManager;

/// metadata.version written when a new cluster's log is bootstrapped: 3.9-IV0, the newest level
/// whose records kraftd reads and writes in full.
pub const BOOTSTRAP_METADATA_VERSION: i16 = 21;
/// Producer ids handed to a broker at a time, as Kafka's controller does.
pub const PRODUCER_ID_BLOCK_SIZE: i64 = 1000;
/// Requests queued ahead of the one being handled.
const REQUEST_QUEUE: usize = 256;

/// Where a broker request comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestOrigin {
    /// The broker of this very process. Its registration proves that any other incarnation of
    /// this node id belonged to an earlier process of this node, which is gone: it is not made
    /// to wait out that incarnation's session, as a crashed combined node would in Kafka.
    InProcess,
    /// A request that came over the CONTROLLER listener.
    Network,
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
    BrokerRegistration {
        request: BrokerRegistrationRequest,
        origin: RequestOrigin,
        reply: oneshot::Sender<Result<BrokerRegistrationReply, ControllerError>>,
    },
    BrokerHeartbeat {
        request: BrokerHeartbeatRequest,
        reply: oneshot::Sender<Result<BrokerHeartbeatReply, ControllerError>>,
    },
    AllocateProducerIds {
        broker_id: i32,
        broker_epoch: i64,
        reply: oneshot::Sender<Result<(i64, i64), ControllerError>>,
    },
    AlterPartition {
        request: AlterPartitionRequest,
        version: i16,
        reply: oneshot::Sender<Result<AlterPartitionResponse, ControllerError>>,
    },
    ElectLeaders {
        election: elections::ElectionType,
        /// None: every partition.
        partitions: Option<Vec<(String, i32)>>,
        reply: oneshot::Sender<ElectionResults>,
    },
}

/// ElectLeaders' answer: each (topic, partition) asked for and its outcome.
pub type ElectionResults = Vec<((String, i32), Result<(), ControllerError>)>;

/// How brokers (and the API layer) reach the active controller.
#[derive(Clone)]
pub struct ControllerHandle {
    tx: mpsc::Sender<Request>,
    /// Reaches the active controller on another node for this node's own needs.
    forwarder: Option<Arc<ControllerForwarder>>,
    active: watch::Receiver<bool>,
}

impl ControllerHandle {
    /// Whether this node is the active controller now.
    pub fn is_active(&self) -> bool {
        *self.active.borrow()
    }

    /// Waits until this node is the active controller; false if the controller has stopped.
    pub async fn wait_active(&self) -> bool {
        let mut active = self.active.clone();
        active.wait_for(|a| *a).await.is_ok()
    }

    async fn call<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> Request,
    ) -> Result<T, ControllerError> {
        if !self.is_active() {
            // Never queue behind an election that may not happen: the caller retries.
            return Err(ControllerError::NotController);
        }
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
    pub fn remote(&self) -> Option<&ControllerForwarder> {
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

    /// BrokerRegistration (KIP-631). A request from the network is refused with NotController
    /// at once when this node is not active; one from this process waits for activation, as
    /// every other in-process request does.
    pub async fn broker_registration(
        &self,
        request: BrokerRegistrationRequest,
        origin: RequestOrigin,
    ) -> Result<BrokerRegistrationReply, ControllerError> {
        if origin == RequestOrigin::Network && !self.is_active() {
            return Err(ControllerError::NotController);
        }
        self.call(|reply| Request::BrokerRegistration {
            request,
            origin,
            reply,
        })
        .await?
    }

    /// BrokerHeartbeat (KIP-631); refused like a registration when not active.
    pub async fn broker_heartbeat(
        &self,
        request: BrokerHeartbeatRequest,
        origin: RequestOrigin,
    ) -> Result<BrokerHeartbeatReply, ControllerError> {
        if origin == RequestOrigin::Network && !self.is_active() {
            return Err(ControllerError::NotController);
        }
        self.call(|reply| Request::BrokerHeartbeat { request, reply })
            .await?
    }

    /// AlterPartition (KIP-497) from a partition leader; refused like a registration when not
    /// active.
    pub async fn alter_partition(
        &self,
        request: AlterPartitionRequest,
        version: i16,
        origin: RequestOrigin,
    ) -> Result<AlterPartitionResponse, ControllerError> {
        if origin == RequestOrigin::Network && !self.is_active() {
            return Err(ControllerError::NotController);
        }
        self.call(|reply| Request::AlterPartition {
            request,
            version,
            reply,
        })
        .await?
    }

    /// ElectLeaders (KIP-460): one result per partition named, or per partition of the cluster
    /// when `partitions` is None.
    pub async fn elect_leaders(
        &self,
        election: elections::ElectionType,
        partitions: Option<Vec<(String, i32)>>,
    ) -> Result<ElectionResults, ControllerError> {
        self.call(|reply| Request::ElectLeaders {
            election,
            partitions,
            reply,
        })
        .await
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

/// The AlterPartition answer for a whole-request result: an error goes in the top-level code.
pub fn alter_partition_response(
    result: Result<AlterPartitionResponse, ControllerError>,
) -> AlterPartitionResponse {
    match result {
        Ok(r) => r,
        Err(e) => AlterPartitionResponse::default().with_error_code(e.code()),
    }
}

/// Answers a request NOT_CONTROLLER without looking at it: its caller sees the reply channel
/// close, which `ControllerHandle::call` reports as NotController.
fn reject(request: Request) {
    drop(request);
}

/// Settings the controller needs from the node's config.
#[derive(Debug, Clone)]
pub struct ControllerConfig {
    pub node_id: i32,
    /// Registrations from another cluster are refused (INCONSISTENT_CLUSTER_ID).
    pub cluster_id: String,
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
    /// Published to every ControllerHandle.
    active: watch::Sender<bool>,
    /// Brokers' sessions; reset each time this node becomes active.
    sessions: BrokerHeartbeatManager,
    /// When to look for partitions to give an unclean leader, and to hand leadership back to
    /// preferred replicas (`auto.leader.rebalance.enable`).
    next_unclean_check: Instant,
    next_preferred_check: Instant,
}

/// How often the active controller looks for leaderless partitions whose topic allows an
/// unclean election: soon after a broker is fenced or unfenced, without rescanning on every
/// heartbeat.
const UNCLEAN_CHECK_EVERY: Duration = Duration::from_secs(1);

impl QuorumController {
    pub fn new(
        config: ControllerConfig,
        raft: RaftHandle,
        metadata: MetadataReader,
    ) -> (QuorumController, ControllerHandle) {
        let (tx, rx) = mpsc::channel(REQUEST_QUEUE);
        let (active_tx, active_rx) = watch::channel(false);
        let sessions = BrokerHeartbeatManager::new(session_timeout(&config));
        (
            QuorumController {
                config,
                raft,
                metadata,
                requests: rx,
                active: active_tx,
                sessions,
                next_unclean_check: Instant::now(),
                next_preferred_check: Instant::now(),
            },
            ControllerHandle {
                tx,
                active: active_rx,
                forwarder: None,
            },
        )
    }

    /// Serves requests while this node leads the metadata quorum; otherwise answers every
    /// request NOT_CONTROLLER at once, so callers retry elsewhere instead of waiting.
    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) {
        let mut leader = self.raft.leader();
        loop {
            // Wait to lead. Requests that arrive meanwhile are refused (NOT_CONTROLLER) so
            // their callers retry, possibly at another node, instead of waiting here.
            let leader_epoch = loop {
                let now = *leader.borrow_and_update();
                if now.leader_id == Some(self.config.node_id) {
                    break now.epoch;
                }
                tokio::select! {
                    r = leader.changed() => if r.is_err() { return },
                    r = self.requests.recv() => match r {
                        Some(r) => reject(r),
                        None => return,
                    },
                    _ = shutdown.changed() => return,
                }
            };
            if let Err(e) = self.activate().await {
                warn!(error = %e, "controller could not activate");
                // Try again once leadership changes (or shortly, if it does not).
                tokio::select! {
                    r = leader.changed() => if r.is_err() { return },
                    _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                    _ = shutdown.changed() => return,
                }
                continue;
            }
            loop {
                let image = self.metadata.current();
                let next_check = self.sessions.next_check_time(&image);
                // Requests first: a heartbeat already queued must count before its broker's
                // session is judged.
                tokio::select! {
                    biased;
                    _ = shutdown.changed() => return,
                    r = leader.changed() => {
                        if r.is_err() {
                            return;
                        }
                        // A new epoch, even one this node leads again, may follow writes this
                        // node has not seen: activate afresh.
                        let now = *leader.borrow_and_update();
                        if now.leader_id != Some(self.config.node_id) || now.epoch != leader_epoch {
                            self.deactivate();
                            break;
                        }
                    }
                    r = self.requests.recv() => match r {
                        Some(r) => self.handle(r).await,
                        None => return,
                    },
                    _ = sleep_until(next_check) => self.fence_stale_brokers().await,
                    _ = tokio::time::sleep_until(
                        self.next_unclean_check.min(self.next_preferred_check)
                    ) => self.balance_leaders().await,
                }
            }
        }
    }

    /// No longer the leader: sessions are dropped (the next active controller starts its own)
    /// and queued requests are answered NotController by dropping them.
    fn deactivate(&mut self) {
        self.active.send_replace(false);
        self.sessions = BrokerHeartbeatManager::new(session_timeout(&self.config));
        while self.requests.try_recv().is_ok() {}
        info!(
            node_id = self.config.node_id,
            "no longer the active controller"
        );
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
        // Every registered broker gets a fresh session, as in Kafka: this node does not know
        // when any of them last heartbeated.
        self.sessions = BrokerHeartbeatManager::activate(
            session_timeout(&self.config),
            &self.metadata.current(),
            Instant::now(),
        );
        self.active.send_replace(true);
        // Brokers need a moment to re-register with a new controller: do not move leaders
        // before a whole check interval has passed.
        self.next_preferred_check = Instant::now() + self.preferred_check_interval();
        self.next_unclean_check = Instant::now() + UNCLEAN_CHECK_EVERY;
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
        self.commit_at(records).await.map(|(image, _)| image)
    }

    /// As `commit`, also returning the offset of the batch's last record (for an empty batch,
    /// of the last record already in the image).
    async fn commit_at(
        &self,
        records: Vec<MetadataRecord>,
    ) -> Result<(Arc<MetadataImage>, i64), ControllerError> {
        if records.is_empty() {
            let image = self.metadata.current();
            let last = image.offset - 1;
            return Ok((image, last));
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
        let image = self
            .metadata
            .wait_for_offset(last + 1)
            .await
            .ok_or(ControllerError::NotController)?;
        Ok((image, last))
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
            Request::BrokerRegistration {
                request,
                origin,
                reply,
            } => {
                let result = self.broker_registration(&image, request, origin).await;
                let _ = reply.send(result);
            }
            Request::BrokerHeartbeat { request, reply } => {
                let result = self.broker_heartbeat(&image, request).await;
                let _ = reply.send(result);
            }
            Request::AlterPartition {
                request,
                version,
                reply,
            } => {
                let result = match alter_partition::alter_partition(&image, &request, version) {
                    Ok((response, records)) => self.commit(records).await.map(|_| response),
                    Err(e) => Err(e),
                };
                let _ = reply.send(result);
            }
            Request::ElectLeaders {
                election,
                partitions,
                reply,
            } => {
                let (names, results, records) = elect_leaders(&image, election, partitions);
                let results = self.commit_unless(false, records, results).await;
                let _ = reply.send(names.into_iter().zip(results).collect());
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

    /// BrokerRegistration, as Kafka's `ClusterControlManager.registerBroker`.
    async fn broker_registration(
        &mut self,
        image: &MetadataImage,
        request: BrokerRegistrationRequest,
        origin: RequestOrigin,
    ) -> Result<BrokerRegistrationReply, ControllerError> {
        let now = Instant::now();
        let broker = request.broker_id.0;
        let mut record = brokers::validate_registration(image, &self.config.cluster_id, &request)?;
        let existing = image.brokers.get(&broker);
        let same_incarnation = existing.is_some_and(|b| b.incarnation_id == request.incarnation_id);
        let local = origin == RequestOrigin::InProcess && broker == self.config.node_id;
        if let Some(b) = existing
            && !same_incarnation
            && !local
            && self.sessions.has_valid_session(b, now)
        {
            return Err(ControllerError::DuplicateBrokerRegistration(
                "Another broker is registered with that broker id.".into(),
            ));
        }
        let mut records = Vec::new();
        match existing {
            Some(b) if same_incarnation => {
                // The same process registering again (a lost answer, a new controller) keeps
                // its epoch and state.
                record.broker_epoch = b.epoch;
                record.fenced = b.fenced;
                record.in_controlled_shutdown = b.in_controlled_shutdown;
            }
            _ => {
                if let Some(b) = existing.filter(|b| !b.fenced) {
                    // The old incarnation was never fenced (it died within its session, or was
                    // shutting down): move its leaderships away now, as its expiry would.
                    records.extend(
                        partition_change::leader_and_isr_updates(
                            image,
                            partition_change::BrokerChange::Remove(b.id),
                        )
                        .into_iter()
                        .map(MetadataRecord::PartitionChange),
                    );
                }
                // The epoch is the offset the record will have: this controller is the log's only
                // writer and the image holds everything written so far.
                record.broker_epoch = image.offset + records.len() as i64;
                self.sessions.remove(broker);
            }
        }
        let epoch = record.broker_epoch;
        let fenced = record.fenced;
        info!(
            broker_id = broker,
            incarnation_id = %request.incarnation_id,
            broker_epoch = epoch,
            new_incarnation = !same_incarnation,
            "registering broker"
        );
        records.push(MetadataRecord::RegisterBroker(record));
        let (_, last) = self.commit_at(records).await?;
        if !same_incarnation && last != epoch {
            // Still unique and increasing (the image only grows), so nothing depends on it.
            debug!(
                broker_id = broker,
                broker_epoch = epoch,
                offset = last,
                "broker epoch differs from its record's offset"
            );
        }
        self.sessions
            .registered(broker, last, Instant::now(), fenced);
        Ok(BrokerRegistrationReply {
            broker_epoch: epoch,
        })
    }

    /// BrokerHeartbeat, as Kafka's `ReplicationControlManager.processBrokerHeartbeat`.
    async fn broker_heartbeat(
        &mut self,
        image: &MetadataImage,
        request: BrokerHeartbeatRequest,
    ) -> Result<BrokerHeartbeatReply, ControllerError> {
        let broker = request.broker_id.0;
        let registration = brokers::check_broker_epoch(image, broker, request.broker_epoch)?;
        let registration_offset = self.sessions.registration_offset(broker).ok_or_else(|| {
            ControllerError::StaleBrokerEpoch(format!(
                "Receive a heartbeat from broker {broker} before registration"
            ))
        })?;
        let current = self.sessions.current_state(registration);
        let inputs =
            brokers::heartbeat_inputs(&request, &self.sessions, image, registration_offset);
        let next = next_broker_state(current, inputs);
        let records = brokers::heartbeat_records(image, broker, registration.epoch, current, next);
        if current != next {
            info!(broker_id = broker, from = ?current, to = ?next, "broker state change");
        }
        let (_, last) = self.commit_at(records).await?;
        self.sessions.touch(
            broker,
            Instant::now(),
            request.current_metadata_offset,
            next.fenced(),
        );
        if next.in_controlled_shutdown() {
            self.sessions
                .maybe_update_controlled_shutdown_offset(broker, last);
        }
        Ok(BrokerHeartbeatReply {
            is_caught_up: request.current_metadata_offset >= registration_offset,
            is_fenced: next.fenced(),
            in_controlled_shutdown: next.in_controlled_shutdown(),
            should_shut_down: next.should_shut_down(),
        })
    }

    /// Fences every unfenced broker whose session expired, one at a time so each sees the
    /// leadership moves of the previous one.
    fn preferred_check_interval(&self) -> Duration {
        Duration::from_secs(
            self.config
                .broker
                .leader_imbalance_check_interval_seconds
                .max(1) as u64,
        )
    }

    /// Whether `topic` may elect a leader outside its ISR: its own
    /// `unclean.leader.election.enable`, else the node's.
    fn unclean_allowed(&self, image: &MetadataImage, topic: &str) -> bool {
        image
            .topic_configs(topic)
            .get("unclean.leader.election.enable")
            .map(|v| v.eq_ignore_ascii_case("true"))
            .unwrap_or(self.config.broker.unclean_leader_election_enable)
    }

    /// The periodic elections: leaderless partitions whose topics allow it get an unclean
    /// leader; every `leader.imbalance.check.interval.seconds`, with
    /// `auto.leader.rebalance.enable`, leadership goes back to in-sync preferred replicas
    /// (Kafka's `maybeBalancePartitionLeaders`).
    async fn balance_leaders(&mut self) {
        let now = Instant::now();
        if now >= self.next_unclean_check {
            self.next_unclean_check = now + UNCLEAN_CHECK_EVERY;
            let image = self.metadata.current();
            let records =
                elections::unclean_leader_elections(&image, |t| self.unclean_allowed(&image, t));
            if !records.is_empty() {
                warn!(
                    partitions = records.len(),
                    "electing leaders outside the ISR (unclean.leader.election.enable): records only the lost ISR held may be gone"
                );
                self.commit_elections(records).await;
            }
        }
        if now >= self.next_preferred_check {
            self.next_preferred_check = now + self.preferred_check_interval();
            if self.config.broker.auto_leader_rebalance_enable {
                let records = elections::preferred_leader_elections(&self.metadata.current());
                if !records.is_empty() {
                    info!(
                        partitions = records.len(),
                        "moving leadership back to preferred replicas (auto.leader.rebalance.enable)"
                    );
                    self.commit_elections(records).await;
                }
            }
        }
    }

    async fn commit_elections(
        &self,
        records: Vec<crate::metadata::records::PartitionChangeRecord>,
    ) {
        let records = records
            .into_iter()
            .map(MetadataRecord::PartitionChange)
            .collect();
        if let Err(e) = self.commit(records).await {
            warn!(error = %e, "could not commit leader elections");
        }
    }

    async fn fence_stale_brokers(&mut self) {
        loop {
            let image = self.metadata.current();
            let Some(broker) = self.sessions.find_stale_broker(&image, Instant::now()) else {
                return;
            };
            let Some(epoch) = image.brokers.get(&broker).map(|b| b.epoch) else {
                self.sessions.remove(broker);
                continue;
            };
            info!(
                broker_id = broker,
                session_timeout_ms = self.sessions.session_timeout().as_millis() as u64,
                "fencing broker because its session has timed out"
            );
            match self
                .commit(brokers::fence_records(&image, broker, epoch))
                .await
            {
                Ok(_) => self.sessions.fenced(broker),
                Err(e) => {
                    warn!(broker_id = broker, error = %e, "could not fence broker");
                    return;
                }
            }
        }
    }
}

impl Drop for QuorumController {
    /// A stopped controller is not active: in-process callers stop waiting for it.
    fn drop(&mut self) {
        self.active.send_replace(false);
    }
}

fn session_timeout(config: &ControllerConfig) -> Duration {
    Duration::from_millis(config.broker.broker_session_timeout_ms.max(1) as u64)
}

/// Sleeps until `deadline`, or forever when there is none.
/// ElectLeaders against `image`: the partitions asked for (every partition when None), a
/// result for each, and the records of the elections made.
#[allow(clippy::type_complexity)]
fn elect_leaders(
    image: &MetadataImage,
    election: elections::ElectionType,
    partitions: Option<Vec<(String, i32)>>,
) -> (
    Vec<(String, i32)>,
    Vec<Result<(), ControllerError>>,
    Vec<MetadataRecord>,
) {
    let partitions = partitions.unwrap_or_else(|| {
        image
            .topics()
            .iter()
            .flat_map(|t| t.partitions.keys().map(|&p| (t.name.clone(), p)))
            .collect()
    });
    let mut records = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    let results = partitions
        .iter()
        .map(|(topic, partition)| {
            if !seen.insert((topic, *partition)) {
                return Err(ControllerError::InvalidRequest(format!(
                    "{topic}-{partition} is named twice"
                )));
            }
            image
                .topic(topic)
                .and_then(|t| t.partitions.get(partition).map(|p| (t.id, p)))
                .ok_or(ControllerError::UnknownTopicOrPartition)
                .and_then(|(id, p)| elections::elect(image, id, *partition, p, election))
                .map(|record| records.push(MetadataRecord::PartitionChange(record)))
        })
        .collect();
    (partitions, results, records)
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
pub(crate) mod tests;
