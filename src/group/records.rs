//! The records of `__consumer_offsets`, in Apache Kafka's key/value schemas (OffsetCommitKey v1 /
//! OffsetCommitValue v3, GroupMetadataKey v2 / GroupMetadataValue v3): a 2-byte version then the
//! classic (non-flexible) encoding. A null value is a tombstone.

use bytes::{Buf, BufMut, Bytes, BytesMut};

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

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("malformed __consumer_offsets record: {0}")]
pub struct GroupRecordError(pub String);

const OFFSET_KEY_VERSION: i16 = 1;
const GROUP_KEY_VERSION: i16 = 2;
const OFFSET_VALUE_VERSION: i16 = 3;
const GROUP_VALUE_VERSION: i16 = 3;

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
            GroupRecordKey::Offset { group, .. } | GroupRecordKey::Group { group } => group,
        }
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
        }
        buf.freeze()
    }

    /// `Ok(None)` for key versions kraftd does not use (e.g. KIP-848's, 3+), which it skips.
    pub fn decode(bytes: &[u8]) -> Result<Option<GroupRecordKey>, GroupRecordError> {
        let mut r = Reader(bytes);
        match r.i16()? {
            0 | 1 => Ok(Some(GroupRecordKey::Offset {
                group: r.str()?,
                topic: r.str()?,
                partition: r.i32()?,
            })),
            2 => Ok(Some(GroupRecordKey::Group { group: r.str()? })),
            _ => Ok(None),
        }
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

    #[test]
    fn group_partition_matches_kafka() {
        // "my-group".hashCode() in Java is -1906497762; abs % 50 = 12.
        assert_eq!(java_string_hash("my-group"), -1_906_497_762);
        assert_eq!(partition_for_group("my-group", 50), 12);
        assert_eq!(java_string_hash(""), 0);
    }
}
