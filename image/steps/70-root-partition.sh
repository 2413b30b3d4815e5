#!/bin/bash
# p2, root slot A: the root file system as read-only squashfs (zstd). mksquashfs with
# SOURCE_DATE_EPOCH stores no build time and sorts directories, so the same tree gives
# the same bytes. Slot B (p3) starts empty: the first update writes it.
set -euo pipefail
part=$WORK/root.squashfs
rm -f "$part"
mksquashfs "$WORK/rootfs" "$part" -noappend -comp zstd -Xcompression-level 15 -b 256K \
    -quiet -no-progress -wildcards -e 'proc/*' 'sys/*' 'dev/*' 'run/*' 'tmp/*'
size=$(stat -c %s "$part")
limit=$((ROOT_SIZE * 1024 * 1024))
echo "   root: $((size / 1048576)) MiB of the slot's $ROOT_SIZE MiB"
[ "$size" -le "$limit" ] || { echo "error: the root file system does not fit its slot" >&2; exit 1; }
