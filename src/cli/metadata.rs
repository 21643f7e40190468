//! `kraftd metadata dump`: the metadata log as readable records, like Kafka's
//! `kafka-dump-log.sh --cluster-metadata-decoder`. Reads the segment files directly and
//! read-only, so it is safe beside a running node.

use std::path::{Path, PathBuf};

use bytes::Bytes;
use kafka_protocol::messages::LeaderChangeMessage;
use kafka_protocol::protocol::Decodable;

use crate::metadata::records::MetadataRecord;
use crate::protocol::record_batch::BatchIter;
use crate::raft::METADATA_LOG_DIR_NAME;

/// Kafka's ControlRecordType for a leader change.
const LEADER_CHANGE: i16 = 2;

pub(crate) fn dump(metadata_log_dir: &Path, out: &mut impl std::io::Write) -> Result<(), String> {
    let dir = metadata_log_dir.join(METADATA_LOG_DIR_NAME);
    let mut segments: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map_err(|e| {
            format!(
                "{}: {e}. Fix: point -c at the node's server.properties",
                dir.display()
            )
        })?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "log"))
        .collect();
    segments.sort();
    let mut w = |line: String| writeln!(out, "{line}").map_err(|e| e.to_string());
    for segment in segments {
        let bytes = std::fs::read(&segment).map_err(|e| format!("{}: {e}", segment.display()))?;
        w(format!("# {}", segment.display()))?;
        for batch in BatchIter::new(&bytes) {
            let batch = match batch {
                Ok(b) => b,
                Err(e) => {
                    w(format!("# stopped at a malformed batch: {e}"))?;
                    break;
                }
            };
            let h = &batch.header;
            w(format!(
                "baseOffset: {} lastOffset: {} leaderEpoch: {} records: {}{}",
                h.base_offset(),
                h.last_offset(),
                h.partition_leader_epoch(),
                h.records_count(),
                if h.is_control() { " (control)" } else { "" }
            ))?;
            let Some(records) = batch.records() else {
                w("  (compressed batch: not decoded)".into())?;
                continue;
            };
            for record in records.flatten() {
                let line = if h.is_control() {
                    let kind = record
                        .key
                        .filter(|k| k.len() >= 4)
                        .map(|k| i16::from_be_bytes([k[2], k[3]]))
                        .unwrap_or(-1);
                    match (kind, record.value) {
                        (LEADER_CHANGE, Some(v)) => {
                            match LeaderChangeMessage::decode(&mut Bytes::copy_from_slice(v), 0) {
                                Ok(m) => format!(
                                    "LeaderChange(leaderId={}, voters={:?})",
                                    m.leader_id.0,
                                    m.voters.iter().map(|v| v.voter_id).collect::<Vec<_>>()
                                ),
                                Err(e) => format!("LeaderChange(undecodable: {e})"),
                            }
                        }
                        _ => format!("ControlRecord(type={kind})"),
                    }
                } else {
                    match record.value.map(MetadataRecord::decode) {
                        Some(Ok(r)) => r.to_string(),
                        Some(Err(e)) => format!("undecodable record: {e}"),
                        None => "null value".into(),
                    }
                };
                w(format!("  {}: {line}", record.offset))?;
            }
        }
    }
    Ok(())
}
