//! Topic changes as records: CreateTopics, DeleteTopics, CreatePartitions. Each function checks
//! against the image and returns one result per request entry plus the records for the ones
//! that succeed.

use std::collections::{BTreeMap, HashSet};

use uuid::Uuid;

use super::{ControllerConfig, ControllerError, placement};
use crate::config::topic::validate_topic_configs;
use crate::metadata::MetadataImage;

/// One result per requested topic, and the records for those that succeed.
pub(super) type TopicResults<T> = (Vec<Result<T, ControllerError>>, Vec<MetadataRecord>);
use crate::metadata::records::{
    ConfigRecord, MetadataRecord, PartitionRecord, RemoveTopicRecord, TopicRecord,
    config_resource_type,
};

/// Kafka's limit: a topic name must fit in a partition directory name with its suffixes.
pub const MAX_TOPIC_NAME_LEN: usize = 249;

#[derive(Debug, Clone)]
pub struct NewTopic {
    pub name: String,
    /// -1: `num.partitions`.
    pub num_partitions: i32,
    /// -1: `default.replication.factor`.
    pub replication_factor: i16,
    /// Manual assignment: partition -> replicas.
    pub assignments: BTreeMap<i32, Vec<i32>>,
    pub configs: BTreeMap<String, Option<String>>,
}

#[derive(Debug, Clone)]
pub struct CreatedTopic {
    pub topic_id: Uuid,
    pub num_partitions: i32,
    pub replication_factor: i16,
}

#[derive(Debug, Clone)]
pub enum TopicRef {
    Name(String),
    Id(Uuid),
}

#[derive(Debug, Clone)]
pub struct NewPartitions {
    pub name: String,
    pub count: i32,
    pub assignments: Option<Vec<Vec<i32>>>,
}

/// Kafka's `Topic.validate`, with its messages.
pub fn validate_topic_name(name: &str) -> Result<(), ControllerError> {
    if name.is_empty() {
        return Err(ControllerError::InvalidTopic(
            "Topic name is illegal, it can't be empty".into(),
        ));
    }
    if name == "." || name == ".." {
        return Err(ControllerError::InvalidTopic(
            "Topic name cannot be \".\" or \"..\"".into(),
        ));
    }
    if name.len() > MAX_TOPIC_NAME_LEN {
        return Err(ControllerError::InvalidTopic(format!(
            "Topic name is illegal, it can't be longer than {MAX_TOPIC_NAME_LEN} characters, topic name: {name}"
        )));
    }
    if !name
        .bytes()
        .all(|c| c.is_ascii_alphanumeric() || c == b'.' || c == b'_' || c == b'-')
    {
        return Err(ControllerError::InvalidTopic(format!(
            "Topic name \"{name}\" is illegal, it contains a character other than ASCII alphanumerics, '.', '_' and '-'"
        )));
    }
    Ok(())
}

/// '.' and '_' collide in metric names, so Kafka refuses a name that differs from an existing
/// one only there.
fn collision_key(name: &str) -> String {
    name.replace('.', "_")
}

pub(super) fn create_topics(
    config: &ControllerConfig,
    image: &MetadataImage,
    topics: Vec<NewTopic>,
) -> TopicResults<CreatedTopic> {
    let brokers: Vec<_> = image.live_brokers().collect();
    let existing: HashSet<String> = image
        .topics()
        .iter()
        .map(|t| collision_key(&t.name))
        .collect();
    let mut seen_in_request = HashSet::new();
    let mut records = Vec::new();
    let mut results = Vec::with_capacity(topics.len());
    for topic in topics {
        let result = (|| {
            validate_topic_name(&topic.name)?;
            if image.topic(&topic.name).is_some() {
                return Err(ControllerError::TopicAlreadyExists(topic.name.clone()));
            }
            let key = collision_key(&topic.name);
            if existing.contains(&key) || !seen_in_request.insert(key) {
                return Err(ControllerError::InvalidTopic(format!(
                    "Topic '{}' collides with an existing topic (names may not differ only in '.' and '_').",
                    topic.name
                )));
            }
            let configs: BTreeMap<String, String> = topic
                .configs
                .iter()
                .filter_map(|(k, v)| Some((k.clone(), v.clone()?)))
                .collect();
            validate_topic_configs(&configs, &config.broker)
                .map_err(|e| ControllerError::InvalidConfig(e.to_string()))?;
            let assignments: Vec<Vec<i32>> = if topic.assignments.is_empty() {
                let partitions = if topic.num_partitions == -1 {
                    config.default_num_partitions
                } else {
                    topic.num_partitions
                };
                let rf = if topic.replication_factor == -1 {
                    config.default_replication_factor
                } else {
                    topic.replication_factor
                };
                if partitions <= 0 {
                    return Err(ControllerError::InvalidPartitions(
                        "Number of partitions must be larger than 0.".into(),
                    ));
                }
                if rf <= 0 {
                    return Err(ControllerError::InvalidReplicationFactor(
                        "Replication factor must be larger than 0.".into(),
                    ));
                }
                placement::place(&brokers, 0, partitions, rf)?
            } else {
                if topic.num_partitions != -1 || topic.replication_factor != -1 {
                    return Err(ControllerError::InvalidRequest(
                        "Both numPartitions or replicationFactor and replicasAssignments were set. Both cannot be used at the same time.".into(),
                    ));
                }
                let expected: Vec<i32> = (0..topic.assignments.len() as i32).collect();
                let got: Vec<i32> = topic.assignments.keys().copied().collect();
                if got != expected {
                    return Err(ControllerError::InvalidReplicaAssignment(
                        "Partitions should be consecutive and start from 0.".into(),
                    ));
                }
                validate_assignment(image, topic.assignments.values())?;
                topic.assignments.values().cloned().collect()
            };
            let topic_id = Uuid::new_v4();
            records.push(MetadataRecord::Topic(TopicRecord {
                name: topic.name.clone(),
                topic_id,
            }));
            for (k, v) in &topic.configs {
                if let Some(v) = v {
                    records.push(MetadataRecord::Config(ConfigRecord {
                        resource_type: config_resource_type::TOPIC,
                        resource_name: topic.name.clone(),
                        name: k.clone(),
                        value: Some(v.clone()),
                    }));
                }
            }
            let rf = assignments.first().map(|r| r.len()).unwrap_or(0) as i16;
            for (p, replicas) in assignments.iter().enumerate() {
                records.push(partition_record(topic_id, p as i32, replicas));
            }
            Ok(CreatedTopic {
                topic_id,
                num_partitions: assignments.len() as i32,
                replication_factor: rf,
            })
        })();
        results.push(result);
    }
    (results, records)
}

fn validate_assignment<'a>(
    image: &MetadataImage,
    assignments: impl Iterator<Item = &'a Vec<i32>>,
) -> Result<(), ControllerError> {
    for replicas in assignments {
        if replicas.is_empty() {
            return Err(ControllerError::InvalidReplicaAssignment(
                "The manual partition assignment includes an empty replica list.".into(),
            ));
        }
        let unique: HashSet<_> = replicas.iter().collect();
        if unique.len() != replicas.len() {
            return Err(ControllerError::InvalidReplicaAssignment(format!(
                "The manual partition assignment includes a partition with duplicate replica IDs: {replicas:?}"
            )));
        }
        for r in replicas {
            if !image.brokers.contains_key(r) {
                return Err(ControllerError::InvalidReplicaAssignment(format!(
                    "The manual partition assignment includes broker {r}, but no such broker is registered."
                )));
            }
        }
    }
    Ok(())
}

fn partition_record(topic_id: Uuid, partition_id: i32, replicas: &[i32]) -> MetadataRecord {
    MetadataRecord::Partition(PartitionRecord {
        partition_id,
        topic_id,
        replicas: replicas.to_vec(),
        isr: replicas.to_vec(),
        removing_replicas: vec![],
        adding_replicas: vec![],
        leader: replicas.first().copied().unwrap_or(-1),
        leader_recovery_state: 0,
        leader_epoch: 0,
        partition_epoch: 0,
        directories: vec![Uuid::nil(); replicas.len()],
        eligible_leader_replicas: None,
        last_known_elr: None,
    })
}

pub(super) fn delete_topics(
    config: &ControllerConfig,
    image: &MetadataImage,
    topics: Vec<TopicRef>,
) -> TopicResults<(String, Uuid)> {
    let mut records = Vec::new();
    let mut deleted = HashSet::new();
    let results = topics
        .into_iter()
        .map(|t| {
            if !config.delete_topic_enable {
                return Err(ControllerError::TopicDeletionDisabled);
            }
            let topic = match &t {
                TopicRef::Name(n) => image
                    .topic(n)
                    .ok_or(ControllerError::UnknownTopicOrPartition)?,
                TopicRef::Id(id) => image
                    .topic_by_id(id)
                    .ok_or(ControllerError::UnknownTopicId)?,
            };
            if deleted.insert(topic.id) {
                records.push(MetadataRecord::RemoveTopic(RemoveTopicRecord {
                    topic_id: topic.id,
                }));
            }
            Ok((topic.name.clone(), topic.id))
        })
        .collect();
    (results, records)
}

pub(super) fn create_partitions(
    image: &MetadataImage,
    topics: Vec<NewPartitions>,
) -> TopicResults<()> {
    let brokers: Vec<_> = image.live_brokers().collect();
    let mut records = Vec::new();
    let results = topics
        .into_iter()
        .map(|req| {
            let topic = image
                .topic(&req.name)
                .ok_or(ControllerError::UnknownTopicOrPartition)?;
            let current = topic.partitions.len() as i32;
            if req.count < current {
                return Err(ControllerError::InvalidPartitions(format!(
                    "Topic currently has {current} partitions, which is higher than the requested {}.",
                    req.count
                )));
            }
            if req.count == current {
                return Err(ControllerError::InvalidPartitions(format!(
                    "Topic already has {current} partitions."
                )));
            }
            let adding = req.count - current;
            let rf = topic
                .partitions
                .values()
                .next()
                .map(|p| p.replicas.len())
                .unwrap_or(1) as i16;
            let assignments = match req.assignments {
                Some(a) => {
                    if a.len() as i32 != adding {
                        return Err(ControllerError::InvalidReplicaAssignment(format!(
                            "Attempted to add {adding} additional partition(s), but only {} assignment(s) were specified.",
                            a.len()
                        )));
                    }
                    validate_assignment(image, a.iter())?;
                    a
                }
                None => placement::place(&brokers, current, adding, rf)?,
            };
            for (i, replicas) in assignments.iter().enumerate() {
                records.push(partition_record(topic.id, current + i as i32, replicas));
            }
            Ok(())
        })
        .collect();
    (results, records)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_name_rules_match_kafka() {
        assert!(validate_topic_name("orders.v1_x-y").is_ok());
        for bad in ["", ".", "..", "a b", "ä", "x/y"] {
            assert!(
                matches!(
                    validate_topic_name(bad),
                    Err(ControllerError::InvalidTopic(_))
                ),
                "{bad:?}"
            );
        }
        assert!(validate_topic_name(&"a".repeat(249)).is_ok());
        let err = validate_topic_name(&"a".repeat(250)).unwrap_err();
        assert_eq!(err.code(), 17);
        assert!(err.to_string().contains("249"));
    }
}
