#!/usr/bin/env bash
# kcat (Debian's, on librdkafka 2.0.2) against a kraftd node: metadata, keyed produce with headers
# in every codec, consume back, offsets by time; each output is compared exactly.
#
#     bash tests/kcat.sh BOOTSTRAP
#
# librdkafka 2.0.2 speaks older request versions than current clients (for example ListOffsets v2),
# which is the point of running it. Exits 1 with a diff on the first mismatch.
set -euo pipefail

if [ $# -ne 1 ]; then
  echo "usage: kcat.sh BOOTSTRAP" >&2
  exit 2
fi
B=$1
if ! command -v kcat >/dev/null 2>&1; then
  echo "kcat.sh: FAILED: kcat is not installed (apt-get install -y kcat, or run .ci/run)" >&2
  exit 1
fi

TOPIC="kcat-check-$(date +%s%N)"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
STEP=""

# Runs kcat with a bounded time; stdout to $WORK/out, stderr to $WORK/err.
k() {
  if ! timeout 60 kcat -b "$B" "$@" >"$WORK/out" 2>"$WORK/err"; then
    echo "kcat.sh: FAILED at '$STEP': kcat $* exited non-zero" >&2
    cat "$WORK/err" >&2
    exit 1
  fi
}

# Fails unless $WORK/out equals the expected text on stdin.
expect_out() {
  if ! diff -u - "$WORK/out" >"$WORK/diff"; then
    echo "kcat.sh: FAILED at '$STEP': output differs (- expected, + kcat):" >&2
    cat "$WORK/diff" >&2
    echo "--- kcat stderr:" >&2
    cat "$WORK/err" >&2
    exit 1
  fi
}

expect_line() {
  if ! grep -qxF -- "$1" "$WORK/out"; then
    echo "kcat.sh: FAILED at '$STEP': no line '$1' in:" >&2
    cat "$WORK/out" "$WORK/err" >&2
    exit 1
  fi
}

STEP="cluster metadata"
k -L
expect_line " 1 brokers:"
expect_line "  broker 1 at $B (controller)"

# Five produce runs, one batch each: the first uncompressed, then one per codec. -Z sends an empty
# value as NULL; -H adds the same headers to each record of a run. The topic is auto-created.
START_MS=$(($(date +%s%N) / 1000000))
STEP="produce uncompressed"
printf 'alpha:one\nbeta:two words\ngamma:\n' >"$WORK/in"
k -P -t "$TOPIC" -K: -Z -H trace=abc -H n=1 -l "$WORK/in"
for codec in gzip snappy lz4 zstd; do
  STEP="produce $codec"
  printf '%s-a:%s value one\n%s-b:%s\n' "$codec" "$codec" "$codec" "$(head -c 300 /dev/zero | tr '\0' "${codec:0:1}")" >"$WORK/in"
  k -P -t "$TOPIC" -K: -z "$codec" -H "codec=$codec" -l "$WORK/in"
done
END_MS=$(($(date +%s%N) / 1000000))

STEP="topic metadata"
k -L -t "$TOPIC"
expect_line " 1 brokers:"
expect_line " 1 topics:"
expect_line "  topic \"$TOPIC\" with 1 partitions:"
expect_line "    partition 0, leader 1, replicas: 1, isrs: 1"

row() { # key, value, headers at offset $n
  printf '0|%d|%s|%d|%s|%s\n' "$n" "$1" "${#2}" "$2" "$3"
  n=$((n + 1))
}
n=0
{
  printf '0|0|alpha|3|one|trace=abc,n=1\n'
  printf '0|1|beta|9|two words|trace=abc,n=1\n'
  printf '0|2|gamma|-1||trace=abc,n=1\n'
  n=3
  for codec in gzip snappy lz4 zstd; do
    row "$codec-a" "$codec value one" "codec=$codec"
    row "$codec-b" "$(head -c 300 /dev/zero | tr '\0' "${codec:0:1}")" "codec=$codec"
  done
} >"$WORK/expected"

STEP="consume from beginning"
k -C -t "$TOPIC" -e -q -o beginning -f '%p|%o|%k|%S|%s|%h\n'
expect_out <"$WORK/expected"

# Starting inside a compressed batch (offset 4 is the second record of the gzip batch).
STEP="consume from offset 4, 3 records"
k -C -t "$TOPIC" -e -q -o 4 -c 3 -f '%p|%o|%k|%S|%s|%h\n'
sed -n '5,7p' "$WORK/expected" | expect_out

STEP="record timestamps"
k -C -t "$TOPIC" -e -q -o beginning -f '%T\n'
while read -r ts; do
  if [ "$ts" -lt "$START_MS" ] || [ "$ts" -gt "$END_MS" ]; then
    echo "kcat.sh: FAILED at '$STEP': timestamp $ts outside the produce window [$START_MS, $END_MS]" >&2
    exit 1
  fi
done <"$WORK/out"
[ "$(wc -l <"$WORK/out")" -eq 11 ] || { echo "kcat.sh: FAILED at '$STEP': $(wc -l <"$WORK/out") timestamps, expected 11" >&2; exit 1; }

# ListOffsets: -1 is the end, -2 the start, a timestamp before the first record gives offset 0,
# one after the last gives no offset (-1).
STEP="offsets for times"
k -Q -t "$TOPIC:0:-1"
echo "$TOPIC [0] offset 11" | expect_out
k -Q -t "$TOPIC:0:-2"
echo "$TOPIC [0] offset 0" | expect_out
k -Q -t "$TOPIC:0:$((START_MS - 1000))"
echo "$TOPIC [0] offset 0" | expect_out
k -Q -t "$TOPIC:0:$((END_MS + 60000))"
echo "$TOPIC [0] offset -1" | expect_out

echo "kcat OK ($(kcat -V | grep -o 'librdkafka [0-9.]*' | head -1)): metadata, 11 records in 5 batches (none, gzip, snappy, lz4, zstd) consumed back exactly, offsets by time"
