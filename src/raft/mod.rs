//! KRaft: the replicated metadata log. `core` is the pure Raft state machine (no sockets, clock
//! or disk); `driver` is the I/O shell that feeds it and carries out what it asks;
//! `quorum_state` is the `quorum-state` file; `snapshot` the KIP-630 `.checkpoint` files. Raft
//! knows nothing of topics: it moves opaque record values.

pub mod core;
pub mod driver;
pub mod quorum_state;
pub mod rpc;
pub mod snapshot;
pub mod voter_set;

pub use driver::{LeaderAndEpoch, RaftError, RaftHandle};

/// The metadata log's partition directory name, as Kafka's.
pub const METADATA_LOG_DIR_NAME: &str = "__cluster_metadata-0";
