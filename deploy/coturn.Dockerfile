# syntax=docker/dockerfile:1
#
# The TURN server of deploy/compose.yaml: coturn from Debian, the package
# deploy/local-cluster and the end-to-end tests run, with its configuration
# written at start from the environment (deploy/coturn-entrypoint), so the
# secret is never baked into the image.
#
#   docker build -f deploy/coturn.Dockerfile -t chat-coturn:local deploy
#
# Environment: TURN_SECRET (required: the api's CHAT_TURN_SECRET),
# TURN_REALM, TURN_LISTEN_IP, TURN_EXTERNAL_IP, TURN_PORT, TURN_TLS_PORT,
# TURN_MIN_PORT / TURN_MAX_PORT, TURN_CERT / TURN_PKEY (see the
# entrypoint). Production settings: docs/operations.md, "Calls: STUN and
# TURN".

ARG DEBIAN_RELEASE=bookworm

FROM debian:${DEBIAN_RELEASE}-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends coturn \
 && rm -rf /var/lib/apt/lists/*
COPY coturn-entrypoint /usr/local/bin/coturn-entrypoint
# The package's user; the configuration goes to its runtime directory.
RUN mkdir -p /run/turnserver && chown turnserver:turnserver /run/turnserver
USER turnserver
EXPOSE 3478/udp 3478/tcp 5349/tcp
ENTRYPOINT ["/usr/local/bin/coturn-entrypoint"]
