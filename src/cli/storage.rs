//! `kraftd storage random-uuid | format | info`, as kafka-storage.sh.

use std::path::{Path, PathBuf};

use crate::config::ServerConfig;
use crate::log::meta_properties::{MetaProperties, parse_kafka_uuid, random_uuid};

/// Every directory that must carry meta.properties: the log dirs and the metadata log dir,
/// each once, in config order.
pub(crate) fn all_dirs(config: &ServerConfig) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = Vec::new();
    for d in config
        .log_dirs
        .iter()
        .cloned()
        .chain(std::iter::once(config.metadata_log_dir()))
    {
        if !dirs.contains(&d) {
            dirs.push(d);
        }
    }
    dirs
}

pub(crate) fn load_config(
    path: &Path,
    overrides: &[(String, String)],
) -> Result<ServerConfig, String> {
    let config = ServerConfig::load(path, overrides).map_err(|e| e.to_string())?;
    for w in &config.warnings {
        eprintln!("kraftd: warning: {w}");
    }
    Ok(config)
}

pub(crate) fn format(
    config_path: &Path,
    overrides: &[(String, String)],
    cluster_id: &str,
    ignore_formatted: bool,
    _standalone: bool,
) -> Result<(), String> {
    if parse_kafka_uuid(cluster_id).is_none() {
        return Err(format!(
            "cluster id '{cluster_id}' is not a valid Kafka uuid (22 characters of URL-safe base64). Fix: use the output of 'kraftd storage random-uuid'"
        ));
    }
    let config = load_config(config_path, overrides)?;
    format_dirs(&config, cluster_id, ignore_formatted, |line| {
        println!("{line}")
    })
}

/// Formats each unformatted dir. Shared by `storage format` and `start --auto-format`.
pub(crate) fn format_dirs(
    config: &ServerConfig,
    cluster_id: &str,
    ignore_formatted: bool,
    mut say: impl FnMut(String),
) -> Result<(), String> {
    let dirs = all_dirs(config);
    let mut to_format = Vec::new();
    for dir in &dirs {
        match MetaProperties::read(dir).map_err(|e| e.to_string())? {
            Some(_) if ignore_formatted => {}
            Some(_) => {
                return Err(format!(
                    "log directory {} is already formatted. Fix: use --ignore-formatted to ignore this directory and format the others",
                    dir.display()
                ));
            }
            None => to_format.push(dir.clone()),
        }
    }
    if to_format.is_empty() {
        say("All of the log directories are already formatted.".into());
        return Ok(());
    }
    for dir in to_format {
        say(format!("Formatting {}", dir.display()));
        MetaProperties {
            version: 1,
            cluster_id: cluster_id.to_string(),
            node_id: config.node_id,
            directory_id: Some(random_uuid()),
        }
        .write(&dir)
        .map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// What `start` finds in the dirs: the one cluster id they agree on, or a one-line error with the
/// fix.
pub(crate) fn check_formatted(config: &ServerConfig, config_path: &Path) -> Result<String, String> {
    let mut cluster: Option<(String, PathBuf)> = None;
    for dir in all_dirs(config) {
        let Some(mp) = MetaProperties::read(&dir).map_err(|e| e.to_string())? else {
            return Err(format!(
                "log directory {} is not formatted. Fix: kraftd storage format -t $(kraftd storage random-uuid) -c {} (or start with --auto-format)",
                dir.display(),
                config_path.display()
            ));
        };
        if mp.node_id != config.node_id {
            return Err(format!(
                "{}: node.id={} but {} sets node.id={}. Fix: use the config this dir was formatted with, or reformat the dir",
                MetaProperties::path_in(&dir).display(),
                mp.node_id,
                config_path.display(),
                config.node_id
            ));
        }
        match &cluster {
            None => cluster = Some((mp.cluster_id, dir)),
            Some((id, first)) if *id != mp.cluster_id => {
                return Err(format!(
                    "{} has cluster.id={} but {} has cluster.id={}. Fix: a node's dirs must belong to one cluster; reformat the odd one",
                    MetaProperties::path_in(&dir).display(),
                    mp.cluster_id,
                    MetaProperties::path_in(first).display(),
                    id
                ));
            }
            Some(_) => {}
        }
    }
    cluster
        .map(|(id, _)| id)
        .ok_or_else(|| "no log directories configured. Fix: set log.dirs".to_string())
}

pub(crate) fn info(config_path: &Path, overrides: &[(String, String)]) -> Result<(), String> {
    let config = load_config(config_path, overrides)?;
    let mut problems = Vec::new();
    let mut clusters = std::collections::BTreeSet::new();
    for dir in all_dirs(&config) {
        let role = if dir == config.metadata_log_dir() {
            "metadata log dir"
        } else {
            "log dir"
        };
        match MetaProperties::read(&dir) {
            Ok(Some(mp)) => {
                println!(
                    "{} ({role}): formatted: cluster.id={} node.id={} directory.id={} version={}",
                    dir.display(),
                    mp.cluster_id,
                    mp.node_id,
                    mp.directory_id.as_deref().unwrap_or("-"),
                    mp.version
                );
                if mp.node_id != config.node_id {
                    problems.push(format!(
                        "{}: node.id={} differs from node.id={} in {}",
                        dir.display(),
                        mp.node_id,
                        config.node_id,
                        config_path.display()
                    ));
                }
                clusters.insert(mp.cluster_id);
            }
            Ok(None) => {
                println!("{} ({role}): not formatted", dir.display());
                problems.push(format!("{} is not formatted", dir.display()));
            }
            Err(e) => {
                println!("{} ({role}): unreadable: {e}", dir.display());
                problems.push(e.to_string());
            }
        }
    }
    if clusters.len() > 1 {
        problems.push(format!(
            "the dirs belong to different clusters: {}",
            clusters.into_iter().collect::<Vec<_>>().join(", ")
        ));
    }
    if problems.is_empty() {
        println!("Found no problems.");
        Ok(())
    } else {
        for p in &problems {
            println!("Problem: {p}");
        }
        Err(format!("{} problem(s) found", problems.len()))
    }
}
