"""HLS (fMP4, RFC 8216 version 7) playlists over the recorded segment files.

Each segment file becomes a discontinuity-separated run: its init section (ftyp+moov)
as EXT-X-MAP and every fragment (one GOP) as a byte range of the same file, so any
instant can be reached by fetching one GOP, and nothing is re-muxed or copied. Every
fragment carries EXT-X-PROGRAM-DATE-TIME, which players use to map wall-clock time.
Gaps in the recording are simply absent (with a discontinuity), so playback across a
gap or across midnight continues with the next footage. The fragments themselves are
served with wall-clock decode times (playback_api: `tfdt` rewritten in the byte range),
so players that join files by timestamps see time only move forward.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from appliance.playback.fragments import FragmentIndex, fragment_index
from appliance.playback.timeline import check_range
from appliance.recorder.index import RecordingIndex, Segment

MAX_PLAYLIST_US = 24 * 3600 * 1_000_000


class FragmentCache:
    """Fragment indexes of recently played files (a closed segment never changes)."""

    def __init__(self, size: int = 4096) -> None:
        self.size = size
        self._items: OrderedDict[tuple[str, int], FragmentIndex] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, path: Path, size: int) -> FragmentIndex:
        key = (str(path), size)
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        value = fragment_index(path)
        with self._lock:
            self._items[key] = value
            while len(self._items) > self.size:
                self._items.popitem(last=False)
        return value


def iso(us: int) -> str:
    return datetime.fromtimestamp(us / 1e6, timezone.utc).isoformat(timespec="milliseconds")


def playlist(index: RecordingIndex, data_dir: Path, camera: str, start_us: int, end_us: int,
             segment_url: Callable[[Segment], str], cache: FragmentCache) -> str:
    check_range(start_us, end_us)
    if end_us - start_us > MAX_PLAYLIST_US:
        raise ValueError("a playlist covers at most 24 hours; ask for the next day after")
    entries: list[str] = []
    longest = 1.0
    for seg in index.segments(camera, start_us, end_us):
        if seg.status == "missing":
            continue
        try:
            frags = cache.get(Path(data_dir) / seg.path, seg.bytes)
        except (OSError, ValueError):
            continue  # unreadable now (e.g. deleted by retention a moment ago)
        lines = _segment_lines(seg, frags, start_us, end_us, segment_url(seg))
        if lines:
            if entries:
                entries.append("#EXT-X-DISCONTINUITY")
            entries += lines[0]
            longest = max(longest, lines[1])
    head = ["#EXTM3U", "#EXT-X-VERSION:7", f"#EXT-X-TARGETDURATION:{math.ceil(longest)}",
            "#EXT-X-PLAYLIST-TYPE:VOD", "#EXT-X-MEDIA-SEQUENCE:0", "#EXT-X-INDEPENDENT-SEGMENTS"]
    return "\n".join(head + entries + ["#EXT-X-ENDLIST", ""])


def _segment_lines(seg: Segment, frags: FragmentIndex, start_us: int, end_us: int,
                   url: str) -> tuple[list[str], float] | None:
    if not frags.fragments:
        return None
    origin = frags.fragments[0].start
    starts = [seg.start_us + (f.start - origin) * 1_000_000 // frags.timescale
              for f in frags.fragments]
    ends = starts[1:] + [seg.end_us]
    lines = [f'#EXT-X-MAP:URI="{url}",BYTERANGE="{frags.init_size}@0"']
    longest = 0.0
    for frag, frag_start, frag_end in zip(frags.fragments, starts, ends):
        if frag_end <= start_us or frag_start >= end_us or frag_end <= frag_start:
            continue
        seconds = (frag_end - frag_start) / 1e6
        longest = max(longest, seconds)
        lines += [f"#EXT-X-PROGRAM-DATE-TIME:{iso(frag_start)}", f"#EXTINF:{seconds:.3f},",
                  f"#EXT-X-BYTERANGE:{frag.size}@{frag.offset}", url]
    return (lines, longest) if len(lines) > 1 else None
