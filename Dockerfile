# syntax=docker/dockerfile:1
#
# mallfence server image.
#
# Why two stages: the build stage turns the source into a regular (non-editable)
# install inside a virtualenv at /opt/venv; the runtime stage copies only that venv
# plus zones/, so no build tooling, tests or repository files end up in the image.
# All dependencies ship manylinux wheels (shapely/rtree/psycopg-binary bundle
# their C libraries), so neither stage needs apt packages or a compiler.
#
#   docker build -t mallfence .
#   docker run --rm -p 127.0.0.1:8000:8000 -v mallfence-var:/app/var mallfence
#
# Defaults to the embedded SQLite database in /app/var; point it at PostGIS with
#   -e MALLFENCE_DATABASE_URL=postgresql+psycopg://USER:PASS@HOST:5432/mallfence

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# ---------------------------------------------------------------- build stage
FROM ${PYTHON_IMAGE} AS build

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_NO_INPUT=1 \
    PYTHONDONTWRITEBYTECODE=1

RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH

WORKDIR /build

# Dependencies first, in their own layer, keyed only on pyproject.toml: install
# the project from placeholder packages, then drop the project itself, keeping
# its dependencies. Source edits then rebuild only the small layer below.
COPY pyproject.toml README.md ./
RUN mkdir -p src/mallfence mobile_stub \
 && touch src/mallfence/__init__.py mobile_stub/__init__.py \
 && pip install . \
 && pip uninstall -y mallfence \
 && rm -rf src mobile_stub build ./*.egg-info

COPY src ./src
COPY mobile_stub ./mobile_stub
RUN pip install --no-deps . \
 && mallfence --help >/dev/null

# ---------------------------------------------------------------- runtime stage
FROM ${PYTHON_IMAGE} AS runtime

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    MALLFENCE_DATABASE_URL=sqlite:////app/var/mallfence.db

RUN groupadd --system --gid 10001 mallfence \
 && useradd --system --uid 10001 --gid mallfence --home-dir /app --no-create-home \
            --shell /usr/sbin/nologin mallfence

COPY --from=build /opt/venv /opt/venv

WORKDIR /app
# Zone files are read relative to the working directory (read-only for the app);
# var/ holds the SQLite database and must be writable by the service user.
COPY zones ./zones
RUN mkdir -p /app/var && chown mallfence:mallfence /app/var

# numeric, so runtimes enforcing runAsNonRoot can verify it (10001 = mallfence)
USER 10001:10001

EXPOSE 8000

# No curl in slim images: probe /healthz with the interpreter that is there anyway.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4).status == 200 else 1)"]

# 0.0.0.0 inside the container's own network namespace; publish the port on the
# host's loopback (-p 127.0.0.1:8000:8000) unless it should be reachable.
CMD ["mallfence", "serve", "--host", "0.0.0.0", "--port", "8000"]
