#!/bin/bash
# Nothing in the root may carry the build's own time: every file, directory and link
# newer than the commit is given the commit's time (SOURCE_DATE_EPOCH). Package files
# already carry their package's time; this catches what the build made.
set -euo pipefail
find "$WORK/rootfs" -xdev -newermt "@$SOURCE_DATE_EPOCH" -print0 |
    xargs -0r touch --no-dereference --date="@$SOURCE_DATE_EPOCH"
