# Fan-out of a commit's worth of pubs: consecutive pubs of one channel go to
# each caught-up WebSocket subscriber as one queued item (SSE subscribers
# get them one by one). Whatever mix of subscribers a burst meets
# (WebSocket, SSE, a subscriber resuming during bursts, ephemeral pubs),
# each gets every pub once and in order, and trace and /metrics still count
# per pub and per recipient.
import asyncio
import urllib.parse

import pytest

from helpers_api import api, with_api
from parley_client import SLOW, RawWS, SSEStream, connect, make_token, offsets, run, uniq


@pytest.fixture(scope="module")
def rsrv(module_factory):
    return module_factory(tweak=with_api, name="runs")


def _sse_query(user, ch):
    return urllib.parse.urlencode([("token", make_token(user)), ("channel", ch)])


def test_burst_reaches_websocket_and_sse_subscribers_once(rsrv):
    ch = "chat:" + uniq()
    n = 300
    sse = SSEStream(rsrv, _sse_query("carol", ch))
    assert sse.status == 200

    async def body():
        pub = await connect(rsrv, "alice")
        subs = [await connect(rsrv, u) for u in ("bob", "dave")]
        for s in subs:
            await s.subscribe(ch)
        before = rsrv.metric("parley_deliveries_total")
        # One frame of n publishes: the engine commits them in a few batches.
        replies = await pub.batch([("publish", {"channel": ch, "data": {"i": i}})
                                   for i in range(n)])
        ids = {r["result"]["offset"]: r["result"]["id"] for r in replies.values()}
        assert sorted(ids) == list(range(1, n + 1))
        for s in subs:
            got = await s.pubs(ch, n)
            assert offsets(got) == list(range(1, n + 1))
            assert all(p["id"] == ids[p["offset"]] for p in got)
            assert all(p["channel"] == ch and p["info"]["user"] == "alice" for p in got)
        await asyncio.sleep(0.3)
        for s in subs:
            assert s.drain_pubs(ch) == []
            await s.close()
        await pub.close()
        return ids, before

    ids, before = run(body())
    evs = sse.events(n)
    sse.close()
    # Each event id is the stream's cursor: this one channel's epoch and offset.
    assert [e["id"] for e in evs] == [f"v1:{e['data']['epoch']}.{k}"
                                      for e, k in zip(evs, range(1, n + 1))]
    assert all(e["data"]["id"] == ids[e["data"]["offset"]] for e in evs)
    # Three recipients of every pub, counted per pub (trace's fanout count
    # lives with the engine's cache of the newest pubs, so ask about those).
    assert rsrv.metric("parley_deliveries_total") - before == 3 * n
    for off in (n - 100, n - 1, n):
        assert api(rsrv, "trace", {"id": ids[off]})["fanout"] == 3


def test_resume_in_the_middle_of_bursts(rsrv):
    """A subscriber that recovers while bursts are committed: every offset
    once, in order, across the switch from its recovery to live runs."""
    async def body():
        ch = "chat:" + uniq()
        pub = await connect(rsrv, "alice")
        first = await pub.batch([("publish", {"channel": ch, "data": i}) for i in range(100)])
        epoch = next(iter(first.values()))["result"]["epoch"]

        async def bursts():
            for b in range(5):
                await pub.batch([("publish", {"channel": ch, "data": b * 100 + i})
                                 for i in range(100)])

        task = asyncio.create_task(bursts())
        late = await connect(rsrv, "erin")
        await asyncio.sleep(0.01)
        r = await late.subscribe(ch, since={"offset": 50, "epoch": epoch})
        assert r["recovered"] is True, r
        await task
        seen = offsets(r["pubs"])
        want = list(range(51, 601))
        while len(seen) < len(want):
            seen += offsets(await late.pubs(ch, 1))
        assert seen == want
        await asyncio.sleep(0.3)
        assert late.drain_pubs(ch) == []
        assert [m for m in late.mailbox if m.get("push") == "gap"] == []
        await late.close()
        await pub.close()
    run(body())


def test_ephemeral_burst_in_order(rsrv):
    async def body():
        ch = "chat:" + uniq()
        pub = await connect(rsrv, "alice")
        subs = [await connect(rsrv, u) for u in ("bob", "dave")]
        for s in subs:
            await s.subscribe(ch)
        n = 200
        replies = await pub.batch([("publish", {"channel": ch, "data": i, "class": "ephemeral"})
                                   for i in range(n)])
        assert all("result" in r for r in replies.values())
        for s in subs:
            got = await s.pubs(ch, n)
            assert [p["data"] for p in got] == list(range(n))
            assert all(p["offset"] == 0 and p["class"] == "ephemeral" for p in got)
            await s.close()
        await pub.close()
    run(body())


def test_ephemeral_bursts_shed_for_a_stalled_reader_never_cut_it(rsrv):
    """Ephemeral runs are dropped for a subscriber whose queue is past half
    its limit, pub by pub, instead of pushing it over the limit: the stalled
    reader stays connected and gets an ordered subset, the reading one gets
    everything, and a stored pub after the bursts still reaches both."""
    ch = "chat:" + uniq()
    cut_before = rsrv.metric("parley_slow_consumer_disconnects_total") or 0
    stalled = RawWS(rsrv, rcvbuf=4096)
    assert "result" in stalled.rpc("connect", {"token": make_token("sloth")})
    assert "result" in stalled.rpc("subscribe", {"channel": ch})
    bursts, per, blob = 100, 10, "e" * 8000  # 8 MB in all; the queue limit is 1 MiB

    async def body():
        fast = await connect(rsrv, "bob")
        await fast.subscribe(ch)
        pub = await connect(rsrv, "alice")
        for b in range(bursts):
            await pub.batch([("publish", {"channel": ch, "data": {"n": b * per + i, "b": blob},
                                          "class": "ephemeral"}) for i in range(per)])
            got = await fast.pubs(ch, per)
            assert [p["data"]["n"] for p in got] == list(range(b * per, (b + 1) * per))
        ack = await pub.publish(ch, "stored")
        assert offsets(await fast.pubs(ch, 1)) == [ack["offset"]]
        await fast.close()
        await pub.close()
        return ack["offset"]

    last = run(body(), timeout=180 * SLOW)
    assert (rsrv.metric("parley_slow_consumer_disconnects_total") or 0) == cut_before
    seen = []
    while True:
        msgs = [m for m in stalled.recv_messages() if m.get("push") == "pub"]
        seen += [m["data"]["n"] for m in msgs if m["offset"] == 0]
        if any(m["offset"] == last for m in msgs):
            break
    stalled.close()
    assert seen == sorted(set(seen)), "ephemeral pubs out of order or repeated"
    assert 0 < len(seen) < bursts * per, f"{len(seen)} of {bursts * per}: nothing was shed"
