# syntax=docker/dockerfile:1
# ZipLine: one image for every component. The default command runs the API; docker-compose.yml and
# deploy/k8s/ run the same image as `python manage.py migrate|runworkers|runscheduler`.
#
#   docker build -t zipline:local .
#   docker run --rm -e JQS_SECRET_KEY=... -e JQS_DATABASE_URL=... -e JQS_REDIS_URL=... -p 8080:8080 zipline:local

# ---- build: the dependencies, in a virtualenv copied whole into the runtime stage ----
FROM python:3.11-slim AS build

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1

RUN python -m venv /opt/venv
ENV PATH="/opt/venv/bin:${PATH}"

# Every runtime dependency ships a manylinux wheel (psycopg[binary], hiredis), so no compiler is needed.
COPY requirements.txt /tmp/requirements.txt
RUN pip install --no-cache-dir -r /tmp/requirements.txt

# ---- runtime ----
FROM python:3.11-slim AS runtime

# PYTHONDONTWRITEBYTECODE: the code is compiled below, at build time, because the root filesystem may be
# read-only at run time (deploy/k8s/ mounts only /tmp writable).
ENV PATH="/opt/venv/bin:${PATH}" \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    JQS_SERVER_PORT=8080 \
    JQS_METRICS_PORT=9091 \
    JQS_LOG_FORMAT=json

RUN groupadd --system --gid 10001 zipline \
    && useradd --system --uid 10001 --gid zipline --home-dir /app --no-create-home --shell /usr/sbin/nologin zipline

WORKDIR /app
COPY --from=build /opt/venv /opt/venv
# The code stays owned by root: the zipline user can read it, not change it.
COPY . .

# Static files are collected into the image (STATIC_ROOT=/app/staticfiles). Nothing in the app serves them
# in production: a reverse proxy (or a CDN) in front of the API serves /static/ from a copy of staticfiles/.
# The secret and debug values below exist for this one build step only; they are not in the image's env.
RUN JQS_SECRET_KEY=build-only JQS_DEBUG=true python manage.py collectstatic --noinput \
    && python -m compileall -q /app

USER 10001:10001

# 8080: the API (gunicorn; /health). 9092: the API's /metrics (gunicorn's master). 9091: the workers' /metrics.
EXPOSE 8080 9091 9092

# slim has no curl: a urllib one-liner. urlopen raises on a 503, so the probe fails then. It sends
# "Host: 127.0.0.1", which JQS_ALLOWED_HOSTS must keep (it does by default). The workers and scheduler run
# from this image too, so docker-compose.yml overrides this with their own check (`manage.py probe ...`);
# Kubernetes ignores HEALTHCHECK and uses the probes in deploy/k8s/.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, sys, urllib.request; port = os.environ.get('JQS_SERVER_PORT') or '8080'; sys.exit(0 if urllib.request.urlopen(f'http://127.0.0.1:{port}/health', timeout=4).status == 200 else 1)"]

CMD ["gunicorn", "zipline_site.asgi:application", "--config", "python:zipline_site.gunicorn", "--workers", "2", "--threads", "4", "--access-logfile", "-"]
