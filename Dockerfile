# First version of the runtime image (finished in the "Ship it" issue): no torch, the
# package and its runtime dependencies only. Today it runs the synthetic LSL patient;
# the monitor becomes the default command once `neuroclip monitor` exists.
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
CMD ["simulate", "--live", "--config", "configs/simulate.yaml"]
