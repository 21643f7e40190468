//! Several real `kraftd` processes forming one KRaft cluster on loopback: each node gets its own
//! client and controller ports and data dir; all are formatted with one cluster id.

use std::time::{Duration, Instant};

use super::{Node, free_port, run_kraftd};

pub struct Cluster {
    pub nodes: Vec<Node>,
    pub cluster_id: String,
}

impl Cluster {
    /// `voters` combined broker,controller nodes with ids 1..=voters, `extra` keys appended to
    /// each config. Every node is launched; the quorum elects itself in the background.
    pub fn start(voters: usize, extra: &[(&str, &str)]) -> Cluster {
        let ports: Vec<(u16, u16)> = (0..voters).map(|_| (free_port(), free_port())).collect();
        let voter_list: Vec<String> = ports
            .iter()
            .enumerate()
            .map(|(i, (_, c))| format!("{}@127.0.0.1:{c}", i + 1))
            .collect();
        let (code, out, err) = run_kraftd(&["storage", "random-uuid"]);
        assert_eq!(code, 0, "random-uuid: {err}");
        let cluster_id = out.trim().to_string();
        let mut nodes = Vec::new();
        for (i, &(client_port, controller_port)) in ports.iter().enumerate() {
            let dir = tempfile::tempdir().expect("tempdir");
            let mut text = format!(
                "process.roles=broker,controller\nnode.id={}\n\
                 controller.quorum.voters={}\n\
                 listeners=PLAINTEXT://127.0.0.1:{client_port},CONTROLLER://127.0.0.1:{controller_port}\n\
                 advertised.listeners=PLAINTEXT://127.0.0.1:{client_port}\n\
                 controller.listener.names=CONTROLLER\n\
                 log.dirs={}\n",
                i + 1,
                voter_list.join(","),
                dir.path().join("data").display()
            );
            for (k, v) in extra {
                text.push_str(&format!("{k}={v}\n"));
            }
            let node = Node::prepare(dir, client_port, controller_port, &text);
            let config = node.config_path.display().to_string();
            let (code, _, err) =
                run_kraftd(&["storage", "format", "-t", &cluster_id, "-c", &config]);
            assert_eq!(code, 0, "format node {}: {err}", i + 1);
            nodes.push(node);
        }
        for node in &mut nodes {
            node.launch(&[]);
        }
        Cluster { nodes, cluster_id }
    }

    /// Kafka's split layout: `controllers` controller-only nodes (ids 1..) forming the quorum
    /// and `brokers` broker-only nodes (ids after them). Brokers listed in `late` are formatted
    /// but not launched (to join a running cluster later).
    pub fn start_split(controllers: usize, brokers: usize, late: &[i32]) -> Cluster {
        Self::start_split_with(controllers, brokers, late, &[])
    }

    /// `start_split` with `extra` keys appended to every node's config.
    pub fn start_split_with(
        controllers: usize,
        brokers: usize,
        late: &[i32],
        extra: &[(&str, &str)],
    ) -> Cluster {
        let controller_ports: Vec<u16> = (0..controllers).map(|_| free_port()).collect();
        let voter_list: Vec<String> = controller_ports
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{}@127.0.0.1:{c}", i + 1))
            .collect();
        let (code, out, err) = run_kraftd(&["storage", "random-uuid"]);
        assert_eq!(code, 0, "random-uuid: {err}");
        let cluster_id = out.trim().to_string();
        let mut nodes = Vec::new();
        for i in 0..controllers + brokers {
            let id = i + 1;
            let dir = tempfile::tempdir().expect("tempdir");
            let data = dir.path().join("data");
            let (text, client_port, controller_port) = if let Some(&port) = controller_ports.get(i)
            {
                (
                    format!(
                        "process.roles=controller\nnode.id={id}\n\
                         controller.quorum.voters={}\n\
                         listeners=CONTROLLER://127.0.0.1:{port}\n\
                         controller.listener.names=CONTROLLER\n\
                         log.dirs={}\n",
                        voter_list.join(","),
                        data.display()
                    ),
                    0,
                    port,
                )
            } else {
                let port = free_port();
                (
                    format!(
                        "process.roles=broker\nnode.id={id}\n\
                         controller.quorum.voters={}\n\
                         listeners=PLAINTEXT://127.0.0.1:{port}\n\
                         advertised.listeners=PLAINTEXT://127.0.0.1:{port}\n\
                         controller.listener.names=CONTROLLER\n\
                         log.dirs={}\n",
                        voter_list.join(","),
                        data.display()
                    ),
                    port,
                    0,
                )
            };
            let mut text = text;
            for (k, v) in extra {
                text.push_str(&format!("{k}={v}\n"));
            }
            let node = Node::prepare(dir, client_port, controller_port, &text);
            let config = node.config_path.display().to_string();
            let (code, _, err) =
                run_kraftd(&["storage", "format", "-t", &cluster_id, "-c", &config]);
            assert_eq!(code, 0, "format node {id}: {err}");
            nodes.push(node);
        }
        for (i, node) in nodes.iter_mut().enumerate() {
            if !late.contains(&(i as i32 + 1)) {
                node.launch(&[]);
            }
        }
        Cluster { nodes, cluster_id }
    }

    /// Client bootstrap list of every running node.
    pub fn bootstrap(&self) -> String {
        self.nodes
            .iter()
            .map(|n| n.bootstrap())
            .collect::<Vec<_>>()
            .join(",")
    }

    pub fn node(&mut self, id: i32) -> &mut Node {
        &mut self.nodes[(id - 1) as usize]
    }

    /// Which node's log says it leads the metadata quorum now: the newest "leads" line wins.
    pub fn wait_for(&self, what: &str, timeout: Duration, mut check: impl FnMut() -> bool) {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if check() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let logs: Vec<String> = self
            .nodes
            .iter()
            .enumerate()
            .map(|(i, n)| format!("--- node {} ---\n{}", i + 1, tail(&n.log(), 40)))
            .collect();
        panic!(
            "timed out after {timeout:?} waiting for {what}\n{}",
            logs.join("\n")
        );
    }
}

pub fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
