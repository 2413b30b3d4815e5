#!/bin/bash
# The build machine's tools (Debian packages, installed only when missing) and arm64
# emulation: binfmt_misc is neither mounted nor registered after a reboot, so every build
# checks it (reference: mmdebstrap runs arm64 maintainer scripts through qemu-user).
set -euo pipefail
"$REPO/scripts/ensure-system-packages" mmdebstrap qemu-user-static binfmt-support arch-test \
    squashfs-tools dosfstools mtools fdisk e2fsprogs bmap-tools xz-utils python3 git \
    u-boot-tools
if [ ! -e /proc/sys/fs/binfmt_misc/status ]; then
    mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
fi
update-binfmts --enable qemu-aarch64 >/dev/null 2>&1 || true
if ! arch-test arm64 >/dev/null 2>&1; then
    echo "error: this machine cannot run arm64 programs through qemu-user (arch-test arm64 failed)" >&2
    exit 1
fi
