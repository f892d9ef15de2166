# Issue B: typing indicators. Twenty typing commands in one second reach the
# other subscribers at most once per typing_interval (2 s) per user and
# channel, never the sender's own connection; other users and other channels
# have their own throttle; typing is never stored.
import asyncio
import math
import time

import pytest

from helpers_api import with_api
from parley_client import SLOW, connect, run, uniq

INTERVAL = 2.0


@pytest.fixture(scope="module")
def tsrv(module_factory):
    def tweak(cfg):
        with_api(cfg)
        cfg["limits"]["typing_interval"] = "2s"
    return module_factory(tweak=tweak, name="typing")


def _typing(cl, ch, user=None):
    return cl.drain(lambda m: m.get("push") == "typing" and m.get("channel") == ch and
                    (user is None or m.get("user") == user))


async def _type_for(cl, ch, seconds, n):
    """n typing commands spread over `seconds`; every one is answered {}."""
    t0 = time.monotonic()
    for i in range(n):
        assert await cl.call("typing", {"channel": ch}) == {}
        await asyncio.sleep(max(0.0, t0 + seconds * (i + 1) / n - time.monotonic()))
    return time.monotonic() - t0


def test_typing_burst_is_throttled_and_not_echoed(tsrv):
    async def body():
        ch = "room:" + uniq()
        sender = await connect(tsrv, "alice")
        bob = await connect(tsrv, "bob")
        carol = await connect(tsrv, "carol")
        for c in (sender, bob, carol):
            await c.subscribe(ch)
        took = await _type_for(sender, ch, 1.0, 20)
        first = await bob.push("typing", ch)
        assert first == {"push": "typing", "channel": ch, "user": "alice", "_seq": first["_seq"]}
        await asyncio.sleep(0.3)
        extra = _typing(bob, ch)
        # one push for the burst; a second only if the burst outlived the interval
        assert len(extra) <= (1 if took >= INTERVAL else 0), (took, extra)
        assert len(_typing(carol, ch)) == 1 + len(extra)
        assert _typing(sender, ch) == [], "the sender must not get its own typing push"
        # keep typing for 3 more seconds: at most one push per interval
        t0 = time.monotonic()
        await _type_for(sender, ch, 3.0, 15)
        await asyncio.sleep(0.3)
        elapsed = time.monotonic() - t0 + took
        got = _typing(bob, ch)
        assert 1 <= len(got) <= math.ceil(elapsed / INTERVAL) + 1, (elapsed, got)
        assert _typing(sender, ch) == []
        assert (await bob.history(ch))["offset"] == 0, "typing is never stored"
        for c in (sender, bob, carol):
            await c.close()
    run(body())


def test_throttle_is_per_user_and_channel(tsrv):
    async def body():
        ch, ch2 = "room:" + uniq(), "room:" + uniq()
        alice = await connect(tsrv, "alice")
        bob = await connect(tsrv, "bob")
        for c in (alice, bob):
            await c.subscribe(ch)
            await c.subscribe(ch2)
        await alice.call("typing", {"channel": ch})
        await bob.push("typing", ch)
        # bob typing right after alice is not swallowed by alice's throttle
        await bob.call("typing", {"channel": ch})
        p = await alice.push("typing", ch)
        assert p["user"] == "bob"
        # nor is alice typing in another channel
        await alice.call("typing", {"channel": ch2})
        p = await bob.push("typing", ch2)
        assert p["user"] == "alice"
        # alice again in ch within the interval: dropped
        await alice.call("typing", {"channel": ch})
        await asyncio.sleep(0.4)
        assert _typing(bob, ch) == []
        # after the interval it goes through again
        await asyncio.sleep(INTERVAL)
        await alice.call("typing", {"channel": ch})
        p = await bob.push("typing", ch, timeout=5 * SLOW)
        assert p["user"] == "alice"
        await alice.close()
        await bob.close()
    run(body())


def test_throttle_spans_the_users_connections(tsrv):
    async def body():
        ch = "room:" + uniq()
        d1 = await connect(tsrv, "dave")
        d2 = await connect(tsrv, "dave")
        bob = await connect(tsrv, "bob")
        for c in (d1, d2, bob):
            await c.subscribe(ch)
        await d1.call("typing", {"channel": ch})
        await d2.call("typing", {"channel": ch})
        await bob.push("typing", ch)
        await asyncio.sleep(0.4)
        assert _typing(bob, ch) == [], "one user typing on two devices is one signal"
        for c in (d1, d2, bob):
            await c.close()
    run(body())


def test_typing_bad_input(tsrv):
    async def body():
        cl = await connect(tsrv, "alice")
        for params, code in (({}, 107), ({"channel": 5}, 107), ({"channel": "nosuchns:x"}, 102),
                             ({"channel": "dm:x#bob,carol"}, 103)):
            err = await cl.error("typing", params)
            assert err["code"] == code, (params, err)
        await cl.close()
    run(body())
