#!/usr/bin/env bash
# Prepare deploy/compose-data/ for `docker compose -f deploy/compose.yaml up`: the CA and a
# broker certificate valid for the compose host name "mosquitto", the broker's password
# file and ACL, the gateway's broker password and an InfluxDB admin token. Idempotent:
# existing secrets are kept. Offline (openssl, mosquitto_passwd). Then add devices with
#   MQTT_GROUP=1883 MQTT_CONF_DIR=deploy/compose-data/mosquitto bash deploy/provision-device.sh SITE DEVICE
# and `docker compose -f deploy/compose.yaml kill -s HUP mosquitto` to reload the broker.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
DATA=$HERE/compose-data
export MQTT_CONF_DIR=$DATA/mosquitto
export CA_DIR=$DATA/ca
mkdir -p "$DATA"

bash "$HERE/make-ca.sh" mosquitto localhost 127.0.0.1 >/dev/null

ENV_FILE=$DATA/gateway.env
if [ ! -f "$ENV_FILE" ] || ! grep -q '^GATEWAY_MQTT__PASSWORD=' "$ENV_FILE"; then
    out=$(MQTT_GROUP=1883 bash "$HERE/provision-user.sh" gateway --rotate 2>/dev/null)
    password=$(printf '%s\n' "$out" | sed -n 's/^password=//p')
    (umask 077 && printf 'GATEWAY_MQTT__PASSWORD=%s\n' "$password" >>"$ENV_FILE")
fi
if ! grep -q '^GATEWAY_INFLUX__TOKEN=' "$ENV_FILE"; then
    token=$(openssl rand -hex 32)
    printf 'GATEWAY_INFLUX__TOKEN=%s\n' "$token" >>"$ENV_FILE"
    # compose.yaml reads the same token for InfluxDB's first-start set-up.
    (umask 077 && printf 'INFLUX_ADMIN_TOKEN=%s\nINFLUX_ADMIN_PASSWORD=%s\n' \
        "$token" "$(openssl rand -hex 16)" >"$DATA/influx.env")
fi

# The shared clue store (compose.scale-out.yaml): PostgreSQL's password, and the gateways' URL.
if [ ! -f "$DATA/postgres.env" ]; then
    pg_password=$(openssl rand -hex 16)
    (umask 077 && printf 'POSTGRES_PASSWORD=%s\n' "$pg_password" >"$DATA/postgres.env")
    (umask 077 && printf 'GATEWAY_CLUES__URL=postgres://gateway:%s@postgres:5432/clues\n' \
        "$pg_password" >"$DATA/clues.env")
fi

# The broker image drops privileges to uid/gid 1883 (mosquitto) before it reads the
# password file and ACL; the server key must be readable too.
if [ "$(id -u)" -eq 0 ]; then
    chgrp 1883 "$MQTT_CONF_DIR/passwd" "$MQTT_CONF_DIR/acl" "$MQTT_CONF_DIR/certs/server.key"
    chmod 0640 "$MQTT_CONF_DIR/passwd" "$MQTT_CONF_DIR/certs/server.key"
else
    echo "note: run 'sudo chgrp 1883 $MQTT_CONF_DIR/{passwd,acl,certs/server.key}' so the broker container can read them" >&2
fi
echo "ready: docker compose -f deploy/compose.yaml up -d"
