//! The broker's lifecycle with the active controller (KIP-631), as Kafka's
//! BrokerLifecycleManager: register (listeners, rack, incarnation, supported features, log
//! dirs), then heartbeat every `broker.heartbeat.interval.ms` with the metadata offset this
//! broker has applied; the controller unfences it once it has caught up with its own
//! registration. On shutdown it asks for a controlled shutdown, so its leaderships move before
//! it stops serving.
//!
//! It owns the broker state (Starting → Recovery → Running → PendingControlledShutdown →
//! ShuttingDown) and the broker epoch, both published as watches. It talks to the controller only
//! through `ControllerChannel`, with Kafka's request and response structs.

use std::time::Duration;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::broker_registration_request::{Feature, Listener};
use kafka_protocol::messages::{BrokerHeartbeatRequest, BrokerId, BrokerRegistrationRequest};
use kafka_protocol::protocol::StrBytes;
use tokio::sync::watch;
use tokio::time::Instant;
use tracing::{debug, error, info, warn};
use uuid::Uuid;

use super::controller_channel::ControllerChannel;
use crate::config::{SecurityProtocol, ServerConfig};
use crate::controller::{
    BOOTSTRAP_METADATA_VERSION, ControllerHandle, METADATA_VERSION_FEATURE,
    MINIMUM_KRAFT_METADATA_VERSION,
};
use crate::log::meta_properties::{MetaProperties, parse_kafka_uuid};
use crate::metadata::MetadataReader;

/// First retry delay after a failed request; it doubles up to the session timeout, as Kafka's.
const INITIAL_BACKOFF: Duration = Duration::from_millis(100);
/// While catching up, heartbeat this often rather than every interval, so a node with nothing to
/// recover starts at once (Kafka's 10 ms).
const STARTING_HEARTBEAT: Duration = Duration::from_millis(10);
/// The first heartbeat after asking for a controlled shutdown comes this soon: when there is
/// nothing to move, the controller grants it on the next one (Kafka's 50 ms).
const FIRST_SHUTDOWN_HEARTBEAT: Duration = Duration::from_millis(50);

/// Kafka's BrokerState, as far as the lifecycle moves it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BrokerState {
    /// Registering, then catching up with the metadata log.
    Starting,
    /// Caught up; fenced until the controller lets it serve.
    Recovery,
    /// Unfenced: clients may be sent here.
    Running,
    /// Asked the controller to move its leaderships away; waiting for permission to stop.
    PendingControlledShutdown,
    /// No longer talking to the controller.
    ShuttingDown,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LifecycleError {
    #[error(
        "broker {node_id} could not register with the controller quorum within {timeout_ms} ms (initial.broker.registration.timeout.ms)"
    )]
    RegistrationTimedOut { node_id: i32, timeout_ms: u64 },
    #[error("the broker lifecycle stopped before the broker was unfenced")]
    ShutDown,
}

/// What registration says about this broker, and how often it talks to the controller.
#[derive(Debug, Clone)]
pub struct LifecycleConfig {
    pub node_id: i32,
    pub cluster_id: String,
    pub rack: Option<String>,
    pub listeners: Vec<Listener>,
    /// (name, min, max) supported feature levels.
    pub features: Vec<(String, i16, i16)>,
    /// The `directory.id` of each log dir, sorted.
    pub log_dirs: Vec<Uuid>,
    pub heartbeat_interval: Duration,
    /// Caps the retry backoff.
    pub session_timeout: Duration,
    pub initial_registration_timeout: Duration,
    /// Bounds each request to the controller.
    pub request_timeout: Duration,
}

impl LifecycleConfig {
    pub fn from_server_config(config: &ServerConfig, cluster_id: &str) -> LifecycleConfig {
        let controller_names = &config.controller_listener_names;
        let listeners = config
            .advertised_listeners
            .iter()
            .filter(|l| !controller_names.contains(&l.name))
            .map(|l| {
                Listener::default()
                    .with_name(StrBytes::from_string(l.name.clone()))
                    .with_host(StrBytes::from_string(
                        l.host
                            .clone()
                            .filter(|h| !h.is_empty())
                            .unwrap_or_else(|| "localhost".to_string()),
                    ))
                    .with_port(l.port)
                    .with_security_protocol(security_protocol_id(l.security_protocol))
            })
            .collect();
        let mut log_dirs: Vec<Uuid> = config
            .log_dirs
            .iter()
            .filter_map(|d| MetaProperties::read(d).ok().flatten())
            .filter_map(|mp| mp.directory_id.as_deref().and_then(parse_kafka_uuid))
            .collect();
        log_dirs.sort();
        log_dirs.dedup();
        let ms = |v: i32| Duration::from_millis(v.max(1) as u64);
        LifecycleConfig {
            node_id: config.node_id,
            cluster_id: cluster_id.to_string(),
            rack: config.broker_rack.clone(),
            listeners,
            features: vec![(
                METADATA_VERSION_FEATURE.to_string(),
                MINIMUM_KRAFT_METADATA_VERSION,
                BOOTSTRAP_METADATA_VERSION,
            )],
            log_dirs,
            heartbeat_interval: ms(config.broker_heartbeat_interval_ms),
            session_timeout: ms(config.broker_session_timeout_ms),
            initial_registration_timeout: ms(config.initial_broker_registration_timeout_ms),
            request_timeout: ms(config.controller_quorum_request_timeout_ms),
        }
    }
}

/// Kafka's SecurityProtocol ids.
fn security_protocol_id(p: SecurityProtocol) -> i16 {
    match p {
        SecurityProtocol::Plaintext => 0,
        SecurityProtocol::Ssl => 1,
        SecurityProtocol::SaslPlaintext => 2,
        SecurityProtocol::SaslSsl => 3,
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Wants {
    ready_to_unfence: bool,
    controlled_shutdown: bool,
    stop: bool,
}

/// The running lifecycle of this broker. Dropping it does not stop it: it runs until
/// `controlled_shutdown`, `stop` or the node's shutdown signal.
pub struct BrokerLifecycleManager {
    incarnation_id: Uuid,
    state: watch::Receiver<BrokerState>,
    broker_epoch: watch::Receiver<i64>,
    initial_unfence: watch::Receiver<Option<Result<i64, LifecycleError>>>,
    wants: watch::Sender<Wants>,
}

impl BrokerLifecycleManager {
    /// Starts registering at once. `metadata` gives the offset reported in heartbeats;
    /// `shutdown` stops the lifecycle with the node.
    pub fn start(
        config: LifecycleConfig,
        channel: ControllerChannel,
        metadata: MetadataReader,
        shutdown: watch::Receiver<bool>,
    ) -> BrokerLifecycleManager {
        let incarnation_id = Uuid::new_v4();
        let (state_tx, state) = watch::channel(BrokerState::Starting);
        let (epoch_tx, broker_epoch) = watch::channel(-1);
        let (unfence_tx, initial_unfence) = watch::channel(None);
        let (wants, wants_rx) = watch::channel(Wants::default());
        info!(
            broker_id = config.node_id,
            incarnation_id = %incarnation_id,
            cluster_id = %config.cluster_id,
            "broker is STARTING"
        );
        let task = LifecycleTask {
            config,
            channel,
            metadata,
            incarnation_id,
            state: state_tx,
            epoch: epoch_tx,
            initial_unfence: unfence_tx,
            wants: wants_rx,
            shutdown,
            registered: false,
            ever_registered: false,
            failed_attempts: 0,
            got_shutdown_response: false,
            done: false,
        };
        tokio::spawn(task.run());
        BrokerLifecycleManager {
            incarnation_id,
            state,
            broker_epoch,
            initial_unfence,
            wants,
        }
    }

    pub fn incarnation_id(&self) -> Uuid {
        self.incarnation_id
    }

    pub fn state(&self) -> watch::Receiver<BrokerState> {
        self.state.clone()
    }

    /// The broker epoch; -1 until registered. It changes if the broker has to register again.
    pub fn broker_epoch(&self) -> watch::Receiver<i64> {
        self.broker_epoch.clone()
    }

    /// The broker has recovered its logs and may serve: heartbeats stop asking to stay fenced.
    pub fn set_ready_to_unfence(&self) {
        self.wants.send_modify(|w| w.ready_to_unfence = true);
    }

    /// Waits until the broker is registered and unfenced for the first time; returns the
    /// broker epoch.
    pub async fn wait_for_unfenced(&self) -> Result<i64, LifecycleError> {
        let mut rx = self.initial_unfence.clone();
        let result = rx
            .wait_for(|r| r.is_some())
            .await
            .map_err(|_| LifecycleError::ShutDown)?
            .clone();
        result.unwrap_or(Err(LifecycleError::ShutDown))
    }

    /// Asks the controller for a controlled shutdown (when running) and waits until it grants
    /// it or `timeout` passes; then stops heartbeating. Returns whether it was granted.
    pub async fn controlled_shutdown(&self, timeout: Duration) -> bool {
        let running = *self.state.borrow() == BrokerState::Running;
        self.wants.send_modify(|w| w.controlled_shutdown = true);
        let mut state = self.state.clone();
        let granted =
            tokio::time::timeout(timeout, state.wait_for(|s| *s == BrokerState::ShuttingDown))
                .await
                .is_ok();
        if !granted {
            warn!(
                timeout_ms = timeout.as_millis() as u64,
                "controlled shutdown was not granted in time; stopping anyway"
            );
        }
        self.stop();
        running && granted
    }

    /// Stops heartbeating at once.
    pub fn stop(&self) {
        self.wants.send_modify(|w| w.stop = true);
    }
}

/// Registers and waits until unfenced, for a node that serves once its broker is unfenced.
/// The lifecycle then keeps heartbeating until the node shuts down.
pub async fn register_and_unfence(
    config: &ServerConfig,
    cluster_id: &str,
    controller: &ControllerHandle,
    metadata: &MetadataReader,
    shutdown: watch::Receiver<bool>,
) -> Result<BrokerLifecycleManager, LifecycleError> {
    let config = LifecycleConfig::from_server_config(config, cluster_id);
    let channel = ControllerChannel::in_process(controller.clone(), config.request_timeout);
    let lifecycle = BrokerLifecycleManager::start(config, channel, metadata.clone(), shutdown);
    // Partitions are opened as the metadata image is applied, before readers see it: nothing
    // else to recover before serving.
    lifecycle.set_ready_to_unfence();
    lifecycle.wait_for_unfenced().await?;
    Ok(lifecycle)
}

struct LifecycleTask {
    config: LifecycleConfig,
    channel: ControllerChannel,
    metadata: MetadataReader,
    incarnation_id: Uuid,
    state: watch::Sender<BrokerState>,
    epoch: watch::Sender<i64>,
    initial_unfence: watch::Sender<Option<Result<i64, LifecycleError>>>,
    wants: watch::Receiver<Wants>,
    shutdown: watch::Receiver<bool>,
    registered: bool,
    ever_registered: bool,
    failed_attempts: u32,
    got_shutdown_response: bool,
    done: bool,
}

impl LifecycleTask {
    async fn run(mut self) {
        let registration_deadline = Instant::now() + self.config.initial_registration_timeout;
        let mut next = Instant::now();
        let mut failure = LifecycleError::ShutDown;
        // The manager may be dropped: the lifecycle then runs on until the node shuts down.
        let mut manager_dropped = false;
        loop {
            let wants = *self.wants.borrow_and_update();
            if wants.stop || *self.shutdown.borrow() {
                break;
            }
            if wants.controlled_shutdown {
                match self.current() {
                    BrokerState::Running => {
                        info!("beginning controlled shutdown");
                        self.set_state(BrokerState::PendingControlledShutdown);
                        // Tell the controller at once so it starts moving leaderships.
                        next = Instant::now();
                    }
                    BrokerState::PendingControlledShutdown => {}
                    other => {
                        info!(state = ?other, "skipping controlled shutdown: the broker is not running");
                        break;
                    }
                }
            }
            tokio::select! {
                biased;
                _ = self.shutdown.changed() => break,
                r = self.wants.changed(), if !manager_dropped => {
                    if r.is_err() {
                        manager_dropped = true;
                        continue;
                    }
                    // Readiness or shutdown changed: talk to the controller now.
                    next = Instant::now();
                    continue;
                }
                _ = tokio::time::sleep_until(registration_deadline), if !self.ever_registered => {
                    let e = LifecycleError::RegistrationTimedOut {
                        node_id: self.config.node_id,
                        timeout_ms: self.config.initial_registration_timeout.as_millis() as u64,
                    };
                    error!("{e}; shutting down the broker lifecycle");
                    failure = e;
                    break;
                }
                _ = tokio::time::sleep_until(next) => {}
            }
            let delay = if self.registered {
                self.heartbeat().await
            } else {
                self.register().await
            };
            if self.done {
                break;
            }
            next = Instant::now() + delay;
        }
        info!(from = ?self.current(), "broker lifecycle is SHUTTING_DOWN");
        // The state first: whoever learns of the failure sees the lifecycle already stopped.
        self.set_state(BrokerState::ShuttingDown);
        self.initial_unfence.send_if_modified(|r| {
            if r.is_none() {
                *r = Some(Err(failure));
                true
            } else {
                false
            }
        });
    }

    fn current(&self) -> BrokerState {
        *self.state.borrow()
    }

    fn set_state(&self, state: BrokerState) {
        self.state.send_replace(state);
    }

    fn registration_request(&self) -> BrokerRegistrationRequest {
        BrokerRegistrationRequest::default()
            .with_broker_id(BrokerId(self.config.node_id))
            .with_cluster_id(StrBytes::from_string(self.config.cluster_id.clone()))
            .with_incarnation_id(self.incarnation_id)
            .with_listeners(self.config.listeners.clone())
            .with_features(
                self.config
                    .features
                    .iter()
                    .map(|(name, min, max)| {
                        Feature::default()
                            .with_name(StrBytes::from_string(name.clone()))
                            .with_min_supported_version(*min)
                            .with_max_supported_version(*max)
                    })
                    .collect(),
            )
            .with_rack(self.config.rack.clone().map(StrBytes::from_string))
            .with_is_migrating_zk_broker(false)
            .with_log_dirs(self.config.log_dirs.clone())
            .with_previous_broker_epoch(-1)
    }

    /// Returns how long to wait before the next request.
    async fn register(&mut self) -> Duration {
        let node_id = self.config.node_id;
        match self
            .channel
            .broker_registration(self.registration_request())
            .await
        {
            Ok(resp) if resp.error_code == 0 => {
                self.failed_attempts = 0;
                self.registered = true;
                self.ever_registered = true;
                self.epoch.send_replace(resp.broker_epoch);
                info!(
                    broker_id = node_id,
                    broker_epoch = resp.broker_epoch,
                    "registered with the controller"
                );
                // Heartbeat at once: that is how the broker learns it has caught up.
                Duration::ZERO
            }
            Ok(resp) => {
                info!(
                    broker_id = node_id,
                    error = ?ResponseError::try_from_code(resp.error_code),
                    "unable to register the broker; retrying"
                );
                self.after_failure()
            }
            Err(e) => {
                warn!(broker_id = node_id, error = %e, "unable to register the broker; retrying");
                self.after_failure()
            }
        }
    }

    /// Returns how long to wait before the next request.
    async fn heartbeat(&mut self) -> Duration {
        let wants = *self.wants.borrow();
        let epoch = *self.epoch.borrow();
        // Kafka reports the offset of the last record applied; the image holds every record
        // below its offset.
        let current_metadata_offset = self.metadata.current().offset - 1;
        let request = BrokerHeartbeatRequest::default()
            .with_broker_id(BrokerId(self.config.node_id))
            .with_broker_epoch(epoch)
            .with_current_metadata_offset(current_metadata_offset)
            .with_want_fence(!wants.ready_to_unfence)
            .with_want_shut_down(self.current() == BrokerState::PendingControlledShutdown);
        let resp = match self.channel.broker_heartbeat(request).await {
            Ok(resp) => resp,
            Err(e) => {
                warn!(error = %e, "unable to send a broker heartbeat; retrying");
                return self.after_failure();
            }
        };
        if resp.error_code != 0 {
            let error = ResponseError::try_from_code(resp.error_code);
            warn!(?error, broker_epoch = epoch, "broker heartbeat was refused");
            if error == Some(ResponseError::StaleBrokerEpoch) {
                // The controller no longer knows this epoch; only a registration gets a new one.
                self.registered = false;
            }
            return self.after_failure();
        }
        self.failed_attempts = 0;
        match self.current() {
            BrokerState::Starting | BrokerState::Recovery => {
                if self.current() == BrokerState::Starting && resp.is_caught_up {
                    info!("the broker has caught up; STARTING -> RECOVERY");
                    self.set_state(BrokerState::Recovery);
                }
                // Unfenced in the same answer that says it caught up: no need to wait for the
                // next heartbeat to say so again.
                if self.current() == BrokerState::Recovery && !resp.is_fenced {
                    info!(
                        broker_epoch = epoch,
                        "the broker has been unfenced; RECOVERY -> RUNNING"
                    );
                    self.set_state(BrokerState::Running);
                    self.initial_unfence.send_if_modified(|r| {
                        if r.is_none() {
                            *r = Some(Ok(epoch));
                            true
                        } else {
                            false
                        }
                    });
                    return self.config.heartbeat_interval;
                }
                if self.current() == BrokerState::Starting {
                    STARTING_HEARTBEAT
                } else {
                    self.config.heartbeat_interval
                }
            }
            BrokerState::Running => {
                if resp.is_fenced {
                    debug!("the controller holds this running broker fenced");
                }
                self.config.heartbeat_interval
            }
            BrokerState::PendingControlledShutdown => {
                if resp.should_shut_down {
                    info!("the controller granted the controlled shutdown");
                    self.done = true;
                    return Duration::ZERO;
                }
                let first = !self.got_shutdown_response;
                self.got_shutdown_response = true;
                if first {
                    FIRST_SHUTDOWN_HEARTBEAT
                } else {
                    self.config.heartbeat_interval
                }
            }
            BrokerState::ShuttingDown => {
                self.done = true;
                Duration::ZERO
            }
        }
    }

    /// Exponential backoff from 100 ms up to the session timeout, as Kafka's lifecycle manager.
    fn after_failure(&mut self) -> Duration {
        let factor = 1u32 << self.failed_attempts.min(16);
        self.failed_attempts = self.failed_attempts.saturating_add(1);
        (INITIAL_BACKOFF * factor).min(self.config.session_timeout)
    }
}

#[cfg(test)]
#[path = "lifecycle_tests.rs"]
mod tests;
