#!/bin/bash
# No way in but the web page: no SSH server is installed, every account's password is
# locked (the owner sets the only password, the web admin's, in the setup wizard), no
# machine-id in the image (each box makes its own at first boot), nothing left behind
# by the build.
set -euo pipefail
. "$REPO/image/steps/chroot.sh"
for account in $(cut -d: -f1 "$root/etc/shadow"); do
    chroot "$root" usermod --lock "$account" >/dev/null
done
if awk -F: '$2 !~ /^[!*]/ { bad = 1; print "usable password: " $1 } END { exit bad }' "$root/etc/shadow"; then :; else
    echo "error: an account has a usable password" >&2; exit 1
fi
for unit in ssh.service sshd.service; do
    [ ! -e "$root/lib/systemd/system/$unit" ] || { echo "error: $unit is in the image" >&2; exit 1; }
done
: > "$root/etc/machine-id"
rm -f "$root/var/lib/dbus/machine-id" "$root/var/lib/systemd/random-seed"
rm -f "$root"/etc/*- "$root/var/cache/ldconfig/aux-cache"
rm -rf "$root"/var/log/* "$root"/var/cache/apt/* "$root"/var/lib/apt/lists/* "$root"/tmp/*
find "$root/var/lib/dpkg" "$root/var/cache/debconf" -name '*-old' -delete
