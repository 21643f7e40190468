#!/usr/bin/env python3
"""confluent-kafka (librdkafka) against a kraftd node: admin create, produce with every codec,
read back exactly.

    python3 check_confluent_kafka.py BOOTSTRAP

For each codec (none, gzip, snappy, lz4, zstd) it creates a 3-partition topic with the AdminClient,
produces 10,000 keyed records (one header each, explicit timestamps, acks=all, idempotent), reads
them back with an assigned Consumer, and checks every key, value, header, timestamp and offset, and
that each key sits in the partition librdkafka's default partitioner (consistent_random:
crc32(key) % n) picks. The consumer needs a group.id even with assign(), but never joins or commits.
Exits 1 with the first mismatch.
"""
import sys
import time

from confluent_kafka import (
    OFFSET_BEGINNING,
    TIMESTAMP_CREATE_TIME,
    Consumer,
    KafkaError,
    KafkaException,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient, NewTopic

from clientcheck import CheckFailed, Received, crc32_partition, fail_and_exit, make_records, verify

CODECS = ["none", "gzip", "snappy", "lz4", "zstd"]
PARTITIONS = 3
RECORDS = 10_000
TIMEOUT_S = 90


def create_topics(bootstrap, names):
    admin = AdminClient({"bootstrap.servers": bootstrap, "client.id": "check-confluent-admin"})
    futures = admin.create_topics(
        [NewTopic(name, num_partitions=PARTITIONS, replication_factor=1) for name in names],
        operation_timeout=30,
        request_timeout=30,
    )
    for name, future in futures.items():
        try:
            future.result(timeout=TIMEOUT_S)
        except KafkaException as e:
            raise CheckFailed(f"CreateTopics {name}: {e}")
    metadata = admin.list_topics(timeout=30)
    for name in names:
        topic = metadata.topics.get(name)
        if topic is None or topic.error is not None or len(topic.partitions) != PARTITIONS:
            raise CheckFailed(f"Metadata after CreateTopics for {name}: {topic and (topic.error, topic.partitions)}")


def produce(bootstrap, topic, codec, records):
    """Sends `records` and returns {key: (partition, offset)} from the delivery reports."""
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "client.id": f"check-confluent-{codec}",
            "enable.idempotence": True,
            "acks": "all",
            "compression.codec": codec,
            "linger.ms": 5,
        }
    )
    acked = {}
    errors = []

    def on_delivery(err, msg):
        if err is not None:
            errors.append(f"{msg.key()!r}: {err}")
        else:
            acked[msg.key()] = (msg.partition(), msg.offset())

    for r in records:
        while True:
            try:
                producer.produce(
                    topic, key=r.key, value=r.value, headers=r.headers, timestamp=r.timestamp, on_delivery=on_delivery
                )
                break
            except BufferError:
                producer.poll(0.05)
        producer.poll(0)
    left = producer.flush(TIMEOUT_S)
    if errors:
        raise CheckFailed(f"confluent-kafka {codec}: {len(errors)} delivery errors, first: {errors[0]}")
    if left:
        raise CheckFailed(f"confluent-kafka {codec}: {left} records still undelivered after {TIMEOUT_S}s")
    return acked


def consume(bootstrap, topic):
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "check-confluent-unused-group",
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "auto.offset.reset": "error",
            "client.id": "check-confluent-reader",
        }
    )
    try:
        ends = {}
        for p in range(PARTITIONS):
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=30)
            if low != 0:
                raise CheckFailed(f"{topic}/{p}: log start offset {low}, expected 0")
            ends[p] = high
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(PARTITIONS)])
        next_offset = {p: 0 for p in range(PARTITIONS)}
        received = []
        deadline = time.monotonic() + TIMEOUT_S
        while any(next_offset[p] < ends[p] for p in ends):
            if time.monotonic() > deadline:
                raise CheckFailed(f"reading {topic} timed out: next offsets {next_offset}, ends {ends}")
            for msg in consumer.consume(num_messages=5000, timeout=0.5):
                if msg.error() is not None:
                    if msg.error().code() == KafkaError._PARTITION_EOF:
                        continue
                    raise CheckFailed(f"consume {topic}: {msg.error()}")
                p, offset = msg.partition(), msg.offset()
                if offset >= ends[p]:
                    continue
                ts_type, ts = msg.timestamp()
                if ts_type != TIMESTAMP_CREATE_TIME:
                    raise CheckFailed(f"{topic}/{p} offset {offset}: timestamp type {ts_type}, not CreateTime")
                received.append(Received(p, offset, msg.key(), msg.value(), list(msg.headers() or []), ts))
                next_offset[p] = offset + 1
        return received
    finally:
        consumer.close()


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: check_confluent_kafka.py BOOTSTRAP")
    bootstrap = sys.argv[1]
    started = time.monotonic()
    suffix = int(time.time() * 1000)
    topics = {codec: f"confluent-{codec}-{suffix}" for codec in CODECS}
    create_topics(bootstrap, list(topics.values()))
    summary = []
    for codec in CODECS:
        t0 = time.monotonic()
        records = make_records(f"ck-{codec}", RECORDS)
        acked = produce(bootstrap, topics[codec], codec, records)
        received = consume(bootstrap, topics[codec])
        counts = verify(f"confluent-kafka {codec}", records, received, PARTITIONS, crc32_partition, acked)
        summary.append(f"{codec}={'/'.join(str(counts[p]) for p in range(PARTITIONS))} ({time.monotonic() - t0:.1f}s)")
    print(
        f"confluent-kafka OK: {len(CODECS)} codecs x {RECORDS} records verified in {time.monotonic() - started:.1f}s: "
        + ", ".join(summary)
    )


if __name__ == "__main__":
    try:
        main()
    except CheckFailed as e:
        fail_and_exit("check_confluent_kafka", e)
