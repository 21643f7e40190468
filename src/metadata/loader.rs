//! Follows the committed metadata log: reads batches below the high watermark, decodes the
//! records, folds them into a new image and publishes it. Every node, single or clustered, gets
//! its image this way.

use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::records::RecordBatchDecoder;
use tokio::sync::watch;
use tracing::{error, warn};

use super::image::MetadataImage;
use super::records::MetadataRecord;
use crate::raft::RaftHandle;

/// Something that must see each new image before any reader does (Kafka's MetadataPublisher):
/// the broker opens the partitions an image assigns it, so that when a client learns of a
/// partition from Metadata, the partition is already served.
pub trait MetadataPublisher: Send + Sync {
    fn publish(&self, image: &MetadataImage);
}

/// Bytes read from the log per step; bounds the loader's memory.
const READ_CHUNK: usize = 1 << 20;

/// A cheap handle to the newest image.
#[derive(Clone)]
pub struct MetadataReader {
    rx: watch::Receiver<Arc<MetadataImage>>,
}

impl MetadataReader {
    pub fn current(&self) -> Arc<MetadataImage> {
        self.rx.borrow().clone()
    }

    /// Waits until the image includes every record below `offset`.
    pub async fn wait_for_offset(&self, offset: i64) -> Option<Arc<MetadataImage>> {
        let mut rx = self.rx.clone();
        rx.wait_for(|img| img.offset >= offset)
            .await
            .ok()
            .map(|img| img.clone())
    }

    pub fn subscribe(&self) -> watch::Receiver<Arc<MetadataImage>> {
        self.rx.clone()
    }
}

pub struct MetadataLoader {
    raft: RaftHandle,
    image: MetadataImage,
    tx: watch::Sender<Arc<MetadataImage>>,
    publishers: Vec<Arc<dyn MetadataPublisher>>,
}

impl MetadataLoader {
    pub fn new(
        raft: RaftHandle,
        publishers: Vec<Arc<dyn MetadataPublisher>>,
    ) -> (MetadataLoader, MetadataReader) {
        let (tx, rx) = watch::channel(Arc::new(MetadataImage::default()));
        (
            MetadataLoader {
                raft,
                image: MetadataImage::default(),
                tx,
                publishers,
            },
            MetadataReader { rx },
        )
    }

    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) {
        let mut hw = self.raft.high_watermark();
        loop {
            let target = *hw.borrow_and_update();
            // Publishers do file I/O (opening partition logs): keep it off the async workers.
            tokio::task::block_in_place(|| {
                let before = self.image.offset;
                while self.image.offset < target {
                    if !self.load_chunk() {
                        break;
                    }
                }
                if self.image.offset != before {
                    let image = Arc::new(self.image.clone());
                    for p in &self.publishers {
                        p.publish(&image);
                    }
                    self.tx.send_replace(image);
                }
            });
            tokio::select! {
                changed = hw.changed() => if changed.is_err() { return },
                _ = shutdown.changed() => return,
            }
        }
    }

    /// Applies the next committed batches; false when nothing could be read.
    fn load_chunk(&mut self) -> bool {
        let data = match self.raft.read_committed(self.image.offset, READ_CHUNK) {
            Ok(read) => read.records,
            Err(e) => {
                error!(offset = self.image.offset, error = %e, "cannot read the metadata log");
                return false;
            }
        };
        if data.is_empty() {
            return false;
        }
        let next = self.image.offset;
        let mut image = self.image.clone();
        apply_batches(&mut image, data);
        if image.offset == next {
            return false;
        }
        self.image = image;
        true
    }
}

/// Folds every record of `data` (whole v2 batches) into `image`, skipping control batches.
pub fn apply_batches(image: &mut MetadataImage, mut data: Bytes) {
    let sets = match RecordBatchDecoder::decode_all(&mut data) {
        Ok(sets) => sets,
        Err(e) => {
            error!(offset = image.offset, error = %e, "undecodable metadata batch");
            return;
        }
    };
    for set in sets {
        for record in set.records {
            if record.offset < image.offset {
                continue;
            }
            image.offset = record.offset + 1;
            if record.control {
                continue;
            }
            let Some(value) = record.value else { continue };
            match MetadataRecord::decode(&value) {
                Ok(r) => image.apply(&r),
                Err(e) => {
                    warn!(offset = record.offset, error = %e, "skipping undecodable metadata record")
                }
            }
        }
    }
}
