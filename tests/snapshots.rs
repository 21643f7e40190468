//! KIP-853 formatting and KIP-630 snapshot files through the real binary: `storage format
//! --standalone | --initial-controllers | --no-initial-controllers` write (or refuse to write) the
//! bootstrap snapshot, whose bytes are decoded here independently of kraftd's reader; `storage
//! info` and `metadata dump` show it.

mod common;

use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use common::{free_port, run_kraftd};
use kafka_protocol::messages::{KRaftVersionRecord, SnapshotHeaderRecord, VotersRecord};
use kafka_protocol::protocol::Decodable;
use kafka_protocol::records::RecordBatchDecoder;

const CLUSTER_ID: &str = "IBbu3QIiS_yteRiDzKQCJw";
const BOOTSTRAP: &str = "00000000000000000000-0000000000.checkpoint";

/// One node's config in a temp dir; `quorum` is its controller.quorum.* line.
struct Setup {
    dir: tempfile::TempDir,
    controller_port: u16,
    config: PathBuf,
}

impl Setup {
    fn new(node_id: i32, quorum: &str) -> Setup {
        let dir = tempfile::tempdir().expect("tempdir");
        let (client_port, controller_port) = (free_port(), free_port());
        let config = dir.path().join("server.properties");
        let quorum = quorum.replace("{port}", &controller_port.to_string());
        std::fs::write(
            &config,
            format!(
                "process.roles=broker,controller\nnode.id={node_id}\n{quorum}\n\
                 listeners=PLAINTEXT://127.0.0.1:{client_port},CONTROLLER://127.0.0.1:{controller_port}\n\
                 advertised.listeners=PLAINTEXT://127.0.0.1:{client_port}\n\
                 controller.listener.names=CONTROLLER\n\
                 log.dirs={}\nmetadata.log.dir={}\n",
                dir.path().join("data").display(),
                dir.path().join("meta").display()
            ),
        )
        .expect("config");
        Setup {
            dir,
            controller_port,
            config,
        }
    }

    fn dynamic(node_id: i32) -> Setup {
        Setup::new(
            node_id,
            "controller.quorum.bootstrap.servers=127.0.0.1:{port}",
        )
    }

    fn config(&self) -> &str {
        self.config.to_str().expect("utf-8 path")
    }

    fn partition_dir(&self) -> PathBuf {
        self.dir.path().join("meta").join("__cluster_metadata-0")
    }

    fn format(&self, flags: &[&str]) -> (i32, String, String) {
        let mut args = vec!["storage", "format", "-t", CLUSTER_ID, "-c", self.config()];
        args.extend_from_slice(flags);
        run_kraftd(&args)
    }

    fn directory_id(&self, dir: &str) -> String {
        let text = std::fs::read_to_string(self.dir.path().join(dir).join("meta.properties"))
            .expect("meta.properties");
        text.lines()
            .find_map(|l| l.strip_prefix("directory.id="))
            .expect("directory.id")
            .to_string()
    }
}

/// What a bootstrap checkpoint holds, decoded with kafka-protocol alone.
#[derive(Debug)]
struct Decoded {
    /// (base offset, partition leader epoch, is control, record count) per batch.
    batches: Vec<(i64, i32, bool, usize)>,
    /// Control record types in order.
    control_types: Vec<i16>,
    kraft_version: Option<i16>,
    voters: Option<VotersRecord>,
    header_timestamp: Option<i64>,
}

fn decode_checkpoint(path: &Path) -> Decoded {
    let mut data = Bytes::from(std::fs::read(path).expect("checkpoint"));
    let sets = RecordBatchDecoder::decode_all(&mut data).expect("valid batches (CRC checked)");
    let mut d = Decoded {
        batches: Vec::new(),
        control_types: Vec::new(),
        kraft_version: None,
        voters: None,
        header_timestamp: None,
    };
    for set in sets {
        let first = set.records.first().expect("non-empty batch");
        d.batches.push((
            first.offset,
            first.partition_leader_epoch,
            first.control,
            set.records.len(),
        ));
        for r in set.records {
            let key = r.key.expect("control key");
            let kind = i16::from_be_bytes([key[2], key[3]]);
            d.control_types.push(kind);
            let mut value = r.value.expect("value");
            match kind {
                3 => {
                    d.header_timestamp = Some(
                        SnapshotHeaderRecord::decode(&mut value, 0)
                            .expect("header")
                            .last_contained_log_timestamp,
                    )
                }
                5 => {
                    d.kraft_version = Some(
                        KRaftVersionRecord::decode(&mut value, 0)
                            .expect("kraft version")
                            .k_raft_version,
                    )
                }
                6 => d.voters = Some(VotersRecord::decode(&mut value, 0).expect("voters")),
                _ => {}
            }
        }
    }
    d
}

/// (id, directory id in Kafka's form, listener, host, port, min..max kraft.version) per voter.
fn voters_of(r: &VotersRecord) -> Vec<(i32, String, String, String, u16, i16, i16)> {
    r.voters
        .iter()
        .map(|v| {
            assert_eq!(v.endpoints.len(), 1);
            let e = &v.endpoints[0];
            (
                v.voter_id.0,
                URL_SAFE_NO_PAD.encode(v.voter_directory_id.as_bytes()),
                e.name.to_string(),
                e.host.to_string(),
                e.port,
                v.k_raft_version_feature.min_supported_version,
                v.k_raft_version_feature.max_supported_version,
            )
        })
        .collect()
}

fn random_uuid() -> String {
    let (code, out, _) = run_kraftd(&["storage", "random-uuid"]);
    assert_eq!(code, 0);
    out.trim().to_string()
}

#[test]
fn standalone_writes_the_bootstrap_snapshot_with_this_node_as_the_only_voter() {
    let s = Setup::dynamic(1);
    let (code, out, err) = s.format(&["--standalone"]);
    assert_eq!(code, 0, "{out}{err}");
    let checkpoint = s.partition_dir().join(BOOTSTRAP);
    assert!(
        out.contains(&format!("Wrote {}", checkpoint.display())),
        "{out}"
    );

    let d = decode_checkpoint(&checkpoint);
    // Header, KRaftVersion and Voters in one control batch at offset 0, epoch 0; then the footer.
    assert_eq!(d.batches, vec![(0, 0, true, 3), (3, 0, true, 1)]);
    assert_eq!(d.control_types, vec![3, 5, 6, 4]);
    assert_eq!(d.kraft_version, Some(1));
    assert!(d.header_timestamp.is_some_and(|t| t > 0));
    let meta_dir_id = s.directory_id("meta");
    assert_eq!(
        voters_of(&d.voters.expect("voters")),
        vec![(
            1,
            meta_dir_id.clone(),
            "CONTROLLER".to_string(),
            "127.0.0.1".to_string(),
            s.controller_port,
            0,
            1
        )]
    );
    // The data dir is not the voter's directory.
    assert_ne!(s.directory_id("data"), meta_dir_id);
    assert!(
        !s.dir
            .path()
            .join("data")
            .join("__cluster_metadata-0")
            .exists()
    );

    let (code, out, err) = run_kraftd(&["storage", "info", "-c", s.config()]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains(&format!("  snapshots: {BOOTSTRAP}")), "{out}");
    assert!(
        out.contains(&format!(
            "kraft.version=1, voters: 1@127.0.0.1:{}:{meta_dir_id} (CONTROLLER)",
            s.controller_port
        )),
        "{out}"
    );
}

#[test]
fn initial_controllers_are_written_for_every_node_with_each_voters_directory_id() {
    let ids: Vec<String> = (0..3).map(|_| random_uuid()).collect();
    let list = format!(
        "3@ctrl3:9095:{},1@ctrl1:9093:{},2@[::1]:9094:{}",
        ids[2], ids[0], ids[1]
    );
    let s = Setup::dynamic(2);
    let (code, out, err) = s.format(&["--initial-controllers", &list]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(s.directory_id("meta"), ids[1]);
    let d = decode_checkpoint(&s.partition_dir().join(BOOTSTRAP));
    assert_eq!(d.kraft_version, Some(1));
    let c = |id: i32, dir: &str, host: &str, port: u16| {
        (
            id,
            dir.to_string(),
            "CONTROLLER".to_string(),
            host.to_string(),
            port,
            0,
            1,
        )
    };
    assert_eq!(
        voters_of(&d.voters.expect("voters")),
        vec![
            c(1, &ids[0], "ctrl1", 9093),
            c(2, &ids[1], "::1", 9094),
            c(3, &ids[2], "ctrl3", 9095),
        ]
    );

    // A node outside the list (an observer to be added later) gets the same snapshot and a
    // directory id of its own.
    let other = Setup::dynamic(4);
    let (code, out, err) = other.format(&["-I", &list]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(!ids.contains(&other.directory_id("meta")));
    let d = decode_checkpoint(&other.partition_dir().join(BOOTSTRAP));
    assert_eq!(d.voters.expect("voters").voters.len(), 3);
}

#[test]
fn no_initial_controllers_and_static_quorums_write_no_snapshot() {
    let s = Setup::dynamic(1);
    let (code, out, err) = s.format(&["--no-initial-controllers"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(!s.partition_dir().join(BOOTSTRAP).exists());

    let s = Setup::new(1, "controller.quorum.voters=1@127.0.0.1:{port}");
    let (code, out, err) = s.format(&[]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(!s.partition_dir().join(BOOTSTRAP).exists());
}

#[test]
fn format_refuses_what_kafkas_storage_tool_refuses() {
    let one_line = |code: i32, err: &str, want: &[&str]| {
        assert_eq!(code, 1, "{err}");
        let lines: Vec<&str> = err.lines().collect();
        assert_eq!(lines.len(), 1, "{err}");
        assert!(
            lines[0].starts_with("kraftd: ") && lines[0].contains(". Fix: "),
            "{err}"
        );
        for w in want {
            assert!(lines[0].contains(w), "{w} not in {err}");
        }
    };
    let dynamic = Setup::dynamic(1);
    let (code, _, err) = dynamic.format(&[]);
    one_line(
        code,
        &err,
        &[
            "controller.quorum.voters is not set",
            "--standalone",
            "--no-initial-controllers",
        ],
    );
    let (code, _, err) = dynamic.format(&["--initial-controllers", "1@ctrl1:9093"]);
    one_line(code, &err, &["'1@ctrl1:9093'", "id@host:port:directoryId"]);

    let fixed = Setup::new(1, "controller.quorum.voters=1@127.0.0.1:{port}");
    for flags in [
        vec!["--standalone"],
        vec!["--initial-controllers", "1@h:1:JEXY6aqzQY-32P5TStzaFg"],
    ] {
        let (code, _, err) = fixed.format(&flags);
        one_line(
            code,
            &err,
            &[
                "controller.quorum.voters",
                "controller.quorum.bootstrap.servers",
                flags[0],
            ],
        );
    }
    // The three flags exclude each other (a usage error, as Kafka's argparse group).
    let (code, _, err) = dynamic.format(&["--standalone", "--no-initial-controllers"]);
    assert_eq!(code, 2, "{err}");
    // Nothing was written by any refused command.
    assert!(!dynamic.dir.path().join("meta").exists());
    assert!(!fixed.dir.path().join("meta").exists());
}

#[test]
fn metadata_dump_prints_the_bootstrap_snapshot() {
    let s = Setup::dynamic(1);
    let (code, out, err) = s.format(&["--standalone"]);
    assert_eq!(code, 0, "{out}{err}");
    let checkpoint = s.partition_dir().join(BOOTSTRAP);
    let expected_voter = format!(
        "Voters(version=0, voters=[1@127.0.0.1:{}:{} (CONTROLLER)])",
        s.controller_port,
        s.directory_id("meta")
    );

    let (code, out, err) = run_kraftd(&["metadata", "dump", "-c", s.config()]);
    assert_eq!(code, 0, "{out}{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], format!("# {}", checkpoint.display()));
    assert_eq!(
        lines[1],
        "baseOffset: 0 lastOffset: 2 leaderEpoch: 0 records: 3 (control)"
    );
    assert!(lines[2].starts_with("  0: SnapshotHeader(version=0, lastContainedLogTimestamp="));
    assert_eq!(lines[3], "  1: KRaftVersion(version=0, kraftVersion=1)");
    assert_eq!(lines[4], format!("  2: {expected_voter}"));
    assert_eq!(
        lines[5],
        "baseOffset: 3 lastOffset: 3 leaderEpoch: 0 records: 1 (control)"
    );
    assert_eq!(lines[6], "  3: SnapshotFooter(version=0)");

    let (code, one, err) = run_kraftd(&[
        "metadata",
        "dump",
        "--snapshot",
        checkpoint.to_str().expect("utf-8"),
    ]);
    assert_eq!(code, 0, "{one}{err}");
    assert_eq!(one, out);
}
