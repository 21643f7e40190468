//! Replica placement for new partitions: spread leaders and followers evenly over the usable
//! brokers, alternating racks when `broker.rack` is set.

use crate::metadata::BrokerRegistration;

use super::ControllerError;

/// Orders brokers so that consecutive ones sit in different racks when racks are known, as
/// Kafka's rack-aware assignment does.
fn rack_alternated(brokers: &[&BrokerRegistration]) -> Vec<i32> {
    use std::collections::BTreeMap;
    let mut by_rack: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for b in brokers {
        by_rack
            .entry(b.rack.as_deref().unwrap_or(""))
            .or_default()
            .push(b.id);
    }
    let mut out = Vec::with_capacity(brokers.len());
    let mut round = 0;
    while out.len() < brokers.len() {
        for ids in by_rack.values() {
            if let Some(id) = ids.get(round) {
                out.push(*id);
            }
        }
        round += 1;
    }
    out
}

/// Replica lists for partitions `first..first+count`, starting at a rotating offset so that
/// leadership of successive partitions moves round the brokers.
pub fn place(
    brokers: &[&BrokerRegistration],
    first_partition: i32,
    count: i32,
    replication_factor: i16,
) -> Result<Vec<Vec<i32>>, ControllerError> {
    let rf = replication_factor as usize;
    if brokers.len() < rf {
        return Err(ControllerError::InvalidReplicationFactor(format!(
            "Unable to replicate the partition {replication_factor} time(s): The target replication factor of {replication_factor} cannot be reached because only {} broker(s) are registered.",
            brokers.len()
        )));
    }
    let ordered = rack_alternated(brokers);
    let n = ordered.len();
    Ok((first_partition..first_partition + count)
        .map(|p| {
            let start = p as usize % n;
            (0..rf).map(|r| ordered[(start + r) % n]).collect()
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn broker(id: i32, rack: Option<&str>) -> BrokerRegistration {
        BrokerRegistration {
            id,
            epoch: 0,
            incarnation_id: uuid::Uuid::nil(),
            endpoints: vec![],
            rack: rack.map(String::from),
            fenced: false,
            in_controlled_shutdown: false,
        }
    }

    #[test]
    fn spreads_leaders_and_alternates_racks() {
        let b = [
            broker(1, Some("a")),
            broker(2, Some("a")),
            broker(3, Some("b")),
        ];
        let refs: Vec<_> = b.iter().collect();
        let placed = place(&refs, 0, 3, 2).unwrap();
        assert_eq!(placed, vec![vec![1, 3], vec![3, 2], vec![2, 1]]);
    }

    #[test]
    fn too_few_brokers_names_the_numbers() {
        let b = [broker(1, None)];
        let refs: Vec<_> = b.iter().collect();
        let err = place(&refs, 0, 1, 3).unwrap_err();
        assert!(err.to_string().contains("only 1 broker(s)"), "{err}");
    }
}
