"""Our RAID parsers over the prometheus procfs corpus of real mdstat and sysfs samples.

The corpus (Apache-2.0) is read at test time from the Debian package
golang-github-prometheus-procfs-dev, which `make test` installs; nothing of it is copied
into this repository. It is a `ttar` text archive: `Directory:`, `Path:` + `Lines: N` +
N lines + `Mode:`, or `Path:` + `SymlinkTo:`; `NULLBYTE` stands for a zero byte and a
trailing `EOF` on the last line means the file has no final newline.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterator

import pytest

from appliance.storage.raid import STATES, RaidMonitor, parse_mdstat

PROCFS_TTAR = Path("/usr/share/gocode/src/github.com/prometheus/procfs/testdata/fixtures.ttar")


def ttar_entries(archive: Path) -> Iterator[tuple[str, str, str]]:
    """(kind, path, payload) per entry: kind dir, file (payload = content) or symlink."""
    lines = archive.read_text(encoding="utf-8", errors="surrogateescape").split("\n")
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("Directory: "):
            yield "dir", line[len("Directory: "):], ""
        elif line.startswith("Path: "):
            path, header = line[len("Path: "):], lines[i + 1]
            if header.startswith("SymlinkTo: "):
                yield "symlink", path, header[len("SymlinkTo: "):]
                i += 1
            elif header.startswith("Lines: "):
                count = int(header[len("Lines: "):])
                body = "".join(f"{text}\n" for text in lines[i + 2:i + 2 + count])
                if body.endswith("EOF\n"):
                    body = body[:-len("EOF\n")]
                yield "file", path, body.replace("NULLBYTE", "\0")
                i += 1 + count
            else:
                raise ValueError(f"ttar entry {path} has neither Lines: nor SymlinkTo:")
        i += 1


def extract_ttar(archive: Path, dest: Path, wanted: Callable[[str], bool]) -> list[str]:
    """Writes the wanted files (and directories) under dest; returns the file paths."""
    written = []
    for kind, path, payload in ttar_entries(archive):
        if not wanted(path):
            continue
        target = dest / path
        if kind == "dir":
            target.mkdir(parents=True, exist_ok=True)
        elif kind == "file":
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(payload, encoding="utf-8", errors="surrogateescape")
            written.append(path)
    return written


def md_entry(path: str) -> bool:
    parts = path.split("/")
    in_sys_block = parts[1:3] == ["sys", "block"] and len(parts) > 3
    return path == "fixtures/proc/mdstat" or (in_sys_block and parts[3].startswith("md"))


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    """The corpus's md samples, extracted under <tmp>/fixtures/{proc,sys}."""
    if not PROCFS_TTAR.exists():
        pytest.skip(f"{PROCFS_TTAR} is absent: install golang-github-prometheus-procfs-dev "
                    "(`make test` does)")
    dest = tmp_path_factory.mktemp("procfs")
    extract_ttar(PROCFS_TTAR, dest, md_entry)
    return dest / "fixtures"


def test_ttar_reader_handles_every_entry_kind(tmp_path):
    archive = tmp_path / "a.ttar"
    archive.write_text("# Archive created by ttar\nDirectory: x\nMode: 755\n# ttar - -\n"
                       "Path: x/two\nLines: 2\nPath: not an entry\nendEOF\nMode: 644\n# ttar -\n"
                       "Path: x/empty\nLines: 0\nMode: 644\n# ttar -\n"
                       "Path: x/nul\nLines: 1\naNULLBYTEb\nMode: 644\n# ttar -\n"
                       "Path: x/link\nSymlinkTo: ../y\n# ttar -\n")
    assert list(ttar_entries(archive)) == [
        ("dir", "x", ""), ("file", "x/two", "Path: not an entry\nend"),
        ("file", "x/empty", ""), ("file", "x/nul", "a\0b\n"), ("symlink", "x/link", "../y")]


# name -> (state, level, configured, working, missing slots, percent, eta s, faulty)
CORPUS_MDSTAT = {
    "md3": ("healthy", "raid6", 8, 8, (), None, None, ()),
    "md127": ("healthy", "raid1", 2, 2, (), None, None, ()),
    "md0": ("healthy", "raid1", 2, 2, (), None, None, ()),
    "md4": ("inactive", "raid1", 2, 2, (), None, None, ("sda3",)),
    "md6": ("rebuilding", "raid1", 2, 1, (1,), 8.5, 1020, ("sdb2",)),
    "md8": ("resyncing", "raid1", 2, 2, (), 8.5, 1020, ()),
    "md201": ("checking", "raid1", 2, 2, (), 5.7, 12, ()),
    "md7": ("degraded", "raid6", 4, 3, (1,), None, None, ("sdc1",)),
    "md9": ("resyncing", "raid1", 4, 4, (), None, None, ("sde", "sdf")),
    "md10": ("healthy", "raid0", 2, 2, (), None, None, ()),
    "md11": ("resync_pending", "raid1", 2, 2, (), None, None, ("sdc3",)),
    "md12": ("healthy", "raid0", 2, 2, (), None, None, ()),
    "md126": ("healthy", "raid0", 2, 2, (), None, None, ()),
    "md219": ("inactive", "container", None, None, (), None, None, ()),
    "md00": ("healthy", "raid0", 1, 1, (), None, None, ()),
    "md120": ("healthy", "linear", 2, 2, (), None, None, ()),
    "md101": ("healthy", "raid0", 3, 3, (), None, None, ()),
}


def test_corpus_mdstat_reads_as_expected(corpus):
    arrays = parse_mdstat((corpus / "proc" / "mdstat").read_text())
    assert list(arrays) == list(CORPUS_MDSTAT)
    for name, a in arrays.items():
        got = (a.state, a.level, a.configured, a.working, a.missing_slots,
               a.progress_percent, a.eta_seconds, a.faulty_members)
        assert got == CORPUS_MDSTAT[name], name
    assert arrays["md7"].detail.startswith("raid6 running on 3 of 4 devices, slot 1 missing; "
                                           "redundancy reduced")
    assert (arrays["md11"].read_only, arrays["md101"].read_only) == ("auto-read-only", "read-only")
    assert arrays["md6"].speed_kib_s == 259783
    assert [m.device for m in arrays["md3"].members if "spare" in m.flags] == ["sdd1", "sdd2"]


def test_corpus_as_a_whole_system(corpus):
    arrays = RaidMonitor(proc_root=corpus / "proc", sys_root=corpus / "sys",
                         use_mdadm=False).read()
    assert sorted(arrays) == sorted(CORPUS_MDSTAT)
    assert {a.state for a in arrays.values()} <= set(STATES) - {"unknown"}


def test_corpus_sysfs_md_trees(corpus):
    md_dirs = sorted((corpus / "sys" / "block").glob("md*/md"))
    if not md_dirs:
        pytest.skip("this procfs corpus (Debian bookworm ships 0.8.0) has no sys/block/md* "
                    "trees; tests/fixtures/storage/sysfs covers sysfs")
    arrays = RaidMonitor(proc_root=corpus / "nonexistent", sys_root=corpus / "sys",
                         use_mdadm=False).read()
    assert arrays and set(arrays) <= {d.parent.name for d in md_dirs}  # "clear" nodes skipped
    for a in arrays.values():
        assert a.state in STATES and a.state != "unknown", (a.name, a.detail)
        assert a.members, a.name
