"""A box's state in real files under tmp_path, written by the parts that write it on the
box: a recording index with segments, gaps, statuses and a deletion; vigil-hwd's storage
snapshot (its StorageMonitor over recorded mdstat and smartctl output) and PoE snapshot
(the manager on the simulated board); an installed licence; a camera registry; and a
cgroup.procs file naming this test's own process as "the recorder"."""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from prometheus_client.parser import text_string_to_metric_families

from appliance.cameras.manage import add_camera, open_camera_registry, rtsp_camera
from appliance.core.clock import SimulatedClock
from appliance.licensing.licence import Licence, sign
from appliance.licensing.store import LicenceStore
from appliance.metrics.collector import build_registry, exposition
from appliance.metrics.sources import MetricSources
from appliance.poe.manager import PortState
from appliance.poe.runtime import build_manager, write_snapshot
from appliance.recorder.index import RecordingIndex, Segment
from appliance.storage.monitor import StorageMonitor
from appliance.storage.raid import RaidMonitor
from appliance.storage.smart import SmartReader
from hw.board import load_profile

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "storage"
SERIAL = "10000000abcdef01"
US = 1_000_000
SEGMENT_BYTES = 2_000_000


@dataclass
class Box:
    root: Path
    now: float               # the scrape's wall clock (seconds)
    sources: MetricSources

    @property
    def now_us(self) -> int:
        return int(self.now * US)

    def scrape(self, sources: MetricSources | None = None) -> dict[tuple, float]:
        """One scrape through the real registry and text format, parsed back:
        (sample name, sorted label pairs) -> value."""
        body, _ = exposition(build_registry(sources or self.sources), None)
        return parse(body.decode())


def parse(text: str) -> dict[tuple, float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(samples: dict[tuple, float], name: str, **labels: str) -> float:
    return samples[(name, tuple(sorted(labels.items())))]


def write_index(data: Path, now_us: int) -> None:
    """door: three minutes of footage (the middle one's file missing), a closed 30 s
    outage and an ongoing 20 s one, one segment deleted by retention; yard: a status
    the recorder stopped writing 100 s ago."""
    index = RecordingIndex(data)
    start = now_us - 10 * 60 * US
    for seq in range(1, 4):
        s = start + (seq - 1) * 60 * US
        seg = Segment("door", seq, s, s + 60 * US, SEGMENT_BYTES,
                      f"recordings/door/{seq}.mp4", status="missing" if seq == 2 else "ok")
        index.add_segment(seg)
    after = start + 3 * 60 * US
    gap = index.open_gap("door", after, "camera_unreachable", "no route")
    index.close_gap(gap, after + 30 * US)
    index.open_gap("door", now_us - 20 * US, "auth_failed", "401")
    index.write_status("door", "recording", "h264 1920x1080", now_us - 1 * US,
                       {"bitrate_bps": 4_000_000, "bytes_in": 123_456, "reconnects": 2})
    index.write_status("yard", "recording", "", now_us - 100 * US, {"reconnects": 0})
    old = Segment("door", 0, start - 60 * US, start, 1_500_000, "recordings/door/0.mp4")
    index.add_segment(old)
    deletion = index.begin_deletion(old, "max_age", "older than 30 days", now_us)
    index.finish_deletion(deletion, old.path)
    index.close()


def write_storage_snapshot(state: Path, root: Path) -> None:
    """vigil-hwd's monitor: md0 rebuilding (recorded mdstat), /dev/sda healthy and /dev/sdb
    failing (recorded smartctl JSON)."""
    proc = root / "proc"
    proc.mkdir()
    shutil.copy(FIXTURES / "mdstat" / "raid1-recovery", proc / "mdstat")
    answers = {"/dev/sda": (FIXTURES / "smartctl" / "sata-hdd-healthy.json").read_text(),
               "/dev/sdb": (FIXTURES / "smartctl" / "sata-hdd-failing.json").read_text()}

    def smartctl(argv):
        text = answers[argv[-1]]
        return json.loads(text)["smartctl"]["exit_status"], text

    monitor = StorageMonitor(state, root / "smart-history.json", [],
                             raid=RaidMonitor(proc, root / "nosys", use_mdadm=False),
                             smart=SmartReader(run=smartctl),
                             smart_devices=lambda: sorted(answers))
    monitor.check_raid()
    monitor.check_smart()
    monitor.write_snapshot()


def write_poe_snapshot(state: Path) -> None:
    """The PoE manager on the simulated board until its two scripted cameras have power."""
    clock = SimulatedClock(wall=time.time())
    manager, _ = build_manager(load_profile("sim"), clock=clock)
    for _ in range(60):
        clock.advance(0.5)
        manager.poll()
        if manager.port_state(2) is PortState.POWERED:
            break
    assert manager.port_state(1) is PortState.POWERED
    write_snapshot(state, manager.snapshot().to_json())


def licence_store(root: Path) -> LicenceStore:
    """A 16-channel licence that expires on 2030-06-30, installed and in force."""
    vendor = Ed25519PrivateKey.generate()
    store = LicenceStore(root / "licence" / "licence.txt", SERIAL, [vendor.public_key()], 8,
                         today=lambda: date(2026, 11, 23))
    store.install(sign(Licence("lic-0001", SERIAL, 16, "standard", "2026-11-01",
                               "2030-06-30"), vendor))
    return store


def write_registry(config: Path) -> Path:
    """Two cameras, one of them disabled: one channel in use."""
    registry = config.with_name("cameras.json")
    reg = open_camera_registry(registry, config.parent.parent / "secrets", config)
    add_camera(reg, rtsp_camera("door", "Door", "rtsp://192.168.10.21/stream"), None)
    add_camera(reg, rtsp_camera("yard", "Yard", "rtsp://192.168.10.22/stream"), None)
    reg.set_enabled("yard", False)
    return registry


@pytest.fixture
def box(tmp_path) -> Box:
    now = float(int(time.time()))
    data, state = tmp_path / "data", tmp_path / "state"
    config = tmp_path / "config" / "recorder.toml"
    config.parent.mkdir()
    config.write_text("[storage]\nallow_boot_media = true\nmin_free_percent = 5.0\n"
                      "max_age_days = 30.0\n")
    write_index(data, int(now * US))
    write_storage_snapshot(state, tmp_path)
    write_poe_snapshot(state)
    store = licence_store(tmp_path)
    cgroup = tmp_path / "cgroup"
    cgroup.mkdir()
    (cgroup / "cgroup.procs").write_text(f"{os.getpid()}\n")
    sources = MetricSources(data_dir=data, config=config, registry=write_registry(config),
                            hwd_state=state, licence=lambda: store, recorder_cgroup=cgroup,
                            clock=SimulatedClock(wall=now))
    return Box(tmp_path, now, sources)
