//! Broker registration and heartbeats (KIP-631), as Kafka's ClusterControlManager and
//! BrokerHeartbeatManager: who may register, the soft state of each broker's session (last
//! heartbeat, reported metadata offset, controlled-shutdown offset), the next state a
//! heartbeat leads to, and the metadata records each state change needs.
//!
//! Sessions are soft state: they live only in the active controller's memory and are never
//! written to the log. A newly active controller gives every registered broker a fresh session,
//! so a failover costs at most one session timeout before a dead broker is fenced.
//!
//! Everything here is a function of (image, sessions, request, now): the clock is passed in, so
//! the decisions are tested without waiting. Nothing here proposes records; `mod.rs` does.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::time::Duration;

use kafka_protocol::messages::{
    BrokerHeartbeatRequest, BrokerHeartbeatResponse, BrokerRegistrationRequest,
    BrokerRegistrationResponse,
};
use tokio::time::Instant;
use uuid::Uuid;

use super::ControllerError;
use super::partition_change::{BrokerChange, leader_and_isr_updates};
use crate::metadata::records::{
    BrokerEndpoint, BrokerFeature, BrokerRegistrationChangeRecord, FenceBrokerRecord,
    MAX_STRING_LEN, MetadataRecord, RegisterBrokerRecord, UnfenceBrokerRecord,
};
use crate::metadata::{BrokerRegistration, MetadataImage};

/// metadata.version's feature name.
pub const METADATA_VERSION_FEATURE: &str = "metadata.version";
/// The metadata.version Kafka assumes for a broker that does not say (3.0-IV1, the first KRaft
/// level).
pub const MINIMUM_KRAFT_METADATA_VERSION: i16 = 1;
/// From this metadata.version (3.3-IV2) fencing is written as BrokerRegistrationChangeRecord.
const MV_BROKER_REGISTRATION_CHANGE_RECORD: i16 = 6;
/// From this metadata.version (3.3-IV3) controlled shutdown is persisted (KIP-841).
const MV_IN_CONTROLLED_SHUTDOWN_STATE: i16 = 7;
/// From this metadata.version (3.7-IV2) registrations carry log directories (KIP-858).
const MV_DIRECTORY_ASSIGNMENT: i16 = 17;
/// Registered brokers the controller accepts: the bound on the session map, which the network
/// feeds. Far above any real cluster.
pub const MAX_REGISTERED_BROKERS: usize = 65_536;

/// The outcome of a registration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BrokerRegistrationReply {
    pub broker_epoch: i64,
}

/// What the controller tells a heartbeating broker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BrokerHeartbeatReply {
    pub is_caught_up: bool,
    pub is_fenced: bool,
    pub in_controlled_shutdown: bool,
    pub should_shut_down: bool,
}

/// The response a broker gets for `result`: one Kafka error code per ControllerError.
pub fn registration_response(
    result: Result<BrokerRegistrationReply, ControllerError>,
) -> BrokerRegistrationResponse {
    match result {
        Ok(reply) => BrokerRegistrationResponse::default().with_broker_epoch(reply.broker_epoch),
        Err(e) => BrokerRegistrationResponse::default()
            .with_error_code(e.code())
            .with_broker_epoch(-1),
    }
}

/// The response a broker gets for `result`; on an error it is told it is fenced, as Kafka's
/// defaults say.
pub fn heartbeat_response(
    result: Result<BrokerHeartbeatReply, ControllerError>,
) -> BrokerHeartbeatResponse {
    match result {
        Ok(reply) => BrokerHeartbeatResponse::default()
            .with_is_caught_up(reply.is_caught_up)
            .with_is_fenced(reply.is_fenced)
            .with_should_shut_down(reply.should_shut_down),
        Err(e) => BrokerHeartbeatResponse::default()
            .with_error_code(e.code())
            .with_is_caught_up(false)
            .with_is_fenced(true)
            .with_should_shut_down(false),
    }
}

/// A broker's state as the controller sees it (Kafka's BrokerControlState).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BrokerControlState {
    Fenced,
    Unfenced,
    ControlledShutdown,
    ShutdownNow,
}

impl BrokerControlState {
    pub fn fenced(self) -> bool {
        matches!(
            self,
            BrokerControlState::Fenced | BrokerControlState::ShutdownNow
        )
    }

    pub fn should_shut_down(self) -> bool {
        self == BrokerControlState::ShutdownNow
    }

    pub fn in_controlled_shutdown(self) -> bool {
        self == BrokerControlState::ControlledShutdown
    }
}

/// True once a session has gone `timeout` without a heartbeat. Kafka keeps a session valid
/// while `last_contact + timeout >= now`.
pub fn session_expired(now: Instant, last_contact: Instant, timeout: Duration) -> bool {
    now.saturating_duration_since(last_contact) > timeout
}

/// What a heartbeat asks for, and the facts the answer depends on.
#[derive(Debug, Clone, Copy)]
pub struct HeartbeatInputs {
    pub want_fence: bool,
    pub want_shut_down: bool,
    pub current_metadata_offset: i64,
    pub registration_offset: i64,
    pub has_leaderships: bool,
    /// Set once the broker's controlled shutdown records were committed.
    pub controlled_shutdown_offset: Option<i64>,
    /// The lowest metadata offset reported by an active broker, `i64::MAX` if none.
    pub lowest_active_offset: i64,
}

/// The state a heartbeat moves a broker to (Kafka's `calculateNextBrokerState`).
pub fn next_broker_state(current: BrokerControlState, hb: HeartbeatInputs) -> BrokerControlState {
    use BrokerControlState::*;
    match current {
        Fenced => {
            if hb.want_shut_down {
                ShutdownNow
            } else if !hb.want_fence && hb.current_metadata_offset >= hb.registration_offset {
                // Caught up with its own registration: it knows what it was registered as.
                Unfenced
            } else {
                Fenced
            }
        }
        Unfenced => {
            if hb.want_fence {
                if hb.want_shut_down {
                    ShutdownNow
                } else {
                    Fenced
                }
            } else if hb.want_shut_down {
                if hb.has_leaderships {
                    ControlledShutdown
                } else {
                    ShutdownNow
                }
            } else {
                Unfenced
            }
        }
        ControlledShutdown => {
            if hb.has_leaderships {
                return ControlledShutdown;
            }
            // Every active broker must have seen the leadership moves before this one stops
            // serving, or clients would be sent to it still.
            match hb.controlled_shutdown_offset {
                Some(offset) if offset <= hb.lowest_active_offset => ShutdownNow,
                _ => ControlledShutdown,
            }
        }
        ShutdownNow => ShutdownNow,
    }
}

#[derive(Debug, Clone)]
struct BrokerSession {
    last_contact: Instant,
    /// The last metadata offset the broker reported; -1 before its first heartbeat.
    metadata_offset: i64,
    /// The offset at which its controlled shutdown records were committed.
    controlled_shutdown_offset: Option<i64>,
}

/// The active controller's soft state about brokers (Kafka's BrokerHeartbeatManager plus the
/// registration offsets ClusterControlManager keeps).
#[derive(Debug)]
pub struct BrokerHeartbeatManager {
    session_timeout: Duration,
    sessions: BTreeMap<i32, BrokerSession>,
    /// The offset of each broker's latest RegisterBrokerRecord: a broker is caught up once its
    /// metadata offset reaches it.
    registration_offsets: BTreeMap<i32, i64>,
}

impl BrokerHeartbeatManager {
    pub fn new(session_timeout: Duration) -> Self {
        BrokerHeartbeatManager {
            session_timeout,
            sessions: BTreeMap::new(),
            registration_offsets: BTreeMap::new(),
        }
    }

    /// A newly active controller: a fresh session for every registered broker, as Kafka's
    /// `ClusterControlManager.activate`. The registration offset is not in the image; the broker
    /// epoch is the offset of the record that created this incarnation, a safe stand-in.
    pub fn activate(session_timeout: Duration, image: &MetadataImage, now: Instant) -> Self {
        let mut manager = BrokerHeartbeatManager::new(session_timeout);
        for b in image.brokers.values() {
            manager.registered(b.id, b.epoch, now, b.fenced);
        }
        manager
    }

    pub fn session_timeout(&self) -> Duration {
        self.session_timeout
    }

    /// A (re-)registration was committed at `offset`: the broker's session is renewed now.
    pub fn registered(&mut self, broker: i32, offset: i64, now: Instant, fenced: bool) {
        self.registration_offsets.insert(broker, offset);
        let session = self.sessions.entry(broker).or_insert(BrokerSession {
            last_contact: now,
            metadata_offset: -1,
            controlled_shutdown_offset: None,
        });
        session.last_contact = now;
        if fenced {
            session.controlled_shutdown_offset = None;
        }
    }

    /// A new incarnation replaces the broker: forget what the old one reported.
    pub fn remove(&mut self, broker: i32) {
        self.sessions.remove(&broker);
        self.registration_offsets.remove(&broker);
    }

    pub fn registration_offset(&self, broker: i32) -> Option<i64> {
        self.registration_offsets.get(&broker).copied()
    }

    pub fn controlled_shutdown_offset(&self, broker: i32) -> Option<i64> {
        self.sessions
            .get(&broker)
            .and_then(|s| s.controlled_shutdown_offset)
    }

    /// Whether another incarnation must be refused: the registered one is unfenced, not in
    /// controlled shutdown (Kafka 4.1, KAFKA-19047: a broker that was shutting down may come
    /// back at once) and heard from within the session timeout.
    pub fn has_valid_session(&self, registration: &BrokerRegistration, now: Instant) -> bool {
        if registration.fenced || registration.in_controlled_shutdown {
            return false;
        }
        self.sessions
            .get(&registration.id)
            .is_some_and(|s| !session_expired(now, s.last_contact, self.session_timeout))
    }

    /// A heartbeat was answered with `next`.
    pub fn touch(&mut self, broker: i32, now: Instant, metadata_offset: i64, fenced: bool) {
        let session = self.sessions.entry(broker).or_insert(BrokerSession {
            last_contact: now,
            metadata_offset,
            controlled_shutdown_offset: None,
        });
        session.last_contact = now;
        session.metadata_offset = metadata_offset;
        if fenced {
            // A fenced broker leaves controlled shutdown: its next heartbeat is told to stop.
            session.controlled_shutdown_offset = None;
        }
    }

    /// The broker was fenced (session expiry): it leaves controlled shutdown.
    pub fn fenced(&mut self, broker: i32) {
        if let Some(s) = self.sessions.get_mut(&broker) {
            s.controlled_shutdown_offset = None;
        }
    }

    /// Records the offset of the broker's controlled shutdown, once.
    pub fn maybe_update_controlled_shutdown_offset(&mut self, broker: i32, offset: i64) {
        if let Some(s) = self.sessions.get_mut(&broker)
            && s.controlled_shutdown_offset.is_none()
        {
            s.controlled_shutdown_offset = Some(offset);
        }
    }

    /// The state the controller holds the broker in.
    pub fn current_state(&self, registration: &BrokerRegistration) -> BrokerControlState {
        if self.controlled_shutdown_offset(registration.id).is_some() {
            BrokerControlState::ControlledShutdown
        } else if registration.fenced {
            BrokerControlState::Fenced
        } else {
            BrokerControlState::Unfenced
        }
    }

    /// The lowest metadata offset among active brokers (unfenced, not shutting down), or
    /// `i64::MAX` when there are none.
    pub fn lowest_active_offset(&self, image: &MetadataImage) -> i64 {
        self.sessions
            .iter()
            .filter(|(id, s)| {
                s.controlled_shutdown_offset.is_none()
                    && image.brokers.get(id).is_some_and(|b| !b.fenced)
            })
            .map(|(_, s)| s.metadata_offset)
            .min()
            .unwrap_or(i64::MAX)
    }

    /// The unfenced broker whose session expired longest ago, if any. Brokers are fenced one at
    /// a time so the leadership moves of each are seen before the next is chosen.
    pub fn find_stale_broker(&self, image: &MetadataImage, now: Instant) -> Option<i32> {
        self.sessions
            .iter()
            .filter(|(id, _)| image.brokers.get(id).is_some_and(|b| !b.fenced))
            .filter(|(_, s)| session_expired(now, s.last_contact, self.session_timeout))
            .min_by_key(|(_, s)| s.last_contact)
            .map(|(id, _)| *id)
    }

    /// When the next unfenced session can expire.
    pub fn next_check_time(&self, image: &MetadataImage) -> Option<Instant> {
        self.sessions
            .iter()
            .filter(|(id, _)| image.brokers.get(id).is_some_and(|b| !b.fenced))
            .map(|(_, s)| s.last_contact + self.session_timeout + Duration::from_millis(1))
            .min()
    }
}

/// The finalized metadata.version, 1 when the log has none (as Kafka's default).
pub fn metadata_version(image: &MetadataImage) -> i16 {
    image
        .features
        .get(METADATA_VERSION_FEATURE)
        .copied()
        .unwrap_or(MINIMUM_KRAFT_METADATA_VERSION)
}

/// Records that fence `broker`: it leaves every ISR it can and loses every leadership, then is
/// marked fenced (Kafka's `handleBrokerFenced`).
pub fn fence_records(image: &MetadataImage, broker: i32, epoch: i64) -> Vec<MetadataRecord> {
    let mut records: Vec<MetadataRecord> =
        leader_and_isr_updates(image, BrokerChange::Remove(broker))
            .into_iter()
            .map(MetadataRecord::PartitionChange)
            .collect();
    records.push(
        if metadata_version(image) >= MV_BROKER_REGISTRATION_CHANGE_RECORD {
            MetadataRecord::BrokerRegistrationChange(BrokerRegistrationChangeRecord {
                broker_id: broker,
                broker_epoch: epoch,
                fenced: BrokerRegistrationChangeRecord::FENCE,
                ..BrokerRegistrationChangeRecord::default()
            })
        } else {
            MetadataRecord::FenceBroker(FenceBrokerRecord { id: broker, epoch })
        },
    );
    records
}

/// Records that unfence `broker` and let it lead the leaderless partitions whose ISR holds it
/// (Kafka's `handleBrokerUnfenced`).
pub fn unfence_records(image: &MetadataImage, broker: i32, epoch: i64) -> Vec<MetadataRecord> {
    let mut records = vec![
        if metadata_version(image) >= MV_BROKER_REGISTRATION_CHANGE_RECORD {
            MetadataRecord::BrokerRegistrationChange(BrokerRegistrationChangeRecord {
                broker_id: broker,
                broker_epoch: epoch,
                fenced: BrokerRegistrationChangeRecord::UNFENCE,
                ..BrokerRegistrationChangeRecord::default()
            })
        } else {
            MetadataRecord::UnfenceBroker(UnfenceBrokerRecord { id: broker, epoch })
        },
    ];
    records.extend(
        leader_and_isr_updates(image, BrokerChange::Add(broker))
            .into_iter()
            .map(MetadataRecord::PartitionChange),
    );
    records
}

/// Records that start `broker`'s controlled shutdown: marked as such, out of every ISR it can
/// leave, its leaderships moved (Kafka's `handleBrokerInControlledShutdown`).
pub fn controlled_shutdown_records(
    image: &MetadataImage,
    broker: i32,
    epoch: i64,
) -> Vec<MetadataRecord> {
    let mut records = Vec::new();
    let already = image
        .brokers
        .get(&broker)
        .is_some_and(|b| b.in_controlled_shutdown);
    if metadata_version(image) >= MV_IN_CONTROLLED_SHUTDOWN_STATE && !already {
        records.push(MetadataRecord::BrokerRegistrationChange(
            BrokerRegistrationChangeRecord {
                broker_id: broker,
                broker_epoch: epoch,
                in_controlled_shutdown: BrokerRegistrationChangeRecord::IN_CONTROLLED_SHUTDOWN,
                ..BrokerRegistrationChangeRecord::default()
            },
        ));
    }
    records.extend(
        leader_and_isr_updates(image, BrokerChange::Remove(broker))
            .into_iter()
            .map(MetadataRecord::PartitionChange),
    );
    records
}

/// The records a heartbeat's state change needs (Kafka's `processBrokerHeartbeat`).
pub fn heartbeat_records(
    image: &MetadataImage,
    broker: i32,
    epoch: i64,
    current: BrokerControlState,
    next: BrokerControlState,
) -> Vec<MetadataRecord> {
    if current == next {
        return Vec::new();
    }
    match next {
        BrokerControlState::Fenced | BrokerControlState::ShutdownNow => {
            fence_records(image, broker, epoch)
        }
        BrokerControlState::Unfenced => unfence_records(image, broker, epoch),
        BrokerControlState::ControlledShutdown => controlled_shutdown_records(image, broker, epoch),
    }
}

/// Checks a heartbeat's broker epoch against the registration (Kafka's `checkBrokerEpoch`).
pub fn check_broker_epoch(
    image: &MetadataImage,
    broker: i32,
    epoch: i64,
) -> Result<&BrokerRegistration, ControllerError> {
    match image.brokers.get(&broker) {
        None => Err(ControllerError::StaleBrokerEpoch(format!(
            "No broker registration found for broker id {broker}"
        ))),
        Some(b) if b.epoch != epoch => Err(ControllerError::StaleBrokerEpoch(format!(
            "Expected broker epoch {}, but got broker epoch {epoch}",
            b.epoch
        ))),
        Some(b) => Ok(b),
    }
}

/// The heartbeat request's fields the controller reads.
pub fn heartbeat_inputs(
    req: &BrokerHeartbeatRequest,
    manager: &BrokerHeartbeatManager,
    image: &MetadataImage,
    registration_offset: i64,
) -> HeartbeatInputs {
    let broker = req.broker_id.0;
    let controlled_shutdown_offset = manager.controlled_shutdown_offset(broker);
    // Leaderships matter only to a broker that wants to stop; the scan over every partition is
    // skipped for the routine heartbeat.
    let shutting_down = req.want_shut_down || controlled_shutdown_offset.is_some();
    HeartbeatInputs {
        want_fence: req.want_fence,
        want_shut_down: req.want_shut_down,
        current_metadata_offset: req.current_metadata_offset,
        registration_offset,
        has_leaderships: shutting_down && super::partition_change::has_leaderships(image, broker),
        controlled_shutdown_offset,
        lowest_active_offset: manager.lowest_active_offset(image),
    }
}

/// Whether a registration can be accepted, and the RegisterBrokerRecord it becomes (without its
/// epoch and fencing, which depend on the previous registration).
pub fn validate_registration(
    image: &MetadataImage,
    cluster_id: &str,
    req: &BrokerRegistrationRequest,
) -> Result<RegisterBrokerRecord, ControllerError> {
    let broker = req.broker_id.0;
    if req.cluster_id.as_str() != cluster_id {
        return Err(ControllerError::InconsistentClusterId(format!(
            "Expected cluster ID {cluster_id}, but got cluster ID {}",
            req.cluster_id.as_str()
        )));
    }
    if broker < 0 {
        return Err(ControllerError::InvalidRegistration(format!(
            "Invalid broker id {broker}"
        )));
    }
    if req.is_migrating_zk_broker {
        return Err(ControllerError::BrokerIdNotRegistered(
            "Controller does not support registering ZK brokers.".into(),
        ));
    }
    if !image.brokers.contains_key(&broker) && image.brokers.len() >= MAX_REGISTERED_BROKERS {
        return Err(ControllerError::InvalidRegistration(format!(
            "The cluster already has {MAX_REGISTERED_BROKERS} registered brokers, the most this controller keeps."
        )));
    }
    // The record's strings are bounded as Kafka's readers require (its encoder does not check).
    let too_long = |what: &str, s: &str| {
        (s.len() > MAX_STRING_LEN).then(|| {
            ControllerError::InvalidRegistration(format!(
                "{what} is longer than {MAX_STRING_LEN} bytes"
            ))
        })
    };
    if let Some(rack) = &req.rack
        && let Some(e) = too_long("rack", rack)
    {
        return Err(e);
    }
    let mut names = HashSet::new();
    let mut end_points = Vec::with_capacity(req.listeners.len());
    for l in &req.listeners {
        if let Some(e) = too_long("listener name", &l.name).or_else(|| too_long("host", &l.host)) {
            return Err(e);
        }
        if !names.insert(l.name.as_str()) {
            return Err(ControllerError::InvalidRegistration(format!(
                "Duplicate listener name {}",
                l.name.as_str()
            )));
        }
        end_points.push(BrokerEndpoint {
            name: l.name.to_string(),
            host: l.host.to_string(),
            port: l.port,
            security_protocol: l.security_protocol,
        });
    }
    if metadata_version(image) >= MV_DIRECTORY_ASSIGNMENT {
        // Kafka also refuses an empty list at this level; kraftd accepts one, because a log dir
        // formatted before Kafka 3.7 has no directory.id and kraftd does not add one at start.
        validate_log_dirs(image, &req.log_dirs)?;
    }
    let features = validate_features(image, req)?;
    Ok(RegisterBrokerRecord {
        broker_id: broker,
        is_migrating_zk_broker: false,
        incarnation_id: req.incarnation_id,
        broker_epoch: -1,
        end_points,
        features,
        rack: req.rack.as_ref().map(|r| r.to_string()),
        fenced: true,
        in_controlled_shutdown: false,
        log_dirs: if metadata_version(image) >= MV_DIRECTORY_ASSIGNMENT {
            req.log_dirs.clone()
        } else {
            Vec::new()
        },
    })
}

fn validate_log_dirs(_image: &MetadataImage, dirs: &[Uuid]) -> Result<(), ControllerError> {
    // The first 100 ids are reserved (Kafka's DirectoryId: unassigned, lost, migrating, ...).
    if dirs.iter().any(|d| d.as_u128() < 100) {
        return Err(ControllerError::InvalidRegistration(
            "Reserved directory ID in request".into(),
        ));
    }
    if dirs.iter().collect::<BTreeSet<_>>().len() != dirs.len() {
        return Err(ControllerError::InvalidRegistration(
            "Duplicate directory ID in request".into(),
        ));
    }
    Ok(())
}

/// Every feature the broker names must include the finalized level, and every finalized feature
/// must be supported (Kafka's `processRegistrationFeature`).
fn validate_features(
    image: &MetadataImage,
    req: &BrokerRegistrationRequest,
) -> Result<Vec<BrokerFeature>, ControllerError> {
    let check = |name: &str, min: i16, max: i16| {
        let default = if name == METADATA_VERSION_FEATURE {
            MINIMUM_KRAFT_METADATA_VERSION
        } else {
            0
        };
        let finalized = image.features.get(name).copied().unwrap_or(default);
        if (min..=max).contains(&finalized) {
            Ok(BrokerFeature {
                name: name.to_string(),
                min_supported_version: min,
                max_supported_version: max,
            })
        } else {
            Err(ControllerError::UnsupportedVersion(format!(
                "Unable to register because the broker does not support finalized version \
                 {finalized} of {name}. The broker wants a version between {min} and {max}, \
                 inclusive."
            )))
        }
    };
    let mut features = Vec::with_capacity(req.features.len() + 1);
    for f in &req.features {
        if f.name.len() > MAX_STRING_LEN {
            return Err(ControllerError::InvalidRegistration(format!(
                "feature name is longer than {MAX_STRING_LEN} bytes"
            )));
        }
        features.push(check(
            f.name.as_str(),
            f.min_supported_version,
            f.max_supported_version,
        )?);
    }
    let named = |name: &str| req.features.iter().any(|f| f.name.as_str() == name);
    // A broker that names no metadata.version range supports only the first KRaft level.
    if !named(METADATA_VERSION_FEATURE) {
        features.push(check(
            METADATA_VERSION_FEATURE,
            MINIMUM_KRAFT_METADATA_VERSION,
            MINIMUM_KRAFT_METADATA_VERSION,
        )?);
    }
    for (name, &level) in &image.features {
        if level != 0 && !named(name) && name != METADATA_VERSION_FEATURE {
            check(name, 0, 0)?;
        }
    }
    Ok(features)
}

#[cfg(test)]
#[path = "brokers_tests.rs"]
mod tests;
