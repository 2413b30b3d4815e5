#!/bin/bash
# The FAT partitions, made as files with mtools (no loop mount), fixed volume ids and
# SOURCE_DATE_EPOCH times:
#  - boot.vfat, one slot's boot partition (p2 vigil-boot-a in the image; the same file is
#    the "boot" image of an update bundle): the Raspberry Pi firmware from Debian's
#    raspi-firmware, the kernel and initramfs from the root, the Pi 4 and Pi 5 device
#    trees from the kernel package, config.txt and cmdline.txt from image/boot/.
#  - select.vfat, p1 vigil-boot: the boot selection shared by both slots. autoboot.txt
#    for the Pi firmware's tryboot A/B switch; boot.scr and uboot.env for U-Boot on
#    QEMU's virt machine (docs/design/updates.md).
set -euo pipefail
root=$WORK/rootfs
export MTOOLS_SKIP_CHECK=1
kernel=$(ls "$root"/boot/vmlinuz-* | sort -V | tail -1)
kver=${kernel##*/vmlinuz-}

part=$WORK/boot.vfat
rm -f "$part"
mkfs.vfat -C --invariant -i "${SLOT_BOOT_VOLUME_ID#0x}" -n "$SLOT_BOOT_FS_LABEL" -F 32 "$part" $((SLOT_BOOT_SIZE * 1024)) >/dev/null
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

part=$WORK/select.vfat
rm -f "$part"
mkfs.vfat -C --invariant -i "${BOOT_VOLUME_ID#0x}" -n "$BOOT_FS_LABEL" -F 16 "$part" $((BOOT_SIZE * 1024)) >/dev/null
sel=$WORK/select
rm -rf "$sel" && mkdir -p "$sel"
cp "$WORK/src/image/boot/autoboot.txt" "$sel/autoboot.txt"
# mkimage stamps the script header with SOURCE_DATE_EPOCH (exported by image/build).
mkimage -A arm64 -O linux -T script -C none -n "Vigil NVR A/B boot" \
    -d "$WORK/src/image/boot/boot.cmd" "$sel/boot.scr" >/dev/null
mkenvimage -s 0x4000 -o "$sel/uboot.env" "$WORK/src/image/boot/uboot-env.txt"
touch --date="@$SOURCE_DATE_EPOCH" "$sel"/*
for file in autoboot.txt boot.scr uboot.env; do
    mcopy -m -o -i "$part" "$sel/$file" "::/$file"
done
mdir -i "$part" -b :: | sed 's#^::/#   #'
