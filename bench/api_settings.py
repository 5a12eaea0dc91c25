"""Settings for the API benchmark: ZipLine's defaults (logs at info, metrics on) with its own database and
Redis db, the bare view's URL, and rate limits that the run never reaches (each request still pays its
counter, as under the default limits, which would refuse most of the run)."""

import os

os.environ.setdefault("JQS_SECRET_KEY", "bench-only")
os.environ.setdefault("JQS_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/zipline_api_bench")
os.environ.setdefault("JQS_REDIS_URL", "redis://127.0.0.1:6379/11")
os.environ.setdefault("JQS_REDIS_KEY_PREFIX", "zipbench-api")
os.environ.setdefault("JQS_METRICS_API_PORT", "19092")  # beside another helper's or a real API's 9092
os.environ.setdefault("JQS_API_SUBMIT_RATE", "999999999/min")
os.environ.setdefault("JQS_API_BATCH_RATE", "999999999/min")

from zipline_site.settings import *  # noqa: E402, F403

ROOT_URLCONF = "bench.api_urls"

INSTALLED_APPS = [*INSTALLED_APPS, "bench.zipline_app"]  # noqa: F405
