#!/usr/bin/env python3
"""kafka-python against a kraftd node: admin create, produce with every codec, read back exactly.

    python3 check_kafka_python.py BOOTSTRAP

For each codec (none, gzip, snappy, lz4, zstd) it creates a 3-partition topic with KafkaAdminClient,
produces 10,000 keyed records (one header each, explicit timestamps, acks=all, idempotent), reads
them back with an assigned KafkaConsumer (no group), and checks every key, value, header,
timestamp and offset, and that each key sits in the partition kafka-python's default
(Java-compatible murmur2) partitioner picks. Exits 1 with the first mismatch.
"""
import sys
import time

from kafka import KafkaAdminClient, KafkaProducer
from kafka.admin import NewTopic
from kafka.partitioner.default import DefaultPartitioner, murmur2 as kafka_python_murmur2

from clientcheck import CheckFailed, check_murmur2, fail_and_exit, make_records, verify
from read_topic import read_topic

CODECS = ["none", "gzip", "snappy", "lz4", "zstd"]
PARTITIONS = 3
RECORDS = 10_000


def kafka_python_partition(key, partitions):
    all_partitions = list(range(partitions))
    return DefaultPartitioner()(key, all_partitions, all_partitions)


def create_topics(bootstrap, names):
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="check-kafka-python-admin")
    try:
        response = admin.create_topics(
            [NewTopic(name, num_partitions=PARTITIONS, replication_factor=1) for name in names],
            timeout_ms=30_000,
        )
        # kafka-python raises on an error code by default; check the echoed names all the same.
        created = {t[0] for t in response.topic_errors}
        errors = [(t[0], t[1]) for t in response.topic_errors if t[1] != 0]
        if errors or created != set(names):
            raise CheckFailed(f"CreateTopics answered {response.topic_errors}, wanted {names} without errors")
    finally:
        admin.close()


def produce(bootstrap, topic, codec, records):
    """Sends `records` and returns {key: (partition, offset)} from the delivery reports."""
    producer = KafkaProducer(
        bootstrap_servers=bootstrap,
        client_id=f"check-kafka-python-{codec}",
        acks="all",
        enable_idempotence=True,
        compression_type=None if codec == "none" else codec,
        linger_ms=5,
        batch_size=64 * 1024,
    )
    try:
        futures = [
            (r.key, producer.send(topic, key=r.key, value=r.value, headers=r.headers, timestamp_ms=r.timestamp))
            for r in records
        ]
        producer.flush(timeout=60)
        acked = {}
        for key, future in futures:
            meta = future.get(timeout=30)
            acked[key] = (meta.partition, meta.offset)
        return acked
    finally:
        producer.close(timeout=10)


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: check_kafka_python.py BOOTSTRAP")
    bootstrap = sys.argv[1]
    started = time.monotonic()
    check_murmur2(kafka_python_murmur2, "kafka-python's")
    suffix = int(time.time() * 1000)
    topics = {codec: f"kafka-python-{codec}-{suffix}" for codec in CODECS}
    create_topics(bootstrap, list(topics.values()))
    summary = []
    for codec in CODECS:
        t0 = time.monotonic()
        records = make_records(f"kp-{codec}", RECORDS)
        acked = produce(bootstrap, topics[codec], codec, records)
        received = read_topic(bootstrap, topics[codec])
        counts = verify(f"kafka-python {codec}", records, received, PARTITIONS, kafka_python_partition, acked)
        summary.append(f"{codec}={'/'.join(str(counts[p]) for p in range(PARTITIONS))} ({time.monotonic() - t0:.1f}s)")
    print(
        f"kafka-python OK: {len(CODECS)} codecs x {RECORDS} records verified in {time.monotonic() - started:.1f}s: "
        + ", ".join(summary)
    )


if __name__ == "__main__":
    try:
        main()
    except CheckFailed as e:
        fail_and_exit("check_kafka_python", e)
