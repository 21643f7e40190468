//! Apache Kafka's KRaft metadata records (`metadata/src/main/resources/common/metadata/*.json`) and
//! their byte-exact codec, so that `__cluster_metadata-0` written by kraftd reads back in Kafka's
//! `kafka-metadata-shell` and `kafka-dump-log --cluster-metadata-decoder`, and vice versa.
//!
//! A record value is framed as in Kafka's `AbstractApiMessageSerde`: unsigned varint frame version
//! (always 1), unsigned varint record type (the schema's apiKey), unsigned varint version, then the
//! body in Kafka's flexible encoding (compact strings and arrays, 16-byte uuids, tagged fields).
//!
//! This module owns the schemas and the codec only. It must not interpret records: folding them
//! into an image is the job of the delta/image code, and the KRaft control records (leader change,
//! snapshot header/footer, voters) live with the raft log.

use std::fmt;

use uuid::Uuid;

/// Frame version written before every record; Kafka rejects 0 (the 2.8 preview) and anything else.
pub const FRAME_VERSION: u16 = 1;

/// Kafka's generated readers refuse strings longer than this, and its writers refuse to write them.
pub const MAX_STRING_LEN: usize = 0x7fff;

/// `ConfigRecord::resource_type` codes: Kafka's `ConfigResource.Type` ids.
pub mod config_resource_type {
    pub const UNKNOWN: i8 = 0;
    pub const TOPIC: i8 = 2;
    pub const BROKER: i8 = 4;
    pub const BROKER_LOGGER: i8 = 8;
    pub const CLIENT_METRICS: i8 = 16;
    pub const GROUP: i8 = 32;
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MetadataRecordError {
    #[error("metadata record truncated while reading {what}")]
    Truncated { what: &'static str },
    #[error("unsigned varint longer than 5 bytes while reading {what}")]
    VarintTooLong { what: &'static str },
    #[error("value {value} for metadata record {what} is larger than 32767")]
    FrameValueTooLarge { what: &'static str, value: u32 },
    #[error("unsupported metadata record frame version {0} (only frame version 1 is supported)")]
    UnsupportedFrameVersion(u16),
    #[error("unknown metadata record type {0}")]
    UnknownRecordType(u16),
    #[error("{record} has no version {version} (valid versions are {lowest}-{highest})")]
    UnsupportedVersion {
        record: &'static str,
        version: i16,
        lowest: i16,
        highest: i16,
    },
    #[error("non-nullable field {field} was serialized as null")]
    UnexpectedNull { field: &'static str },
    #[error("string field {field} has length {length}, over the limit of 32767 bytes")]
    StringTooLong { field: &'static str, length: usize },
    #[error("string field {field} is not valid UTF-8")]
    InvalidUtf8 { field: &'static str },
    #[error("tag {tag} is not valid for version {version}")]
    TagNotValidForVersion { tag: u32, version: i16 },
    #[error("tagged field {tag} declared {size} bytes but its value used {used}")]
    TaggedFieldSizeMismatch { tag: u32, size: usize, used: usize },
    #[error("found {0} byte(s) of garbage after the metadata record")]
    TrailingBytes(usize),
    #[error("attempted to write a non-default {field} at version {version}")]
    NonDefaultFieldUnsupported { field: &'static str, version: i16 },
}

type Result<T> = std::result::Result<T, MetadataRecordError>;

// ---------------------------------------------------------------------------------------------
// Record structs, one per schema, at the newest version. Defaults are the schema's defaults,
// which are also the values a field takes when an older version does not carry it.
// ---------------------------------------------------------------------------------------------

/// TopicRecord (apiKey 2, versions 0).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TopicRecord {
    pub name: String,
    pub topic_id: Uuid,
}

/// PartitionRecord (apiKey 3, versions 0-2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionRecord {
    pub partition_id: i32,
    pub topic_id: Uuid,
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
    pub removing_replicas: Vec<i32>,
    pub adding_replicas: Vec<i32>,
    pub leader: i32,
    /// Tag 0. 1 if the partition is recovering from an unclean leader election.
    pub leader_recovery_state: i8,
    pub leader_epoch: i32,
    pub partition_epoch: i32,
    /// Version 1+ (KIP-858): the log directory of each replica, in `replicas` order.
    pub directories: Vec<Uuid>,
    /// Version 2+, tag 1 (KIP-966).
    pub eligible_leader_replicas: Option<Vec<i32>>,
    /// Version 2+, tag 2 (KIP-966).
    pub last_known_elr: Option<Vec<i32>>,
}

impl Default for PartitionRecord {
    fn default() -> Self {
        PartitionRecord {
            partition_id: -1,
            topic_id: Uuid::nil(),
            replicas: Vec::new(),
            isr: Vec::new(),
            removing_replicas: Vec::new(),
            adding_replicas: Vec::new(),
            leader: -1,
            leader_recovery_state: 0,
            leader_epoch: -1,
            partition_epoch: -1,
            directories: Vec::new(),
            eligible_leader_replicas: None,
            last_known_elr: None,
        }
    }
}

/// ConfigRecord (apiKey 4, versions 0). `value: None` deletes the key.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ConfigRecord {
    /// One of [`config_resource_type`].
    pub resource_type: i8,
    pub resource_name: String,
    pub name: String,
    pub value: Option<String>,
}

/// PartitionChangeRecord (apiKey 5, versions 0-2). Every field but the partition's identity is
/// tagged; `None` (or the sentinel for scalars) means "did not change".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionChangeRecord {
    pub partition_id: i32,
    pub topic_id: Uuid,
    /// Tag 0.
    pub isr: Option<Vec<i32>>,
    /// Tag 1. [`Self::NO_LEADER_CHANGE`], [`Self::NO_LEADER`] or the new leader.
    pub leader: i32,
    /// Tag 2.
    pub replicas: Option<Vec<i32>>,
    /// Tag 3.
    pub removing_replicas: Option<Vec<i32>>,
    /// Tag 4.
    pub adding_replicas: Option<Vec<i32>>,
    /// Tag 5. -1 if it did not change.
    pub leader_recovery_state: i8,
    /// Version 1+, tag 8.
    pub directories: Option<Vec<Uuid>>,
    /// Version 2+, tag 6.
    pub eligible_leader_replicas: Option<Vec<i32>>,
    /// Version 2+, tag 7.
    pub last_known_elr: Option<Vec<i32>>,
}

impl PartitionChangeRecord {
    pub const NO_LEADER: i32 = -1;
    pub const NO_LEADER_CHANGE: i32 = -2;
    pub const NO_LEADER_RECOVERY_STATE_CHANGE: i8 = -1;
}

impl Default for PartitionChangeRecord {
    fn default() -> Self {
        PartitionChangeRecord {
            partition_id: -1,
            topic_id: Uuid::nil(),
            isr: None,
            leader: Self::NO_LEADER_CHANGE,
            replicas: None,
            removing_replicas: None,
            adding_replicas: None,
            leader_recovery_state: Self::NO_LEADER_RECOVERY_STATE_CHANGE,
            directories: None,
            eligible_leader_replicas: None,
            last_known_elr: None,
        }
    }
}

/// RemoveTopicRecord (apiKey 9, versions 0). Removes the topic and all its partitions.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RemoveTopicRecord {
    pub topic_id: Uuid,
}

/// FeatureLevelRecord (apiKey 12, versions 0). Its version can never advance past 0: a log or
/// snapshot starts with one, and readers need it to know how to read the rest.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FeatureLevelRecord {
    pub name: String,
    pub feature_level: i16,
}

/// RegisterBrokerRecord (apiKey 0, versions 0-3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegisterBrokerRecord {
    pub broker_id: i32,
    /// Version 2+.
    pub is_migrating_zk_broker: bool,
    pub incarnation_id: Uuid,
    pub broker_epoch: i64,
    pub end_points: Vec<BrokerEndpoint>,
    pub features: Vec<BrokerFeature>,
    pub rack: Option<String>,
    pub fenced: bool,
    /// Version 1+.
    pub in_controlled_shutdown: bool,
    /// Version 3+, tag 0.
    pub log_dirs: Vec<Uuid>,
}

impl Default for RegisterBrokerRecord {
    fn default() -> Self {
        RegisterBrokerRecord {
            broker_id: 0,
            is_migrating_zk_broker: false,
            incarnation_id: Uuid::nil(),
            broker_epoch: 0,
            end_points: Vec::new(),
            features: Vec::new(),
            rack: None,
            fenced: true,
            in_controlled_shutdown: false,
            log_dirs: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BrokerEndpoint {
    pub name: String,
    pub host: String,
    pub port: u16,
    /// Kafka's `SecurityProtocol` id (PLAINTEXT=0, SSL=1, SASL_PLAINTEXT=2, SASL_SSL=3).
    pub security_protocol: i16,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BrokerFeature {
    pub name: String,
    pub min_supported_version: i16,
    pub max_supported_version: i16,
}

/// UnregisterBrokerRecord (apiKey 1, versions 0).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UnregisterBrokerRecord {
    pub broker_id: i32,
    pub broker_epoch: i64,
}

/// FenceBrokerRecord (apiKey 7, versions 0). The broker is removed from all ISRs.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FenceBrokerRecord {
    pub id: i32,
    pub epoch: i64,
}

/// UnfenceBrokerRecord (apiKey 8, versions 0).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UnfenceBrokerRecord {
    pub id: i32,
    pub epoch: i64,
}

/// ClientQuotaRecord (apiKey 14, versions 0).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ClientQuotaRecord {
    pub entity: Vec<EntityData>,
    pub key: String,
    pub value: f64,
    /// True removes the key; `value` is then ignored.
    pub remove: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EntityData {
    /// "user", "client-id" or "ip".
    pub entity_type: String,
    /// `None` is the default entity.
    pub entity_name: Option<String>,
}

/// ProducerIdsRecord (apiKey 15, versions 0).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProducerIdsRecord {
    pub broker_id: i32,
    pub broker_epoch: i64,
    /// The first producer id of the next block to hand out.
    pub next_producer_id: i64,
}

impl Default for ProducerIdsRecord {
    fn default() -> Self {
        ProducerIdsRecord {
            broker_id: 0,
            broker_epoch: -1,
            next_producer_id: 0,
        }
    }
}

/// BrokerRegistrationChangeRecord (apiKey 17, versions 0-2).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BrokerRegistrationChangeRecord {
    pub broker_id: i32,
    pub broker_epoch: i64,
    /// Tag 0. [`Self::FENCE`], [`Self::UNFENCE`] or [`Self::NO_CHANGE`].
    pub fenced: i8,
    /// Version 1+, tag 1. [`Self::IN_CONTROLLED_SHUTDOWN`] or [`Self::NO_CHANGE`].
    pub in_controlled_shutdown: i8,
    /// Version 2+, tag 2.
    pub log_dirs: Vec<Uuid>,
}

impl BrokerRegistrationChangeRecord {
    pub const NO_CHANGE: i8 = 0;
    pub const FENCE: i8 = 1;
    pub const UNFENCE: i8 = -1;
    pub const IN_CONTROLLED_SHUTDOWN: i8 = 1;
}

/// NoOpRecord (apiKey 20, versions 0). Written by the active controller to advance the high
/// watermark and prove liveness.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NoOpRecord {}

// ---------------------------------------------------------------------------------------------
// The record enum.
// ---------------------------------------------------------------------------------------------

trait RecordSchema: Sized {
    const RECORD_TYPE: u16;
    const NAME: &'static str;
    const LOWEST_VERSION: i16 = 0;
    const HIGHEST_VERSION: i16;
    fn write(&self, w: &mut Writer);
    fn read(r: &mut Reader<'_>, version: i16) -> Result<Self>;
}

macro_rules! metadata_records {
    ($($variant:ident($ty:ident)),* $(,)?) => {
        /// One metadata record value, as stored in `__cluster_metadata-0` and in snapshots.
        #[derive(Debug, Clone, PartialEq)]
        pub enum MetadataRecord {
            $($variant($ty),)*
        }

        $(impl From<$ty> for MetadataRecord {
            fn from(record: $ty) -> Self {
                MetadataRecord::$variant(record)
            }
        })*

        impl MetadataRecord {
            /// The schema's apiKey, written as the record type in the frame.
            pub fn record_type(&self) -> u16 {
                match self {
                    $(MetadataRecord::$variant(_) => <$ty as RecordSchema>::RECORD_TYPE,)*
                }
            }

            /// The schema's name, e.g. `PartitionChangeRecord`.
            pub fn type_name(&self) -> &'static str {
                match self {
                    $(MetadataRecord::$variant(_) => <$ty as RecordSchema>::NAME,)*
                }
            }

            pub fn lowest_version(&self) -> i16 {
                match self {
                    $(MetadataRecord::$variant(_) => <$ty as RecordSchema>::LOWEST_VERSION,)*
                }
            }

            /// The version [`MetadataRecord::encode`] writes.
            pub fn newest_version(&self) -> i16 {
                match self {
                    $(MetadataRecord::$variant(_) => <$ty as RecordSchema>::HIGHEST_VERSION,)*
                }
            }

            fn write_body(&self, w: &mut Writer) {
                match self {
                    $(MetadataRecord::$variant(record) => record.write(w),)*
                }
            }

            fn read_body(record_type: u16, version: i16, r: &mut Reader<'_>) -> Result<Self> {
                $(if record_type == <$ty as RecordSchema>::RECORD_TYPE {
                    return read_checked::<$ty>(r, version).map(MetadataRecord::$variant);
                })*
                Err(MetadataRecordError::UnknownRecordType(record_type))
            }
        }

        impl fmt::Display for MetadataRecord {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                match self {
                    $(MetadataRecord::$variant(record) => fmt::Display::fmt(record, f),)*
                }
            }
        }
    };
}

metadata_records! {
    RegisterBroker(RegisterBrokerRecord),
    UnregisterBroker(UnregisterBrokerRecord),
    Topic(TopicRecord),
    Partition(PartitionRecord),
    Config(ConfigRecord),
    PartitionChange(PartitionChangeRecord),
    FenceBroker(FenceBrokerRecord),
    UnfenceBroker(UnfenceBrokerRecord),
    RemoveTopic(RemoveTopicRecord),
    FeatureLevel(FeatureLevelRecord),
    ClientQuota(ClientQuotaRecord),
    ProducerIds(ProducerIdsRecord),
    BrokerRegistrationChange(BrokerRegistrationChangeRecord),
    NoOp(NoOpRecord),
}

fn read_checked<T: RecordSchema>(r: &mut Reader<'_>, version: i16) -> Result<T> {
    if !(T::LOWEST_VERSION..=T::HIGHEST_VERSION).contains(&version) {
        return Err(MetadataRecordError::UnsupportedVersion {
            record: T::NAME,
            version,
            lowest: T::LOWEST_VERSION,
            highest: T::HIGHEST_VERSION,
        });
    }
    T::read(r, version)
}

impl MetadataRecord {
    /// Encodes the framed record at its newest version.
    ///
    /// Strings are not checked against [`MAX_STRING_LEN`] here (the newest version can carry every
    /// field, so nothing else can fail): the caller must bound them, or use
    /// [`MetadataRecord::encode_version`], because Kafka and [`MetadataRecord::decode`] refuse
    /// longer strings.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new(self.newest_version(), false);
        self.write_frame(&mut w);
        w.buf
    }

    /// Encodes the framed record at `version`, failing as Kafka's writer does when a field that
    /// holds a non-default value does not exist in that version, or a string is too long.
    pub fn encode_version(&self, version: i16) -> Result<Vec<u8>> {
        if !(self.lowest_version()..=self.newest_version()).contains(&version) {
            return Err(MetadataRecordError::UnsupportedVersion {
                record: self.type_name(),
                version,
                lowest: self.lowest_version(),
                highest: self.newest_version(),
            });
        }
        let mut w = Writer::new(version, true);
        self.write_frame(&mut w);
        match w.error {
            Some(error) => Err(error),
            None => Ok(w.buf),
        }
    }

    fn write_frame(&self, w: &mut Writer) {
        w.uvarint(u32::from(FRAME_VERSION));
        w.uvarint(u32::from(self.record_type()));
        // Versions are never negative: they come from the schema's range.
        w.uvarint(u32::try_from(w.version).unwrap_or(0));
        self.write_body(w);
    }

    /// Decodes one framed record value. Unknown tagged fields are skipped; bytes left over after
    /// the record are an error, as in Kafka.
    pub fn decode(bytes: &[u8]) -> Result<MetadataRecord> {
        Self::decode_versioned(bytes).map(|(record, _)| record)
    }

    /// Like [`MetadataRecord::decode`], also returning the version the record was written at.
    pub fn decode_versioned(bytes: &[u8]) -> Result<(MetadataRecord, i16)> {
        let mut r = Reader::new(bytes);
        let frame_version = read_frame_value(&mut r, "frame version")?;
        if frame_version != FRAME_VERSION {
            return Err(MetadataRecordError::UnsupportedFrameVersion(frame_version));
        }
        let record_type = read_frame_value(&mut r, "record type")?;
        // read_frame_value bounds it to 0..=i16::MAX, so the cast is lossless.
        let version = read_frame_value(&mut r, "version")? as i16;
        let record = Self::read_body(record_type, version, &mut r)?;
        if !r.buf.is_empty() {
            return Err(MetadataRecordError::TrailingBytes(r.buf.len()));
        }
        Ok((record, version))
    }
}

/// Kafka stores the frame fields as unsigned varints but reads them into a `short`.
fn read_frame_value(r: &mut Reader<'_>, what: &'static str) -> Result<u16> {
    let value = r.uvarint(what)?;
    match u16::try_from(value) {
        Ok(v) if v <= i16::MAX as u16 => Ok(v),
        _ => Err(MetadataRecordError::FrameValueTooLarge { what, value }),
    }
}

// ---------------------------------------------------------------------------------------------
// Schemas. Fields are written in schema order; tagged fields go in ascending tag order at the end,
// and only when they differ from their default, as Kafka's generated code does.
// ---------------------------------------------------------------------------------------------

impl RecordSchema for TopicRecord {
    const RECORD_TYPE: u16 = 2;
    const NAME: &'static str = "TopicRecord";
    const HIGHEST_VERSION: i16 = 0;

    fn write(&self, w: &mut Writer) {
        w.string("name", &self.name);
        w.uuid(&self.topic_id);
        w.no_tagged_fields();
    }

    fn read(r: &mut Reader<'_>, _version: i16) -> Result<Self> {
        let record = TopicRecord {
            name: r.string("name")?,
            topic_id: r.uuid("topicId")?,
        };
        r.skip_tagged_fields()?;
        Ok(record)
    }
}

impl RecordSchema for PartitionRecord {
    const RECORD_TYPE: u16 = 3;
    const NAME: &'static str = "PartitionRecord";
    const HIGHEST_VERSION: i16 = 2;

    fn write(&self, w: &mut Writer) {
        let version = w.version;
        w.i32(self.partition_id);
        w.uuid(&self.topic_id);
        w.i32_array(&self.replicas);
        w.i32_array(&self.isr);
        w.i32_array(&self.removing_replicas);
        w.i32_array(&self.adding_replicas);
        w.i32(self.leader);
        w.i32(self.leader_epoch);
        w.i32(self.partition_epoch);
        if version >= 1 {
            w.uuid_array(&self.directories);
        } else {
            w.require_default("directories", self.directories.is_empty());
        }
        if version < 2 {
            w.require_default(
                "eligibleLeaderReplicas",
                self.eligible_leader_replicas.is_none(),
            );
            w.require_default("lastKnownElr", self.last_known_elr.is_none());
        }
        let mut tags = TaggedFields::default();
        if self.leader_recovery_state != 0 {
            tags.add(w, 0, |w| w.i8(self.leader_recovery_state));
        }
        if version >= 2 {
            if let Some(elr) = &self.eligible_leader_replicas {
                tags.add(w, 1, |w| w.i32_array(elr));
            }
            if let Some(last_known_elr) = &self.last_known_elr {
                tags.add(w, 2, |w| w.i32_array(last_known_elr));
            }
        }
        w.tagged_fields(tags);
    }

    fn read(r: &mut Reader<'_>, version: i16) -> Result<Self> {
        let mut record = PartitionRecord {
            partition_id: r.i32("partitionId")?,
            topic_id: r.uuid("topicId")?,
            replicas: r.i32_array("replicas")?,
            isr: r.i32_array("isr")?,
            removing_replicas: r.i32_array("removingReplicas")?,
            adding_replicas: r.i32_array("addingReplicas")?,
            leader: r.i32("leader")?,
            leader_epoch: r.i32("leaderEpoch")?,
            partition_epoch: r.i32("partitionEpoch")?,
            ..PartitionRecord::default()
        };
        if version >= 1 {
            record.directories = r.uuid_array("directories")?;
        }
        r.tagged_fields(|tag, r| match tag {
            0 => {
                record.leader_recovery_state = r.i8("leaderRecoveryState")?;
                Ok(Tag::Known)
            }
            1 => {
                check_tag_version(tag, version, 2)?;
                record.eligible_leader_replicas = r.nullable_i32_array("eligibleLeaderReplicas")?;
                Ok(Tag::Known)
            }
            2 => {
                check_tag_version(tag, version, 2)?;
                record.last_known_elr = r.nullable_i32_array("lastKnownElr")?;
                Ok(Tag::Known)
            }
            _ => Ok(Tag::Unknown),
        })?;
        Ok(record)
    }
}

impl RecordSchema for ConfigRecord {
    const RECORD_TYPE: u16 = 4;
    const NAME: &'static str = "ConfigRecord";
    const HIGHEST_VERSION: i16 = 0;

    fn write(&self, w: &mut Writer) {
        w.i8(self.resource_type);
        w.string("resourceName", &self.resource_name);
        w.string("name", &self.name);
        w.nullable_string("value", self.value.as_deref());
        w.no_tagged_fields();
    }

    fn read(r: &mut Reader<'_>, _version: i16) -> Result<Self> {
        let record = ConfigRecord {
            resource_type: r.i8("resourceType")?,
            resource_name: r.string("resourceName")?,
            name: r.string("name")?,
            value: r.nullable_string("value")?,
        };
        r.skip_tagged_fields()?;
        Ok(record)
    }
}

impl RecordSchema for PartitionChangeRecord {
    const RECORD_TYPE: u16 = 5;
    const NAME: &'static str = "PartitionChangeRecord";
    const HIGHEST_VERSION: i16 = 2;

    fn write(&self, w: &mut Writer) {
        let version = w.version;
        w.i32(self.partition_id);
        w.uuid(&self.topic_id);
        if version < 1 {
            w.require_default("directories", self.directories.is_none());
        }
        if version < 2 {
            w.require_default(
                "eligibleLeaderReplicas",
                self.eligible_leader_replicas.is_none(),
            );
            w.require_default("lastKnownElr", self.last_known_elr.is_none());
        }
        let mut tags = TaggedFields::default();
        if let Some(isr) = &self.isr {
            tags.add(w, 0, |w| w.i32_array(isr));
        }
        if self.leader != Self::NO_LEADER_CHANGE {
            tags.add(w, 1, |w| w.i32(self.leader));
        }
        if let Some(replicas) = &self.replicas {
            tags.add(w, 2, |w| w.i32_array(replicas));
        }
        if let Some(removing) = &self.removing_replicas {
            tags.add(w, 3, |w| w.i32_array(removing));
        }
        if let Some(adding) = &self.adding_replicas {
            tags.add(w, 4, |w| w.i32_array(adding));
        }
        if self.leader_recovery_state != Self::NO_LEADER_RECOVERY_STATE_CHANGE {
            tags.add(w, 5, |w| w.i8(self.leader_recovery_state));
        }
        if version >= 2 {
            if let Some(elr) = &self.eligible_leader_replicas {
                tags.add(w, 6, |w| w.i32_array(elr));
            }
            if let Some(last_known_elr) = &self.last_known_elr {
                tags.add(w, 7, |w| w.i32_array(last_known_elr));
            }
        }
        if version >= 1
            && let Some(directories) = &self.directories
        {
            tags.add(w, 8, |w| w.uuid_array(directories));
        }
        w.tagged_fields(tags);
    }

    fn read(r: &mut Reader<'_>, version: i16) -> Result<Self> {
        let mut record = PartitionChangeRecord {
            partition_id: r.i32("partitionId")?,
            topic_id: r.uuid("topicId")?,
            ..PartitionChangeRecord::default()
        };
        r.tagged_fields(|tag, r| {
            match tag {
                0 => record.isr = r.nullable_i32_array("isr")?,
                1 => record.leader = r.i32("leader")?,
                2 => record.replicas = r.nullable_i32_array("replicas")?,
                3 => record.removing_replicas = r.nullable_i32_array("removingReplicas")?,
                4 => record.adding_replicas = r.nullable_i32_array("addingReplicas")?,
                5 => record.leader_recovery_state = r.i8("leaderRecoveryState")?,
                6 => {
                    check_tag_version(tag, version, 2)?;
                    record.eligible_leader_replicas =
                        r.nullable_i32_array("eligibleLeaderReplicas")?;
                }
                7 => {
                    check_tag_version(tag, version, 2)?;
                    record.last_known_elr = r.nullable_i32_array("lastKnownElr")?;
                }
                8 => {
                    check_tag_version(tag, version, 1)?;
                    record.directories = r.nullable_uuid_array("directories")?;
                }
                _ => return Ok(Tag::Unknown),
            }
            Ok(Tag::Known)
        })?;
        Ok(record)
    }
}

impl RecordSchema for RemoveTopicRecord {
    const RECORD_TYPE: u16 = 9;
    const NAME: &'static str = "RemoveTopicRecord";
    const HIGHEST_VERSION: i16 = 0;

    fn write(&self, w: &mut Writer) {
        w.uuid(&self.topic_id);
        w.no_tagged_fields();
    }

    fn read(r: &mut Reader<'_>, _version: i16) -> Result<Self> {
        let record = RemoveTopicRecord {
            topic_id: r.uuid("topicId")?,
        };
        r.skip_tagged_fields()?;
        Ok(record)
    }
}

impl RecordSchema for FeatureLevelRecord {
    const RECORD_TYPE: u16 = 12;
    const NAME: &'static str = "FeatureLevelRecord";
    const HIGHEST_VERSION: i16 = 0;

    fn write(&self, w: &mut Writer) {
        w.string("name", &self.name);
        w.i16(self.feature_level);
        w.no_tagged_fields();
    }

    fn read(r: &mut Reader<'_>, _version: i16) -> Result<Self> {
        let record = FeatureLevelRecord {
            name: r.string("name")?,
            feature_level: r.i16("featureLevel")?,
        };
        r.skip_tagged_fields()?;
        Ok(record)
    }
}

impl RecordSchema for RegisterBrokerRecord {
    const RECORD_TYPE: u16 = 0;
    const NAME: &'static str = "RegisterBrokerRecord";
    const HIGHEST_VERSION: i16 = 3;

    fn write(&self, w: &mut Writer) {
        let version = w.version;
        w.i32(self.broker_id);
        if version >= 2 {
            w.bool(self.is_migrating_zk_broker);
        } else {
            w.require_default("isMigratingZkBroker", !self.is_migrating_zk_broker);
        }
        w.uuid(&self.incarnation_id);
        w.i64(self.broker_epoch);
        w.array_len(self.end_points.len());
        for end_point in &self.end_points {
            w.string("endPoints.name", &end_point.name);
            w.string("endPoints.host", &end_point.host);
            w.u16(end_point.port);
            w.i16(end_point.security_protocol);
            w.no_tagged_fields();
        }
        w.array_len(self.features.len());
        for feature in &self.features {
            w.string("features.name", &feature.name);
            w.i16(feature.min_supported_version);
            w.i16(feature.max_supported_version);
            w.no_tagged_fields();
        }
        w.nullable_string("rack", self.rack.as_deref());
        w.bool(self.fenced);
        if version >= 1 {
            w.bool(self.in_controlled_shutdown);
        } else {
            w.require_default("inControlledShutdown", !self.in_controlled_shutdown);
        }
        let mut tags = TaggedFields::default();
        if version >= 3 {
            if !self.log_dirs.is_empty() {
                tags.add(w, 0, |w| w.uuid_array(&self.log_dirs));
            }
        } else {
            w.require_default("logDirs", self.log_dirs.is_empty());
        }
        w.tagged_fields(tags);
    }

    fn read(r: &mut Reader<'_>, version: i16) -> Result<Self> {
        let broker_id = r.i32("brokerId")?;
        let is_migrating_zk_broker = if version >= 2 {
            r.bool("isMigratingZkBroker")?
        } else {
            false
        };
        let incarnation_id = r.uuid("incarnationId")?;
        let broker_epoch = r.i64("brokerEpoch")?;
        let end_points = r.struct_array("endPoints", |r| {
            let end_point = BrokerEndpoint {
                name: r.string("endPoints.name")?,
                host: r.string("endPoints.host")?,
                port: r.u16("endPoints.port")?,
                security_protocol: r.i16("endPoints.securityProtocol")?,
            };
            r.skip_tagged_fields()?;
            Ok(end_point)
        })?;
        let features = r.struct_array("features", |r| {
            let feature = BrokerFeature {
                name: r.string("features.name")?,
                min_supported_version: r.i16("features.minSupportedVersion")?,
                max_supported_version: r.i16("features.maxSupportedVersion")?,
            };
            r.skip_tagged_fields()?;
            Ok(feature)
        })?;
        let rack = r.nullable_string("rack")?;
        let fenced = r.bool("fenced")?;
        let in_controlled_shutdown = if version >= 1 {
            r.bool("inControlledShutdown")?
        } else {
            false
        };
        let mut log_dirs = Vec::new();
        r.tagged_fields(|tag, r| match tag {
            0 => {
                check_tag_version(tag, version, 3)?;
                log_dirs = r.uuid_array("logDirs")?;
                Ok(Tag::Known)
            }
            _ => Ok(Tag::Unknown),
        })?;
        Ok(RegisterBrokerRecord {
            broker_id,
            is_migrating_zk_broker,
            incarnation_id,
            broker_epoch,
            end_points,
            features,
            rack,
            fenced,
            in_controlled_shutdown,
            log_dirs,
        })
    }
}

impl RecordSchema for UnregisterBrokerRecord {
    const RECORD_TYPE: u16 = 1;
    const NAME: &'static str = "UnregisterBrokerRecord";
    const HIGHEST_VERSION: i16 = 0;

    fn write(&self, w: &mut Writer) {
        w.i32(self.broker_id);
        w.i64(self.broker_epoch);
        w.no_tagged_fields();
    }

    fn read(r: &mut Reader<'_>, _version: i16) -> Result<Self> {
        let record = UnregisterBrokerRecord {
            broker_id: r.i32("brokerId")?,
            broker_epoch: r.i64("brokerEpoch")?,
        };
        r.skip_tagged_fields()?;
        Ok(record)
    }
}

impl RecordSchema for FenceBrokerRecord {
    const RECORD_TYPE: u16 = 7;
    const NAME: &'static str = "FenceBrokerRecord";
    const HIGHEST_VERSION: i16 = 0;

    fn write(&self, w: &mut Writer) {
        w.i32(self.id);
        w.i64(self.epoch);
        w.no_tagged_fields();
    }

    fn read(r: &mut Reader<'_>, _version: i16) -> Result<Self> {
        let record = FenceBrokerRecord {
            id: r.i32("id")?,
            epoch: r.i64("epoch")?,
        };
        r.skip_tagged_fields()?;
        Ok(record)
    }
}

impl RecordSchema for UnfenceBrokerRecord {
    const RECORD_TYPE: u16 = 8;
    const NAME: &'static str = "UnfenceBrokerRecord";
    const HIGHEST_VERSION: i16 = 0;

    fn write(&self, w: &mut Writer) {
        w.i32(self.id);
        w.i64(self.epoch);
        w.no_tagged_fields();
    }

    fn read(r: &mut Reader<'_>, _version: i16) -> Result<Self> {
        let record = UnfenceBrokerRecord {
            id: r.i32("id")?,
            epoch: r.i64("epoch")?,
        };
        r.skip_tagged_fields()?;
        Ok(record)
    }
}

impl RecordSchema for BrokerRegistrationChangeRecord {
    const RECORD_TYPE: u16 = 17;
    const NAME: &'static str = "BrokerRegistrationChangeRecord";
    const HIGHEST_VERSION: i16 = 2;

    fn write(&self, w: &mut Writer) {
        let version = w.version;
        w.i32(self.broker_id);
        w.i64(self.broker_epoch);
        let mut tags = TaggedFields::default();
        if self.fenced != 0 {
            tags.add(w, 0, |w| w.i8(self.fenced));
        }
        if version >= 1 {
            if self.in_controlled_shutdown != 0 {
                tags.add(w, 1, |w| w.i8(self.in_controlled_shutdown));
            }
        } else {
            w.require_default("inControlledShutdown", self.in_controlled_shutdown == 0);
        }
        if version >= 2 {
            if !self.log_dirs.is_empty() {
                tags.add(w, 2, |w| w.uuid_array(&self.log_dirs));
            }
        } else {
            w.require_default("logDirs", self.log_dirs.is_empty());
        }
        w.tagged_fields(tags);
    }

    fn read(r: &mut Reader<'_>, version: i16) -> Result<Self> {
        let mut record = BrokerRegistrationChangeRecord {
            broker_id: r.i32("brokerId")?,
            broker_epoch: r.i64("brokerEpoch")?,
            ..BrokerRegistrationChangeRecord::default()
        };
        r.tagged_fields(|tag, r| {
            match tag {
                0 => record.fenced = r.i8("fenced")?,
                1 => {
                    check_tag_version(tag, version, 1)?;
                    record.in_controlled_shutdown = r.i8("inControlledShutdown")?;
                }
                2 => {
                    check_tag_version(tag, version, 2)?;
                    record.log_dirs = r.uuid_array("logDirs")?;
                }
                _ => return Ok(Tag::Unknown),
            }
            Ok(Tag::Known)
        })?;
        Ok(record)
    }
}

impl RecordSchema for NoOpRecord {
    const RECORD_TYPE: u16 = 20;
    const NAME: &'static str = "NoOpRecord";
    const HIGHEST_VERSION: i16 = 0;

    fn write(&self, w: &mut Writer) {
        w.no_tagged_fields();
    }

    fn read(r: &mut Reader<'_>, _version: i16) -> Result<Self> {
        r.skip_tagged_fields()?;
        Ok(NoOpRecord {})
    }
}

impl RecordSchema for ProducerIdsRecord {
    const RECORD_TYPE: u16 = 15;
    const NAME: &'static str = "ProducerIdsRecord";
    const HIGHEST_VERSION: i16 = 0;

    fn write(&self, w: &mut Writer) {
        w.i32(self.broker_id);
        w.i64(self.broker_epoch);
        w.i64(self.next_producer_id);
        w.no_tagged_fields();
    }

    fn read(r: &mut Reader<'_>, _version: i16) -> Result<Self> {
        let record = ProducerIdsRecord {
            broker_id: r.i32("brokerId")?,
            broker_epoch: r.i64("brokerEpoch")?,
            next_producer_id: r.i64("nextProducerId")?,
        };
        r.skip_tagged_fields()?;
        Ok(record)
    }
}

impl RecordSchema for ClientQuotaRecord {
    const RECORD_TYPE: u16 = 14;
    const NAME: &'static str = "ClientQuotaRecord";
    const HIGHEST_VERSION: i16 = 0;

    fn write(&self, w: &mut Writer) {
        w.array_len(self.entity.len());
        for entity in &self.entity {
            w.string("entity.entityType", &entity.entity_type);
            w.nullable_string("entity.entityName", entity.entity_name.as_deref());
            w.no_tagged_fields();
        }
        w.string("key", &self.key);
        w.f64(self.value);
        w.bool(self.remove);
        w.no_tagged_fields();
    }

    fn read(r: &mut Reader<'_>, _version: i16) -> Result<Self> {
        let entity = r.struct_array("entity", |r| {
            let entity = EntityData {
                entity_type: r.string("entity.entityType")?,
                entity_name: r.nullable_string("entity.entityName")?,
            };
            r.skip_tagged_fields()?;
            Ok(entity)
        })?;
        let record = ClientQuotaRecord {
            entity,
            key: r.string("key")?,
            value: r.f64("value")?,
            remove: r.bool("remove")?,
        };
        r.skip_tagged_fields()?;
        Ok(record)
    }
}

/// Kafka's generated readers know a field's tag in every version and refuse it in versions
/// before the field existed, rather than skipping it as unknown.
fn check_tag_version(tag: u32, version: i16, since: i16) -> Result<()> {
    if version < since {
        Err(MetadataRecordError::TagNotValidForVersion { tag, version })
    } else {
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Primitives of Kafka's flexible encoding.
// ---------------------------------------------------------------------------------------------

struct Writer {
    buf: Vec<u8>,
    version: i16,
    /// Whether to refuse what Kafka's writer refuses (over-long strings); see `encode`.
    strict: bool,
    /// The first error; writing goes on so that the infallible `encode` needs no error path.
    error: Option<MetadataRecordError>,
}

impl Writer {
    fn new(version: i16, strict: bool) -> Writer {
        Writer {
            buf: Vec::new(),
            version,
            strict,
            error: None,
        }
    }

    fn fail(&mut self, error: MetadataRecordError) {
        if self.error.is_none() {
            self.error = Some(error);
        }
    }

    fn require_default(&mut self, field: &'static str, is_default: bool) {
        if !is_default {
            let version = self.version;
            self.fail(MetadataRecordError::NonDefaultFieldUnsupported { field, version });
        }
    }

    fn uvarint(&mut self, mut value: u32) {
        while value >= 0x80 {
            self.buf.push((value as u8 & 0x7f) | 0x80);
            value >>= 7;
        }
        self.buf.push(value as u8);
    }

    fn i8(&mut self, value: i8) {
        self.buf.extend_from_slice(&value.to_be_bytes());
    }

    fn bool(&mut self, value: bool) {
        self.buf.push(u8::from(value));
    }

    fn i16(&mut self, value: i16) {
        self.buf.extend_from_slice(&value.to_be_bytes());
    }

    fn u16(&mut self, value: u16) {
        self.buf.extend_from_slice(&value.to_be_bytes());
    }

    fn i32(&mut self, value: i32) {
        self.buf.extend_from_slice(&value.to_be_bytes());
    }

    fn i64(&mut self, value: i64) {
        self.buf.extend_from_slice(&value.to_be_bytes());
    }

    fn f64(&mut self, value: f64) {
        self.buf.extend_from_slice(&value.to_bits().to_be_bytes());
    }

    fn uuid(&mut self, value: &Uuid) {
        self.buf.extend_from_slice(value.as_bytes());
    }

    fn uvarint_len(&mut self, len: usize) {
        self.uvarint(u32::try_from(len).unwrap_or(u32::MAX));
    }

    /// Compact lengths are stored plus one so that 0 can mean null.
    fn compact_len(&mut self, len: usize) {
        self.uvarint(u32::try_from(len).map_or(u32::MAX, |l| l.saturating_add(1)));
    }

    fn string(&mut self, field: &'static str, value: &str) {
        if self.strict && value.len() > MAX_STRING_LEN {
            self.fail(MetadataRecordError::StringTooLong {
                field,
                length: value.len(),
            });
        }
        self.compact_len(value.len());
        self.buf.extend_from_slice(value.as_bytes());
    }

    fn nullable_string(&mut self, field: &'static str, value: Option<&str>) {
        match value {
            Some(value) => self.string(field, value),
            None => self.uvarint(0),
        }
    }

    fn array_len(&mut self, len: usize) {
        self.compact_len(len);
    }

    fn i32_array(&mut self, values: &[i32]) {
        self.array_len(values.len());
        for &value in values {
            self.i32(value);
        }
    }

    fn uuid_array(&mut self, values: &[Uuid]) {
        self.array_len(values.len());
        for value in values {
            self.uuid(value);
        }
    }

    fn no_tagged_fields(&mut self) {
        self.uvarint(0);
    }

    fn tagged_fields(&mut self, tags: TaggedFields) {
        self.uvarint_len(tags.fields.len());
        for (tag, value) in tags.fields {
            self.uvarint(tag);
            self.uvarint_len(value.len());
            self.buf.extend_from_slice(&value);
        }
    }
}

/// Tagged fields of one struct, collected in ascending tag order before the struct's tail is
/// written, because each is prefixed with its size.
#[derive(Default)]
struct TaggedFields {
    fields: Vec<(u32, Vec<u8>)>,
}

impl TaggedFields {
    fn add(&mut self, parent: &mut Writer, tag: u32, write: impl FnOnce(&mut Writer)) {
        debug_assert!(self.fields.last().is_none_or(|(last, _)| *last < tag));
        let mut w = Writer::new(parent.version, parent.strict);
        write(&mut w);
        if let Some(error) = w.error {
            parent.fail(error);
        }
        self.fields.push((tag, w.buf));
    }
}

/// Whether a tagged-field callback recognised the tag; unknown ones are skipped.
enum Tag {
    Known,
    Unknown,
}

struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8]) -> Reader<'a> {
        Reader { buf }
    }

    fn take(&mut self, len: usize, what: &'static str) -> Result<&'a [u8]> {
        match self.buf.split_at_checked(len) {
            Some((head, tail)) => {
                self.buf = tail;
                Ok(head)
            }
            None => Err(MetadataRecordError::Truncated { what }),
        }
    }

    fn fixed<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N]> {
        let bytes = self.take(N, what)?;
        bytes
            .try_into()
            .map_err(|_| MetadataRecordError::Truncated { what })
    }

    /// Kafka's `readUnsignedVarint`: at most 5 bytes, bits past 32 dropped.
    fn uvarint(&mut self, what: &'static str) -> Result<u32> {
        let mut value: u32 = 0;
        for shift in (0..35).step_by(7) {
            let [byte] = self.fixed::<1>(what)?;
            value |= u32::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(MetadataRecordError::VarintTooLong { what })
    }

    fn i8(&mut self, what: &'static str) -> Result<i8> {
        Ok(i8::from_be_bytes(self.fixed(what)?))
    }

    fn bool(&mut self, what: &'static str) -> Result<bool> {
        let [byte] = self.fixed::<1>(what)?;
        Ok(byte != 0)
    }

    fn i16(&mut self, what: &'static str) -> Result<i16> {
        Ok(i16::from_be_bytes(self.fixed(what)?))
    }

    fn u16(&mut self, what: &'static str) -> Result<u16> {
        Ok(u16::from_be_bytes(self.fixed(what)?))
    }

    fn i32(&mut self, what: &'static str) -> Result<i32> {
        Ok(i32::from_be_bytes(self.fixed(what)?))
    }

    fn i64(&mut self, what: &'static str) -> Result<i64> {
        Ok(i64::from_be_bytes(self.fixed(what)?))
    }

    fn f64(&mut self, what: &'static str) -> Result<f64> {
        Ok(f64::from_bits(u64::from_be_bytes(self.fixed(what)?)))
    }

    fn uuid(&mut self, what: &'static str) -> Result<Uuid> {
        Ok(Uuid::from_bytes(self.fixed(what)?))
    }

    /// `None` for null (a stored 0).
    fn compact_len(&mut self, what: &'static str) -> Result<Option<usize>> {
        let stored = self.uvarint(what)?;
        Ok(stored.checked_sub(1).map(|len| len as usize))
    }

    fn nullable_string(&mut self, field: &'static str) -> Result<Option<String>> {
        let Some(len) = self.compact_len(field)? else {
            return Ok(None);
        };
        if len > MAX_STRING_LEN {
            return Err(MetadataRecordError::StringTooLong { field, length: len });
        }
        let bytes = self.take(len, field)?;
        String::from_utf8(bytes.to_vec())
            .map(Some)
            .map_err(|_| MetadataRecordError::InvalidUtf8 { field })
    }

    fn string(&mut self, field: &'static str) -> Result<String> {
        self.nullable_string(field)?
            .ok_or(MetadataRecordError::UnexpectedNull { field })
    }

    /// Like Kafka, refuses a length larger than the bytes left, so a corrupt length cannot make
    /// us allocate.
    fn array_len(&mut self, field: &'static str) -> Result<Option<usize>> {
        match self.compact_len(field)? {
            Some(len) if len > self.buf.len() => {
                Err(MetadataRecordError::Truncated { what: field })
            }
            len => Ok(len),
        }
    }

    fn nullable_array<T>(
        &mut self,
        field: &'static str,
        mut element: impl FnMut(&mut Self) -> Result<T>,
    ) -> Result<Option<Vec<T>>> {
        let Some(len) = self.array_len(field)? else {
            return Ok(None);
        };
        let mut values = Vec::with_capacity(len);
        for _ in 0..len {
            values.push(element(self)?);
        }
        Ok(Some(values))
    }

    fn struct_array<T>(
        &mut self,
        field: &'static str,
        element: impl FnMut(&mut Self) -> Result<T>,
    ) -> Result<Vec<T>> {
        self.nullable_array(field, element)?
            .ok_or(MetadataRecordError::UnexpectedNull { field })
    }

    fn nullable_i32_array(&mut self, field: &'static str) -> Result<Option<Vec<i32>>> {
        self.nullable_array(field, |r| r.i32(field))
    }

    fn i32_array(&mut self, field: &'static str) -> Result<Vec<i32>> {
        self.nullable_i32_array(field)?
            .ok_or(MetadataRecordError::UnexpectedNull { field })
    }

    fn nullable_uuid_array(&mut self, field: &'static str) -> Result<Option<Vec<Uuid>>> {
        self.nullable_array(field, |r| r.uuid(field))
    }

    fn uuid_array(&mut self, field: &'static str) -> Result<Vec<Uuid>> {
        self.nullable_uuid_array(field)?
            .ok_or(MetadataRecordError::UnexpectedNull { field })
    }

    /// Reads a tagged-field section. Each field's value is parsed from exactly the bytes its size
    /// prefix claims, so an unknown or malformed field cannot desynchronise what follows.
    fn tagged_fields(
        &mut self,
        mut on_tag: impl FnMut(u32, &mut Reader<'a>) -> Result<Tag>,
    ) -> Result<()> {
        let count = self.uvarint("tagged field count")?;
        for _ in 0..count {
            let tag = self.uvarint("tag")?;
            let size = self.uvarint("tagged field size")? as usize;
            let mut field = Reader::new(self.take(size, "tagged field")?);
            if let Tag::Known = on_tag(tag, &mut field)?
                && !field.buf.is_empty()
            {
                return Err(MetadataRecordError::TaggedFieldSizeMismatch {
                    tag,
                    size,
                    used: size - field.buf.len(),
                });
            }
        }
        Ok(())
    }

    fn skip_tagged_fields(&mut self) -> Result<()> {
        self.tagged_fields(|_, _| Ok(Tag::Unknown))
    }
}

// ---------------------------------------------------------------------------------------------
// One-line descriptions for `kraftd metadata dump`, with field names as in Kafka's JSON and
// uuids in Kafka's base64 form, so they can be compared with `kafka-topics --describe`.
// ---------------------------------------------------------------------------------------------

/// A uuid as Kafka's `Uuid.toString()` prints it: URL-safe base64 without padding, 22 chars.
pub struct KafkaUuid<'a>(pub &'a Uuid);

impl fmt::Display for KafkaUuid<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const ALPHABET: &[u8; 64] =
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let mut bits: u32 = 0;
        let mut pending: u32 = 0;
        for &byte in self.0.as_bytes() {
            bits = (bits << 8) | u32::from(byte);
            pending += 8;
            while pending >= 6 {
                pending -= 6;
                let index = ((bits >> pending) & 0x3f) as usize;
                write!(f, "{}", char::from(ALPHABET[index]))?;
            }
        }
        if pending > 0 {
            let index = ((bits << (6 - pending)) & 0x3f) as usize;
            write!(f, "{}", char::from(ALPHABET[index]))?;
        }
        Ok(())
    }
}

struct List<'a, T>(&'a [T]);

impl fmt::Display for List<'_, i32> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[")?;
        for (i, value) in self.0.iter().enumerate() {
            if i > 0 {
                write!(f, ", ")?;
            }
            write!(f, "{value}")?;
        }
        write!(f, "]")
    }
}

impl fmt::Display for List<'_, Uuid> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[")?;
        for (i, value) in self.0.iter().enumerate() {
            if i > 0 {
                write!(f, ", ")?;
            }
            write!(f, "{}", KafkaUuid(value))?;
        }
        write!(f, "]")
    }
}

fn or_null(value: Option<&str>) -> &str {
    value.unwrap_or("null")
}

impl fmt::Display for TopicRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "TopicRecord(name={}, topicId={})",
            self.name,
            KafkaUuid(&self.topic_id)
        )
    }
}

impl fmt::Display for PartitionRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "PartitionRecord(topicId={}, partitionId={}, replicas={}, isr={}, removingReplicas={}, \
             addingReplicas={}, leader={}, leaderRecoveryState={}, leaderEpoch={}, \
             partitionEpoch={}, directories={}",
            KafkaUuid(&self.topic_id),
            self.partition_id,
            List(&self.replicas),
            List(&self.isr),
            List(&self.removing_replicas),
            List(&self.adding_replicas),
            self.leader,
            self.leader_recovery_state,
            self.leader_epoch,
            self.partition_epoch,
            List(&self.directories),
        )?;
        if let Some(elr) = &self.eligible_leader_replicas {
            write!(f, ", eligibleLeaderReplicas={}", List(elr))?;
        }
        if let Some(last_known_elr) = &self.last_known_elr {
            write!(f, ", lastKnownElr={}", List(last_known_elr))?;
        }
        write!(f, ")")
    }
}

impl fmt::Display for ConfigRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let resource_type = match self.resource_type {
            config_resource_type::TOPIC => "TOPIC".to_string(),
            config_resource_type::BROKER => "BROKER".to_string(),
            config_resource_type::BROKER_LOGGER => "BROKER_LOGGER".to_string(),
            config_resource_type::CLIENT_METRICS => "CLIENT_METRICS".to_string(),
            config_resource_type::GROUP => "GROUP".to_string(),
            other => other.to_string(),
        };
        write!(
            f,
            "ConfigRecord(resourceType={resource_type}, resourceName={}, name={}, value={})",
            self.resource_name,
            self.name,
            or_null(self.value.as_deref()),
        )
    }
}

/// Only the fields that changed, as the record means.
impl fmt::Display for PartitionChangeRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "PartitionChangeRecord(topicId={}, partitionId={}",
            KafkaUuid(&self.topic_id),
            self.partition_id
        )?;
        if let Some(isr) = &self.isr {
            write!(f, ", isr={}", List(isr))?;
        }
        if self.leader != Self::NO_LEADER_CHANGE {
            write!(f, ", leader={}", self.leader)?;
        }
        if let Some(replicas) = &self.replicas {
            write!(f, ", replicas={}", List(replicas))?;
        }
        if let Some(removing) = &self.removing_replicas {
            write!(f, ", removingReplicas={}", List(removing))?;
        }
        if let Some(adding) = &self.adding_replicas {
            write!(f, ", addingReplicas={}", List(adding))?;
        }
        if self.leader_recovery_state != Self::NO_LEADER_RECOVERY_STATE_CHANGE {
            write!(f, ", leaderRecoveryState={}", self.leader_recovery_state)?;
        }
        if let Some(directories) = &self.directories {
            write!(f, ", directories={}", List(directories))?;
        }
        if let Some(elr) = &self.eligible_leader_replicas {
            write!(f, ", eligibleLeaderReplicas={}", List(elr))?;
        }
        if let Some(last_known_elr) = &self.last_known_elr {
            write!(f, ", lastKnownElr={}", List(last_known_elr))?;
        }
        write!(f, ")")
    }
}

impl fmt::Display for RemoveTopicRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "RemoveTopicRecord(topicId={})",
            KafkaUuid(&self.topic_id)
        )
    }
}

impl fmt::Display for FeatureLevelRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "FeatureLevelRecord(name={}, featureLevel={})",
            self.name, self.feature_level
        )
    }
}

impl fmt::Display for RegisterBrokerRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "RegisterBrokerRecord(brokerId={}, isMigratingZkBroker={}, incarnationId={}, \
             brokerEpoch={}, endPoints=[",
            self.broker_id,
            self.is_migrating_zk_broker,
            KafkaUuid(&self.incarnation_id),
            self.broker_epoch,
        )?;
        for (i, end_point) in self.end_points.iter().enumerate() {
            if i > 0 {
                write!(f, ", ")?;
            }
            write!(
                f,
                "{}://{}:{} (securityProtocol={})",
                end_point.name, end_point.host, end_point.port, end_point.security_protocol
            )?;
        }
        write!(f, "], features=[")?;
        for (i, feature) in self.features.iter().enumerate() {
            if i > 0 {
                write!(f, ", ")?;
            }
            write!(
                f,
                "{}: {}-{}",
                feature.name, feature.min_supported_version, feature.max_supported_version
            )?;
        }
        write!(
            f,
            "], rack={}, fenced={}, inControlledShutdown={}, logDirs={})",
            or_null(self.rack.as_deref()),
            self.fenced,
            self.in_controlled_shutdown,
            List(&self.log_dirs),
        )
    }
}

impl fmt::Display for UnregisterBrokerRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "UnregisterBrokerRecord(brokerId={}, brokerEpoch={})",
            self.broker_id, self.broker_epoch
        )
    }
}

impl fmt::Display for FenceBrokerRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FenceBrokerRecord(id={}, epoch={})", self.id, self.epoch)
    }
}

impl fmt::Display for UnfenceBrokerRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "UnfenceBrokerRecord(id={}, epoch={})",
            self.id, self.epoch
        )
    }
}

impl fmt::Display for BrokerRegistrationChangeRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "BrokerRegistrationChangeRecord(brokerId={}, brokerEpoch={}, fenced={}, \
             inControlledShutdown={}, logDirs={})",
            self.broker_id,
            self.broker_epoch,
            self.fenced,
            self.in_controlled_shutdown,
            List(&self.log_dirs),
        )
    }
}

impl fmt::Display for NoOpRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NoOpRecord()")
    }
}

impl fmt::Display for ProducerIdsRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "ProducerIdsRecord(brokerId={}, brokerEpoch={}, nextProducerId={})",
            self.broker_id, self.broker_epoch, self.next_producer_id
        )
    }
}

impl fmt::Display for ClientQuotaRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ClientQuotaRecord(entity=[")?;
        for (i, entity) in self.entity.iter().enumerate() {
            if i > 0 {
                write!(f, ", ")?;
            }
            write!(
                f,
                "{}={}",
                entity.entity_type,
                entity.entity_name.as_deref().unwrap_or("<default>")
            )?;
        }
        write!(
            f,
            "], key={}, value={:?}, remove={})",
            self.key, self.value, self.remove
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const TOPIC_ID: [u8; 16] = [
        0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e,
        0x0f,
    ];
    const DIR_ID: [u8; 16] = [0xd0; 16];
    const INCARNATION_ID: [u8; 16] = [0x1c; 16];

    fn topic_id() -> Uuid {
        Uuid::from_bytes(TOPIC_ID)
    }

    /// Concatenates byte pieces so that hand-assembled records read field by field.
    fn bytes(pieces: &[&[u8]]) -> Vec<u8> {
        pieces.concat()
    }

    #[test]
    fn topic_record_bytes_match_schema() {
        let record = MetadataRecord::Topic(TopicRecord {
            name: "foo".to_string(),
            topic_id: topic_id(),
        });
        let expected = bytes(&[
            &[0x01, 0x02, 0x00], // frame version 1, apiKey 2, version 0
            &[0x04, b'f', b'o', b'o'],
            &TOPIC_ID,
            &[0x00], // no tagged fields
        ]);
        assert_eq!(record.encode(), expected);
        assert_eq!(record.encode_version(0).unwrap(), expected);
        assert_eq!(record.record_type(), 2);
        assert_eq!(MetadataRecord::decode(&expected).unwrap(), record);
    }

    fn partition_record_v2() -> PartitionRecord {
        PartitionRecord {
            partition_id: 1,
            topic_id: topic_id(),
            replicas: vec![1, 2],
            isr: vec![1],
            removing_replicas: vec![],
            adding_replicas: vec![],
            leader: 1,
            leader_recovery_state: 1,
            leader_epoch: 5,
            partition_epoch: 7,
            directories: vec![Uuid::from_bytes(DIR_ID), Uuid::from_bytes(DIR_ID)],
            eligible_leader_replicas: Some(vec![2]),
            last_known_elr: None,
        }
    }

    #[test]
    fn partition_record_bytes_match_schema() {
        let record = MetadataRecord::Partition(partition_record_v2());
        let expected = bytes(&[
            &[0x01, 0x03, 0x02],
            &[0, 0, 0, 1],
            &TOPIC_ID,
            &[0x03, 0, 0, 0, 1, 0, 0, 0, 2], // replicas
            &[0x02, 0, 0, 0, 1],             // isr
            &[0x01],                         // removingReplicas
            &[0x01],                         // addingReplicas
            &[0, 0, 0, 1],                   // leader
            &[0, 0, 0, 5],                   // leaderEpoch
            &[0, 0, 0, 7],                   // partitionEpoch
            &[0x03],
            &DIR_ID,
            &DIR_ID,
            &[0x02],                         // two tagged fields, ascending tags
            &[0x00, 0x01, 0x01],             // tag 0 leaderRecoveryState, size 1, 1
            &[0x01, 0x05, 0x02, 0, 0, 0, 2], // tag 1 eligibleLeaderReplicas [2]
        ]);
        assert_eq!(record.encode(), expected);
        assert_eq!(record.record_type(), 3);
        assert_eq!(MetadataRecord::decode(&expected).unwrap(), record);
    }

    #[test]
    fn partition_record_with_default_tagged_fields_writes_none() {
        let record = MetadataRecord::Partition(PartitionRecord {
            leader_recovery_state: 0,
            eligible_leader_replicas: None,
            directories: vec![],
            ..partition_record_v2()
        });
        let encoded = record.encode();
        assert_eq!(&encoded[encoded.len() - 2..], &[0x01, 0x00]); // empty directories, 0 tags
    }

    #[test]
    fn config_record_bytes_match_schema() {
        let mut record = ConfigRecord {
            resource_type: config_resource_type::TOPIC,
            resource_name: "foo".to_string(),
            name: "cleanup.policy".to_string(),
            value: Some("compact".to_string()),
        };
        let expected = bytes(&[
            &[0x01, 0x04, 0x00],
            &[0x02], // ConfigResource.Type.TOPIC
            &[0x04],
            b"foo",
            &[0x0f],
            b"cleanup.policy",
            &[0x08],
            b"compact",
            &[0x00],
        ]);
        let encoded = MetadataRecord::Config(record.clone()).encode();
        assert_eq!(encoded, expected);
        assert_eq!(
            MetadataRecord::decode(&expected).unwrap(),
            MetadataRecord::Config(record.clone())
        );

        record.value = None;
        let deleted = MetadataRecord::Config(record.clone()).encode();
        assert_eq!(&deleted[deleted.len() - 2..], &[0x00, 0x00]); // null value, no tags
        assert_eq!(
            MetadataRecord::decode(&deleted).unwrap(),
            MetadataRecord::Config(record)
        );
    }

    fn partition_body_v0() -> Vec<u8> {
        bytes(&[
            &[0, 0, 0, 3],
            &TOPIC_ID,
            &[0x04, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3],
            &[0x03, 0, 0, 0, 1, 0, 0, 0, 2],
            &[0x01],
            &[0x01],
            &[0, 0, 0, 2],
            &[0, 0, 0, 9],
            &[0, 0, 0, 11],
        ])
    }

    #[test]
    fn decodes_partition_record_v0_and_v1() {
        let v0 = bytes(&[&[0x01, 0x03, 0x00], &partition_body_v0(), &[0x00]]);
        let (record, version) = MetadataRecord::decode_versioned(&v0).unwrap();
        assert_eq!(version, 0);
        let expected = PartitionRecord {
            partition_id: 3,
            topic_id: topic_id(),
            replicas: vec![1, 2, 3],
            isr: vec![1, 2],
            removing_replicas: vec![],
            adding_replicas: vec![],
            leader: 2,
            leader_recovery_state: 0,
            leader_epoch: 9,
            partition_epoch: 11,
            directories: vec![],
            eligible_leader_replicas: None,
            last_known_elr: None,
        };
        assert_eq!(record, MetadataRecord::Partition(expected.clone()));
        // Writing the decoded record back at v0 gives the same bytes.
        assert_eq!(record.encode_version(0).unwrap(), v0);

        let v0_recovering = bytes(&[
            &[0x01, 0x03, 0x00],
            &partition_body_v0(),
            &[0x01, 0x00, 0x01, 0x01],
        ]);
        let Ok(MetadataRecord::Partition(recovering)) = MetadataRecord::decode(&v0_recovering)
        else {
            panic!("v0 with leaderRecoveryState must decode");
        };
        assert_eq!(recovering.leader_recovery_state, 1);

        let v1 = bytes(&[
            &[0x01, 0x03, 0x01],
            &partition_body_v0(),
            &[0x04],
            &DIR_ID,
            &DIR_ID,
            &DIR_ID,
            &[0x00],
        ]);
        let directories = vec![Uuid::from_bytes(DIR_ID); 3];
        assert_eq!(
            MetadataRecord::decode(&v1).unwrap(),
            MetadataRecord::Partition(PartitionRecord {
                directories,
                ..expected
            })
        );
    }

    #[test]
    fn partition_record_v0_refuses_elr_tag() {
        let v0 = bytes(&[
            &[0x01, 0x03, 0x00],
            &partition_body_v0(),
            &[0x01, 0x01, 0x05, 0x02, 0, 0, 0, 2],
        ]);
        assert_eq!(
            MetadataRecord::decode(&v0),
            Err(MetadataRecordError::TagNotValidForVersion { tag: 1, version: 0 })
        );
    }

    fn register_broker_end_points_and_features() -> Vec<u8> {
        bytes(&[
            &[0x02, 0x0a],
            b"PLAINTEXT",
            &[0x0a],
            b"localhost",
            &[0x23, 0x84, 0x00, 0x00, 0x00], // port 9092, PLAINTEXT, no tags
            &[0x02, 0x11],
            b"metadata.version",
            &[0x00, 0x01, 0x00, 0x15, 0x00], // 1-21, no tags
        ])
    }

    fn expected_registration() -> RegisterBrokerRecord {
        RegisterBrokerRecord {
            broker_id: 1,
            is_migrating_zk_broker: false,
            incarnation_id: Uuid::from_bytes(INCARNATION_ID),
            broker_epoch: 42,
            end_points: vec![BrokerEndpoint {
                name: "PLAINTEXT".to_string(),
                host: "localhost".to_string(),
                port: 9092,
                security_protocol: 0,
            }],
            features: vec![BrokerFeature {
                name: "metadata.version".to_string(),
                min_supported_version: 1,
                max_supported_version: 21,
            }],
            rack: None,
            fenced: true,
            in_controlled_shutdown: false,
            log_dirs: vec![],
        }
    }

    #[test]
    fn decodes_register_broker_record_old_versions() {
        let v0 = bytes(&[
            &[0x01, 0x00, 0x00],
            &[0, 0, 0, 1],
            &INCARNATION_ID,
            &[0, 0, 0, 0, 0, 0, 0, 42],
            &register_broker_end_points_and_features(),
            &[0x00], // rack null
            &[0x01], // fenced
            &[0x00],
        ]);
        let decoded = MetadataRecord::decode(&v0).unwrap();
        assert_eq!(
            decoded,
            MetadataRecord::RegisterBroker(expected_registration())
        );
        assert_eq!(decoded.encode_version(0).unwrap(), v0);

        let v1 = bytes(&[
            &[0x01, 0x00, 0x01],
            &[0, 0, 0, 1],
            &INCARNATION_ID,
            &[0, 0, 0, 0, 0, 0, 0, 42],
            &register_broker_end_points_and_features(),
            &[0x03, b'r', b'1'],
            &[0x00], // not fenced
            &[0x01], // in controlled shutdown
            &[0x00],
        ]);
        assert_eq!(
            MetadataRecord::decode(&v1).unwrap(),
            MetadataRecord::RegisterBroker(RegisterBrokerRecord {
                rack: Some("r1".to_string()),
                fenced: false,
                in_controlled_shutdown: true,
                ..expected_registration()
            })
        );

        let v2 = bytes(&[
            &[0x01, 0x00, 0x02],
            &[0, 0, 0, 1],
            &[0x01], // isMigratingZkBroker
            &INCARNATION_ID,
            &[0, 0, 0, 0, 0, 0, 0, 42],
            &register_broker_end_points_and_features(),
            &[0x00, 0x01, 0x00, 0x00],
        ]);
        assert_eq!(
            MetadataRecord::decode(&v2).unwrap(),
            MetadataRecord::RegisterBroker(RegisterBrokerRecord {
                is_migrating_zk_broker: true,
                ..expected_registration()
            })
        );

        // v2 does not know the logDirs tag.
        let v2_with_log_dirs = bytes(&[&v2[..v2.len() - 1], &[0x01, 0x00, 0x11, 0x02], &DIR_ID]);
        assert_eq!(
            MetadataRecord::decode(&v2_with_log_dirs),
            Err(MetadataRecordError::TagNotValidForVersion { tag: 0, version: 2 })
        );
    }

    #[test]
    fn register_broker_record_v3_carries_log_dirs_as_tag_0() {
        let record = MetadataRecord::RegisterBroker(RegisterBrokerRecord {
            log_dirs: vec![Uuid::from_bytes(DIR_ID)],
            ..expected_registration()
        });
        let encoded = record.encode();
        assert_eq!(&encoded[..3], &[0x01, 0x00, 0x03]);
        let tail = bytes(&[
            &[0x00, 0x01, 0x00],       // rack null, fenced, not in controlled shutdown
            &[0x01, 0x00, 0x11, 0x02], // one tag: 0, size 17, one uuid
            &DIR_ID,
        ]);
        assert!(encoded.ends_with(&tail), "{encoded:02x?}");
        assert_eq!(MetadataRecord::decode(&encoded).unwrap(), record);
    }

    #[test]
    fn encode_version_refuses_fields_the_version_lacks() {
        let partition = MetadataRecord::Partition(partition_record_v2());
        assert_eq!(
            partition.encode_version(0),
            Err(MetadataRecordError::NonDefaultFieldUnsupported {
                field: "directories",
                version: 0
            })
        );
        assert_eq!(
            partition.encode_version(1),
            Err(MetadataRecordError::NonDefaultFieldUnsupported {
                field: "eligibleLeaderReplicas",
                version: 1
            })
        );
        let migrating = MetadataRecord::RegisterBroker(RegisterBrokerRecord {
            is_migrating_zk_broker: true,
            ..expected_registration()
        });
        assert!(migrating.encode_version(2).is_ok());
        assert_eq!(
            migrating.encode_version(1),
            Err(MetadataRecordError::NonDefaultFieldUnsupported {
                field: "isMigratingZkBroker",
                version: 1
            })
        );
        assert_eq!(
            partition.encode_version(3),
            Err(MetadataRecordError::UnsupportedVersion {
                record: "PartitionRecord",
                version: 3,
                lowest: 0,
                highest: 2
            })
        );
    }

    #[test]
    fn partition_change_record_tags() {
        let record = MetadataRecord::PartitionChange(PartitionChangeRecord {
            partition_id: 0,
            topic_id: topic_id(),
            isr: Some(vec![1]),
            leader: PartitionChangeRecord::NO_LEADER,
            directories: Some(vec![Uuid::from_bytes(DIR_ID)]),
            ..PartitionChangeRecord::default()
        });
        let expected = bytes(&[
            &[0x01, 0x05, 0x02],
            &[0, 0, 0, 0],
            &TOPIC_ID,
            &[0x03],
            &[0x00, 0x05, 0x02, 0, 0, 0, 1],       // tag 0 isr [1]
            &[0x01, 0x04, 0xff, 0xff, 0xff, 0xff], // tag 1 leader -1
            &[0x08, 0x11, 0x02],                   // tag 8 directories
            &DIR_ID,
        ]);
        assert_eq!(record.encode(), expected);
        assert_eq!(MetadataRecord::decode(&expected).unwrap(), record);
        assert_eq!(
            record.to_string(),
            "PartitionChangeRecord(topicId=AAECAwQFBgcICQoLDA0ODw, partitionId=0, isr=[1], \
             leader=-1, directories=[0NDQ0NDQ0NDQ0NDQ0NDQ0A])"
        );
    }

    #[test]
    fn broker_registration_change_record_v0() {
        let v0 = bytes(&[
            &[0x01, 0x11, 0x00],
            &[0, 0, 0, 4],
            &[0, 0, 0, 0, 0, 0, 0, 8],
            &[0x01, 0x00, 0x01, 0xff], // tag 0 fenced = -1 (unfenced)
        ]);
        assert_eq!(
            MetadataRecord::decode(&v0).unwrap(),
            MetadataRecord::BrokerRegistrationChange(BrokerRegistrationChangeRecord {
                broker_id: 4,
                broker_epoch: 8,
                fenced: BrokerRegistrationChangeRecord::UNFENCE,
                in_controlled_shutdown: 0,
                log_dirs: vec![],
            })
        );
    }

    #[test]
    fn unknown_tagged_fields_are_skipped() {
        let encoded = bytes(&[
            &[0x01, 0x02, 0x00, 0x04, b'f', b'o', b'o'],
            &TOPIC_ID,
            &[0x02, 0x05, 0x02, 0xaa, 0xbb, 0x7f, 0x00],
        ]);
        assert_eq!(
            MetadataRecord::decode(&encoded).unwrap(),
            MetadataRecord::Topic(TopicRecord {
                name: "foo".to_string(),
                topic_id: topic_id(),
            })
        );
    }

    #[test]
    fn malformed_input_is_an_error() {
        use MetadataRecordError as E;
        assert_eq!(
            MetadataRecord::decode(&[0x01, 0x63, 0x00]),
            Err(E::UnknownRecordType(99))
        );
        assert_eq!(
            MetadataRecord::decode(&[0x00, 0x02, 0x00]),
            Err(E::UnsupportedFrameVersion(0))
        );
        assert!(matches!(
            MetadataRecord::decode(&[0x01, 0x02, 0x01, 0x00]),
            Err(E::UnsupportedVersion {
                record: "TopicRecord",
                version: 1,
                ..
            })
        ));
        assert_eq!(
            MetadataRecord::decode(&[0x01, 0x02, 0x80, 0x80, 0x02]),
            Err(E::FrameValueTooLarge {
                what: "version",
                value: 0x8000
            })
        );
        assert_eq!(
            MetadataRecord::decode(&[0x01, 0x02, 0xff, 0xff, 0xff, 0xff, 0xff]),
            Err(E::VarintTooLong { what: "version" })
        );
        assert_eq!(
            MetadataRecord::decode(&[]),
            Err(E::Truncated {
                what: "frame version"
            })
        );

        let bad_utf8 = bytes(&[&[0x01, 0x02, 0x00, 0x03, 0xff, 0xfe], &TOPIC_ID, &[0x00]]);
        assert_eq!(
            MetadataRecord::decode(&bad_utf8),
            Err(E::InvalidUtf8 { field: "name" })
        );
        let null_name = bytes(&[&[0x01, 0x02, 0x00, 0x00], &TOPIC_ID, &[0x00]]);
        assert_eq!(
            MetadataRecord::decode(&null_name),
            Err(E::UnexpectedNull { field: "name" })
        );
        let long_name = [0x01, 0x02, 0x00, 0x81, 0x80, 0x02];
        assert_eq!(
            MetadataRecord::decode(&long_name),
            Err(E::StringTooLong {
                field: "name",
                length: 0x8000
            })
        );
        let huge_array = bytes(&[&[0x01, 0x03, 0x00, 0, 0, 0, 0], &TOPIC_ID, &[0xff, 0x01]]);
        assert_eq!(
            MetadataRecord::decode(&huge_array),
            Err(E::Truncated { what: "replicas" })
        );

        let mut trailing = MetadataRecord::NoOp(NoOpRecord {}).encode();
        assert_eq!(trailing, vec![0x01, 0x14, 0x00, 0x00]);
        trailing.extend_from_slice(&[0xde, 0xad]);
        assert_eq!(MetadataRecord::decode(&trailing), Err(E::TrailingBytes(2)));

        // A known tag whose size prefix is larger than its value.
        let oversized_tag = bytes(&[
            &[0x01, 0x11, 0x00],
            &[0, 0, 0, 4],
            &[0, 0, 0, 0, 0, 0, 0, 8],
            &[0x01, 0x00, 0x02, 0x01, 0x00],
        ]);
        assert_eq!(
            MetadataRecord::decode(&oversized_tag),
            Err(E::TaggedFieldSizeMismatch {
                tag: 0,
                size: 2,
                used: 1
            })
        );
    }

    #[test]
    fn every_truncation_of_a_record_is_an_error() {
        let encoded = MetadataRecord::RegisterBroker(RegisterBrokerRecord {
            log_dirs: vec![Uuid::from_bytes(DIR_ID)],
            rack: Some("r1".to_string()),
            ..expected_registration()
        })
        .encode();
        for len in 0..encoded.len() {
            assert!(
                MetadataRecord::decode(&encoded[..len]).is_err(),
                "prefix {len}"
            );
        }
    }

    #[test]
    fn long_strings_are_refused_by_encode_version() {
        let record = MetadataRecord::Config(ConfigRecord {
            resource_type: config_resource_type::BROKER,
            resource_name: "1".to_string(),
            name: "x".to_string(),
            value: Some("v".repeat(MAX_STRING_LEN + 1)),
        });
        assert_eq!(
            record.encode_version(0),
            Err(MetadataRecordError::StringTooLong {
                field: "value",
                length: MAX_STRING_LEN + 1
            })
        );
        let at_limit = MetadataRecord::Config(ConfigRecord {
            value: Some("v".repeat(MAX_STRING_LEN)),
            ..ConfigRecord::default()
        });
        let encoded = at_limit.encode_version(0).unwrap();
        assert_eq!(MetadataRecord::decode(&encoded).unwrap(), at_limit);
    }

    #[test]
    fn display_is_one_line_in_kafka_words() {
        let topic = MetadataRecord::Topic(TopicRecord {
            name: "foo".to_string(),
            topic_id: Uuid::from_u128(1),
        });
        // Kafka prints `new Uuid(0L, 1L)` as AAAAAAAAAAAAAAAAAAAAAQ.
        assert_eq!(
            topic.to_string(),
            "TopicRecord(name=foo, topicId=AAAAAAAAAAAAAAAAAAAAAQ)"
        );
        let config = MetadataRecord::Config(ConfigRecord {
            resource_type: config_resource_type::TOPIC,
            resource_name: "foo".to_string(),
            name: "retention.ms".to_string(),
            value: None,
        });
        assert_eq!(
            config.to_string(),
            "ConfigRecord(resourceType=TOPIC, resourceName=foo, name=retention.ms, value=null)"
        );
        assert_eq!(
            MetadataRecord::RegisterBroker(expected_registration()).to_string(),
            "RegisterBrokerRecord(brokerId=1, isMigratingZkBroker=false, \
             incarnationId=HBwcHBwcHBwcHBwcHBwcHA, brokerEpoch=42, \
             endPoints=[PLAINTEXT://localhost:9092 (securityProtocol=0)], \
             features=[metadata.version: 1-21], rack=null, fenced=true, \
             inControlledShutdown=false, logDirs=[])"
        );
        for record in [topic, config] {
            assert!(!record.to_string().contains('\n'));
        }
    }

    #[test]
    fn record_types_are_kafkas_api_keys() {
        let cases: [(MetadataRecord, u16); 14] = [
            (RegisterBrokerRecord::default().into(), 0),
            (UnregisterBrokerRecord::default().into(), 1),
            (TopicRecord::default().into(), 2),
            (PartitionRecord::default().into(), 3),
            (ConfigRecord::default().into(), 4),
            (PartitionChangeRecord::default().into(), 5),
            (FenceBrokerRecord::default().into(), 7),
            (UnfenceBrokerRecord::default().into(), 8),
            (RemoveTopicRecord::default().into(), 9),
            (FeatureLevelRecord::default().into(), 12),
            (ClientQuotaRecord::default().into(), 14),
            (ProducerIdsRecord::default().into(), 15),
            (BrokerRegistrationChangeRecord::default().into(), 17),
            (NoOpRecord::default().into(), 20),
        ];
        for (record, record_type) in cases {
            assert_eq!(record.record_type(), record_type, "{}", record.type_name());
            let encoded = record.encode();
            assert_eq!(encoded[1], record_type as u8);
            assert_eq!(MetadataRecord::decode(&encoded).unwrap(), record);
        }
    }

    // ---- property tests ----

    fn arb_string() -> impl Strategy<Value = String> {
        "\\PC{0,12}"
    }

    fn arb_uuid() -> impl Strategy<Value = Uuid> {
        any::<u128>().prop_map(Uuid::from_u128)
    }

    fn arb_ids() -> impl Strategy<Value = Vec<i32>> {
        prop::collection::vec(any::<i32>(), 0..5)
    }

    fn arb_uuids() -> impl Strategy<Value = Vec<Uuid>> {
        prop::collection::vec(arb_uuid(), 0..4)
    }

    fn arb_partition() -> impl Strategy<Value = PartitionRecord> {
        (
            (any::<i32>(), arb_uuid(), arb_ids(), arb_ids(), arb_ids()),
            (
                arb_ids(),
                any::<i32>(),
                any::<i8>(),
                any::<i32>(),
                any::<i32>(),
            ),
            (
                arb_uuids(),
                prop::option::of(arb_ids()),
                prop::option::of(arb_ids()),
            ),
        )
            .prop_map(
                |(
                    (partition_id, topic_id, replicas, isr, removing_replicas),
                    (adding_replicas, leader, leader_recovery_state, leader_epoch, partition_epoch),
                    (directories, eligible_leader_replicas, last_known_elr),
                )| PartitionRecord {
                    partition_id,
                    topic_id,
                    replicas,
                    isr,
                    removing_replicas,
                    adding_replicas,
                    leader,
                    leader_recovery_state,
                    leader_epoch,
                    partition_epoch,
                    directories,
                    eligible_leader_replicas,
                    last_known_elr,
                },
            )
    }

    fn arb_partition_change() -> impl Strategy<Value = PartitionChangeRecord> {
        let ids = || prop::option::of(arb_ids());
        (
            (any::<i32>(), arb_uuid(), ids(), any::<i32>(), ids(), ids()),
            (
                ids(),
                any::<i8>(),
                prop::option::of(arb_uuids()),
                ids(),
                ids(),
            ),
        )
            .prop_map(
                |(
                    (partition_id, topic_id, isr, leader, replicas, removing_replicas),
                    (adding_replicas, leader_recovery_state, directories, elr, last_known_elr),
                )| PartitionChangeRecord {
                    partition_id,
                    topic_id,
                    isr,
                    leader,
                    replicas,
                    removing_replicas,
                    adding_replicas,
                    leader_recovery_state,
                    directories,
                    eligible_leader_replicas: elr,
                    last_known_elr,
                },
            )
    }

    fn arb_register_broker() -> impl Strategy<Value = RegisterBrokerRecord> {
        let end_point = (arb_string(), arb_string(), any::<u16>(), any::<i16>()).prop_map(
            |(name, host, port, security_protocol)| BrokerEndpoint {
                name,
                host,
                port,
                security_protocol,
            },
        );
        let feature = (arb_string(), any::<i16>(), any::<i16>()).prop_map(
            |(name, min_supported_version, max_supported_version)| BrokerFeature {
                name,
                min_supported_version,
                max_supported_version,
            },
        );
        (
            (any::<i32>(), any::<bool>(), arb_uuid(), any::<i64>()),
            prop::collection::vec(end_point, 0..3),
            prop::collection::vec(feature, 0..3),
            (
                prop::option::of(arb_string()),
                any::<bool>(),
                any::<bool>(),
                arb_uuids(),
            ),
        )
            .prop_map(
                |(
                    (broker_id, is_migrating_zk_broker, incarnation_id, broker_epoch),
                    end_points,
                    features,
                    (rack, fenced, in_controlled_shutdown, log_dirs),
                )| RegisterBrokerRecord {
                    broker_id,
                    is_migrating_zk_broker,
                    incarnation_id,
                    broker_epoch,
                    end_points,
                    features,
                    rack,
                    fenced,
                    in_controlled_shutdown,
                    log_dirs,
                },
            )
    }

    fn arb_client_quota() -> impl Strategy<Value = ClientQuotaRecord> {
        let entity = (arb_string(), prop::option::of(arb_string())).prop_map(
            |(entity_type, entity_name)| EntityData {
                entity_type,
                entity_name,
            },
        );
        (
            prop::collection::vec(entity, 0..3),
            arb_string(),
            any::<f64>().prop_filter("NaN is not equal to itself", |v| !v.is_nan()),
            any::<bool>(),
        )
            .prop_map(|(entity, key, value, remove)| ClientQuotaRecord {
                entity,
                key,
                value,
                remove,
            })
    }

    fn arb_record() -> impl Strategy<Value = MetadataRecord> {
        prop_oneof![
            arb_register_broker().prop_map(MetadataRecord::from),
            (any::<i32>(), any::<i64>()).prop_map(|(broker_id, broker_epoch)| {
                UnregisterBrokerRecord {
                    broker_id,
                    broker_epoch,
                }
                .into()
            }),
            (arb_string(), arb_uuid())
                .prop_map(|(name, topic_id)| TopicRecord { name, topic_id }.into()),
            arb_partition().prop_map(MetadataRecord::from),
            (
                any::<i8>(),
                arb_string(),
                arb_string(),
                prop::option::of(arb_string())
            )
                .prop_map(|(resource_type, resource_name, name, value)| {
                    ConfigRecord {
                        resource_type,
                        resource_name,
                        name,
                        value,
                    }
                    .into()
                }),
            arb_partition_change().prop_map(MetadataRecord::from),
            (any::<i32>(), any::<i64>())
                .prop_map(|(id, epoch)| FenceBrokerRecord { id, epoch }.into()),
            (any::<i32>(), any::<i64>())
                .prop_map(|(id, epoch)| UnfenceBrokerRecord { id, epoch }.into()),
            arb_uuid().prop_map(|topic_id| RemoveTopicRecord { topic_id }.into()),
            (arb_string(), any::<i16>()).prop_map(|(name, feature_level)| {
                FeatureLevelRecord {
                    name,
                    feature_level,
                }
                .into()
            }),
            arb_client_quota().prop_map(MetadataRecord::from),
            (any::<i32>(), any::<i64>(), any::<i64>()).prop_map(
                |(broker_id, broker_epoch, next_producer_id)| {
                    ProducerIdsRecord {
                        broker_id,
                        broker_epoch,
                        next_producer_id,
                    }
                    .into()
                }
            ),
            (
                any::<i32>(),
                any::<i64>(),
                any::<i8>(),
                any::<i8>(),
                arb_uuids()
            )
                .prop_map(
                    |(broker_id, broker_epoch, fenced, in_controlled_shutdown, log_dirs)| {
                        BrokerRegistrationChangeRecord {
                            broker_id,
                            broker_epoch,
                            fenced,
                            in_controlled_shutdown,
                            log_dirs,
                        }
                        .into()
                    }
                ),
            Just(MetadataRecord::NoOp(NoOpRecord {})),
        ]
    }

    proptest! {
        #[test]
        fn round_trip_at_newest_version(record in arb_record()) {
            let encoded = record.encode();
            prop_assert_eq!(&record.encode_version(record.newest_version()).unwrap(), &encoded);
            let (decoded, version) = MetadataRecord::decode_versioned(&encoded).unwrap();
            prop_assert_eq!(version, record.newest_version());
            prop_assert_eq!(&decoded, &record);
            prop_assert_eq!(decoded.encode(), encoded);
        }

        #[test]
        fn every_version_round_trips_or_refuses(record in arb_record()) {
            for version in record.lowest_version()..=record.newest_version() {
                match record.encode_version(version) {
                    Ok(encoded) => {
                        let (decoded, read_version) =
                            MetadataRecord::decode_versioned(&encoded).unwrap();
                        prop_assert_eq!(read_version, version);
                        prop_assert_eq!(&decoded, &record);
                    }
                    Err(MetadataRecordError::NonDefaultFieldUnsupported { .. }) => {}
                    Err(other) => prop_assert!(false, "unexpected {other}"),
                }
            }
        }

        #[test]
        fn decode_of_random_bytes_never_panics(data in prop::collection::vec(any::<u8>(), 0..96)) {
            let _ = MetadataRecord::decode(&data);
        }

        #[test]
        fn decode_behind_a_valid_frame_never_panics(
            record_type in 0u8..=21,
            version in 0u8..=3,
            body in prop::collection::vec(any::<u8>(), 0..96),
        ) {
            let data = bytes(&[&[0x01, record_type, version], &body]);
            let _ = MetadataRecord::decode(&data);
        }

        #[test]
        fn decode_of_corrupted_records_never_panics(
            record in arb_record(),
            position in any::<prop::sample::Index>(),
            xor in 1u8..=255,
            cut in any::<prop::sample::Index>(),
        ) {
            let mut encoded = record.encode();
            let at = position.index(encoded.len());
            encoded[at] ^= xor;
            let _ = MetadataRecord::decode(&encoded);
            let keep = cut.index(encoded.len());
            prop_assert!(MetadataRecord::decode(&record.encode()[..keep]).is_err());
        }
    }
}
