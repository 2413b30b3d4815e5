"""Export through the web API, on footage the real recorder wrote from simulated RTSP
cameras, through the real app on waitress: the MP4 plays to ffprobe with the expected
duration, the downloaded manifest verifies with `nvr verify-export` and fails after one
byte is flipped; a running export cancels and leaves nothing; two at once at most;
viewers refused; hostile input refused with words and nothing created; exports listed
again after a restart."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from datetime import datetime, timezone
from pathlib import Path

import pytest

from appliance.core.device_key import load_or_create
from appliance.playback.export import new_export_id
from appliance.recorder.index import RecordingIndex
from appliance.storage.volume import MARKER, write_marker
from appliance.web.services import WebPaths
from hw.camsim.server import SimCamera, SimCameraServer, free_port
from tests.integration.conftest import ffprobe_json
from tests.integration.recorder_process import ROOT, RecorderProcess
from tests.integration.web.webserver import WebServer
from tests.integration.web_session import ApiClient
from tests.waiting import wait_until

GOP_S = 1.0          # the clip's keyframe interval
PASSWORD = "a long user password"
SLOW = 60_000        # bytes of recordings per second: an export of this footage takes ~30 s


def iso(us: int) -> str:
    return datetime.fromtimestamp(us / 1e6, timezone.utc).isoformat()


@pytest.fixture(scope="module")
def recorded(tmp_path_factory, small_clip):
    """Two cameras recorded by the real recorder in 2 s segments, then stopped; the data
    directory marked as an initialised data disk (exports go only there)."""
    tmp = tmp_path_factory.mktemp("web-export")
    server = SimCameraServer(free_port(), [SimCamera("/cam1", small_clip, audio="aac"),
                                           SimCamera("/cam2", small_clip, audio="aac")],
                             log_path=tmp / "camsim.log")
    server.start()
    data = tmp / "data"
    try:
        urls = {"cam": server.url("/cam1"), "cam2": server.url("/cam2")}
        with RecorderProcess(data, urls, "--segment-seconds", "2") as rec:
            for cam in urls:
                rec.wait_for(lambda e, c=cam: e["event"] == "segment" and e["camera"] == c, 60,
                             count=5, what=f"{cam} segments")
            assert rec.stop() == 0
    finally:
        server.stop()
    write_marker(data)
    index = RecordingIndex(data, readonly=True)
    segments = sorted(index.segments("cam"), key=lambda s: s.seq)
    index.close()
    assert len(segments) >= 5
    return {"data": data, "segments": segments, "tmp": tmp, "key": tmp / "keys" / "device.pem"}


def start_site(recorded, name: str, paths: WebPaths | None = None) -> WebServer:
    paths = paths or WebPaths(device_key=recorded["key"])
    return WebServer(recorded["data"], recorded["tmp"] / f"{name}.sqlite3", {}, paths=paths)


@pytest.fixture(scope="module")
def site(recorded):
    server = start_site(recorded, "accounts")
    server.accounts.add_user("op", PASSWORD, "operator")
    server.accounts.add_user("viewer", PASSWORD, "viewer", ("cam", "cam2"))
    server.accounts.add_user("viewer2", PASSWORD, "viewer", ("cam2",))
    yield server
    for job in get(server.client, "/api/v1/exports")[1]["exports"]:
        if job["state"] == "running":
            server.client.json("DELETE", job["url"], {})
    server.close()


@pytest.fixture
def slow(site):
    site.app.config["VIGIL_EXPORT_BYTES_PER_S"] = SLOW
    yield
    site.app.config["VIGIL_EXPORT_BYTES_PER_S"] = 0


def login(site, user: str) -> ApiClient:
    return ApiClient(site.base).login(user, PASSWORD)


def get(client: ApiClient, path: str) -> tuple[int, dict]:
    return client.json("GET", path)


def fetch(client: ApiClient, path: str, headers: dict | None = None):
    """(status, headers, body) of a GET with the client's session."""
    req = urllib.request.Request(client.base + path, headers=headers or {})
    try:
        with client.opener.open(req, timeout=30) as resp:
            return resp.status, resp.headers, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.headers, err.read()


def finished(client: ApiClient, export_id: str, timeout: float = 60) -> dict:
    def state():
        status, job = get(client, f"/api/v1/exports/{export_id}")
        assert status == 200, job
        return job if job["state"] != "running" else None
    return wait_until(state, timeout, f"export {export_id} to finish", step=0.2)


def on_disk(recorded) -> dict:
    """What an export creates: entries under exports/ and protection rows."""
    root = recorded["data"] / "exports"
    index = RecordingIndex(recorded["data"], readonly=True)
    try:
        protections = sorted((p.camera, p.start_us, p.end_us, p.reason)
                             for p in index.protections())
    finally:
        index.close()
    return {"exports": sorted(p.name for p in root.iterdir()) if root.exists() else [],
            "protections": protections}


def protections_of(recorded, export_id: str) -> list:
    return [p for p in on_disk(recorded)["protections"] if p[3] == f"export {export_id}"]


def audit(site, what: str) -> list[dict]:
    return [a for a in site.accounts.audit_log() if a["what"] == what]


def verify(directory: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "appliance.cli", "verify-export",
                           str(directory), *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=60)


@pytest.fixture(scope="module")
def done_export(site, recorded):
    """One finished export of camera `cam` (two segments), for the tests that need one."""
    segs = recorded["segments"]
    op = login(site, "op")
    status, job = op.json("POST", "/api/v1/exports", {
        "cameras": ["cam"], "start": iso(segs[1].start_us), "end": iso(segs[2].end_us)})
    assert status == 202, job
    job = finished(op, job["id"])
    assert job["state"] == "done", job
    return job


# --- export, download, verify --------------------------------------------------------------
@pytest.mark.timeout(120)
def test_an_export_across_segment_boundaries_plays_and_its_manifest_verifies(site, recorded,
                                                                          tmp_path):
    segs = recorded["segments"]
    start = segs[1].start_us + 1_500_000   # mid-GOP, inside the second segment
    end = segs[3].start_us + 1_200_000     # inside the fourth: crosses two boundaries
    op = login(site, "op")
    status, job = op.json("POST", "/api/v1/exports", {
        "cameras": ["cam", "cam2"], "start": iso(start), "end": iso(end)})
    assert status == 202, job
    assert job["state"] == "running" and job["started_by"] == "op" and job["files"] == []
    job = finished(op, job["id"])
    assert job["state"] == "done" and job["progress"] == 100 and job["error"] is None, job
    videos = [f for f in job["files"] if f["kind"] == "video"]
    assert sorted(f["camera"] for f in videos) == ["cam", "cam2"]
    assert [f["name"] for f in job["files"] if f["kind"] != "video"] == ["manifest.json",
                                                                          "manifest.sig"]
    # On the data disk, in exports/<id>/, and nothing else there.
    directory = recorded["data"] / "exports" / job["id"]
    assert sorted(p.name for p in directory.iterdir()) == sorted(f["name"] for f in job["files"])
    for f in job["files"]:
        assert f["bytes"] == (directory / f["name"]).stat().st_size

    # Download every file as the browser would; each is an attachment with its own name.
    download = tmp_path / "download"
    download.mkdir()
    for f in job["files"]:
        status, headers, body = fetch(op, f["url"])
        assert status == 200, body[:200]
        assert headers["Content-Disposition"] == f"attachment; filename={f['name']}"
        assert headers["Content-Type"].split(";")[0] == {
            "video": "video/mp4", "manifest": "application/json",
            "signature": "text/plain"}[f["kind"]]
        assert len(body) == f["bytes"]
        (download / f["name"]).write_bytes(body)
    status, headers, body = fetch(op, videos[0]["url"], {"Range": "bytes=0-99"})
    assert status == 206 and len(body) == 100

    # The MP4 plays: H.264 + AAC, from the keyframe at or before `start` to `end`.
    cam = next(f for f in videos if f["camera"] == "cam")
    probe = ffprobe_json(download / cam["name"], "-show_format", "-show_streams")
    assert [s["codec_name"] for s in probe["streams"]] == ["h264", "aac"]
    duration = float(probe["format"]["duration"])
    assert abs(duration - (end - start) / 1e6) <= GOP_S + 0.1, duration

    # `nvr verify-export` on the downloaded files: intact, signed by this box's key ...
    fingerprint = load_or_create(recorded["key"]).fingerprint
    assert job["fingerprint"] == fingerprint
    result = verify(download, "--fingerprint", fingerprint)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "signature: valid" in result.stdout and "OK: the export is intact" in result.stdout
    # ... and one byte changed in the manifest is caught.
    manifest = download / "manifest.json"
    data = bytearray(manifest.read_bytes())
    data[data.index(b'"serial":"') + 11] ^= 0x01
    manifest.write_bytes(bytes(data))
    result = verify(download)
    assert result.returncode == 1
    assert "FAIL: signature invalid: manifest.json was changed" in result.stdout

    # The range stays protected from retention; everything is in the audit log.
    assert sorted(p[:3] for p in protections_of(recorded, job["id"])) == [
        ("cam", start, end), ("cam2", start, end)]
    started = audit(site, "export_started")
    assert any(a["who"] == "op" and a["detail"].startswith(job["id"]) for a in started)
    downloads = [a["detail"] for a in audit(site, "export_downloaded")]
    assert all(f"{job['id']}/{f['name']}" in downloads for f in job["files"])


def test_the_list_shows_exports_cameras_and_limits(site, done_export):
    status, body = get(login(site, "op"), "/api/v1/exports")
    assert status == 200
    assert body["cameras"] == ["cam", "cam2"]
    assert body["limits"] == {"running": 2, "days": 31}
    assert body["fingerprint"] == done_export["fingerprint"]
    listed = {e["id"]: e for e in body["exports"]}
    assert listed[done_export["id"]]["state"] == "done"
    ids = [e["id"] for e in body["exports"]]
    assert ids == sorted(ids, reverse=True)


# --- cancel and the limit --------------------------------------------------------------------
@pytest.mark.timeout(120)
def test_cancelling_a_running_export_leaves_nothing_behind(site, recorded, slow):
    segs = recorded["segments"]
    op = login(site, "op")
    status, job = op.json("POST", "/api/v1/exports", {
        "cameras": ["cam", "cam2"], "start": iso(segs[0].start_us), "end": iso(segs[-1].end_us)})
    assert status == 202, job
    export_id = job["id"]
    root = recorded["data"] / "exports"
    # Running: part of an MP4 written in the hidden directory, the range protected.
    wait_until(lambda: list(root.glob(f".{export_id}.partial-*/*.mp4")), 30,
               "an MP4 being written in the hidden directory")
    assert get(op, f"/api/v1/exports/{export_id}")[1]["progress"] > 0
    assert len(protections_of(recorded, export_id)) == 2
    status, body = fetch(op, f"/api/v1/exports/{export_id}/files/manifest.json")[::2]
    assert status == 409 and b"still running" in body

    began = time.monotonic()
    status, job = op.json("DELETE", f"/api/v1/exports/{export_id}", {})
    took = time.monotonic() - began
    assert status == 200, job
    print(f"\nDELETE of a running export answered `cancelled` after {took * 1000:.0f} ms")
    assert took < 3.0
    assert job["state"] == "cancelled" and job["files"] == [] and job["error"] is None
    assert get(op, f"/api/v1/exports/{export_id}")[1]["state"] == "cancelled"
    assert not (root / export_id).exists() and not list(root.glob(f".{export_id}*"))
    assert protections_of(recorded, export_id) == []
    assert any(a["detail"] == export_id and a["who"] == "op"
               for a in audit(site, "export_cancelled"))
    # A cancelled export is then removed from the list.
    status, answer = op.json("DELETE", f"/api/v1/exports/{export_id}", {})
    assert status == 200 and answer == {"id": export_id, "deleted": True}
    assert get(op, f"/api/v1/exports/{export_id}")[0] == 404


@pytest.mark.timeout(120)
def test_at_most_two_exports_run_at_once(site, recorded, slow):
    segs = recorded["segments"]
    body = {"cameras": ["cam"], "start": iso(segs[0].start_us), "end": iso(segs[-1].end_us)}
    clients = [login(site, "op") for _ in range(3)]
    before = len(audit(site, "export_refused"))
    barrier = threading.Barrier(3)
    answers = []

    def post(client):
        barrier.wait(10)
        answers.append(client.json("POST", "/api/v1/exports", body))
    threads = [threading.Thread(target=post, args=(c,)) for c in clients]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(status for status, _ in answers) == [202, 202, 429], answers
    refused = next(answer for status, answer in answers if status == 429)
    assert refused["error"].startswith("2 exports are already running (at most 2 at once")
    assert len(audit(site, "export_refused")) == before + 1
    running = [answer["id"] for status, answer in answers if status == 202]
    for export_id in running:
        status, job = clients[0].json("DELETE", f"/api/v1/exports/{export_id}", {})
        assert status == 200 and job["state"] == "cancelled"
    # Once they are cancelled, a new one may start.
    site.app.config["VIGIL_EXPORT_BYTES_PER_S"] = 0
    status, job = clients[0].json("POST", "/api/v1/exports", {
        **body, "end": iso(segs[1].end_us)})
    assert status == 202, job
    assert finished(clients[0], job["id"])["state"] == "done"
    for export_id in running:
        assert not list((recorded["data"] / "exports").glob(f"*{export_id}*"))


# --- who may ---------------------------------------------------------------------------------
def test_viewers_may_not_export_download_or_cancel(site, recorded, done_export):
    segs = recorded["segments"]
    body = {"cameras": ["cam"], "start": iso(segs[0].start_us), "end": iso(segs[1].end_us)}
    before = on_disk(recorded)
    one = done_export["url"]
    for user in ("viewer", "viewer2"):   # granted the camera, and not granted it
        client = login(site, user)
        assert client.json("POST", "/api/v1/exports", body)[0] == 403
        assert client.json("POST", "/api/v1/exports", {**body, "cameras": ["cam2"]})[0] == 403
        assert get(client, "/api/v1/exports")[0] == 403
        assert get(client, one)[0] == 403
        assert fetch(client, done_export["files"][0]["url"])[0] == 403
        assert client.json("DELETE", one, {})[0] == 403
    nobody = ApiClient(site.base)
    assert get(nobody, "/api/v1/exports")[0] == 401
    assert fetch(nobody, done_export["files"][0]["url"])[0] == 401
    assert on_disk(recorded) == before
    assert get(site.client, one)[1]["state"] == "done"


# --- hostile input ---------------------------------------------------------------------------
def hostile_bodies(segs):
    start, end = iso(segs[0].start_us), iso(segs[1].end_us)
    day = 86_400_000_000
    return {
        "dot-dot camera": ({"cameras": ["../../etc"], "start": start, "end": end}, 400),
        "absolute camera": ({"cameras": ["/etc/passwd"], "start": start, "end": end}, 400),
        "script camera": ({"cameras": ["<script>alert(1)</script>"], "start": start,
                           "end": end}, 400),
        "10 kB camera": ({"cameras": ["c" * 10240], "start": start, "end": end}, 400),
        "newline camera": ({"cameras": ["cam\n"], "start": start, "end": end}, 400),
        "camera as text": ({"cameras": "cam", "start": start, "end": end}, 400),
        "no camera": ({"cameras": [], "start": start, "end": end}, 400),
        "number camera": ({"cameras": [1], "start": start, "end": end}, 400),
        "null camera": ({"cameras": [None], "start": start, "end": end}, 400),
        "nested camera": ({"cameras": [["cam"]], "start": start, "end": end}, 400),
        "40 cameras": ({"cameras": ["cam"] * 40, "start": start, "end": end}, 400),
        "unknown camera": ({"cameras": ["nosuchcam"], "start": start, "end": end}, 400),
        "missing start": ({"cameras": ["cam"], "end": end}, 400),
        "start as number": ({"cameras": ["cam"], "start": segs[0].start_us, "end": end}, 400),
        "start as list": ({"cameras": ["cam"], "start": [start], "end": end}, 400),
        "start without offset": ({"cameras": ["cam"], "start": start[:19], "end": end}, 400),
        "10 kB start": ({"cameras": ["cam"], "start": "2" * 10240, "end": end}, 400),
        "script start": ({"cameras": ["cam"], "start": "<script>", "end": end}, 400),
        "year 1": ({"cameras": ["cam"], "start": "0001-01-01T00:00:00Z", "end": end}, 400),
        "end before start": ({"cameras": ["cam"], "start": end, "end": start}, 400),
        "empty range": ({"cameras": ["cam"], "start": start, "end": start}, 400),
        "32 days": ({"cameras": ["cam"], "start": iso(segs[0].start_us - 32 * day),
                     "end": start}, 400),
        "extra field": ({"cameras": ["cam"], "start": start, "end": end,
                         "out": "/tmp/x"}, 400),
        "list body": ([["cam"], start, end], 400),
        "text body": ("cam", 400),
        "null body": (None, 400),
        "no footage": ({"cameras": ["cam"], "start": iso(segs[0].start_us - 3 * day),
                        "end": iso(segs[0].start_us - 2 * day)}, 409),
    }


@pytest.mark.timeout(60)
def test_hostile_requests_are_refused_with_words_and_create_nothing(site, recorded):
    op = login(site, "op")
    before = on_disk(recorded)
    listed = get(op, "/api/v1/exports")[1]["exports"]
    for name, (body, expected) in hostile_bodies(recorded["segments"]).items():
        status, raw = _post_raw(op, json.dumps(body).encode())
        answer = json.loads(raw)
        assert status == expected, (name, status, answer)
        assert isinstance(answer.get("error"), str) and 10 < len(answer["error"]) < 400, name
    # Not JSON, or without the CSRF token: refused before the route runs.
    assert _post_raw(op, b"cameras=cam", "application/x-www-form-urlencoded")[0] == 415
    no_csrf = ApiClient(site.base).login("op", PASSWORD)
    no_csrf.csrf = ""
    assert no_csrf.json("POST", "/api/v1/exports", {"cameras": ["cam"]})[0] == 403
    assert on_disk(recorded) == before
    assert get(op, "/api/v1/exports")[1]["exports"] == listed


def _post_raw(client: ApiClient, data: bytes, content_type: str = "application/json"):
    req = urllib.request.Request(client.base + "/api/v1/exports", data=data, method="POST",
                                 headers={"Content-Type": content_type,
                                          "X-CSRF-Token": client.csrf})
    try:
        with client.opener.open(req, timeout=30) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


@pytest.mark.parametrize("path", [
    "/files/../../accounts.sqlite3",
    "/files/..%2F..%2Faccounts.sqlite3",
    "/files/..%2F..%2F..%2Findex.sqlite3",
    "/files/%2Fetc%2Fpasswd",
    "/files//etc/passwd",
    "/files/..",
    "/files/index.sqlite3",
    "/files/manifest.json%00.mp4",
    "/files/manifest.json%2F..%2F..%2Findex.sqlite3",
    "/files/" + "a" * 300 + ".mp4",
    "/../../index.sqlite3",
])
def test_downloads_serve_only_the_exports_own_files(site, done_export, recorded, path):
    op = login(site, "op")
    status, _, body = fetch(op, done_export["url"] + path)
    assert status == 404, (path, status)
    assert b"SQLite format 3" not in body and b"root:" not in body


@pytest.mark.parametrize("export_id", ["..", "..%2F..%2Fdata", "%2Fetc", "x" * 300,
                                       "20260101T000000Z-000000", ".20260101T000000Z-000000"])
def test_an_unknown_export_id_is_404(site, export_id):
    op = login(site, "op")
    assert get(op, f"/api/v1/exports/{export_id}")[0] == 404
    # (`%2F` arrives as `/`: Werkzeug answers a doubled slash with a redirect to the path
    # without it, which a DELETE does not follow, and which is also unknown.)
    assert op.request("DELETE", f"/api/v1/exports/{export_id}", {})[0] in (
        (404, 308) if "%2F" in export_id else (404,))
    assert fetch(op, f"/api/v1/exports/{export_id}/files/manifest.json")[0] == 404


# --- where exports may go --------------------------------------------------------------------
def test_exports_are_refused_off_the_data_disk_and_without_a_device_key(site, recorded):
    segs = recorded["segments"]
    body = {"cameras": ["cam"], "start": iso(segs[0].start_us), "end": iso(segs[1].end_us)}
    op = login(site, "op")
    before = on_disk(recorded)
    marker = recorded["data"] / MARKER
    marker.rename(marker.with_name("marker.away"))
    try:
        status, answer = op.json("POST", "/api/v1/exports", body)
    finally:
        marker.with_name("marker.away").rename(marker)
    assert status == 409 and answer["error"].startswith("exports are written to the data disk")
    assert "is the disk mounted?" in answer["error"]
    keyless = start_site(recorded, "keyless", WebPaths())
    try:
        status, answer = keyless.client.json("POST", "/api/v1/exports", body)
    finally:
        keyless.close()
    assert status == 503 and "device key" in answer["error"]
    assert on_disk(recorded) == before


# --- after a restart -------------------------------------------------------------------------
def test_after_a_restart_finished_exports_are_listed_and_interrupted_ones_cleaned(
        site, recorded, done_export):
    segs = recorded["segments"]
    # What a web service killed in the middle of an export leaves behind: the hidden
    # partial directory and the protection rows of that export.
    lost_id = new_export_id(time.time() - 60)
    partial = recorded["data"] / "exports" / f".{lost_id}.partial-{lost_id}"
    partial.mkdir()
    (partial / "cam_half.mp4").write_bytes(b"\0" * 1000)
    index = RecordingIndex(recorded["data"])
    try:
        index.protect("cam", segs[0].start_us, segs[1].end_us, f"export {lost_id}", 0)
    finally:
        index.close()
    restarted = start_site(recorded, "restarted")
    try:
        status, body = get(restarted.client, "/api/v1/exports")
        assert status == 200
        listed = {e["id"]: e for e in body["exports"]}
        again = listed[done_export["id"]]
        assert again["state"] == "done" and again["progress"] == 100
        assert [(f["name"], f["bytes"]) for f in again["files"]] == \
            [(f["name"], f["bytes"]) for f in done_export["files"]]
        status, headers, data = fetch(restarted.client, again["files"][0]["url"])
        assert status == 200 and headers["Content-Type"] == "video/mp4"
        lost = listed[lost_id]
        assert lost["state"] == "failed" and lost["files"] == []
        assert lost["error"].startswith("the web service stopped while this export was running")
        assert not partial.exists()
        assert protections_of(recorded, lost_id) == []
        assert restarted.client.json("DELETE", lost["url"], {})[0] == 200
    finally:
        restarted.close()


def test_deleting_a_finished_export_removes_its_files_and_keeps_the_protection(site, recorded):
    segs = recorded["segments"]
    op = login(site, "op")
    status, job = op.json("POST", "/api/v1/exports", {
        "cameras": ["cam2"], "start": iso(segs[2].start_us), "end": iso(segs[3].end_us)})
    assert status == 202, job
    job = finished(op, job["id"])
    assert job["state"] == "done"
    status, answer = op.json("DELETE", job["url"], {})
    assert status == 200 and answer["deleted"] is True
    assert answer["protection_ids"] == job["protection_ids"] and "nvr protect" in answer["note"]
    assert not (recorded["data"] / "exports" / job["id"]).exists()
    assert get(op, job["url"])[0] == 404
    assert len(protections_of(recorded, job["id"])) == 1
    assert any(a["detail"].startswith(job["id"]) for a in audit(site, "export_deleted"))
