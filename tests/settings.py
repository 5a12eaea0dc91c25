"""Settings for the test run: the environment the tests need, then the project's own settings.

``ZIPLINE_TEST_DATABASE_URL`` chooses the database (PostgreSQL by default; SQLite for the smoke run)
and ``ZIPLINE_TEST_REDIS_URL`` the Redis (the shared one, on a database number of the tests' own);
``ZIPLINE_TEST_REDIS=cluster`` a Redis Cluster of the run's own instead (``make test-cluster``).
"""

import os
import uuid

os.environ.setdefault("JQS_SECRET_KEY", "test-secret-key-not-for-production")
SHARED_REDIS_URL = os.environ.get("ZIPLINE_TEST_REDIS_URL", "redis://127.0.0.1:6379/13")
# make test-cluster: ZipLine's Redis is a cluster of the run's own; the processes the tests start inherit it.
if os.environ.get("ZIPLINE_TEST_REDIS") == "cluster" and not os.environ.get("ZIPLINE_TEST_CLUSTER_URL"):
    from tests.cluster_session import start_session_cluster

    os.environ["ZIPLINE_TEST_CLUSTER_URL"] = start_session_cluster()
os.environ.setdefault("JQS_REDIS_URL", os.environ.get("ZIPLINE_TEST_CLUSTER_URL") or SHARED_REDIS_URL)
os.environ.setdefault(
    "JQS_DATABASE_URL", os.environ.get("ZIPLINE_TEST_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/test")
)
os.environ.setdefault("JQS_REDIS_KEY_PREFIX", f"ziptest-{uuid.uuid4().hex[:8]}")
os.environ.setdefault("JQS_LOG_FORMAT", "text")
os.environ.setdefault("JQS_LOG_LEVEL", "warning")
# Every test client and test server connects from 127.0.0.1, and many tests send bad tokens on purpose:
# the suite must not lock itself out. The tests of these limits set their own (tests/test_security_*.py).
os.environ.setdefault("JQS_AUTH_FAILURE_LIMIT", "1000000")
os.environ.setdefault("JQS_API_SUBMIT_RATE", "off")
os.environ.setdefault("JQS_API_BATCH_RATE", "off")

from zipline_site.settings import *  # noqa: E402, F403

INSTALLED_APPS = [*INSTALLED_APPS, "tests.procapp"]  # noqa: F405

# A test database of this run's own, so that runs side by side (developers, CI) never collide.
if str(DATABASES["default"]["ENGINE"]).endswith("postgresql"):  # noqa: F405
    DATABASES["default"]["TEST"] = {"NAME": f"test_zipline_{os.getpid()}"}  # noqa: F405

# The Django tasks of tests/taskapp: the project's default backend, plus one that retries at once and
# one that retries after a minute and one whose attempts time out after half a second.
# Its ready() imports the Tasks framework (as a user's app may), which the lean test of ZipLine's own workers
# leaves out (tests/test_workers_lean.py sets ZIPLINE_TEST_WITHOUT_TASKAPP).
if not os.environ.get("ZIPLINE_TEST_WITHOUT_TASKAPP"):
    INSTALLED_APPS = [*INSTALLED_APPS, "tests.taskapp"]
_ZIPLINE_TASKS = "jobs.tasks_backend.backend.ZipLineBackend"
TASKS = {
    **TASKS,  # noqa: F405
    "quick": {
        "BACKEND": _ZIPLINE_TASKS,
        "QUEUES": [],
        "OPTIONS": {"retry": {"backoff": "fixed", "initial_delay": 0.05}},
    },
    "patient": {
        "BACKEND": _ZIPLINE_TASKS,
        "QUEUES": [],
        "OPTIONS": {"retry": {"backoff": "fixed", "initial_delay": 60, "jitter": False}},
    },
    "short": {"BACKEND": _ZIPLINE_TASKS, "QUEUES": [], "OPTIONS": {"timeout": 0.5, "retry": {"max_retries": 0}}},
}
