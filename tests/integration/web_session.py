"""Logging in to the appliance's web API from tests (setup first when the box is new)."""

from __future__ import annotations

import http.cookiejar
import json
import ssl
import urllib.error
import urllib.request

ADMIN, PASSWORD = "owner", "correct horse battery"


class ApiClient:
    """A browser-like client: a cookie jar, JSON bodies and the CSRF header."""

    def __init__(self, base: str, context: ssl.SSLContext | None = None) -> None:
        self.base = base.rstrip("/")
        self.jar = http.cookiejar.CookieJar()
        handlers = [urllib.request.HTTPCookieProcessor(self.jar)]
        if context is not None:  # HTTPS with the box's own certificate
            handlers.append(urllib.request.HTTPSHandler(context=context))
        self.opener = urllib.request.build_opener(*handlers)
        self.csrf = ""

    def request(self, method: str, path: str, body=None, headers=None) -> tuple[int, bytes]:
        data = json.dumps(body).encode() if body is not None else None
        hdrs = {"Content-Type": "application/json"} if data is not None else {}
        if self.csrf:
            hdrs["X-CSRF-Token"] = self.csrf
        hdrs.update(headers or {})
        req = urllib.request.Request(self.base + path, data=data, method=method, headers=hdrs)
        try:
            with self.opener.open(req, timeout=30) as resp:
                return resp.status, resp.read()
        except urllib.error.HTTPError as err:
            return err.code, err.read()

    def json(self, method: str, path: str, body=None) -> tuple[int, dict]:
        status, data = self.request(method, path, body)
        return status, json.loads(data or b"{}")

    def login(self, username: str = ADMIN, password: str = PASSWORD) -> "ApiClient":
        _, state = self.json("GET", "/api/v1/setup")
        path = "/api/v1/setup" if state.get("needed") else "/api/v1/login"
        status, answer = self.json("POST", path, {"username": username, "password": password})
        assert status in (200, 201), answer
        self.csrf = answer["csrf"]
        return self

    @property
    def cookie(self) -> str:
        return "; ".join(f"{c.name}={c.value}" for c in self.jar)
