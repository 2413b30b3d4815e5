"""PoE auto-adoption end to end on loopback: the simulated PoE board powers a device on
Port 2, the neighbour table reports the fake ONVIF camera's address
(tests/integration/cameras/fakecam.py), a unicast WS-Discovery probe of that address
gives its device service, the real onboarding reads it with the owner's default camera
credentials, and the registry gets camera "port2" labelled "Port 2", linked to Port 2.
The address policy allows 127.0.0.0/8 explicitly (loopback is refused otherwise)."""

from __future__ import annotations

import json
import re
import time

import pytest

from appliance.cameras.credentials import Credentials, CredentialStore
from appliance.cameras.onvif import AddressPolicy
from appliance.cameras.registry import CameraRegistry
from appliance.config.cameras import build_camera_settings
from appliance.core.clock import SimulatedClock
from appliance.poe import PoeManager, PortState, build_poe_settings
from appliance.poe.adoption import (AdoptionService, PortAdopter, build_adoption_settings,
                                    default_credentials, onvif_discover,
                                    set_default_credentials)
from appliance.poe.neighbours import MemoryNeighbours, Neighbour
from appliance.poe.runtime import PoeService, build_manager
from hw.board import load_profile
from hw.pse.tps23861_sim import SimulatedBus
from hw.pse.board import parse_pse
from tests.integration.cameras.fakecam import FakeCamera, fixture
from tests.integration.cameras.hostile import DiscoveryResponder
from tests.waiting import wait_until

POLICY = AddressPolicy(["127.0.0.0/8"])
PASSWORD = "pa55 word"          # the fake camera's
CAMERA_MAC = "bc:ad:28:0a:1b:2c"   # what its GetNetworkInterfaces says


def empty_board() -> dict:
    profile = load_profile("sim")
    profile["pse"]["sim"]["devices"] = []   # simulated, with nothing plugged in at start
    return profile


def answers_probes_as(cam: FakeCamera):
    """WS-Discovery answers for the fake camera: the fixture ProbeMatch, localised."""
    template = cam.localise(fixture("probe_match.prefixed.xml"))

    def answer(message_id: str) -> list[bytes]:
        return [re.sub(rb"<wsadis:RelatesTo>[^<]*</wsadis:RelatesTo>",
                       f"<wsadis:RelatesTo>{message_id}</wsadis:RelatesTo>".encode(), template)]
    return answer


def registry_in(tmp_path) -> CameraRegistry:
    return CameraRegistry(tmp_path / "config" / "cameras.json",
                          CredentialStore(tmp_path / "secrets" / "cameras"),
                          build_camera_settings({}))


def check_port2(registry: CameraRegistry) -> None:
    [cam] = registry.cameras()
    assert (cam.id, cam.label, cam.poe_port) == ("port2", "Port 2", "Port 2")
    assert (cam.manufacturer, cam.model, cam.serial) == \
        ("HIKVISION", "DS-2CD2143G2-I", "DS-2CD2143G2-I20220301AAWRJ12345678")
    assert cam.host == "127.0.0.1" and cam.main.uri.startswith("rtsp://127.0.0.1:554/")
    assert cam.endpoint.lower() == "urn:uuid:1a2b3c4d-0000-1111-2222-001122334455"
    assert registry.credentials.get("port2") == Credentials("admin", PASSWORD)


def test_a_device_plugged_into_port_2_becomes_camera_port2(tmp_path):
    clock = SimulatedClock()
    profile = empty_board()
    bus = SimulatedBus.from_layout(parse_pse(profile), clock.monotonic)
    manager = PoeManager.from_profile(profile, bus, config=build_poe_settings({}), clock=clock)
    registry = registry_in(tmp_path)
    defaults = CredentialStore(tmp_path / "secrets" / "adoption")
    set_default_credentials(defaults, Credentials("admin", "factory-1234"))   # wrong first
    net = MemoryNeighbours()
    alerts: list = []
    with FakeCamera() as cam, DiscoveryResponder(answers_probes_as(cam), host="127.0.0.1") \
            as responder:
        adopter = PortAdopter(
            registry, POLICY, settings=build_adoption_settings({}), clock=clock,
            neighbours=net, credentials=default_credentials(defaults),
            discover=onvif_discover(POLICY, timeout=0.5, multicast=False, port=responder.port),
            alert_sink=alerts.extend)
        manager.add_power_listener(adopter.on_power_change)
        manager.start()
        adopter.step()                              # baseline: an empty camera network
        bus.plug(2, pd_class=2, load_w=4.2)
        for _ in range(3):
            clock.advance(1)
            manager.poll()
        assert manager.port_state(2) is PortState.POWERED
        for _ in range(5):                          # the camera boots
            clock.advance(1)
            manager.poll()
        net.add("127.0.0.1", CAMERA_MAC)            # and shows up on the camera network
        adopter.step()
        assert [a.key for a in alerts] == ["adoption:Port 2:needs_password"]
        assert registry.cameras() == []
        [sug] = adopter.suggestions()
        assert sug.port == "Port 2" and sug.needs_credentials and sug.xaddr == cam.xaddr

        set_default_credentials(defaults, Credentials("admin", PASSWORD))   # the owner's
        clock.advance(2)
        adopter.step()
        assert len(responder.probes) == 2, "one unicast probe (sent twice), then remembered"
    check_port2(registry)
    assert [a.key for a in alerts][-1] == "adoption:Port 2:adopted"
    assert adopter.suggestions() == []


@pytest.mark.timeout(60)
def test_with_the_real_threads_and_clock(tmp_path):
    """vigil-hwd's shape: the PoE manager's thread and the adopter's thread; the camera
    shows up in the neighbour table a moment after Port 2 is powered."""
    manager, bus = build_manager(empty_board())
    registry = registry_in(tmp_path)
    defaults = CredentialStore(tmp_path / "secrets" / "adoption")
    set_default_credentials(defaults, Credentials("admin", PASSWORD))
    powered_at: list[float] = []
    manager.add_power_listener(lambda c: powered_at.append(time.monotonic())
                               if c.label == "Port 2" and c.powered else None)

    def neighbours() -> list[Neighbour]:   # the camera boots 1.5 s after power
        if powered_at and time.monotonic() - powered_at[0] >= 1.5:
            return [Neighbour("127.0.0.1", CAMERA_MAC, "REACHABLE")]
        return []
    with FakeCamera() as cam, DiscoveryResponder(answers_probes_as(cam), host="127.0.0.1") \
            as responder:
        adopter = PortAdopter(
            registry, POLICY, settings=build_adoption_settings(
                {"scan_interval": 0.5, "min_boot_seconds": 1}),
            neighbours=neighbours, credentials=default_credentials(defaults),
            discover=onvif_discover(POLICY, timeout=0.5, multicast=False, port=responder.port))
        manager.add_power_listener(adopter.on_power_change)
        adoption = AdoptionService(adopter, tmp_path / "state")
        poe = PoeService(manager, None)
        adoption.start()
        poe.start()
        try:
            bus.plug(2, pd_class=2, load_w=4.2)
            wait_until(registry.cameras, 30, "the adopted camera", step=0.2)
        finally:
            poe.close()
            adoption.close()
    check_port2(registry)
    state = json.loads((tmp_path / "state" / "adoption.json").read_text())
    assert [o["kind"] for o in state["recent"]] == ["adopted"]
    assert state["recent"][0]["camera_id"] == "port2"
