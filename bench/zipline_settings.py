"""Settings for ZipLine under the benchmark: PostgreSQL database ``zipline_bench``, the bench Redis db.

Everything else is ZipLine's production defaults (a JSON log line per job at info, metrics on), as a
user runs it: the headline ``zipline`` row. The tuned ``zipline_quiet`` row turns logs down to warning
and metrics off through the environment (``bench/zipline_adapter.py``), never here.
"""

import os

os.environ.setdefault("JQS_SECRET_KEY", "bench-only")
os.environ.setdefault("JQS_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/zipline_bench")
os.environ.setdefault("JQS_REDIS_URL", os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/9"))
os.environ.setdefault("JQS_REDIS_KEY_PREFIX", "zipbench")

from zipline_site.settings import *  # noqa: E402, F403

INSTALLED_APPS = [*INSTALLED_APPS, "bench.zipline_app"]  # noqa: F405
