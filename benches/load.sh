#!/usr/bin/env bash
# The load tool's figures against one release kraftd node on loopback, for the README:
# produce 1 KiB records (acks=1 and all, 1 and 6 partitions), consume, e2e latency.
# Usage: benches/load.sh [RECORDS]   (default 2000000 per produce run)
# Client and server run on the same machine and share its cores: the figures are lower
# bounds for the server. Prints the machine, its load average, and one line per run.
set -euo pipefail
cd "$(dirname "$0")/.."
records=${1:-2000000}
cargo build --release -p kraftd --bin kraftd >&2
cargo build --release -p kraftd-bench >&2
target=${CARGO_TARGET_DIR:-target}
kraftd=$target/release/kraftd
bench=$target/release/kraftd-bench

dir=$(mktemp -d)
port=$((20000 + RANDOM % 20000)); cport=$((port + 1))
cat >"$dir/server.properties" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$cport
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$cport
advertised.listeners=PLAINTEXT://127.0.0.1:$port
controller.listener.names=CONTROLLER
log.dirs=$dir/data
PROPS
KRAFTD_LOG=warn "$kraftd" start -c "$dir/server.properties" --auto-format 2>"$dir/kraftd.log" &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$dir"' EXIT
for _ in $(seq 100); do
  (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
  sleep 0.1
done

b="127.0.0.1:$port"
lscpu | grep -E '^(Model name|CPU\(s\)):' | tr -s ' '
run() { echo "# load $(cut -d' ' -f1-3 /proc/loadavg): kraftd-bench $*"; "$bench" "$@" -b "$b" 2>/dev/null; }
for p in 1 6; do
  for acks in 1 all; do
    run produce --topic "p$p-acks$acks" --partitions "$p" --acks "$acks" --records "$records"
  done
done
run consume --topic p1-acks1
run consume --topic p6-acks1
run e2e --topic e2e-p1 --partitions 1 --acks all --rate 50000 --duration 10s
run e2e --topic e2e-p6 --partitions 6 --acks all --rate 50000 --duration 10s
run e2e --topic e2e-p6-max --partitions 6 --acks 1 --duration 10s
