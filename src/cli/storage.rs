//! `kraftd storage random-uuid | format | info`, as kafka-storage.sh, with Kafka 4.x's KIP-853
//! flags: `--standalone`, `--initial-controllers` and `--no-initial-controllers` decide whether the
//! metadata dir gets a bootstrap snapshot naming the initial voters of a dynamic quorum.

use std::path::{Path, PathBuf};

use crate::config::ServerConfig;
use crate::log::meta_properties::{
    MetaProperties, kafka_uuid_string, parse_kafka_uuid, random_uuid,
};
use crate::raft::driver::metadata_partition_dir;
use crate::raft::snapshot::{
    self, BOOTSTRAP_SNAPSHOT_ID, KRAFT_VERSION_1, SnapshotControl, VoterSpec, voters_record,
};

/// How `storage format` sets up the quorum: Kafka's three mutually exclusive flags, or none.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) enum InitialQuorum {
    /// No flag: a controller needs a static quorum (controller.quorum.voters).
    #[default]
    Unset,
    /// `--standalone`: this node is the one initial voter.
    Standalone,
    /// `--initial-controllers id@host:port:directoryId,...`.
    InitialControllers(String),
    /// `--no-initial-controllers`: the node joins a dynamic quorum formatted elsewhere.
    NoInitialControllers,
}

const INITIAL_CONTROLLERS_FIX: &str = "write each voter as id@host:port:directoryId, comma-separated, e.g. --initial-controllers 1@ctrl1:9093:MvDxzVmcRsaTz33bUuRU6A,2@ctrl2:9093:07R5amHmR32VDA6jHkGbTA (directory ids from kraftd storage random-uuid; the same list on every node)";

/// Parses `--initial-controllers` as Kafka's `DynamicVoters.parse`: every voter reached on
/// `listener` (the first of controller.listener.names).
pub(crate) fn parse_initial_controllers(
    text: &str,
    listener: &str,
) -> Result<Vec<VoterSpec>, String> {
    let mut voters: Vec<VoterSpec> = Vec::new();
    for entry in text.trim().split(',').filter(|e| !e.is_empty()) {
        let voter = parse_dynamic_voter(entry.trim(), listener).map_err(|problem| {
            format!(
                "--initial-controllers entry '{entry}': {problem}. Fix: {INITIAL_CONTROLLERS_FIX}"
            )
        })?;
        if voters.iter().any(|v| v.id == voter.id) {
            return Err(format!(
                "--initial-controllers: node id {} is given more than once. Fix: list each controller once",
                voter.id
            ));
        }
        voters.push(voter);
    }
    if voters.is_empty() {
        return Err(format!(
            "--initial-controllers: no voters given. Fix: {INITIAL_CONTROLLERS_FIX}"
        ));
    }
    voters.sort_by_key(|v| v.id);
    Ok(voters)
}

/// One `id@host:port:directoryId`, with `[v6addr]` hosts, refused for the reasons Kafka's
/// `DynamicVoter.parse` refuses it.
fn parse_dynamic_voter(entry: &str, listener: &str) -> Result<VoterSpec, String> {
    let (id, rest) = entry
        .split_once('@')
        .ok_or_else(|| "no @ found".to_string())?;
    if id.is_empty() {
        return Err("it starts with @ instead of a node id".into());
    }
    let id: i32 = id
        .parse()
        .map_err(|_| format!("node id '{id}' is not a number"))?;
    if id < 0 {
        return Err(format!("node id {id} is negative"));
    }
    if rest.is_empty() {
        return Err("no host after the node id".into());
    }
    let (host, rest) = if let Some(bracketed) = rest.strip_prefix('[') {
        bracketed
            .split_once(']')
            .ok_or_else(|| "the host starts with [ but has no ]".to_string())?
    } else {
        let colon = rest
            .find(':')
            .ok_or_else(|| "no colon after the host".to_string())?;
        (&rest[..colon], &rest[colon..])
    };
    let rest = rest
        .strip_prefix(':')
        .ok_or_else(|| "the port must follow the host after a colon".to_string())?;
    let (port, directory) = rest
        .split_once(':')
        .ok_or_else(|| "no colon after the port, before the directory id".to_string())?;
    let port: u16 = port
        .parse()
        .map_err(|_| format!("port '{port}' is not a number from 0 to 65535"))?;
    // Kafka's Uuid.fromString also takes the padded 24-character form.
    let unpadded = directory.strip_suffix("==").unwrap_or(directory);
    let directory_id = parse_kafka_uuid(unpadded).ok_or_else(|| {
        format!("directory id '{directory}' is not a Kafka uuid (22 characters of URL-safe base64)")
    })?;
    Ok(VoterSpec {
        id,
        directory_id,
        endpoints: vec![(listener.to_string(), host.to_string(), port)],
    })
}

/// This node as the one voter of a new quorum, as Kafka's `createStandaloneDynamicVoters`: its
/// first advertised controller listener ("localhost" when it names no host) and a new directory
/// id.
fn standalone_voter(config: &ServerConfig) -> Result<VoterSpec, String> {
    if !config.is_controller() {
        return Err(format!(
            "--standalone makes this node the quorum's only voter, but {} gives it no controller role. Fix: add controller to process.roles, or format a broker with --no-initial-controllers",
            config.source().display()
        ));
    }
    let listener = config.advertised_controller_listeners.first().ok_or_else(|| {
        format!(
            "{}: no controller listener found for --standalone. Fix: add CONTROLLER://:9093 to listeners and set controller.listener.names=CONTROLLER",
            config.source().display()
        )
    })?;
    Ok(VoterSpec {
        id: config.node_id,
        directory_id: uuid::Uuid::new_v4(),
        endpoints: vec![(
            listener.name.clone(),
            listener
                .host
                .clone()
                .unwrap_or_else(|| "localhost".to_string()),
            listener.port,
        )],
    })
}

/// The initial voters `storage format` writes into the bootstrap snapshot, or `None` for a static
/// quorum or `--no-initial-controllers`, after the checks Kafka's StorageTool makes.
pub(crate) fn initial_voters(
    config: &ServerConfig,
    flag: &InitialQuorum,
) -> Result<Option<Vec<VoterSpec>>, String> {
    let file = config.source().display();
    let static_quorum = !config.controller_quorum_voters.is_empty();
    let flag_name = match flag {
        InitialQuorum::Standalone => Some("--standalone"),
        InitialQuorum::InitialControllers(_) => Some("--initial-controllers"),
        _ => None,
    };
    if let (true, Some(flag_name)) = (static_quorum, flag_name) {
        // KAFKA-19489: a static voter set and a dynamic one must never both exist.
        return Err(format!(
            "{file} sets controller.quorum.voters (a static quorum), so the node cannot be formatted with {flag_name}. Fix: for a dynamic quorum remove controller.quorum.voters and set controller.quorum.bootstrap.servers; for a static quorum drop {flag_name}"
        ));
    }
    let listener = config
        .controller_listener_names
        .first()
        .cloned()
        .unwrap_or_else(|| "CONTROLLER".to_string());
    match flag {
        InitialQuorum::Standalone => Ok(Some(vec![standalone_voter(config)?])),
        InitialQuorum::InitialControllers(text) => {
            parse_initial_controllers(text, &listener).map(Some)
        }
        InitialQuorum::NoInitialControllers => Ok(None),
        InitialQuorum::Unset if config.is_controller() && !static_quorum => Err(format!(
            "controller.quorum.voters is not set in {file}, so this controller needs to know how the dynamic quorum starts. Fix: add --standalone (this node alone), --initial-controllers id@host:port:directoryId,... (all initial controllers) or --no-initial-controllers (join a quorum formatted elsewhere)"
        )),
        InitialQuorum::Unset => Ok(None),
    }
}

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
    quorum: &InitialQuorum,
) -> Result<(), String> {
    if parse_kafka_uuid(cluster_id).is_none() {
        return Err(format!(
            "cluster id '{cluster_id}' is not a valid Kafka uuid (22 characters of URL-safe base64). Fix: use the output of 'kraftd storage random-uuid'"
        ));
    }
    let config = load_config(config_path, overrides)?;
    let voters = initial_voters(&config, quorum)?;
    format_dirs_with_voters(
        &config,
        cluster_id,
        ignore_formatted,
        voters.as_deref(),
        |line| println!("{line}"),
    )
}

/// Formats each unformatted dir for a static quorum (or one joined later). Used by
/// `start --auto-format`.
pub(crate) fn format_dirs(
    config: &ServerConfig,
    cluster_id: &str,
    ignore_formatted: bool,
    say: impl FnMut(String),
) -> Result<(), String> {
    format_dirs_with_voters(config, cluster_id, ignore_formatted, None, say)
}

/// Formats each unformatted dir. With `voters` (a KIP-853 dynamic quorum) the metadata dir also
/// gets the bootstrap snapshot `00000000000000000000-0000000000.checkpoint` holding
/// kraft.version 1 and the voters, and, when this node is one of them, the voter's directory id
/// as its directory.id, as Kafka's Formatter does.
pub(crate) fn format_dirs_with_voters(
    config: &ServerConfig,
    cluster_id: &str,
    ignore_formatted: bool,
    voters: Option<&[VoterSpec]>,
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
    let metadata_dir = config.metadata_log_dir();
    for dir in to_format {
        say(format!("Formatting {}", dir.display()));
        let this_voter = voters
            .filter(|_| dir == metadata_dir)
            .and_then(|vs| vs.iter().find(|v| v.id == config.node_id));
        let directory_id = match this_voter {
            Some(v) => kafka_uuid_string(&v.directory_id),
            None => random_uuid(),
        };
        MetaProperties {
            version: 1,
            cluster_id: cluster_id.to_string(),
            node_id: config.node_id,
            directory_id: Some(directory_id),
        }
        .write(&dir)
        .map_err(|e| e.to_string())?;
        if let Some(voters) = voters.filter(|_| dir == metadata_dir) {
            let path = write_bootstrap_snapshot(&dir, voters)?;
            say(format!(
                "Wrote {} with kraft.version=1 and {} initial voter(s): {}",
                path.display(),
                voters.len(),
                voters
                    .iter()
                    .map(|v| v.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
    }
    Ok(())
}

/// The bootstrap snapshot of a dynamic quorum, as Kafka's `Formatter.writeDynamicQuorumSnapshot`.
fn write_bootstrap_snapshot(metadata_dir: &Path, voters: &[VoterSpec]) -> Result<PathBuf, String> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    snapshot::write_snapshot(
        &metadata_partition_dir(metadata_dir),
        BOOTSTRAP_SNAPSHOT_ID,
        std::iter::empty::<&[u8]>(),
        &SnapshotControl {
            last_contained_log_timestamp: now,
            kraft_version: KRAFT_VERSION_1,
            voters: Some(voters_record(voters)),
        },
    )
    .map_err(|e| e.to_string())
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
                if dir == config.metadata_log_dir() {
                    snapshot_info(&dir, &mp, &mut problems);
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

/// What `info` says about the metadata dir's snapshots: which exist, and the quorum the newest
/// one declares; a problem when it cannot be read or names this node with another directory id.
fn snapshot_info(dir: &Path, mp: &MetaProperties, problems: &mut Vec<String>) {
    let partition = metadata_partition_dir(dir);
    let ids = match snapshot::list_snapshots(&partition) {
        Ok(ids) => ids,
        Err(e) => {
            problems.push(e.to_string());
            return;
        }
    };
    let Some(latest) = ids.last() else {
        println!("  snapshots: none");
        return;
    };
    println!(
        "  snapshots: {}",
        ids.iter()
            .map(|id| id.file_name())
            .collect::<Vec<_>>()
            .join(", ")
    );
    let path = latest.path_in(&partition);
    let snap = match snapshot::read_snapshot(&path) {
        Ok(s) => s,
        Err(e) => {
            problems.push(e.to_string());
            return;
        }
    };
    let Some(voters) = snap.voters.as_ref().map(VoterSpec::from_record) else {
        println!(
            "  {}: kraft.version={}, static quorum (no voter set), {} record(s)",
            latest.file_name(),
            snap.kraft_version,
            snap.records.len()
        );
        return;
    };
    println!(
        "  {}: kraft.version={}, voters: {}",
        latest.file_name(),
        snap.kraft_version,
        voters
            .iter()
            .map(|v| v.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );
    if let Some(me) = voters.iter().find(|v| v.id == mp.node_id) {
        let theirs = kafka_uuid_string(&me.directory_id);
        if mp.directory_id.as_deref() != Some(theirs.as_str()) {
            problems.push(format!(
                "{} names node {} as a voter with directory.id={theirs}, but {} has directory.id={}",
                path.display(),
                mp.node_id,
                MetaProperties::path_in(dir).display(),
                mp.directory_id.as_deref().unwrap_or("-")
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DYNAMIC: &str = "\
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=localhost:9093
listeners=PLAINTEXT://:9092,CONTROLLER://:9093
advertised.listeners=PLAINTEXT://localhost:9092
controller.listener.names=CONTROLLER
log.dirs=/tmp/kraftd-test-logs
";

    fn config(text: &str) -> ServerConfig {
        ServerConfig::from_str(text, Path::new("/etc/kraftd/server.properties"), &[])
            .unwrap_or_else(|e| panic!("{e}"))
    }

    fn static_quorum() -> ServerConfig {
        config(&DYNAMIC.replace(
            "controller.quorum.bootstrap.servers=localhost:9093",
            "controller.quorum.voters=1@localhost:9093",
        ))
    }

    const DIR1: &str = "JEXY6aqzQY-32P5TStzaFg";
    const DIR2: &str = "MvDxzVmcRsaTz33bUuRU6A";

    #[test]
    fn initial_controllers_parse_as_kafkas_dynamic_voters() {
        let voters = parse_initial_controllers(
            &format!(" 2@ctrl2:9094:{DIR2},1@[::1]:9093:{DIR1}=="),
            "CONTROLLER",
        )
        .expect("parse");
        assert_eq!(
            voters,
            vec![
                VoterSpec {
                    id: 1,
                    directory_id: parse_kafka_uuid(DIR1).expect("uuid"),
                    endpoints: vec![("CONTROLLER".into(), "::1".into(), 9093)],
                },
                VoterSpec {
                    id: 2,
                    directory_id: parse_kafka_uuid(DIR2).expect("uuid"),
                    endpoints: vec![("CONTROLLER".into(), "ctrl2".into(), 9094)],
                },
            ]
        );
    }

    #[test]
    fn bad_initial_controllers_say_which_entry_and_why() {
        for (text, problem) in [
            ("", "no voters given"),
            (",", "no voters given"),
            ("1ctrl:9093:x", "no @ found"),
            (&format!("@h:1:{DIR1}"), "starts with @"),
            (&format!("x@h:1:{DIR1}"), "node id 'x' is not a number"),
            (&format!("-1@h:1:{DIR1}"), "node id -1 is negative"),
            ("1@", "no host"),
            (&format!("1@[::1:9093:{DIR1}"), "has no ]"),
            ("1@host", "no colon after the host"),
            (&format!("1@[::1]9093:{DIR1}"), "must follow the host"),
            ("1@h:9093", "no colon after the port"),
            (&format!("1@h:70000:{DIR1}"), "port '70000'"),
            ("1@h:9093:short", "directory id 'short'"),
            (
                &format!("1@h:1:{DIR1},1@g:2:{DIR2}"),
                "node id 1 is given more than once",
            ),
        ] {
            let err = parse_initial_controllers(text, "CONTROLLER").expect_err(text);
            assert!(err.contains(problem), "{text}: {err}");
            assert!(err.contains(". Fix: "), "{err}");
            assert!(!err.contains('\n'), "{err}");
        }
    }

    #[test]
    fn format_flags_follow_kafkas_storage_tool() {
        use InitialQuorum::*;
        let dynamic = config(DYNAMIC);
        let voters = format!("1@localhost:9093:{DIR1}");

        // A dynamic-quorum controller must say how the quorum starts.
        let err = initial_voters(&dynamic, &Unset).expect_err("needs a flag");
        assert!(err.contains("--standalone"), "{err}");
        assert!(err.contains("--no-initial-controllers"), "{err}");
        assert_eq!(initial_voters(&dynamic, &NoInitialControllers), Ok(None));

        // --standalone: this node, its advertised controller endpoint, a fresh directory id.
        let standalone = initial_voters(&dynamic, &Standalone)
            .expect("ok")
            .expect("voters");
        assert_eq!(standalone.len(), 1);
        assert_eq!(standalone[0].id, 1);
        assert_eq!(
            standalone[0].endpoints,
            vec![("CONTROLLER".into(), "localhost".into(), 9093)]
        );
        let again = initial_voters(&dynamic, &Standalone)
            .expect("ok")
            .expect("voters");
        assert_ne!(standalone[0].directory_id, again[0].directory_id);

        let given = initial_voters(&dynamic, &InitialControllers(voters.clone()))
            .expect("ok")
            .expect("voters");
        assert_eq!(given[0].directory_id, parse_kafka_uuid(DIR1).expect("uuid"));

        // A static quorum refuses both dynamic flags (KAFKA-19489) and needs none.
        let fixed = static_quorum();
        for flag in [Standalone, InitialControllers(voters.clone())] {
            let err = initial_voters(&fixed, &flag).expect_err("static");
            assert!(err.contains("controller.quorum.voters"), "{err}");
            assert!(err.contains("controller.quorum.bootstrap.servers"), "{err}");
        }
        assert_eq!(initial_voters(&fixed, &Unset), Ok(None));
        assert_eq!(initial_voters(&fixed, &NoInitialControllers), Ok(None));

        // A broker has no quorum of its own to start; --standalone needs a controller.
        let broker = config(
            "process.roles=broker\nnode.id=5\ncontroller.quorum.bootstrap.servers=localhost:9093\n\
             listeners=PLAINTEXT://:9092\ncontroller.listener.names=CONTROLLER\nlog.dirs=/tmp/x\n",
        );
        assert_eq!(initial_voters(&broker, &Unset), Ok(None));
        let err = initial_voters(&broker, &Standalone).expect_err("not a controller");
        assert!(err.contains("no controller role"), "{err}");
        assert!(
            initial_voters(&broker, &InitialControllers(voters))
                .expect("ok")
                .is_some()
        );
    }

    #[test]
    fn format_writes_the_bootstrap_snapshot_and_the_voters_directory_id() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let data = tmp.path().join("data");
        let meta = tmp.path().join("meta");
        let cfg = config(&format!(
            "{}metadata.log.dir={}\n",
            DYNAMIC.replace("/tmp/kraftd-test-logs", &data.display().to_string()),
            meta.display()
        ));
        let voters = parse_initial_controllers(
            &format!("1@localhost:9093:{DIR1},2@other:9093:{DIR2}"),
            "CONTROLLER",
        )
        .expect("parse");
        let mut lines = Vec::new();
        format_dirs_with_voters(&cfg, "IBbu3QIiS_yteRiDzKQCJw", false, Some(&voters), |l| {
            lines.push(l)
        })
        .expect("format");
        // The metadata dir takes this voter's directory id; other dirs get fresh ones.
        let meta_props = MetaProperties::read(&meta)
            .expect("read")
            .expect("formatted");
        assert_eq!(meta_props.directory_id.as_deref(), Some(DIR1));
        let data_props = MetaProperties::read(&data)
            .expect("read")
            .expect("formatted");
        assert_ne!(data_props.directory_id.as_deref(), Some(DIR1));
        // Only the metadata dir has the bootstrap snapshot.
        let snap = BOOTSTRAP_SNAPSHOT_ID.path_in(&metadata_partition_dir(&meta));
        assert_eq!(
            snapshot::read_voters_from_snapshot(&snap).expect("read"),
            Some(voters)
        );
        assert!(!metadata_partition_dir(&data).exists());
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with("Wrote ") && l.contains("2 initial voter(s)"))
        );
    }
}
