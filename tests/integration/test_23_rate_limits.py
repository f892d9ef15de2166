# Issue A: rate and connection limits. A flooding connection gets 111 with a
# sensible retry_after while a polite client of the same tenant keeps full
# service; per-user, per-namespace, per-tenant and per-API-key rates hold
# across two worker threads; the per-IP, per-user and per-tenant connection
# limits refuse exactly the connection over the limit.
import asyncio
import json
import math
import time

import pytest

from helpers_api import api_raw, full_key, scope_key, wait_until, with_api
from parley_client import (SLOW, Client, RawWS, connect, make_token, open_ws, run, uniq)

CMD_RATE, USER_RATE, NS_RATE, TENANT_RATE, API_RATE = 20, 30, 5, 10, 5
HOOLI = "hooli-secret-0123456789"


def _tweak(cfg):
    cfg["tenants"].append({"id": "hooli", "jwt_secret": HOOLI,
                           "publishes_per_second": TENANT_RATE})
    with_api(cfg, extra_ns=[{"name": "slow", "publishes_per_second": NS_RATE}])
    cfg["workers"] = 2
    cfg["limits"].update(commands_per_second=CMD_RATE, user_commands_per_second=USER_RATE,
                         api_requests_per_second=API_RATE)


@pytest.fixture(scope="module")
def rsrv(module_factory):
    return module_factory(tweak=_tweak, name="rates")


def _split(replies):
    ok = [r for r in replies if "result" in r]
    limited = [r for r in replies if r.get("error", {}).get("code") == 111]
    assert len(ok) + len(limited) == len(replies), [r for r in replies if r not in ok + limited]
    for r in limited:
        ra = r["error"].get("retry_after")
        assert isinstance(ra, int) and 0 < ra <= 1000, r
        assert r["error"]["temporary"] is True
    return ok, limited


def _bound(rate, elapsed):
    """Most commands a token bucket (burst = rate) admits in `elapsed` s."""
    return rate + math.ceil(rate * elapsed) + 2


async def _burst(cl, cmds):
    t0 = time.monotonic()
    replies = await cl.batch(cmds, timeout=30 * SLOW)
    return list(replies.values()), time.monotonic() - t0


def test_flooding_connection_is_limited_polite_one_is_not(rsrv):
    async def body():
        ch = "chat:" + uniq()
        flood = await connect(rsrv, "flooder")
        polite = await connect(rsrv, "polite")
        stop = asyncio.Event()
        flood_replies = []

        async def flooder():
            while not stop.is_set():
                rep, _ = await _burst(flood, [("presence_stats", {"channel": ch})] * 50)
                flood_replies.extend(rep)
                await asyncio.sleep(0.05)

        task = asyncio.create_task(flooder())
        polite_replies = []
        for i in range(12):
            polite_replies.append(await polite.rpc("history", {"channel": ch}))
            await asyncio.sleep(0.1)
        stop.set()
        await task
        assert all("result" in r for r in polite_replies), polite_replies
        ok, limited = _split(flood_replies)
        assert limited, "the flood was never limited"
        assert len(ok) <= _bound(CMD_RATE, 1.2 + 0.5 * SLOW), len(ok)
        assert all("id" in r for r in limited)
        # retry_after is honest: after waiting it, the flooder is served again
        await asyncio.sleep(max(r["error"]["retry_after"] for r in limited) / 1000 + 0.1)
        assert "result" in await flood.rpc("presence_stats", {"channel": ch})
        await flood.close()
        await polite.close()
    run(body())


def test_user_rate_across_connections_and_workers(rsrv):
    async def body():
        user = uniq("multi")
        conns = [await connect(rsrv, user) for _ in range(4)]
        ch = "chat:" + uniq()
        t0 = time.monotonic()
        results = await asyncio.gather(*(c.batch([("history", {"channel": ch})] * 15,
                                                 timeout=30 * SLOW) for c in conns))
        elapsed = time.monotonic() - t0
        replies = [r for res in results for r in res.values()]
        ok, limited = _split(replies)
        assert len(ok) <= _bound(USER_RATE, elapsed), (len(ok), elapsed)
        assert len(ok) >= USER_RATE // 2 and limited
        # another user is unaffected
        other = await connect(rsrv, uniq("other"))
        assert "result" in await other.rpc("history", {"channel": ch})
        for c in conns + [other]:
            await c.close()
    run(body())


def test_namespace_publish_rate_is_per_connection(rsrv):
    async def body():
        ch = "slow:" + uniq()
        a = await connect(rsrv, "alice")
        b = await connect(rsrv, "bob")
        rep_a, el_a = await _burst(a, [("publish", {"channel": ch, "data": i})
                                       for i in range(9)])
        rep_b, el_b = await _burst(b, [("publish", {"channel": ch, "data": i})
                                       for i in range(3)])
        ok_a, lim_a = _split(rep_a)
        ok_b, lim_b = _split(rep_b)
        assert lim_a and len(ok_a) <= _bound(NS_RATE, el_a)
        assert len(ok_b) == 3 and not lim_b, "b has its own per-connection budget"
        # other namespaces are not limited by it
        ok_c, lim_c = _split((await _burst(a, [("publish", {"channel": "chat:" + uniq(),
                                                            "data": 1})] * 8))[0])
        assert len(ok_c) == 8
        h = await a.history(ch)
        assert h["offset"] == len(ok_a) + 3, "a refused publish must not be stored"
        await a.close()
        await b.close()
    run(body())


def test_tenant_publish_rate_overall(rsrv):
    async def body():
        ch = "chat:" + uniq()
        conns = [await connect(rsrv, f"h{i}", "hooli",
                               token=make_token(f"h{i}", "hooli", secret=HOOLI))
                 for i in range(3)]
        t0 = time.monotonic()
        res = await asyncio.gather(*(c.batch([("publish", {"channel": ch, "data": i})
                                              for i in range(8)], timeout=30 * SLOW)
                                     for c in conns))
        elapsed = time.monotonic() - t0
        ok, limited = _split([r for d in res for r in d.values()])
        assert limited and len(ok) <= _bound(TENANT_RATE, elapsed), (len(ok), elapsed)
        assert (await conns[0].history(ch))["offset"] == len(ok)
        # acme is not limited by hooli's budget
        acme = await connect(rsrv, "alice")
        ok2, lim2 = _split((await _burst(acme, [("publish", {"channel": ch, "data": 1})] * 12))[0])
        assert len(ok2) == 12 and not lim2
        for c in conns + [acme]:
            await c.close()
    run(body())


def test_api_rate_per_key(rsrv):
    ch = "chat:" + uniq()
    t0 = time.monotonic()
    replies = [api_raw(rsrv, "history", {"channel": ch}, full_key("acme")) for _ in range(20)]
    elapsed = time.monotonic() - t0
    ok = [r for st, r in replies if st == 200]
    limited = [r for st, r in replies if st == 429]
    assert len(ok) + len(limited) == 20, replies
    assert limited and len(ok) <= _bound(API_RATE, elapsed), (len(ok), elapsed)
    for r in limited:
        assert r["error"]["code"] == 111 and 0 < r["error"]["retry_after"] <= 1000, r
    # another key of the same tenant has its own budget
    st, _ = api_raw(rsrv, "history", {"channel": ch}, scope_key("acme", "history"))
    assert st == 200
    # and the limited key recovers after retry_after
    time.sleep(max(r["error"]["retry_after"] for r in limited) / 1000 + 0.1)
    st, _ = api_raw(rsrv, "history", {"channel": ch}, full_key("acme"))
    assert st == 200


def test_per_ip_connection_limit(server_factory):
    def tweak(cfg):
        cfg["limits"]["max_connections_per_ip"] = 4
    srv = server_factory(tweak=tweak, name="perip")

    def over_limit():
        ws = RawWS(srv, handshake=False)
        try:
            ws.handshake()
        except AssertionError:
            pass
        except (EOFError, ConnectionError, OSError) as e:
            raise AssertionError(f"connection over the limit got no HTTP answer: {e!r}")
        status = ws.status
        body = ws.buf
        try:
            while True:
                chunk = ws.sock.recv(4096)
                if not chunk:
                    break
                body += chunk
        except OSError:
            pass
        ws.close()
        return status, body

    async def body():
        held = [await connect(srv, f"u{i}") for i in range(4)]
        status, rest = await asyncio.to_thread(over_limit)
        assert status == 429, status
        if rest.strip():  # the body, when the server sends one, is the JSON error
            assert json.loads(rest)["error"]["code"] == 111, rest
        for c in held:  # the held ones are unharmed
            assert "result" in await c.rpc("history", {"channel": "chat:x"})
        await held[0].close()

        async def can_connect():
            try:
                c = await connect(srv, "late")
            except Exception:
                return None
            return c
        late = None
        deadline = time.monotonic() + 5 * SLOW
        while late is None and time.monotonic() < deadline:
            late = await can_connect()
            if late is None:
                await asyncio.sleep(0.1)
        assert late is not None, "a slot freed by a close was never reused"
        for c in held[1:] + [late]:
            await c.close()
    run(body())
    wait_until(lambda: srv.http("GET", "/healthz")[0] == 200, 5 * SLOW, "healthz after limit")


async def _refused_connect(srv, token):
    cl = Client(await open_ws(srv))
    reply = await cl.rpc("connect", {"token": token})
    code, _ = await cl.wait_closed()
    return reply, code


def test_per_user_and_per_tenant_connection_limits(server_factory):
    def tweak(cfg):
        cfg["limits"]["max_connections_per_user"] = 2
        cfg["tenants"][1]["max_connections"] = 3
    srv = server_factory(tweak=tweak, name="connlim")

    async def body():
        a1 = await connect(srv, "alice")
        a2 = await connect(srv, "alice")
        reply, code = await _refused_connect(srv, make_token("alice"))
        assert reply["error"]["code"] == 106 and code == 4502, (reply, code)
        bob = await connect(srv, "bob")  # another user of the tenant is fine
        g = [await connect(srv, f"g{i}", "globex") for i in range(3)]
        reply, code = await _refused_connect(srv, make_token("g9", "globex"))
        assert reply["error"]["code"] == 106 and code == 4502, (reply, code)
        # refused connections did not take a slot: closing one frees exactly one
        await a1.close()
        await g[0].close()
        for user, tenant in (("alice", "acme"), ("g9", "globex")):
            deadline = time.monotonic() + 5 * SLOW
            while True:
                cl = Client(await open_ws(srv))
                rep = await cl.rpc("connect", {"token": make_token(user, tenant)})
                if "result" in rep:
                    await cl.close()
                    break
                await cl.close()
                assert time.monotonic() < deadline, f"slot of {tenant} never freed: {rep}"
                await asyncio.sleep(0.1)
        for c in [a2, bob] + g[1:]:
            await c.close()
    run(body())


def test_every_429_says_when_in_a_header_too(rsrv):
    # HTTP clients and proxies read Retry-After (whole seconds, rounded up);
    # the body's retry_after (milliseconds) says the same.
    ch = "chat:" + uniq()
    hdrs = {"Content-Type": "application/json", "Authorization": f"Bearer {full_key('acme')}"}
    body = json.dumps({"channel": ch}).encode()
    for _ in range(60):
        status, headers, raw = rsrv.http("POST", "/api/v1/history", headers=hdrs, body=body)
        if status == 429:
            break
    assert status == 429
    h = {k.lower(): v for k, v in headers.items()}
    ms = json.loads(raw)["error"]["retry_after"]
    assert h.get("retry-after") == str(-(-ms // 1000)), (h, ms)
    assert int(h["retry-after"]) >= 1
