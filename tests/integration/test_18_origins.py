# Scenario family 18: browser origins. allowed_origins decides which web
# pages may open a WebSocket (/ws) or an SSE stream (/sse) and read the HTTP
# API's answers: a WebSocket upgrade or SSE request from another origin is
# refused with 403 (code 103) before any upgrade or stream; a request without
# Origin (not a browser) is always served. On /api/v1/* and /sse an allowed
# origin gets Access-Control-Allow-Origin and Vary: Origin, and OPTIONS
# preflights are answered (204) or refused (403, no CORS headers). Without
# the key a single-tenant server allows http://localhost:* and
# http://127.0.0.1:*; one with tenants allows no browser origin.
import base64
import json
import os
import socket
import urllib.parse

import pytest

from parley_client import make_token

APP = "https://app.example.com"
EVIL = "https://evil.example"


def _request(server, method, path, headers=(), body=b""):
    """(status, {lowercase header: value}, body bytes read so far) of one
    request on a fresh connection; reads up to the end of the head (and the
    Content-Length body when there is one)."""
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1"]
    lines += [f"{k}: {v}" for k, v in headers]
    if body:
        lines.append(f"Content-Length: {len(body)}")
    data = ("\r\n".join(lines) + "\r\n\r\n").encode() + body
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as s:
        s.sendall(data)
        buf = b""
        while b"\r\n\r\n" not in buf:
            chunk = s.recv(4096)
            if not chunk:
                break
            buf += chunk
        head, _, rest = buf.partition(b"\r\n\r\n")
        status_line, *hlines = head.decode("latin-1").split("\r\n")
        hdrs = {}
        for ln in hlines:
            k, _, v = ln.partition(":")
            hdrs[k.strip().lower()] = v.strip()
        want = int(hdrs.get("content-length", "0"))
        while len(rest) < want:
            chunk = s.recv(4096)
            if not chunk:
                break
            rest += chunk
        return int(status_line.split(" ", 2)[1]), hdrs, rest


def _ws(server, origin=None):
    key = base64.b64encode(os.urandom(16)).decode()
    h = [("Upgrade", "websocket"), ("Connection", "Upgrade"), ("Sec-WebSocket-Key", key),
         ("Sec-WebSocket-Version", "13"), ("Sec-WebSocket-Protocol", "parley.v1")]
    if origin is not None:
        h.append(("Origin", origin))
    return _request(server, "GET", "/ws", h)


def _sse(server, origin=None, token=None):
    q = urllib.parse.urlencode([("token", token or make_token("alice", "acme")),
                                ("channel", "chat:origins")])
    h = [("Accept", "text/event-stream")]
    if origin is not None:
        h.append(("Origin", origin))
    return _request(server, "GET", f"/sse?{q}", h)


def _refused(status, hdrs, body):
    assert status == 403, (status, hdrs, body)
    err = json.loads(body)["error"]
    assert err["code"] == 103 and "origin not allowed" in err["message"], err
    assert "access-control-allow-origin" not in hdrs, hdrs


@pytest.fixture(scope="module")
def srv(module_factory):
    def tweak(cfg):
        cfg["allowed_origins"] = [APP, "http://localhost:*", "https://*.example.org"]
        cfg["tenants"][0]["api_keys"] = [{"key": "pk_origins", "scopes": ["*"]}]
    return module_factory(tweak, name="origins")


# ---------------------------------------------------------------- WebSocket

@pytest.mark.parametrize("origin", [APP, "http://localhost:5173", "https://a.b.example.org",
                                    "HTTPS://APP.EXAMPLE.COM", None])
def test_ws_allowed_origin_upgrades(srv, origin):
    status, hdrs, _ = _ws(srv, origin)
    assert status == 101, (status, hdrs)
    assert hdrs.get("upgrade", "").lower() == "websocket"


@pytest.mark.parametrize("origin", [EVIL, "http://app.example.com", APP + ":8443", APP + "/",
                                    "https://app.example.com.evil.example", "https://example.org",
                                    "null", "", "https://localhost:5173"])
def test_ws_other_origin_refused_before_upgrade(srv, origin):
    status, hdrs, body = _ws(srv, origin)
    _refused(status, hdrs, body)
    assert "sec-websocket-accept" not in hdrs


# ---------------------------------------------------------------------- SSE

def test_sse_allowed_origin_streams_with_cors(srv):
    status, hdrs, body = _sse(srv, APP)
    assert status == 200, (status, hdrs, body)
    assert hdrs["content-type"] == "text/event-stream"
    assert hdrs["access-control-allow-origin"] == APP
    assert hdrs["vary"] == "Origin"


def test_sse_without_origin_streams(srv):
    status, hdrs, _ = _sse(srv)
    assert status == 200
    assert "access-control-allow-origin" not in hdrs


def test_sse_other_origin_refused_before_stream(srv):
    status, hdrs, body = _sse(srv, EVIL)
    _refused(status, hdrs, body)
    assert hdrs.get("content-type") == "application/json"


def test_sse_error_from_allowed_origin_is_readable(srv):
    """A bad token from an allowed page: the 401 carries CORS so the page
    can read why."""
    status, hdrs, body = _sse(srv, APP, token="not-a-token")
    assert status == 401, (status, body)
    assert hdrs["access-control-allow-origin"] == APP
    assert hdrs["vary"] == "Origin"


# ---------------------------------------------------------------------- API

def _publish(srv, origin=None):
    h = [("Authorization", "Bearer pk_origins"), ("Content-Type", "application/json")]
    if origin is not None:
        h.append(("Origin", origin))
    body = json.dumps({"channel": "chat:origins", "data": {"n": 1}}).encode()
    return _request(srv, "POST", "/api/v1/publish", h, body)


def test_api_post_allowed_origin_gets_cors(srv):
    status, hdrs, body = _publish(srv, APP)
    assert status == 200, (status, body)
    assert hdrs["access-control-allow-origin"] == APP
    assert hdrs["vary"] == "Origin"


def test_api_post_other_origin_has_no_cors(srv):
    status, hdrs, _ = _publish(srv, EVIL)
    assert status == 200
    assert "access-control-allow-origin" not in hdrs
    assert hdrs["vary"] == "Origin"


def test_api_post_without_origin(srv):
    status, hdrs, _ = _publish(srv)
    assert status == 200
    assert "access-control-allow-origin" not in hdrs


@pytest.mark.parametrize("path,method", [("/api/v1/publish", "POST"), ("/sse", "GET")])
def test_preflight_allowed(srv, path, method):
    status, hdrs, body = _request(srv, "OPTIONS", path, [
        ("Origin", "http://localhost:3000"), ("Access-Control-Request-Method", method),
        ("Access-Control-Request-Headers", "authorization, content-type")])
    assert status == 204, (status, hdrs, body)
    assert hdrs["access-control-allow-origin"] == "http://localhost:3000"
    assert hdrs["access-control-allow-methods"] == method
    allowed = {h.strip().lower() for h in hdrs["access-control-allow-headers"].split(",")}
    assert {"authorization", "content-type", "last-event-id"} <= allowed
    assert int(hdrs["access-control-max-age"]) > 0
    assert hdrs["vary"] == "Origin"
    assert body == b""


@pytest.mark.parametrize("path", ["/api/v1/publish", "/sse"])
def test_preflight_other_origin_refused(srv, path):
    status, hdrs, body = _request(srv, "OPTIONS", path, [
        ("Origin", EVIL), ("Access-Control-Request-Method", "POST")])
    _refused(status, hdrs, body)
    assert not [k for k in hdrs if k.startswith("access-control-")], hdrs


# ---------------------------------------------------------------- defaults

def test_development_default_allows_localhost(server_factory):
    def tweak(cfg):
        del cfg["tenants"]
    srv = server_factory(tweak, name="origins-dev")
    for origin in ("http://localhost:5173", "http://127.0.0.1:8080", None):
        assert _ws(srv, origin)[0] == 101, origin
    _refused(*_ws(srv, EVIL))
    _refused(*_ws(srv, "https://localhost:5173"))
    status, hdrs, _ = _request(srv, "OPTIONS", "/api/v1/publish",
                               [("Origin", "http://localhost:5173")])
    assert status == 204 and hdrs["access-control-allow-origin"] == "http://localhost:5173"
    _refused(*_request(srv, "OPTIONS", "/api/v1/publish", [("Origin", EVIL)]))


def test_tenants_without_key_allow_no_browser(server_factory):
    srv = server_factory(name="origins-tenants")
    _refused(*_ws(srv, "http://localhost:5173"))
    _refused(*_sse(srv, "http://localhost:5173"))
    assert _ws(srv)[0] == 101
    assert _sse(srv)[0] == 200


def test_any_origin(server_factory):
    def tweak(cfg):
        cfg["allowed_origins"] = ["*"]
    srv = server_factory(tweak, name="origins-any")
    for origin in (EVIL, "null", "http://localhost:1"):
        assert _ws(srv, origin)[0] == 101, origin
    status, hdrs, _ = _sse(srv, EVIL)
    assert status == 200 and hdrs["access-control-allow-origin"] == EVIL
