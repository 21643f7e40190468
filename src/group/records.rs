//! The records of `__consumer_offsets`, in Apache Kafka's key/value schemas (OffsetCommitKey v1 /
//! OffsetCommitValue v3, GroupMetadataKey v2 / GroupMetadataValue v3): a 2-byte version then the
//! classic (non-flexible) encoding. A null value is a tombstone.
//!
//! KIP-848 consumer-group records share the topic. Their key is the record type (Kafka's
//! `apiKey`, 3..=8) as the 2-byte prefix, then a non-flexible v0 body; their value is a 2-byte
//! version (only 0 exists) then a flexible body: compact strings and arrays, unsigned varints,
//! uuids as 16 bytes, and a tagged-field section after every struct. Tagged fields are written
//! only when not at their schema default, in tag order, as Kafka's generated writers do.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use uuid::Uuid;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupRecordKey {
    Offset {
        group: String,
        topic: String,
        partition: i32,
    },
    Group {
        group: String,
    },
    /// Type 3: the group epoch.
    ConsumerGroupMetadata {
        group: String,
    },
    /// Type 5: a member's subscription and client details.
    ConsumerGroupMemberMetadata {
        group: String,
        member_id: String,
    },
    /// Type 6: the target assignment epoch.
    ConsumerGroupTargetAssignmentMetadata {
        group: String,
    },
    /// Type 7: a member's target assignment.
    ConsumerGroupTargetAssignmentMember {
        group: String,
        member_id: String,
    },
    /// Type 8: a member's current assignment and epochs.
    ConsumerGroupCurrentMemberAssignment {
        group: String,
        member_id: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetValue {
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: String,
    pub commit_timestamp: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberValue {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub rebalance_timeout: i32,
    pub session_timeout: i32,
    pub subscription: Bytes,
    pub assignment: Bytes,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupValue {
    pub protocol_type: String,
    pub generation: i32,
    pub protocol: Option<String>,
    pub leader: Option<String>,
    pub current_state_timestamp: i64,
    pub members: Vec<MemberValue>,
}

/// ConsumerGroupMetadataValue v0 (type 3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerGroupMetadataValue {
    pub epoch: i32,
    /// Tag 0 (KIP-1101, Kafka 4.1): the hash of the subscribed topics' metadata; default 0.
    pub metadata_hash: i64,
    /// Tag 1 (KIP-1282): when the group was created, in ms; default -1.
    pub creation_time_ms: i64,
}

impl Default for ConsumerGroupMetadataValue {
    fn default() -> Self {
        ConsumerGroupMetadataValue {
            epoch: 0,
            metadata_hash: 0,
            creation_time_ms: -1,
        }
    }
}

/// The supported protocols of a member that joined through the classic protocol.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ClassicMemberMetadata {
    pub session_timeout_ms: i32,
    pub supported_protocols: Vec<ClassicProtocol>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ClassicProtocol {
    pub name: String,
    pub metadata: Bytes,
}

/// ConsumerGroupMemberMetadataValue v0 (type 5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerGroupMemberMetadataValue {
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub subscribed_topic_names: Vec<String>,
    pub subscribed_topic_regex: Option<String>,
    /// Default -1.
    pub rebalance_timeout_ms: i32,
    pub server_assignor: Option<String>,
    /// Tag 0: set only for a member that uses the classic protocol; default null.
    pub classic_member_metadata: Option<ClassicMemberMetadata>,
}

impl Default for ConsumerGroupMemberMetadataValue {
    fn default() -> Self {
        ConsumerGroupMemberMetadataValue {
            instance_id: None,
            rack_id: None,
            client_id: String::new(),
            client_host: String::new(),
            subscribed_topic_names: Vec::new(),
            subscribed_topic_regex: None,
            rebalance_timeout_ms: -1,
            server_assignor: None,
            classic_member_metadata: None,
        }
    }
}

/// ConsumerGroupTargetAssignmentMetadataValue v0 (type 6).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ConsumerGroupTargetAssignmentMetadataValue {
    pub assignment_epoch: i32,
    /// Tag 0 (KIP-1263, Kafka 4.3): when the assignment was computed, in ms; default 0.
    pub assignment_timestamp_ms: i64,
}

/// ConsumerGroupTargetAssignmentMemberValue v0 (type 7).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ConsumerGroupTargetAssignmentMemberValue {
    pub topic_partitions: Vec<(Uuid, Vec<i32>)>,
}

/// ConsumerGroupCurrentMemberAssignmentValue v0 (type 8).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ConsumerGroupCurrentMemberAssignmentValue {
    pub member_epoch: i32,
    pub previous_member_epoch: i32,
    /// Kafka's `MemberState` value.
    pub state: i8,
    pub assigned_partitions: Vec<(Uuid, Vec<i32>)>,
    pub partitions_pending_revocation: Vec<(Uuid, Vec<i32>)>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("malformed __consumer_offsets record: {0}")]
pub struct GroupRecordError(pub String);

const OFFSET_KEY_VERSION: i16 = 1;
const GROUP_KEY_VERSION: i16 = 2;
const OFFSET_VALUE_VERSION: i16 = 3;
const GROUP_VALUE_VERSION: i16 = 3;

// KIP-848 record types: the key's 2-byte prefix. Type 4 (ConsumerGroupPartitionMetadata) is
// deprecated since Kafka 4.1 and skipped like any other type kraftd does not use.
const CONSUMER_GROUP_METADATA_KEY: i16 = 3;
const CONSUMER_GROUP_MEMBER_METADATA_KEY: i16 = 5;
const CONSUMER_GROUP_TARGET_ASSIGNMENT_METADATA_KEY: i16 = 6;
const CONSUMER_GROUP_TARGET_ASSIGNMENT_MEMBER_KEY: i16 = 7;
const CONSUMER_GROUP_CURRENT_MEMBER_ASSIGNMENT_KEY: i16 = 8;
/// Every KIP-848 value schema has `"validVersions": "0"`.
const CONSUMER_GROUP_VALUE_VERSION: i16 = 0;

fn put_str(buf: &mut BytesMut, s: &str) {
    let len = s.len().min(i16::MAX as usize);
    buf.put_i16(len as i16);
    buf.put_slice(&s.as_bytes()[..len]);
}

fn put_nullable_str(buf: &mut BytesMut, s: Option<&str>) {
    match s {
        Some(s) => put_str(buf, s),
        None => buf.put_i16(-1),
    }
}

fn put_bytes(buf: &mut BytesMut, b: &[u8]) {
    buf.put_i32(b.len() as i32);
    buf.put_slice(b);
}

// Flexible-version encoding (KIP-482).

fn put_uvarint(buf: &mut BytesMut, mut v: u32) {
    while v >= 0x80 {
        buf.put_u8((v as u8 & 0x7f) | 0x80);
        v >>= 7;
    }
    buf.put_u8(v as u8);
}

/// A compact length: `n + 1`, so that 0 can mean null.
fn put_compact_len(buf: &mut BytesMut, n: usize) {
    put_uvarint(buf, u32::try_from(n).unwrap_or(u32::MAX - 1) + 1);
}

fn put_compact_str(buf: &mut BytesMut, s: &str) {
    put_compact_len(buf, s.len());
    buf.put_slice(s.as_bytes());
}

fn put_compact_nullable_str(buf: &mut BytesMut, s: Option<&str>) {
    match s {
        Some(s) => put_compact_str(buf, s),
        None => put_uvarint(buf, 0),
    }
}

fn put_compact_bytes(buf: &mut BytesMut, b: &[u8]) {
    put_compact_len(buf, b.len());
    buf.put_slice(b);
}

fn put_uuid(buf: &mut BytesMut, id: &Uuid) {
    buf.put_slice(id.as_bytes());
}

fn put_empty_tagged_fields(buf: &mut BytesMut) {
    put_uvarint(buf, 0);
}

/// Tagged fields as (tag, payload), already in ascending tag order: a count, then each tag and
/// its payload size as unsigned varints.
fn put_tagged_fields(buf: &mut BytesMut, fields: &[(u32, Bytes)]) {
    put_uvarint(buf, u32::try_from(fields.len()).unwrap_or(u32::MAX));
    for (tag, payload) in fields {
        put_uvarint(buf, *tag);
        put_uvarint(buf, u32::try_from(payload.len()).unwrap_or(u32::MAX));
        buf.put_slice(payload);
    }
}

/// `[]TopicPartition{TopicId uuid, Partitions []int32}`, each entry closing with empty tagged
/// fields (the optional `AssignmentEpochs` tag is never written).
fn put_topic_partitions(buf: &mut BytesMut, topics: &[(Uuid, Vec<i32>)]) {
    put_compact_len(buf, topics.len());
    for (topic_id, partitions) in topics {
        put_uuid(buf, topic_id);
        put_compact_len(buf, partitions.len());
        for p in partitions {
            buf.put_i32(*p);
        }
        put_empty_tagged_fields(buf);
    }
}

struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn need(&self, n: usize) -> Result<(), GroupRecordError> {
        if self.0.remaining() < n {
            return Err(GroupRecordError("truncated".into()));
        }
        Ok(())
    }
    fn i16(&mut self) -> Result<i16, GroupRecordError> {
        self.need(2)?;
        Ok(self.0.get_i16())
    }
    fn i32(&mut self) -> Result<i32, GroupRecordError> {
        self.need(4)?;
        Ok(self.0.get_i32())
    }
    fn i64(&mut self) -> Result<i64, GroupRecordError> {
        self.need(8)?;
        Ok(self.0.get_i64())
    }
    fn nullable_str(&mut self) -> Result<Option<String>, GroupRecordError> {
        let len = self.i16()?;
        if len < 0 {
            return Ok(None);
        }
        self.need(len as usize)?;
        let (s, rest) = self.0.split_at(len as usize);
        self.0 = rest;
        String::from_utf8(s.to_vec())
            .map(Some)
            .map_err(|_| GroupRecordError("invalid utf-8".into()))
    }
    fn str(&mut self) -> Result<String, GroupRecordError> {
        self.nullable_str()?
            .ok_or_else(|| GroupRecordError("null string".into()))
    }
    fn i8(&mut self) -> Result<i8, GroupRecordError> {
        self.need(1)?;
        Ok(self.0.get_i8())
    }
    fn take(&mut self, n: usize) -> Result<&[u8], GroupRecordError> {
        self.need(n)?;
        let (b, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(b)
    }
    fn uvarint(&mut self) -> Result<u32, GroupRecordError> {
        let mut v: u32 = 0;
        for i in 0..5 {
            self.need(1)?;
            let b = self.0.get_u8();
            if i == 4 && b > 0x0f {
                return Err(GroupRecordError("unsigned varint overflows 32 bits".into()));
            }
            v |= u32::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(GroupRecordError("unsigned varint overflows 32 bits".into()))
    }
    /// A compact length: `None` for null (0 on the wire), else the length, which cannot
    /// exceed the bytes left when each element takes at least `min_element_size` bytes.
    fn compact_len(&mut self, min_element_size: usize) -> Result<Option<usize>, GroupRecordError> {
        let n = self.uvarint()?;
        if n == 0 {
            return Ok(None);
        }
        let len = (n - 1) as usize;
        if len.saturating_mul(min_element_size) > self.0.len() {
            return Err(GroupRecordError("truncated".into()));
        }
        Ok(Some(len))
    }
    fn compact_array_len(&mut self, min_element_size: usize) -> Result<usize, GroupRecordError> {
        self.compact_len(min_element_size)?
            .ok_or_else(|| GroupRecordError("null array".into()))
    }
    fn compact_nullable_str(&mut self) -> Result<Option<String>, GroupRecordError> {
        let Some(len) = self.compact_len(1)? else {
            return Ok(None);
        };
        let s = self.take(len)?;
        String::from_utf8(s.to_vec())
            .map(Some)
            .map_err(|_| GroupRecordError("invalid utf-8".into()))
    }
    fn compact_str(&mut self) -> Result<String, GroupRecordError> {
        self.compact_nullable_str()?
            .ok_or_else(|| GroupRecordError("null string".into()))
    }
    fn compact_bytes(&mut self) -> Result<Bytes, GroupRecordError> {
        let len = self
            .compact_len(1)?
            .ok_or_else(|| GroupRecordError("null bytes".into()))?;
        Ok(Bytes::copy_from_slice(self.take(len)?))
    }
    fn uuid(&mut self) -> Result<Uuid, GroupRecordError> {
        let b = self.take(16)?;
        let mut id = [0u8; 16];
        id.copy_from_slice(b);
        Ok(Uuid::from_bytes(id))
    }
    /// Reads a tagged-field section, handing each field's payload to `field`; payloads of
    /// tags it does not know are skipped, as Kafka keeps them only as opaque bytes.
    fn tagged_fields(
        &mut self,
        mut field: impl FnMut(u32, &mut Reader<'_>) -> Result<(), GroupRecordError>,
    ) -> Result<(), GroupRecordError> {
        let count = self.uvarint()?;
        for _ in 0..count {
            let tag = self.uvarint()?;
            let size = self.uvarint()? as usize;
            let mut payload = Reader(self.take(size)?);
            field(tag, &mut payload)?;
        }
        Ok(())
    }
    fn skip_tagged_fields(&mut self) -> Result<(), GroupRecordError> {
        self.tagged_fields(|_, _| Ok(()))
    }
    fn value_version(&mut self, name: &str) -> Result<(), GroupRecordError> {
        match self.i16()? {
            CONSUMER_GROUP_VALUE_VERSION => Ok(()),
            v => Err(GroupRecordError(format!("{name} v{v}"))),
        }
    }
    fn topic_partitions(&mut self) -> Result<Vec<(Uuid, Vec<i32>)>, GroupRecordError> {
        // An entry is at least a uuid, an empty array and an empty tagged-field section.
        let count = self.compact_array_len(18)?;
        let mut topics = Vec::with_capacity(count);
        for _ in 0..count {
            let topic_id = self.uuid()?;
            let n = self.compact_array_len(4)?;
            let mut partitions = Vec::with_capacity(n);
            for _ in 0..n {
                partitions.push(self.i32()?);
            }
            // Tag 0 is KIP-1251's `AssignmentEpochs`, which kraftd does not keep.
            self.skip_tagged_fields()?;
            topics.push((topic_id, partitions));
        }
        Ok(topics)
    }
    fn bytes(&mut self) -> Result<Bytes, GroupRecordError> {
        let len = self.i32()?;
        if len < 0 {
            return Ok(Bytes::new());
        }
        self.need(len as usize)?;
        let (b, rest) = self.0.split_at(len as usize);
        self.0 = rest;
        Ok(Bytes::copy_from_slice(b))
    }
}

impl GroupRecordKey {
    pub fn group(&self) -> &str {
        match self {
            GroupRecordKey::Offset { group, .. }
            | GroupRecordKey::Group { group }
            | GroupRecordKey::ConsumerGroupMetadata { group }
            | GroupRecordKey::ConsumerGroupMemberMetadata { group, .. }
            | GroupRecordKey::ConsumerGroupTargetAssignmentMetadata { group }
            | GroupRecordKey::ConsumerGroupTargetAssignmentMember { group, .. }
            | GroupRecordKey::ConsumerGroupCurrentMemberAssignment { group, .. } => group,
        }
    }

    /// Whether this is a classic-protocol record (offset commit or classic group metadata)
    /// rather than a KIP-848 consumer-group record.
    pub fn is_classic(&self) -> bool {
        matches!(
            self,
            GroupRecordKey::Offset { .. } | GroupRecordKey::Group { .. }
        )
    }

    pub fn encode(&self) -> Bytes {
        let mut buf = BytesMut::new();
        match self {
            GroupRecordKey::Offset {
                group,
                topic,
                partition,
            } => {
                buf.put_i16(OFFSET_KEY_VERSION);
                put_str(&mut buf, group);
                put_str(&mut buf, topic);
                buf.put_i32(*partition);
            }
            GroupRecordKey::Group { group } => {
                buf.put_i16(GROUP_KEY_VERSION);
                put_str(&mut buf, group);
            }
            GroupRecordKey::ConsumerGroupMetadata { group } => {
                buf.put_i16(CONSUMER_GROUP_METADATA_KEY);
                put_str(&mut buf, group);
            }
            GroupRecordKey::ConsumerGroupMemberMetadata { group, member_id } => {
                buf.put_i16(CONSUMER_GROUP_MEMBER_METADATA_KEY);
                put_str(&mut buf, group);
                put_str(&mut buf, member_id);
            }
            GroupRecordKey::ConsumerGroupTargetAssignmentMetadata { group } => {
                buf.put_i16(CONSUMER_GROUP_TARGET_ASSIGNMENT_METADATA_KEY);
                put_str(&mut buf, group);
            }
            GroupRecordKey::ConsumerGroupTargetAssignmentMember { group, member_id } => {
                buf.put_i16(CONSUMER_GROUP_TARGET_ASSIGNMENT_MEMBER_KEY);
                put_str(&mut buf, group);
                put_str(&mut buf, member_id);
            }
            GroupRecordKey::ConsumerGroupCurrentMemberAssignment { group, member_id } => {
                buf.put_i16(CONSUMER_GROUP_CURRENT_MEMBER_ASSIGNMENT_KEY);
                put_str(&mut buf, group);
                put_str(&mut buf, member_id);
            }
        }
        buf.freeze()
    }

    /// `Ok(None)` for record types kraftd does not use (the deprecated
    /// ConsumerGroupPartitionMetadata, 4; share and streams groups, 9+), which it skips.
    pub fn decode(bytes: &[u8]) -> Result<Option<GroupRecordKey>, GroupRecordError> {
        let mut r = Reader(bytes);
        let key = match r.i16()? {
            0 | 1 => GroupRecordKey::Offset {
                group: r.str()?,
                topic: r.str()?,
                partition: r.i32()?,
            },
            2 => GroupRecordKey::Group { group: r.str()? },
            CONSUMER_GROUP_METADATA_KEY => {
                GroupRecordKey::ConsumerGroupMetadata { group: r.str()? }
            }
            CONSUMER_GROUP_MEMBER_METADATA_KEY => GroupRecordKey::ConsumerGroupMemberMetadata {
                group: r.str()?,
                member_id: r.str()?,
            },
            CONSUMER_GROUP_TARGET_ASSIGNMENT_METADATA_KEY => {
                GroupRecordKey::ConsumerGroupTargetAssignmentMetadata { group: r.str()? }
            }
            CONSUMER_GROUP_TARGET_ASSIGNMENT_MEMBER_KEY => {
                GroupRecordKey::ConsumerGroupTargetAssignmentMember {
                    group: r.str()?,
                    member_id: r.str()?,
                }
            }
            CONSUMER_GROUP_CURRENT_MEMBER_ASSIGNMENT_KEY => {
                GroupRecordKey::ConsumerGroupCurrentMemberAssignment {
                    group: r.str()?,
                    member_id: r.str()?,
                }
            }
            _ => return Ok(None),
        };
        Ok(Some(key))
    }
}

impl OffsetValue {
    pub fn encode(&self) -> Bytes {
        let mut buf = BytesMut::new();
        buf.put_i16(OFFSET_VALUE_VERSION);
        buf.put_i64(self.offset);
        buf.put_i32(self.leader_epoch);
        put_str(&mut buf, &self.metadata);
        buf.put_i64(self.commit_timestamp);
        buf.freeze()
    }

    pub fn decode(bytes: &[u8]) -> Result<OffsetValue, GroupRecordError> {
        let mut r = Reader(bytes);
        let version = r.i16()?;
        let offset = r.i64()?;
        let leader_epoch = if version >= 3 { r.i32()? } else { -1 };
        let metadata = r.str()?;
        let commit_timestamp = r.i64()?;
        Ok(OffsetValue {
            offset,
            leader_epoch,
            metadata,
            commit_timestamp,
        })
    }
}

impl GroupValue {
    pub fn encode(&self) -> Bytes {
        let mut buf = BytesMut::new();
        buf.put_i16(GROUP_VALUE_VERSION);
        put_str(&mut buf, &self.protocol_type);
        buf.put_i32(self.generation);
        put_nullable_str(&mut buf, self.protocol.as_deref());
        put_nullable_str(&mut buf, self.leader.as_deref());
        buf.put_i64(self.current_state_timestamp);
        buf.put_i32(self.members.len() as i32);
        for m in &self.members {
            put_str(&mut buf, &m.member_id);
            put_nullable_str(&mut buf, m.group_instance_id.as_deref());
            put_str(&mut buf, &m.client_id);
            put_str(&mut buf, &m.client_host);
            buf.put_i32(m.rebalance_timeout);
            buf.put_i32(m.session_timeout);
            put_bytes(&mut buf, &m.subscription);
            put_bytes(&mut buf, &m.assignment);
        }
        buf.freeze()
    }

    pub fn decode(bytes: &[u8]) -> Result<GroupValue, GroupRecordError> {
        let mut r = Reader(bytes);
        let version = r.i16()?;
        if !(0..=3).contains(&version) {
            return Err(GroupRecordError(format!("GroupMetadataValue v{version}")));
        }
        let protocol_type = r.str()?;
        let generation = r.i32()?;
        let protocol = r.nullable_str()?;
        let leader = r.nullable_str()?;
        let current_state_timestamp = if version >= 2 { r.i64()? } else { -1 };
        let count = r.i32()?;
        if count < 0 || count as usize > r.0.len() {
            return Err(GroupRecordError("bad member count".into()));
        }
        let mut members = Vec::with_capacity(count as usize);
        for _ in 0..count {
            let member_id = r.str()?;
            let group_instance_id = if version >= 3 {
                r.nullable_str()?
            } else {
                None
            };
            let client_id = r.str()?;
            let client_host = r.str()?;
            let rebalance_timeout = if version >= 1 { r.i32()? } else { -1 };
            let session_timeout = r.i32()?;
            let subscription = r.bytes()?;
            let assignment = r.bytes()?;
            members.push(MemberValue {
                member_id,
                group_instance_id,
                client_id,
                client_host,
                rebalance_timeout,
                session_timeout,
                subscription,
                assignment,
            });
        }
        Ok(GroupValue {
            protocol_type,
            generation,
            protocol,
            leader,
            current_state_timestamp,
            members,
        })
    }
}

fn tagged_i64(tag: u32, v: i64) -> (u32, Bytes) {
    (tag, Bytes::copy_from_slice(&v.to_be_bytes()))
}

impl ConsumerGroupMetadataValue {
    pub fn encode(&self) -> Bytes {
        let mut buf = BytesMut::new();
        buf.put_i16(CONSUMER_GROUP_VALUE_VERSION);
        buf.put_i32(self.epoch);
        let mut tagged = Vec::new();
        if self.metadata_hash != 0 {
            tagged.push(tagged_i64(0, self.metadata_hash));
        }
        if self.creation_time_ms != -1 {
            tagged.push(tagged_i64(1, self.creation_time_ms));
        }
        put_tagged_fields(&mut buf, &tagged);
        buf.freeze()
    }

    pub fn decode(bytes: &[u8]) -> Result<ConsumerGroupMetadataValue, GroupRecordError> {
        let mut r = Reader(bytes);
        r.value_version("ConsumerGroupMetadataValue")?;
        let mut v = ConsumerGroupMetadataValue {
            epoch: r.i32()?,
            ..Default::default()
        };
        r.tagged_fields(|tag, p| {
            match tag {
                0 => v.metadata_hash = p.i64()?,
                1 => v.creation_time_ms = p.i64()?,
                _ => {}
            }
            Ok(())
        })?;
        Ok(v)
    }
}

impl ClassicMemberMetadata {
    fn encode_into(&self, buf: &mut BytesMut) {
        buf.put_i32(self.session_timeout_ms);
        put_compact_len(buf, self.supported_protocols.len());
        for p in &self.supported_protocols {
            put_compact_str(buf, &p.name);
            put_compact_bytes(buf, &p.metadata);
            put_empty_tagged_fields(buf);
        }
        put_empty_tagged_fields(buf);
    }

    fn decode_from(r: &mut Reader<'_>) -> Result<ClassicMemberMetadata, GroupRecordError> {
        let session_timeout_ms = r.i32()?;
        // A protocol is at least two compact lengths and a tagged-field count.
        let count = r.compact_array_len(3)?;
        let mut supported_protocols = Vec::with_capacity(count);
        for _ in 0..count {
            let name = r.compact_str()?;
            let metadata = r.compact_bytes()?;
            r.skip_tagged_fields()?;
            supported_protocols.push(ClassicProtocol { name, metadata });
        }
        r.skip_tagged_fields()?;
        Ok(ClassicMemberMetadata {
            session_timeout_ms,
            supported_protocols,
        })
    }
}

impl ConsumerGroupMemberMetadataValue {
    pub fn encode(&self) -> Bytes {
        let mut buf = BytesMut::new();
        buf.put_i16(CONSUMER_GROUP_VALUE_VERSION);
        put_compact_nullable_str(&mut buf, self.instance_id.as_deref());
        put_compact_nullable_str(&mut buf, self.rack_id.as_deref());
        put_compact_str(&mut buf, &self.client_id);
        put_compact_str(&mut buf, &self.client_host);
        put_compact_len(&mut buf, self.subscribed_topic_names.len());
        for name in &self.subscribed_topic_names {
            put_compact_str(&mut buf, name);
        }
        put_compact_nullable_str(&mut buf, self.subscribed_topic_regex.as_deref());
        buf.put_i32(self.rebalance_timeout_ms);
        put_compact_nullable_str(&mut buf, self.server_assignor.as_deref());
        let mut tagged = Vec::new();
        if let Some(classic) = &self.classic_member_metadata {
            // A tagged nullable struct: a varint 1 (present), then the struct.
            let mut payload = BytesMut::new();
            put_uvarint(&mut payload, 1);
            classic.encode_into(&mut payload);
            tagged.push((0, payload.freeze()));
        }
        put_tagged_fields(&mut buf, &tagged);
        buf.freeze()
    }

    pub fn decode(bytes: &[u8]) -> Result<ConsumerGroupMemberMetadataValue, GroupRecordError> {
        let mut r = Reader(bytes);
        r.value_version("ConsumerGroupMemberMetadataValue")?;
        let instance_id = r.compact_nullable_str()?;
        let rack_id = r.compact_nullable_str()?;
        let client_id = r.compact_str()?;
        let client_host = r.compact_str()?;
        let count = r.compact_array_len(1)?;
        let mut subscribed_topic_names = Vec::with_capacity(count);
        for _ in 0..count {
            subscribed_topic_names.push(r.compact_str()?);
        }
        let subscribed_topic_regex = r.compact_nullable_str()?;
        let rebalance_timeout_ms = r.i32()?;
        let server_assignor = r.compact_nullable_str()?;
        let mut classic_member_metadata = None;
        r.tagged_fields(|tag, p| {
            if tag == 0 {
                classic_member_metadata = if p.uvarint()? == 0 {
                    None
                } else {
                    Some(ClassicMemberMetadata::decode_from(p)?)
                };
            }
            Ok(())
        })?;
        Ok(ConsumerGroupMemberMetadataValue {
            instance_id,
            rack_id,
            client_id,
            client_host,
            subscribed_topic_names,
            subscribed_topic_regex,
            rebalance_timeout_ms,
            server_assignor,
            classic_member_metadata,
        })
    }
}

impl ConsumerGroupTargetAssignmentMetadataValue {
    pub fn encode(&self) -> Bytes {
        let mut buf = BytesMut::new();
        buf.put_i16(CONSUMER_GROUP_VALUE_VERSION);
        buf.put_i32(self.assignment_epoch);
        let mut tagged = Vec::new();
        if self.assignment_timestamp_ms != 0 {
            tagged.push(tagged_i64(0, self.assignment_timestamp_ms));
        }
        put_tagged_fields(&mut buf, &tagged);
        buf.freeze()
    }

    pub fn decode(
        bytes: &[u8],
    ) -> Result<ConsumerGroupTargetAssignmentMetadataValue, GroupRecordError> {
        let mut r = Reader(bytes);
        r.value_version("ConsumerGroupTargetAssignmentMetadataValue")?;
        let mut v = ConsumerGroupTargetAssignmentMetadataValue {
            assignment_epoch: r.i32()?,
            ..Default::default()
        };
        r.tagged_fields(|tag, p| {
            if tag == 0 {
                v.assignment_timestamp_ms = p.i64()?;
            }
            Ok(())
        })?;
        Ok(v)
    }
}

impl ConsumerGroupTargetAssignmentMemberValue {
    pub fn encode(&self) -> Bytes {
        let mut buf = BytesMut::new();
        buf.put_i16(CONSUMER_GROUP_VALUE_VERSION);
        put_topic_partitions(&mut buf, &self.topic_partitions);
        put_empty_tagged_fields(&mut buf);
        buf.freeze()
    }

    pub fn decode(
        bytes: &[u8],
    ) -> Result<ConsumerGroupTargetAssignmentMemberValue, GroupRecordError> {
        let mut r = Reader(bytes);
        r.value_version("ConsumerGroupTargetAssignmentMemberValue")?;
        let topic_partitions = r.topic_partitions()?;
        r.skip_tagged_fields()?;
        Ok(ConsumerGroupTargetAssignmentMemberValue { topic_partitions })
    }
}

impl ConsumerGroupCurrentMemberAssignmentValue {
    pub fn encode(&self) -> Bytes {
        let mut buf = BytesMut::new();
        buf.put_i16(CONSUMER_GROUP_VALUE_VERSION);
        buf.put_i32(self.member_epoch);
        buf.put_i32(self.previous_member_epoch);
        buf.put_i8(self.state);
        put_topic_partitions(&mut buf, &self.assigned_partitions);
        put_topic_partitions(&mut buf, &self.partitions_pending_revocation);
        put_empty_tagged_fields(&mut buf);
        buf.freeze()
    }

    pub fn decode(
        bytes: &[u8],
    ) -> Result<ConsumerGroupCurrentMemberAssignmentValue, GroupRecordError> {
        let mut r = Reader(bytes);
        r.value_version("ConsumerGroupCurrentMemberAssignmentValue")?;
        let member_epoch = r.i32()?;
        let previous_member_epoch = r.i32()?;
        let state = r.i8()?;
        let assigned_partitions = r.topic_partitions()?;
        let partitions_pending_revocation = r.topic_partitions()?;
        r.skip_tagged_fields()?;
        Ok(ConsumerGroupCurrentMemberAssignmentValue {
            member_epoch,
            previous_member_epoch,
            state,
            assigned_partitions,
            partitions_pending_revocation,
        })
    }
}

/// Java's `String.hashCode`, which Kafka uses to map a group to its `__consumer_offsets`
/// partition (`Utils.abs(groupId.hashCode) % offsets.topic.num.partitions`).
pub fn java_string_hash(s: &str) -> i32 {
    s.encode_utf16()
        .fold(0i32, |h, c| h.wrapping_mul(31).wrapping_add(c as i32))
}

pub fn partition_for_group(group: &str, partitions: i32) -> i32 {
    // Kafka's Utils.abs maps i32::MIN to 0 rather than overflowing.
    let h = java_string_hash(group);
    let abs = if h == i32::MIN { 0 } else { h.abs() };
    abs % partitions.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offset_records_are_byte_exact() {
        let key = GroupRecordKey::Offset {
            group: "g".into(),
            topic: "t".into(),
            partition: 3,
        };
        assert_eq!(
            &key.encode()[..],
            &[0, 1, 0, 1, b'g', 0, 1, b't', 0, 0, 0, 3]
        );
        let value = OffsetValue {
            offset: 42,
            leader_epoch: -1,
            metadata: "".into(),
            commit_timestamp: 7,
        };
        assert_eq!(
            &value.encode()[..],
            &[
                0, 3, 0, 0, 0, 0, 0, 0, 0, 42, 255, 255, 255, 255, 0, 0, 0, 0, 0, 0, 0, 0, 0, 7
            ]
        );
        assert_eq!(GroupRecordKey::decode(&key.encode()).unwrap(), Some(key));
        assert_eq!(OffsetValue::decode(&value.encode()).unwrap(), value);
    }

    #[test]
    fn group_value_round_trips_and_rejects_truncation() {
        let v = GroupValue {
            protocol_type: "consumer".into(),
            generation: 5,
            protocol: Some("range".into()),
            leader: Some("m-1".into()),
            current_state_timestamp: 99,
            members: vec![MemberValue {
                member_id: "m-1".into(),
                group_instance_id: Some("i-1".into()),
                client_id: "c".into(),
                client_host: "/127.0.0.1".into(),
                rebalance_timeout: 300_000,
                session_timeout: 45_000,
                subscription: Bytes::from_static(b"sub"),
                assignment: Bytes::from_static(b"asg"),
            }],
        };
        let bytes = v.encode();
        assert_eq!(GroupValue::decode(&bytes).unwrap(), v);
        for cut in 0..bytes.len() {
            assert!(GroupValue::decode(&bytes[..cut]).is_err(), "cut at {cut}");
        }
    }

    fn topic(n: u8) -> Uuid {
        Uuid::from_bytes([n; 16])
    }

    #[test]
    fn consumer_group_keys_are_byte_exact_and_round_trip() {
        let key = GroupRecordKey::ConsumerGroupMemberMetadata {
            group: "g".into(),
            member_id: "m".into(),
        };
        assert_eq!(&key.encode()[..], &[0, 5, 0, 1, b'g', 0, 1, b'm']);
        let keys = [
            GroupRecordKey::ConsumerGroupMetadata { group: "g".into() },
            key,
            GroupRecordKey::ConsumerGroupTargetAssignmentMetadata { group: "g".into() },
            GroupRecordKey::ConsumerGroupTargetAssignmentMember {
                group: "g".into(),
                member_id: "m".into(),
            },
            GroupRecordKey::ConsumerGroupCurrentMemberAssignment {
                group: "g".into(),
                member_id: "m".into(),
            },
        ];
        for (key, record_type) in keys.into_iter().zip([3, 5, 6, 7, 8]) {
            let bytes = key.encode();
            assert_eq!(&bytes[..2], &[0, record_type]);
            assert_eq!(key.group(), "g");
            assert!(!key.is_classic());
            assert_eq!(GroupRecordKey::decode(&bytes).unwrap(), Some(key));
            for cut in 0..bytes.len() {
                assert!(
                    GroupRecordKey::decode(&bytes[..cut]).is_err(),
                    "cut at {cut}"
                );
            }
        }
        // The deprecated ConsumerGroupPartitionMetadata key and share-group keys are skipped.
        assert_eq!(GroupRecordKey::decode(&[0, 4, 0, 1, b'g']).unwrap(), None);
        assert_eq!(GroupRecordKey::decode(&[0, 10, 0, 1, b'g']).unwrap(), None);
    }

    #[test]
    fn member_metadata_value_is_byte_exact() {
        let v = ConsumerGroupMemberMetadataValue {
            instance_id: None,
            rack_id: Some("r".into()),
            client_id: "c".into(),
            client_host: "h".into(),
            subscribed_topic_names: vec!["t".into()],
            subscribed_topic_regex: None,
            rebalance_timeout_ms: 300,
            server_assignor: Some("u".into()),
            classic_member_metadata: None,
        };
        let body = [
            0, 0, // version
            0, // instance id: null
            2, b'r', 2, b'c', 2, b'h', // rack, client id, client host
            2, 2, b't', // one subscribed topic
            0,    // regex: null
            0, 0, 1, 0x2c, // rebalance timeout 300
            2, b'u', // server assignor
        ];
        assert_eq!(&v.encode()[..], &[&body[..], &[0]].concat()[..]);
        assert_eq!(
            ConsumerGroupMemberMetadataValue::decode(&v.encode()).unwrap(),
            v
        );

        let classic = ConsumerGroupMemberMetadataValue {
            classic_member_metadata: Some(ClassicMemberMetadata {
                session_timeout_ms: 45_000,
                supported_protocols: vec![ClassicProtocol {
                    name: "range".into(),
                    metadata: Bytes::from_static(&[1, 2]),
                }],
            }),
            ..v
        };
        let tagged = [
            1, 0, 17, // one tagged field: tag 0, 17 bytes
            1,  // present
            0, 0, 0xaf, 0xc8, // session timeout 45000
            2, 6, b'r', b'a', b'n', b'g', b'e', 3, 1, 2, 0, // one protocol
            0, // the struct's tagged fields
        ];
        assert_eq!(
            &classic.encode()[..],
            &[&body[..], &tagged[..]].concat()[..]
        );
        let bytes = classic.encode();
        assert_eq!(
            ConsumerGroupMemberMetadataValue::decode(&bytes).unwrap(),
            classic
        );
        for cut in 0..bytes.len() {
            assert!(
                ConsumerGroupMemberMetadataValue::decode(&bytes[..cut]).is_err(),
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn current_member_assignment_value_is_byte_exact() {
        let v = ConsumerGroupCurrentMemberAssignmentValue {
            member_epoch: 5,
            previous_member_epoch: 4,
            state: 0,
            assigned_partitions: vec![(topic(0xab), vec![0, 2])],
            partitions_pending_revocation: vec![],
        };
        let mut expected = vec![0, 0, 0, 0, 0, 5, 0, 0, 0, 4, 0, 2];
        expected.extend([0xab; 16]);
        expected.extend([3, 0, 0, 0, 0, 0, 0, 0, 2, 0]); // partitions [0, 2], no tags
        expected.extend([1, 0]); // nothing pending revocation, no tags
        let bytes = v.encode();
        assert_eq!(&bytes[..], &expected[..]);
        assert_eq!(
            ConsumerGroupCurrentMemberAssignmentValue::decode(&bytes).unwrap(),
            v
        );

        // KIP-1251's AssignmentEpochs (tag 0 of each topic) is read past, not kept.
        let mut with_epochs = expected[..expected.len() - 3].to_vec();
        with_epochs.extend([1, 0, 9, 3, 0, 0, 0, 5, 0, 0, 0, 5]);
        with_epochs.extend([1, 0]);
        assert_eq!(
            ConsumerGroupCurrentMemberAssignmentValue::decode(&with_epochs).unwrap(),
            v
        );
    }

    #[test]
    fn epoch_values_write_tagged_fields_only_when_not_default() {
        let plain = ConsumerGroupMetadataValue {
            epoch: 7,
            ..Default::default()
        };
        assert_eq!(&plain.encode()[..], &[0, 0, 0, 0, 0, 7, 0]);
        let hashed = ConsumerGroupMetadataValue {
            metadata_hash: 1,
            ..plain.clone()
        };
        assert_eq!(
            &hashed.encode()[..],
            &[0, 0, 0, 0, 0, 7, 1, 0, 8, 0, 0, 0, 0, 0, 0, 0, 1]
        );
        let target = ConsumerGroupTargetAssignmentMetadataValue {
            assignment_epoch: 12,
            assignment_timestamp_ms: 0,
        };
        assert_eq!(&target.encode()[..], &[0, 0, 0, 0, 0, 12, 0]);
        // An unknown tag (5, two bytes) is skipped.
        assert_eq!(
            ConsumerGroupTargetAssignmentMetadataValue::decode(&[0, 0, 0, 0, 0, 12, 1, 5, 2, 9, 9])
                .unwrap(),
            target
        );
    }

    #[test]
    fn consumer_group_values_round_trip_and_reject_truncation() {
        fn check<T: PartialEq + std::fmt::Debug>(
            v: T,
            bytes: Bytes,
            decode: fn(&[u8]) -> Result<T, GroupRecordError>,
        ) {
            assert_eq!(decode(&bytes).unwrap(), v);
            for cut in 0..bytes.len() {
                assert!(decode(&bytes[..cut]).is_err(), "cut at {cut} of {v:?}");
            }
            // Only version 0 exists.
            let mut v1 = bytes.to_vec();
            v1[1] = 1;
            assert!(decode(&v1).is_err());
        }
        let group = ConsumerGroupMetadataValue {
            epoch: 3,
            metadata_hash: -5,
            creation_time_ms: 1_700_000_000_000,
        };
        check(
            group.clone(),
            group.encode(),
            ConsumerGroupMetadataValue::decode,
        );
        let member = ConsumerGroupMemberMetadataValue {
            instance_id: Some("i".into()),
            client_id: "c".into(),
            client_host: "/127.0.0.1".into(),
            subscribed_topic_regex: Some("t.*".into()),
            ..Default::default()
        };
        check(
            member.clone(),
            member.encode(),
            ConsumerGroupMemberMetadataValue::decode,
        );
        let meta = ConsumerGroupTargetAssignmentMetadataValue {
            assignment_epoch: 9,
            assignment_timestamp_ms: 1_700_000_000_000,
        };
        check(
            meta.clone(),
            meta.encode(),
            ConsumerGroupTargetAssignmentMetadataValue::decode,
        );
        let target = ConsumerGroupTargetAssignmentMemberValue {
            topic_partitions: vec![(topic(1), vec![0, 1, 2]), (topic(2), vec![])],
        };
        check(
            target.clone(),
            target.encode(),
            ConsumerGroupTargetAssignmentMemberValue::decode,
        );
        let current = ConsumerGroupCurrentMemberAssignmentValue {
            member_epoch: 10,
            previous_member_epoch: 9,
            state: 1,
            assigned_partitions: vec![(topic(1), vec![0])],
            partitions_pending_revocation: vec![(topic(2), vec![3, 4])],
        };
        check(
            current.clone(),
            current.encode(),
            ConsumerGroupCurrentMemberAssignmentValue::decode,
        );
    }

    #[test]
    fn hostile_lengths_are_errors_not_allocations() {
        // An array claiming 2^28 topics, and a varint longer than 5 bytes.
        let huge = [0, 0, 0xff, 0xff, 0xff, 0xff, 0x01];
        assert!(ConsumerGroupTargetAssignmentMemberValue::decode(&huge).is_err());
        let long = [0, 0, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01];
        assert!(ConsumerGroupTargetAssignmentMemberValue::decode(&long).is_err());
        // A tagged field whose size runs past the end.
        assert!(ConsumerGroupMetadataValue::decode(&[0, 0, 0, 0, 0, 1, 1, 0, 8, 0]).is_err());
    }

    #[test]
    fn group_partition_matches_kafka() {
        // "my-group".hashCode() in Java is -1906497762; abs % 50 = 12.
        assert_eq!(java_string_hash("my-group"), -1_906_497_762);
        assert_eq!(partition_for_group("my-group", 50), 12);
        assert_eq!(java_string_hash(""), 0);
    }
}
