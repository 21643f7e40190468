//! Config changes as ConfigRecords: IncrementalAlterConfigs (SET, DELETE, APPEND, SUBTRACT) and
//! the legacy AlterConfigs (replace a resource's whole set), validated as Kafka's
//! ConfigurationControlManager does before anything is written.

use std::collections::{BTreeMap, HashSet};

use super::ControllerError;
use crate::config::ServerConfig;
use crate::config::defs::ConfigType;
use crate::config::topic::{topic_key, validate_topic_configs};
use crate::metadata::MetadataImage;
use crate::metadata::records::{ConfigRecord, MetadataRecord, config_resource_type};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigOp {
    Set,
    Delete,
    Append,
    Subtract,
}

impl ConfigOp {
    /// IncrementalAlterConfigs' wire codes.
    pub fn from_code(code: i8) -> Option<ConfigOp> {
        match code {
            0 => Some(ConfigOp::Set),
            1 => Some(ConfigOp::Delete),
            2 => Some(ConfigOp::Append),
            3 => Some(ConfigOp::Subtract),
            _ => None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct AlterConfigResource {
    pub resource_type: i8,
    pub resource_name: String,
    pub ops: Vec<(String, ConfigOp, Option<String>)>,
    /// Legacy AlterConfigs: keys not named are removed.
    pub replace_all: bool,
}

fn split_list(v: &str) -> Vec<String> {
    v.split(',')
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

pub(super) fn alter_configs(
    broker: &ServerConfig,
    image: &MetadataImage,
    resources: Vec<AlterConfigResource>,
) -> super::topics::TopicResults<()> {
    let mut records = Vec::new();
    let results = resources
        .into_iter()
        .map(|r| {
            let recs = alter_one(broker, image, &r)?;
            records.extend(recs);
            Ok(())
        })
        .collect();
    (results, records)
}

fn alter_one(
    broker: &ServerConfig,
    image: &MetadataImage,
    r: &AlterConfigResource,
) -> Result<Vec<MetadataRecord>, ControllerError> {
    match r.resource_type {
        config_resource_type::TOPIC => {}
        config_resource_type::BROKER => {
            return Err(ControllerError::InvalidRequest(format!(
                "kraftd does not change broker configs at runtime yet: set {} in server.properties and restart the node",
                r.ops
                    .iter()
                    .map(|(k, _, _)| k.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        other => {
            return Err(ControllerError::InvalidRequest(format!(
                "Unsupported resource type {other}"
            )));
        }
    }
    if image.topic(&r.resource_name).is_none() {
        return Err(ControllerError::UnknownTopicOrPartition);
    }
    let mut seen = HashSet::new();
    for (k, _, _) in &r.ops {
        if !seen.insert(k.as_str()) {
            return Err(ControllerError::InvalidRequest(format!(
                "Error due to duplicate config keys: {k}"
            )));
        }
    }
    let current = image.topic_configs(&r.resource_name);
    let mut next: BTreeMap<String, String> = if r.replace_all {
        BTreeMap::new()
    } else {
        current.clone()
    };
    for (key, op, value) in &r.ops {
        let Some(def) = topic_key(key) else {
            return Err(ControllerError::InvalidConfig(format!(
                "Unknown topic config name: {key}"
            )));
        };
        let is_list = def.ty == ConfigType::List;
        match op {
            ConfigOp::Set => match value {
                Some(v) => {
                    next.insert(key.clone(), v.clone());
                }
                None => {
                    next.remove(key);
                }
            },
            ConfigOp::Delete => {
                next.remove(key);
            }
            ConfigOp::Append | ConfigOp::Subtract if !is_list => {
                return Err(ControllerError::InvalidConfig(format!(
                    "Config value append/subtract is not allowed for config key: {key}"
                )));
            }
            ConfigOp::Append => {
                let mut list = split_list(next.get(key).map(String::as_str).unwrap_or(def.default));
                for v in split_list(value.as_deref().unwrap_or("")) {
                    if !list.contains(&v) {
                        list.push(v);
                    }
                }
                next.insert(key.clone(), list.join(","));
            }
            ConfigOp::Subtract => {
                let remove = split_list(value.as_deref().unwrap_or(""));
                let list: Vec<String> =
                    split_list(next.get(key).map(String::as_str).unwrap_or(def.default))
                        .into_iter()
                        .filter(|v| !remove.contains(v))
                        .collect();
                next.insert(key.clone(), list.join(","));
            }
        }
    }
    validate_topic_configs(&next, broker)
        .map_err(|e| ControllerError::InvalidConfig(e.to_string()))?;
    let mut records = Vec::new();
    for (k, v) in &next {
        if current.get(k) != Some(v) {
            records.push(config_record(&r.resource_name, k, Some(v.clone())));
        }
    }
    for k in current.keys() {
        if !next.contains_key(k) {
            records.push(config_record(&r.resource_name, k, None));
        }
    }
    Ok(records)
}

fn config_record(topic: &str, key: &str, value: Option<String>) -> MetadataRecord {
    MetadataRecord::Config(ConfigRecord {
        resource_type: config_resource_type::TOPIC,
        resource_name: topic.to_string(),
        name: key.to_string(),
        value,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metadata::records::TopicRecord;

    fn image_with_topic() -> MetadataImage {
        let mut image = MetadataImage::default();
        image.apply(&MetadataRecord::Topic(TopicRecord {
            name: "t".into(),
            topic_id: uuid::Uuid::new_v4(),
        }));
        image
    }

    fn broker() -> ServerConfig {
        ServerConfig::from_str(
            crate::config::server::SAMPLE_SERVER,
            std::path::Path::new("server.properties"),
            &[],
        )
        .unwrap()
    }

    fn alter(ops: Vec<(&str, ConfigOp, Option<&str>)>, replace_all: bool) -> AlterConfigResource {
        AlterConfigResource {
            resource_type: config_resource_type::TOPIC,
            resource_name: "t".into(),
            ops: ops
                .into_iter()
                .map(|(k, op, v)| (k.to_string(), op, v.map(String::from)))
                .collect(),
            replace_all,
        }
    }

    #[test]
    fn invalid_values_and_ops_are_refused_with_invalid_config() {
        let image = image_with_topic();
        let broker = broker();
        for (ops, replace) in [
            (vec![("retention.bytes", ConfigOp::Set, Some("lots"))], true),
            (
                vec![("retention.bytes", ConfigOp::Set, Some("lots"))],
                false,
            ),
            (vec![("retention.ms", ConfigOp::Append, Some("1"))], false),
            (vec![("no.such.key", ConfigOp::Set, Some("1"))], false),
        ] {
            let (results, records) = alter_configs(&broker, &image, vec![alter(ops, replace)]);
            assert_eq!(results[0].as_ref().unwrap_err().code(), 40);
            assert!(records.is_empty());
        }
    }

    #[test]
    fn append_and_subtract_edit_lists() {
        let mut image = image_with_topic();
        let broker = broker();
        let (results, records) = alter_configs(
            &broker,
            &image,
            vec![alter(
                vec![("cleanup.policy", ConfigOp::Append, Some("compact"))],
                false,
            )],
        );
        assert!(results[0].is_ok());
        for r in &records {
            image.apply(r);
        }
        assert_eq!(image.topic_configs("t")["cleanup.policy"], "delete,compact");
        let (_, records) = alter_configs(
            &broker,
            &image,
            vec![alter(
                vec![("cleanup.policy", ConfigOp::Subtract, Some("delete"))],
                false,
            )],
        );
        for r in &records {
            image.apply(r);
        }
        assert_eq!(image.topic_configs("t")["cleanup.policy"], "compact");
    }
}
