"""Misbehaving peers on loopback for tests: TCP servers with a scripted behaviour per
connection (and a count of accepted connections, to prove that nothing connected), and
a UDP WS-Discovery responder that answers probes with whatever the test wants."""

from __future__ import annotations

import re
import select
import socket
import threading
from typing import Callable

Behaviour = Callable[[socket.socket, threading.Event], None]


class TcpPeer:
    def __init__(self, behaviour: Behaviour | None = None, host: str = "127.0.0.1") -> None:
        self.behaviour = behaviour
        self.accepts = 0
        self.sent = 0
        self.requests: list[bytes] = []
        self.stop = threading.Event()
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind((host, 0))
        self._sock.listen(16)
        self.host = host
        self.port = self._sock.getsockname()[1]
        self._threads: list[threading.Thread] = []

    def url(self, path: str = "/onvif/device_service") -> str:
        return f"http://{self.host}:{self.port}{path}"

    def __enter__(self) -> "TcpPeer":
        thread = threading.Thread(target=self._serve, daemon=True)
        thread.start()
        self._threads.append(thread)
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for thread in self._threads:
            thread.join(timeout=5)
        self._sock.close()

    def _serve(self) -> None:
        while not self.stop.is_set():
            ready, _, _ = select.select([self._sock], [], [], 0.05)
            if not ready:
                continue
            conn, _ = self._sock.accept()
            self.accepts += 1
            if self.behaviour is None:
                conn.close()
                continue
            thread = threading.Thread(target=self._run, args=(conn,), daemon=True)
            thread.start()
            self._threads.append(thread)

    def _run(self, conn: socket.socket) -> None:
        try:
            conn.settimeout(5)
            self.behaviour(conn, self.stop)
        except OSError:
            pass
        finally:
            conn.close()

    def read_request(self, conn: socket.socket) -> bytes:
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = conn.recv(65536)
            if not chunk:
                break
            data += chunk
        head, _, rest = data.partition(b"\r\n\r\n")
        match = re.search(rb"(?i)content-length:\s*(\d+)", head)
        need = int(match.group(1)) if match else 0
        while len(rest) < need:
            chunk = conn.recv(65536)
            if not chunk:
                break
            rest += chunk
        self.requests.append(head + b"\r\n\r\n" + rest)
        return head

    def send(self, conn: socket.socket, data: bytes) -> None:
        conn.sendall(data)
        self.sent += len(data)


class DiscoveryResponder:
    """Answers each WS-Discovery probe it receives with `answer(message_id)` datagrams."""

    def __init__(self, answer: Callable[[str], list[bytes]], host: str = "127.0.0.2") -> None:
        self.answer = answer
        self.probes: list[bytes] = []
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._sock.bind((host, 0))
        self.host = host
        self.port = self._sock.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def __enter__(self) -> "DiscoveryResponder":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._sock.close()

    def _serve(self) -> None:
        while not self._stop.is_set():
            ready, _, _ = select.select([self._sock], [], [], 0.05)
            if not ready:
                continue
            data, sender = self._sock.recvfrom(65535)
            self.probes.append(data)
            match = re.search(rb"MessageID>([^<]+)<", data)
            for reply in self.answer(match.group(1).decode() if match else ""):
                self._sock.sendto(reply, sender)
