//! Incremental fetch sessions (KIP-227): the broker remembers what a consumer fetches so that
//! later requests name only what changed and responses carry only partitions with news.
//! Bounded by `max.incremental.fetch.session.cache.slots`; when full, the least recently used
//! session is evicted (its owner gets FETCH_SESSION_ID_NOT_FOUND and starts a new one).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

use uuid::Uuid;

/// Fetch request epochs with a meaning of their own.
pub const INITIAL_EPOCH: i32 = 0;
pub const FINAL_EPOCH: i32 = -1;

/// How a topic is named in requests: by id from Fetch v13, by name before.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum TopicKey {
    Id(Uuid),
    Name(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchPartitionSpec {
    pub topic: TopicKey,
    pub partition: i32,
    pub fetch_offset: i64,
    pub max_bytes: i32,
    /// The leader epoch the fetcher believes current (-1: unchecked).
    pub current_leader_epoch: i32,
    /// A follower's last fetched epoch (-1: none), for the diverging-epoch check.
    pub last_fetched_epoch: i32,
    /// A follower's log start offset.
    pub log_start_offset: i64,
}

/// What the consumer was last told about a partition; a partition whose state differs is news.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LastSent {
    pub high_watermark: i64,
    pub log_start_offset: i64,
    pub error_code: i16,
}

#[derive(Debug)]
struct Session {
    epoch: i32,
    /// In request order.
    partitions: Vec<(FetchPartitionSpec, Option<LastSent>)>,
    last_used: Instant,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionError {
    /// FETCH_SESSION_ID_NOT_FOUND
    NotFound,
    /// INVALID_FETCH_SESSION_EPOCH
    InvalidEpoch,
}

impl SessionError {
    pub fn code(self) -> i16 {
        match self {
            SessionError::NotFound => 70,
            SessionError::InvalidEpoch => 71,
        }
    }
}

/// What one fetch request reads, and how its response is shaped.
#[derive(Debug)]
pub struct FetchPlan {
    /// The id to put in the response (0: no session).
    pub session_id: i32,
    /// Incremental: leave out partitions with no news.
    pub incremental: bool,
    pub partitions: Vec<(FetchPartitionSpec, Option<LastSent>)>,
}

pub struct FetchSessionCache {
    max_sessions: usize,
    inner: Mutex<CacheInner>,
}

struct CacheInner {
    sessions: HashMap<i32, Session>,
    next_id: i32,
}

impl FetchSessionCache {
    pub fn new(max_sessions: usize) -> FetchSessionCache {
        FetchSessionCache {
            max_sessions,
            inner: Mutex::new(CacheInner {
                sessions: HashMap::new(),
                next_id: 1,
            }),
        }
    }

    pub fn len(&self) -> usize {
        self.inner.lock().map(|i| i.sessions.len()).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Works out what to read for a request.
    pub fn plan(
        &self,
        session_id: i32,
        epoch: i32,
        requested: Vec<FetchPartitionSpec>,
        forgotten: Vec<(TopicKey, i32)>,
    ) -> Result<FetchPlan, SessionError> {
        let Ok(mut inner) = self.inner.lock() else {
            return Err(SessionError::NotFound);
        };
        let full = |partitions: Vec<FetchPartitionSpec>, session_id| FetchPlan {
            session_id,
            incremental: false,
            partitions: partitions.into_iter().map(|p| (p, None)).collect(),
        };
        if session_id == 0 {
            return match epoch {
                FINAL_EPOCH => Ok(full(requested, 0)),
                INITIAL_EPOCH => {
                    let id = inner.create(self.max_sessions, requested.clone());
                    Ok(full(requested, id))
                }
                _ => Err(SessionError::InvalidEpoch),
            };
        }
        if epoch == FINAL_EPOCH {
            inner.sessions.remove(&session_id);
            return Ok(full(requested, 0));
        }
        if epoch == INITIAL_EPOCH {
            // A new full session in place of the old one.
            inner.sessions.remove(&session_id);
            let id = inner.create(self.max_sessions, requested.clone());
            return Ok(full(requested, id));
        }
        let session = inner
            .sessions
            .get_mut(&session_id)
            .ok_or(SessionError::NotFound)?;
        if session.epoch != epoch {
            return Err(SessionError::InvalidEpoch);
        }
        session.epoch = next_epoch(epoch);
        session.last_used = Instant::now();
        session.partitions.retain(|(p, _)| {
            !forgotten
                .iter()
                .any(|(t, i)| *t == p.topic && *i == p.partition)
        });
        for spec in requested {
            match session
                .partitions
                .iter_mut()
                .find(|(p, _)| p.topic == spec.topic && p.partition == spec.partition)
            {
                // A changed fetch offset or limit must be answered even without new data.
                Some((existing, last)) => {
                    if existing.fetch_offset != spec.fetch_offset {
                        *last = None;
                    }
                    *existing = spec;
                }
                None => session.partitions.push((spec, None)),
            }
        }
        Ok(FetchPlan {
            session_id,
            incremental: true,
            partitions: session.partitions.clone(),
        })
    }

    /// Records what the response told the consumer. (Fetch offsets move only when the consumer
    /// names a partition again, as in Kafka.)
    pub fn update(&self, session_id: i32, sent: &[(TopicKey, i32, LastSent)]) {
        if session_id == 0 {
            return;
        }
        let Ok(mut inner) = self.inner.lock() else {
            return;
        };
        let Some(session) = inner.sessions.get_mut(&session_id) else {
            return;
        };
        for (topic, partition, last) in sent {
            if let Some((_, l)) = session
                .partitions
                .iter_mut()
                .find(|(p, _)| p.topic == *topic && p.partition == *partition)
            {
                *l = Some(*last);
            }
        }
    }
}

fn next_epoch(epoch: i32) -> i32 {
    if epoch == i32::MAX { 1 } else { epoch + 1 }
}

impl CacheInner {
    /// A new session at epoch 1, or 0 when the cache cannot hold one.
    fn create(&mut self, max: usize, partitions: Vec<FetchPartitionSpec>) -> i32 {
        if max == 0 {
            return 0;
        }
        if self.sessions.len() >= max
            && let Some(oldest) = self
                .sessions
                .iter()
                .min_by_key(|(_, s)| s.last_used)
                .map(|(id, _)| *id)
        {
            self.sessions.remove(&oldest);
        }
        let id = loop {
            let id = self.next_id;
            self.next_id = if self.next_id == i32::MAX {
                1
            } else {
                self.next_id + 1
            };
            if !self.sessions.contains_key(&id) {
                break id;
            }
        };
        self.sessions.insert(
            id,
            Session {
                epoch: 1,
                partitions: partitions.into_iter().map(|p| (p, None)).collect(),
                last_used: Instant::now(),
            },
        );
        id
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(p: i32, offset: i64) -> FetchPartitionSpec {
        FetchPartitionSpec {
            topic: TopicKey::Name("t".into()),
            partition: p,
            fetch_offset: offset,
            max_bytes: 1024,
            current_leader_epoch: -1,
            last_fetched_epoch: -1,
            log_start_offset: -1,
        }
    }

    #[test]
    fn full_then_incremental_then_close() {
        let cache = FetchSessionCache::new(10);
        let plan = cache
            .plan(0, INITIAL_EPOCH, vec![spec(0, 0), spec(1, 0)], vec![])
            .unwrap();
        assert!(!plan.incremental);
        let id = plan.session_id;
        assert_ne!(id, 0);
        let sent = LastSent {
            high_watermark: 5,
            log_start_offset: 0,
            error_code: 0,
        };
        cache.update(
            id,
            &[
                (TopicKey::Name("t".into()), 0, sent),
                (TopicKey::Name("t".into()), 1, sent),
            ],
        );
        // Epoch 1 names partition 0 at a new offset: it is news again; partition 1 is kept.
        let plan = cache.plan(id, 1, vec![spec(0, 5)], vec![]).unwrap();
        assert!(plan.incremental);
        assert_eq!(plan.partitions.len(), 2);
        assert_eq!(plan.partitions[0].0.fetch_offset, 5);
        assert_eq!(plan.partitions[0].1, None);
        assert_eq!(plan.partitions[1].1, Some(sent));
        // A stale epoch, an unknown id.
        assert_eq!(
            cache.plan(id, 1, vec![], vec![]).unwrap_err(),
            SessionError::InvalidEpoch
        );
        assert_eq!(
            cache.plan(999, 1, vec![], vec![]).unwrap_err(),
            SessionError::NotFound
        );
        // Forget partition 1, add partition 2.
        let plan = cache
            .plan(
                id,
                2,
                vec![spec(2, 7)],
                vec![(TopicKey::Name("t".into()), 1)],
            )
            .unwrap();
        let parts: Vec<i32> = plan.partitions.iter().map(|(p, _)| p.partition).collect();
        assert_eq!(parts, vec![0, 2]);
        // Close.
        let plan = cache
            .plan(id, FINAL_EPOCH, vec![spec(0, 0)], vec![])
            .unwrap();
        assert_eq!(plan.session_id, 0);
        assert!(cache.is_empty());
    }

    #[test]
    fn full_cache_evicts_least_recently_used() {
        let cache = FetchSessionCache::new(2);
        let a = cache
            .plan(0, 0, vec![spec(0, 0)], vec![])
            .unwrap()
            .session_id;
        let b = cache
            .plan(0, 0, vec![spec(0, 0)], vec![])
            .unwrap()
            .session_id;
        cache.plan(a, 1, vec![], vec![]).unwrap();
        let c = cache
            .plan(0, 0, vec![spec(0, 0)], vec![])
            .unwrap()
            .session_id;
        assert_eq!(cache.len(), 2);
        assert_eq!(
            cache.plan(b, 1, vec![], vec![]).unwrap_err(),
            SessionError::NotFound
        );
        assert!(cache.plan(c, 1, vec![], vec![]).is_ok());
        // No room at all: sessionless.
        assert_eq!(
            FetchSessionCache::new(0)
                .plan(0, 0, vec![], vec![])
                .unwrap()
                .session_id,
            0
        );
    }
}
