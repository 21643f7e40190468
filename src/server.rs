//! One node: wires the metadata log (Raft), the loader, the controller, the broker and the
//! listeners together; owns the start order and the one shutdown path.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicI64;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{error, info};

use crate::api::Dispatcher;
use crate::broker::{ProducerIdManager, ReplicaManager, register_and_unfence};
use crate::config::{ProcessRole, ServerConfig};
use crate::controller::{ControllerConfig, QuorumController};
use crate::group::GroupCoordinator;
use crate::metadata::MetadataLoader;
use crate::network::{ConnectionLimits, ListenerKind, bind_listeners};
use crate::raft::driver::{RaftConfig, RaftDriver};

/// Requests read ahead of the one being answered, per connection (Kafka answers in order too).
const MAX_IN_FLIGHT_PER_CONNECTION: usize = 16;
/// Bounds file descriptors used by clients.
const MAX_CONNECTIONS_PER_LISTENER: usize = 10_000;

pub struct RunningServer {
    shutdown: watch::Sender<bool>,
    listeners: Vec<JoinHandle<()>>,
    background: Vec<JoinHandle<()>>,
    raft: JoinHandle<Result<(), crate::raft::RaftError>>,
    broker: Arc<ReplicaManager>,
    /// The address each listener bound, by listener name.
    pub bound: Vec<(String, std::net::SocketAddr)>,
}

pub async fn start(config: ServerConfig, cluster_id: String) -> Result<RunningServer, String> {
    let config = Arc::new(config);
    let is_controller = config.process_roles.contains(&ProcessRole::Controller);
    let is_broker = config.process_roles.contains(&ProcessRole::Broker);
    if !is_controller || !is_broker {
        return Err(format!(
            "{}: process.roles: kraftd runs combined broker,controller nodes only for now. Fix: set process.roles=broker,controller",
            config.source().display()
        ));
    }
    let voters: Vec<i32> = config
        .controller_quorum_voters
        .iter()
        .map(|v| v.id)
        .collect();
    if voters != vec![config.node_id] {
        return Err(format!(
            "{}: controller.quorum.voters: kraftd serves a one-voter quorum for now (this node, {}). Fix: set controller.quorum.voters={}@<host>:<controller port>",
            config.source().display(),
            config.node_id,
            config.node_id
        ));
    }

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
    let (driver, raft) = RaftDriver::open(RaftConfig {
        node_id: config.node_id,
        voters,
        metadata_log_dir: config.metadata_log_dir(),
    })
    .map_err(|e| e.to_string())?;
    let raft_task = tokio::spawn(driver.run(shutdown_rx.clone()));

    let broker = Arc::new(ReplicaManager::new(config.clone()));
    let (loader, metadata) = MetadataLoader::new(raft.clone(), vec![broker.clone()]);
    let mut background = vec![tokio::spawn(loader.run(shutdown_rx.clone()))];

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
    let dispatcher = Arc::new(Dispatcher {
        config: config.clone(),
        cluster_id,
        node_id: config.node_id,
        metadata: metadata.clone(),
        broker: broker.clone(),
        controller: controller_handle.clone(),
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

    let epoch = tokio::select! {
        r = register_and_unfence(&config, &dispatcher.cluster_id, &controller_handle, &metadata, shutdown_rx.clone()) => {
            *r.map_err(|e| e.to_string())?.broker_epoch().borrow()
        }
        _ = tokio::time::sleep(Duration::from_secs(30)) => {
            let _ = shutdown_tx.send(true);
            return Err("the node could not register with its controller within 30 s. Fix: check the log above for the cause".into());
        }
    };
    dispatcher
        .broker_epoch
        .store(epoch, std::sync::atomic::Ordering::Release);
    // Serve only once this broker's partitions are open.
    let _ = metadata
        .wait_for_offset(raft.high_watermark().borrow().to_owned())
        .await;
    broker.remove_stray_logs(&metadata.current());
    Ok(RunningServer {
        shutdown: shutdown_tx,
        listeners,
        background,
        raft: raft_task,
        broker,
        bound,
    })
}

impl RunningServer {
    /// Stops accepting, lets in-flight requests finish, flushes and closes every log.
    pub async fn shutdown(self) -> Result<(), String> {
        info!("shutting down");
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
