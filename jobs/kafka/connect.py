"""The Kafka client as the ingress uses it: kafka-python's consumer and producer, the standard Kafka protocol.

Offsets are committed by the ingress itself (never automatically), after the job's row has committed. A group
that has committed nothing yet starts at the topic's earliest message, so no submission made before the
first runkafka started is skipped.
"""

from __future__ import annotations

from kafka import KafkaConsumer, KafkaProducer

from zipline_site.sections import KafkaConfig

CLIENT_ID = "zipline-runkafka"
#: The longest a process may spend on one poll's messages (an outage's retries included) before the group
#: gives its partitions to another member; the messages it had not committed are delivered again, and
#: their idempotency keys make that harmless.
MAX_POLL_INTERVAL_MS = 60_000
#: Messages taken per poll; their offsets are committed together once each is a job or dead-lettered.
MAX_POLL_RECORDS = 100
#: How long the consumer and the producer try to reach a broker when they are made (kafka-python's own default
#: is 30 s, spent mostly in a reconnect backoff): Kafka out of reach at start is said in a few seconds.
BOOTSTRAP_TIMEOUT_MS = 5_000


def consumer(config: KafkaConfig) -> KafkaConsumer:
    """A consumer in ``config.group``, subscribed to ``config.topic``, committing by hand."""
    session_ms = int(config.session_timeout * 1000)
    subscribed = KafkaConsumer(
        bootstrap_servers=list(config.bootstrap_servers),
        client_id=CLIENT_ID,
        group_id=config.group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        session_timeout_ms=session_ms,
        heartbeat_interval_ms=max(100, session_ms // 3),
        max_poll_interval_ms=max(MAX_POLL_INTERVAL_MS, session_ms),
        max_poll_records=MAX_POLL_RECORDS,
        bootstrap_timeout_ms=BOOTSTRAP_TIMEOUT_MS,
    )
    subscribed.subscribe([config.topic])
    return subscribed


def producer(config: KafkaConfig) -> KafkaProducer:
    """The producer of dead-letter copies: a copy is acknowledged by every in-sync replica before its
    original's offset is committed."""
    return KafkaProducer(
        bootstrap_servers=list(config.bootstrap_servers),
        client_id=CLIENT_ID,
        acks="all",
        bootstrap_timeout_ms=BOOTSTRAP_TIMEOUT_MS,
    )
