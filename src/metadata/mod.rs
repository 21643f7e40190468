//! Cluster state as Kafka keeps it: metadata records (`records`), folded in log order into an
//! immutable `MetadataImage` (`image`) by the `loader`, which follows the committed metadata log.
//! Readers hold an `Arc<MetadataImage>`; a new image replaces the old one atomically.

pub mod image;
pub mod loader;
pub mod records;

pub use image::{BrokerRegistration, MetadataImage, PartitionRegistration, TopicImage};
pub use loader::{
    CommittedLog, LoaderSnapshots, MetadataLoader, MetadataPublisher, MetadataReader,
    SnapshotPolicy,
};
