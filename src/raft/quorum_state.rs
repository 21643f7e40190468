//! The `quorum-state` file Kafka keeps beside the metadata log: the election state that must be
//! durable before this node votes or leads. Kafka's JSON layout (data_version 0), so either
//! implementation can read the other's file.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub const QUORUM_STATE_FILE: &str = "quorum-state";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ElectionState {
    pub epoch: i32,
    pub leader_id: Option<i32>,
    pub voted_id: Option<i32>,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct VoterJson {
    voter_id: i32,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct QuorumStateJson {
    #[serde(default)]
    cluster_id: String,
    leader_id: i32,
    leader_epoch: i32,
    voted_id: i32,
    #[serde(default)]
    applied_offset: i64,
    #[serde(default)]
    current_voters: Option<Vec<VoterJson>>,
    #[serde(rename = "data_version", default)]
    data_version: i32,
}

#[derive(Debug, thiserror::Error)]
pub enum QuorumStateError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{path}: not a quorum-state file ({problem}). Fix: restore it from a backup, or move it away to start this voter with no election state"
    )]
    Corrupt { path: PathBuf, problem: String },
}

pub struct QuorumStateFile {
    path: PathBuf,
}

/// What the file holds: the election state and, if Kafka's static-voter format wrote them, the
/// voters it was written with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredQuorumState {
    pub election: ElectionState,
    pub voters: Option<Vec<i32>>,
}

impl QuorumStateFile {
    pub fn new(metadata_partition_dir: &Path) -> Self {
        QuorumStateFile {
            path: metadata_partition_dir.join(QUORUM_STATE_FILE),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn read(&self) -> Result<Option<StoredQuorumState>, QuorumStateError> {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(QuorumStateError::Io {
                    path: self.path.clone(),
                    source,
                });
            }
        };
        let json: QuorumStateJson =
            serde_json::from_str(&text).map_err(|e| QuorumStateError::Corrupt {
                path: self.path.clone(),
                problem: e.to_string(),
            })?;
        let opt = |id: i32| (id >= 0).then_some(id);
        Ok(Some(StoredQuorumState {
            election: ElectionState {
                epoch: json.leader_epoch,
                leader_id: opt(json.leader_id),
                voted_id: opt(json.voted_id),
            },
            voters: json
                .current_voters
                .map(|v| v.into_iter().map(|v| v.voter_id).collect()),
        }))
    }

    /// Durable before it returns: Raft's safety depends on never forgetting a vote or an epoch.
    pub fn write(&self, state: &ElectionState, voters: &[i32]) -> Result<(), QuorumStateError> {
        let json = QuorumStateJson {
            cluster_id: String::new(),
            leader_id: state.leader_id.unwrap_or(-1),
            leader_epoch: state.epoch,
            voted_id: state.voted_id.unwrap_or(-1),
            applied_offset: 0,
            current_voters: Some(
                voters
                    .iter()
                    .map(|&voter_id| VoterJson { voter_id })
                    .collect(),
            ),
            data_version: 0,
        };
        let io = |source| QuorumStateError::Io {
            path: self.path.clone(),
            source,
        };
        let text = serde_json::to_string(&json).map_err(|e| QuorumStateError::Corrupt {
            path: self.path.clone(),
            problem: e.to_string(),
        })?;
        let tmp = self.path.with_extension("tmp");
        {
            use std::io::Write;
            let mut f = std::fs::File::create(&tmp).map_err(io)?;
            f.write_all(text.as_bytes()).map_err(io)?;
            f.sync_all().map_err(io)?;
        }
        std::fs::rename(&tmp, &self.path).map_err(io)?;
        if let Some(dir) = self.path.parent()
            && let Ok(d) = std::fs::File::open(dir)
        {
            let _ = d.sync_all();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_kafka_written_file_and_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join(QUORUM_STATE_FILE),
            r#"{"clusterId":"","leaderId":1,"leaderEpoch":7,"votedId":-1,"appliedOffset":0,"currentVoters":[{"voterId":1},{"voterId":2},{"voterId":3}],"data_version":0}"#,
        )
        .unwrap();
        let file = QuorumStateFile::new(dir.path());
        let stored = file.read().unwrap().unwrap();
        assert_eq!(
            stored.election,
            ElectionState {
                epoch: 7,
                leader_id: Some(1),
                voted_id: None
            }
        );
        assert_eq!(stored.voters, Some(vec![1, 2, 3]));
        let next = ElectionState {
            epoch: 8,
            leader_id: None,
            voted_id: Some(2),
        };
        file.write(&next, &[1, 2, 3]).unwrap();
        let again = file.read().unwrap().unwrap();
        assert_eq!(again.election, next);
        assert_eq!(again.voters, Some(vec![1, 2, 3]));
    }

    #[test]
    fn corrupt_file_names_path_and_fix() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(QUORUM_STATE_FILE), "{not json").unwrap();
        let err = QuorumStateFile::new(dir.path())
            .read()
            .unwrap_err()
            .to_string();
        assert!(err.contains("quorum-state"), "{err}");
        assert!(err.contains("Fix:"), "{err}");
    }
}
