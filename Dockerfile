# syntax=docker/dockerfile:1
# The runtime image of NeuroCLIP Monitor: the package with its runtime dependencies and
# ONNX Runtime, never torch. It runs `neuroclip monitor` on configs/monitor.yaml; the same
# image runs `neuroclip dashboard`, `neuroclip replay` and `neuroclip simulate --live`.
#
#   docker build -t neuroclip-monitor .                         # ONNX Runtime on the CPU
#   docker build -t neuroclip-monitor:cuda --build-arg CUDA=1 .  # CUDA build; run with --gpus all
#
# The CUDA build swaps onnxruntime for onnxruntime-gpu with its CUDA and cuDNN wheels, so the
# host needs only the NVIDIA driver and the container toolkit. Research software, not a
# medical device. See docs/deploy.md.
ARG PYTHON_VERSION=3.11

FROM python:${PYTHON_VERSION}-slim AS build
ARG CUDA=0
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY neuroclip ./neuroclip
COPY contract ./contract
COPY models ./models
COPY streamer ./streamer
COPY dashboard ./dashboard
# The dependencies' own test suites (about 60 MB) are never run in the image: removed.
RUN python -m venv /opt/neuroclip \
 && /opt/neuroclip/bin/pip install . \
 && if [ "$CUDA" = "1" ]; then \
        /opt/neuroclip/bin/pip uninstall -y onnxruntime \
        && /opt/neuroclip/bin/pip install "onnxruntime-gpu[cuda,cudnn]>=1.20"; \
    fi \
 && if /opt/neuroclip/bin/python -c "import torch" 2>/dev/null; then \
        echo "torch must not be in the runtime image" >&2; exit 1; \
    fi \
 && find /opt/neuroclip/lib -depth -type d -name tests -path "*/site-packages/*" -exec rm -rf {} + \
 && /opt/neuroclip/bin/python -c "import numpy, scipy.signal, mne, dash, onnxruntime, contract" \
 && /opt/neuroclip/bin/neuroclip monitor --help > /dev/null

FROM python:${PYTHON_VERSION}-slim
LABEL org.opencontainers.image.title="NeuroCLIP Monitor" \
      org.opencontainers.image.description="Real-time EEG+fNIRS biomarker monitor. Research software, not a medical device." \
      org.opencontainers.image.licenses="MIT"
ENV PATH=/opt/neuroclip/bin:$PATH PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
COPY --from=build /opt/neuroclip /opt/neuroclip
WORKDIR /app
COPY configs ./configs
RUN useradd --create-home --uid 10001 neuroclip \
 && mkdir -p /app/sessions \
 && chown neuroclip /app/sessions
USER neuroclip
# session logs: mount a volume here so they outlive the container
VOLUME ["/app/sessions"]
EXPOSE 8050
ENTRYPOINT ["neuroclip"]
CMD ["monitor", "--config", "configs/monitor.yaml"]
