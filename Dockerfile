# syntax=docker/dockerfile:1
#
# One image with all three binaries: `chat` (the default command), `chat-api`
# and `chat-gateway`. deploy/compose.yaml runs the pool from it.
#
#   docker build -t chat:local .
#   docker run --rm -p 127.0.0.1:8080:8080 chat:local          # the all-in-one server
#
# CI does not build this image (no Docker daemon there); `docker build` is
# the test. The migrations are compiled into the binaries (sqlx::migrate!) and
# applied at start-up; the copy under /usr/share/chat/migrations is for
# operators to read.

ARG RUST_VERSION=1.95
ARG DEBIAN_RELEASE=bookworm

# ---------------------------------------------------------------- build
FROM rust:${RUST_VERSION}-${DEBIAN_RELEASE} AS builder
WORKDIR /src
COPY . .
# Cache mounts keep the registry and target/ between builds; the binaries
# are copied out of the cached target/ in the same step.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/usr/local/cargo/git \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p chat -p chat-api -p chat-gateway \
 && mkdir -p /out/bin /out/web-client \
 && cp target/release/chat target/release/chat-api target/release/chat-gateway /out/bin/
# The web client's page only: top-level html/js/css/png/svg/ico and its
# config.json (the gateways it may use), never tests/ or node_modules/.
RUN find web-client -maxdepth 1 -type f \
      \( -name '*.html' -o -name '*.js' -o -name '*.css' -o -name '*.png' -o -name '*.svg' -o -name '*.ico' -o -name config.json \) \
      -exec cp {} /out/web-client/ \;

# ---------------------------------------------------------------- runtime
FROM debian:${DEBIAN_RELEASE}-slim
# curl for the HEALTHCHECK; openssl to generate the JWT key pair
# (deploy/compose.yaml's `keygen`); ca-certificates for TLS to managed
# PostgreSQL/Redis endpoints.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl openssl \
 && rm -rf /var/lib/apt/lists/*
RUN groupadd --system --gid 10001 chat \
 && useradd --system --uid 10001 --gid chat --home-dir /var/lib/chat --shell /usr/sbin/nologin chat \
 && mkdir -p /var/lib/chat/data /var/lib/chat/keys/private /var/lib/chat/keys/public \
 && chown -R chat:chat /var/lib/chat \
 && chmod 0700 /var/lib/chat/keys/private

COPY --from=builder /out/bin/ /usr/local/bin/
COPY --from=builder /out/web-client/ /usr/share/chat/web-client/
COPY migrations/ /usr/share/chat/migrations/

# Inside a container every listener binds all interfaces; publish only what
# you mean to (the compose file publishes nginx alone).
ENV CHAT_ADDR=0.0.0.0:8080 \
    CHAT_API_ADDR=0.0.0.0:8081 \
    CHAT_GATEWAY_ADDR=0.0.0.0:8082 \
    CHAT_WEB_DIR=/usr/share/chat/web-client \
    CHAT_DATA_DIR=/var/lib/chat/data

USER chat:chat
WORKDIR /var/lib/chat
VOLUME ["/var/lib/chat/data"]
# chat (all-in-one), chat-api, chat-gateway
EXPOSE 8080 8081 8082
# For the default command; compose gives chat-api and chat-gateway their own
# (their /healthz is on 8081 and 8082).
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
    CMD curl -fsS -o /dev/null http://127.0.0.1:8080/healthz || exit 1
# The binaries handle SIGTERM themselves (the gateway drains with 1012).
STOPSIGNAL SIGTERM
CMD ["chat"]
