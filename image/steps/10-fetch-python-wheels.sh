#!/bin/bash
# The appliance's Python packages for the image: the pinned aarch64 wheels of the lock file
# (sha256 checked by pip), and a wheel of the appliance built from the source: the commit
# (git archive), or for a development build (COMMIT ends in -dirty) the working tree's
# tracked and new files, never ignored ones (.venv, var/, image/work).
set -euo pipefail
cd "$REPO"
rm -rf "$WORK/wheels" "$WORK/src"
mkdir -p "$WORK/wheels" "$WORK/src"
case "$COMMIT" in
    *-dirty) git ls-files -z --cached --others --exclude-standard |
                 tar --null --files-from=- --ignore-failed-read --create 2>/dev/null | tar -x -C "$WORK/src" ;;
    *) git archive --format=tar "$COMMIT" | tar -x -C "$WORK/src" ;;
esac
# Checkouts differ in file times; the image must not.
find "$WORK/src" -exec touch --no-dereference --date="@$SOURCE_DATE_EPOCH" {} +
PIP=(python3 -m pip)
[ -x "$REPO/.venv/bin/python" ] && PIP=("$REPO/.venv/bin/python" -m pip)
"${PIP[@]}" download --quiet --no-deps --require-hashes --only-binary=:all: \
    --platform manylinux_2_34_aarch64 --platform manylinux_2_28_aarch64 \
    --platform manylinux2014_aarch64 --platform linux_aarch64 \
    --python-version "${PYTHON_TAG#cp}" --implementation cp \
    --dest "$WORK/wheels" -r "$WORK/src/$PYTHON_LOCK" 2>&1 | { grep -v "^WARNING: Location" || true; }
"${PIP[@]}" wheel --quiet --no-deps -w "$WORK/wheels" "$WORK/src" 2>&1 | { grep -v "^WARNING: Location" || true; }
ls "$WORK/wheels"
