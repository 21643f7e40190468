//! DescribeLogDirs: each log dir with the partitions it holds and their sizes.

use std::collections::BTreeMap;

use kafka_protocol::messages::describe_log_dirs_response::{
    DescribeLogDirsPartition, DescribeLogDirsResult, DescribeLogDirsTopic,
};
use kafka_protocol::messages::{DescribeLogDirsRequest, DescribeLogDirsResponse, TopicName};
use kafka_protocol::protocol::StrBytes;

use super::{Dispatcher, RequestContext};

/// (total, usable) bytes of the file system holding `dir`, or -1s when it cannot be read.
fn disk_space(dir: &std::path::Path) -> (i64, i64) {
    let Ok(c) = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes()) else {
        return (-1, -1);
    };
    // SAFETY: statvfs(3) fills a zeroed struct from a NUL-terminated path.
    unsafe {
        let mut st: libc::statvfs = std::mem::zeroed();
        if libc::statvfs(c.as_ptr(), &mut st) != 0 {
            return (-1, -1);
        }
        let frsize = st.f_frsize as i64;
        (st.f_blocks as i64 * frsize, st.f_bavail as i64 * frsize)
    }
}

pub async fn handle(
    d: &Dispatcher,
    _ctx: &RequestContext<'_>,
    _version: i16,
    req: DescribeLogDirsRequest,
) -> DescribeLogDirsResponse {
    let wanted: Option<Vec<(String, Vec<i32>)>> = req.topics.map(|ts| {
        ts.into_iter()
            .map(|t| (t.topic.to_string(), t.partitions))
            .collect()
    });
    let partitions = d.broker.all_partitions();
    let results = d
        .config
        .log_dirs
        .iter()
        .map(|dir| {
            let mut topics: BTreeMap<String, Vec<DescribeLogDirsPartition>> = BTreeMap::new();
            for p in &partitions {
                if !dir.join(format!("{}-{}", p.topic, p.index)).exists() {
                    continue;
                }
                let included = wanted.as_ref().is_none_or(|w| {
                    w.iter()
                        .any(|(t, ps)| *t == p.topic && ps.contains(&p.index))
                });
                if !included {
                    continue;
                }
                topics.entry(p.topic.clone()).or_default().push(
                    DescribeLogDirsPartition::default()
                        .with_partition_index(p.index)
                        .with_partition_size(p.size_in_bytes() as i64)
                        .with_offset_lag(0),
                );
            }
            let (total, usable) = disk_space(dir);
            DescribeLogDirsResult::default()
                .with_log_dir(StrBytes::from_string(dir.display().to_string()))
                .with_total_bytes(total)
                .with_usable_bytes(usable)
                .with_topics(
                    topics
                        .into_iter()
                        .map(|(name, mut parts)| {
                            parts.sort_by_key(|p| p.partition_index);
                            DescribeLogDirsTopic::default()
                                .with_name(TopicName(StrBytes::from_string(name)))
                                .with_partitions(parts)
                        })
                        .collect(),
                )
        })
        .collect();
    DescribeLogDirsResponse::default().with_results(results)
}
