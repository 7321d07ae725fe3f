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
RUN pip install --no-cache-dir . && python -c "import decoders.nmea"
ENV NUMBA_CACHE_DIR=/tmp/numba-cache
EXPOSE 5005 5027 5027/udp 5023 5013 5001 5055 9464
CMD ["menara", "serve"]
