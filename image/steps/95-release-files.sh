#!/bin/bash
# What is published: the compressed image, its block map (bmaptool writes only the used
# blocks), an SBOM of every Debian and Python package with version and licence, the
# kernel and initramfs for booting the image in QEMU, and the sha256 of each.
set -euo pipefail
img=$WORK/$IMAGE_NAME.img
cd "$OUT"
rm -f "$IMAGE_NAME".* SHA256SUMS
bmaptool --quiet create -o "$IMAGE_NAME.bmap" "$img"
# Multi-threaded xz splits the stream into blocks of the given size: the output depends on
# the block size, not on the number of threads, so it is the same on any build machine.
xz --threads=2 --block-size=64MiB -6 --keep --stdout "$img" > "$IMAGE_NAME.img.xz"
python3 "$REPO/image/tools/sbom.py" --root "$WORK/rootfs" --name "$IMAGE_NAME" --commit "$COMMIT" \
    --created "$(date -u -d "@$SOURCE_DATE_EPOCH" +%Y-%m-%dT%H:%M:%SZ)" --out "$IMAGE_NAME.spdx.json"
python3 "$REPO/image/tools/sbom.py" --root "$WORK/rootfs" --name "$IMAGE_NAME" --commit "$COMMIT" \
    --created "$(date -u -d "@$SOURCE_DATE_EPOCH" +%Y-%m-%dT%H:%M:%SZ)" --summary | sed 's/^/   /'
cp "$WORK/rootfs/usr/lib/vigil/build.json" "$IMAGE_NAME.build.json"
sha256sum "$IMAGE_NAME.img.xz" "$IMAGE_NAME.bmap" "$IMAGE_NAME.spdx.json" "$IMAGE_NAME.build.json" > SHA256SUMS
echo "   image: $(stat -c %s "$img") bytes ($(du -k "$img" | cut -f1) KiB allocated), xz: $(stat -c %s "$IMAGE_NAME.img.xz") bytes"
echo "   sha256 of the uncompressed image: $(sha256sum "$img" | cut -d' ' -f1)"
