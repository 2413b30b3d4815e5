#!/bin/bash
# The appliance in its own virtual environment, /opt/vigil/venv, on Debian's python3:
# offline from the wheels of step 10, hashes required for the pinned ones. Byte code is
# compiled now (the root is read-only on the box) with hash-based .pyc files
# (SOURCE_DATE_EPOCH makes py_compile choose them), so no build time is recorded.
set -euo pipefail
. "$REPO/image/steps/chroot.sh"
rm -rf "$root/tmp/vigil-wheels"
mkdir -p "$root/tmp/vigil-wheels"
cp "$WORK"/wheels/*.whl "$WORK/src/$PYTHON_LOCK" "$root/tmp/vigil-wheels/"
chroot "$root" python3 -m venv /opt/vigil/venv
# A clean environment: the build machine's PIP_* settings (indexes, certificates) are
# not the image's business.
pip=(chroot "$root" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LC_ALL=C.UTF-8
     SOURCE_DATE_EPOCH="$SOURCE_DATE_EPOCH" PYTHONHASHSEED=0
     /opt/vigil/venv/bin/python -m pip --disable-pip-version-check --no-cache-dir --quiet)
"${pip[@]}" install --no-index --no-deps --require-hashes --only-binary=:all: \
    --find-links /tmp/vigil-wheels -r "/tmp/vigil-wheels/$(basename "$PYTHON_LOCK")"
appliance=$(cd "$root/tmp/vigil-wheels" && ls vigil_nvr-*.whl)
"${pip[@]}" install --no-index --no-deps "/tmp/vigil-wheels/$appliance"
# pip is not needed on the box (updates replace the whole root): remove it.
"${pip[@]}" uninstall --yes pip
rm -rf "$root/tmp/vigil-wheels"
chroot "$root" /opt/vigil/venv/bin/nvr --help >/dev/null
