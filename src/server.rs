//! One node: wires the metadata log (Raft), the loader, the controller, the broker and the
//! listeners together; owns the start order and the one shutdown path.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicI64;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{error, info, warn};

use crate::api::Dispatcher;
use crate::broker::{
    BrokerLifecycleManager, ControllerChannel, ProducerIdManager, ReplicaManager,
    register_and_unfence, run_alter_partition_manager, run_replica_fetchers,
};
use crate::config::{ProcessRole, ServerConfig};
use crate::controller::{ControllerConfig, ControllerForwarder, QuorumController};
use crate::group::GroupCoordinator;
use crate::metadata::MetadataLoader;
use crate::metadata::loader::{LoaderSnapshots, SnapshotPolicy};
use crate::network::{ConnectionLimits, ListenerKind, bind_listeners};
use crate::raft::core::Timeouts;
use crate::raft::driver::{RaftConfig, RaftDriver, VoterAddress, metadata_partition_dir};

/// Requests read ahead of the one being answered, per connection (Kafka answers in order too).
const MAX_IN_FLIGHT_PER_CONNECTION: usize = 16;
/// Bounds file descriptors used by clients.
const MAX_CONNECTIONS_PER_LISTENER: usize = 10_000;

type LifecycleSlot = Arc<std::sync::Mutex<Option<BrokerLifecycleManager>>>;

/// How long a stopping broker waits for the controller to move its partitions' leadership
/// away (controlled shutdown) before it stops anyway.
const CONTROLLED_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);

pub struct RunningServer {
    shutdown: watch::Sender<bool>,
    listeners: Vec<JoinHandle<()>>,
    background: Vec<JoinHandle<()>>,
    raft: JoinHandle<Result<(), crate::raft::RaftError>>,
    broker: Arc<ReplicaManager>,
    /// The broker's lifecycle, once it has joined the cluster.
    lifecycle: LifecycleSlot,
    /// Set when a part of the node failed and the node must stop.
    fatal: watch::Receiver<Option<String>>,
    raft_handle: crate::raft::RaftHandle,
    /// The address each listener bound, by listener name.
    pub bound: Vec<(String, std::net::SocketAddr)>,
}

pub async fn start(config: ServerConfig, cluster_id: String) -> Result<RunningServer, String> {
    let config = Arc::new(config);
    let is_controller = config.process_roles.contains(&ProcessRole::Controller);
    let is_broker = config.process_roles.contains(&ProcessRole::Broker);
    let voters = quorum_voters(&config);

    let specs: Vec<(String, String, u16, ListenerKind)> = config
        .listeners
        .iter()
        .map(|l| {
            let kind = if config.controller_listener_names.contains(&l.name) {
                ListenerKind::Controller
            } else {
                ListenerKind::Client
            };
            (
                l.name.clone(),
                l.host.clone().unwrap_or_default(),
                l.port,
                kind,
            )
        })
        .collect();
    let bound_listeners = bind_listeners(&specs).await?;
    let bound: Vec<_> = bound_listeners
        .iter()
        .map(|l| (l.name.clone(), l.local_addr))
        .collect();

    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let (snapshots_tx, snapshots_rx) = watch::channel(None);
    let (driver, raft) = RaftDriver::open(RaftConfig {
        node_id: config.node_id,
        cluster_id: cluster_id.clone(),
        voters: voters.clone(),
        bootstrap_servers: config.controller_quorum_bootstrap_servers.clone(),
        local_voter: local_voter(&config),
        auto_join: config.controller_quorum_auto_join_enable,
        controller_listener: config
            .controller_listener_names
            .first()
            .cloned()
            .unwrap_or_else(|| "CONTROLLER".to_string()),
        metadata_log_dir: config.metadata_log_dir(),
        timeouts: Timeouts {
            election_ms: config.controller_quorum_election_timeout_ms.max(1) as u64,
            fetch_ms: config.controller_quorum_fetch_timeout_ms.max(1) as u64,
            election_backoff_max_ms: config.controller_quorum_election_backoff_max_ms.max(1) as u64,
            request_ms: config.controller_quorum_request_timeout_ms.max(1) as u64,
        },
        snapshots_written: Some(snapshots_rx),
        segment_bytes: config.metadata_log_segment_bytes.max(1) as u64,
        retention_bytes: config.metadata_max_retention_bytes,
    })
    .map_err(|e| format!("{}: {e}", config.source().display()))?;
    // A metadata log that fails (a disk error) cannot be trusted or followed: the node must stop
    // and say why, not serve on without a quorum.
    let (fatal_tx, fatal_rx) = watch::channel(None::<String>);
    let raft_task = {
        let shutdown = shutdown_rx.clone();
        tokio::spawn(async move {
            let result = driver.run(shutdown).await;
            if let Err(e) = &result {
                error!(error = %e, "the metadata log failed");
                let _ = fatal_tx.send(Some(format!("the metadata log failed: {e}")));
            }
            result
        })
    };

    let broker = Arc::new(ReplicaManager::new(config.clone()));
    let (loader, metadata) = MetadataLoader::with_snapshots(
        raft.clone(),
        vec![broker.clone()],
        LoaderSnapshots {
            dir: metadata_partition_dir(&config.metadata_log_dir()),
            policy: SnapshotPolicy::from_config(&config),
            written: snapshots_tx,
        },
    )
    .map_err(|e| e.to_string())?;
    let mut background = vec![tokio::spawn(loader.run(shutdown_rx.clone()))];

    let forwarder = Arc::new(ControllerForwarder::new(
        config.node_id,
        raft.clone(),
        Duration::from_millis(
            (config.controller_quorum_request_timeout_ms.max(1) as u64 * 2).max(4000),
        ),
    ));
    let (controller, controller_handle) = QuorumController::new(
        ControllerConfig {
            node_id: config.node_id,
            cluster_id: cluster_id.clone(),
            broker: config.clone(),
            default_num_partitions: config.num_partitions,
            default_replication_factor: config.default_replication_factor.clamp(1, i16::MAX as i32)
                as i16,
            delete_topic_enable: config.delete_topic_enable,
        },
        raft.clone(),
        metadata.clone(),
    );
    let controller_handle = controller_handle.with_forwarder(forwarder.clone());
    background.push(tokio::spawn(controller.run(shutdown_rx.clone())));

    let groups = Arc::new(GroupCoordinator::new(
        config.clone(),
        metadata.clone(),
        broker.clone(),
        controller_handle.clone(),
    ));
    background.push(tokio::spawn(groups.clone().run(shutdown_rx.clone())));
    background.push(tokio::spawn(
        broker
            .clone()
            .run_maintenance(metadata.clone(), shutdown_rx.clone()),
    ));
    background.push(tokio::spawn(
        broker
            .clone()
            .run_cleaner(metadata.clone(), shutdown_rx.clone()),
    ));
    background.push(tokio::spawn(run_replica_fetchers(
        broker.clone(),
        metadata.clone(),
        shutdown_rx.clone(),
    )));
    // ISR changes the partition leaders decide go to the active controller (KIP-497).
    let (alter_isr_tx, alter_isr_rx) = tokio::sync::mpsc::unbounded_channel();
    broker.set_alter_isr_queue(alter_isr_tx);
    background.push(tokio::spawn(run_alter_partition_manager(
        broker.clone(),
        ControllerChannel::in_process(
            controller_handle.clone(),
            Duration::from_millis(config.controller_quorum_request_timeout_ms.max(1) as u64),
        ),
        alter_isr_rx,
        shutdown_rx.clone(),
    )));
    background.push(tokio::spawn(
        broker.clone().run_isr_expiration(shutdown_rx.clone()),
    ));
    let dispatcher = Arc::new(Dispatcher {
        config: config.clone(),
        cluster_id,
        node_id: config.node_id,
        metadata: metadata.clone(),
        broker: broker.clone(),
        controller: controller_handle.clone(),
        raft: raft.clone(),
        forwarder: forwarder.clone(),
        producer_ids: ProducerIdManager::default(),
        groups,
        broker_epoch: AtomicI64::new(-1),
    });
    let limits = ConnectionLimits {
        max_request_bytes: config.socket_request_max_bytes.max(0) as usize,
        max_in_flight: MAX_IN_FLIGHT_PER_CONNECTION,
        idle_timeout: Duration::from_millis(config.connections_max_idle_ms.max(1) as u64),
        max_connections: MAX_CONNECTIONS_PER_LISTENER,
    };
    let listeners = bound_listeners
        .into_iter()
        .map(|l| tokio::spawn(l.serve(dispatcher.clone(), limits.clone(), shutdown_rx.clone())))
        .collect();

    // Join the cluster in the background: with several voters a quorum may not exist yet, and
    // the node must serve (with retriable errors) and answer signals meanwhile.
    let lifecycle_slot: LifecycleSlot = Arc::new(std::sync::Mutex::new(None));
    // A controller-only node has no broker to register: it serves the quorum and, when it
    // leads, the active controller.
    let joining = is_broker.then(|| {
        let config = config.clone();
        let controller = controller_handle.clone();
        let dispatcher = dispatcher.clone();
        let metadata = metadata.clone();
        let raft = raft.clone();
        let broker = broker.clone();
        let shutdown = shutdown_rx.clone();
        let lifecycle_slot = lifecycle_slot.clone();
        tokio::spawn(async move {
            // Kafka's broker gives up (and its process exits) after
            // initial.broker.registration.timeout.ms; a kraftd node keeps serving and trying,
            // since in a combined node the quorum may be waiting for this very voter.
            let lifecycle = loop {
                match register_and_unfence(
                    &config,
                    &dispatcher.cluster_id,
                    &controller,
                    &metadata,
                    shutdown.clone(),
                )
                .await
                {
                    Ok(l) => break l,
                    Err(e) => {
                        if *shutdown.borrow() {
                            return;
                        }
                        warn!(error = %e, "the broker has not joined the cluster yet; still trying");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                }
            };
            let mut epochs = lifecycle.broker_epoch();
            let epoch = *epochs.borrow_and_update();
            dispatcher
                .broker_epoch
                .store(epoch, std::sync::atomic::Ordering::Release);
            broker.set_broker_epoch(epoch);
            // Caught up with the metadata log: the image's roles are current, not this
            // node's stale view from before a restart.
            broker.enable_roles();
            // Re-registration (after STALE_BROKER_EPOCH) issues a new epoch.
            {
                let dispatcher = dispatcher.clone();
                let broker = broker.clone();
                tokio::spawn(async move {
                    while epochs.changed().await.is_ok() {
                        let epoch = *epochs.borrow_and_update();
                        dispatcher
                            .broker_epoch
                            .store(epoch, std::sync::atomic::Ordering::Release);
                        broker.set_broker_epoch(epoch);
                    }
                });
            }
            if let Ok(mut slot) = lifecycle_slot.lock() {
                *slot = Some(lifecycle);
            }
            // Remove stray logs only once this broker's image is current.
            let hw = *raft.high_watermark().borrow();
            if metadata.wait_for_offset(hw).await.is_some() {
                broker.remove_stray_logs(&metadata.current());
            }
        })
    });
    if let Some(joining) = joining
        && is_controller
        && raft.voters().borrow().len() == 1
    {
        // A one-voter quorum elects itself at once: serve only once registered, so the first
        // client request already finds this broker.
        tokio::select! {
            _ = joining => {}
            _ = tokio::time::sleep(Duration::from_secs(30)) => {
                let _ = shutdown_tx.send(true);
                return Err("the node could not register with its controller within 30 s. Fix: check the log above for the cause".into());
            }
        }
    }
    Ok(RunningServer {
        shutdown: shutdown_tx,
        listeners,
        background,
        raft: raft_task,
        broker,
        lifecycle: lifecycle_slot,
        fatal: fatal_rx,
        raft_handle: raft.clone(),
        bound,
    })
}

impl RunningServer {
    /// Resolves when a part of the node failed; the message says what.
    pub async fn failed(&self) -> String {
        let mut fatal = self.fatal.clone();
        match fatal.wait_for(|f| f.is_some()).await {
            Ok(f) => f.clone().unwrap_or_default(),
            // The sender lives in the raft task: gone means that task ended, which only a
            // shutdown asked for does without a message.
            Err(_) => std::future::pending().await,
        }
    }

    /// Stops accepting, lets in-flight requests finish, flushes and closes every log.
    pub async fn shutdown(self) -> Result<(), String> {
        info!("shutting down");
        let lifecycle = self.lifecycle.lock().ok().and_then(|mut l| l.take());
        let has_leader = self.raft_handle.leader().borrow().leader_id.is_some();
        if let Some(lifecycle) = lifecycle {
            // Hand partition leadership over while a controller can still grant it; without a
            // quorum nobody can, so do not wait for it.
            if has_leader {
                if !lifecycle
                    .controlled_shutdown(CONTROLLED_SHUTDOWN_TIMEOUT)
                    .await
                {
                    warn!("controlled shutdown was not granted in time; stopping anyway");
                }
            } else {
                info!("no metadata quorum leader: stopping without a controlled shutdown");
            }
        }
        let _ = self.shutdown.send(true);
        for l in self.listeners {
            let _ = l.await;
        }
        for t in self.background {
            let _ = t.await;
        }
        let broker = self.broker.clone();
        let _ = tokio::task::spawn_blocking(move || broker.shutdown()).await;
        match self.raft.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                error!(error = %e, "metadata log did not close cleanly");
                return Err(format!("metadata log did not close cleanly: {e}"));
            }
            Err(e) => return Err(format!("raft driver failed: {e}")),
        }
        info!("shut down cleanly");
        Ok(())
    }
}

/// This node as a voter of a dynamic quorum would be recorded: its metadata log directory's id
/// and its advertised controller endpoints ("localhost" for a listener that names no host, as
/// `storage format --standalone` writes it).
fn local_voter(config: &ServerConfig) -> Option<crate::raft::snapshot::VoterSpec> {
    if !config.is_controller() {
        return None;
    }
    let directory_id =
        crate::log::meta_properties::MetaProperties::read(&config.metadata_log_dir())
            .ok()
            .flatten()
            .and_then(|m| m.directory_id)
            .and_then(|d| crate::log::meta_properties::parse_kafka_uuid(&d))
            .unwrap_or_default();
    Some(crate::raft::snapshot::VoterSpec {
        id: config.node_id,
        directory_id,
        endpoints: config
            .advertised_controller_listeners
            .iter()
            .map(|l| {
                (
                    l.name.clone(),
                    l.host.clone().unwrap_or_else(|| "localhost".to_string()),
                    l.port,
                )
            })
            .collect(),
    })
}

/// The voters of a static quorum (`controller.quorum.voters`). A dynamic quorum's (KIP-853)
/// live in the metadata log; the Raft driver reads them from there.
fn quorum_voters(config: &ServerConfig) -> Vec<VoterAddress> {
    config
        .controller_quorum_voters
        .iter()
        .map(|v| VoterAddress {
            id: v.id,
            host: v.host.clone(),
            port: v.port,
        })
        .collect()
}

/// Where `start --daemon` and systemd learn that the node serves.
pub fn notify_ready() {
    crate::cli::notify_systemd("READY=1");
    if let Ok(fd) = std::env::var("KRAFTD_READY_FD")
        && let Ok(fd) = fd.parse::<i32>()
    {
        // SAFETY: the fd was handed to us by our parent for exactly this one write.
        unsafe {
            let msg = b"READY\n";
            libc::write(fd, msg.as_ptr() as *const libc::c_void, msg.len());
            libc::close(fd);
        }
    }
}

pub fn pid_file_from_env() -> Option<PathBuf> {
    std::env::var_os("KRAFTD_PID_FILE").map(PathBuf::from)
}
