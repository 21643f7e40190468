"""What the client scripts share: the records they send and the check of what came back.

A record is compared as a `Received(partition, offset, key, value, headers, timestamp)` tuple with
bytes for key, value and header values and a list of (str, bytes) headers, whatever client read it.
"""
import collections
import sys
import zlib

Sent = collections.namedtuple("Sent", "index key value headers timestamp")
Received = collections.namedtuple("Received", "partition offset key value headers timestamp")

# An explicit CreateTime per record, in the past (brokers reject timestamps too far ahead).
BASE_TIMESTAMP_MS = 1_700_000_000_000


class CheckFailed(Exception):
    pass


def fail_and_exit(script, error):
    print(f"{script}: FAILED: {error}", file=sys.stderr)
    sys.exit(1)


def make_records(tag, count):
    """`count` records with unique keys, one header each, and timestamps that are not in order
    (so a batch's max timestamp is not its last). Some values are null or empty; most are binary."""
    records = []
    for i in range(count):
        if i % 997 == 500:
            value = None
        elif i % 1009 == 7:
            value = b""
        else:
            value = f"{tag}-value-{i}:".encode() + bytes((i * 31 + j * 17) % 256 for j in range(i % 300))
        records.append(
            Sent(
                index=i,
                key=f"{tag}-key-{i:05d}".encode(),
                value=value,
                headers=[(f"h{i % 3}", f"header-{tag}-{i}".encode())],
                timestamp=BASE_TIMESTAMP_MS + (i * 7919) % 100_000,
            )
        )
    return records


def murmur2(data):
    """Kafka's Java `Utils.murmur2`, as a signed 32-bit int."""
    m = 0x5BD1E995
    length = len(data)
    h = (0x9747B28C ^ length) & 0xFFFFFFFF
    for i in range(0, length - length % 4, 4):
        k = int.from_bytes(data[i : i + 4], "little")
        k = (k * m) & 0xFFFFFFFF
        k ^= k >> 24
        k = (k * m) & 0xFFFFFFFF
        h = ((h * m) & 0xFFFFFFFF) ^ k
    tail = length & ~3
    rest = length % 4
    if rest >= 3:
        h ^= data[tail + 2] << 16
    if rest >= 2:
        h ^= data[tail + 1] << 8
    if rest >= 1:
        h ^= data[tail]
        h = (h * m) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * m) & 0xFFFFFFFF
    h ^= h >> 15
    return h - (1 << 32) if h >= 1 << 31 else h


# From Kafka's UtilsTest.testMurmur2: the Java client's values.
MURMUR2_JAVA_VECTORS = [
    (b"21", -973932308),
    (b"foobar", -790332482),
    (b"a-little-bit-long-string", -985981536),
    (b"a-little-bit-longer-string", -1486304829),
    (b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971),
    (b"abc", 479470107),
]


def check_murmur2(hash_fn, who):
    """Fails unless `hash_fn` (bytes -> int) reproduces the Java client's murmur2."""
    for data, want in MURMUR2_JAVA_VECTORS:
        got = hash_fn(data)
        got = got - (1 << 32) if got >= 1 << 31 else got
        if got != want:
            raise CheckFailed(f"{who} murmur2({data!r}) = {got}, the Java client gives {want}")


def java_partition(key, partitions):
    """The Java client's default partition for a non-null key: toPositive(murmur2(key)) % n."""
    return (murmur2(key) & 0x7FFFFFFF) % partitions


def crc32_partition(key, partitions):
    """librdkafka's default `consistent_random` partition for a non-empty key: crc32(key) % n."""
    return zlib.crc32(key) % partitions


def verify(what, sent, received, partitions, partition_of, acked=None):
    """Checks `received` (every record read back from a topic) against `sent`.

    - exactly the sent keys, each once, with the same value, headers and timestamp;
    - each key in `partition_of(key)` (the client's default partitioner);
    - offsets 0..n-1 in every partition, and per partition the send order kept;
    - if `acked` ({key: (partition, offset)} from the producer's delivery reports) is given,
      every record was read at the partition and offset its ack named.
    """
    by_key = {s.key: s for s in sent}
    if len(by_key) != len(sent):
        raise CheckFailed(f"{what}: test bug: keys are not unique")
    if len(received) != len(sent):
        raise CheckFailed(f"{what}: sent {len(sent)} records, read back {len(received)}")
    per_partition = collections.defaultdict(list)
    seen = set()
    for r in received:
        s = by_key.get(r.key)
        if s is None:
            raise CheckFailed(f"{what}: read a key that was never sent: {r.key!r} at {r.partition}/{r.offset}")
        if r.key in seen:
            raise CheckFailed(f"{what}: key {r.key!r} read twice (again at {r.partition}/{r.offset})")
        seen.add(r.key)
        where = f"{what}: key {r.key.decode()} at partition {r.partition} offset {r.offset}"
        if r.value != s.value:
            raise CheckFailed(f"{where}: value {_short(r.value)} != sent {_short(s.value)}")
        if list(r.headers) != list(s.headers):
            raise CheckFailed(f"{where}: headers {r.headers!r} != sent {s.headers!r}")
        if r.timestamp != s.timestamp:
            raise CheckFailed(f"{where}: timestamp {r.timestamp} != sent {s.timestamp}")
        want_partition = partition_of(r.key, partitions)
        if r.partition != want_partition:
            raise CheckFailed(f"{where}: the default partitioner gives partition {want_partition}")
        if acked is not None and acked.get(r.key) != (r.partition, r.offset):
            raise CheckFailed(f"{where}: the producer's ack said (partition, offset) = {acked.get(r.key)}")
        per_partition[r.partition].append((r.offset, s.index))
    for p in range(partitions):
        got = sorted(per_partition.get(p, []))
        offsets = [o for o, _ in got]
        if offsets != list(range(len(got))):
            raise CheckFailed(f"{what}: partition {p} offsets are not dense from 0: {_gaps(offsets)}")
        order = [i for _, i in got]
        if order != sorted(order):
            bad = next(k for k in range(1, len(order)) if order[k] < order[k - 1])
            raise CheckFailed(
                f"{what}: partition {p} lost send order: record #{order[bad]} at offset {bad} after #{order[bad - 1]}"
            )
    if set(per_partition) - set(range(partitions)):
        raise CheckFailed(f"{what}: records in partitions {sorted(per_partition)} of a {partitions}-partition topic")
    return {p: len(per_partition.get(p, [])) for p in range(partitions)}


def _short(v):
    if v is None:
        return "null"
    return repr(v[:40]) + (f"... ({len(v)} bytes)" if len(v) > 40 else "")


def _gaps(offsets):
    for k, o in enumerate(offsets):
        if o != k:
            return f"expected offset {k}, found {o} (of {len(offsets)} records)"
    return "?"
