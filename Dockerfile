# bucket-sync in a container: a cron-style job (a Kubernetes CronJob running `mirror --job ...`) or a
# long-running `watch` (a compose service). See README.md, "Containers".
#
#   docker build -t bucket-sync .
#   docker run --rm -v bucket-sync-state:/var/lib/bucket-sync -v "$PWD/captures:/data" \
#       -e ITWIN_CLIENT_ID -e ITWIN_CLIENT_SECRET bucket-sync mirror /data itwin://<iTwinId>/captures
FROM python:3.12-slim AS wheel
WORKDIR /src
COPY pyproject.toml README.md LICENSE ./
COPY bucket_sync ./bucket_sync
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

FROM python:3.12-slim

# tini as PID 1: it forwards SIGTERM/SIGINT to bucket-sync, which then stops as it does on a host
# (PID 1 itself would ignore a SIGTERM it has no handler for: `docker stop` would wait, then SIGKILL).
RUN apt-get update \
 && apt-get install -y --no-install-recommends tini \
 && rm -rf /var/lib/apt/lists/*

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

COPY --from=wheel /wheels /tmp/wheels
RUN pip install /tmp/wheels/*.whl && rm -rf /tmp/wheels

# A user of its own, never root; it owns the state, cache and data folders.
RUN useradd --uid 10001 --user-group --create-home --home-dir /home/bucket-sync --shell /usr/sbin/nologin bucket-sync \
 && mkdir -p /var/lib/bucket-sync /var/cache/bucket-sync /data \
 && chown bucket-sync:bucket-sync /var/lib/bucket-sync /var/cache/bucket-sync /data \
 && chmod 0700 /var/lib/bucket-sync

# The state folder keeps the pair locks, the cached SAS URLs and a saved `auth login`: mount a volume there
# (it must be writable by uid 10001; an unwritable one is exit 2 naming BUCKET_SYNC_STATE_DIR). The cache
# folder keeps listing metadata that may be lost at any time (it only costs speed). Both variables can be
# pointed elsewhere with -e. A container has no OS keychain: a sign-in goes to a 0600 file in the state folder.
ENV BUCKET_SYNC_STATE_DIR=/var/lib/bucket-sync \
    BUCKET_SYNC_CACHE_DIR=/var/cache/bucket-sync \
    BUCKET_SYNC_LOGIN_STORE=file
VOLUME ["/var/lib/bucket-sync"]

# `watch --metrics 0.0.0.0:9464` serves /metrics (Prometheus), /healthz and /readyz here (off unless asked:
# a cron-style mirror opens no port). README, "Watch mode": the Kubernetes probes use it.
EXPOSE 9464

USER bucket-sync
WORKDIR /data
ENTRYPOINT ["/usr/bin/tini", "--", "bucket-sync"]
CMD ["--help"]
