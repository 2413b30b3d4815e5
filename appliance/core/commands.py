"""Running system tools (mdadm, smartctl, e2fsck, mount, ...): one runner for all.

Never raises for a failing, missing or hanging command: the caller gets an exit code it
can explain. The C locale keeps the tools' output parseable. Tests and simulators pass
their own runner with the same signature.
"""

from __future__ import annotations

import logging
import os
import shlex
import subprocess
from dataclasses import dataclass
from typing import Protocol, Sequence

log = logging.getLogger(__name__)

TIMED_OUT = -9
NOT_FOUND = 127
NOT_RUNNABLE = 126


@dataclass(frozen=True)
class CommandResult:
    returncode: int
    stdout: str
    stderr: str

    def tail(self, lines: int = 3) -> str:
        """The last lines of stderr (or stdout), for an error message."""
        text = (self.stderr.strip() or self.stdout.strip()).splitlines()
        return " / ".join(text[-lines:])


class Runner(Protocol):
    def __call__(self, argv: Sequence[str], *, timeout: float,
                 input: str | None = None) -> CommandResult:
        """Run argv to completion; never raises for a failing or missing command."""


def run_command(argv: Sequence[str], *, timeout: float = 60.0,
                input: str | None = None) -> CommandResult:
    """The real runner: a subprocess in the C locale, killed after `timeout` seconds."""
    log.debug("run argv=%s", shlex.join(argv))
    env = dict(os.environ, LC_ALL="C")
    stdin = None if input is not None else subprocess.DEVNULL
    try:
        proc = subprocess.run(list(argv), input=input, stdin=stdin, capture_output=True,
                              encoding="utf-8", errors="replace", timeout=timeout, env=env,
                              check=False)
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout.decode(errors="replace") if isinstance(exc.stdout, bytes) else ""
        return CommandResult(TIMED_OUT, out, f"{argv[0]} timed out after {timeout:g} s")
    except FileNotFoundError:
        return CommandResult(NOT_FOUND, "", f"{argv[0]}: command not found")
    except OSError as exc:
        return CommandResult(NOT_RUNNABLE, "", f"{argv[0]}: {exc.strerror}")
    if proc.returncode != 0:
        log.info("exit argv0=%s code=%d stderr=%r", argv[0], proc.returncode,
                 proc.stderr.strip()[-300:])
    return CommandResult(proc.returncode, proc.stdout, proc.stderr)


def output_of(argv: Sequence[str], timeout: float = 10.0) -> tuple[int, str]:
    """(exit code, stdout) for parsers that only read stdout; -1 when it timed out."""
    result = run_command(argv, timeout=timeout)
    return (-1 if result.returncode == TIMED_OUT else result.returncode), result.stdout
