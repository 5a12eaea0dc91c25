"""The ingress loop: each message becomes a job through :mod:`jobs.service` (or a dead-letter copy), and
only then is its offset committed.

At least once, and no duplicate: a crash after a job's row commits and before its offset does delivers the
message again, and its idempotency key (:mod:`jobs.kafka.messages`) finds the job made the first time. A
refused message (not JSON, an unknown type, a bad field, too large) is copied to the dead-letter topic with
the reason in its headers, and its offset is committed once Kafka has acknowledged the copy. The database or
Kafka out of reach: the message is retried with backoff, never skipped, and nothing is committed meanwhile.
A stop (``stop`` set) lets the message under way finish, commits, and returns.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from django.db import DatabaseError, close_old_connections
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.consumer.fetcher import ConsumerRecord
from kafka.errors import CommitFailedError, KafkaError
from kafka.structs import OffsetAndMetadata

from jobs import service
from jobs.kafka import messages
from jobs.outages import Outage
from jobs.validation import InvalidJob
from zipline_site.sections import KafkaConfig

logger = logging.getLogger("zipline.kafka")

POLL_MS = 500
FIRST_BACKOFF = 0.1
MAX_BACKOFF = 5.0
SEND_TIMEOUT = 10.0


class Ingress:
    """One runkafka process's loop over its consumer's messages."""

    def __init__(
        self,
        config: KafkaConfig,
        consumer: KafkaConsumer,
        producer: KafkaProducer,
        stop: threading.Event,
        limit: int,
    ) -> None:
        self.config = config
        self.consumer = consumer
        self.producer = producer
        self.stop = stop
        self.limit = limit
        self.database = Outage("database", logger)
        self.kafka = Outage("Kafka", logger)

    def run(self) -> None:
        """Consume until ``stop`` is set; the offsets of the messages handled are committed before it returns."""
        while not self.stop.is_set():
            batch = self.poll()
            done: dict[TopicPartition, OffsetAndMetadata] = {}
            for record in (record for records in batch.values() for record in records):
                if self.stop.is_set() or not self.handle(record):
                    break
                done[TopicPartition(record.topic, record.partition)] = OffsetAndMetadata(record.offset + 1, "", -1)
            if done:
                self.commit(done)

    def poll(self) -> dict[TopicPartition, list[ConsumerRecord]]:
        """The next messages, or none while Kafka fails (logged once, then retried after a pause)."""
        try:
            batch: dict[TopicPartition, list[ConsumerRecord]] = self.consumer.poll(timeout_ms=POLL_MS)
        except KafkaError as exc:
            self.kafka.failed(exc)
            self.stop.wait(MAX_BACKOFF)
            return {}
        self.kafka.recovered()
        return batch

    def handle(self, record: ConsumerRecord) -> bool:
        """Make ``record`` a job, or copy it to the dead-letter topic; False if stopped before either."""
        data: Any = None
        try:
            data, spec = messages.decode(record.value, self.limit)
            spec, scope = messages.keyed(spec, record.topic, record.partition, record.offset)
            return self.retrying(self.database, lambda: self.submit(spec, scope, record))
        except InvalidJob as exc:  # from decode or from the service's validation, never retried
            return self.refuse(record, exc, data)

    def refuse(self, record: ConsumerRecord, error: InvalidJob, data: Any) -> bool:
        """Copy ``record`` to the dead-letter topic, retrying until Kafka acknowledges it; False if stopped."""
        return self.retrying(self.kafka, lambda: self.dead_letter(record, error, data))

    def submit(self, spec: Any, scope: str, record: ConsumerRecord) -> None:
        job, created = service.submit(spec, scope)
        said = (
            "job submitted"
            if created
            else "duplicate of a unique job"
            if job.duplicate
            else "message already submitted"
        )
        logger.info(
            said,
            extra={"job_id": str(job.pk), "new_job": created, "source": _source(record)},
        )

    def dead_letter(self, record: ConsumerRecord, error: InvalidJob, data: Any) -> None:
        headers = messages.refusal_headers(error, data, _source(record))
        topic = self.config.dead_letter_topic
        self.producer.send(topic, value=record.value, key=record.key, headers=headers).get(timeout=SEND_TIMEOUT)
        logger.warning(
            "message refused; copied to the dead-letter topic",
            extra={"source": _source(record), "field": error.field, "error": error.message, "topic": topic},
        )

    def commit(self, offsets: dict[TopicPartition, OffsetAndMetadata]) -> None:
        """Commit ``offsets``, retrying while Kafka is out of reach. A commit refused because the group
        moved the partitions elsewhere is left: their new owner gets the messages again, and their keys
        find the jobs."""

        def attempt() -> None:
            try:
                self.consumer.commit(offsets)
            except CommitFailedError as exc:
                logger.warning("offsets not committed: the group was rebalanced", extra={"error": str(exc)})

        self.retrying(self.kafka, attempt)

    def retrying(self, outage: Outage, action: Callable[[], None]) -> bool:
        """Run ``action`` until it succeeds (True), with backoff while the database, Redis or Kafka fails;
        False if ``stop`` is set meanwhile (nothing done, nothing committed)."""
        backoff = FIRST_BACKOFF
        while True:
            try:
                action()
            except (DatabaseError, service.BrokerUnavailable, KafkaError) as exc:
                outage.failed(exc)
                close_old_connections()  # a connection that failed is opened again on the next try
                if self.stop.wait(backoff):
                    return False
                backoff = min(backoff * 2, MAX_BACKOFF)
                continue
            outage.recovered()
            return True


def _source(record: ConsumerRecord) -> str:
    return f"{record.topic}/{record.partition}/{record.offset}"
