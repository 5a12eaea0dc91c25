"""Settings for the API benchmark: its own database and Redis db, and the bare view's URL."""

import os

os.environ.setdefault("JQS_SECRET_KEY", "bench-only")
os.environ.setdefault("JQS_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/zipline_api_bench")
os.environ.setdefault("JQS_REDIS_URL", "redis://127.0.0.1:6379/11")
os.environ.setdefault("JQS_REDIS_KEY_PREFIX", "zipbench-api")
os.environ.setdefault("JQS_LOG_LEVEL", "warning")
os.environ.setdefault("JQS_METRICS_ENABLED", "false")
os.environ.setdefault("JQS_API_SUBMIT_RATE", "off")  # one token submits as fast as it can
os.environ.setdefault("JQS_API_BATCH_RATE", "off")

from zipline_site.settings import *  # noqa: E402, F403

ROOT_URLCONF = "bench.api_urls"

INSTALLED_APPS = [*INSTALLED_APPS, "bench.zipline_app"]  # noqa: F405
