#!/bin/bash
# The Debian root file system for arm64, from Debian's packages only: mmdebstrap in root
# mode, maintainer scripts run through qemu-user (the longest step, 10-15 minutes on two
# cores). Kept as $WORK/debian-root; REUSE_DEBIAN=yes (development only: the kept root
# carries the time of the commit it was built for, not this one's) takes the kept one when
# the package list, release and initramfs settings are unchanged. The next steps work on
# a copy, $WORK/rootfs. Release builds and image/verify never reuse.
set -euo pipefail
cd "$REPO"
key=$(printf '%s\n' "$SUITE" "$MIRROR" "$SECURITY_MIRROR" "$COMPONENTS" "$PACKAGES" "$INITRAMFS_MODULES" |
      cat - "$0" image/steps/hooks/initramfs-config.sh | sha256sum | cut -d' ' -f1)
if [ "${REUSE_DEBIAN:-no}" = yes ] && [ "$(cat "$WORK/debian-root.key" 2>/dev/null)" = "$key" ]; then
    echo "   reusing $WORK/debian-root (REUSE_DEBIAN=yes, same packages and settings)"
else
    rm -rf "$WORK/debian-root" "$WORK/debian-root.key"
    mmdebstrap --mode=root --arch=arm64 --variant=minbase --format=directory \
        --aptopt='Acquire::Retries "3"' \
        --dpkgopt='path-exclude=/usr/share/man/*' \
        --dpkgopt='path-exclude=/usr/share/info/*' \
        --dpkgopt='path-exclude=/usr/share/locale/*' \
        --dpkgopt='path-exclude=/usr/share/doc/*' \
        --dpkgopt='path-include=/usr/share/doc/*/copyright' \
        --include="$(echo $PACKAGES | tr ' ' ',')" \
        --essential-hook="bash $REPO/image/steps/hooks/initramfs-config.sh \"\$1\"" \
        "$SUITE" "$WORK/debian-root" \
        "deb $MIRROR $SUITE $COMPONENTS" \
        "deb $MIRROR $SUITE-updates $COMPONENTS" \
        "deb $SECURITY_MIRROR $SUITE-security $COMPONENTS"
    echo "$key" > "$WORK/debian-root.key"
fi
rm -rf "$WORK/rootfs"
cp -a "$WORK/debian-root" "$WORK/rootfs"
