import json
import socket
import stat

import pytest

from appliance.core.control import MAX_LINE, ControlClient, ControlServer
from appliance.core.errors import FailedPrecondition, InvalidConfig, Unavailable, VigilError


def handlers():
    def echo(args):
        return {"got": args}

    def refuse(args):
        raise FailedPrecondition("Port 3 was power-cycled 1 times in the last hour")

    def crash(args):
        raise KeyError("bug")
    return {"echo": echo, "refuse": refuse, "crash": crash}


@pytest.fixture
def server(tmp_path):
    srv = ControlServer(tmp_path / "run" / "hwd.sock", handlers()).start()
    yield srv
    srv.close()


def raw(path, data: bytes) -> dict:
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(5)
        sock.connect(str(path))
        sock.sendall(data)
        return json.loads(sock.makefile("rb").readline())


def test_a_command_and_its_arguments_round_trip(server):
    assert ControlClient(server.path).call("echo", port=3, name="Port 3") == {
        "got": {"port": 3, "name": "Port 3"}}


def test_a_refusal_arrives_as_the_same_error_class_with_its_words(server):
    with pytest.raises(FailedPrecondition, match="last hour"):
        ControlClient(server.path).call("refuse")


def test_a_crashing_handler_answers_internal_and_the_server_keeps_serving(server):
    with pytest.raises(VigilError, match="failed inside the daemon"):
        ControlClient(server.path).call("crash")
    assert ControlClient(server.path).call("echo") == {"got": {}}


@pytest.mark.parametrize("line, words", [
    (b"not json\n", "not JSON"), (b"[1, 2]\n", "expected"),
    (b'{"command": "echo", "args": [1]}\n', "must be an object"),
    (b'{"command": "rm -rf /"}\n', "unknown command"),
    (b"\xff\xfe\n", "not JSON"),
    (b"{" + b" " * (MAX_LINE + 10) + b"}\n", "too large"),
])
def test_bad_requests_get_a_clear_refusal(server, line, words):
    reply = raw(server.path, line)
    assert reply["ok"] is False and reply["kind"] == "invalid" and words in reply["error"]


def test_unknown_commands_through_the_client_are_invalid(server):
    with pytest.raises(InvalidConfig, match="unknown command"):
        ControlClient(server.path).call("poe.explode")


def test_the_socket_is_not_world_connectable(server):
    assert stat.S_IMODE(server.path.stat().st_mode) == 0o660


def test_no_daemon_is_unavailable_with_the_reason(tmp_path):
    with pytest.raises(Unavailable, match="vigil-hwd is not running"):
        ControlClient(tmp_path / "nothing.sock").call("echo")


def test_a_slow_client_is_dropped_and_others_are_still_served(tmp_path):
    srv = ControlServer(tmp_path / "hwd.sock", handlers(), read_timeout=0.3).start()
    try:
        with socket.socket(socket.AF_UNIX) as slow:
            slow.connect(str(srv.path))
            slow.sendall(b'{"command": ')   # never finishes its line
            assert ControlClient(srv.path).call("echo", a=1) == {"got": {"a": 1}}
            slow.settimeout(5)
            assert slow.recv(100) == b""    # dropped after the read timeout
    finally:
        srv.close()


def test_a_stale_socket_file_from_a_killed_daemon_is_replaced(tmp_path):
    path = tmp_path / "hwd.sock"
    first = ControlServer(path, handlers())
    first._server.server_close()     # killed: the file stays behind
    second = ControlServer(path, handlers()).start()
    try:
        assert ControlClient(path).call("echo") == {"got": {}}
    finally:
        second.close()
