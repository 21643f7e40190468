//! The voter set with its endpoints, as the metadata log defines it (KIP-853): the driver's
//! companion to the core's `VoterHistory`, which keeps only the ids. Where the core needs to know
//! who votes, the driver needs to know where each voter listens, and what to write into the
//! next Voters record. Both follow the same log operations (append, truncate, trim, snapshot),
//! so they agree on the set in force at every offset.
//!
//! A static quorum (`controller.quorum.voters`, kraft.version 0) has no Voters record: the
//! configured voters rule. The first voter change writes a Voters record and then a KRaftVersion
//! record (1), which makes the quorum dynamic from that offset on; from then on the log's set
//! rules and the configured list only helps to find the voters.

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::{KRaftVersionRecord, VotersRecord};
use kafka_protocol::protocol::{Decodable, Encodable};

use super::snapshot::{
    KRAFT_VERSION_1, VoterSpec, control_record_type, control_type, voters_record,
};
use crate::protocol::record_batch::{self, BatchIter, BatchOptions, NewRecord};

/// A KIP-853 control record found in the metadata log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VoterControl {
    KRaftVersion(i16),
    Voters(Vec<VoterSpec>),
}

/// The voter sets in force over the log: the set it starts with, then each Voters record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VoterSet {
    initial: Vec<VoterSpec>,
    initial_kraft_version: i16,
    /// (offset, voters) of each Voters record, offsets increasing.
    records: Vec<(i64, Vec<VoterSpec>)>,
    /// Offset of the KRaftVersion record that raised kraft.version to 1, if the log holds one.
    upgraded_at: Option<i64>,
}

impl VoterSet {
    /// `initial`: the set in force before the log's first record (a snapshot's Voters record, or
    /// the configured static voters); `kraft_version` the snapshot's.
    pub fn new(initial: Vec<VoterSpec>, kraft_version: i16) -> VoterSet {
        VoterSet {
            initial,
            initial_kraft_version: kraft_version,
            records: Vec::new(),
            upgraded_at: None,
        }
    }

    pub fn latest(&self) -> &[VoterSpec] {
        self.records
            .last()
            .map(|(_, v)| v.as_slice())
            .unwrap_or(&self.initial)
    }

    pub fn latest_ids(&self) -> Vec<i32> {
        self.latest().iter().map(|v| v.id).collect()
    }

    /// The set in force before the log's first Voters record.
    pub fn initial_ids(&self) -> Vec<i32> {
        self.initial.iter().map(|v| v.id).collect()
    }

    pub fn get(&self, id: i32) -> Option<&VoterSpec> {
        self.latest().iter().find(|v| v.id == id)
    }

    /// 1 once the voter set lives in the log (a Voters record, or a snapshot's), else 0.
    pub fn kraft_version(&self) -> i16 {
        if self.upgraded_at.is_some() || !self.records.is_empty() {
            KRAFT_VERSION_1
        } else {
            self.initial_kraft_version
        }
    }

    /// A dynamic quorum whose log holds no Voters record: its voters are only in the snapshot
    /// the log starts from (the bootstrap snapshot `storage format` wrote).
    pub fn only_in_snapshot(&self) -> bool {
        self.records.is_empty() && self.initial_kraft_version >= KRAFT_VERSION_1
    }

    /// The Voters records past the initial set, for the core's `with_voter_history`.
    pub fn history_ids(&self) -> Vec<(i64, Vec<i32>)> {
        self.records
            .iter()
            .map(|(o, v)| (*o, v.iter().map(|s| s.id).collect()))
            .collect()
    }

    /// A control record at `offset`; one at or below what is already known is a replay.
    pub fn apply(&mut self, offset: i64, control: VoterControl) {
        match control {
            VoterControl::Voters(voters) => {
                if self.records.last().is_none_or(|&(o, _)| o < offset) {
                    self.records.push((offset, voters));
                }
            }
            VoterControl::KRaftVersion(v) => {
                if v >= KRAFT_VERSION_1 && self.upgraded_at.is_none() {
                    self.upgraded_at = Some(offset);
                }
            }
        }
    }

    /// The log now ends at `end_offset`: records at or past it are gone.
    pub fn truncate_to(&mut self, end_offset: i64) {
        self.records.retain(|&(o, _)| o < end_offset);
        if self.upgraded_at.is_some_and(|o| o >= end_offset) {
            self.upgraded_at = None;
        }
    }

    /// The log below `start_offset` is gone: only the newest record below it still matters.
    pub fn trim_before(&mut self, start_offset: i64) {
        let below = self.records.partition_point(|&(o, _)| o < start_offset);
        if below > 1 {
            self.records.drain(..below - 1);
        }
    }

    /// The whole log was replaced by a snapshot holding `voters` (None: a static quorum's, which
    /// keeps the set we started with).
    pub fn reset_to_snapshot(&mut self, voters: Option<Vec<VoterSpec>>, kraft_version: i16) {
        let latest = self.latest().to_vec();
        self.records.clear();
        self.upgraded_at = None;
        if let Some(voters) = voters {
            self.initial = voters;
            self.initial_kraft_version = kraft_version.max(KRAFT_VERSION_1);
        } else {
            self.initial = latest;
        }
    }
}

/// The endpoint of `spec` to dial: the one on `listener` (the first controller listener name),
/// else its first.
pub fn controller_endpoint<'a>(
    spec: &'a VoterSpec,
    listener: &str,
) -> Option<&'a (String, String, u16)> {
    spec.endpoints
        .iter()
        .find(|(name, _, _)| name == listener)
        .or_else(|| spec.endpoints.first())
}

/// Directory ids match, or one side does not know it (a static voter's is zero).
pub fn same_directory(a: uuid::Uuid, b: uuid::Uuid) -> bool {
    a.is_nil() || b.is_nil() || a == b
}

/// The KIP-853 control records of the batches in `data`, with their offsets. Batches that are
/// not control batches are skipped by their header alone; an undecodable record is skipped.
pub fn scan_control_records(data: &[u8]) -> Vec<(i64, VoterControl)> {
    let mut found = Vec::new();
    for batch in BatchIter::new(data) {
        let Ok(batch) = batch else { break };
        if !batch.header.is_control() {
            continue;
        }
        let Some(records) = batch.records() else {
            continue;
        };
        for record in records {
            let Ok(record) = record else { break };
            let Some(value) = record.value else { continue };
            match control_record_type(record.key) {
                Some(control_type::KRAFT_VOTERS) => {
                    if let Ok(r) = VotersRecord::decode(&mut Bytes::copy_from_slice(value), 0) {
                        found.push((
                            record.offset,
                            VoterControl::Voters(VoterSpec::from_record(&r)),
                        ));
                    }
                }
                Some(control_type::KRAFT_VERSION) => {
                    if let Ok(r) = KRaftVersionRecord::decode(&mut Bytes::copy_from_slice(value), 0)
                    {
                        found.push((record.offset, VoterControl::KRaftVersion(r.k_raft_version)));
                    }
                }
                _ => {}
            }
        }
    }
    found
}

/// A control batch of one record of `control_type` (Kafka's key: version 0, then the type).
pub fn encode_control_batch(control_type: i16, value: &[u8], timestamp: i64) -> BytesMut {
    let t = control_type.to_be_bytes();
    let key = [0, 0, t[0], t[1]];
    let record = NewRecord {
        key: Some(&key),
        value: Some(value),
        headers: &[],
        timestamp,
    };
    let options = BatchOptions {
        is_control: true,
        ..BatchOptions::default()
    };
    BytesMut::from(&record_batch::encode_batch(&[record], &options)[..])
}

/// The value of a Voters control record naming `voters`.
pub fn voters_value(voters: &[VoterSpec]) -> Result<Bytes, String> {
    let mut buf = BytesMut::new();
    voters_record(voters)
        .encode(&mut buf, 0)
        .map_err(|e| e.to_string())?;
    Ok(buf.freeze())
}

/// The value of a KRaftVersion control record.
pub fn kraft_version_value(version: i16) -> Result<Bytes, String> {
    let mut buf = BytesMut::new();
    KRaftVersionRecord::default()
        .with_version(0)
        .with_k_raft_version(version)
        .encode(&mut buf, 0)
        .map_err(|e| e.to_string())?;
    Ok(buf.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    fn spec(id: i32, port: u16) -> VoterSpec {
        VoterSpec {
            id,
            directory_id: Uuid::from_u128(id as u128),
            endpoints: vec![("CONTROLLER".into(), "127.0.0.1".into(), port)],
        }
    }

    #[test]
    fn control_batches_round_trip_through_the_scanner() {
        let voters = vec![spec(1, 9093), spec(2, 9095)];
        let mut data = encode_control_batch(
            control_type::KRAFT_VOTERS,
            &voters_value(&voters).unwrap(),
            7,
        );
        record_batch::set_base_offset(&mut data, 41).unwrap();
        let mut version = encode_control_batch(
            control_type::KRAFT_VERSION,
            &kraft_version_value(1).unwrap(),
            7,
        );
        record_batch::set_base_offset(&mut version, 42).unwrap();
        let plain = record_batch::encode_batch(
            &[NewRecord {
                key: None,
                value: Some(b"not a control record"),
                headers: &[],
                timestamp: 7,
            }],
            &BatchOptions::default(),
        );
        data.extend_from_slice(&version);
        data.extend_from_slice(&plain);
        assert_eq!(
            scan_control_records(&data),
            vec![
                (41, VoterControl::Voters(voters)),
                (42, VoterControl::KRaftVersion(1)),
            ]
        );
    }

    #[test]
    fn the_set_follows_appends_truncation_trimming_and_snapshots() {
        let mut set = VoterSet::new(vec![spec(1, 1), spec(2, 2), spec(3, 3)], 0);
        assert_eq!(set.kraft_version(), 0);
        set.apply(
            10,
            VoterControl::Voters(vec![spec(1, 1), spec(2, 2), spec(3, 3), spec(4, 4)]),
        );
        set.apply(11, VoterControl::KRaftVersion(1));
        assert_eq!(set.latest_ids(), vec![1, 2, 3, 4]);
        assert_eq!(set.kraft_version(), 1);
        assert_eq!(set.history_ids(), vec![(10, vec![1, 2, 3, 4])]);
        // A replay of an older record changes nothing.
        set.apply(5, VoterControl::Voters(vec![spec(9, 9)]));
        assert_eq!(set.latest_ids(), vec![1, 2, 3, 4]);
        set.apply(
            20,
            VoterControl::Voters(vec![spec(2, 2), spec(3, 3), spec(4, 4)]),
        );
        set.truncate_to(20);
        assert_eq!(set.latest_ids(), vec![1, 2, 3, 4]);
        set.truncate_to(10);
        assert_eq!(set.latest_ids(), vec![1, 2, 3]);
        assert_eq!(set.kraft_version(), 0);

        set.apply(30, VoterControl::Voters(vec![spec(1, 1), spec(2, 2)]));
        set.apply(
            40,
            VoterControl::Voters(vec![spec(1, 1), spec(2, 2), spec(5, 5)]),
        );
        set.trim_before(45);
        assert_eq!(set.history_ids(), vec![(40, vec![1, 2, 5])]);
        assert_eq!(set.get(5).map(|s| s.endpoints[0].2), Some(5));

        set.reset_to_snapshot(Some(vec![spec(7, 7)]), 1);
        assert_eq!(set.latest_ids(), vec![7]);
        assert_eq!(set.kraft_version(), 1);
        assert!(set.history_ids().is_empty());
        // A static snapshot keeps the set in force.
        set.reset_to_snapshot(None, 0);
        assert_eq!(set.latest_ids(), vec![7]);
    }
}
