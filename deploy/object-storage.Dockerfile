# syntax=docker/dockerfile:1
#
# The object storage of deploy/compose.yaml: s3s-fs, an S3-compatible server
# keeping each bucket as a directory, the same server (and version) the
# tests, the fault suite and deploy/local-cluster run, so the compose pool
# talks to what is tested. It is built from crates.io (a few minutes, once:
# the layer is cached). For production, point CHAT_S3_* at a managed or
# replicated S3 service instead (docs/operations.md, Object storage).
#
#   docker build -f deploy/object-storage.Dockerfile -t chat-object-storage:local deploy
#
# Environment: S3_BUCKET (made at start if missing), S3_ACCESS_KEY and
# S3_SECRET_KEY (the key it checks SigV4 signatures with). Objects live in
# /var/lib/objects (a volume).

ARG RUST_VERSION=1.95
ARG DEBIAN_RELEASE=bookworm
# The newest release that builds with RUST_VERSION (scripts/services).
ARG S3S_FS_VERSION=0.14.1

FROM rust:${RUST_VERSION}-${DEBIAN_RELEASE} AS builder
ARG S3S_FS_VERSION
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    cargo install --locked --root /out "s3s-fs@${S3S_FS_VERSION}" --features binary

FROM debian:${DEBIAN_RELEASE}-slim
# curl for the health check.
RUN apt-get update \
 && apt-get install -y --no-install-recommends curl \
 && rm -rf /var/lib/apt/lists/*
RUN groupadd --system --gid 10002 objects \
 && useradd --system --uid 10002 --gid objects --home-dir /var/lib/objects --shell /usr/sbin/nologin objects \
 && mkdir -p /var/lib/objects \
 && chown objects:objects /var/lib/objects
COPY --from=builder /out/bin/s3s-fs /usr/local/bin/s3s-fs
USER objects
VOLUME /var/lib/objects
EXPOSE 9000
ENV S3_BUCKET=chat
# A bucket is a directory of the root; the api never creates one.
CMD ["sh", "-c", "mkdir -p \"/var/lib/objects/$S3_BUCKET\" && exec s3s-fs --host 0.0.0.0 --port 9000 --access-key \"$S3_ACCESS_KEY\" --secret-key \"$S3_SECRET_KEY\" /var/lib/objects"]
