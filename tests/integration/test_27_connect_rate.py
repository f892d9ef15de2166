# Scenario family 27: the server-wide connect rate (limits.connects_per_second)
# against a reconnect storm. 5,000 WebSocket opens in about a second against
# 1,000/s: the ones over the rate are upgraded and closed with the 4002
# disconnect push carrying retry_after and reconnect true; each refused
# client that waits its retry_after and retries gets in within a few tries;
# clients connected before the storm keep their connection and their pubs;
# parley_shed_total counts exactly the refusals. With the limit off nothing
# is refused; an SSE open over the rate gets 503 with Retry-After and error
# 114, while the HTTP API, /healthz and /metrics are never refused.
import asyncio
import base64
import json
import os
import struct
import time

from helpers_api import api, masked_text, raise_nofile, with_api
from parley_client import (SLOW, SSEStream, connect, make_token, run, scaled, uniq)

RATE = scaled(1000, 200)  # the storm is 5x the burst (one second of the rate) either way
STORM = scaled(5000, 1000)
MAX_TRIES = 6  # attempts per client, the first included
SHED = ("parley_shed_total", {"class": "connect", "reason": "connect_rate"})


def _tweak(rate, burst=None):
    def tweak(cfg):
        cfg["workers"] = 2  # one bucket shared by both workers
        cfg["limits"]["max_connections_per_ip"] = 4 * STORM
        cfg["limits"]["connects_per_second"] = rate
        if burst is not None:
            cfg["limits"]["connect_burst"] = burst
        cfg["allowed_origins"] = ["http://127.0.0.1:*"]
        with_api(cfg)
    return tweak


async def _frame(reader):
    """One unmasked server frame: (opcode, payload)."""
    b0, b1 = await reader.readexactly(2)
    n = b1 & 0x7F
    if n == 126:
        n = struct.unpack("!H", await reader.readexactly(2))[0]
    elif n == 127:
        n = struct.unpack("!Q", await reader.readexactly(8))[0]
    return b0 & 0x0F, await reader.readexactly(n)


def _close_frame(code):
    key = os.urandom(4)
    payload = struct.pack("!H", code)
    return bytes([0x88, 0x82]) + key + bytes(b ^ key[i & 3] for i, b in enumerate(payload))


async def _attempt(port, connect_frame):
    """One WebSocket open and `connect`. Returns ("ok", writer) when admitted,
    or ("refused", disconnect push) after the server's close frame 4002."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write((f"GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                  f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                  "Sec-WebSocket-Version: 13\r\n\r\n").encode())
    head = await reader.readuntil(b"\r\n\r\n")
    assert b" 101 " in head.split(b"\r\n", 1)[0], head
    writer.write(connect_frame)
    op, payload = await _frame(reader)
    assert op == 1, (op, payload)
    msg = json.loads(payload.split(b"\n")[0])
    if msg.get("id") == 1:
        assert "result" in msg, msg
        return "ok", writer
    assert msg.get("push") == "disconnect", msg
    op, payload = await _frame(reader)
    assert op == 8 and struct.unpack("!H", payload[:2])[0] == msg["code"], (op, payload, msg)
    writer.write(_close_frame(msg["code"]))
    writer.close()
    return "refused", msg


async def _client(port, connect_frame, stats):
    """Connects, honouring every retry_after, until admitted; returns the
    writer of the open connection."""
    for tries in range(1, MAX_TRIES + 1):
        kind, got = await asyncio.wait_for(_attempt(port, connect_frame), 30 * SLOW)
        if kind == "ok":
            stats["tries"].append(tries)
            return got
        assert got["code"] == 4002 and got["reconnect"] is True, got
        ra = got.get("retry_after")
        assert isinstance(ra, int) and 0 < ra <= 60000, got
        stats["refusals"].append(ra)
        await asyncio.sleep(ra / 1000)
    raise AssertionError(f"still refused after {MAX_TRIES} attempts")


async def _storm(srv, n):
    """n clients opening at once; returns their writers, the tries each took
    and every retry_after received."""
    frame = masked_text(json.dumps({"id": 1, "method": "connect",
                                    "params": {"token": make_token("storm")}}))
    stats = {"tries": [], "refusals": []}
    t0 = time.monotonic()
    writers = await asyncio.gather(*(_client(srv.port, frame, stats) for _ in range(n)))
    return writers, stats, time.monotonic() - t0


def _close_all(writers):
    for w in writers:
        w.transport.abort()


def _shed(srv):
    return srv.metric(*SHED) or 0


def test_reconnect_storm_is_spread_and_existing_clients_are_unaffected(server_factory):
    raise_nofile()
    srv = server_factory(tweak=_tweak(RATE), name="storm")
    assert srv.metric(*SHED) == 0  # the series exists before any refusal

    async def body():
        ch = "chat:" + uniq()
        existing = [await connect(srv, f"old{i}") for i in range(5)]
        for cl in existing:
            await cl.subscribe(ch)
        loop = asyncio.get_running_loop()
        storm = asyncio.create_task(_storm(srv, STORM))
        # While the storm runs: the existing clients publish and receive,
        # and the operator endpoints answer (never limited).
        sent = 0
        while not storm.done():
            await existing[sent % 5].publish(ch, {"n": sent})
            sent += 1
            status, _, _ = await loop.run_in_executor(None, srv.http, "GET", "/healthz")
            assert status == 200
            await asyncio.sleep(0.1)
        writers, stats, took = await storm
        await existing[0].publish(ch, {"n": sent})
        sent += 1
        for cl in existing:
            got = [p["data"]["n"] for p in await cl.pubs(ch, sent)]
            assert got == list(range(sent)), got
            assert not cl.closed.is_set(), (cl.close_code, cl.mailbox[-3:])
            assert not [m for m in cl.mailbox if m.get("push") == "disconnect"], cl.mailbox
        shed = await loop.run_in_executor(None, _shed, srv)
        _close_all(writers)
        for cl in existing:
            await cl.close()
        return stats, took, shed, sent

    stats, took, shed, sent = run(body(), timeout=120 * SLOW)
    refused = stats["refusals"]
    print(f"\nstorm of {STORM} at {RATE}/s: {len(refused)} refusals, "
          f"{sum(1 for t in stats['tries'] if t > 1)} clients refused at least once, "
          f"max tries {max(stats['tries'])}, all connected in {took:.2f}s, "
          f"retry_after {min(refused) if refused else 0}-{max(refused) if refused else 0} ms, "
          f"{sent} pubs to the existing clients meanwhile")
    assert len(stats["tries"]) == STORM
    assert refused, "the storm was never limited"
    # Each refused client got its own time to come back, not one shared one.
    assert len(set(refused)) > len(refused) // 4, sorted(refused)[:50]
    assert shed == len(refused), (shed, len(refused))


def test_limit_off_refuses_nothing(server_factory):
    raise_nofile()
    srv = server_factory(tweak=_tweak(0), name="nolimit")

    async def body():
        writers, stats, _ = await _storm(srv, scaled(2000, 500))
        _close_all(writers)
        return stats

    stats = run(body(), timeout=120 * SLOW)
    assert not stats["refusals"], stats["refusals"][:10]
    assert set(stats["tries"]) == {1}
    assert _shed(srv) == 0


def test_sse_over_the_rate_gets_503_with_retry_after(server_factory):
    # One open per minute: the first takes the only token, the next is refused.
    srv = server_factory(tweak=_tweak(1, burst=1), name="sse-rate")
    ch = "chat:" + uniq()
    tok = make_token("sse")
    first = SSEStream(srv, f"token={tok}&channel={ch}")
    assert first.status == 200, first.body()
    refused = SSEStream(srv, f"token={tok}&channel={ch}",
                        headers={"Origin": "http://127.0.0.1:1"})
    body = json.loads(refused.body())
    assert refused.status == 503, (refused.status, body)
    err = body["error"]
    assert err["code"] == 114 and err["temporary"] is True, err
    assert isinstance(err["retry_after"], int) and err["retry_after"] > 0, err
    assert int(refused.headers["retry-after"]) == (err["retry_after"] + 999) // 1000, \
        refused.headers
    assert refused.headers.get("access-control-allow-origin") == "http://127.0.0.1:1"
    refused.close()
    # The bucket is empty, yet the operator endpoints and the HTTP API answer.
    for path in ("/healthz", "/readyz", "/metrics"):
        assert srv.http("GET", path)[0] == 200, path
    assert api(srv, "publish", {"channel": ch, "data": {"x": 1}})
    assert first.event()["data"]["data"] == {"x": 1}
    first.close()
    assert _shed(srv) == 1
