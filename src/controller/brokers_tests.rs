//! Session, fencing and registration decisions, with the clock passed in.

use std::time::Duration;

use kafka_protocol::messages::broker_registration_request::{Feature, Listener};
use kafka_protocol::messages::{BrokerId, BrokerRegistrationRequest};
use kafka_protocol::protocol::StrBytes;
use tokio::time::Instant;
use uuid::Uuid;

use super::*;
use crate::metadata::records::{
    FeatureLevelRecord, PartitionChangeRecord, PartitionRecord, TopicRecord,
};

const TIMEOUT: Duration = Duration::from_millis(9000);
const CLUSTER: &str = "MkU3OEVBNTcwNTJENDM2Qk";

fn image_with(brokers: &[(i32, bool)], mv: i16) -> MetadataImage {
    let mut image = MetadataImage::default();
    image.apply(&MetadataRecord::FeatureLevel(FeatureLevelRecord {
        name: METADATA_VERSION_FEATURE.into(),
        feature_level: mv,
    }));
    for &(id, fenced) in brokers {
        image.apply(&MetadataRecord::RegisterBroker(RegisterBrokerRecord {
            broker_id: id,
            broker_epoch: 100 + id as i64,
            incarnation_id: Uuid::from_u128(id as u128),
            fenced,
            ..RegisterBrokerRecord::default()
        }));
    }
    image.offset = 500;
    image
}

fn add_partition(image: &mut MetadataImage, replicas: &[i32], isr: &[i32], leader: i32) {
    let topic_id = Uuid::from_u128(42);
    if image.topic("t").is_none() {
        image.apply(&MetadataRecord::Topic(TopicRecord {
            name: "t".into(),
            topic_id,
        }));
    }
    let next = image.topic("t").map_or(0, |t| t.partitions.len() as i32);
    image.apply(&MetadataRecord::Partition(PartitionRecord {
        partition_id: next,
        topic_id,
        replicas: replicas.to_vec(),
        isr: isr.to_vec(),
        leader,
        leader_epoch: 0,
        partition_epoch: 0,
        ..PartitionRecord::default()
    }));
}

fn inputs() -> HeartbeatInputs {
    HeartbeatInputs {
        want_fence: false,
        want_shut_down: false,
        current_metadata_offset: 10,
        registration_offset: 10,
        has_leaderships: false,
        controlled_shutdown_offset: None,
        lowest_active_offset: i64::MAX,
    }
}

// ---- sessions ----

#[test]
fn a_session_expires_only_after_the_whole_timeout() {
    let t0 = Instant::now();
    assert!(
        !session_expired(t0 + TIMEOUT, t0, TIMEOUT),
        "valid at exactly the timeout"
    );
    assert!(session_expired(
        t0 + TIMEOUT + Duration::from_millis(1),
        t0,
        TIMEOUT
    ));
    // A clock that reads earlier than the last contact never expires anything.
    assert!(!session_expired(t0, t0 + TIMEOUT, TIMEOUT));
}

#[test]
fn activation_gives_every_registered_broker_a_fresh_session() {
    let image = image_with(&[(1, false), (2, true)], 21);
    let t0 = Instant::now();
    let m = BrokerHeartbeatManager::activate(TIMEOUT, &image, t0);
    assert_eq!(m.registration_offset(1), Some(101));
    assert_eq!(m.registration_offset(2), Some(102));
    let b1 = &image.brokers[&1];
    assert!(m.has_valid_session(b1, t0 + TIMEOUT));
    assert!(!m.has_valid_session(b1, t0 + TIMEOUT * 2));
    // Only unfenced brokers can go stale; the fenced one never blocks a new incarnation.
    assert!(!m.has_valid_session(&image.brokers[&2], t0));
    assert_eq!(m.find_stale_broker(&image, t0 + TIMEOUT), None);
    assert_eq!(m.find_stale_broker(&image, t0 + TIMEOUT * 2), Some(1));
    assert_eq!(
        m.next_check_time(&image),
        Some(t0 + TIMEOUT + Duration::from_millis(1))
    );
}

#[test]
fn heartbeats_keep_a_session_alive_and_the_oldest_goes_stale_first() {
    let image = image_with(&[(1, false), (2, false), (3, false)], 21);
    let t0 = Instant::now();
    let mut m = BrokerHeartbeatManager::activate(TIMEOUT, &image, t0);
    let step = Duration::from_secs(4);
    m.touch(1, t0 + step, 7, false);
    m.touch(3, t0 + step * 2, 7, false);
    // At 10 s broker 2 (last heard at 0) is stale; 1 (4 s) and 3 (8 s) are not.
    let at = t0 + Duration::from_secs(10);
    assert_eq!(m.find_stale_broker(&image, at), Some(2));
    // At 14 s both 1 and 2 are stale: the one heard from longest ago goes first.
    assert_eq!(
        m.find_stale_broker(&image, t0 + Duration::from_secs(14)),
        Some(2)
    );
    m.touch(2, at, 7, false);
    assert_eq!(
        m.find_stale_broker(&image, t0 + Duration::from_secs(14)),
        Some(1)
    );
}

#[test]
fn a_broker_in_controlled_shutdown_does_not_block_its_next_incarnation() {
    let mut image = image_with(&[(1, false)], 21);
    let t0 = Instant::now();
    let m = BrokerHeartbeatManager::activate(TIMEOUT, &image, t0);
    assert!(m.has_valid_session(&image.brokers[&1], t0));
    image.apply(&MetadataRecord::BrokerRegistrationChange(
        BrokerRegistrationChangeRecord {
            broker_id: 1,
            broker_epoch: 101,
            in_controlled_shutdown: BrokerRegistrationChangeRecord::IN_CONTROLLED_SHUTDOWN,
            ..BrokerRegistrationChangeRecord::default()
        },
    ));
    assert!(!m.has_valid_session(&image.brokers[&1], t0));
}

#[test]
fn the_controlled_shutdown_offset_is_set_once_and_cleared_by_fencing() {
    let image = image_with(&[(1, false), (2, false)], 21);
    let t0 = Instant::now();
    let mut m = BrokerHeartbeatManager::activate(TIMEOUT, &image, t0);
    m.touch(1, t0, 40, false);
    m.touch(2, t0, 55, false);
    assert_eq!(m.lowest_active_offset(&image), 40);
    m.maybe_update_controlled_shutdown_offset(1, 60);
    m.maybe_update_controlled_shutdown_offset(1, 70);
    assert_eq!(m.controlled_shutdown_offset(1), Some(60));
    assert_eq!(
        m.current_state(&image.brokers[&1]),
        BrokerControlState::ControlledShutdown
    );
    // A broker shutting down is no longer active: only broker 2's offset counts.
    assert_eq!(m.lowest_active_offset(&image), 55);
    m.touch(1, t0, 61, true);
    assert_eq!(m.controlled_shutdown_offset(1), None);
}

// ---- the next state ----

#[test]
fn a_fenced_broker_is_unfenced_once_caught_up_with_its_registration() {
    use BrokerControlState::*;
    let behind = HeartbeatInputs {
        current_metadata_offset: 9,
        ..inputs()
    };
    assert_eq!(next_broker_state(Fenced, behind), Fenced);
    assert_eq!(next_broker_state(Fenced, inputs()), Unfenced);
    let wants_fence = HeartbeatInputs {
        want_fence: true,
        ..inputs()
    };
    assert_eq!(next_broker_state(Fenced, wants_fence), Fenced);
    let wants_out = HeartbeatInputs {
        want_shut_down: true,
        ..behind
    };
    assert_eq!(next_broker_state(Fenced, wants_out), ShutdownNow);
}

#[test]
fn an_unfenced_broker_with_leaderships_goes_through_controlled_shutdown() {
    use BrokerControlState::*;
    let out = HeartbeatInputs {
        want_shut_down: true,
        ..inputs()
    };
    assert_eq!(next_broker_state(Unfenced, out), ShutdownNow);
    let leading = HeartbeatInputs {
        has_leaderships: true,
        ..out
    };
    assert_eq!(next_broker_state(Unfenced, leading), ControlledShutdown);
    assert_eq!(
        next_broker_state(ControlledShutdown, leading),
        ControlledShutdown
    );
    // Leaderships moved, but no offset recorded yet: keep waiting.
    assert_eq!(
        next_broker_state(ControlledShutdown, out),
        ControlledShutdown
    );
    // Another active broker has not yet applied the moves.
    let lagging = HeartbeatInputs {
        controlled_shutdown_offset: Some(80),
        lowest_active_offset: 79,
        ..out
    };
    assert_eq!(
        next_broker_state(ControlledShutdown, lagging),
        ControlledShutdown
    );
    let seen = HeartbeatInputs {
        lowest_active_offset: 80,
        ..lagging
    };
    assert_eq!(next_broker_state(ControlledShutdown, seen), ShutdownNow);
    let fence_and_out = HeartbeatInputs {
        want_fence: true,
        ..leading
    };
    assert_eq!(next_broker_state(Unfenced, fence_and_out), ShutdownNow);
    let fence = HeartbeatInputs {
        want_fence: true,
        ..inputs()
    };
    assert_eq!(next_broker_state(Unfenced, fence), Fenced);
    assert_eq!(next_broker_state(Unfenced, inputs()), Unfenced);
}

// ---- records ----

#[test]
fn fencing_moves_leadership_then_marks_the_broker_fenced() {
    let mut image = image_with(&[(1, false), (2, false)], 21);
    add_partition(&mut image, &[1, 2], &[1, 2], 1);
    add_partition(&mut image, &[1], &[1], 1);
    let records = fence_records(&image, 1, 101);
    let names: Vec<String> = records.iter().map(|r| r.to_string()).collect();
    assert_eq!(records.len(), 3, "{names:#?}");
    match &records[0] {
        MetadataRecord::PartitionChange(r) => {
            assert_eq!(
                (r.partition_id, r.leader, r.isr.clone()),
                (0, 2, Some(vec![2]))
            );
        }
        other => panic!("{other}"),
    }
    match &records[1] {
        MetadataRecord::PartitionChange(r) => {
            assert_eq!(
                (r.partition_id, r.leader, r.isr.clone()),
                (1, PartitionChangeRecord::NO_LEADER, None)
            );
        }
        other => panic!("{other}"),
    }
    assert_eq!(
        records[2],
        MetadataRecord::BrokerRegistrationChange(BrokerRegistrationChangeRecord {
            broker_id: 1,
            broker_epoch: 101,
            fenced: BrokerRegistrationChangeRecord::FENCE,
            ..BrokerRegistrationChangeRecord::default()
        })
    );
    // Before 3.3-IV2 fencing is a FenceBrokerRecord.
    let old = image_with(&[(1, false)], 5);
    assert_eq!(
        fence_records(&old, 1, 101),
        vec![MetadataRecord::FenceBroker(FenceBrokerRecord {
            id: 1,
            epoch: 101
        })]
    );
}

#[test]
fn unfencing_elects_the_broker_where_it_is_the_last_isr_member() {
    let mut image = image_with(&[(1, true)], 21);
    add_partition(&mut image, &[1], &[1], PartitionChangeRecord::NO_LEADER);
    let records = unfence_records(&image, 1, 101);
    assert_eq!(records.len(), 2);
    assert!(matches!(
        &records[0],
        MetadataRecord::BrokerRegistrationChange(r)
            if r.fenced == BrokerRegistrationChangeRecord::UNFENCE
    ));
    assert!(matches!(&records[1], MetadataRecord::PartitionChange(r) if r.leader == 1));
}

#[test]
fn controlled_shutdown_is_recorded_once() {
    let mut image = image_with(&[(1, false)], 21);
    add_partition(&mut image, &[1], &[1], 1);
    let records = controlled_shutdown_records(&image, 1, 101);
    assert_eq!(records.len(), 2);
    image.apply(&records[0]);
    image.apply(&records[1]);
    assert!(image.brokers[&1].in_controlled_shutdown);
    assert_eq!(image.topic("t").unwrap().partitions[&0].leader, -1);
    assert!(controlled_shutdown_records(&image, 1, 101).is_empty());
}

// ---- registration ----

fn registration(broker: i32) -> BrokerRegistrationRequest {
    BrokerRegistrationRequest::default()
        .with_broker_id(BrokerId(broker))
        .with_cluster_id(StrBytes::from_static_str(CLUSTER))
        .with_incarnation_id(Uuid::from_u128(1000 + broker as u128))
        .with_listeners(vec![
            Listener::default()
                .with_name(StrBytes::from_static_str("PLAINTEXT"))
                .with_host(StrBytes::from_static_str("h"))
                .with_port(9092),
        ])
        .with_features(vec![
            Feature::default()
                .with_name(StrBytes::from_static_str(METADATA_VERSION_FEATURE))
                .with_min_supported_version(1)
                .with_max_supported_version(21),
        ])
        .with_log_dirs(vec![Uuid::from_u128(1 << 100)])
}

#[test]
fn a_valid_registration_becomes_a_fenced_register_broker_record() {
    let image = image_with(&[], 21);
    let record = validate_registration(&image, CLUSTER, &registration(3)).unwrap();
    assert_eq!(record.broker_id, 3);
    assert!(record.fenced);
    assert_eq!(record.end_points.len(), 1);
    assert_eq!(record.end_points[0].port, 9092);
    assert_eq!(record.log_dirs, vec![Uuid::from_u128(1 << 100)]);
    assert_eq!(
        record.features,
        vec![BrokerFeature {
            name: METADATA_VERSION_FEATURE.into(),
            min_supported_version: 1,
            max_supported_version: 21
        }]
    );
}

#[test]
fn registrations_are_refused_with_kafkas_errors() {
    let image = image_with(&[], 21);
    let code = |req: BrokerRegistrationRequest| {
        validate_registration(&image, CLUSTER, &req)
            .map(|_| ())
            .map_err(|e| e.error())
    };
    assert_eq!(
        code(registration(3).with_cluster_id(StrBytes::from_static_str("other"))),
        Err(kafka_protocol::ResponseError::InconsistentClusterId)
    );
    // A broker that names no metadata.version supports only level 1.
    assert_eq!(
        code(registration(3).with_features(vec![])),
        Err(kafka_protocol::ResponseError::UnsupportedVersion)
    );
    let too_old = Feature::default()
        .with_name(StrBytes::from_static_str(METADATA_VERSION_FEATURE))
        .with_min_supported_version(1)
        .with_max_supported_version(20);
    assert_eq!(
        code(registration(3).with_features(vec![too_old])),
        Err(kafka_protocol::ResponseError::UnsupportedVersion)
    );
    assert_eq!(
        code(registration(3).with_log_dirs(vec![Uuid::from_u128(1)])),
        Err(kafka_protocol::ResponseError::InvalidRegistration)
    );
    let dir = Uuid::from_u128(1 << 100);
    assert_eq!(
        code(registration(3).with_log_dirs(vec![dir, dir])),
        Err(kafka_protocol::ResponseError::InvalidRegistration)
    );
    assert_eq!(
        code(registration(3).with_is_migrating_zk_broker(true)),
        Err(kafka_protocol::ResponseError::BrokerIdNotRegistered)
    );
    let long = StrBytes::from_string("h".repeat(MAX_STRING_LEN + 1));
    assert_eq!(
        code(registration(3).with_rack(Some(long))),
        Err(kafka_protocol::ResponseError::InvalidRegistration)
    );
}

#[test]
fn every_finalized_feature_must_be_supported() {
    let mut image = image_with(&[], 21);
    image.apply(&MetadataRecord::FeatureLevel(FeatureLevelRecord {
        name: "group.version".into(),
        feature_level: 1,
    }));
    assert_eq!(
        validate_registration(&image, CLUSTER, &registration(3))
            .map(|_| ())
            .map_err(|e| e.error()),
        Err(kafka_protocol::ResponseError::UnsupportedVersion)
    );
}

#[test]
fn responses_carry_one_error_code_and_say_fenced_on_error() {
    let ok = heartbeat_response(Ok(BrokerHeartbeatReply {
        is_caught_up: true,
        is_fenced: false,
        in_controlled_shutdown: false,
        should_shut_down: false,
    }));
    assert_eq!(
        (ok.error_code, ok.is_caught_up, ok.is_fenced),
        (0, true, false)
    );
    let stale = heartbeat_response(Err(ControllerError::StaleBrokerEpoch("x".into())));
    assert_eq!((stale.error_code, stale.is_fenced), (77, true));
    let dup = registration_response(Err(ControllerError::DuplicateBrokerRegistration(
        "x".into(),
    )));
    assert_eq!((dup.error_code, dup.broker_epoch), (101, -1));
    let not = registration_response(Err(ControllerError::NotController));
    assert_eq!(not.error_code, 41);
}
