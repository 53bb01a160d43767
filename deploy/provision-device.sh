#!/usr/bin/env bash
# Provision one device in one step: its broker credentials (password entry or client
# certificate signed by the deployment CA) and its ACL, then print what the device needs.
#
#   deploy/provision-device.sh SITE DEVICE            # username/password
#   deploy/provision-device.sh SITE DEVICE --cert     # client certificate (mutual TLS)
#   deploy/provision-device.sh SITE DEVICE --rotate   # issue a new password / certificate
#
# Idempotent: an existing device keeps its password (it is not stored in clear, so it is not
# printed again; use --rotate) and its certificate. Offline (mosquitto_passwd, openssl).
# Afterwards reload the broker so it rereads the password file and ACL:
#   systemctl reload mosquitto        (or: kill -HUP $(pidof mosquitto))
#
# The MQTT username is "SITE/DEVICE" (the certificate CN with --cert), and the ACL pattern
# `pattern write v1/%u/#` (deploy/mosquitto/acl) confines it to v1/SITE/DEVICE/#.
#
# Environment:
#   MQTT_CONF_DIR  broker config dir holding passwd, acl, certs/ (default /etc/mosquitto)
#   MQTT_GROUP     group that may read the password file (default mosquitto; 1883 for compose)
#   CA_DIR         CA key and certificate for --cert (default $MQTT_CONF_DIR/ca)
#   OUT_DIR        where device files are written (default ./devices); SITE/DEVICE/ below it
#   DEVICE_PASSWORD  use this password instead of a generated one (automation)
#   BROKER_HOST    host name printed for the device (default: this host's FQDN)
#   CERT_DAYS      client certificate validity (default 825)
set -euo pipefail

usage() { echo "usage: $0 SITE DEVICE [--cert] [--rotate]" >&2; exit 2; }
[ "$#" -ge 2 ] || usage
SITE=$1
DEVICE=$2
shift 2
MODE=password
ROTATE=0
for arg in "$@"; do
    case "$arg" in
        --cert) MODE=cert ;;
        --rotate) ROTATE=1 ;;
        *) usage ;;
    esac
done
id_re='^[A-Za-z0-9_-]{1,64}$'
for v in "$SITE" "$DEVICE"; do
    if ! [[ "$v" =~ $id_re ]]; then
        echo "error: '$v': site and device ids must match [A-Za-z0-9_-]{1,64}" >&2
        exit 2
    fi
done

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
MQTT_CONF_DIR=${MQTT_CONF_DIR:-/etc/mosquitto}
# Group the broker runs as (reads the password file); 1883 in the eclipse-mosquitto image.
MQTT_GROUP=${MQTT_GROUP:-mosquitto}
CA_DIR=${CA_DIR:-$MQTT_CONF_DIR/ca}
OUT_DIR=${OUT_DIR:-./devices}
CERT_DAYS=${CERT_DAYS:-825}
BROKER_HOST=${BROKER_HOST:-$(hostname -f 2>/dev/null || hostname)}
USERNAME="$SITE/$DEVICE"
PASSWD=$MQTT_CONF_DIR/passwd
ACL=$MQTT_CONF_DIR/acl
DEV_DIR=$OUT_DIR/$SITE/$DEVICE

mkdir -p "$MQTT_CONF_DIR"

# --- ACL: the one pattern that covers every device ------------------------------------
if [ ! -f "$ACL" ]; then
    install -m 0644 "$HERE/mosquitto/acl" "$ACL"
    echo "installed ACL: $ACL" >&2
fi
if ! grep -qxF 'pattern write v1/%u/#' "$ACL"; then
    printf '\n# Devices (username = {site}/{device}) write only under their own prefix.\npattern write v1/%%u/#\n' >>"$ACL"
    echo "added device pattern to $ACL" >&2
fi

# --- Credentials -------------------------------------------------------------------------
if [ "$MODE" = password ]; then
    if [ ! -f "$PASSWD" ]; then
        (umask 027 && : >"$PASSWD")
    fi
    if grep -q "^${USERNAME}:" "$PASSWD" && [ "$ROTATE" -eq 0 ]; then
        echo "device $USERNAME already provisioned (password unchanged; --rotate for a new one)" >&2
        echo "username=$USERNAME"
        echo "password=(unchanged)"
    else
        password=${DEVICE_PASSWORD:-$(openssl rand -base64 24 | tr -d '/+=\n')}
        mosquitto_passwd -b "$PASSWD" "$USERNAME" "$password"
        echo "username=$USERNAME"
        echo "password=$password"
    fi
    # mosquitto reads the password file after dropping privileges to the "mosquitto" user.
    chmod 0640 "$PASSWD"
    if [ "$(id -u)" -eq 0 ] && { [[ "$MQTT_GROUP" =~ ^[0-9]+$ ]] || getent group "$MQTT_GROUP" >/dev/null 2>&1; }; then
        chgrp "$MQTT_GROUP" "$PASSWD"
    fi
    echo "url=mqtts://$BROKER_HOST:8883"
    echo "ca_file=$MQTT_CONF_DIR/certs/ca.crt"
else
    if [ ! -f "$CA_DIR/ca.key" ]; then
        echo "error: no CA at $CA_DIR (run deploy/make-ca.sh first)" >&2
        exit 1
    fi
    mkdir -p "$DEV_DIR"
    if [ -f "$DEV_DIR/client.crt" ] && [ -f "$DEV_DIR/client.key" ] && [ "$ROTATE" -eq 0 ]; then
        echo "device $USERNAME already has a certificate (--rotate for a new one)" >&2
    else
        ext=$(mktemp)
        trap 'rm -f "$ext" "$DEV_DIR/client.csr"' EXIT
        printf 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n' >"$ext"
        (umask 077 && openssl ecparam -name prime256v1 -genkey -noout -out "$DEV_DIR/client.key")
        # The CN is the MQTT username (use_identity_as_username); "/" is escaped in -subj.
        openssl req -new -sha256 -key "$DEV_DIR/client.key" \
            -subj "/O=Enforcement gateway/CN=${SITE}\/${DEVICE}" -out "$DEV_DIR/client.csr"
        openssl x509 -req -sha256 -in "$DEV_DIR/client.csr" -CA "$CA_DIR/ca.crt" \
            -CAkey "$CA_DIR/ca.key" -CAcreateserial -days "$CERT_DAYS" -extfile "$ext" \
            -out "$DEV_DIR/client.crt" 2>/dev/null
    fi
    cp "$CA_DIR/ca.crt" "$DEV_DIR/ca.crt"
    echo "username=$USERNAME"
    echo "url=mqtts://$BROKER_HOST:8884"
    echo "ca_file=$DEV_DIR/ca.crt"
    echo "client_cert_file=$DEV_DIR/client.crt"
    echo "client_key_file=$DEV_DIR/client.key"
fi
echo "publish_under=v1/$SITE/$DEVICE/"
echo "then: reload the broker (systemctl reload mosquitto) so it rereads $PASSWD and $ACL" >&2
