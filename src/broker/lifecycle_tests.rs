//! The lifecycle against a real controller in this process: register, catch up, unfence, keep
//! the session alive, and shut down under control.

use std::time::Duration;

use kafka_protocol::messages::broker_registration_request::Listener;
use kafka_protocol::protocol::StrBytes;

use super::*;
use crate::controller::tests::{CLUSTER, Harness, start};

const SESSION_MS: u64 = 600;

fn config(cluster_id: &str) -> LifecycleConfig {
    LifecycleConfig {
        node_id: 1,
        cluster_id: cluster_id.to_string(),
        rack: Some("r1".into()),
        listeners: vec![
            Listener::default()
                .with_name(StrBytes::from_static_str("PLAINTEXT"))
                .with_host(StrBytes::from_static_str("localhost"))
                .with_port(9092),
        ],
        features: vec![(
            METADATA_VERSION_FEATURE.to_string(),
            MINIMUM_KRAFT_METADATA_VERSION,
            BOOTSTRAP_METADATA_VERSION,
        )],
        log_dirs: vec![Uuid::from_u128(1 << 100)],
        heartbeat_interval: Duration::from_millis(100),
        session_timeout: Duration::from_millis(SESSION_MS),
        initial_registration_timeout: Duration::from_secs(10),
        request_timeout: Duration::from_secs(5),
    }
}

fn lifecycle(h: &Harness, config: LifecycleConfig) -> BrokerLifecycleManager {
    let channel = ControllerChannel::in_process(h.controller.clone(), config.request_timeout);
    BrokerLifecycleManager::start(config, channel, h.metadata.clone(), h.shutdown.subscribe())
}

async fn unfenced(lc: &BrokerLifecycleManager) -> i64 {
    tokio::time::timeout(Duration::from_secs(10), lc.wait_for_unfenced())
        .await
        .expect("unfenced in time")
        .expect("unfenced")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_broker_registers_is_unfenced_and_heartbeats_keep_it_so() {
    let h = start(SESSION_MS).await;
    let lc = lifecycle(&h, config(CLUSTER));
    lc.set_ready_to_unfence();
    let epoch = unfenced(&lc).await;
    assert_eq!(*lc.state().borrow(), BrokerState::Running);
    assert_eq!(*lc.broker_epoch().borrow(), epoch);
    let b = h.broker(1);
    assert_eq!(
        (b.epoch, b.fenced, b.incarnation_id),
        (epoch, false, lc.incarnation_id())
    );
    assert_eq!(b.rack.as_deref(), Some("r1"));
    // Three session timeouts later it is still unfenced: the heartbeats renew the session, also
    // after the manager is dropped (the server keeps only what it needs).
    let state = lc.state();
    drop(lc);
    tokio::time::sleep(Duration::from_millis(3 * SESSION_MS)).await;
    assert!(!h.broker(1).fenced);
    assert_eq!(*state.borrow(), BrokerState::Running);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_not_ready_to_unfence_stays_fenced_in_recovery() {
    let h = start(SESSION_MS).await;
    let lc = lifecycle(&h, config(CLUSTER));
    let mut state = lc.state();
    tokio::time::timeout(
        Duration::from_secs(10),
        state.wait_for(|s| *s == BrokerState::Recovery),
    )
    .await
    .expect("caught up in time")
    .expect("state");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(h.broker(1).fenced);
    assert_eq!(*lc.state().borrow(), BrokerState::Recovery);
    lc.set_ready_to_unfence();
    unfenced(&lc).await;
    assert!(!h.broker(1).fenced);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn controlled_shutdown_gives_up_leaderships_and_is_granted() {
    let h = start(SESSION_MS).await;
    let lc = lifecycle(&h, config(CLUSTER));
    lc.set_ready_to_unfence();
    unfenced(&lc).await;
    h.create_topic("t", &[&[1]]).await;
    assert_eq!(h.partition("t", 0).leader, 1);
    assert!(lc.controlled_shutdown(Duration::from_secs(10)).await);
    assert_eq!(*lc.state().borrow(), BrokerState::ShuttingDown);
    let b = h.broker(1);
    assert!(b.fenced && b.in_controlled_shutdown);
    let p = h.partition("t", 0);
    assert_eq!((p.leader, p.isr), (-1, vec![1]));

    // The next incarnation registers at once and leads again.
    let next = lifecycle(&h, config(CLUSTER));
    next.set_ready_to_unfence();
    let epoch = unfenced(&next).await;
    assert!(epoch > b.epoch);
    assert_eq!(h.partition("t", 0).leader, 1);
    assert!(!h.broker(1).in_controlled_shutdown);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_that_cannot_register_gives_up_after_the_initial_timeout() {
    let h = start(SESSION_MS).await;
    let mut c = config("someOtherClusterIdXXXX");
    c.initial_registration_timeout = Duration::from_millis(500);
    let lc = lifecycle(&h, c);
    let r = tokio::time::timeout(Duration::from_secs(10), lc.wait_for_unfenced())
        .await
        .expect("gave up in time");
    assert_eq!(
        r,
        Err(LifecycleError::RegistrationTimedOut {
            node_id: 1,
            timeout_ms: 500
        })
    );
    assert_eq!(*lc.state().borrow(), BrokerState::ShuttingDown);
    assert!(!h.metadata.current().brokers.contains_key(&1));
}
