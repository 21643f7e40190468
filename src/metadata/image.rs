//! The metadata image: what the committed metadata log says, at one offset.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use uuid::Uuid;

use super::records::{MetadataRecord, config_resource_type};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub name: String,
    pub host: String,
    pub port: u16,
    pub security_protocol: i16,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerRegistration {
    pub id: i32,
    pub epoch: i64,
    pub incarnation_id: Uuid,
    pub endpoints: Vec<Endpoint>,
    pub rack: Option<String>,
    pub fenced: bool,
    pub in_controlled_shutdown: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionRegistration {
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
    pub leader: i32,
    pub leader_epoch: i32,
    pub partition_epoch: i32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicImage {
    pub name: String,
    pub id: Uuid,
    pub partitions: BTreeMap<i32, PartitionRegistration>,
}

/// Internal topics, as Kafka names them.
pub fn is_internal_topic(name: &str) -> bool {
    name == "__consumer_offsets" || name == "__transaction_state"
}

#[derive(Debug, Clone, Default)]
pub struct MetadataImage {
    /// Every record below this offset is folded in.
    pub offset: i64,
    pub features: BTreeMap<String, i16>,
    pub brokers: BTreeMap<i32, BrokerRegistration>,
    topics_by_id: HashMap<Uuid, Arc<TopicImage>>,
    topic_ids_by_name: HashMap<String, Uuid>,
    /// (resource type, resource name) -> key -> value.
    configs: HashMap<(i8, String), BTreeMap<String, String>>,
    /// The next producer id block starts here (ProducerIdsRecord).
    pub next_producer_id: i64,
}

impl MetadataImage {
    pub fn topic(&self, name: &str) -> Option<&Arc<TopicImage>> {
        self.topic_ids_by_name
            .get(name)
            .and_then(|id| self.topics_by_id.get(id))
    }

    pub fn topic_by_id(&self, id: &Uuid) -> Option<&Arc<TopicImage>> {
        self.topics_by_id.get(id)
    }

    /// Topics sorted by name, so responses are stable.
    pub fn topics(&self) -> Vec<&Arc<TopicImage>> {
        let mut topics: Vec<_> = self.topics_by_id.values().collect();
        topics.sort_by(|a, b| a.name.cmp(&b.name));
        topics
    }

    pub fn topic_count(&self) -> usize {
        self.topics_by_id.len()
    }

    pub fn topic_configs(&self, topic: &str) -> BTreeMap<String, String> {
        self.configs(config_resource_type::TOPIC, topic)
    }

    pub fn configs(&self, resource_type: i8, name: &str) -> BTreeMap<String, String> {
        self.configs
            .get(&(resource_type, name.to_string()))
            .cloned()
            .unwrap_or_default()
    }

    /// Brokers clients may be sent to: registered and not fenced.
    pub fn live_brokers(&self) -> impl Iterator<Item = &BrokerRegistration> {
        self.brokers.values().filter(|b| !b.fenced)
    }

    /// Folds one record in. Records are applied in log order; one that refers to something
    /// absent (a partition of a removed topic, say) is ignored as Kafka's loader does.
    pub fn apply(&mut self, record: &MetadataRecord) {
        match record {
            MetadataRecord::Topic(r) => {
                self.topic_ids_by_name.insert(r.name.clone(), r.topic_id);
                self.topics_by_id.insert(
                    r.topic_id,
                    Arc::new(TopicImage {
                        name: r.name.clone(),
                        id: r.topic_id,
                        partitions: BTreeMap::new(),
                    }),
                );
            }
            MetadataRecord::Partition(r) => {
                if let Some(topic) = self.topics_by_id.get_mut(&r.topic_id) {
                    Arc::make_mut(topic).partitions.insert(
                        r.partition_id,
                        PartitionRegistration {
                            replicas: r.replicas.clone(),
                            isr: r.isr.clone(),
                            leader: r.leader,
                            leader_epoch: r.leader_epoch,
                            partition_epoch: r.partition_epoch,
                        },
                    );
                }
            }
            MetadataRecord::PartitionChange(r) => {
                if let Some(p) = self
                    .topics_by_id
                    .get_mut(&r.topic_id)
                    .and_then(|t| Arc::make_mut(t).partitions.get_mut(&r.partition_id))
                {
                    if let Some(isr) = &r.isr {
                        p.isr = isr.clone();
                    }
                    if let Some(replicas) = &r.replicas {
                        p.replicas = replicas.clone();
                    }
                    // -2 means "no change" in PartitionChangeRecord.
                    if r.leader != -2 {
                        p.leader = r.leader;
                        p.leader_epoch += 1;
                    }
                    p.partition_epoch += 1;
                }
            }
            MetadataRecord::RemoveTopic(r) => {
                if let Some(topic) = self.topics_by_id.remove(&r.topic_id) {
                    self.topic_ids_by_name.remove(&topic.name);
                    self.configs
                        .remove(&(config_resource_type::TOPIC, topic.name.clone()));
                }
            }
            MetadataRecord::Config(r) => {
                let entry = self
                    .configs
                    .entry((r.resource_type, r.resource_name.clone()))
                    .or_default();
                match &r.value {
                    Some(v) => {
                        entry.insert(r.name.clone(), v.clone());
                    }
                    None => {
                        entry.remove(&r.name);
                    }
                }
            }
            MetadataRecord::FeatureLevel(r) => {
                self.features.insert(r.name.clone(), r.feature_level);
            }
            MetadataRecord::RegisterBroker(r) => {
                self.brokers.insert(
                    r.broker_id,
                    BrokerRegistration {
                        id: r.broker_id,
                        epoch: r.broker_epoch,
                        incarnation_id: r.incarnation_id,
                        endpoints: r
                            .end_points
                            .iter()
                            .map(|e| Endpoint {
                                name: e.name.clone(),
                                host: e.host.clone(),
                                port: e.port,
                                security_protocol: e.security_protocol,
                            })
                            .collect(),
                        rack: r.rack.clone(),
                        fenced: r.fenced,
                        in_controlled_shutdown: r.in_controlled_shutdown,
                    },
                );
            }
            MetadataRecord::UnregisterBroker(r) => {
                self.brokers.remove(&r.broker_id);
            }
            MetadataRecord::FenceBroker(r) => {
                if let Some(b) = self.brokers.get_mut(&r.id) {
                    b.fenced = true;
                }
            }
            MetadataRecord::UnfenceBroker(r) => {
                if let Some(b) = self.brokers.get_mut(&r.id) {
                    b.fenced = false;
                }
            }
            MetadataRecord::BrokerRegistrationChange(r) => {
                if let Some(b) = self.brokers.get_mut(&r.broker_id) {
                    // 0 = no change, 1 = true (fenced), -1 = false, as Kafka's BrokerRegistrationFencingChange.
                    match r.fenced {
                        1 => b.fenced = true,
                        -1 => b.fenced = false,
                        _ => {}
                    }
                    match r.in_controlled_shutdown {
                        1 => b.in_controlled_shutdown = true,
                        -1 => b.in_controlled_shutdown = false,
                        _ => {}
                    }
                }
            }
            MetadataRecord::ProducerIds(r) => {
                self.next_producer_id = r.next_producer_id;
            }
            _ => {}
        }
    }
}
