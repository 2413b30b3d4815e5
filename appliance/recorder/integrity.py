"""Tamper evidence: each segment's SHA-256 and a hash chain per camera.

At close, the recorder hashes the finished file (it is still in the page cache, so this
costs about 20 ms for a 30 MB minute) and links it to the camera's previous segment:

    chain = SHA-256("vigil-chain-v1|" prev_chain "|" camera "|" seq "|" start_us "|"
                    end_us "|" bytes "|" sha256)

Changing a byte of a file changes its sha256; removing, reordering or re-timing a
segment breaks the chain at that point. Retention deleting the oldest segments keeps
the chain verifiable from the first remaining segment (its `prev_chain` is stored).
Exports carry these values in a signed manifest (playback issue).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

GENESIS = "0" * 64
CHUNK = 1 << 20


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as src:
        while chunk := src.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def chain_link(prev_chain: str, camera: str, seq: int, start_us: int, end_us: int,
               size: int, sha256: str) -> str:
    text = f"vigil-chain-v1|{prev_chain}|{camera}|{seq}|{start_us}|{end_us}|{size}|{sha256}"
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def link_segment(seg, data_dir: Path, prev_chain: str) -> None:
    """Fill in a segment's sha256, prev_chain and chain from its file."""
    seg.sha256 = file_sha256(Path(data_dir) / seg.path)
    seg.prev_chain = prev_chain
    seg.chain = chain_link(prev_chain, seg.camera, seg.seq, seg.start_us, seg.end_us,
                           seg.bytes, seg.sha256)


def chain_problems(segments, data_dir: Path | None = None) -> list[str]:
    """What does not verify in one camera's segments (in seq order): a file whose bytes
    changed (when data_dir is given), a link that does not follow from the previous one,
    or a value that does not match its own fields. Empty when all is intact."""
    problems = []
    previous = None
    for seg in segments:
        if not seg.sha256 or not seg.chain:
            problems.append(f"{seg.path}: no hash recorded")
            previous = seg
            continue
        if data_dir is not None:
            try:
                actual = file_sha256(Path(data_dir) / seg.path)
            except OSError as exc:
                problems.append(f"{seg.path}: cannot be read ({exc.strerror})")
                actual = None
            if actual is not None and actual != seg.sha256:
                problems.append(f"{seg.path}: the file's contents changed since it was recorded")
        if previous is not None and previous.chain and seg.prev_chain != previous.chain:
            problems.append(f"{seg.path}: does not follow {previous.path} (a segment was "
                            "removed, added or reordered)")
        expected = chain_link(seg.prev_chain or GENESIS, seg.camera, seg.seq, seg.start_us,
                              seg.end_us, seg.bytes, seg.sha256)
        if expected != seg.chain:
            problems.append(f"{seg.path}: its recorded times, size or hash were altered")
        previous = seg
    return problems
