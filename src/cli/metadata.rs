//! `kraftd metadata dump`: the metadata log as readable records, like Kafka's
//! `kafka-dump-log.sh --cluster-metadata-decoder`. Snapshots (`.checkpoint`) come first, oldest
//! first, then the log segments, so the output reads in the order a node loads them. Reads the
//! files directly and read-only, so it is safe beside a running node.

use std::path::{Path, PathBuf};

use bytes::Bytes;
use kafka_protocol::messages::{
    KRaftVersionRecord, LeaderChangeMessage, SnapshotFooterRecord, SnapshotHeaderRecord,
    VotersRecord,
};
use kafka_protocol::protocol::Decodable;

use crate::metadata::records::MetadataRecord;
use crate::protocol::record_batch::BatchIter;
use crate::raft::METADATA_LOG_DIR_NAME;
use crate::raft::snapshot::{self, VoterSpec, control_record_type, control_type};

/// Said by the writer when the reader of stdout went away (`kraftd metadata dump | head`): the
/// dump stops quietly, as other command line tools do.
const OUTPUT_CLOSED: &str = "output closed";

fn write_line(out: &mut impl std::io::Write, line: String) -> Result<(), String> {
    writeln!(out, "{line}").map_err(|e| match e.kind() {
        std::io::ErrorKind::BrokenPipe => OUTPUT_CLOSED.to_string(),
        _ => e.to_string(),
    })
}

/// Ends a dump: a closed output is success.
fn finish(result: Result<(), String>) -> Result<(), String> {
    match result {
        Err(e) if e == OUTPUT_CLOSED => Ok(()),
        other => other,
    }
}

pub(crate) fn dump(metadata_log_dir: &Path, out: &mut impl std::io::Write) -> Result<(), String> {
    finish(dump_dir(metadata_log_dir, out))
}

/// Prints one file of record batches: a log segment or a snapshot.
pub(crate) fn dump_file(path: &Path, out: &mut impl std::io::Write) -> Result<(), String> {
    finish(dump_one(path, out))
}

fn dump_dir(metadata_log_dir: &Path, out: &mut impl std::io::Write) -> Result<(), String> {
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
    let snapshots = snapshot::list_snapshots(&dir).map_err(|e| e.to_string())?;
    for id in snapshots {
        dump_one(&id.path_in(&dir), out)?;
    }
    for segment in segments {
        dump_one(&segment, out)?;
    }
    Ok(())
}

fn dump_one(path: &Path, out: &mut impl std::io::Write) -> Result<(), String> {
    let bytes = std::fs::read(path).map_err(|e| {
        format!(
            "{}: {e}. Fix: give the path of a .checkpoint or .log file",
            path.display()
        )
    })?;
    let mut w = |line: String| write_line(out, line);
    w(format!("# {}", path.display()))?;
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
            "baseOffset: {} lastOffset: {} leaderEpoch: {} records: {}{}{}",
            h.base_offset(),
            h.last_offset(),
            h.partition_leader_epoch(),
            h.records_count(),
            if h.is_control() { " (control)" } else { "" },
            if batch.is_crc_valid() {
                ""
            } else {
                " (CRC MISMATCH: corrupt)"
            }
        ))?;
        let Some(records) = batch.records() else {
            w("  (compressed batch: not decoded)".into())?;
            continue;
        };
        for record in records.flatten() {
            let line = if h.is_control() {
                control_line(control_record_type(record.key), record.value)
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
    Ok(())
}

/// A control record as one line, named as Kafka's ControlRecordType.
fn control_line(kind: Option<i16>, value: Option<&[u8]>) -> String {
    let Some(value) = value else {
        return format!("ControlRecord(type={}, null value)", kind.unwrap_or(-1));
    };
    let mut buf = Bytes::copy_from_slice(value);
    let decoded = match kind {
        Some(control_type::LEADER_CHANGE) => LeaderChangeMessage::decode(&mut buf, 0).map(|m| {
            format!(
                "LeaderChange(leaderId={}, voters={:?})",
                m.leader_id.0,
                m.voters.iter().map(|v| v.voter_id).collect::<Vec<_>>()
            )
        }),
        Some(control_type::SNAPSHOT_HEADER) => SnapshotHeaderRecord::decode(&mut buf, 0).map(|m| {
            format!(
                "SnapshotHeader(version={}, lastContainedLogTimestamp={})",
                m.version, m.last_contained_log_timestamp
            )
        }),
        Some(control_type::SNAPSHOT_FOOTER) => SnapshotFooterRecord::decode(&mut buf, 0)
            .map(|m| format!("SnapshotFooter(version={})", m.version)),
        Some(control_type::KRAFT_VERSION) => KRaftVersionRecord::decode(&mut buf, 0).map(|m| {
            format!(
                "KRaftVersion(version={}, kraftVersion={})",
                m.version, m.k_raft_version
            )
        }),
        Some(control_type::KRAFT_VOTERS) => VotersRecord::decode(&mut buf, 0).map(|m| {
            format!(
                "Voters(version={}, voters=[{}])",
                m.version,
                VoterSpec::from_record(&m)
                    .iter()
                    .map(|v| v.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        }),
        other => return format!("ControlRecord(type={})", other.unwrap_or(-1)),
    };
    decoded.unwrap_or_else(|e| {
        format!(
            "ControlRecord(type={}, undecodable: {e})",
            kind.unwrap_or(-1)
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metadata::records::TopicRecord;
    use crate::raft::snapshot::{
        BOOTSTRAP_SNAPSHOT_ID, KRAFT_VERSION_1, SnapshotControl, SnapshotId, voters_record,
    };

    fn dump_to_string(f: impl FnOnce(&mut Vec<u8>) -> Result<(), String>) -> String {
        let mut out = Vec::new();
        f(&mut out).expect("dump");
        String::from_utf8(out).expect("utf-8")
    }

    #[test]
    fn snapshots_print_header_records_and_footer_before_the_log() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let part = tmp.path().join(METADATA_LOG_DIR_NAME);
        let voter = VoterSpec {
            id: 1,
            directory_id: uuid::Uuid::from_u128(1),
            endpoints: vec![("CONTROLLER".into(), "localhost".into(), 9093)],
        };
        snapshot::write_snapshot(
            &part,
            BOOTSTRAP_SNAPSHOT_ID,
            std::iter::empty::<&[u8]>(),
            &SnapshotControl {
                last_contained_log_timestamp: 42,
                kraft_version: KRAFT_VERSION_1,
                voters: Some(voters_record(std::slice::from_ref(&voter))),
            },
        )
        .expect("bootstrap");
        let topic = MetadataRecord::Topic(TopicRecord {
            name: "orders".into(),
            topic_id: uuid::Uuid::from_u128(9),
        });
        let id = SnapshotId {
            end_offset: 12,
            epoch: 3,
        };
        snapshot::write_snapshot(&part, id, [topic.encode()], &SnapshotControl::default())
            .expect("snapshot");
        std::fs::write(part.join("00000000000000000012.log"), b"").expect("segment");

        let text = dump_to_string(|out| dump(tmp.path(), out));
        let headers: Vec<&str> = text.lines().filter(|l| l.starts_with("# ")).collect();
        assert_eq!(
            headers,
            vec![
                format!("# {}", BOOTSTRAP_SNAPSHOT_ID.path_in(&part).display()),
                format!("# {}", id.path_in(&part).display()),
                format!("# {}", part.join("00000000000000000012.log").display()),
            ]
        );
        assert!(text.contains("  0: SnapshotHeader(version=0, lastContainedLogTimestamp=42)\n"));
        assert!(text.contains("  1: KRaftVersion(version=0, kraftVersion=1)\n"));
        assert!(text.contains(&format!("  2: Voters(version=0, voters=[{voter}])\n")));
        assert!(text.contains("  3: SnapshotFooter(version=0)\n"));
        assert!(text.contains("baseOffset: 1 lastOffset: 1 leaderEpoch: 3 records: 1\n"));
        assert!(text.contains(&format!("  1: {topic}\n")));

        // One file alone.
        let one = dump_to_string(|out| dump_file(&id.path_in(&part), out));
        assert!(one.starts_with(&format!("# {}\n", id.path_in(&part).display())));
        assert!(!one.contains("Voters("));
        let err =
            dump_file(&part.join("missing.checkpoint"), &mut Vec::new()).expect_err("missing");
        assert!(
            err.contains("missing.checkpoint") && err.contains("Fix:"),
            "{err}"
        );
    }
}
