#!/bin/bash
# Before the kernel and initramfs-tools are installed: build the initramfs with the listed
# modules only (about 1 min per mkinitramfs under emulation instead of 8) and gzip. The
# module list goes to modules.d/, not to the package's conffile /etc/initramfs-tools/modules.
set -euo pipefail
root=$1
mkdir -p "$root/etc/initramfs-tools/conf.d" "$root/usr/share/initramfs-tools/modules.d"
printf 'MODULES=list\nCOMPRESS=gzip\n' > "$root/etc/initramfs-tools/conf.d/vigil.conf"
printf '%s\n' $INITRAMFS_MODULES > "$root/usr/share/initramfs-tools/modules.d/vigil"
