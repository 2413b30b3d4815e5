"""PoE auto-adoption on the simulated board: the camera that appears after a port powers
up is linked to that port and added as "Port N"; ambiguity is never guessed; refusals
are alerts. A real CameraRegistry in tmp_path; the neighbour table is in memory and the
ONVIF onboarding is a fake (these tests are about attribution; tests/integration/poe/
runs the real onboarding)."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import pytest

from appliance.cameras.credentials import Credentials, CredentialStore
from appliance.cameras.onvif import (AddressPolicy, AuthFailed, CameraUnreachable,
                                     DiscoveredDevice, OnboardedCamera, OnvifStream, XAddr)
from appliance.cameras.registry import Camera, CameraRegistry, StreamInfo
from appliance.config.cameras import build_camera_settings
from appliance.core.errors import InvalidConfig
from appliance.poe import build_poe_settings
from appliance.poe.adoption import (DEFAULT_CREDENTIALS_ID, AdoptionService, PortAdopter,
                                    build_adoption_settings, default_credentials,
                                    set_default_credentials, split_adoption_settings)
from appliance.poe.neighbours import Lease, MemoryNeighbours
from poe_rig import keys, make_rig
from tests.waiting import wait_until

NET = "10.77.0.0/24"
CREDS = Credentials("admin", "s3cret")


def onboarded(ip: str, serial: str = "SN-0001", mac: str | None = None,
              endpoint: str | None = None, kbps: int = 4000) -> OnboardedCamera:
    def stream(name: str, width: int, rate: int) -> OnvifStream:
        return OnvifStream(f"rtsp://{ip}:554/{name}", "h264", width, width * 9 // 16, 25.0,
                           rate, name, name)
    return OnboardedCamera(f"http://{ip}/onvif/device_service", endpoint, "Acme", "C-1",
                           "1.0", serial, "hw1", mac, stream("main", 1920, kbps),
                           stream("sub", 640, 512), None, "media", 0.0)


class FakeOnboard:
    """Answers by host: an OnboardedCamera, an exception, or a list of them in turn."""

    def __init__(self) -> None:
        self.by_host: dict[str, object] = {}
        self.calls: list[tuple[str, Credentials | None, dict]] = []

    def __call__(self, xaddr, credentials, policy, **kwargs):
        self.calls.append((xaddr, credentials, kwargs))
        answer = self.by_host[urlsplit(xaddr).hostname]
        if isinstance(answer, list):
            answer = answer.pop(0) if len(answer) > 1 else answer[0]
        if isinstance(answer, Exception):
            raise answer
        return answer


@dataclass
class Setup:
    rig: object
    registry: CameraRegistry
    net: MemoryNeighbours
    adopter: PortAdopter
    onboard: FakeOnboard
    creds: list = field(default_factory=lambda: [CREDS])
    alerts: list = field(default_factory=list)
    confirms: list = field(default_factory=list)     # (camera id, xaddr) identity checks
    refuse_identity: list = field(default_factory=list)   # a reason: the check says no

    def plug(self, *ports: int) -> None:
        for port in ports:
            self.rig.bus.plug(port, pd_class=3, load_w=6.0)
        self.rig.settle(3)   # detected, classified, powered: the windows open

    def unplug(self, *ports: int) -> None:
        for port in ports:
            self.rig.bus.unplug(port)
        self.rig.settle(2)

    def after(self, seconds: float) -> list:
        """Let time pass (the PoE manager polling), then one adoption step."""
        if seconds >= 1:
            self.rig.poll(1.0, int(seconds))
        else:
            self.rig.clock.advance(seconds)
        return self.adopter.step()

    def cameras(self) -> dict[str, Camera]:
        return {c.id: c for c in self.registry.cameras()}


def make(tmp_path, *, limit=None, camera_settings=None, with_creds=True, present=None,
         **settings) -> Setup:
    rig = make_rig()
    registry = CameraRegistry(tmp_path / "config" / "cameras.json",
                              CredentialStore(tmp_path / "secrets"),
                              build_camera_settings(camera_settings or {}),
                              channel_limit=(lambda: limit) if limit is not None else None)
    net = MemoryNeighbours()
    for ip, mac in (present or {}).items():
        net.add(ip, mac)
    fake = FakeOnboard()
    holder = [CREDS if with_creds else None]
    s = Setup(rig, registry, net, None, fake, holder)   # type: ignore[arg-type]

    def confirm(cam, xaddr):
        s.confirms.append((cam.id, xaddr))
        return s.refuse_identity[0] if s.refuse_identity else None
    s.adopter = PortAdopter(registry, AddressPolicy([NET]),
                            settings=build_adoption_settings(settings), clock=rig.clock,
                            neighbours=net, onboarder=fake, credentials=lambda: holder[0],
                            confirm=confirm, alert_sink=s.alerts.extend)
    rig.manager.add_power_listener(s.adopter.on_power_change)
    s.adopter.step()   # the baseline: what is on the camera network now
    return s


def registered(cid: str, host: str, mac: str = "", port: str = "", serial: str = "") -> Camera:
    return Camera(cid, cid.title(), host, StreamInfo(f"rtsp://{host}:554/main", "h264",
                                                     1920, 1080, 25, 4000),
                  StreamInfo(f"rtsp://{host}:554/sub", "h264", 640, 360, 10, 500),
                  xaddr=f"http://{host}/onvif/device_service", manufacturer="Acme",
                  model="C-1", serial=serial or f"SN-{cid}", mac=mac, poe_port=port)


# --- the plug-and-play path --------------------------------------------------------------

def test_a_camera_plugged_into_port_3_is_added_as_port3_and_linked(tmp_path):
    s = make(tmp_path)
    s.onboard.by_host["10.77.0.23"] = onboarded("10.77.0.23", mac="BC-AD-28-0A-1B-2C")
    s.plug(3)
    assert s.adopter.step() == []   # powered: a window, nothing seen yet
    assert [w["label"] for w in s.adopter.snapshot()["windows"]] == ["Port 3"]
    s.net.add("10.77.0.23", "bc:ad:28:0a:1b:2c")   # it booted and did DHCP: 5 s later
    alerts = s.after(5)
    cam = s.cameras()["port3"]
    assert (cam.label, cam.poe_port, cam.host) == ("Port 3", "Port 3", "10.77.0.23")
    assert (cam.manufacturer, cam.model, cam.serial) == ("Acme", "C-1", "SN-0001")
    assert cam.mac == "BC-AD-28-0A-1B-2C"
    assert s.registry.credentials.get("port3") == CREDS
    [(xaddr, creds, kwargs)] = s.onboard.calls
    assert xaddr == "http://10.77.0.23/onvif/device_service" and creds == CREDS
    assert kwargs["deadline_s"] == 20.0
    assert keys(alerts) == ["adoption:Port 3:adopted"]
    assert "camera port3" in alerts[0].message and alerts[0].severity == "info"
    assert [o.kind for o in s.adopter.recent] == ["adopted"]
    assert s.adopter.snapshot()["windows"] == []   # the window is used up


def test_a_known_camera_moved_to_another_port_is_relinked_not_duplicated(tmp_path):
    s = make(tmp_path)
    s.registry.add(registered("door", "10.77.0.21", mac="aa:bb:cc:00:00:21", port="Port 1"))
    s.plug(1)
    s.net.add("10.77.0.21", "aa:bb:cc:00:00:21")
    s.after(40)                      # Port 1's camera: known, on its own port
    assert s.cameras()["door"].poe_port == "Port 1"
    s.unplug(1)                      # moved: Port 1 loses power, the recorder's ARP fails
    s.net.fail("10.77.0.21")
    s.after(2)
    s.plug(5)
    s.net.remove("10.77.0.21")
    s.net.add("10.77.0.35", "aa:bb:cc:00:00:21")   # DHCP gave it another address
    alerts = s.after(30)
    cams = s.cameras()
    assert list(cams) == ["door"], "re-linked, never a second entry"
    assert cams["door"].poe_port == "Port 5"
    assert cams["door"].host == "10.77.0.35"
    assert cams["door"].main.uri == "rtsp://10.77.0.35:554/main"
    assert s.onboard.calls == []
    # moved only after the device there proved (with door's own login) it is door
    assert s.confirms == [("door", "http://10.77.0.35/onvif/device_service")]
    assert keys(alerts) == ["adoption:Port 5:linked"]
    assert "was on Port 1" in alerts[0].message


def test_a_device_claiming_a_known_cameras_mac_elsewhere_must_prove_it(tmp_path):
    s = make(tmp_path)
    s.registry.add(registered("door", "10.77.0.21", mac="aa:bb:cc:00:00:21", port="Port 1"))
    s.plug(1)
    s.net.add("10.77.0.21", "aa:bb:cc:00:00:21")
    s.after(40)
    s.unplug(1)
    s.net.remove("10.77.0.21")
    s.after(30)
    s.refuse_identity.append("the device at 10.77.0.66 refused this camera's stored "
                             "credentials")
    s.plug(5)
    s.net.add("10.77.0.66", "aa:bb:cc:00:00:21")   # a spoofed MAC on another address
    alerts = s.after(30)
    door = s.cameras()["door"]
    assert (door.host, door.poe_port) == ("10.77.0.21", "Port 1"), "neither moved nor linked"
    assert keys(alerts) == ["adoption:Port 5:held"]
    assert "refused this camera's stored credentials" in alerts[0].message
    assert s.onboard.calls == []


def test_two_ports_powering_up_together_with_two_devices_are_not_guessed(tmp_path):
    s = make(tmp_path)
    for ip in ("10.77.0.30", "10.77.0.31"):
        s.onboard.by_host[ip] = onboarded(ip, serial=ip)
    s.plug(2, 3)
    s.net.add("10.77.0.30", "02:00:00:00:00:30")
    s.net.add("10.77.0.31", "02:00:00:00:00:31")
    alerts = s.after(30)
    assert s.cameras() == {} and s.onboard.calls == []
    assert keys(alerts) == ["adoption:ambiguous:Port 2+Port 3"]
    assert alerts[0].severity == "warning" and "one at a time" in alerts[0].message
    sugs = s.adopter.suggestions()
    assert sorted(x.ip for x in sugs) == ["10.77.0.30", "10.77.0.31"]
    assert all(x.ports == ("Port 2", "Port 3") and x.port == "" for x in sugs)
    # the windows are spent: a third device later is not given to either port
    s.net.add("10.77.0.32", "02:00:00:00:00:32")
    assert s.after(10) == [] and s.cameras() == {}


def test_one_device_for_two_ports_waits_then_says_it_cannot_tell(tmp_path):
    s = make(tmp_path)
    s.plug(2, 3)
    s.net.add("10.77.0.30", "02:00:00:00:00:30")
    assert s.after(30) == []          # Port 3's camera may still come: wait
    assert s.adopter.snapshot()["waiting"] == 1
    alerts = s.after(100)              # both windows closed, nothing else appeared
    assert keys(alerts) == ["adoption:ambiguous:Port 2+Port 3"]
    assert s.cameras() == {} and s.onboard.calls == []


def test_clear_time_order_links_each_device_to_its_port(tmp_path):
    s = make(tmp_path)
    for ip in ("10.77.0.30", "10.77.0.31"):
        s.onboard.by_host[ip] = onboarded(ip, serial=ip)
    s.plug(3)
    s.after(20)
    s.plug(5)                          # Port 5 powers up 23 s after Port 3
    s.net.add("10.77.0.30", "02:00:00:00:00:30")   # 1 s later: too soon to be Port 5's
    s.after(1)
    s.net.add("10.77.0.31", "02:00:00:00:00:31")
    s.after(30)
    cams = s.cameras()
    assert (cams["port3"].host, cams["port3"].poe_port) == ("10.77.0.30", "Port 3")
    assert (cams["port5"].host, cams["port5"].poe_port) == ("10.77.0.31", "Port 5")


def test_a_known_camera_coming_back_on_its_own_port_makes_the_other_port_clear(tmp_path):
    """After a power cut every port powers up at once: cameras already linked take their
    own ports back (MAC first), and the new camera is the one left over."""
    s = make(tmp_path)
    s.registry.add(registered("door", "10.77.0.21", mac="aa:bb:cc:00:00:21", port="Port 5"))
    s.onboard.by_host["10.77.0.30"] = onboarded("10.77.0.30")
    s.plug(3, 5)
    s.net.add("10.77.0.30", "02:00:00:00:00:30")   # the new camera boots first
    assert s.after(20) == []
    s.net.add("10.77.0.21", "aa:bb:cc:00:00:21")   # then the known one, on Port 5
    alerts = s.after(10)
    cams = s.cameras()
    assert cams["port3"].poe_port == "Port 3" and cams["door"].poe_port == "Port 5"
    assert keys(alerts) == ["adoption:Port 3:adopted"]


def test_a_device_appearing_outside_any_window_is_only_a_suggestion(tmp_path):
    s = make(tmp_path)
    s.net.add("10.77.0.40", "02:00:00:00:00:40")   # nothing powered up
    assert s.after(5) == []
    s.plug(4)
    s.after(130)                                   # Port 4's window closes empty
    s.net.add("10.77.0.41", "02:00:00:00:00:41")   # too late for it
    assert s.after(5) == []
    assert s.cameras() == {} and s.onboard.calls == []
    sugs = {x.ip: x for x in s.adopter.suggestions()}
    assert set(sugs) == {"10.77.0.40", "10.77.0.41"}
    assert sugs["10.77.0.41"].port == "" and "no port was powering up" in sugs["10.77.0.41"].reason


def test_devices_already_there_at_start_are_not_adopted(tmp_path):
    """vigil-hwd restarting: the cameras are up, and every powered port reports power."""
    s = make(tmp_path, present={"10.77.0.50": "02:00:00:00:00:50",
                                "10.77.0.51": "02:00:00:00:00:51"})
    s.plug(3, 4)
    assert s.after(5) == [] and s.after(130) == []
    assert s.cameras() == {} and s.adopter.suggestions() == [] and s.onboard.calls == []


# --- refusals and suggestions ------------------------------------------------------------

@pytest.mark.parametrize("case", ["licence", "bandwidth"])
def test_a_licence_or_bandwidth_refusal_is_an_alert_not_a_crash(tmp_path, case):
    if case == "licence":
        s = make(tmp_path, limit=1)
        s.registry.add(registered("door", "10.77.0.21"))
    else:
        s = make(tmp_path, camera_settings={"incoming_budget_mbps": 3})
    s.onboard.by_host["10.77.0.23"] = onboarded("10.77.0.23")
    s.plug(3)
    s.net.add("10.77.0.23", "02:00:00:00:00:23")
    alerts = s.after(5)
    assert "port3" not in s.cameras()
    assert keys(alerts) == ["adoption:Port 3:refused"]
    assert alerts[0].severity == "warning"
    assert ("licence" if case == "licence" else "incoming bandwidth") in alerts[0].message
    [sug] = s.adopter.suggestions()
    assert sug.port == "Port 3" and sug.ip == "10.77.0.23" and "not added" in sug.reason


def test_without_a_default_password_it_is_a_suggestion_until_one_is_set(tmp_path):
    s = make(tmp_path, with_creds=False)
    s.onboard.by_host["10.77.0.23"] = onboarded("10.77.0.23")
    s.plug(3)
    s.net.add("10.77.0.23", "02:00:00:00:00:23")
    alerts = s.after(5)
    assert keys(alerts) == ["adoption:Port 3:needs_password"]
    assert "Found a camera on Port 3" in alerts[0].message
    [sug] = s.adopter.suggestions()
    assert sug.needs_credentials and sug.port == "Port 3"
    assert s.onboard.calls == [] and s.cameras() == {}
    assert s.after(5) == [] and s.onboard.calls == []   # nothing new: no retry
    s.creds[0] = CREDS                                   # the owner sets it
    s.after(2)
    assert s.cameras()["port3"].poe_port == "Port 3"
    assert s.adopter.suggestions() == []


def test_a_refused_password_is_tried_again_only_with_another_one(tmp_path):
    s = make(tmp_path)
    s.onboard.by_host["10.77.0.23"] = [AuthFailed("not authorized"), onboarded("10.77.0.23")]
    s.plug(3)
    s.net.add("10.77.0.23", "02:00:00:00:00:23")
    assert keys(s.after(5)) == ["adoption:Port 3:needs_password"]
    assert "refused" in s.adopter.suggestions()[0].reason
    s.after(30)
    assert len(s.onboard.calls) == 1, "the same password is not tried again (lock-outs)"
    s.creds[0] = Credentials("admin", "other")
    s.after(2)
    assert len(s.onboard.calls) == 2 and "port3" in s.cameras()


def test_a_camera_whose_onvif_is_not_up_yet_is_tried_again_then_given_up(tmp_path):
    s = make(tmp_path, retry_seconds=10, give_up_seconds=30)
    s.onboard.by_host["10.77.0.23"] = [CameraUnreachable("connection refused"),
                                       CameraUnreachable("connection refused"),
                                       onboarded("10.77.0.23")]
    s.onboard.by_host["10.77.0.24"] = CameraUnreachable("connection refused")
    s.plug(3)
    s.net.add("10.77.0.23", "02:00:00:00:00:23")
    assert s.after(5) == []
    assert s.adopter.snapshot()["adding"][0]["label"] == "Port 3"
    s.after(10)
    alerts = s.after(10)
    assert keys(alerts) == ["adoption:Port 3:adopted"] and len(s.onboard.calls) == 3
    s.plug(4)
    s.net.add("10.77.0.24", "02:00:00:00:00:24")
    for _ in range(4):
        alerts = s.after(10)
    assert keys(alerts) == ["adoption:Port 4:failed"]
    assert "does not answer ONVIF" in alerts[0].message
    assert "port4" not in s.cameras()


def test_a_device_refused_by_the_address_policy_is_not_contacted(tmp_path):
    s = make(tmp_path, give_up_seconds=30, retry_seconds=10)
    s.plug(3)
    s.net.add("169.254.10.3", "02:00:00:00:00:03")   # no DHCP: link-local only
    for _ in range(5):
        alerts = s.after(10)
        if alerts:
            break
    assert keys(alerts) == ["adoption:Port 3:failed"] and "link-local" in alerts[0].message
    assert s.onboard.calls == []


def test_auto_add_off_links_known_cameras_and_suggests_the_rest(tmp_path):
    s = make(tmp_path, auto_add=False)
    s.plug(3)
    s.net.add("10.77.0.23", "02:00:00:00:00:23")
    s.after(5)
    assert s.cameras() == {} and s.onboard.calls == []
    assert "auto_add" in s.adopter.suggestions()[0].reason


def test_a_suggested_camera_added_by_the_owner_gets_its_port(tmp_path):
    s = make(tmp_path, with_creds=False)
    s.plug(3)
    s.net.add("10.77.0.23", "02:00:00:00:00:23")
    s.after(5)
    s.registry.add(registered("garden", "10.77.0.23", mac="02:00:00:00:00:23"))
    alerts = s.after(2)
    assert s.cameras()["garden"].poe_port == "Port 3"
    assert keys(alerts) == ["adoption:Port 3:linked"] and s.adopter.suggestions() == []


def test_a_taken_camera_name_gets_a_suffix(tmp_path):
    s = make(tmp_path)
    s.registry.add(registered("port3", "10.77.0.99", mac="02:00:00:00:00:99"))
    s.onboard.by_host["10.77.0.23"] = onboarded("10.77.0.23")
    s.plug(3)
    s.net.add("10.77.0.23", "02:00:00:00:00:23")
    s.after(5)
    cams = s.cameras()
    assert cams["port3-2"].poe_port == "Port 3" and cams["port3-2"].label == "Port 3"
    assert cams["port3"].host == "10.77.0.99"


def test_an_unknown_mac_that_onboards_as_a_known_camera_is_linked(tmp_path):
    """The registry has the camera without a MAC (added by hand): its serial says who it is."""
    s = make(tmp_path)
    s.registry.add(registered("door", "10.77.0.21", serial="SN-0001"))
    s.onboard.by_host["10.77.0.44"] = onboarded("10.77.0.44", serial="SN-0001")
    s.plug(6)
    s.net.add("10.77.0.44", "02:00:00:00:00:44")
    alerts = s.after(5)
    assert list(s.cameras()) == ["door"]
    assert s.cameras()["door"].poe_port == "Port 6" and s.cameras()["door"].host == "10.77.0.44"
    assert s.confirms == [("door", "http://10.77.0.44/onvif/device_service")]
    assert keys(alerts) == ["adoption:Port 6:linked"]


# --- power --------------------------------------------------------------------------------

def test_losing_power_keeps_the_camera_and_its_link_and_a_power_cycle_changes_nothing(tmp_path):
    s = make(tmp_path)
    s.onboard.by_host["10.77.0.23"] = onboarded("10.77.0.23", mac="02:00:00:00:00:23")
    s.plug(3)
    s.net.add("10.77.0.23", "02:00:00:00:00:23")
    s.after(5)
    s.unplug(3)
    s.net.fail("10.77.0.23")
    assert s.after(60) == []
    assert s.cameras()["port3"].poe_port == "Port 3", "only unpowered: still registered"
    # stall recovery's power cycle: off, on, the camera reboots on the same port
    s.rig.manager.power_cycle(3, 10.0, "test")
    s.after(15)
    s.net.add("10.77.0.23", "02:00:00:00:00:23")
    assert s.after(30) == []
    assert list(s.cameras()) == ["port3"] and s.cameras()["port3"].poe_port == "Port 3"
    assert len(s.onboard.calls) == 1


def test_a_known_camera_glitching_while_another_port_powers_up_stays_put(tmp_path):
    s = make(tmp_path)
    s.registry.add(registered("door", "10.77.0.21", mac="aa:bb:cc:00:00:21", port="Port 1"))
    s.plug(1)
    s.net.add("10.77.0.21", "aa:bb:cc:00:00:21")
    s.after(130)
    s.net.fail("10.77.0.21")          # a network hiccup longer than gone_seconds
    s.after(25)
    s.plug(4)
    s.net.add("10.77.0.21", "aa:bb:cc:00:00:21")
    assert s.after(5) == []
    assert s.cameras()["door"].poe_port == "Port 1"
    s.onboard.by_host["10.77.0.24"] = onboarded("10.77.0.24")
    s.net.add("10.77.0.24", "02:00:00:00:00:24")   # Port 4's own camera still gets it
    s.after(20)
    assert s.cameras()["port4"].poe_port == "Port 4"


def test_the_listener_only_queues(tmp_path):
    s = make(tmp_path)
    s.onboard.by_host["10.77.0.23"] = onboarded("10.77.0.23")
    s.net.add("10.77.0.23", "02:00:00:00:00:23")
    reads = []
    s.adopter._neighbours = lambda: reads.append(1) or s.net()   # noqa: SLF001
    s.plug(3)                          # the manager calls the listener during these polls
    assert reads == [] and s.onboard.calls == [] and s.cameras() == {}
    assert s.rig.changes[-1].powered and s.rig.changes[-1].label == "Port 3"


def test_onboarding_runs_on_the_adopters_thread_and_never_holds_up_the_poe_poll(tmp_path):
    release, started = threading.Event(), threading.Event()

    def slow(xaddr, creds, policy, **kwargs):
        started.set()
        release.wait(10)
        return onboarded("10.77.0.23")
    s = make(tmp_path, scan_interval=0.5)
    s.adopter._onboard = slow                                     # noqa: SLF001
    service = AdoptionService(s.adopter, tmp_path / "state")
    service.start()
    try:
        s.plug(3)
        s.rig.clock.advance(5)
        s.net.add("10.77.0.23", "02:00:00:00:00:23")
        assert started.wait(5), "onboarding did not start"
        begin = time.monotonic()
        s.plug(6)                      # the PoE manager polls on while onboarding waits
        assert time.monotonic() - begin < 0.5
        assert s.rig.manager.port_state(6).value == "powered"
        release.set()
        wait_until(lambda: "port3" in s.cameras(), 5, "port3 adopted", step=0.05)
        assert s.cameras()["port3"].poe_port == "Port 3"
    finally:
        release.set()
        service.close()
    assert (tmp_path / "state" / "adoption.json").exists()


# --- sources ------------------------------------------------------------------------------

def test_a_probe_answer_and_a_neighbour_entry_are_one_device_and_give_its_xaddr(tmp_path):
    answers: list[list[DiscoveredDevice]] = [[]]
    calls = []

    def discover(addresses):
        calls.append(list(addresses))
        return answers[0]
    s = make(tmp_path)
    s.adopter._discover = discover                                  # noqa: SLF001
    s.adopter._baselined.discard("probe")                           # noqa: SLF001
    s.adopter.step()
    s.onboard.by_host["10.77.0.23"] = onboarded("10.77.0.23")
    s.plug(3)
    s.rig.poll(1.0, 5)
    answers[0] = [DiscoveredDevice(
        "urn:uuid:1a2b", "10.77.0.23",
        [XAddr("http://10.77.0.23:8899/onvif/device_service", None, True),
         XAddr("http://10.77.0.99/onvif/device_service", None, False)])]
    s.net.add("10.77.0.23", "02:00:00:00:00:23")
    alerts = s.adopter.step()
    assert keys(alerts) == ["adoption:Port 3:adopted"]
    [(xaddr, _, kwargs)] = s.onboard.calls
    assert xaddr == "http://10.77.0.23:8899/onvif/device_service", "only the sender's XAddr"
    assert kwargs["endpoint_reference"] == "urn:uuid:1a2b"
    assert calls == [[], ["10.77.0.23"]], "a start-up probe, then a unicast one to it"


def test_a_camera_that_only_answers_probes_is_found_by_the_probe_in_its_window(tmp_path):
    answers: list[list[DiscoveredDevice]] = [[]]
    calls = []

    def discover(addresses):
        calls.append(list(addresses))
        return answers[0]
    s = make(tmp_path)
    s.adopter._neighbours = None                                      # noqa: SLF001
    s.adopter._discover = discover                                    # noqa: SLF001
    s.adopter._baselined.discard("probe")                             # noqa: SLF001
    s.adopter.step()                   # the start-up probe: nothing
    s.onboard.by_host["10.77.0.23"] = onboarded("10.77.0.23")
    s.plug(3)
    answers[0] = [DiscoveredDevice("urn:uuid:1a2b", "10.77.0.23", [
        XAddr("http://10.77.0.23/onvif/device_service", None, True)])]
    alerts = s.after(12)               # the window's probe (every probe_interval, 10 s)
    assert keys(alerts) == ["adoption:Port 3:adopted"]
    assert calls == [[], []], "multicast only: the answer carried the XAddr"
    s.after(10)
    s.after(10)
    assert len(calls) == 2, "no probing once no window is open"


def test_a_new_dhcp_lease_is_an_appearance_and_a_renewal_is_not(tmp_path):
    leases = [Lease("02:00:00:00:00:50", "10.77.0.50", 1_800_003_600)]
    s = make(tmp_path)
    s.adopter._neighbours = None                                     # noqa: SLF001
    s.adopter._leases = lambda: list(leases)                          # noqa: SLF001
    s.adopter.step()                   # the leases' baseline
    s.onboard.by_host["10.77.0.23"] = onboarded("10.77.0.23")
    s.plug(3)
    leases[0] = Lease("02:00:00:00:00:50", "10.77.0.50", 1_800_007_200)   # renewed
    assert s.after(5) == []
    leases.append(Lease("02:00:00:00:00:23", "10.77.0.23", 1_800_043_200, "ipcam"))
    assert keys(s.after(3)) == ["adoption:Port 3:adopted"]


def test_a_failing_source_raises_one_alert_and_the_others_carry_on(tmp_path):
    from appliance.core.errors import Unavailable

    def broken():
        raise Unavailable('Cannot find device "eth1"')
    leases: list[Lease] = []
    s = make(tmp_path)
    s.adopter._neighbours = broken                                   # noqa: SLF001
    s.adopter._leases = lambda: list(leases)                          # noqa: SLF001
    assert keys(s.adopter.step()) == ["adoption:source:neighbours"]
    assert s.adopter.step() == []
    s.onboard.by_host["10.77.0.23"] = onboarded("10.77.0.23")
    s.plug(3)
    leases.append(Lease("02:00:00:00:00:23", "10.77.0.23", 1_800_043_200))
    assert keys(s.after(5)) == ["adoption:Port 3:adopted"]
    assert s.adopter.snapshot()["sources"]["neighbours"].startswith("Cannot find")


def test_two_devices_in_one_scan_for_one_port_are_not_guessed(tmp_path):
    s = make(tmp_path)
    s.plug(3)
    s.net.add("10.77.0.30", "02:00:00:00:00:30")
    s.net.add("10.77.0.31", "02:00:00:00:00:31")
    alerts = s.after(5)
    assert keys(alerts) == ["adoption:ambiguous:Port 3"] and s.onboard.calls == []


def test_a_flood_of_new_macs_is_bounded_and_adopts_nothing(tmp_path):
    s = make(tmp_path)
    s.plug(3)
    for i in range(200):
        s.net.add(f"10.77.0.{i + 1}", f"02:00:00:00:01:{i:02x}")
    begin = time.monotonic()
    alerts = s.after(5)
    assert time.monotonic() - begin < 1.0
    assert keys(alerts) == ["adoption:ambiguous:Port 3"]
    assert "and 24 more" in alerts[0].message   # 32 taken from the scan, 8 named
    assert s.onboard.calls == [] and s.cameras() == {}
    assert len(s.adopter.suggestions()) <= 64


# --- settings and credentials -------------------------------------------------------------

def test_settings_have_bounds_and_live_under_poe_adoption():
    rest, adoption = split_adoption_settings({"budget_w": 90, "adoption": {
        "window_seconds": 180, "lease_file": "/var/lib/misc/dnsmasq.leases"}})
    assert rest == {"budget_w": 90} and build_poe_settings(rest).settings.budget_w == 90
    assert adoption.window_seconds == 180 and adoption.enabled and adoption.auto_add
    for bad in ({"window_seconds": 10}, {"window_seconds": 601}, {"probe_interval": 1},
                {"scan_interval": 0.1}, {"give_up_seconds": 30, "retry_seconds": 60},
                {"colour": "red"}, {"enabled": "yes"}):
        with pytest.raises(InvalidConfig):
            build_adoption_settings(bad)
    with pytest.raises(InvalidConfig):
        split_adoption_settings({"adoption": 3})


def test_default_credentials_live_in_a_credential_store_of_their_own(tmp_path):
    store = CredentialStore(tmp_path / "secrets" / "adoption")
    get = default_credentials(store)
    assert get() is None
    set_default_credentials(store, CREDS)
    assert get() == CREDS
    assert (tmp_path / "secrets" / "adoption" / f"{DEFAULT_CREDENTIALS_ID}.json").exists()


@pytest.mark.parametrize("works", [True, False])
def test_the_default_password_can_be_replaced_after_adding(tmp_path, works):
    rotated = []

    def rotator(registry, camera_id, policy):
        rotated.append(camera_id)
        if not works:
            raise CameraUnreachable("camera went away")
    s = make(tmp_path, rotate_password=True)
    s.adopter._rotator = rotator                                       # noqa: SLF001
    s.onboard.by_host["10.77.0.23"] = onboarded("10.77.0.23")
    s.plug(3)
    s.net.add("10.77.0.23", "02:00:00:00:00:23")
    alerts = s.after(5)
    assert rotated == ["port3"] and "port3" in s.cameras()
    assert keys(alerts) == ["adoption:Port 3:adopted"] + ([] if works else
                                                          ["adoption:Port 3:rotation"])
