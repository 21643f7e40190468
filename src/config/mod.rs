//! kraftd's configuration layer: reads an ordinary Apache Kafka KRaft `server.properties`.
//!
//! Owns: the Java-properties reader (`properties`), the table of broker keys with Kafka 4.x
//! defaults (`defs`), the typed and validated `ServerConfig` (`server`), and topic-level configs
//! with their broker synonyms and DescribeConfigs rendering (`topic`).
//! It must not open sockets or touch data directories: it only reads the one file it is given.
//!
//! Every startup failure is one `ConfigError` line of the form
//! `<file>:<line>: <key>: <what is wrong>. Fix: <what to do>`.

pub mod defs;
pub mod properties;
pub mod server;
pub mod topic;

use std::path::{Path, PathBuf};

pub use defs::{CleanupPolicy, CompressionType, ConfigType, TimestampType};
pub use server::{Listener, ProcessRole, SecurityProtocol, ServerConfig, Voter};
pub use topic::{
    ConfigSource, ConfigSynonym, DescribedConfig, TopicConfig, TopicConfigError,
    describe_broker_configs, describe_topic_configs, validate_topic_config,
};

/// Where a value came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// 1-based line in the properties file where the entry starts.
    Line(u32),
    /// A `--override key=value` on the command line.
    Override,
    /// Not set anywhere: the error is about a missing key or a default.
    Absent,
}

/// A configuration error that stops startup. `Display` is exactly one line.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{}: cannot read the file: {source}. Fix: check the path and its permissions", file.display())]
    Io {
        file: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}", render_invalid(file, *origin, key.as_deref(), problem, fix))]
    Invalid {
        file: PathBuf,
        origin: Origin,
        key: Option<String>,
        problem: String,
        fix: String,
    },
}

impl ConfigError {
    pub(crate) fn invalid(
        file: &Path,
        origin: Origin,
        key: &str,
        problem: impl Into<String>,
        fix: impl Into<String>,
    ) -> ConfigError {
        ConfigError::Invalid {
            file: file.to_path_buf(),
            origin,
            key: (!key.is_empty()).then(|| key.to_owned()),
            problem: problem.into(),
            fix: fix.into(),
        }
    }

    /// The key the error is about, if any.
    pub fn key(&self) -> Option<&str> {
        match self {
            ConfigError::Io { .. } => None,
            ConfigError::Invalid { key, .. } => key.as_deref(),
        }
    }

    /// The line the error points at, if it came from the file.
    pub fn line(&self) -> Option<u32> {
        match self {
            ConfigError::Invalid {
                origin: Origin::Line(l),
                ..
            } => Some(*l),
            _ => None,
        }
    }
}

fn render_invalid(
    file: &Path,
    origin: Origin,
    key: Option<&str>,
    problem: &str,
    fix: &str,
) -> String {
    let problem = problem.trim_end_matches('.');
    let fix = fix.trim_end_matches('.');
    let file = file.display();
    match (origin, key) {
        (Origin::Line(l), Some(k)) => format!("{file}:{l}: {k}: {problem}. Fix: {fix}"),
        (Origin::Line(l), None) => format!("{file}:{l}: {problem}. Fix: {fix}"),
        (Origin::Override, Some(k)) => format!("{file}: --override {k}: {problem}. Fix: {fix}"),
        (Origin::Override, None) => format!("{file}: --override: {problem}. Fix: {fix}"),
        (Origin::Absent, Some(k)) => format!("{file}: {k}: {problem}. Fix: {fix}"),
        (Origin::Absent, None) => format!("{file}: {problem}. Fix: {fix}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_lines() {
        let f = Path::new("/etc/kraftd/server.properties");
        let e = ConfigError::invalid(f, Origin::Line(7), "node.id", "-1 is negative.", "use >= 0");
        assert_eq!(
            e.to_string(),
            "/etc/kraftd/server.properties:7: node.id: -1 is negative. Fix: use >= 0"
        );
        assert_eq!(e.key(), Some("node.id"));
        assert_eq!(e.line(), Some(7));
        let e = ConfigError::invalid(f, Origin::Absent, "node.id", "is missing", "set it");
        assert_eq!(
            e.to_string(),
            "/etc/kraftd/server.properties: node.id: is missing. Fix: set it"
        );
        let e = ConfigError::invalid(f, Origin::Override, "num.partitions", "x", "y");
        assert_eq!(
            e.to_string(),
            "/etc/kraftd/server.properties: --override num.partitions: x. Fix: y"
        );
    }
}
