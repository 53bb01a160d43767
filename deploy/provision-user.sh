#!/usr/bin/env bash
# Create (or rotate) the password of a service user of the broker: the gateway instances
# ("gateway") and the central platform ("platform"). Their ACL blocks are in
# deploy/mosquitto/acl. Idempotent: an existing user keeps its password unless --rotate.
#
#   deploy/provision-user.sh gateway            # prints password=... once
#   deploy/provision-user.sh gateway --rotate
#
# Environment: MQTT_CONF_DIR (default /etc/mosquitto), MQTT_GROUP (default mosquitto), USER_PASSWORD (use this password).
set -euo pipefail

[ "$#" -ge 1 ] || { echo "usage: $0 USER [--rotate]" >&2; exit 2; }
NAME=$1
ROTATE=0
[ "${2:-}" = "--rotate" ] && ROTATE=1
if ! [[ "$NAME" =~ ^[A-Za-z0-9_-]{1,64}$ ]]; then
    echo "error: '$NAME': user names must match [A-Za-z0-9_-]{1,64}" >&2
    exit 2
fi
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
MQTT_CONF_DIR=${MQTT_CONF_DIR:-/etc/mosquitto}
# Group the broker runs as (reads the password file); 1883 in the eclipse-mosquitto image.
MQTT_GROUP=${MQTT_GROUP:-mosquitto}
PASSWD=$MQTT_CONF_DIR/passwd
ACL=$MQTT_CONF_DIR/acl
mkdir -p "$MQTT_CONF_DIR"
[ -f "$ACL" ] || install -m 0644 "$HERE/mosquitto/acl" "$ACL"
[ -f "$PASSWD" ] || (umask 027 && : >"$PASSWD")
if ! grep -qxF "user $NAME" "$ACL"; then
    echo "warning: $ACL has no 'user $NAME' block: it may connect but neither read nor write" >&2
fi
echo "username=$NAME"
if grep -q "^${NAME}:" "$PASSWD" && [ "$ROTATE" -eq 0 ]; then
    echo "password=(unchanged)"
else
    password=${USER_PASSWORD:-$(openssl rand -base64 24 | tr -d '/+=\n')}
    mosquitto_passwd -b "$PASSWD" "$NAME" "$password"
    echo "password=$password"
fi
# mosquitto reads the password file after dropping privileges to the "mosquitto" user.
chmod 0640 "$PASSWD"
if [ "$(id -u)" -eq 0 ] && { [[ "$MQTT_GROUP" =~ ^[0-9]+$ ]] || getent group "$MQTT_GROUP" >/dev/null 2>&1; }; then
    chgrp "$MQTT_GROUP" "$PASSWD"
fi
echo "then: reload the broker (systemctl reload mosquitto)" >&2
