# Issue B: read receipts and multi-device sync. Reading on one device pushes
# a read receipt to the channel's other subscribers and to the same user's
# other connections (even unsubscribed ones), never to the reading
# connection; the cursor is monotonic and persisted, and unread counts in
# subscribe results and the cursors API are right after reconnects, new pubs
# and a restart.
import asyncio

import pytest

from helpers_api import ADMIN_KEY, api, with_api
from parley_client import connect, run, uniq


def _tweak(cfg):
    with_api(cfg, extra_ns=[{"name": "noread", "read_cursors": False}])


@pytest.fixture(scope="module")
def rsrv(module_factory):
    return module_factory(tweak=_tweak, name="reads")


def _reads(cl, ch=None):
    return cl.drain(lambda m: m.get("push") == "read" and (ch is None or m.get("channel") == ch))


def _cursor(srv, user, ch, tenant="acme"):
    res = api(srv, "cursors", {"tenant": tenant, "user": user, "channels": [ch]}, key=ADMIN_KEY)
    return res["cursors"][0]


def test_read_syncs_devices_and_members(rsrv):
    async def body():
        ch = "room:" + uniq()
        user = uniq("al")
        d1 = await connect(rsrv, user)
        d2 = await connect(rsrv, user)  # not subscribed to ch
        bob = await connect(rsrv, "bob")
        carol = await connect(rsrv, "carol")
        await d1.subscribe(ch)
        await bob.subscribe(ch)
        await bob.publish_many(ch, 5, window=1)
        rd = await d1.call("read", {"channel": ch, "offset": 3})
        assert rd == {"offset": 3, "unread": 2}
        want = {"push": "read", "channel": ch, "user": user, "offset": 3}
        for c in (bob, d2):
            p = await c.push("read", ch)
            p.pop("_seq")
            assert p == want
        await asyncio.sleep(0.3)
        assert _reads(d1) == [], "the reading connection gets no receipt of its own read"
        assert _reads(carol) == [], "a connection neither subscribed nor the user's gets nothing"
        # a stale or repeated read does not move the cursor and announces nothing
        for off in (2, 3, 0):
            assert await d2.call("read", {"channel": ch, "offset": off}) == \
                {"offset": 3, "unread": 2}
        await asyncio.sleep(0.3)
        assert _reads(bob) == [] and _reads(d1) == [] and _reads(d2) == []
        # the other device reads further: the first device hears of it
        assert await d2.call("read", {"channel": ch, "offset": 5}) == {"offset": 5, "unread": 0}
        p = await d1.push("read", ch)
        assert p["offset"] == 5 and p["user"] == user
        p = await bob.push("read", ch)
        assert p["offset"] == 5
        for c in (d1, d2, bob, carol):
            await c.close()
    run(body())


def test_unread_after_reconnect_and_new_pubs(rsrv):
    async def body():
        ch = "room:" + uniq()
        user = uniq("u")
        pub = await connect(rsrv, "pub")
        await pub.publish_many(ch, 6, window=1)
        d = await connect(rsrv, user)
        res = await d.subscribe(ch)
        assert res["unread"] == 6
        assert (await d.call("read", {"channel": ch, "offset": 4}))["unread"] == 2
        await d.close()
        d = await connect(rsrv, user)
        assert (await d.subscribe(ch))["unread"] == 2
        await d.close()
        await pub.publish_many(ch, 3, window=1)
        d = await connect(rsrv, user)
        assert (await d.subscribe(ch))["unread"] == 5
        cur = await asyncio.to_thread(_cursor, rsrv, user, ch)
        assert (cur["cursor"], cur["unread"], cur["offset"]) == (4, 5, 9)
        # another user's cursor is separate
        other = await connect(rsrv, uniq("o"))
        assert (await other.subscribe(ch))["unread"] == 9
        for c in (pub, d, other):
            await c.close()
    run(body())


def test_cursors_api_many_channels(rsrv):
    async def body():
        user = uniq("u")
        chans = ["room:" + uniq() for _ in range(3)]
        pub = await connect(rsrv, "pub")
        for i, ch in enumerate(chans):
            await pub.publish_many(ch, i + 2, window=1)
        d = await connect(rsrv, user)
        await d.call("read", {"channel": chans[1], "offset": 2})
        res = await asyncio.to_thread(
            api, rsrv, "cursors", {"tenant": "acme", "user": user,
                                   "channels": chans + ["noread:x", "bad name"]}, ADMIN_KEY)
        cur = res["cursors"]
        assert [(c["channel"], c["cursor"], c["unread"]) for c in cur[:3]] == [
            (chans[0], 0, 2), (chans[1], 2, 1), (chans[2], 0, 4)]
        assert cur[3]["error"]["code"] == 108 and cur[4]["error"]["code"] == 107
        await pub.close()
        await d.close()
    run(body())


def test_read_bad_input(rsrv):
    async def body():
        cl = await connect(rsrv, "alice")
        for params, code in (({"channel": "room:x"}, 107),
                             ({"channel": "room:x", "offset": "3"}, 107),
                             ({"channel": "room:x", "offset": -1}, 107),
                             ({"channel": "room:x", "offset": 1.5}, 107),
                             ({"offset": 1}, 107),
                             ({"channel": "noread:x", "offset": 1}, 108),
                             ({"channel": "nosuchns:x", "offset": 1}, 102)):
            err = await cl.error("read", params)
            assert err["code"] == code, (params, err)
        assert "result" in await cl.rpc("history", {"channel": "room:x"})
        await cl.close()
    run(body())


def test_cursor_survives_restart(server_factory):
    srv = server_factory(tweak=_tweak, name="readsrestart")
    ch = "room:" + uniq()

    async def before():
        pub = await connect(srv, "pub")
        await pub.publish_many(ch, 4, window=1)
        d = await connect(srv, "alice")
        await d.call("read", {"channel": ch, "offset": 3})
        await pub.close()
        await d.close()

    async def after():
        d = await connect(srv, "alice")
        assert (await d.subscribe(ch))["unread"] == 1
        assert (await d.call("read", {"channel": ch, "offset": 2}))["offset"] == 3
        await d.close()

    run(before())
    srv.restart()
    run(after())


def test_cursors_lists_every_readers_position(rsrv):
    """The client method `cursors`: how far each user read a channel, furthest
    first, for read receipts a page can show again after a reload."""
    async def body():
        ch = "room:" + uniq()
        a, b, c = uniq("ra"), uniq("rb"), uniq("rc")
        ca, cb, cc = await connect(rsrv, a), await connect(rsrv, b), await connect(rsrv, c)
        await ca.publish_many(ch, 6, window=1)
        assert (await cc.call("cursors", {"channel": ch})) == \
            {"cursors": [], "offset": 6, "epoch": (await cc.history(ch))["epoch"]}
        await ca.call("read", {"channel": ch, "offset": 2})
        await cb.call("read", {"channel": ch, "offset": 5})
        res = await cc.call("cursors", {"channel": ch})
        assert res["cursors"] == [{"user": b, "offset": 5}, {"user": a, "offset": 2}], res
        assert res["offset"] == 6
        # a cursor read in the same batch as the move sees it; limit keeps the furthest
        await ca.call("read", {"channel": ch, "offset": 6})
        res = await cb.call("cursors", {"channel": ch, "limit": 1})
        assert res["cursors"] == [{"user": a, "offset": 6}], res
        # bad input: each a documented error, the connection goes on
        for params, code in (({"channel": ch, "limit": 0}, 106), ({"channel": ch, "limit": 10001}, 106),
                             ({"channel": ch, "limit": "x"}, 107), ({}, 107),
                             ({"channel": ch, "since": 1}, 107),
                             ({"channel": "noread:" + uniq()}, 108), ({"channel": "nope:x"}, 102)):
            err = await cc.error("cursors", params)
            assert err["code"] == code, (params, err)
        assert (await cc.call("cursors", {"channel": ch}))["offset"] == 6
        for cl in (ca, cb, cc):
            await cl.close()
    run(body())


def test_cursors_need_read_access(server_factory):
    """A user-limited channel's positions are for its members only."""
    srv = server_factory(_tweak, name="cursorperm")

    async def body():
        ch = "dm:#alice,bob"
        alice, eve = await connect(srv, "alice"), await connect(srv, "eve")
        await alice.publish(ch, {"text": "hi"})
        await alice.call("read", {"channel": ch, "offset": 1})
        assert (await alice.call("cursors", {"channel": ch}))["cursors"] == [{"user": "alice", "offset": 1}]
        assert (await eve.error("cursors", {"channel": ch}))["code"] == 103
        await alice.close()
        await eve.close()
    run(body())
