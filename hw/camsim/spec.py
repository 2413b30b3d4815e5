"""What one simulated camera is: shared by the launcher (venv) and the server (system Python).

Stdlib only: `rtsp_server.py` runs under Debian's /usr/bin/python3 (for GStreamer's gi)
and imports this module too, so both ends of the JSON spec agree by construction.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from pathlib import Path

VIDEO_CODECS = ("h264", "h265")
AUDIO_CODECS = ("aac", "pcm_mulaw", "pcm_alaw")


class SpecError(ValueError):
    """The JSON spec is malformed or inconsistent."""


@dataclass(frozen=True)
class SimCamera:
    """One simulated camera: a clip served on ``mount``.

    ``audio`` must match the clip (None, "aac", "pcm_mulaw", "pcm_alaw"). ``shared``
    serves every client from one pipeline, like a camera; False builds one per client.
    ``user``/``password`` protect the mount with RTSP authentication. With
    ``rebase_after_s`` set, RTP timestamps jump by ``rebase_by_s`` seconds once that
    much media time has been played (once per pipeline).
    """

    mount: str
    clip: Path | str
    codec: str = "h264"
    audio: str | None = None
    shared: bool = True
    user: str | None = None
    password: str | None = None
    rebase_after_s: float | None = None
    rebase_by_s: float = -10.0

    def to_spec(self) -> dict:
        """The JSON-ready form sent to the server process."""
        spec = asdict(self)
        spec["clip"] = str(Path(self.clip).resolve())
        return spec

    @classmethod
    def from_dict(cls, raw: dict) -> SimCamera:
        """The server side: parse and check one mount of the JSON spec."""
        known = {f.name for f in fields(cls)}
        unknown = set(raw) - known
        if unknown:
            raise SpecError(f"unknown mount keys {sorted(unknown)} in {raw.get('mount')!r}")
        spec = cls(**raw)
        spec.validate()
        return spec

    def validate(self) -> None:
        if not self.mount.startswith("/") or self.mount == "/":
            raise SpecError(f"mount must look like /cam1, got {self.mount!r}")
        if self.codec not in VIDEO_CODECS:
            raise SpecError(f"{self.mount}: codec must be one of {sorted(VIDEO_CODECS)}")
        if self.audio is not None and self.audio not in AUDIO_CODECS:
            raise SpecError(f"{self.mount}: audio must be null or one of {sorted(AUDIO_CODECS)}")
        if not Path(self.clip).is_file():
            raise SpecError(f"{self.mount}: clip {self.clip} does not exist")
        if (self.user is None) != (self.password is None):
            raise SpecError(f"{self.mount}: set both user and password, or neither")
        if self.rebase_after_s is not None and self.rebase_after_s < 0:
            raise SpecError(f"{self.mount}: rebase_after_s must be >= 0")
