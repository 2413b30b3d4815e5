#!/bin/bash
# p4, persist: an empty ext4 file system (the box fills it at first boot: settings, keys,
# licence, users). Fixed UUID and hash seed; mke2fs takes its time from E2FSPROGS_FAKE_TIME
# (it ignores SOURCE_DATE_EPOCH), so the same options give the same bytes.
set -euo pipefail
part=$WORK/persist.ext4
rm -f "$part"
E2FSPROGS_FAKE_TIME=$SOURCE_DATE_EPOCH mkfs.ext4 -q -F -L "$PERSIST_NAME" -U "$PERSIST_FS_UUID" \
    -E "hash_seed=$PERSIST_HASH_SEED,root_owner=0:0" -m 0 "$part" "${PERSIST_SIZE}M"
