#!/bin/bash
# rootfs-overlay/ (of the commit being built) laid onto the root; the appliance's user, the
# units enabled, the links the system settings contract asks for (docs/design/system.md),
# mount points, the board profile, and the build stamp.
set -euo pipefail
. "$REPO/image/steps/chroot.sh"
cp -a --no-preserve=ownership "$WORK/src/rootfs-overlay/." "$root/"
chroot "$root" systemd-sysusers
chroot "$root" systemctl enable \
    vigil-persist.service vigil-system-apply.service vigil-firstboot.service \
    vigil-hwd.service vigil-recorder.service vigil-web.service vigil-mqtt.service \
    vigil-restream.service vigil-console-report.service vigil-rauc-config.service \
    vigil-update.service \
    systemd-networkd.service systemd-resolved.service systemd-timesyncd.service
# Host name, time zone: links into /run, written by vigil-system-apply at every boot.
ln -sfn /run/vigil/hostname "$root/etc/hostname"
ln -sfn /run/vigil/localtime "$root/etc/localtime"
ln -sfn /run/vigil/timezone "$root/etc/timezone"
ln -sfn /run/systemd/resolve/stub-resolv.conf "$root/etc/resolv.conf"
mkdir -p "$root/persist" "$root/srv/vigil" "$root/boot/select"
# Field updates: RAUC reads /etc/rauc/system.conf, written at boot for the board
# (vigil-rauc-config.service); bundles are checked against this keyring.
mkdir -p "$root/etc/rauc" "$root/usr/share/vigil/rauc"
ln -sfn /run/vigil/rauc/system.conf "$root/etc/rauc/system.conf"
case "$IMAGE_KEYRING" in
    /*) keyring=$IMAGE_KEYRING ;;
    *) keyring=$WORK/src/$IMAGE_KEYRING ;;   # a path in the repository (the commit built)
esac
install -m 0644 "$keyring" "$root/usr/share/vigil/rauc/keyring.pem"
echo "$BOARD" > "$root/etc/vigil/board"
mkdir -p "$root/usr/share/doc/vigil"
cp "$WORK/src/README.md" "$root/usr/share/doc/vigil/README.md"
cat > "$root/usr/lib/vigil/build.json" <<JSON
{"version": "$VERSION", "commit": "$COMMIT", "source_date_epoch": $SOURCE_DATE_EPOCH, "debian": "$SUITE", "image": "$IMAGE_NAME", "rauc_compatible": "$RAUC_COMPATIBLE"}
JSON
