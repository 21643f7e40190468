//! Leader and ISR changes when a broker's state changes, as Kafka's PartitionChangeBuilder and
//! `ReplicationControlManager.generateLeaderAndIsrUpdates` decide them before eligible leader
//! replicas (KIP-966): only clean elections, from the ISR, in replica order.
//!
//! Pure functions of the image: they return PartitionChangeRecords and never write anything.

use uuid::Uuid;

use crate::metadata::records::PartitionChangeRecord;
use crate::metadata::{MetadataImage, PartitionRegistration};

/// Whether `broker` may lead: registered, unfenced and not in controlled shutdown (Kafka's
/// `ClusterControlManager.isActive`).
pub fn is_active(image: &MetadataImage, broker: i32) -> bool {
    image
        .brokers
        .get(&broker)
        .is_some_and(|b| !b.fenced && !b.in_controlled_shutdown)
}

/// Which partitions to look at, and how the broker whose state changes is treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BrokerChange {
    /// Fenced or entering controlled shutdown: it leaves every ISR it is in (unless it is the
    /// last member) and may not lead.
    Remove(i32),
    /// Being unfenced in the same batch: it may lead a leaderless partition although the image
    /// still shows it fenced.
    Add(i32),
}

/// The PartitionChangeRecords for `change`: for `Remove`, every partition whose ISR holds the
/// broker; for `Add`, every partition without a leader.
pub fn leader_and_isr_updates(
    image: &MetadataImage,
    change: BrokerChange,
) -> Vec<PartitionChangeRecord> {
    let acceptable = |r: i32| match change {
        BrokerChange::Remove(b) => r != b && is_active(image, r),
        BrokerChange::Add(b) => r == b || is_active(image, r),
    };
    let mut records = Vec::new();
    for topic in image.topics() {
        for (&partition_id, partition) in &topic.partitions {
            let target_isr: Vec<i32> = match change {
                BrokerChange::Remove(b) if partition.isr.contains(&b) => {
                    partition.isr.iter().copied().filter(|&r| r != b).collect()
                }
                BrokerChange::Add(_) if partition.leader == PartitionChangeRecord::NO_LEADER => {
                    partition.isr.clone()
                }
                _ => continue,
            };
            if let Some(record) =
                build_change(topic.id, partition_id, partition, target_isr, acceptable)
            {
                records.push(record);
            }
        }
    }
    records
}

/// One partition's change towards `target_isr`, or `None` when nothing would change.
pub fn build_change(
    topic_id: Uuid,
    partition_id: i32,
    partition: &PartitionRegistration,
    target_isr: Vec<i32>,
    acceptable_leader: impl Fn(i32) -> bool,
) -> Option<PartitionChangeRecord> {
    let valid_leader = |r: i32| target_isr.contains(&r) && acceptable_leader(r);
    // Keep a leader that is still valid; otherwise the first valid replica in replica order, so
    // the preferred replica wins when it can.
    let leader = if valid_leader(partition.leader) {
        partition.leader
    } else {
        partition
            .replicas
            .iter()
            .copied()
            .find(|&r| valid_leader(r))
            .unwrap_or(PartitionChangeRecord::NO_LEADER)
    };
    // Without eligible leader replicas the ISR is never emptied: the last member stays, so the
    // partition can elect it cleanly when it comes back.
    let isr = (!target_isr.is_empty() && target_isr != partition.isr).then_some(target_isr);
    let leader = if leader == partition.leader {
        PartitionChangeRecord::NO_LEADER_CHANGE
    } else {
        leader
    };
    if leader == PartitionChangeRecord::NO_LEADER_CHANGE && isr.is_none() {
        return None;
    }
    Some(PartitionChangeRecord {
        partition_id,
        topic_id,
        isr,
        leader,
        ..PartitionChangeRecord::default()
    })
}

/// Whether `broker` leads any partition (Kafka's `BrokersToIsrs.hasLeaderships`).
pub fn has_leaderships(image: &MetadataImage, broker: i32) -> bool {
    image
        .topics()
        .iter()
        .any(|t| t.partitions.values().any(|p| p.leader == broker))
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::metadata::records::{
        MetadataRecord, PartitionRecord, RegisterBrokerRecord, TopicRecord,
    };

    const NO_CHANGE: i32 = PartitionChangeRecord::NO_LEADER_CHANGE;
    const NO_LEADER: i32 = PartitionChangeRecord::NO_LEADER;

    fn partition(replicas: &[i32], isr: &[i32], leader: i32) -> PartitionRegistration {
        PartitionRegistration {
            replicas: replicas.to_vec(),
            isr: isr.to_vec(),
            leader,
            leader_epoch: 3,
            partition_epoch: 5,
        }
    }

    fn change(
        p: &PartitionRegistration,
        target_isr: &[i32],
        acceptable: &[i32],
    ) -> Option<(i32, Option<Vec<i32>>)> {
        build_change(Uuid::nil(), 0, p, target_isr.to_vec(), |r| {
            acceptable.contains(&r)
        })
        .map(|r| (r.leader, r.isr))
    }

    #[test]
    fn a_fenced_leader_hands_over_to_the_first_active_isr_replica_in_replica_order() {
        let p = partition(&[1, 2, 3], &[3, 1, 2], 1);
        assert_eq!(
            change(&p, &[3, 2], &[2, 3]),
            Some((2, Some(vec![3, 2]))),
            "replica order, not ISR order, picks the new leader"
        );
    }

    #[test]
    fn a_fenced_follower_only_leaves_the_isr() {
        let p = partition(&[1, 2], &[1, 2], 1);
        assert_eq!(change(&p, &[1], &[1]), Some((NO_CHANGE, Some(vec![1]))));
    }

    #[test]
    fn the_last_isr_member_stays_and_the_partition_loses_its_leader() {
        let p = partition(&[1, 2], &[1], 1);
        assert_eq!(change(&p, &[], &[2]), Some((NO_LEADER, None)));
    }

    #[test]
    fn a_fenced_isr_member_is_not_elected() {
        // Broker 2 is in the ISR but fenced: no clean leader is left.
        let p = partition(&[1, 2], &[1, 2], 1);
        assert_eq!(change(&p, &[2], &[]), Some((NO_LEADER, Some(vec![2]))));
    }

    #[test]
    fn a_leaderless_partition_elects_the_unfenced_isr_member() {
        let p = partition(&[2, 1], &[1], NO_LEADER);
        assert_eq!(change(&p, &[1], &[1]), Some((1, None)));
        // A replica outside the ISR is never elected (no unclean election).
        let p = partition(&[2, 1], &[1], NO_LEADER);
        assert_eq!(change(&p, &[1], &[2]), None);
    }

    #[test]
    fn nothing_changes_when_the_leader_is_still_valid_and_the_isr_is_the_same() {
        let p = partition(&[1, 2], &[1, 2], 1);
        assert_eq!(change(&p, &[1, 2], &[1, 2]), None);
    }

    /// Brokers (id, fenced) and one topic "t" (id 7) whose partitions are (replicas, isr,
    /// leader); the elections tests use it too.
    pub(in crate::controller) fn image(
        brokers: &[(i32, bool)],
        partitions: &[(&[i32], &[i32], i32)],
    ) -> MetadataImage {
        let mut image = MetadataImage::default();
        for &(id, fenced) in brokers {
            image.apply(&MetadataRecord::RegisterBroker(RegisterBrokerRecord {
                broker_id: id,
                broker_epoch: id as i64,
                fenced,
                ..RegisterBrokerRecord::default()
            }));
        }
        let topic_id = Uuid::from_u128(7);
        image.apply(&MetadataRecord::Topic(TopicRecord {
            name: "t".into(),
            topic_id,
        }));
        for (i, &(replicas, isr, leader)) in partitions.iter().enumerate() {
            image.apply(&MetadataRecord::Partition(PartitionRecord {
                partition_id: i as i32,
                topic_id,
                replicas: replicas.to_vec(),
                isr: isr.to_vec(),
                leader,
                leader_epoch: 0,
                partition_epoch: 0,
                ..PartitionRecord::default()
            }));
        }
        image
    }

    #[test]
    fn removing_a_broker_touches_every_partition_whose_isr_holds_it() {
        let image = image(
            &[(1, false), (2, false), (3, false)],
            &[
                (&[1, 2], &[1, 2], 1), // led by 1: 2 takes over
                (&[2, 1], &[2, 1], 2), // 1 is a follower: leaves the ISR
                (&[2, 3], &[2, 3], 2), // 1 is not there: untouched
                (&[1], &[1], 1),       // only 1: leaderless, ISR kept
            ],
        );
        let records = leader_and_isr_updates(&image, BrokerChange::Remove(1));
        let got: Vec<_> = records
            .iter()
            .map(|r| (r.partition_id, r.leader, r.isr.clone()))
            .collect();
        assert_eq!(
            got,
            vec![
                (0, 2, Some(vec![2])),
                (1, NO_CHANGE, Some(vec![2])),
                (3, NO_LEADER, None),
            ]
        );
        assert!(has_leaderships(&image, 1));
        assert!(!has_leaderships(&image, 3));
    }

    #[test]
    fn adding_a_broker_elects_it_where_it_is_the_only_isr_member() {
        // Broker 1 is still fenced in the image: `Add` lets it lead anyway.
        let image = image(
            &[(1, true), (2, false)],
            &[
                (&[1], &[1], NO_LEADER),
                (&[2], &[2], 2),
                (&[2, 1], &[2], NO_LEADER),
            ],
        );
        let records = leader_and_isr_updates(&image, BrokerChange::Add(1));
        let got: Vec<_> = records
            .iter()
            .map(|r| (r.partition_id, r.leader, r.isr.clone()))
            .collect();
        // Partition 2 is leaderless with 2 in its ISR: the active broker 2 is elected too.
        assert_eq!(got, vec![(0, 1, None), (2, 2, None)]);
    }
}
