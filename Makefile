# Vigil NVR: `make run` and `make test` set up everything they need on Debian 12.
SHELL := /bin/bash
SYSTEM_PYTHON ?= /usr/bin/python3
VENV := .venv
PY := $(VENV)/bin/python
VAR ?= var

# Debian packages: Python with venv; gst-rtsp-server (python3-gi) for the simulated
# cameras; ffmpeg for clip generation, ffprobe checks and the benchmark's reference.
# systemd provides systemd-analyze, which verifies the units in rootfs-overlay/.
# Storage: smartmontools (smartctl --json), mdadm, fdisk (sfdisk), e2fsprogs (mkfs, fsck),
# util-linux (blkid, findmnt, lsblk); libudev1 for pyudev; umockdev (with its GI typelib)
# fakes udev devices and hotplug events in tests; the prometheus procfs Go sources carry
# an Apache-2.0 corpus of real mdstat/sysfs samples that the RAID parser tests read.
# Cameras: iproute2 (ip) sets up the private network namespace the ipycam test runs in;
# libgl1, libglib2.0-0 and libxcb1 are what ipycam's opencv-python wheel links against.
# Web: chromium runs the page tests headless (tests/integration/web, DevTools protocol):
# Debian's build plays H.264/AAC in MSE, and no browser download is needed or possible.
# Fleet outputs: a real Prometheus server scrapes /metrics, a real mosquitto broker
# receives the MQTT events (tests/integration/test_prometheus_scrape.py, test_mqtt_events.py).
# Updates: RAUC checks real signed bundles (tests/integration/update), made with
# mksquashfs (squashfs-tools) and mkfs.vfat (dosfstools).
DEBS := python3 python3-venv python3-gi gir1.2-gst-rtsp-server-1.0 \
	gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad \
	ffmpeg sqlite3 ca-certificates systemd \
	smartmontools mdadm fdisk e2fsprogs util-linux libudev1 \
	umockdev gir1.2-umockdev-1.0 golang-github-prometheus-procfs-dev \
	iproute2 libgl1 libglib2.0-0 libxcb1 \
	chromium prometheus mosquitto mosquitto-clients \
	rauc squashfs-tools dosfstools

# The image (make image, image-verify): mmdebstrap builds Debian's arm64 root through
# qemu-user; squashfs, FAT (dosfstools, mtools), ext4, sfdisk and bmaptool assemble it.
# image/steps/00-prepare-build-machine.sh installs these too; u-boot-tools (mkimage,
# mkenvimage) makes the A/B boot script and its environment, rauc the update bundle. The
# boot test (make image-test) adds QEMU's arm64 system emulator and qemu-img, U-Boot for
# QEMU's virt machine (its firmware: the A/B boot selection runs in it); socat relays the
# test's camera into the guest.
IMAGE_DEBS := mmdebstrap qemu-user-static binfmt-support arch-test squashfs-tools \
	dosfstools mtools fdisk e2fsprogs bmap-tools xz-utils u-boot-tools rauc
IMAGE_TEST_DEBS := qemu-system-arm qemu-utils mtools socat u-boot-qemu

.PHONY: all setup system-packages run test soak bench clean distclean image image-verify image-test \
	image-test-storage bundle image-soak

all: test

system-packages:
	@scripts/ensure-system-packages $(DEBS)

$(VENV)/.installed: pyproject.toml | system-packages
	test -x $(PY) || $(SYSTEM_PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@

setup: system-packages $(VENV)/.installed

run: setup
	$(VENV)/bin/nvr run --var $(VAR)

# Workers for `make test` (pytest-xdist; `worksteal` balances the long integration tests).
# PYTEST_WORKERS=0 runs it in one process.
PYTEST_WORKERS ?= 3

test: setup
	$(PY) -m pytest tests -q -n $(PYTEST_WORKERS) --dist worksteal

soak: setup
	$(PY) -m pytest tests -q -m soak -p no:cacheprovider

bench: setup
	$(PY) bench/recorder_bench.py --streams 16 --out bench/results.json
	$(PY) bench/timeline_bench.py --out bench/timeline-results.json
	$(PY) bench/playback_bench.py --out bench/playback-results.json

image: setup
	@scripts/ensure-system-packages $(IMAGE_DEBS)
	image/build --reuse

# A signed RAUC update bundle of the built image (image/bundle): with the DEVELOPMENT key
# unless VIGIL_SIGNING_CERT and VIGIL_SIGNING_KEY name a release key (README, Updates).
bundle: image
	@scripts/ensure-system-packages $(IMAGE_DEBS)
	image/bundle

image-verify: setup
	@scripts/ensure-system-packages $(IMAGE_DEBS)
	image/verify

image-test: image
	@scripts/ensure-system-packages $(IMAGE_TEST_DEBS) $(IMAGE_DEBS)
	$(PY) -m pytest tests/image -q -m "image and not image_storage and not image_soak" -p no:cacheprovider

# Power cuts at random moments of installs and trial boots, 100 of them (hours).
image-soak: image
	@scripts/ensure-system-packages $(IMAGE_TEST_DEBS) $(IMAGE_DEBS)
	$(PY) -m pytest tests/image -q -m image_soak -p no:cacheprovider

# The image's storage on a real kernel: two virtual disks made a RAID1 mirror, and a USB
# data disk pulled out while recording and plugged back (about 6 min).
image-test-storage: image
	@scripts/ensure-system-packages $(IMAGE_TEST_DEBS)
	$(PY) -m pytest tests/image -q -m image_storage -p no:cacheprovider

clean:
	rm -rf $(VAR)/data .pytest_cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV) $(VAR) image/work image/out image/work.verify image/out.verify
