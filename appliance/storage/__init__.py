"""Storage manager: where recordings go, retention, data disks, md RAID1 and SMART.

Modules: alerts (the change-to-alert type shared by the monitors), volume (the data
volume marker that keeps recordings off the boot media), retention (deletion policy and
forecast), disks (inventory and hotplug), initialise (partition, mkfs, RAID1 creation),
raid (mdstat/sysfs/mdadm state), smart (smartctl JSON health and trends), health (the
report behind `nvr health --json`).
"""
