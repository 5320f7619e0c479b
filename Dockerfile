# swserve container image.  See docs/docker.md.
#
#   docker build -t swserve .
#   docker run --rm -p 8000:8000 swserve
#
# BASE_IMAGE must be a Python >= 3.11 image whose `python` is first on PATH
# (CI substitutes a local stand-in for python:3.11-slim).
ARG BASE_IMAGE=python:3.11-slim

# ---------------------------------------------------------------------------
# build: wheels for swserve and every dependency, so that the runtime stage
# installs offline (--no-index) and needs no compiler.
# ---------------------------------------------------------------------------
FROM ${BASE_IMAGE} AS build

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_ROOT_USER_ACTION=ignore

WORKDIR /src

# A C compiler (and the Python headers, where the base image lacks them) so that the wheel is
# the compiled build (docs/compiled.md); without them the wheel is pure Python and says so.
RUN command -v gcc >/dev/null \
 || (apt-get update -qq && apt-get install -y -qq --no-install-recommends gcc libc6-dev \
     && (python -c "import os, sys, sysconfig; \
sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()['include'], 'Python.h')))" \
         || apt-get install -y -qq --no-install-recommends python3-dev) \
     && rm -rf /var/lib/apt/lists/*) \
 || echo "no C compiler could be installed: swserve's wheel will be pure Python"

# Dependencies and the build backend first, from pyproject.toml alone: these
# layers stay cached while only swserve's own code changes, so a rebuild after a
# code change needs no network (it compiles with the compiler of the layer above).
COPY pyproject.toml ./
RUN python -c "import tomllib; p = tomllib.load(open('pyproject.toml', 'rb')); \
open('/tmp/requirements.txt', 'w').write('\n'.join(p['project']['dependencies'])); \
open('/tmp/build-requirements.txt', 'w').write('\n'.join(p['build-system']['requires']))" \
 && python -m pip install --no-cache-dir -r /tmp/build-requirements.txt \
 && python -m pip wheel --no-cache-dir --wheel-dir /wheels -r /tmp/requirements.txt

# Then swserve itself: its dependencies' wheels are already in /wheels.
COPY README.md setup.py ./
COPY swserve ./swserve
RUN python -m pip wheel -v --no-cache-dir --no-deps --no-build-isolation --wheel-dir /wheels . \
        > /tmp/wheel.log 2>&1 || (tail -n 40 /tmp/wheel.log; exit 1); \
    grep "swserve build:" /tmp/wheel.log; rm /tmp/wheel.log

# ---------------------------------------------------------------------------
# runtime: the wheels installed into the base image's Python, no build tools,
# no pip cache, a non-root user.
# ---------------------------------------------------------------------------
FROM ${BASE_IMAGE} AS runtime

ENV PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_ROOT_USER_ACTION=ignore

RUN useradd --no-log-init --uid 10001 --user-group \
        --home-dir /nonexistent --no-create-home --shell /usr/sbin/nologin swserve

# Not RUN --mount=type=bind,from=build: buildah (podman build, used by CI) may
# reuse that RUN layer from its cache after the build stage changed.  The copied
# wheels cost about 5 MB in this layer; the rm only hides them.
COPY --from=build /wheels /wheels
RUN python -m pip install --no-cache-dir --no-index --find-links=/wheels /wheels/swserve-*.whl \
 && rm -rf /wheels \
 && swserve --version

WORKDIR /app
USER 10001:10001

# Workers default to the number of usable CPU cores of the container's cpuset,
# which a --cpus quota does not shrink: set WEB_CONCURRENCY (or SWSERVE_WORKERS,
# which wins over it) at run time, e.g. `docker run -e WEB_CONCURRENCY=4 ...`.
# Any other setting is SWSERVE_<NAME> the same way (see docs/settings.md).
#
# /metrics, /healthz and /readyz are served by the master on their own port, so
# that probes never queue behind application requests.
ENV SWSERVE_METRICS_BIND=0.0.0.0:9000
EXPOSE 8000 9000

# Healthy means /readyz answers 200: the server is ready to serve (it answers
# 503 otherwise, e.g. while the workers load the app).  The image's own Python does the request: slim images have no curl.
# The port follows SWSERVE_METRICS_BIND, so overriding it at run time keeps the
# check working.  Build with `--format docker` under podman/buildah: the OCI image
# format has no HEALTHCHECK and buildah drops it with a warning.
HEALTHCHECK --interval=15s --timeout=3s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, sys, urllib.request\nport = os.environ.get('SWSERVE_METRICS_BIND', ':9000').rpartition(':')[2]\ntry:\n    urllib.request.urlopen(f'http://127.0.0.1:{port}/readyz', timeout=2)\nexcept Exception as exc:\n    sys.exit(f'not ready: {exc}')"]

# Exec form: swserve is PID 1 and gets SIGTERM from `docker stop` (graceful stop,
# exit 0); it also reaps orphaned processes as PID 1.
CMD ["swserve", "--bind", "0.0.0.0:8000"]
