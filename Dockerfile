# The one image every service of compose.yaml runs: DAG services, shared agents, the Dask scheduler and
# workers, the one-shot init, and (profile emulator: offline, development, CI) the Prefect Server emulator
# and the dashboard.
#
#   docker compose build                               # what `docker compose up` does on first use
#   docker build -t my-dags .                          # the same image without compose
#   docker build --build-arg PYTHON_VERSION=3.11 .     # another Python (3.8 is the default)
#   docker build --build-arg BASE_IMAGE=my/python:3.8 .  # another base (it must have python3 + venv)
#
# Offline builds: when the build context holds a wheelhouse (`wheels/`, made by
# scripts/prepare-offline.sh), dependencies install from it with --no-index; otherwise from the index.
# No secret goes into any layer or ENV: API keys reach containers at run time through env files.
ARG PYTHON_VERSION=3.8
ARG BASE_IMAGE=python:${PYTHON_VERSION}-slim

# --- Stage 1: the dependencies, installed into a venv. A stage of its own, because the wheelhouse it installs
# from (60 MB with pandas, numpy and matplotlib) would otherwise stay in the image as the COPY's layer, even once
# removed. The image takes only the venv (stage 2).
FROM ${BASE_IMAGE} AS dependencies

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH

# `python3 -m venv` works both with the official image and with a Debian python3 + python3-venv base
# (the local base that prepare-offline.sh makes). The venv is owned by root: the app cannot change it.
# `wheel[s]` is a glob so that the COPY works with or without a wheelhouse (requirements.txt always
# matches); a wheelhouse's files land next to requirements.txt.
COPY requirements.txt wheel[s] /tmp/deps/
# In the same layer as the install, what the image never runs is removed: the packages' test suites (about
# 60 MB, most of it pandas', numpy's and matplotlib's; never imported: pandas.test() and numpy.test() are for
# their developers) and pip (the venv is root's, the app cannot install into it). The compiled bytecode
# (__pycache__) stays, so that imports stay quick. Fewer files also make a rebuild quicker where the storage
# driver has no native diff (fuse-overlayfs, vfs): the builder then finds a new layer's changes by walking
# the whole image twice.
RUN set -eu; \
    python3 -m venv "$VIRTUAL_ENV"; \
    if ls /tmp/deps/*.whl >/dev/null 2>&1; then \
      echo "installing from the wheelhouse (wheels/), no index"; \
      pip install --no-index --find-links /tmp/deps -r /tmp/deps/requirements.txt \
      || { echo "ERROR: wheels/ does not hold every pinned package for Python $(python3 -V 2>&1)." \
                "Fix: run scripts/prepare-offline.sh for this Python (PYTHON_VERSION), or delete wheels/" \
                "to install from the package index." >&2; exit 1; }; \
    else \
      pip install -r /tmp/deps/requirements.txt; \
    fi; \
    rm -rf /tmp/deps; \
    site="$(python3 -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"; \
    find "$site" -type d \( -name tests -o -name test \) -prune -exec rm -rf {} +; \
    python3 -m pip uninstall --quiet --yes pip; \
    python3 -c "import prefect, distributed, pandas, matplotlib; print('prefect', prefect.__version__, 'distributed', distributed.__version__, 'pandas', pandas.__version__, 'matplotlib', matplotlib.__version__)"

# --- Stage 2: the image.
FROM ${BASE_IMAGE}

# uid 5678 as in the tutorial; compose can run another uid (DAGS_UID) since nothing needs a passwd entry.
ARG APP_UID=5678

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    HOME=/home/app \
    PYTHONPATH=/app

# HOME is sticky and world-writable so that a run as another uid (DAGS_UID) still has a home for
# prefect's, dask's and matplotlib's files.
RUN groupadd --gid "$APP_UID" app \
 && useradd --uid "$APP_UID" --gid "$APP_UID" --no-create-home --home-dir /home/app --shell /usr/sbin/nologin app \
 && mkdir -p /home/app && chown app:app /home/app && chmod 1777 /home/app

# Dependencies in their own layer, before the code: editing a DAG does not reinstall them. The venv's
# interpreter links to the base image's python3, the same in both stages.
COPY --from=dependencies /opt/venv /opt/venv

WORKDIR /app
# data/output for the runs; /var/lib/prefect-emulator for the emulator's database and /var/lib/dashboard for
# the dashboard's session secret: compose mounts a fresh named volume there, and Docker gives a new volume
# the owner of the image's folder, so the app user (non-root) can write it. Made before the code is copied,
# so that a DAG edit makes one new layer (COPY dags/), not two: on a storage driver without a native diff
# (fuse-overlayfs, vfs) each new layer costs a walk of the whole image.
RUN mkdir -p data/output /var/lib/prefect-emulator /var/lib/dashboard \
 && chown app:app data/output /var/lib/prefect-emulator /var/lib/dashboard
# Code last, least often changed first. Owned by root and read-only for the app user; runs write only to
# data/output (mounted from the host by compose) and to HOME/tmp.
COPY env/defaults.env env/defaults.env
COPY scripts/ scripts/
COPY prefect_emulator/ prefect_emulator/
COPY agents/ agents/
COPY dashboard/ dashboard/
COPY data/ data/
COPY dags/ dags/

USER ${APP_UID}
# Agents serve prefect's health endpoint here (GET /api/health), which compose's healthchecks call.
EXPOSE 8081
CMD ["python", "-m", "agents", "--help"]
