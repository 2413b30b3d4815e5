"""Cut and garbled RAID inputs: every reader answers with a state, never an exception."""

from __future__ import annotations

import random
import shutil
from pathlib import Path

import pytest

from appliance.storage.raid import (
    STATES, ArrayHealth, RaidMonitor, parse_mdadm_export, parse_mdstat,
)

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "storage"
PROCFS_MDSTAT_TTAR = Path("/usr/share/gocode/src/github.com/prometheus/procfs/testdata/"
                          "fixtures.ttar")
MDSTAT_TOKENS = ["md0", " : ", "active", "inactive", "raid1", "sda1[0]", "(F)", "(S)", "[2/1]",
                 "[U_]", "[UU]", "blocks", "super 1.2", "recovery =", "8.5%", "(1/2)",
                 "finish=1.0min", "speed=1K/sec", "resync=DELAYED", "\n", "      ", "\t", "[=>",
                 "Personalities :", "unused devices:", "=", "%", "[", "]", "(", ")", "é", "\x00"]


def assert_valid(arrays: dict[str, ArrayHealth]) -> None:
    for name, a in arrays.items():
        assert isinstance(a, ArrayHealth) and a.name == name and a.state in STATES
        a.to_json()


def mdstat_texts() -> list[tuple[str, str]]:
    texts = [(p.name, p.read_text()) for p in sorted((FIXTURES / "mdstat").iterdir())]
    if PROCFS_MDSTAT_TTAR.exists():
        lines = PROCFS_MDSTAT_TTAR.read_text().split("\n")
        start = lines.index("Path: fixtures/proc/mdstat")
        count = int(lines[start + 1].split()[1])
        texts.append(("procfs", "".join(f"{line}\n" for line in lines[start + 2:start + 2 + count])))
    return texts


@pytest.mark.parametrize(("name", "text"), mdstat_texts(), ids=[n for n, _ in mdstat_texts()])
def test_mdstat_cut_at_every_character(name, text):
    unknown_seen = False
    for end in range(len(text) + 1):
        arrays = parse_mdstat(text[:end])
        assert_valid(arrays)
        unknown_seen |= any(a.state == "unknown" for a in arrays.values())
    assert_valid(parse_mdstat(text))
    assert unknown_seen or not parse_mdstat(text)  # cutting must show up somewhere


def test_mdstat_cut_at_line_ends_never_invents_a_state():
    # A cut between lines leaves whole lines: each array is then either read correctly
    # (its block complete) or unknown; a half-read array must never look healthy.
    text = (FIXTURES / "mdstat" / "raid1-faulty").read_text()
    lines = text.splitlines(keepends=True)
    states = [parse_mdstat("".join(lines[:n])).get("md0") for n in range(len(lines) + 1)]
    assert [s.state if s else None for s in states] == [
        None, None, "unknown", "degraded", "degraded", "degraded", "degraded"]


def test_random_garbage_and_shuffled_lines():
    rng = random.Random(20251122)
    texts = [t for _, t in mdstat_texts()]
    for _ in range(400):
        tokens = [rng.choice(MDSTAT_TOKENS) for _ in range(rng.randint(0, 60))]
        assert_valid(parse_mdstat("".join(tokens)))
    for _ in range(400):
        lines = rng.choice(texts).splitlines(keepends=True)
        rng.shuffle(lines)
        mutated = "".join(lines)
        pos = rng.randrange(len(mutated) + 1)
        mutated = mutated[:pos] + rng.choice(MDSTAT_TOKENS) + mutated[pos + rng.randint(0, 5):]
        assert_valid(parse_mdstat(mutated))
    assert_valid(parse_mdstat("".join(chr(rng.randrange(0, 0x3000)) for _ in range(5000))))


@pytest.mark.parametrize("case", sorted(p.name for p in (FIXTURES / "sysfs").iterdir()))
def test_sysfs_files_cut_at_every_character(case, tmp_path):
    root = tmp_path / "sys"
    shutil.copytree(FIXTURES / "sysfs" / case, root)
    monitor = RaidMonitor(proc_root=tmp_path / "noproc", sys_root=root, use_mdadm=False)
    unknown_seen = False
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        original = path.read_text()
        for end in range(len(original)):
            path.write_text(original[:end])
            arrays = monitor.read()
            assert_valid(arrays)
            unknown_seen |= any(a.state == "unknown" for a in arrays.values())
        path.write_text("\xff\x00garbage\n")
        assert_valid(monitor.read())
        path.write_text(original)
    assert unknown_seen


def test_sysfs_odd_shapes(tmp_path):
    root = tmp_path / "sys"
    shutil.copytree(FIXTURES / "sysfs" / "raid1-clean", root)
    md = root / "block" / "md0" / "md"
    (md / "dev-sda1" / "state").unlink()
    (md / "dev-sda1" / "state").mkdir()  # a directory where a file should be
    assert RaidMonitor(proc_root=tmp_path, sys_root=root, use_mdadm=False).read()["md0"].state \
        == "unknown"
    shutil.rmtree(md)
    md.write_text("not a directory\n")
    assert RaidMonitor(proc_root=tmp_path, sys_root=root, use_mdadm=False).read() == {}


def test_mdadm_export_cut_at_every_character():
    for path in sorted((FIXTURES / "mdadm").iterdir()):
        text = path.read_text()
        for end in range(len(text) + 1):
            export = parse_mdadm_export(text[:end])
            assert export.problem or export.level or export.devices is None
    rng = random.Random(7)
    for _ in range(300):
        noise = "".join(rng.choice("MD_=\n0123456789abcdef:/ROLEDEV_spare") for _ in range(80))
        parse_mdadm_export(noise)
