# Nomarr's image: `manage.py serve` (web, API, websockets and the tagging workers) on
# 0.0.0.0:8356, data in the /config volume, the music mounted where Lidarr sees it.
#
#   docker build --network host -t nomarr .
#   docker build --network host -f docker/gpu.Dockerfile -t nomarr:gpu .   # then, for NVIDIA GPUs
#
# Stages: `base` (Debian's Python 3.11 and ffmpeg), `deps` (the locked Python packages in
# /opt/venv), `models` (TensorFlow converts musicnn's checkpoints; thrown away after), and
# the runtime image, which carries the venv and the converted models/ and downloads
# nothing when it runs. See the README's Docker section.

FROM debian:bookworm-slim AS base
COPY docker/dpkg-slim.cfg /etc/dpkg/dpkg.cfg.d/nomarr-slim
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        python3 ffmpeg tini ca-certificates \
    && apt-get clean \
    && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/log/apt /var/log/dpkg.log

# --- the locked Python packages -----------------------------------------------------
FROM base AS deps
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        python3-venv binutils \
    && rm -rf /var/lib/apt/lists/*
COPY requirements-serve.lock /tmp/
# Exactly the tested set (hash-checked), without what only converts models. Then what
# no server reads: Essentia's and its TensorFlow's debugging symbols (110 MB; the other
# wheels' libraries are patched by auditwheel and must not be stripped), numpy's and
# Twisted's own test suites and Django's translations (the interface is English).
ARG SITE=/opt/venv/lib/python3.11/site-packages
RUN python3 -m venv /opt/venv \
    && /opt/venv/bin/pip install --no-cache-dir --require-hashes -r /tmp/requirements-serve.lock \
    && strip --strip-unneeded $SITE/essentia/*.so $SITE/essentia_tensorflow.libs/*.so* \
    && find $SITE/numpy $SITE/twisted -depth -type d \( -name tests -o -name test \) \
        -exec rm -rf {} + \
    && find $SITE/django -depth -type d -path '*/locale/*' \
        ! -path '*/locale/en' ! -path '*/locale/en/*' -exec rm -rf {} +

# --- the models: converted here, with TensorFlow, which stays in this stage -----------
FROM deps AS models
COPY requirements.lock requirements-musicnn.txt /tmp/
RUN /opt/venv/bin/pip install --no-cache-dir --require-hashes -r /tmp/requirements.lock \
    && /opt/venv/bin/pip install --no-cache-dir --require-hashes --no-deps \
        -r /tmp/requirements-musicnn.txt
COPY tagging/__init__.py tagging/convert.py tagging/onnx.py /src/tagging/
COPY nomarr_site/__init__.py nomarr_site/atomic.py /src/nomarr_site/
# The backbones, then their ONNX twins (onnxruntime runs them; the runtime image has no
# TensorFlow to make twins, so heads added later run on Essentia unless a twin is given).
RUN cd /src && /opt/venv/bin/python -m tagging.convert /app/models \
    && /opt/venv/bin/python -m tagging.onnx /app/models && ls -l /app/models

# --- the venv as the runtime carries it: no pip, no setuptools ------------------------
FROM deps AS venv
RUN /opt/venv/bin/python -m pip uninstall -q -y pip setuptools

# --- the runtime image ---------------------------------------------------------------
FROM base AS runtime
# The user the app runs as (PUID/PGID change the ids it takes; see docker/entrypoint).
RUN groupadd --gid 1000 nomarr \
    && useradd --uid 1000 --gid 1000 --home-dir /config --no-create-home \
        --shell /usr/sbin/nologin nomarr \
    && mkdir -p /config && chown nomarr:nomarr /config
COPY --from=venv /opt/venv /opt/venv
COPY --from=models /app/models /app/models
COPY docker/entrypoint /usr/local/bin/nomarr-entrypoint
COPY docker/manage /usr/local/bin/manage.py
COPY docker/healthcheck /usr/local/bin/nomarr-healthcheck
WORKDIR /app
COPY . /app
RUN NOMARR_SECRET_KEY=build-only NOMARR_DATA_DIR=/tmp/build NOMARR_LOG_FILE=off \
        /opt/venv/bin/python manage.py collectstatic --noinput -v 0 \
    && /opt/venv/bin/python -m compileall -q /app \
    && rm -rf /tmp/build

ENV PATH=/opt/venv/bin:$PATH \
    HOME=/tmp \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PUID=1000 \
    PGID=1000 \
    NOMARR_DATA_DIR=/config \
    NOMARR_HOST=0.0.0.0 \
    NOMARR_PORT=8356 \
    NOMARR_ALLOWED_HOSTS=*
VOLUME /config
EXPOSE 8356
# Healthy once the web server, the database and a worker answer (GET /health).
HEALTHCHECK --interval=10s --timeout=10s --start-period=120s --retries=3 \
    CMD ["/usr/local/bin/nomarr-healthcheck"]
ENTRYPOINT ["/usr/bin/tini", "--", "/usr/local/bin/nomarr-entrypoint"]
CMD ["manage.py", "serve"]

