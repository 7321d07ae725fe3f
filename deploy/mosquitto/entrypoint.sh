#!/bin/sh
# Entrypoint of Menara's Mosquitto (eclipse-mosquitto 2.0, run as root).
#
# (Re)writes the service account `menara` (the user the ACL names) with
# $MENARA_MQTT_PASSWORD into the password file on the data volume, keeping the device
# users added there with mosquitto_passwd, then runs the broker, which drops root for
# the image's `mosquitto` user and reads the file again on SIGHUP.
set -eu
passwd=/mosquitto/data/passwd
: "${MENARA_MQTT_PASSWORD:?set MENARA_MQTT_PASSWORD: the password of the broker user menara}"
[ -f "$passwd" ] || : >"$passwd"
mosquitto_passwd -b "$passwd" menara "$MENARA_MQTT_PASSWORD"
chown -R mosquitto:mosquitto /mosquitto/data
chmod 0700 "$passwd"
exec /usr/sbin/mosquitto -c /mosquitto/config/mosquitto.conf
