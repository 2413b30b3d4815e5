# Vigil NVR: A/B slot selection for U-Boot on QEMU's virt machine (the update test box).
# The Raspberry Pi boots through its firmware's tryboot instead (autoboot.txt).
#
# The boot state lives in uboot.env on this partition (p1, vigil-boot): BOOT_ORDER lists
# the slots in order of preference, BOOT_<slot>_LEFT how many more tries each may have.
# Every boot spends one try of the slot it picks; RAUC (`rauc status mark-good`, called
# by vigil-update once the box records) refills it, so a slot that keeps failing runs out
# of tries and the next slot boots. RAUC writes the same file with fw_setenv
# (/etc/fw_env.config), which is why the state is a U-Boot environment image.
# Source of boot.scr (image/steps/60-boot-partition.sh runs mkimage).
setenv vigil_env_size 0x4000
setenv BOOT_ORDER
setenv BOOT_A_LEFT
setenv BOOT_B_LEFT
setenv vigil_extra_args
if load virtio 0:1 ${loadaddr} uboot.env && env import -c ${loadaddr} ${vigil_env_size}; then
  echo "vigil: boot state: order ${BOOT_ORDER}, tries left A=${BOOT_A_LEFT} B=${BOOT_B_LEFT}"
else
  echo "vigil: boot state unreadable: starting from A B with 3 tries each"
fi
test -n "${BOOT_ORDER}" || setenv BOOT_ORDER "A B"
test -n "${BOOT_A_LEFT}" || setenv BOOT_A_LEFT 3
test -n "${BOOT_B_LEFT}" || setenv BOOT_B_LEFT 3
# Extra kernel arguments for diagnostics (the image test's console report), if present.
if load virtio 0:1 ${loadaddr} extra-args.txt; then env import -t ${loadaddr} ${filesize}; fi

setenv vigil_slot
for BOOT_SLOT in "${BOOT_ORDER}"; do
  if test -n "${vigil_slot}"; then
    true
  elif test "x${BOOT_SLOT}" = "xA"; then
    if test ${BOOT_A_LEFT} -gt 0; then
      setexpr BOOT_A_LEFT ${BOOT_A_LEFT} - 1
      setenv vigil_slot A
      setenv vigil_part 2
      setenv vigil_root vigil-root-a
    fi
  elif test "x${BOOT_SLOT}" = "xB"; then
    if test ${BOOT_B_LEFT} -gt 0; then
      setexpr BOOT_B_LEFT ${BOOT_B_LEFT} - 1
      setenv vigil_slot B
      setenv vigil_part 3
      setenv vigil_root vigil-root-b
    fi
  fi
done

if test -z "${vigil_slot}"; then
  echo "vigil: no slot has tries left: giving both 3 more and starting again"
  setenv BOOT_A_LEFT 3
  setenv BOOT_B_LEFT 3
fi
env export -c -s ${vigil_env_size} ${loadaddr} BOOT_ORDER BOOT_A_LEFT BOOT_B_LEFT
fatwrite virtio 0:1 ${loadaddr} uboot.env ${vigil_env_size}
test -n "${vigil_slot}" || reset

echo "vigil: booting slot ${vigil_slot} (${BOOT_A_LEFT}/${BOOT_B_LEFT} tries left)"
setenv vigil_kernel 0x40400000
setenv vigil_initrd 0x48000000
if load virtio 0:${vigil_part} ${vigil_kernel} vmlinuz && load virtio 0:${vigil_part} ${vigil_initrd} initrd.img; then
  setenv bootargs "console=ttyAMA0 root=PARTLABEL=${vigil_root} rauc.slot=${vigil_slot} rootfstype=squashfs ro rootwait net.ifnames=0 panic=10 ${vigil_extra_args}"
  booti ${vigil_kernel} ${vigil_initrd}:${filesize} ${fdtcontroladdr}
fi
echo "vigil: slot ${vigil_slot} did not start: no tries left for it"
setenv BOOT_${vigil_slot}_LEFT 0
env export -c -s ${vigil_env_size} ${loadaddr} BOOT_ORDER BOOT_A_LEFT BOOT_B_LEFT
fatwrite virtio 0:1 ${loadaddr} uboot.env ${vigil_env_size}
reset
