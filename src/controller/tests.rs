//! The controller through its handle, on a real one-voter metadata log in a temp dir: broker
//! registration, heartbeats, unfencing, session expiry and controlled shutdown, checked in the
//! committed image.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::broker_registration_request::{Feature, Listener};
use kafka_protocol::messages::{BrokerHeartbeatRequest, BrokerId, BrokerRegistrationRequest};
use kafka_protocol::protocol::StrBytes;
use tokio::sync::watch;
use uuid::Uuid;

use super::*;
use crate::config::ServerConfig;
use crate::metadata::MetadataLoader;
use crate::raft::driver::{RaftConfig, RaftDriver};

pub(crate) const CLUSTER: &str = "MkU3OEVBNTcwNTJENDM2Qk";
/// Long enough that a test's own pauses never expire a session by accident.
const LONG_SESSION_MS: u64 = 60_000;

/// Also used by the broker lifecycle's tests.
pub(crate) struct Harness {
    _dir: tempfile::TempDir,
    pub(crate) controller: ControllerHandle,
    pub(crate) metadata: MetadataReader,
    pub(crate) shutdown: watch::Sender<bool>,
}

impl Drop for Harness {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
    }
}

/// A one-voter metadata log, its loader and an active controller (node 1).
pub(crate) async fn start(session_timeout_ms: u64) -> Harness {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = ServerConfig::from_str(
        crate::config::server::SAMPLE_SERVER,
        std::path::Path::new("server.properties"),
        &[
            ("log.dirs".to_string(), dir.path().display().to_string()),
            (
                "broker.session.timeout.ms".to_string(),
                session_timeout_ms.to_string(),
            ),
        ],
    )
    .expect("config");
    let (shutdown, shutdown_rx) = watch::channel(false);
    let (driver, raft) = RaftDriver::open(one_voter(dir.path())).expect("raft");
    tokio::spawn(driver.run(shutdown_rx.clone()));
    let (loader, metadata) = MetadataLoader::new(raft.clone(), vec![]);
    tokio::spawn(loader.run(shutdown_rx.clone()));
    let (controller, handle) = QuorumController::new(
        ControllerConfig {
            node_id: 1,
            cluster_id: CLUSTER.to_string(),
            broker: Arc::new(config),
            default_num_partitions: 1,
            default_replication_factor: 1,
            delete_topic_enable: true,
        },
        raft,
        metadata.clone(),
    );
    tokio::spawn(controller.run(shutdown_rx));
    assert!(
        tokio::time::timeout(Duration::from_secs(10), handle.wait_active())
            .await
            .unwrap_or(false),
        "the controller did not become active"
    );
    Harness {
        _dir: dir,
        controller: handle,
        metadata,
        shutdown,
    }
}

fn registration(broker: i32, incarnation: u128) -> BrokerRegistrationRequest {
    BrokerRegistrationRequest::default()
        .with_broker_id(BrokerId(broker))
        .with_cluster_id(StrBytes::from_static_str(CLUSTER))
        .with_incarnation_id(Uuid::from_u128(incarnation))
        .with_listeners(vec![
            Listener::default()
                .with_name(StrBytes::from_static_str("PLAINTEXT"))
                .with_host(StrBytes::from_static_str("localhost"))
                .with_port(9000 + broker as u16),
        ])
        .with_features(vec![
            Feature::default()
                .with_name(StrBytes::from_static_str(METADATA_VERSION_FEATURE))
                .with_min_supported_version(MINIMUM_KRAFT_METADATA_VERSION)
                .with_max_supported_version(BOOTSTRAP_METADATA_VERSION),
        ])
}

impl Harness {
    async fn register(&self, broker: i32, incarnation: u128) -> Result<i64, ResponseError> {
        self.register_from(broker, incarnation, RequestOrigin::Network)
            .await
    }

    async fn register_from(
        &self,
        broker: i32,
        incarnation: u128,
        origin: RequestOrigin,
    ) -> Result<i64, ResponseError> {
        self.controller
            .broker_registration(registration(broker, incarnation), origin)
            .await
            .map(|r| r.broker_epoch)
            .map_err(|e| e.error())
    }

    /// A heartbeat reporting the newest applied offset.
    async fn heartbeat(
        &self,
        broker: i32,
        epoch: i64,
        want_shut_down: bool,
    ) -> Result<BrokerHeartbeatReply, ResponseError> {
        let offset = self.metadata.current().offset - 1;
        self.heartbeat_at(broker, epoch, offset, false, want_shut_down)
            .await
    }

    async fn heartbeat_at(
        &self,
        broker: i32,
        epoch: i64,
        offset: i64,
        want_fence: bool,
        want_shut_down: bool,
    ) -> Result<BrokerHeartbeatReply, ResponseError> {
        self.controller
            .broker_heartbeat(
                BrokerHeartbeatRequest::default()
                    .with_broker_id(BrokerId(broker))
                    .with_broker_epoch(epoch)
                    .with_current_metadata_offset(offset)
                    .with_want_fence(want_fence)
                    .with_want_shut_down(want_shut_down),
                RequestOrigin::Network,
            )
            .await
            .map_err(|e| e.error())
    }

    /// Registers and unfences `broker`; returns its epoch.
    async fn join(&self, broker: i32, incarnation: u128) -> i64 {
        let epoch = self.register(broker, incarnation).await.expect("register");
        let reply = self
            .heartbeat(broker, epoch, false)
            .await
            .expect("heartbeat");
        assert!(
            !reply.is_fenced,
            "broker {broker} was not unfenced: {reply:?}"
        );
        epoch
    }

    pub(crate) fn broker(&self, id: i32) -> crate::metadata::BrokerRegistration {
        self.metadata.current().brokers[&id].clone()
    }

    pub(crate) fn partition(
        &self,
        topic: &str,
        index: i32,
    ) -> crate::metadata::PartitionRegistration {
        self.metadata
            .current()
            .topic(topic)
            .expect("topic")
            .partitions[&index]
            .clone()
    }

    pub(crate) async fn create_topic(&self, name: &str, assignments: &[&[i32]]) {
        let topic = NewTopic {
            name: name.to_string(),
            num_partitions: -1,
            replication_factor: -1,
            assignments: assignments
                .iter()
                .enumerate()
                .map(|(i, r)| (i as i32, r.to_vec()))
                .collect(),
            configs: BTreeMap::new(),
        };
        let results = self
            .controller
            .create_topics(vec![topic], false)
            .await
            .expect("create_topics");
        assert!(results[0].is_ok(), "{:?}", results[0]);
    }

    /// Waits (bounded) until `check` holds for the current image.
    async fn eventually(&self, what: &str, check: impl Fn(&MetadataImage) -> bool) {
        let mut rx = self.metadata.subscribe();
        let waited =
            tokio::time::timeout(Duration::from_secs(10), rx.wait_for(|img| check(img))).await;
        assert!(
            matches!(waited, Ok(Ok(_))),
            "timed out waiting until {what}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registered_broker_is_fenced_until_it_catches_up_with_its_registration() {
    let h = start(LONG_SESSION_MS).await;
    let before = h.metadata.current().offset;
    let epoch = h.register(2, 20).await.expect("register");
    // The broker epoch is the offset of its RegisterBrokerRecord.
    assert_eq!(epoch, before);
    assert_eq!(h.metadata.current().offset, before + 1);
    let b = h.broker(2);
    assert!(b.fenced && !b.in_controlled_shutdown);
    assert_eq!((b.epoch, b.incarnation_id), (epoch, Uuid::from_u128(20)));
    assert_eq!(b.endpoints[0].port, 9002);

    // Behind its registration: told so, and kept fenced.
    let behind = h
        .heartbeat_at(2, epoch, epoch - 1, false, false)
        .await
        .expect("heartbeat");
    assert_eq!((behind.is_caught_up, behind.is_fenced), (false, true));
    // Caught up but still recovering (want_fence): fenced.
    let recovering = h
        .heartbeat_at(2, epoch, epoch, true, false)
        .await
        .expect("heartbeat");
    assert_eq!(
        (recovering.is_caught_up, recovering.is_fenced),
        (true, true)
    );
    assert!(h.broker(2).fenced);
    // Caught up and ready: unfenced, in the log.
    let ready = h
        .heartbeat_at(2, epoch, epoch, false, false)
        .await
        .expect("heartbeat");
    assert_eq!((ready.is_caught_up, ready.is_fenced), (true, false));
    assert!(!h.broker(2).fenced);

    assert_eq!(
        h.heartbeat(2, epoch + 1, false).await,
        Err(ResponseError::StaleBrokerEpoch)
    );
    assert_eq!(
        h.heartbeat(7, 0, false).await,
        Err(ResponseError::StaleBrokerEpoch)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registration_checks_cluster_incarnation_and_features() {
    let h = start(LONG_SESSION_MS).await;
    let epoch = h.join(2, 20).await;
    // The same incarnation again (a lost answer): same epoch, still unfenced.
    assert_eq!(h.register(2, 20).await, Ok(epoch));
    assert!(!h.broker(2).fenced);
    // Another incarnation while the session lives: refused.
    assert_eq!(
        h.register(2, 21).await,
        Err(ResponseError::DuplicateBrokerRegistration)
    );
    let other_cluster =
        registration(3, 30).with_cluster_id(StrBytes::from_static_str("someOtherCluster"));
    assert_eq!(
        h.controller
            .broker_registration(other_cluster, RequestOrigin::Network)
            .await
            .map_err(|e| e.error()),
        Err(ResponseError::InconsistentClusterId)
    );
    let old_broker = registration(3, 30).with_features(vec![]);
    assert_eq!(
        h.controller
            .broker_registration(old_broker, RequestOrigin::Network)
            .await
            .map_err(|e| e.error()),
        Err(ResponseError::UnsupportedVersion)
    );
    assert!(!h.metadata.current().brokers.contains_key(&3));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_broker_is_fenced_after_the_session_timeout_and_loses_its_leaderships() {
    let h = start(1000).await;
    let epoch = h.join(2, 20).await;
    let e3 = h.join(3, 30).await;
    h.create_topic("t", &[&[2], &[2, 3]]).await;
    assert_eq!(h.partition("t", 0).leader, 2);
    assert_eq!(h.partition("t", 1).leader, 2);
    let leader_epoch = h.partition("t", 1).leader_epoch;

    // Broker 3 keeps heartbeating; broker 2 says nothing.
    let keepalive = async {
        for _ in 0..30 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let _ = h.heartbeat(3, e3, false).await;
        }
    };
    let fenced = h.eventually("broker 2 is fenced", |img| img.brokers[&2].fenced);
    tokio::join!(keepalive, fenced);
    assert!(!h.broker(3).fenced, "a heartbeating broker stays unfenced");
    // Its only-replica partition has no leader and keeps its ISR; the other moves to 3.
    let p0 = h.partition("t", 0);
    assert_eq!((p0.leader, p0.isr.clone()), (-1, vec![2]));
    let p1 = h.partition("t", 1);
    assert_eq!((p1.leader, p1.isr.clone()), (3, vec![3]));
    assert_eq!(p1.leader_epoch, leader_epoch + 1);

    // Its expired session no longer blocks a new incarnation, which gets a new epoch.
    let new_epoch = h.register(2, 21).await.expect("re-register");
    assert!(new_epoch > epoch);
    assert_eq!(
        h.heartbeat(2, epoch, false).await,
        Err(ResponseError::StaleBrokerEpoch)
    );
    let reply = h.heartbeat(2, new_epoch, false).await.expect("heartbeat");
    assert!(!reply.is_fenced);
    // Unfenced, it is elected where it is the last ISR member.
    let p0 = h.partition("t", 0);
    assert_eq!((p0.leader, p0.isr), (2, vec![2]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn controlled_shutdown_moves_leaderships_before_the_broker_may_stop() {
    let h = start(LONG_SESSION_MS).await;
    let e1 = h.join(1, 10).await;
    let e2 = h.join(2, 20).await;
    h.create_topic("t", &[&[1, 2], &[1]]).await;
    assert_eq!(h.partition("t", 0).leader, 1);
    // Broker 2 last reported an offset from before the leadership moves.
    let stale_offset = h.metadata.current().offset - 1;
    h.heartbeat_at(2, e2, stale_offset, false, false)
        .await
        .expect("heartbeat");

    let first = h.heartbeat(1, e1, true).await.expect("heartbeat");
    assert_eq!(
        (
            first.in_controlled_shutdown,
            first.should_shut_down,
            first.is_fenced
        ),
        (true, false, false)
    );
    let b1 = h.broker(1);
    assert!(b1.in_controlled_shutdown && !b1.fenced);
    let p0 = h.partition("t", 0);
    assert_eq!((p0.leader, p0.isr), (2, vec![2]));
    let p1 = h.partition("t", 1);
    assert_eq!((p1.leader, p1.isr), (-1, vec![1]));

    // Broker 2 has not seen the moves yet: broker 1 must wait.
    let waiting = h.heartbeat(1, e1, true).await.expect("heartbeat");
    assert!(!waiting.should_shut_down);
    // Once it has, broker 1 is told to stop, and fenced.
    h.heartbeat(2, e2, false).await.expect("heartbeat");
    let done = h.heartbeat(1, e1, true).await.expect("heartbeat");
    assert_eq!((done.should_shut_down, done.is_fenced), (true, true));
    assert!(h.broker(1).fenced);
    // It may register again at once: a fenced broker has no session to wait out.
    assert!(h.register(1, 11).await.is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn this_nodes_own_broker_restarting_is_not_made_to_wait_out_its_old_session() {
    let h = start(LONG_SESSION_MS).await;
    let old = h.join(1, 10).await;
    h.create_topic("t", &[&[1]]).await;
    let leader_epoch = h.partition("t", 0).leader_epoch;
    // Over the network another incarnation of node 1 is a duplicate...
    assert_eq!(
        h.register(1, 11).await,
        Err(ResponseError::DuplicateBrokerRegistration)
    );
    // ...but from this process it can only be this node restarted: the old one is gone.
    let new = h
        .register_from(1, 11, RequestOrigin::InProcess)
        .await
        .expect("in-process registration");
    assert!(new > old);
    let b = h.broker(1);
    assert!(b.fenced);
    // The old incarnation's leaderships were released with the registration.
    assert_eq!(h.partition("t", 0).leader, -1);
    h.heartbeat(1, new, false).await.expect("heartbeat");
    let p = h.partition("t", 0);
    assert_eq!((p.leader, p.leader_epoch), (1, leader_epoch + 2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_controller_that_is_not_active_refuses_network_requests_at_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (driver, raft) = RaftDriver::open(one_voter(dir.path())).expect("raft");
    // Neither the log nor the controller runs: this node never becomes active.
    drop(driver);
    let (_loader, metadata) = MetadataLoader::new(raft.clone(), vec![]);
    let config = ServerConfig::from_str(
        crate::config::server::SAMPLE_SERVER,
        std::path::Path::new("server.properties"),
        &[],
    )
    .expect("config");
    let (_controller, handle) = QuorumController::new(
        ControllerConfig {
            node_id: 1,
            cluster_id: CLUSTER.to_string(),
            broker: Arc::new(config),
            default_num_partitions: 1,
            default_replication_factor: 1,
            delete_topic_enable: true,
        },
        raft,
        metadata,
    );
    assert!(!handle.is_active());
    let r = tokio::time::timeout(
        Duration::from_secs(1),
        handle.broker_registration(registration(2, 20), RequestOrigin::Network),
    )
    .await
    .expect("answered at once");
    assert_eq!(r.map_err(|e| e.error()), Err(ResponseError::NotController));
    let r = tokio::time::timeout(
        Duration::from_secs(1),
        handle.broker_heartbeat(BrokerHeartbeatRequest::default(), RequestOrigin::Network),
    )
    .await
    .expect("answered at once");
    assert_eq!(r.map_err(|e| e.error()), Err(ResponseError::NotController));
}

fn one_voter(dir: &std::path::Path) -> RaftConfig {
    RaftConfig {
        node_id: 1,
        cluster_id: "test-cluster".into(),
        voters: vec![crate::raft::driver::VoterAddress {
            id: 1,
            host: "127.0.0.1".into(),
            port: 1,
        }],
        bootstrap_servers: Vec::new(),
        controller_listener: "CONTROLLER".into(),
        local_voter: None,
        auto_join: false,
        metadata_log_dir: dir.to_path_buf(),
        timeouts: crate::raft::core::Timeouts::default(),
        snapshots_written: None,
        segment_bytes: 1 << 30,
        retention_bytes: -1,
    }
}
