# No `# syntax=` line: BuildKit would pull a frontend image for it; the legacy builder builds this as it is.
# BASE_IMAGE: the official Python image in production; the tests build on a local Debian base (no registry).
ARG BASE_IMAGE=python:3.11-slim

# Build stage: compile/install dependencies into a virtualenv that the runtime stage copies.
FROM ${BASE_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
COPY requirements.txt /tmp/requirements.txt
RUN /opt/venv/bin/pip install -r /tmp/requirements.txt

# Runtime stage: no compilers, a non-root user, data on a volume.
FROM ${BASE_IMAGE}
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    BAGBOARD_ENV=production \
    BAGBOARD_DATA_ROOT=/data \
    GUNICORN_BIND=0.0.0.0:8050
RUN useradd --create-home --uid 10001 bagboard && mkdir -p /data && chown bagboard:bagboard /data
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
COPY --chown=bagboard:bagboard app.py gunicorn.conf.py pyproject.toml ./
COPY --chown=bagboard:bagboard src ./src
COPY --chown=bagboard:bagboard pages ./pages
COPY --chown=bagboard:bagboard assets ./assets
USER bagboard
VOLUME ["/data"]
EXPOSE 8050
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
  CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8050/healthz', timeout=4).status != 200)"]
# The same image runs the extractor CLI: docker run bagboard python -m src.extraction IN OUT
CMD ["gunicorn", "app:server"]
