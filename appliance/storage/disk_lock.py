"""Hold udev off whole disks while they are rewritten (systemd's block device locking).

systemd-udevd takes a shared BSD lock (`flock`) on a whole disk before it probes the disk
or one of its partitions, and before it re-reads the partition table after a tool closed
the disk it had opened for writing; when the lock is taken it leaves the disk alone and
comes back later. Without the lock, a late re-read can drop and re-add a partition that
`mdadm --create` has just put into an array, and md fails that member a moment later
(seen booting the image: a new mirror came up degraded [2/1] with no I/O error).

`DiskLocks` takes an exclusive lock on each node, in a fixed order, waiting a bounded
time for udev to finish what it is doing; `release` (or leaving the `with` block) lets
udev see everything that changed.
"""

from __future__ import annotations

import fcntl
import os
from typing import Sequence

from appliance.core.clock import Clock, RealClock
from appliance.core.errors import FailedPrecondition

LOCK_WAIT_SECONDS = 30.0
POLL_SECONDS = 0.05


class DiskLocks:
    """Exclusive BSD locks on whole-disk nodes, held until `release`."""

    def __init__(self, nodes: Sequence[str], timeout: float = LOCK_WAIT_SECONDS,
                 clock: Clock | None = None) -> None:
        self.nodes = tuple(sorted(set(nodes)))   # one order everywhere: no lock cycles
        self._fds: list[int] = []
        clock = clock or RealClock()
        try:
            for node in self.nodes:
                self._fds.append(_locked(node, timeout, clock))
        except BaseException:
            self.release()
            raise

    @property
    def held(self) -> bool:
        return bool(self._fds)

    def release(self) -> None:
        while self._fds:
            os.close(self._fds.pop())       # closing drops the lock

    def __enter__(self) -> "DiskLocks":
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _locked(node: str, timeout: float, clock: Clock) -> int:
    # Read-only: closing it later is not a write, so it does not itself wake udev's watch.
    try:
        fd = os.open(node, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK | os.O_NOCTTY)
    except OSError as e:
        raise FailedPrecondition(f"cannot open {node} to lock it: {e.strerror}") from None
    deadline = clock.monotonic() + timeout
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return fd
        except BlockingIOError:
            if clock.monotonic() >= deadline:
                os.close(fd)
                raise FailedPrecondition(
                    f"{node} stayed locked by another program (udev or a disk tool) for "
                    f"{timeout:g} s; try again when it is idle") from None
            clock.sleep(POLL_SECONDS)
        except OSError as e:
            os.close(fd)
            raise FailedPrecondition(f"cannot lock {node}: {e.strerror}") from None
