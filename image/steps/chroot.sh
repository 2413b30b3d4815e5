# Sourced by the steps that run programs inside the new root: /proc, /sys and /dev of the
# build machine bound into it for the step's duration (pip and systemd's tools need them),
# unmounted on any exit. Not a numbered step itself.
root=$WORK/rootfs
unmount_api() {
    for dir in dev sys proc; do
        mountpoint -q "$root/$dir" && umount -l "$root/$dir"
    done
    return 0
}
trap unmount_api EXIT
mount -t proc proc "$root/proc"
mount -t sysfs sysfs "$root/sys"
mount --bind /dev "$root/dev"
