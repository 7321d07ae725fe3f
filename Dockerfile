# Production image of Menara (docker-compose.yml runs `menara serve` and `menara rules` in it).
FROM python:3.11.11-slim-bookworm

ENV PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    NUMBA_CACHE_DIR=/var/cache/menara/numba \
    MENARA_FILE_DIR=/var/lib/menara/files

# Every top-level package of pyproject's packages.find (tests/test_compose.py checks).
WORKDIR /src
COPY pyproject.toml README.md ./
COPY menara menara
COPY ingest ingest
COPY decoders decoders
COPY geofence geofence
COPY deviation deviation
COPY oms_core oms_core
COPY tower tower
COPY dashboards dashboards
COPY simulators simulators
# Installed into site-packages and the sources dropped, so the kernels compiled below
# are the ones the service imports (numba's cache is keyed by the source file's path).
RUN pip install --no-cache-dir . && rm -rf /src

# A non-root user owning only what the service writes: ePOD and complaint images
# (file_dir; mount a volume or durable storage there) and numba's kernel cache.
RUN useradd --system --user-group --uid 10001 --home-dir /var/lib/menara --no-create-home \
        menara \
    && mkdir -p /var/lib/menara/files /var/cache/menara/numba \
    && chown -R menara:menara /var/lib/menara /var/cache/menara
USER menara
WORKDIR /var/lib/menara

# Compile the decoder and rule kernels into the image: the service's warm-up at start then
# reads them in milliseconds (on a different CPU it compiles them again before listening).
RUN python -c "from decoders import PROTOCOLS; from decoders.warmup import warm_up; \
from tower.warmup import warm_up as rules; warm_up(PROTOCOLS); rules()"

# Device listeners (T55, Teltonika TCP and UDP, GT06, H02, GPS103, OsmAnd HTTP), the API,
# metrics. Metrics have no credentials and listen on loopback unless MENARA_METRICS_HOST
# says otherwise (docker-compose.yml sets 0.0.0.0 for Prometheus; never publish 9464).
# Healthy once the metrics endpoint answers (from inside the container), which the service
# opens after its listeners, MQTT and API are up (`menara rules` once its workers run).
# /healthz is liveness, not /readyz: a database outage must not mark every replica
# unhealthy (an orchestrator would restart them, which cannot bring the database back).
EXPOSE 5005 5027 5027/udp 5023 5013 5001 5055 8080 9464
HEALTHCHECK --interval=15s --timeout=5s --start-period=120s --retries=3 CMD ["python", "-c", \
    "import os, urllib.request as u; p = os.environ.get('MENARA_METRICS_PORT', '9464'); \
u.urlopen(f'http://127.0.0.1:{p}/healthz', timeout=4)"]
CMD ["menara", "serve"]
