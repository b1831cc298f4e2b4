# First version of the runtime image (finished in the "Ship it" issue): no torch, the
# package and its runtime dependencies only. It runs `neuroclip monitor`; point
# it at a broker with --broker mqtt://HOST:PORT or NEUROCLIP_MONITOR__MQTT__HOST.
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY neuroclip ./neuroclip
COPY models ./models
COPY streamer ./streamer
COPY dashboard ./dashboard
COPY configs ./configs
RUN pip install . && useradd --create-home neuroclip
USER neuroclip
ENTRYPOINT ["neuroclip"]
CMD ["monitor", "--config", "configs/monitor.yaml"]
