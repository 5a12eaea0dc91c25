"""The Python API: enqueue, enqueue_many, get, cancel, retry; bad input writes nothing."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone

from jobs import JobSpec, cancel, client, enqueue, enqueue_many, get, retry, states
from jobs.broker import Broker
from jobs.models import Job, Status
from jobs.service import actions
from jobs.states import TransitionError
from jobs.validation import InvalidJob, PayloadTooLarge
from tests.helpers import EMAIL_PAYLOAD, override_zipline

pytestmark = pytest.mark.django_db(transaction=True)


def test_enqueue_commits_the_row_then_pushes_the_id(broker: Broker) -> None:
    job = enqueue(
        "test_noop",
        {"a": 1},
        name="first",
        queue="q1",
        priority=7,
        timeout="90s",
        retry={"max_retries": 5, "backoff": "linear", "initial_delay": "2s", "max_delay": "1m", "jitter": False},
    )
    row = Job.objects.get(pk=job.pk)
    assert (row.status, row.queue, row.priority, row.name, row.timeout) == (Status.PENDING, "q1", 7, "first", 90.0)
    assert (row.max_retries, row.backoff, row.initial_delay, row.max_delay, row.jitter) == (
        5,
        "linear",
        2.0,
        60.0,
        False,
    )
    assert broker.ids("q1")["ready"] == {str(job.pk)}


def test_delay_and_schedule_at_make_a_scheduled_job(broker: Broker) -> None:
    delayed = enqueue("test_noop", delay="1h")
    at = enqueue("test_noop", schedule_at=(timezone.now() + timedelta(minutes=5)).isoformat())
    past = enqueue("test_noop", schedule_at="2001-01-01T00:00:00Z")
    assert delayed.status == at.status == Status.SCHEDULED
    assert past.status == Status.PENDING
    ids = broker.ids("default")
    assert ids["delayed"] == {str(delayed.pk), str(at.pk)} and ids["ready"] == {str(past.pk)}


def test_a_rolled_back_job_never_reaches_redis(broker: Broker) -> None:
    with pytest.raises(RuntimeError), transaction.atomic():
        enqueue("test_noop")
        raise RuntimeError("roll back")
    assert Job.objects.count() == 0
    assert broker.ids("default")["ready"] == set()


def test_enqueue_inside_a_transaction_pushes_on_commit(broker: Broker) -> None:
    with transaction.atomic():
        job = enqueue("test_noop")
        assert broker.ids("default")["ready"] == set()
    assert broker.ids("default")["ready"] == {str(job.pk)}


def test_enqueue_many_writes_all_rows_and_ids(broker: Broker) -> None:
    jobs = enqueue_many(
        [JobSpec("test_noop", {"n": i}, priority=i % 3) for i in range(1500)]
        + [{"type": "test_noop", "queue": "other"}]
    )
    assert len(jobs) == 1501 and Job.objects.count() == 1501
    assert len(broker.ids("default")["ready"]) == 1500 and len(broker.ids("other")["ready"]) == 1
    assert {j.payload["n"] for j in jobs[:1500]} == set(range(1500))
    first = get(jobs[0].pk)
    assert first is not None and first.status == Status.PENDING


def test_enqueue_many_is_all_or_nothing(broker: Broker) -> None:
    specs = [JobSpec("test_noop", {"n": i}) for i in range(10)] + [JobSpec("nope", {})]
    with pytest.raises(InvalidJob, match=r"jobs\[10\].type: unknown job type 'nope'"):
        enqueue_many(specs)
    assert Job.objects.count() == 0 and broker.ids("default")["ready"] == set()


@pytest.mark.parametrize(
    ("kwargs", "field", "message"),
    [
        ({"job_type": "no_such_type"}, "type", "unknown job type 'no_such_type'"),
        ({"payload": [1, 2]}, "payload", "must be a JSON object, not list"),
        ({"payload": {"x": float("nan")}}, "payload", "is not JSON"),
        ({"payload": {"x": object()}}, "payload", "is not JSON"),
        ({"payload": {"x": "a\x00b"}}, "payload", "holds a NUL character"),
        ({"payload": {"x": ["ok", {"y": "a\ud800"}]}}, "payload", "holds a lone surrogate (\\ud800)"),
        ({"payload": {"\udfff": 1}}, "payload", "holds a lone surrogate (\\udfff)"),
        ({"name": "a\x00b"}, "name", "holds a NUL character"),
        ({"name": "é\udc00"}, "name", "holds a lone surrogate (\\udc00)"),
        ({"idempotency_key": "k\ud83d"}, "idempotency_key", "holds a lone surrogate (\\ud83d)"),
        ({"priority": 101}, "priority", "101 is out of range (-100 to 100)"),
        ({"priority": "high"}, "priority", "'high' is not a whole number"),
        ({"queue": "bad queue"}, "queue", "'bad queue' is not a queue name"),
        ({"queue": "q" * 65}, "queue", "is not a queue name"),
        ({"timeout": "soon"}, "timeout", "not a duration: 'soon'"),
        ({"timeout": "0s"}, "timeout", "must be above zero"),
        ({"delay": "-5s"}, "delay", "not a duration"),
        ({"schedule_at": "tomorrow"}, "schedule_at", "is not an RFC 3339 date-time"),
        ({"schedule_at": "2030-01-01T00:00:00"}, "schedule_at", "has no time zone"),
        ({"retry": {"backoff": "random"}}, "retry.backoff", "'random' is not one of exponential, linear, fixed"),
        ({"retry": {"max_retries": -1}}, "retry.max_retries", "out of range"),
        ({"retry": {"initial_delay": "1x"}}, "retry.initial_delay", "not a duration"),
        ({"retry": {"colour": 1}}, "retry.colour", "unknown field"),
        ({"retry": {"initial_delay": "2h", "max_delay": "1h"}}, "retry.initial_delay", "longer than retry.max_delay"),
        ({"name": "n" * 201}, "name", "at most 200 characters"),
    ],
)
def test_bad_input_names_the_field_and_writes_nothing(
    broker: Broker, kwargs: dict[str, object], field: str, message: str
) -> None:
    job_type = str(kwargs.pop("job_type", "test_noop"))
    with pytest.raises(InvalidJob) as caught:
        enqueue(job_type, **kwargs)
    assert caught.value.field == field and message in caught.value.message
    assert Job.objects.count() == 0 and broker.ids("default")["ready"] == set()


def test_payload_over_the_limit_is_refused(broker: Broker) -> None:
    with override_zipline(max_payload_bytes=1000):
        enqueue("test_noop", {"blob": "x" * 900})
        with pytest.raises(PayloadTooLarge, match="the limit is 1000"):
            enqueue("test_noop", {"blob": "x" * 1000})
    assert Job.objects.count() == 1


def test_payload_size_is_its_utf8_json_not_its_escaped_form(broker: Broker) -> None:
    with override_zipline(max_payload_bytes=1000):
        job = enqueue("test_noop", {"blob": "\N{GRINNING FACE}" * 240})  # 960 bytes; 2,880 as \ud83d\ude00
        assert job.payload == {"blob": "\N{GRINNING FACE}" * 240}
        with pytest.raises(PayloadTooLarge, match="is 1,?012 bytes of JSON"):
            enqueue("test_noop", {"blob": "\N{GRINNING FACE}" * 250})


def test_a_backslash_before_u0000_is_text_not_a_nul(broker: Broker) -> None:
    path = "C:\\u0000dir\\\\u0000"
    job = enqueue("test_noop", {"path": path, path: 1})
    assert Job.objects.get(pk=job.pk).payload == {"path": path, path: 1}
    with pytest.raises(InvalidJob, match="NUL"):
        enqueue("test_noop", {"path": "C:\\\x00"})


def test_idempotency_key_returns_the_first_job(broker: Broker) -> None:
    first, created = client.enqueue_idempotent(JobSpec("test_noop", idempotency_key="order-42"))
    again, created_again = client.enqueue_idempotent(JobSpec("test_noop", idempotency_key="order-42"))
    assert created and not created_again and again.pk == first.pk
    assert Job.objects.count() == 1


def test_get_returns_none_for_unknown_and_malformed_ids() -> None:
    assert get(uuid.uuid4()) is None and get("not-a-uuid") is None


def test_cancel_and_retry_through_the_python_api(broker: Broker) -> None:
    job = enqueue("test_noop")
    assert cancel(job.pk).status == Status.CANCELLED
    assert broker.ids("default")["ready"] == set()
    assert retry(job.pk).status == Status.PENDING
    assert broker.ids("default")["ready"] == {str(job.pk)}
    with pytest.raises(TransitionError, match="only a failed or cancelled job can be retried"):
        retry(job.pk)
    with pytest.raises(Job.DoesNotExist):
        cancel("nope")


def test_run_now_moves_a_scheduled_job_to_ready(broker: Broker) -> None:
    job = enqueue("test_noop", delay="1h")
    assert client.run_now(job.pk).status == Status.PENDING
    assert broker.ids("default") == {"ready": {str(job.pk)}, "delayed": set(), "leases": set()}


def test_redis_down_at_submit_still_commits_the_job(own_redis: object) -> None:
    own_redis.stop()  # type: ignore[attr-defined]
    job = enqueue("test_noop")
    assert Job.objects.get(pk=job.pk).status == Status.PENDING


def test_a_payload_nested_past_the_encoders_depth_is_refused_naming_it(broker: Broker) -> None:
    deep: list[object] = []
    for _ in range(100_000):
        deep = [deep]
    with pytest.raises(InvalidJob) as caught:
        enqueue("test_noop", {"x": deep})
    assert caught.value.field == "payload" and "is not JSON: maximum recursion depth" in caught.value.message
    assert Job.objects.count() == 0


def test_a_retry_field_given_as_null_takes_the_processors_default(broker: Broker) -> None:
    explicit = enqueue("send_email", EMAIL_PAYLOAD, retry={"max_retries": None, "initial_delay": None, "jitter": None})
    absent = enqueue("send_email", EMAIL_PAYLOAD)
    for job in (explicit, absent):
        row = Job.objects.get(pk=job.pk)
        assert (row.max_retries, row.initial_delay) == (5, 10.0)  # send_email's own, not the model's 3 and 1 s


def test_a_retry_between_a_cancel_and_its_removal_from_redis_keeps_the_job_queued(broker: Broker) -> None:
    job = enqueue("test_noop", {})
    states.cancel(job.pk)  # committed; its removal from Redis runs after the commit...
    client.retry(job.pk)  # ...but a retry commits first and pushes an id Redis still holds
    actions.dequeue_cancelled(job)
    assert Job.objects.get(pk=job.pk).status == Status.PENDING
    assert broker.ids("default")["ready"] == {str(job.pk)}


def test_a_cancelled_job_leaves_redis(broker: Broker) -> None:
    job = enqueue("test_noop", {}, delay=60)
    client.cancel(job.pk)
    assert broker.ids("default") == {"ready": set(), "delayed": set(), "leases": set()}


def test_an_unknown_option_is_invalid_naming_it() -> None:
    """``enqueue``'s options are JobSpec's fields; a misspelt one is refused by name, nothing written."""
    with pytest.raises(InvalidJob) as refused:
        client.enqueue("test_noop", {}, prority=3)
    assert (refused.value.field, refused.value.message) == ("prority", "unknown option")
