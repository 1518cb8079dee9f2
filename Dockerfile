# Kennel in a container: the README's install, run as a user without privileges, its data
# folder a volume. `deploy/check_container.sh` builds it and runs compose.yaml by hand.
ARG BASE_IMAGE=python:3.11-slim
FROM ${BASE_IMAGE}

ENV PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    KENNEL_HOST=0.0.0.0 \
    KENNEL_SMTP_HOST=0.0.0.0 \
    KENNEL_DATA_DIR=/data

RUN useradd --system --uid 10001 --user-group --home-dir /app --shell /usr/sbin/nologin kennel \
 && mkdir -p /app /data \
 && chown kennel:kennel /app /data
WORKDIR /app
COPY --chown=kennel:kennel pyproject.toml README.md ./
COPY --chown=kennel:kennel src ./src
USER kennel
# The README's install line, word for word (tests/test_container.py holds them together).
RUN python3 -m venv .venv && .venv/bin/pip install -q -e .
ENV PATH=/app/.venv/bin:$PATH

VOLUME /data
EXPOSE 8000 2525
# Ready, not only alive: the database answers, its schema is this code's, DBOS runs.
HEALTHCHECK --interval=10s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python3", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('KENNEL_PORT', '8000') + '/readyz', timeout=4)"]
CMD ["kennel", "serve"]
