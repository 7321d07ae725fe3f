# Production image of the ingest service (docker-compose.yml builds it).
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY menara menara
COPY ingest ingest
COPY decoders decoders
COPY geofence geofence
COPY deviation deviation
COPY oms_core oms_core
COPY dashboards dashboards
COPY simulators simulators
# The numba kernels compile into the image (the service's own warm-up at start then
# reads them in milliseconds; on a different CPU it compiles them again before listening).
ENV NUMBA_CACHE_DIR=/app/numba-cache
RUN pip install --no-cache-dir . && python -c "from decoders import PROTOCOLS; \
from decoders.warmup import warm_up; from oms_core.tower.warmup import warm_up as rules; \
warm_up(PROTOCOLS); rules()"
EXPOSE 5005 5027 5027/udp 5023 5013 5001 5055 9464
CMD ["menara", "serve"]
