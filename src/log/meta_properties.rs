//! `meta.properties`: what `kraftd storage format` writes into every log directory, in Apache
//! Kafka's v1 format, so that a dir formatted by either tool is recognised by the other.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::alphabet::URL_SAFE;
use base64::engine::DecodePaddingMode;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, URL_SAFE_NO_PAD};

/// Java's decoder ignores the unused low bits of the last char; so must we, to accept every id
/// Kafka accepts.
const LENIENT: GeneralPurpose = GeneralPurpose::new(
    &URL_SAFE,
    GeneralPurposeConfig::new()
        .with_decode_allow_trailing_bits(true)
        .with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

pub const META_PROPERTIES: &str = "meta.properties";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetaProperties {
    pub version: i32,
    pub cluster_id: String,
    pub node_id: i32,
    pub directory_id: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum MetaPropertiesError {
    #[error("{path}: cannot read: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {problem}")]
    Invalid { path: PathBuf, problem: String },
}

/// A new id in Kafka's printed form: the 16 random bytes of a v4 UUID as 22 chars of URL-safe
/// base64. Like Kafka's `Uuid.randomUuid`, never one starting with '-', which would read as a flag.
pub fn random_uuid() -> String {
    loop {
        let id = URL_SAFE_NO_PAD.encode(uuid::Uuid::new_v4().as_bytes());
        if !id.starts_with('-') {
            return id;
        }
    }
}

/// Parses Kafka's base64 uuid form into its 16 bytes.
pub fn parse_kafka_uuid(s: &str) -> Option<uuid::Uuid> {
    if s.len() != 22 {
        return None;
    }
    let bytes = LENIENT.decode(s).ok()?;
    uuid::Uuid::from_slice(&bytes).ok()
}

pub fn kafka_uuid_string(id: &uuid::Uuid) -> String {
    URL_SAFE_NO_PAD.encode(id.as_bytes())
}

impl MetaProperties {
    pub fn path_in(dir: &Path) -> PathBuf {
        dir.join(META_PROPERTIES)
    }

    /// `Ok(None)` when the dir holds no meta.properties (not formatted).
    pub fn read(dir: &Path) -> Result<Option<MetaProperties>, MetaPropertiesError> {
        let path = Self::path_in(dir);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(MetaPropertiesError::Io { path, source }),
        };
        let mut map = BTreeMap::new();
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') || line.starts_with('!') {
                continue;
            }
            if let Some((k, v)) = line.split_once('=') {
                map.insert(k.trim().to_string(), v.trim().to_string());
            }
        }
        let invalid = |problem: String| MetaPropertiesError::Invalid {
            path: path.clone(),
            problem,
        };
        let version: i32 = map
            .get("version")
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| invalid("missing or bad 'version'".into()))?;
        if version != 1 {
            return Err(invalid(format!(
                "version={version} is a ZooKeeper-mode (v0) or unknown format; kraftd reads version=1 (KRaft)"
            )));
        }
        let cluster_id = map
            .get("cluster.id")
            .cloned()
            .ok_or_else(|| invalid("missing 'cluster.id'".into()))?;
        let node_id = map
            .get("node.id")
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| invalid("missing or bad 'node.id'".into()))?;
        Ok(Some(MetaProperties {
            version,
            cluster_id,
            node_id,
            directory_id: map.get("directory.id").cloned(),
        }))
    }

    /// Written to a temporary file and renamed, so a crash never leaves half a file.
    pub fn write(&self, dir: &Path) -> Result<(), MetaPropertiesError> {
        let path = Self::path_in(dir);
        let io = |source| MetaPropertiesError::Io {
            path: path.clone(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(io)?;
        let mut text = String::from("#\n#Written by kraftd storage format\n");
        text.push_str(&format!("cluster.id={}\n", self.cluster_id));
        if let Some(d) = &self.directory_id {
            text.push_str(&format!("directory.id={d}\n"));
        }
        text.push_str(&format!("node.id={}\n", self.node_id));
        text.push_str(&format!("version={}\n", self.version));
        let tmp = dir.join(format!("{META_PROPERTIES}.tmp"));
        std::fs::write(&tmp, text).map_err(io)?;
        std::fs::File::open(&tmp)
            .and_then(|f| f.sync_all())
            .map_err(io)?;
        std::fs::rename(&tmp, &path).map_err(io)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_uuid_is_kafka_form() {
        for _ in 0..200 {
            let id = random_uuid();
            assert_eq!(id.len(), 22);
            assert!(!id.starts_with('-'));
            assert!(parse_kafka_uuid(&id).is_some());
        }
    }

    #[test]
    fn parses_known_kafka_id() {
        // The id from Kafka's quickstart docs.
        let id = parse_kafka_uuid("MkU3OEVBNTcwNTJENDM2Qk").unwrap();
        assert_eq!(kafka_uuid_string(&id), "MkU3OEVBNTcwNTJENDM2Qg");
        assert!(parse_kafka_uuid("not-a-uuid").is_none());
    }

    #[test]
    fn round_trip_and_reads_kafka_written_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join(META_PROPERTIES),
            "#\n#Tue Jan 16 10:00:00 UTC 2024\nnode.id=1\ndirectory.id=pNdLVb9aSVm8EEfv0tkNNQ\nversion=1\ncluster.id=4L6g3nShT-eMCtK--X86sw\n",
        )
        .unwrap();
        let mp = MetaProperties::read(dir.path()).unwrap().unwrap();
        assert_eq!(mp.cluster_id, "4L6g3nShT-eMCtK--X86sw");
        assert_eq!(mp.node_id, 1);
        assert_eq!(mp.directory_id.as_deref(), Some("pNdLVb9aSVm8EEfv0tkNNQ"));
        let other = tempfile::tempdir().unwrap();
        mp.write(other.path()).unwrap();
        assert_eq!(MetaProperties::read(other.path()).unwrap().unwrap(), mp);
        assert!(
            MetaProperties::read(&other.path().join("missing"))
                .unwrap()
                .is_none()
        );
    }
}
