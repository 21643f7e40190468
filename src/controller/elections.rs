//! Leader elections the controller makes on request or on its own (Kafka's
//! `ReplicationControlManager.electLeaders`, `maybeBalancePartitionLeaders` and unclean
//! elections): back to the preferred replica, the first of the assignment, when it is in sync
//! and alive, so leadership spreads as the assignment placed it again after brokers restart; and,
//! where `unclean.leader.election.enable` allows it, to a live replica outside the ISR when the
//! partition has no leader the ISR could give it (risking the loss of records only the dead ISR
//! held, which is what that setting accepts).
//!
//! Pure functions of the image: they return PartitionChangeRecords and never write anything.

use uuid::Uuid;

use super::errors::ControllerError;
use super::partition_change::is_active;
use crate::metadata::records::PartitionChangeRecord;
use crate::metadata::{MetadataImage, PartitionRegistration};

/// ElectLeaders' election type (Kafka's `ElectionType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ElectionType {
    /// 0: the preferred replica, if it is in the ISR and alive.
    Preferred,
    /// 1: a leader from the ISR if one is alive, else any live replica.
    Unclean,
}

impl ElectionType {
    pub fn from_wire(value: i8) -> Option<ElectionType> {
        match value {
            0 => Some(ElectionType::Preferred),
            1 => Some(ElectionType::Unclean),
            _ => None,
        }
    }
}

/// Most partitions one automatic rebalance moves (Kafka's `maxElectionsPerImbalance`), so one
/// batch of records stays small; the rest follow at the next check.
pub const MAX_ELECTIONS_PER_BALANCE: usize = 1000;

/// The change that elects the `election` leader of one partition, or why there is none.
pub fn elect(
    image: &MetadataImage,
    topic_id: Uuid,
    partition_id: i32,
    partition: &PartitionRegistration,
    election: ElectionType,
) -> Result<PartitionChangeRecord, ControllerError> {
    let leader = match election {
        ElectionType::Preferred => {
            let Some(&preferred) = partition.replicas.first() else {
                return Err(ControllerError::PreferredLeaderNotAvailable(
                    "the partition has no replicas".into(),
                ));
            };
            if partition.leader == preferred {
                return Err(ControllerError::ElectionNotNeeded(format!(
                    "replica {preferred} already leads"
                )));
            }
            if !partition.isr.contains(&preferred) || !is_active(image, preferred) {
                return Err(ControllerError::PreferredLeaderNotAvailable(format!(
                    "preferred replica {preferred} is not in the ISR {:?} or not alive",
                    partition.isr
                )));
            }
            preferred
        }
        ElectionType::Unclean => {
            if partition.leader >= 0 && is_active(image, partition.leader) {
                return Err(ControllerError::ElectionNotNeeded(format!(
                    "replica {} leads and is alive",
                    partition.leader
                )));
            }
            let clean = partition
                .replicas
                .iter()
                .copied()
                .find(|&r| partition.isr.contains(&r) && is_active(image, r));
            match clean {
                Some(r) => r,
                None => {
                    let Some(r) = partition
                        .replicas
                        .iter()
                        .copied()
                        .find(|&r| is_active(image, r))
                    else {
                        return Err(ControllerError::EligibleLeadersNotAvailable(format!(
                            "none of the replicas {:?} is alive",
                            partition.replicas
                        )));
                    };
                    // Out of the ISR: it becomes the whole ISR, as Kafka's unclean election.
                    return Ok(PartitionChangeRecord {
                        partition_id,
                        topic_id,
                        isr: Some(vec![r]),
                        leader: r,
                        ..PartitionChangeRecord::default()
                    });
                }
            }
        }
    };
    Ok(PartitionChangeRecord {
        partition_id,
        topic_id,
        leader,
        ..PartitionChangeRecord::default()
    })
}

/// `auto.leader.rebalance.enable`: every partition whose preferred replica is in sync and
/// alive but does not lead, at most `MAX_ELECTIONS_PER_BALANCE`.
pub fn preferred_leader_elections(image: &MetadataImage) -> Vec<PartitionChangeRecord> {
    image
        .topics()
        .into_iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .filter_map(|(&id, p)| elect(image, t.id, id, p, ElectionType::Preferred).ok())
        })
        .take(MAX_ELECTIONS_PER_BALANCE)
        .collect()
}

/// Leaderless partitions of topics that allow unclean elections (`unclean_allowed(topic)`),
/// given a live replica to lead them.
pub fn unclean_leader_elections(
    image: &MetadataImage,
    unclean_allowed: impl Fn(&str) -> bool,
) -> Vec<PartitionChangeRecord> {
    let mut records = Vec::new();
    for t in image.topics() {
        let leaderless = t
            .partitions
            .values()
            .any(|p| p.leader == PartitionChangeRecord::NO_LEADER);
        if !leaderless || !unclean_allowed(&t.name) {
            continue;
        }
        for (&id, p) in &t.partitions {
            if p.leader == PartitionChangeRecord::NO_LEADER
                && let Ok(record) = elect(image, t.id, id, p, ElectionType::Unclean)
            {
                records.push(record);
            }
        }
    }
    records
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::partition_change::tests::image;

    const TOPIC: Uuid = Uuid::from_u128(7);

    fn partition(image: &MetadataImage, id: i32) -> PartitionRegistration {
        image.topic("t").expect("t").partitions[&id].clone()
    }

    #[test]
    fn preferred_election_moves_leadership_back_to_the_first_replica() {
        let image = image(
            &[(1, false), (2, false), (3, false)],
            &[
                (&[1, 2, 3], &[1, 2, 3], 2),
                (&[1, 2, 3], &[1, 2, 3], 1),
                (&[1, 2, 3], &[2, 3], 2),
            ],
        );
        let r = elect(
            &image,
            TOPIC,
            0,
            &partition(&image, 0),
            ElectionType::Preferred,
        )
        .expect("elected");
        assert_eq!((r.partition_id, r.leader, r.isr), (0, 1, None));
        assert!(matches!(
            elect(
                &image,
                TOPIC,
                1,
                &partition(&image, 1),
                ElectionType::Preferred
            ),
            Err(ControllerError::ElectionNotNeeded(_))
        ));
        // Out of sync: it must catch up and rejoin the ISR first.
        assert!(matches!(
            elect(
                &image,
                TOPIC,
                2,
                &partition(&image, 2),
                ElectionType::Preferred
            ),
            Err(ControllerError::PreferredLeaderNotAvailable(_))
        ));
        let all = preferred_leader_elections(&image);
        assert_eq!(
            all.iter()
                .map(|r| (r.partition_id, r.leader))
                .collect::<Vec<_>>(),
            vec![(0, 1)]
        );
    }

    #[test]
    fn a_fenced_preferred_replica_is_not_elected() {
        let image = image(&[(1, true), (2, false)], &[(&[1, 2], &[1, 2], 2)]);
        assert!(preferred_leader_elections(&image).is_empty());
    }

    #[test]
    fn unclean_election_prefers_the_isr_and_falls_back_to_any_live_replica() {
        let image = image(
            &[(1, true), (2, false), (3, false)],
            &[
                // The last ISR member is dead: replica 2 (out of sync) takes over alone.
                (&[1, 2, 3], &[1], -1),
                // An ISR member is alive: that is a clean election.
                (&[1, 2, 3], &[1, 3], -1),
                // A live leader needs no election.
                (&[2, 3], &[2, 3], 2),
                // Nobody alive.
                (&[1], &[1], -1),
            ],
        );
        let r = elect(
            &image,
            TOPIC,
            0,
            &partition(&image, 0),
            ElectionType::Unclean,
        )
        .expect("unclean");
        assert_eq!((r.leader, r.isr), (2, Some(vec![2])));
        let r = elect(
            &image,
            TOPIC,
            1,
            &partition(&image, 1),
            ElectionType::Unclean,
        )
        .expect("clean");
        assert_eq!((r.leader, r.isr), (3, None));
        assert!(matches!(
            elect(
                &image,
                TOPIC,
                2,
                &partition(&image, 2),
                ElectionType::Unclean
            ),
            Err(ControllerError::ElectionNotNeeded(_))
        ));
        assert!(matches!(
            elect(
                &image,
                TOPIC,
                3,
                &partition(&image, 3),
                ElectionType::Unclean
            ),
            Err(ControllerError::EligibleLeadersNotAvailable(_))
        ));
        // Only where the topic allows it.
        assert!(unclean_leader_elections(&image, |_| false).is_empty());
        let leaders: Vec<(i32, i32)> = unclean_leader_elections(&image, |t| t == "t")
            .iter()
            .map(|r| (r.partition_id, r.leader))
            .collect();
        assert_eq!(leaders, vec![(0, 2), (1, 3)]);
    }
}
