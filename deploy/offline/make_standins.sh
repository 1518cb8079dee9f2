#!/bin/sh
# Where no container registry can be reached (as on the machine the container files were
# first checked on): stand-ins for python:3.11-slim and postgres:16, built from Debian
# bookworm with debootstrap (needs root and deb.debian.org). Then:
#   BASE_IMAGE=kennel-localbase:bookworm POSTGRES_IMAGE=kennel-localpg:15 deploy/check_container.sh
# Extra CA certificates (a TLS-inspecting egress proxy) are taken from
# /usr/local/share/ca-certificates so pip inside the build can reach PyPI.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
    bookworm "$work/rootfs" http://deb.debian.org/debian >/dev/null
tar -C "$work/rootfs" -c . | docker import - kennel-base:bookworm >/dev/null

mkdir "$work/base" "$work/pg"
cp /usr/local/share/ca-certificates/*.crt "$work/base/" 2>/dev/null || true
cat > "$work/base/Dockerfile" <<'DOCKERFILE'
FROM kennel-base:bookworm
COPY . /usr/local/share/ca-certificates/
RUN rm -f /usr/local/share/ca-certificates/Dockerfile && update-ca-certificates >/dev/null
ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt
DOCKERFILE
docker build -q -t kennel-localbase:bookworm "$work/base" >/dev/null

cp "$here/postgres-entrypoint.sh" "$work/pg/entrypoint.sh"
cat > "$work/pg/Dockerfile" <<'DOCKERFILE'
FROM kennel-base:bookworm
RUN apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
    --no-install-recommends postgresql >/dev/null && rm -rf /var/lib/apt/lists/*
COPY entrypoint.sh /entrypoint.sh
ENV PATH=/usr/lib/postgresql/15/bin:$PATH PGDATA=/var/lib/postgresql/data
ENTRYPOINT ["/bin/sh", "/entrypoint.sh"]
DOCKERFILE
docker build -q -t kennel-localpg:15 "$work/pg" >/dev/null
echo "built kennel-localbase:bookworm and kennel-localpg:15"
