"""vigil-hwd's PoE commands: what the web UI (and `nvr`) may ask the PoE manager to do.

The web server does not run the PSE chips: vigil-hwd does (as root, on the I2C bus). The
web layer sends these commands over hwd's control socket (appliance/core/control.py):

    poe.status                                  the manager's snapshot (as poe.json)
    poe.power_cycle   {port, reason}            off for `cycle_off_seconds`, then on again
    poe.set_enabled   {port, enabled}           switch a port's power on or off
    poe.set_priority  {port, priority}          critical, high or low (budget shedding)

`port` is the port number (an integer) or its label from the board profile ("Port 3").
Arguments are checked strictly: a string where a number belongs, a boolean as a port,
an unknown argument are refused (InvalidConfig), never guessed at.

A power cycle goes through `PoeManager.request_power_cycle`, the same gate as stall
recovery: the port must be enabled and powering a device, not already cycling, and
within `poe.max_cycles_per_hour` (every cycle stresses the camera the same, whoever
asked). A refusal is raised as FailedPrecondition with the manager's reason.

Port enable and priority changes are written to the owner's port choices first
(poe-ports.json, appliance/poe/port_choices.py), then act on the running manager: they
outlast a restart of vigil-hwd and a reboot. When they cannot be written, nothing
changes and the error says why.
"""

from __future__ import annotations

import logging
from typing import Any, Callable

from appliance.core.errors import FailedPrecondition, InvalidConfig, Unavailable
from appliance.poe.budget import PRIORITIES
from appliance.poe.manager import PoeManager
from appliance.poe.port_choices import PortChoices

log = logging.getLogger(__name__)

MAX_REASON = 200
MAX_LABEL = 64


def control_handlers(manager: PoeManager, choices: PortChoices | None = None
                     ) -> dict[str, Callable[[dict], dict]]:
    """The PoE commands for a ControlServer (vigil-hwd adds them to its own); `choices`
    keeps enable and priority changes across restarts (None: they last until then)."""
    return {
        "poe.status": lambda args: _status(manager, args),
        "poe.power_cycle": lambda args: _power_cycle(manager, args),
        "poe.set_enabled": lambda args: _set_enabled(manager, args, choices),
        "poe.set_priority": lambda args: _set_priority(manager, args, choices),
    }


def _remember(manager: PoeManager, choices: PortChoices | None, number: int,
              change: dict[str, Any]) -> None:
    if choices is None:
        return
    label = manager.ports[number - 1].label
    try:
        choices.remember(label, change)
    except OSError as exc:
        raise Unavailable(f"{label} was not changed: its setting cannot be saved "
                          f"({exc.strerror or exc})") from None


def _only(args: dict[str, Any], command: str, required: tuple[str, ...],
          optional: tuple[str, ...] = ()) -> None:
    unknown = sorted(set(args) - set(required) - set(optional))
    if unknown:
        raise InvalidConfig(f"{command}: unknown argument(s) {', '.join(map(repr, unknown))}")
    missing = [name for name in required if name not in args]
    if missing:
        raise InvalidConfig(f"{command}: give {', '.join(missing)}")


def port_number(manager: PoeManager, port: Any) -> int:
    """A port given by number (int) or label (str, case-insensitive) -> its number."""
    count = len(manager.ports)
    if isinstance(port, bool) or not isinstance(port, (int, str)):
        raise InvalidConfig(f"port: give the port number (1-{count}) or its label")
    if isinstance(port, int):
        if not 1 <= port <= count:
            raise InvalidConfig(f"no PoE port {port} (ports 1-{count})")
        return port
    wanted = port.strip().lower()
    if not wanted or len(port) > MAX_LABEL:
        raise InvalidConfig("port: give the port number or its label")
    for rec in manager.ports:
        if rec.label.lower() == wanted:
            return rec.number
    labels = ", ".join(rec.label for rec in manager.ports)
    shown = port[:MAX_LABEL].encode("ascii", "backslashreplace").decode()
    raise InvalidConfig(f"no PoE port labelled {shown!r} (ports: {labels})")


def _port_json(manager: PoeManager, number: int) -> dict[str, Any]:
    return manager.snapshot().to_json()["ports"][number - 1]


def _status(manager: PoeManager, args: dict[str, Any]) -> dict[str, Any]:
    _only(args, "poe.status", ())
    return manager.snapshot().to_json()


def _power_cycle(manager: PoeManager, args: dict[str, Any]) -> dict[str, Any]:
    _only(args, "poe.power_cycle", ("port",), ("reason",))
    number = port_number(manager, args["port"])
    reason = args.get("reason", "requested")
    if not isinstance(reason, str) or not reason.strip() or len(reason) > MAX_REASON \
            or any(ord(ch) < 32 or ord(ch) == 127 for ch in reason):
        raise InvalidConfig(f"reason: one line of text, at most {MAX_REASON} characters")
    decision = manager.request_power_cycle(number, reason.strip())
    if not decision.allowed:
        raise FailedPrecondition(decision.reason)
    off_s = manager.settings.cycle_off_seconds
    log.info("poe port=%d power cycle by command: %s", number, reason)
    return {**decision.to_json(), "off_seconds": off_s,
            "port_label": manager.ports[number - 1].label, "state": _port_json(manager, number)}


def _set_enabled(manager: PoeManager, args: dict[str, Any],
                 choices: PortChoices | None) -> dict[str, Any]:
    _only(args, "poe.set_enabled", ("port", "enabled"))
    number = port_number(manager, args["port"])
    if not isinstance(args["enabled"], bool):
        raise InvalidConfig("enabled: true or false")
    _remember(manager, choices, number, {"enabled": args["enabled"]})
    manager.set_enabled(number, args["enabled"])
    return _port_json(manager, number)


def _set_priority(manager: PoeManager, args: dict[str, Any],
                  choices: PortChoices | None) -> dict[str, Any]:
    _only(args, "poe.set_priority", ("port", "priority"))
    number = port_number(manager, args["port"])
    if not isinstance(args["priority"], str) or args["priority"] not in PRIORITIES:
        raise InvalidConfig(f"priority: one of {', '.join(PRIORITIES)}")
    _remember(manager, choices, number, {"priority": args["priority"]})
    manager.set_priority(number, args["priority"])
    return _port_json(manager, number)
