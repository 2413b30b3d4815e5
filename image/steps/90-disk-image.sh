#!/bin/bash
# The disk image: a GPT with fixed ids (image/tools/layout.py), each partition file written
# at its offset. Plain files, no loop device; sparse, so the empty slot B (p3, p5) costs nothing.
set -euo pipefail
layout=(python3 "$REPO/image/tools/layout.py")
img=$WORK/$IMAGE_NAME.img
rm -f "$img"
truncate -s "$("${layout[@]}" size)" "$img"
"${layout[@]}" sfdisk | sfdisk --quiet --no-reread --no-tell-kernel "$img"
declare -A file=([$BOOT_NAME]=select.vfat [$SLOT_BOOT_A_NAME]=boot.vfat [$ROOT_A_NAME]=root.squashfs
                [$PERSIST_NAME]=persist.ext4)
while read -r name offset size; do
    [ -n "${file[$name]:-}" ] || continue
    src=$WORK/${file[$name]}
    [ "$(stat -c %s "$src")" -le "$size" ] || { echo "error: $src is larger than partition $name" >&2; exit 1; }
    dd if="$src" of="$img" bs=1M seek=$((offset / 1048576)) conv=notrunc,sparse status=none
done < <("${layout[@]}" offsets)
sfdisk --list "$img" | sed 's/^/   /'
