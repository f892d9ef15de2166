# Issue B: presence. Two users on three connections: presence lists and
# counts, join and leave pushes to the other subscribers (never the joiner),
# presence gone after a clean close, an aborted TCP connection and a silent
# peer (within the ping window); pages walk a roster exactly once; and with a
# roster of 10,000 subscribers presence_stats costs no more than with 10.
import asyncio
import statistics
import time

import pytest

from helpers_api import (ROSTER, api, close_roster, open_roster, raise_nofile, wait_until,
                         with_api)
from parley_client import (SANITIZED, SLOW, RawWS, connect, make_token, run, uniq)


def _tweak(cfg):
    with_api(cfg)
    cfg["ping_interval"] = "2s"


@pytest.fixture(scope="module")
def psrv(module_factory):
    return module_factory(tweak=_tweak, name="presence")


def _is(kind, ch, user=None, client=None):
    def pred(m):
        if m.get("push") != kind or m.get("channel") != ch:
            return False
        info = m.get("info", {})
        return (user is None or info.get("user") == user) and \
            (client is None or info.get("client") == client)
    return pred


def _signals(cl, ch):
    return cl.drain(lambda m: m.get("push") in ("join", "leave") and m.get("channel") == ch)


def test_two_users_three_connections(psrv):
    async def body():
        ch = "room:" + uniq()
        a1 = await connect(psrv, "alice")
        a2 = await connect(psrv, "alice")
        b = await connect(psrv, "bob")
        cid = {c: c.connect_result["client"] for c in (a1, a2, b)}
        await a1.subscribe(ch)
        await b.subscribe(ch)
        j = await a1.receive(_is("join", ch, "bob", cid[b]), what="join of bob")
        assert j["info"] == {"user": "bob", "client": cid[b]}
        await a2.subscribe(ch)
        for c in (a1, b):
            await c.receive(_is("join", ch, "alice", cid[a2]), what="join of a2")
        await asyncio.sleep(0.3)
        assert _signals(b, ch) == [] and _signals(a2, ch) == [], "nobody sees its own join"
        assert _signals(a1, ch) == []
        pr = await b.call("presence", {"channel": ch})
        assert sorted((c["user"], c["client"]) for c in pr["clients"]) == sorted(
            [("alice", cid[a1]), ("alice", cid[a2]), ("bob", cid[b])])
        assert pr["cursor"] == 0
        assert await a1.call("presence_stats", {"channel": ch}) == {"clients": 3, "users": 2}
        assert api(psrv, "presence_stats", {"channel": ch}) == {"clients": 3, "users": 2}
        # unsubscribe leaves: one of alice's two connections
        await a1.call("unsubscribe", {"channel": ch})
        for c in (a2, b):
            await c.receive(_is("leave", ch, "alice", cid[a1]), what="leave of a1")
        assert await b.call("presence_stats", {"channel": ch}) == {"clients": 2, "users": 2}
        # a clean close leaves too
        await a2.close()
        await b.receive(_is("leave", ch, "alice", cid[a2]), what="leave of a2")
        assert await b.call("presence_stats", {"channel": ch}) == {"clients": 1, "users": 1}
        assert [c["user"] for c in (await b.call("presence", {"channel": ch}))["clients"]] == \
            ["bob"]
        await asyncio.sleep(0.2)
        assert _signals(a1, ch) == [], "an unsubscribed connection gets no more signals"
        await a1.close()
        await b.close()
    run(body())


def test_no_join_leave_where_the_namespace_has_it_off(psrv):
    async def body():
        ch = "chat:" + uniq()
        a = await connect(psrv, "alice")
        b = await connect(psrv, "bob")
        await a.subscribe(ch)
        await b.subscribe(ch)
        await b.call("unsubscribe", {"channel": ch})
        await asyncio.sleep(0.4)
        assert _signals(a, ch) == []
        # presence is still tracked
        await b.subscribe(ch)
        assert await a.call("presence_stats", {"channel": ch}) == {"clients": 2, "users": 2}
        await a.close()
        await b.close()
    run(body())


def test_presence_of_an_aborted_connection_disappears(psrv):
    async def body():
        ch = "room:" + uniq()
        watcher = await connect(psrv, "watcher")
        await watcher.subscribe(ch)
        victim = await connect(psrv, "victim")
        await victim.subscribe(ch)
        vid = victim.connect_result["client"]
        await watcher.receive(_is("join", ch, "victim"), what="join")
        victim.ws.transport.abort()  # no close frame, TCP reset
        t0 = time.monotonic()
        await watcher.receive(_is("leave", ch, "victim", vid), timeout=8 * SLOW, what="leave")
        assert time.monotonic() - t0 < 8 * SLOW
        assert await watcher.call("presence_stats", {"channel": ch}) == {"clients": 1, "users": 1}
        victim.reader.cancel()
        await watcher.close()
    run(body())


def test_presence_of_a_silent_peer_disappears_within_the_ping_window(psrv):
    async def body():
        ch = "room:" + uniq()
        watcher = await connect(psrv, "watcher")
        await watcher.subscribe(ch)
        # a raw client that connects, subscribes and then never reads or
        # answers pings: the TCP connection stays open
        silent = RawWS(psrv)
        silent.rpc("connect", {"token": make_token("silent")})
        silent.rpc("subscribe", {"channel": ch})
        await watcher.receive(_is("join", ch, "silent"), what="join")
        t0 = time.monotonic()
        await watcher.receive(_is("leave", ch, "silent"), timeout=8 * SLOW, what="leave")
        took = time.monotonic() - t0
        assert 0.5 < took < 8 * SLOW, took  # not at once, but within ~2 ping intervals
        assert await watcher.call("presence_stats", {"channel": ch}) == {"clients": 1, "users": 1}
        silent.close()
        await watcher.close()
    run(body())


def test_presence_pages_walk_the_roster_once(psrv):
    async def body():
        ch = "chat:" + uniq()
        conns = [await connect(psrv, f"p{i % 4}") for i in range(9)]
        for c in conns:
            await c.subscribe(ch)
        want = sorted(c.connect_result["client"] for c in conns)
        for limit in (1, 2, 4, 9, 100):
            seen, cursor, pages = [], 0, 0
            while True:
                page = await conns[0].call("presence", {"channel": ch, "cursor": cursor,
                                                        "limit": limit})
                assert len(page["clients"]) <= limit
                seen += [c["client"] for c in page["clients"]]
                pages += 1
                cursor = page["cursor"]
                if cursor == 0:
                    break
                assert pages < 50
            assert sorted(seen) == want, (limit, seen)
        for bad in ({"limit": 0}, {"limit": 10001}):
            err = await conns[0].error("presence", dict(channel=ch, **bad))
            assert err["code"] == 106
        err = await conns[0].error("presence", {"channel": ch, "cursor": "x"})
        assert err["code"] == 107
        for c in conns:
            await c.close()
    run(body())


def test_ponging_client_survives_a_one_second_ping_interval(server_factory):
    """A client that answers every ping at once must never be closed 4003."""
    def tweak(cfg):
        cfg["ping_interval"] = "1s"
    srv = server_factory(tweak=tweak, name="ping1s")

    async def body():
        cl = await connect(srv, "pinger")
        await asyncio.sleep(4.5)
        pings = cl.drain(lambda m: m.get("push") == "ping")
        closed = cl.drain(lambda m: m.get("push") == "disconnect")
        assert closed == [], f"closed although every ping was answered: {closed}"
        assert len(pings) >= 2
        assert "result" in await cl.rpc("history", {"channel": "chat:x"})
        await cl.close()
    run(body())


# ---------------------------------------------------------------- big roster


def _stats_latency(srv, ch, n):
    """Median wall time of n presence_stats API calls (seconds)."""
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        api(srv, "presence_stats", {"channel": ch})
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _walk(srv, ch, limit):
    seen, cursor = [], 0
    for _ in range(ROSTER // limit + 5):
        page = api(srv, "presence", {"channel": ch, "cursor": cursor, "limit": limit})
        seen += [c["client"] for c in page["clients"]]
        cursor = page["cursor"]
        if cursor == 0:
            return seen
    raise AssertionError("presence pages never ended")


def test_big_roster_stats_do_not_scan(server_factory):
    hard = raise_nofile()
    if hard < ROSTER + 500:
        pytest.skip(f"RLIMIT_NOFILE hard limit {hard} is too low for {ROSTER} connections")

    def tweak(cfg):
        with_api(cfg)
        cfg["limits"]["max_connections_per_ip"] = ROSTER + 1000
        cfg["limits"]["handshake_timeout"] = "60s"
    srv = server_factory(tweak=tweak, name="roster")
    small, big = "chat:" + uniq("small"), "chat:" + uniq("big")
    calls = 60 if SANITIZED else 200

    async def body():
        few = await open_roster(srv.port, [make_token(f"s{i}") for i in range(10)], small)
        wait_until(lambda: api(srv, "presence_stats", {"channel": small})["clients"] == 10,
                   20 * SLOW, "10 subscribers")
        t_small = await asyncio.to_thread(_stats_latency, srv, small, calls)
        tokens = [make_token(f"user{i % (ROSTER // 2)}") for i in range(ROSTER)]
        many = await open_roster(srv.port, tokens, big)
        st = await asyncio.to_thread(
            wait_until, lambda: (lambda s: s if s["clients"] == ROSTER else None)(
                api(srv, "presence_stats", {"channel": big})), 120 * SLOW, f"{ROSTER} subscribers",
            0.5)
        assert st == {"clients": ROSTER, "users": ROSTER // 2}
        t_big = await asyncio.to_thread(_stats_latency, srv, big, calls)
        assert t_big < 5 * t_small + 0.002, \
            f"presence_stats took {t_big * 1e3:.2f} ms with {ROSTER} vs {t_small * 1e3:.2f} ms with 10"
        for limit in (1000, 777):
            seen = await asyncio.to_thread(_walk, srv, big, limit)
            assert len(seen) == ROSTER and len(set(seen)) == ROSTER, \
                f"limit {limit}: {len(seen)} entries, {len(set(seen))} distinct"
        close_roster(many)
        close_roster(few)
        await asyncio.to_thread(
            wait_until, lambda: api(srv, "presence_stats", {"channel": big})["clients"] == 0,
            60 * SLOW, "roster gone after the connections closed", 0.5)
    run(body(), timeout=300 * SLOW)
