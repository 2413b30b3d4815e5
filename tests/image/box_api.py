"""Talking to a booted image: over HTTPS with its own certificate, through the same API the
setup wizard uses, and reading its console reports."""

from __future__ import annotations

import ssl

from tests.integration.web_session import ApiClient
from tests.waiting import wait_until

VIGIL_UNITS = ("vigil-persist", "vigil-system-apply", "vigil-firstboot", "vigil-hwd",
               "vigil-recorder", "vigil-web", "vigil-mqtt")


def insecure_context() -> ssl.SSLContext:
    """The box's certificate is its own, self-signed: the test pins nothing, a browser warns."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def all_units_active(report) -> bool:
    """Every vigil unit active; vigil-firstboot only runs while the device key is missing
    (the first boot), so after that it stays inactive (its condition fails)."""
    return all(report.units.get(unit) == "active" or
               (unit == "vigil-firstboot" and report.units.get(unit) == "inactive"
                and report.units.get("vigil-web") == "active")
               for unit in VIGIL_UNITS)


def exposed_listeners(report) -> list[tuple[str, str]]:
    """Sockets that listen on anything but loopback, except the DHCP client's port 68."""
    exposed = []
    for proto, address in report.listening:
        host, _, port = address.rpartition(":")
        if host.strip("[]").split("%")[0] in ("127.0.0.1", "127.0.0.53", "127.0.0.54", "::1"):
            continue
        if proto == "udp" and port == "68":
            continue
        exposed.append((proto, address))
    return exposed


def initialise_data_disk(api: ApiClient, disks: list[str], mode: str) -> dict:
    """Through the API as the wizard does it: the plan, its token, the job to its end."""
    status, listing = api.json("GET", "/api/v1/storage/disks")
    assert status == 200, listing
    roles = {d.get("device"): d.get("role") for d in listing["disks"]}
    assert roles.get("/dev/vda") == "boot" and all(roles.get(d) == "free" for d in disks), listing
    status, plan = api.json("POST", "/api/v1/storage/disks/initialise",
                            {"disks": disks, "mode": mode})
    assert status == 200 and plan.get("token"), plan
    status, started = api.json("POST", "/api/v1/storage/disks/initialise",
                               {"disks": disks, "mode": mode, "token": plan["token"]})
    assert status == 202, started
    job = started["job"]

    def finished():
        _, state = api.json("GET", f"/api/v1/storage/jobs/{job['id']}")
        return state if state.get("done") else None

    state = wait_until(finished, 300, "the data disk initialise job", step=2)
    assert not state["error"], state
    return state




def upload_bundle(api: ApiClient, bundle) -> tuple[int, dict]:
    """POST the bundle file as the raw body, as the Update page does (streamed)."""
    import json
    import urllib.error
    import urllib.request

    size = bundle.stat().st_size
    with open(bundle, "rb") as body:
        request = urllib.request.Request(
            api.base + "/api/v1/update/bundle", data=body, method="POST",
            headers={"Content-Type": "application/octet-stream", "Content-Length": str(size),
                     "X-CSRF-Token": api.csrf})
        try:
            with api.opener.open(request, timeout=600) as response:
                return response.status, json.loads(response.read() or b"{}")
        except urllib.error.HTTPError as err:
            return err.code, json.loads(err.read() or b"{}")


def install_job(api: ApiClient, until_percent: int | None = None, timeout: float = 1800) -> dict:
    """The update install job, polled until it is done (or has reached `until_percent`)."""
    def state():
        status, answer = api.json("GET", "/api/v1/update/job")
        job = answer.get("job") if status == 200 else None
        if job and (job["done"] or (until_percent is not None and job["percent"] >= until_percent)):
            return job
        return None

    return wait_until(state, timeout, "the update install job", step=1)
