# syntax=docker/dockerfile:1
# One image for every service: the command picks the service.
#   docker build -t ghcr.io/incidents/incidents:0.1.0 .
#   docker run --rm ghcr.io/incidents/incidents:0.1.0 services.workers --list
# Stage 1 builds wheels for the project and every dependency; stage 2 installs them without
# compilers, pip or a shell, and runs as a numeric non-root user on a read-only root filesystem.

ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
# Only what `pip wheel .` reads: a change to tests or deploy files does not rebuild the wheels.
COPY pyproject.toml README.md ./
COPY shared ./shared
COPY services ./services
RUN pip wheel --wheel-dir /wheels .

FROM ${PYTHON_IMAGE} AS runtime
ARG UID=10001
ARG VERSION=0.1.0
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PYTHONFAULTHANDLER=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    HOME=/tmp \
    LOG_FORMAT=json \
    SUBSCRIPTIONS_FILE=/app/config/subscriptions.toml
# Install from the wheels only (no index, no compiler), precompile bytecode because the root
# filesystem is read-only at run time, then drop pip, setuptools and wheel, which nothing imports.
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-index --find-links=/wheels "incidents==${VERSION}" \
    && python -m compileall -q /usr/local/lib/python3.11/site-packages \
    && python -m pip uninstall -y pip setuptools wheel \
    && groupadd --system --gid "${UID}" app \
    && useradd --system --uid "${UID}" --gid "${UID}" --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin app
WORKDIR /app
# The migration job needs alembic.ini and alembic/; the event handler reads config/subscriptions.toml.
COPY --chown=root:root alembic.ini ./
COPY --chown=root:root alembic ./alembic
COPY --chown=root:root config ./config
# No shell: nothing at run time needs one (probes are HTTP, graceful shutdown is SIGTERM).
# Exec form, because /bin/sh is gone after this line.
RUN ["/usr/bin/rm", "-f", "/usr/bin/sh", "/usr/bin/bash", "/usr/bin/dash", "/usr/bin/rbash", "/bin/sh", "/bin/bash", "/bin/dash"]
USER ${UID}:${UID}
EXPOSE 8000 8080
STOPSIGNAL SIGTERM
ENTRYPOINT ["python", "-m"]
CMD ["services.api"]
