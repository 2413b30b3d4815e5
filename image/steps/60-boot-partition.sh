#!/bin/bash
# p1, the boot partition (FAT32): the Raspberry Pi firmware from Debian's raspi-firmware,
# the kernel and initramfs from the root, the Pi 4 and Pi 5 device trees from the kernel
# package, config.txt and cmdline.txt from image/boot/. Made as a file with mtools (no
# loop mount), a fixed volume id and SOURCE_DATE_EPOCH times.
set -euo pipefail
root=$WORK/rootfs
part=$WORK/boot.vfat
export MTOOLS_SKIP_CHECK=1
kernel=$(ls "$root"/boot/vmlinuz-* | sort -V | tail -1)
kver=${kernel##*/vmlinuz-}
rm -f "$part"
mkfs.vfat -C --invariant -i "${BOOT_VOLUME_ID#0x}" -n "$BOOT_FS_LABEL" -F 32 "$part" $((BOOT_SIZE * 1024)) >/dev/null
copy() { mcopy -m -o -i "$part" "$@"; }
for file in $(cd "$root/usr/lib/raspi-firmware" && ls | sort); do
    [ -f "$root/usr/lib/raspi-firmware/$file" ] && copy "$root/usr/lib/raspi-firmware/$file" "::/$file"
done
if [ -d "$root/usr/lib/raspi-firmware/overlays" ]; then
    mmd -i "$part" ::/overlays
    for file in $(cd "$root/usr/lib/raspi-firmware/overlays" && ls | sort); do
        copy "$root/usr/lib/raspi-firmware/overlays/$file" "::/overlays/$file"
    done
fi
for dtb in $(cd "$root/usr/lib/linux-image-$kver/broadcom" && ls bcm2711-rpi-*.dtb bcm2712-rpi-*.dtb 2>/dev/null | sort); do
    copy "$root/usr/lib/linux-image-$kver/broadcom/$dtb" "::/$dtb"
done
copy "$kernel" ::/vmlinuz
copy "$root/boot/initrd.img-$kver" ::/initrd.img
copy "$WORK/src/image/boot/config.txt" ::/config.txt
copy "$WORK/src/image/boot/cmdline.txt" ::/cmdline.txt
echo "$VERSION $COMMIT" > "$WORK/VERSION.txt"
touch --date="@$SOURCE_DATE_EPOCH" "$WORK/VERSION.txt"
copy "$WORK/VERSION.txt" ::/vigil-version.txt
mdir -i "$part" -b :: | sed 's#^::/#   #'
