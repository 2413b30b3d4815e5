"""Prometheus metrics: the appliance's state, read at scrape time, as metric families.

Nothing here writes state. Each scrape reads what the other parts already keep: the
recorder's index (cameras, gaps, deletions), the data volume's free space and the
retention forecast, vigil-hwd's snapshots (disks, RAID, PoE), the licence store, the
recorder's processes and the running version. The web layer serves the result at
`/metrics` behind a scrape token or an allowed network (access.py). Design, names and
labels: docs/design/metrics.md.
"""
