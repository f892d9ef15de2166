# Live tails (POST /api/v1/tail): the tenant's pubs of a channel glob as SSE
# events carrying each pub's envelope, in commit order, from WebSocket and
# API publishers alike; nothing of another tenant or channel; the history
# scope; bad globs; and a tail that stops reading is closed as a slow
# consumer (4001) while the server and other clients go on.
import json
import socket
import time

import pytest

from helpers_api import ADMIN_KEY, api, api_raw, full_key, scope_key, with_api
from parley_client import SLOW, connect, run


class Tail:
    """A raw HTTP tail: the request as sent, the head, then events by line."""

    def __init__(self, srv, body, key, timeout=5 * SLOW, rcvbuf=None):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(timeout)
        self.sock.connect(("127.0.0.1", srv.port))
        payload = json.dumps(body).encode()
        auth = f"Authorization: Bearer {key}\r\n" if key else ""
        self.sock.sendall(f"POST /api/v1/tail HTTP/1.1\r\nHost: x\r\n{auth}Content-Type: application/json\r\n"
                          f"Content-Length: {len(payload)}\r\n\r\n".encode() + payload)
        self.buf = b""

    def head(self):
        while b"\r\n\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            assert chunk, f"closed before the head: {self.buf!r}"
            self.buf += chunk
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode().split("\r\n")
        return int(lines[0].split()[1]), lines, self.buf

    def events(self, n, timeout=10 * SLOW):
        """The next n events (name, parsed data), skipping comments."""
        out, deadline = [], time.monotonic() + timeout
        while len(out) < n:
            while b"\n\n" in self.buf and len(out) < n:
                block, self.buf = self.buf.split(b"\n\n", 1)
                lines = block.decode().split("\n")
                if all(line.startswith(":") for line in lines):
                    continue
                name = next((line[7:] for line in lines if line.startswith("event: ")), "message")
                data = "".join(line[6:] for line in lines if line.startswith("data: "))
                out.append((name, json.loads(data)))
            if len(out) == n:
                break
            assert time.monotonic() < deadline, f"got {len(out)} of {n} events"
            chunk = self.sock.recv(65536)
            assert chunk, f"tail closed after {len(out)} of {n} events: {out}"
            self.buf += chunk
        return out

    def close(self):
        self.sock.close()


@pytest.fixture(scope="module")
def tsrv(module_factory):
    return module_factory(lambda cfg: with_api(cfg), name="tail")


def test_tail_streams_matching_pubs_with_their_envelopes(tsrv):
    t = Tail(tsrv, {"channel": "chat:*"}, full_key("acme"))
    other = Tail(tsrv, {"channel": "**"}, full_key("globex"))
    try:
        status, head, _ = t.head()
        assert status == 200 and "Content-Type: text/event-stream" in head
        assert other.head()[0] == 200

        async def publish():
            cl = await connect(tsrv)
            try:
                await cl.publish("chat:tail1", {"n": 1}, type="msg.new", headers={"h": "v"})
                await cl.publish("small:tail1", {"n": -1})  # not chat:*
            finally:
                await cl.close()
        run(publish())
        api(tsrv, "publish", {"channel": "chat:tail2", "data": {"n": 2}})
        api(tsrv, "publish", {"channel": "chat:tail1", "data": {"n": 3}, "correlation_id": "c-3"})
        got = t.events(3)
        assert [name for name, _ in got] == ["message"] * 3
        envs = [e for _, e in got]
        assert [e["data"]["n"] for e in envs] == [1, 2, 3]
        assert [e["channel"] for e in envs] == ["chat:tail1", "chat:tail2", "chat:tail1"]
        assert envs[0]["type"] == "msg.new" and envs[0]["headers"] == {"h": "v"}
        assert envs[2]["correlation_id"] == "c-3" and envs[2]["offset"] == 2
        assert all(e["tenant"] == "acme" and e["schema_version"] == 1 and e["id"] for e in envs)
        # another tenant's tail of everything saw none of it
        api(tsrv, "publish", {"channel": "chat:g", "data": {"n": 99}}, tenant="globex")
        g = other.events(1)
        assert g[0][1]["tenant"] == "globex" and g[0][1]["data"] == {"n": 99}
    finally:
        t.close()
        other.close()


def test_the_admin_key_names_the_tenant(tsrv):
    t = Tail(tsrv, {"channel": "chat:adm", "tenant": "acme"}, ADMIN_KEY)
    try:
        assert t.head()[0] == 200
        api(tsrv, "publish", {"channel": "chat:adm", "data": {"a": 1}})
        assert t.events(1)[0][1]["data"] == {"a": 1}
        # data published with line breaks still makes one event of one line
        body = '{"tenant": "acme", "channel": "chat:adm",\n "data": {\n  "b": [1,\r\n 2]\n}}'
        assert api_raw(tsrv, "publish", body, ADMIN_KEY)[0] == 200
        assert t.events(1)[0][1]["data"] == {"b": [1, 2]}
    finally:
        t.close()


@pytest.mark.parametrize("body,key,status,needle", [
    ({"channel": "chat:*"}, None, 401, "API key"),
    ({"channel": "chat:*"}, "pk_acme_publish", 403, "scopes"),
    ({}, "pk_acme_all", 400, "channel"),
    ({"channel": 5}, "pk_acme_all", 400, "channel"),
    ({"channel": "chat:a*"}, "pk_acme_all", 400, "whole segment"),
    ({"channel": "x" * 300}, "pk_acme_all", 400, "too long"),
    ({"channel": "chat:*"}, ADMIN_KEY, 404, "tenant"),
])
def test_bad_requests_get_a_documented_error(tsrv, body, key, status, needle):
    got, reply = api_raw(tsrv, "tail", body, key)
    assert got == status and needle in reply["error"]["message"], reply


def test_history_scope_is_enough(tsrv):
    t = Tail(tsrv, {"channel": "**"}, scope_key("acme", "history"))
    try:
        assert t.head()[0] == 200
    finally:
        t.close()


def test_a_tail_that_stops_reading_is_closed_and_others_go_on(server_factory):
    def small_queue(cfg):
        with_api(cfg)
        cfg["limits"]["outbound_queue_bytes"] = 65536
    srv = server_factory(small_queue, name="tailslow")
    slow = Tail(srv, {"channel": "chat:*"}, full_key("acme"), rcvbuf=4096)
    fast = Tail(srv, {"channel": "chat:*"}, full_key("acme"))
    try:
        assert slow.head()[0] == 200 and fast.head()[0] == 200
        blob = "x" * 30000
        n = 0
        deadline = time.monotonic() + 60 * SLOW
        # publish until the server has cut the slow tail (the metric counts it)
        while srv.metric("parley_slow_consumer_disconnects_total") < 1:
            assert time.monotonic() < deadline, "the slow tail was never cut"
            api(srv, "publish", {"channel": "chat:big", "data": {"n": n, "blob": blob}})
            n += 1
            assert [e[1]["data"]["n"] for e in fast.events(1)] == [n - 1]
        # what the slow tail got ends with the disconnect event, 4001
        slow.sock.settimeout(10 * SLOW)
        data = slow.buf
        while chunk := slow.sock.recv(1 << 20):
            data += chunk
        assert b"event: disconnect" in data and b'"code":4001' in data, data[-300:]
        assert srv.http("GET", "/healthz")[0] == 200
    finally:
        slow.close()
        fast.close()
