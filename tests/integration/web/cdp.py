"""A small Chrome DevTools Protocol client: headless Chromium driven over its websocket.

Debian's `chromium` is started with a throw-away profile, `--remote-debugging-port=0`
(it writes the port it chose to <profile>/DevToolsActivePort) and is killed, with its
whole process group, in close(). Only what the page tests need: navigate, evaluate,
set a cookie, wait for a condition, collect console messages and exceptions.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any, Callable

import websocket

CHROMIUM_NAMES = ("chromium", "chromium-browser")


def find_chromium() -> str | None:
    for name in CHROMIUM_NAMES:
        path = shutil.which(name)
        if path:
            return path
    return None


class CdpError(RuntimeError):
    pass


class Chromium:
    def __init__(self, profile: Path, binary: str | None = None, log: Path | None = None,
                 start_timeout: float = 30.0) -> None:
        binary = binary or find_chromium()
        if binary is None:
            raise CdpError("chromium is not installed")
        self.profile = Path(profile)
        self.profile.mkdir(parents=True, exist_ok=True)
        self._log = open(log or self.profile / "chromium.log", "ab")
        argv = [binary, "--headless=new", "--no-sandbox", "--disable-gpu",
                f"--user-data-dir={self.profile}", "--remote-debugging-port=0",
                "--remote-debugging-address=127.0.0.1",
                "--no-first-run", "--no-default-browser-check", "--mute-audio",
                "--autoplay-policy=no-user-gesture-required",
                # no internet here, and nothing to fetch: keep it quiet
                "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--disable-extensions", "--disable-default-apps",
                "--window-size=1280,800", "about:blank"]
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=self._log,
                                     stderr=self._log, start_new_session=True)
        self.events: list[dict] = []
        self._id = 0
        self.ws: websocket.WebSocket | None = None
        try:
            port = self._devtools_port(start_timeout)
            targets = json.loads(urllib.request.urlopen(
                f"http://127.0.0.1:{port}/json/list", timeout=10).read())
            page = next(t for t in targets if t.get("type") == "page")
            self.ws = websocket.create_connection(page["webSocketDebuggerUrl"], timeout=30,
                                                  suppress_origin=True)
            self.send("Page.enable")
            self.send("Runtime.enable")
            self.send("Network.enable")
        except BaseException:
            self.close()
            raise

    def _devtools_port(self, timeout: float) -> int:
        path = self.profile / "DevToolsActivePort"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise CdpError(f"chromium exited with {self.proc.returncode}: {self.log_tail()}")
            try:
                first = path.read_text().splitlines()[0]
                return int(first)
            except (OSError, IndexError, ValueError):
                time.sleep(0.05)
        raise CdpError(f"chromium did not open its DevTools port: {self.log_tail()}")

    def log_tail(self, limit: int = 3000) -> str:
        self._log.flush()
        try:
            text = Path(self._log.name).read_text(errors="replace")
        except OSError:
            return ""
        return text[-limit:]

    # --- protocol --------------------------------------------------------------------------
    def send(self, method: str, timeout: float = 30.0, **params: Any) -> dict:
        assert self.ws is not None
        self._id += 1
        msg_id = self._id
        self.ws.send(json.dumps({"id": msg_id, "method": method, "params": params}))
        deadline = time.monotonic() + timeout
        while True:
            self.ws.settimeout(max(0.05, deadline - time.monotonic()))
            try:
                message = json.loads(self.ws.recv())
            except websocket.WebSocketTimeoutException:
                raise CdpError(f"{method}: no answer within {timeout} s") from None
            if message.get("id") == msg_id:
                if "error" in message:
                    raise CdpError(f"{method}: {message['error']}")
                return message.get("result", {})
            if "method" in message:
                self.events.append(message)

    def pump(self, seconds: float) -> None:
        """Read events for `seconds` (console messages, load events)."""
        assert self.ws is not None
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            self.ws.settimeout(left)
            try:
                message = json.loads(self.ws.recv())
            except websocket.WebSocketTimeoutException:
                return
            if "method" in message:
                self.events.append(message)

    def evaluate(self, expression: str, await_promise: bool = False) -> Any:
        result = self.send("Runtime.evaluate", expression=expression, returnByValue=True,
                           awaitPromise=await_promise)
        if "exceptionDetails" in result:
            raise CdpError(f"{expression!r}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def navigate(self, url: str, timeout: float = 30.0) -> None:
        self.events = [e for e in self.events if e["method"] != "Page.loadEventFired"]
        self.send("Page.navigate", url=url)
        deadline = time.monotonic() + timeout
        while not any(e["method"] == "Page.loadEventFired" for e in self.events):
            if time.monotonic() > deadline:
                raise CdpError(f"{url} did not load within {timeout} s")
            self.pump(0.1)

    def choose_files(self, selector: str, *paths: Path) -> None:
        """What picking files in the file dialog does to an <input type=file>."""
        found = self.send("Runtime.evaluate",
                          expression=f"document.querySelector({json.dumps(selector)})")
        self.send("DOM.setFileInputFiles", files=[str(p) for p in paths],
                  objectId=found["result"]["objectId"])

    def set_cookie(self, url: str, name: str, value: str) -> None:
        ok = self.send("Network.setCookie", url=url, name=name, value=value, httpOnly=True,
                       sameSite="Strict")
        if not ok.get("success", True):
            raise CdpError(f"cookie {name} was refused")

    def wait_for(self, expression: str, timeout: float,
                 check: Callable[[Any], bool] = bool) -> Any:
        """Evaluate until `check(value)` holds; the last value in the error otherwise."""
        deadline = time.monotonic() + timeout
        value = None
        while time.monotonic() < deadline:
            value = self.evaluate(expression)
            if check(value):
                return value
            self.pump(0.2)
        raise CdpError(f"timed out after {timeout} s waiting for {expression!r}; last value "
                       f"{value!r}; console: {self.console()[-10:]}")

    def console(self) -> list[str]:
        lines = []
        for e in self.events:
            if e["method"] == "Runtime.consoleAPICalled":
                args = e["params"].get("args", [])
                lines.append(" ".join(str(a.get("value", a.get("description", ""))) for a in args))
            elif e["method"] == "Runtime.exceptionThrown":
                details = e["params"]["exceptionDetails"]
                lines.append("exception: " + str(details.get("exception", {}).get(
                    "description", details.get("text"))))
        return lines

    def click(self, x: float, y: float) -> None:
        """A real left mouse click at (x, y) CSS pixels of the viewport."""
        for kind in ("mousePressed", "mouseReleased"):
            self.send("Input.dispatchMouseEvent", type=kind, x=x, y=y, button="left",
                      clickCount=1)

    def center_of(self, selector: str) -> tuple[float, float]:
        """The middle of the first element matching `selector`, scrolled into view."""
        found = self.evaluate(
            f"(() => {{ const e = document.querySelector({json.dumps(selector)}); if (!e) "
            "return null; e.scrollIntoView({block: 'center'}); const r = "
            "e.getBoundingClientRect(); return [r.left + r.width / 2, r.top + r.height / 2];"
            " })()")
        if found is None:
            raise CdpError(f"no element matches {selector!r}")
        return found[0], found[1]

    def emulate_device(self, width: int, height: int, scale: float = 2.0,
                       mobile: bool = True) -> None:
        """A phone-sized viewport (Emulation.setDeviceMetricsOverride; mobile honours the
        page's viewport meta); reset_device() goes back to the window's size."""
        self.send("Emulation.setDeviceMetricsOverride", width=width, height=height,
                  deviceScaleFactor=scale, mobile=mobile)

    def reset_device(self) -> None:
        self.send("Emulation.clearDeviceMetricsOverride")

    def open_tab(self, url: str = "about:blank") -> str:
        """Another tab in front of this page (which becomes hidden); its target id."""
        return self.send("Target.createTarget", url=url)["targetId"]

    def close_tab(self, target_id: str) -> None:
        self.send("Target.closeTarget", targetId=target_id)

    def bring_to_front(self) -> None:
        """This page's tab in front again (visible)."""
        self.send("Page.bringToFront")

    def screenshot(self, path: Path) -> None:
        import base64

        data = self.send("Page.captureScreenshot", format="png")["data"]
        Path(path).write_bytes(base64.b64decode(data))

    def close(self) -> None:
        if self.ws is not None:
            try:
                self.ws.close()
            except (OSError, websocket.WebSocketException):
                pass
            self.ws = None
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)  # chromium and its helpers
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        else:
            try:  # helpers left behind by a crashed browser
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self._log.close()


PHONE = {"width": 390, "height": 844, "deviceScaleFactor": 2, "mobile": True}


def admin_phone_browser(profile: Path, site, locale: str | None = None) -> Chromium:
    """Chromium at a phone's size, logged in with the session of `site.admin` (an
    ApiClient after login), for the admin pages' tests. Close it when done."""
    from appliance.web.security import COOKIE

    chrome = Chromium(profile)
    token = next(c.value for c in site.admin.jar if c.name == COOKIE)
    chrome.set_cookie(site.base + "/", COOKIE, token)
    chrome.send("Emulation.setDeviceMetricsOverride", **PHONE)
    if locale:
        chrome.send("Emulation.setLocaleOverride", locale=locale)   # dates' format
    return chrome


def needs_chromium():
    """The skip marker of every browser test: Debian's chromium, which `make setup` installs."""
    import pytest

    return pytest.mark.skipif(find_chromium() is None, reason="Debian's chromium is not "
                              "installed (make setup installs it; see the Makefile DEBS)")
