#!/usr/bin/env bash
# Create the deployment CA and the broker's TLS server certificate. Idempotent: existing
# files are kept (delete a file to reissue it). Offline: openssl only.
#
#   sudo deploy/make-ca.sh broker.example.org 10.0.0.5
#
# Arguments: DNS names and IP addresses the devices use to reach the broker (the server
# certificate's subjectAltName). Default: localhost 127.0.0.1.
#
# Environment:
#   MQTT_CONF_DIR  broker config dir; server cert goes to $MQTT_CONF_DIR/certs (/etc/mosquitto)
#   CA_DIR         CA private key and certificate (default $MQTT_CONF_DIR/ca, mode 0700).
#                  Keep ca.key off the broker host in production; provision-device.sh --cert
#                  needs it only where certificates are issued.
#   CA_DAYS, SERVER_DAYS  validity (3650 / 825 days)
set -euo pipefail

MQTT_CONF_DIR=${MQTT_CONF_DIR:-/etc/mosquitto}
CA_DIR=${CA_DIR:-$MQTT_CONF_DIR/ca}
CA_DAYS=${CA_DAYS:-3650}
SERVER_DAYS=${SERVER_DAYS:-825}
CERT_DIR=$MQTT_CONF_DIR/certs

if [ "$#" -eq 0 ]; then
    set -- localhost 127.0.0.1
fi

# The broker reads its config dir after dropping privileges: world-traversable.
[ -d "$MQTT_CONF_DIR" ] || install -d -m 0755 "$MQTT_CONF_DIR"
umask 077
mkdir -p "$CA_DIR" "$CERT_DIR"
chmod 700 "$CA_DIR"
chmod 755 "$CERT_DIR"

if [ ! -f "$CA_DIR/ca.key" ] || [ ! -f "$CA_DIR/ca.crt" ]; then
    openssl ecparam -name prime256v1 -genkey -noout -out "$CA_DIR/ca.key"
    openssl req -new -x509 -sha256 -key "$CA_DIR/ca.key" -days "$CA_DAYS" \
        -subj "/O=Enforcement gateway/CN=Enforcement gateway device CA" \
        -addext "basicConstraints=critical,CA:TRUE" \
        -addext "keyUsage=critical,keyCertSign,cRLSign" \
        -out "$CA_DIR/ca.crt"
    echo "created CA: $CA_DIR/ca.crt"
else
    echo "CA exists: $CA_DIR/ca.crt"
fi
# Clients (devices, the gateway) trust this copy; the broker also verifies client certs with it.
cp "$CA_DIR/ca.crt" "$CERT_DIR/ca.crt"
chmod 644 "$CERT_DIR/ca.crt"

if [ ! -f "$CERT_DIR/server.key" ] || [ ! -f "$CERT_DIR/server.crt" ]; then
    san=""
    for name in "$@"; do
        if [[ "$name" =~ ^[0-9.]+$ || "$name" == *:* ]]; then
            san="$san,IP:$name"
        else
            san="$san,DNS:$name"
        fi
    done
    san=${san#,}
    ext=$(mktemp)
    trap 'rm -f "$ext" "$CERT_DIR/server.csr"' EXIT
    printf 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\nsubjectAltName=%s\n' "$san" >"$ext"
    openssl ecparam -name prime256v1 -genkey -noout -out "$CERT_DIR/server.key"
    openssl req -new -sha256 -key "$CERT_DIR/server.key" -subj "/O=Enforcement gateway/CN=$1" \
        -out "$CERT_DIR/server.csr"
    openssl x509 -req -sha256 -in "$CERT_DIR/server.csr" -CA "$CA_DIR/ca.crt" \
        -CAkey "$CA_DIR/ca.key" -CAcreateserial -days "$SERVER_DAYS" -extfile "$ext" \
        -out "$CERT_DIR/server.crt" 2>/dev/null
    echo "created server certificate for $san: $CERT_DIR/server.crt"
else
    echo "server certificate exists: $CERT_DIR/server.crt"
fi
# mosquitto drops privileges to the `mosquitto` user after reading its config; the key must
# stay readable by that user (the broker rereads certificates on SIGHUP).
chmod 644 "$CERT_DIR/server.crt"
chmod 640 "$CERT_DIR/server.key"
if getent group mosquitto >/dev/null 2>&1 && [ "$(id -u)" -eq 0 ]; then
    chgrp mosquitto "$CERT_DIR/server.key"
fi
echo "ca_file=$CERT_DIR/ca.crt"
echo "server_cert=$CERT_DIR/server.crt"
echo "server_key=$CERT_DIR/server.key"
