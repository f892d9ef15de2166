# Shared helpers of the API, tenancy, limits, audit and presence tests: a
# config tweak that adds an admin key and per-scope API keys, a small HTTP
# API client (stdlib http.client), and raw asyncio WebSocket connections for
# rosters of thousands of subscribers.
import asyncio
import base64
import json
import os
import resource
import struct
import time

from parley_client import SANITIZED, SLOW

ADMIN_KEY = "adm-itest3-0123456789abcdef"
SCOPES = ["publish", "broadcast", "history", "presence", "channels", "subscribe",
          "disconnect", "info", "routes", "webhooks"]
# Every tenant API method with the scope family that must allow it.
METHOD_SCOPE = {
    "publish": "publish", "broadcast": "broadcast", "history": "history",
    "cursors": "history", "presence": "presence", "presence_stats": "presence",
    "channels": "channels", "subscribe": "subscribe", "unsubscribe": "subscribe",
    "disconnect": "disconnect", "connections": "disconnect", "info": "info", "routes.test": "routes",
    "routes.list": "routes", "routes.create": "routes", "routes.update": "routes",
    "routes.delete": "routes",
    "webhooks.list": "webhooks", "webhooks.create": "webhooks", "webhooks.update": "webhooks",
    "webhooks.delete": "webhooks", "webhooks.health": "webhooks",
    "webhooks.attempts": "webhooks", "webhooks.replay": "webhooks",
    "webhooks.recover": "webhooks", "webhooks.rotate_secret": "webhooks",
}
ADMIN_METHODS = ["tenants.list", "tenants.create", "tenants.update", "keys.create",
                 "keys.revoke", "keys.list", "audit.list"]


def full_key(tenant):
    return f"pk_{tenant}_all"


def scope_key(tenant, scope):
    return f"pk_{tenant}_{scope}"


def with_api(cfg, extra_ns=()):
    """Adds the admin key, a "*" key and one key per scope to each tenant, and
    a `room` namespace with presence, join/leave and read cursors on."""
    cfg["admin_key"] = ADMIN_KEY
    for t in cfg["tenants"]:
        keys = [{"key": full_key(t["id"]), "scopes": ["*"]}]
        keys += [{"key": scope_key(t["id"], s), "scopes": [s]} for s in SCOPES]
        t["api_keys"] = keys
    cfg["namespaces"].append({"name": "room", "presence": True, "join_leave": True,
                              "read_cursors": True})
    cfg["namespaces"].extend(extra_ns)
    return cfg


def api_raw(server, method, body=b"{}", key=None, headers=None, http_method="POST"):
    """One HTTP API call; returns (status, parsed JSON body or raw text)."""
    h = {"Content-Type": "application/json"}
    if key is not None:
        h["Authorization"] = f"Bearer {key}"
    h.update(headers or {})
    if isinstance(body, (dict, list)):
        body = json.dumps(body).encode()
    elif isinstance(body, str):
        body = body.encode()
    status, _, raw = server.http(http_method, f"/api/v1/{method}", headers=h, body=body)
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, raw.decode("utf-8", "replace")


def api(server, method, body=None, key=None, tenant="acme"):
    """A call that must succeed: returns its result."""
    status, reply = api_raw(server, method, body if body is not None else {},
                            key if key is not None else full_key(tenant))
    assert status == 200 and isinstance(reply, dict) and "result" in reply, \
        f"{method} {body}: HTTP {status} {reply}"
    return reply["result"]


def api_error(server, method, body=None, key=None, tenant="acme"):
    """A call that must fail: returns (HTTP status, error object)."""
    status, reply = api_raw(server, method, body if body is not None else {},
                            key if key is not None else full_key(tenant))
    assert status != 200, f"{method} {body}: expected an error, got {reply}"
    assert isinstance(reply, dict) and "error" in reply, f"{method}: HTTP {status} {reply!r}"
    err = reply["error"]
    assert isinstance(err.get("code"), int) and isinstance(err.get("message"), str), err
    assert isinstance(err.get("temporary"), bool), err
    return status, err


def raise_nofile():
    """Raises this process's open-file limit to the hard limit; returns it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def masked_text(payload):
    """A minimal masked client text frame."""
    if isinstance(payload, str):
        payload = payload.encode()
    n = len(payload)
    head = bytes([0x81])
    if n < 126:
        head += bytes([0x80 | n])
    else:
        head += bytes([0x80 | 126]) + struct.pack("!H", n)
    key = os.urandom(4)
    return head + key + bytes(b ^ key[i & 3] for i, b in enumerate(payload))


async def raw_subscriber(port, token, channel):
    """Opens a WebSocket, connects and subscribes in one frame; returns the
    (reader, writer) pair without waiting for the replies."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write((f"GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                  f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                  "Sec-WebSocket-Version: 13\r\n\r\n").encode())
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30 * SLOW)
    assert b" 101 " in head.split(b"\r\n", 1)[0], head
    frame = (json.dumps({"id": 1, "method": "connect", "params": {"token": token}}) + "\n" +
             json.dumps({"id": 2, "method": "subscribe", "params": {"channel": channel}}))
    writer.write(masked_text(frame))
    await writer.drain()
    return reader, writer


async def open_roster(port, tokens, channel, batch=250):
    """One raw subscriber per token, opened `batch` at a time."""
    conns = []
    for i in range(0, len(tokens), batch):
        conns += await asyncio.gather(*(raw_subscriber(port, t, channel)
                                        for t in tokens[i:i + batch]))
    return conns


def close_roster(conns):
    for _, w in conns:
        w.transport.abort()


def wait_until(pred, timeout, what, step=0.05):
    """Polls pred() until it returns a true value; returns that value."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = pred()
        if last:
            return last
        time.sleep(step)
    raise AssertionError(f"{what} not reached within {timeout}s (last {last!r})")


ROSTER = 2000 if SANITIZED else 10000
