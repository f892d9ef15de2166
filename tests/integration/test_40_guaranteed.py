# Guaranteed delivery, black box: per-recipient state for offline and
# subscribed recipients, attempt numbers and the redelivery schedule, acks
# (single, range, partial, repeated, foreign channel, bad input) that stop
# redelivery for every device of the user, and the delivery metrics.
import asyncio

import pytest

from helpers_api import wait_until
from helpers_guaranteed import (ACK_WAIT, MAX_ATTEMPTS, RETRY_MAX, RETRY_MIN, acall, ack,
                                apublish, delivery_of, gconnect, guaranteed_cfg, is_pub, next_pub,
                                no_pub, quiet_period, subscribe, trace, wait_dlq, wait_sent,
                                wait_state)
from parley_client import SLOW, connect, run, uniq


@pytest.fixture(scope="module")
def gsrv(module_factory):
    return module_factory(tweak=guaranteed_cfg, name="guaranteed")


def states(delivery):
    return [(t["state"], t["attempt"]) for t in delivery["transitions"]]


def test_offline_recipient_receives_on_subscribe_and_acks(gsrv):
    async def body():
        bob = uniq("bob")
        ch = f"inbox:#{bob}"
        pub = await apublish(gsrv, ch, {"text": "while you were away"}, correlation_id="corr-1")
        tr = await acall(trace, gsrv, pub["id"])
        assert tr["fanout"] == 0
        [d] = tr["deliveries"]
        assert d["user"] == bob and d["state"] == "queued" and d["attempts"] == 0, d
        await asyncio.sleep(0.2)  # nobody to send to: it stays queued, no attempt burnt
        assert (await acall(trace, gsrv, pub["id"]))["deliveries"][0]["state"] == "queued"

        cl = await gconnect(gsrv, bob)
        res = await subscribe(cl, ch)
        assert res["offset"] == pub["offset"]
        got = await next_pub(cl, ch, pub["offset"])
        assert got["id"] == pub["id"] and got["data"] == {"text": "while you were away"}
        assert got["class"] == "guaranteed" and got["attempt"] == 1, got
        assert got["correlation_id"] == "corr-1"
        assert got["_seq"] > 0 and not cl.drain(lambda m: m.get("push") == "pub"), \
            "exactly one copy of the pending pub"
        await acall(wait_sent, gsrv, pub["id"], bob)
        assert await ack(cl, ch, pub["offset"]) == {"acknowledged": 1}
        d = await acall(wait_state, gsrv, pub["id"], bob, "acknowledged")
        assert states(d) == [("queued", 0), ("sent", 1), ("acknowledged", 1)], d
        assert d["attempts"] == 1
        await no_pub(cl, ch, quiet_period())
        # a second subscriber connection of bob gets nothing pending any more
        cl2 = await gconnect(gsrv, bob)
        await subscribe(cl2, ch)
        await no_pub(cl2, ch, 0.3 * SLOW)
        await cl.close()
        await cl2.close()
    run(body())


def test_unacked_pub_is_redelivered_on_schedule_then_dead_lettered(gsrv):
    async def body():
        dan = uniq("dan")
        ch = f"inbox:#{dan}"
        cl = await gconnect(gsrv, dan)
        await subscribe(cl, ch)
        pub = await apublish(gsrv, ch, {"n": 1})
        got = [await next_pub(cl, ch, pub["offset"], timeout=5 * SLOW)
               for _ in range(MAX_ATTEMPTS)]
        assert [g["attempt"] for g in got] == list(range(1, MAX_ATTEMPTS + 1)), got
        assert all(g["id"] == pub["id"] and g["class"] == "guaranteed" for g in got)
        slack = 0.6 * SLOW
        for n in range(1, MAX_ATTEMPTS):
            gap = got[n]["_t"] - got[n - 1]["_t"]
            bound = min(RETRY_MAX, RETRY_MIN * 2 ** (n - 1))
            assert ACK_WAIT / 1000 - 0.05 <= gap <= (ACK_WAIT + bound) / 1000 + slack, \
                f"gap between attempts {n} and {n + 1}: {gap:.3f}s"
        # no attempt beyond max_attempts: the delivery is dead-lettered instead
        [entry] = await acall(wait_dlq, gsrv, {"user": dan}, 1)
        assert entry["pub_id"] == pub["id"] and entry["attempts"] == MAX_ATTEMPTS
        assert entry["reason"] == "max_attempts"
        await no_pub(cl, ch, 0.3 * SLOW)
        d = await acall(wait_state, gsrv, pub["id"], dan, "failed")
        sends = [("sent", n) for n in range(1, MAX_ATTEMPTS + 1)]
        assert states(d) == [("queued", 0)] + sends + [("failed", MAX_ATTEMPTS)], d
        assert d["attempts"] == MAX_ATTEMPTS
        # an ack after the failure does not resurrect anything
        assert await ack(cl, ch, pub["offset"]) == {"acknowledged": 0}
        assert (await acall(trace, gsrv, pub["id"]))["deliveries"][0]["state"] == "failed"
        await cl.close()
    run(body())


def test_ack_covers_a_range_and_stops_redelivery(gsrv):
    async def body():
        eve = uniq("eve")
        ch = f"inbox:#{eve}"
        cl = await gconnect(gsrv, eve)
        await subscribe(cl, ch)
        pubs = [await apublish(gsrv, ch, {"n": i}) for i in range(4)]
        got = [await next_pub(cl, ch, p["offset"]) for p in pubs]
        assert [g["attempt"] for g in got] == [1] * 4
        for p in pubs:
            await acall(wait_sent, gsrv, p["id"], eve)
        # one ack for the first three (the 4th stays unacknowledged)
        assert await ack(cl, ch, pubs[2]["offset"]) == {"acknowledged": 3}
        again = await next_pub(cl, ch, timeout=5 * SLOW)
        assert again["offset"] == pubs[3]["offset"] and again["attempt"] == 2, again
        await acall(wait_sent, gsrv, pubs[3]["id"], eve, 2)
        # repeated ack of the same range: nothing left to acknowledge
        assert await ack(cl, ch, pubs[2]["offset"]) == {"acknowledged": 0}
        # an offset past the head covers the rest
        assert await ack(cl, ch, pubs[3]["offset"] + 100) == {"acknowledged": 1}
        await no_pub(cl, ch, quiet_period())
        for p in pubs:
            d = await acall(wait_state, gsrv, p["id"], eve, "acknowledged")
            assert d["attempts"] == (2 if p is pubs[3] else 1), d
        assert await ack(cl, ch, 0) == {"acknowledged": 0}
        await cl.close()
    run(body())


def test_ack_before_delivery_acknowledges_queued_pubs(gsrv):
    """A recipient that knows the offsets (e.g. from history) may ack pubs
    still queued for it: they are never pushed as pending afterwards."""
    async def body():
        fay = uniq("fay")
        ch = f"inbox:#{fay}"
        pubs = [await apublish(gsrv, ch, {"n": i}) for i in range(2)]
        cl = await gconnect(gsrv, fay)
        assert await ack(cl, ch, pubs[1]["offset"]) == {"acknowledged": 2}
        for p in pubs:
            await acall(wait_state, gsrv, p["id"], fay, "acknowledged")
        await subscribe(cl, ch)
        await no_pub(cl, ch, 0.4 * SLOW)
        await cl.close()
    run(body())


def test_recovering_subscriber_gets_the_next_attempt_number(gsrv):
    """A subscribe with `since` that recovers an unacknowledged pub carries
    it once, with the attempt number the server records for that send
    (previous attempts + 1), whether inside the result or right after it."""
    async def body():
        hu = uniq("hu")
        ch = f"calm:#{hu}"
        cl = await gconnect(gsrv, hu)
        await subscribe(cl, ch)
        pub = await apublish(gsrv, ch, {"n": 1})
        assert (await next_pub(cl, ch, pub["offset"]))["attempt"] == 1
        await cl.close()
        cl = await gconnect(gsrv, hu)
        res = await subscribe(cl, ch, {"since": {"offset": 0, "epoch": pub["epoch"]}})
        assert res["recovered"] is True
        await asyncio.sleep(0.3 * SLOW)
        copies = [p for p in res["pubs"] if p["offset"] == pub["offset"]] + \
            cl.drain(is_pub(ch, pub["offset"]))
        assert len(copies) == 1, copies
        d = await acall(wait_state, gsrv, pub["id"], hu, "sent")
        await acall(wait_until, lambda: delivery_of(gsrv, pub["id"], hu)["attempts"] >= 2,
                    5 * SLOW, "attempt 2 recorded")
        assert copies[0]["attempt"] == 2, \
            f"second send shows attempt {copies[0]['attempt']}; trace records {d}"
        await cl.close()
    run(body())


def test_ack_rejected_for_foreign_or_unknown_channel(gsrv):
    async def body():
        bob, carol = uniq("bob"), uniq("carol")
        pub = await apublish(gsrv, f"inbox:#{carol}", {"for": "carol"})
        cl = await connect(gsrv, bob)
        err = await cl.error("ack", {"channel": f"inbox:#{carol}", "offset": pub["offset"]})
        assert err["code"] == 103, err
        err = await cl.error("ack", {"channel": "nosuchns:x", "offset": 1})
        assert err["code"] == 102, err
        d = (await acall(trace, gsrv, pub["id"]))["deliveries"][0]
        assert d["user"] == carol and d["state"] == "queued", d
        # a standard namespace has nothing to acknowledge
        assert await ack(cl, "plain:" + uniq(), 5) == {"acknowledged": 0}
        # clients cannot publish into somebody else's user-limited channel
        err = await cl.error("publish", {"channel": f"inbox:#{carol}", "data": {}})
        assert err["code"] == 103, err
        await cl.close()
    run(body())


@pytest.mark.parametrize("params", [
    {"channel": "inbox:#ME"},
    {"offset": 1},
    {},
    {"channel": "inbox:#ME", "offset": "1"},
    {"channel": "inbox:#ME", "offset": -1},
    {"channel": "inbox:#ME", "offset": 1.5},
    {"channel": "inbox:#ME", "offset": None},
    {"channel": "inbox:#ME", "offset": [1]},
    {"channel": "inbox:#ME", "offset": {"offset": 1}},
    {"channel": "inbox:#ME", "offset": True},
    {"channel": "inbox:#ME", "offset": 18446744073709551616},
    {"channel": 7, "offset": 1},
    {"channel": ["inbox:#ME"], "offset": 1},
    {"channel": "", "offset": 1},
    {"channel": "inbox:#" + "x" * 5000, "offset": 1},
    {"channel": "inbox:#a b", "offset": 1},
], ids=lambda p: repr(sorted(p.items())))
def test_ack_bad_params(gsrv, params):
    async def body():
        me = uniq("bad")
        cl = await connect(gsrv, me)
        p = {k: (v.replace("ME", me) if isinstance(v, str) else v) for k, v in params.items()}
        err = await cl.error("ack", p)
        assert err["code"] == 107, err
        # the connection survives and a proper ack still works
        assert await ack(cl, f"inbox:#{me}", 1) == {"acknowledged": 0}
        await cl.close()
    run(body())


def test_ack_params_not_an_object(gsrv):
    async def body():
        cl = await connect(gsrv, uniq("bad"))
        for params in ([1, 2], "inbox:#x", 5):
            err = await cl.error("ack", params)
            assert err["code"] == 107, (params, err)
        await cl.close()
    run(body())


def test_multi_device_one_ack_for_the_user(gsrv):
    async def body():
        gus = uniq("gus")
        ch = f"inbox:#{gus}"
        phone, laptop = await gconnect(gsrv, gus), await gconnect(gsrv, gus)
        await subscribe(phone, ch)
        await subscribe(laptop, ch)
        p1 = await apublish(gsrv, ch, {"n": 1})
        for dev in (phone, laptop):
            got = await next_pub(dev, ch, p1["offset"])
            assert got["attempt"] == 1 and got["id"] == p1["id"]
        await acall(wait_sent, gsrv, p1["id"], gus)
        assert await ack(phone, ch, p1["offset"]) == {"acknowledged": 1}
        await asyncio.gather(no_pub(phone, ch, quiet_period()),
                             no_pub(laptop, ch, quiet_period()))
        d = await acall(wait_state, gsrv, p1["id"], gus, "acknowledged")
        assert d["attempts"] == 1
        # unacknowledged: the redelivery reaches both devices, one ack ends it
        p2 = await apublish(gsrv, ch, {"n": 2})
        for dev in (phone, laptop):
            assert (await next_pub(dev, ch, p2["offset"]))["attempt"] == 1
        for dev in (phone, laptop):
            assert (await next_pub(dev, ch, p2["offset"], timeout=5 * SLOW))["attempt"] == 2
        await acall(wait_sent, gsrv, p2["id"], gus, 2)
        assert await ack(laptop, ch, p2["offset"]) == {"acknowledged": 1}
        await asyncio.gather(no_pub(phone, ch, quiet_period()),
                             no_pub(laptop, ch, quiet_period()))
        d = await acall(wait_state, gsrv, p2["id"], gus, "acknowledged")
        assert d["attempts"] == 2, d
        await phone.close()
        await laptop.close()
    run(body())


def test_subscribers_at_publish_time_are_the_recipients(gsrv):
    async def body():
        ch = "inbox:room-" + uniq()
        a, b, late = uniq("ann"), uniq("ben"), uniq("late")
        ca, cb = await gconnect(gsrv, a), await gconnect(gsrv, b)
        await subscribe(ca, ch)
        await subscribe(cb, ch)
        pub = await apublish(gsrv, ch, {"hello": "room"})
        for c in (ca, cb):
            assert (await next_pub(c, ch, pub["offset"]))["attempt"] == 1
        tr = await acall(trace, gsrv, pub["id"])
        assert sorted(d["user"] for d in tr["deliveries"]) == sorted([a, b])
        assert tr["fanout"] == 2
        # a user subscribing later is not a recipient: nothing pending for them
        cl = await gconnect(gsrv, late)
        await subscribe(cl, ch)
        await no_pub(cl, ch, 0.3 * SLOW)
        # each recipient acks for itself only
        assert await ack(ca, ch, pub["offset"]) == {"acknowledged": 1}
        assert (await next_pub(cb, ch, pub["offset"], timeout=5 * SLOW))["attempt"] == 2
        await no_pub(ca, ch, 0.1)
        assert await ack(cb, ch, pub["offset"]) == {"acknowledged": 1}
        assert await ack(cl, ch, pub["offset"]) == {"acknowledged": 0}
        for user in (a, b):
            await acall(wait_state, gsrv, pub["id"], user, "acknowledged")
        for c in (ca, cb, cl):
            await c.close()
    run(body())


def test_every_user_of_a_user_limited_channel_is_a_recipient(gsrv):
    async def body():
        a, b = uniq("ua"), uniq("ub")
        ch = f"calm:#{a},{b}"
        pub = await apublish(gsrv, ch, {"to": "both"})
        tr = await acall(trace, gsrv, pub["id"])
        assert sorted((d["user"], d["state"]) for d in tr["deliveries"]) == \
            sorted([(a, "queued"), (b, "queued")]), tr
        ca = await gconnect(gsrv, a)
        await subscribe(ca, ch)
        assert (await next_pub(ca, ch, pub["offset"]))["attempt"] == 1
        assert await ack(ca, ch, pub["offset"]) == {"acknowledged": 1}
        await acall(wait_state, gsrv, pub["id"], a, "acknowledged")
        # a's ack is a's alone: b's copy still waits for b
        assert (await acall(delivery_of, gsrv, pub["id"], b))["state"] == "queued"
        cb = await gconnect(gsrv, b)
        await subscribe(cb, ch)
        assert (await next_pub(cb, ch, pub["offset"]))["attempt"] == 1
        await ca.close()
        await cb.close()
    run(body())


def test_client_publish_to_own_inbox_is_guaranteed(gsrv):
    async def body():
        hal = uniq("hal")
        ch = f"inbox:#{hal}"
        cl = await gconnect(gsrv, hal)
        await subscribe(cl, ch)
        res = await cl.publish(ch, {"note": "to self"})
        got = await next_pub(cl, ch, res["offset"])
        assert got["class"] == "guaranteed" and got["attempt"] == 1
        assert await ack(cl, ch, res["offset"]) == {"acknowledged": 1}
        await cl.close()
    run(body())


def test_metrics_count_guaranteed_traffic(gsrv):
    def m(name, labels=None):
        return gsrv.metric(name, labels) or 0.0

    async def body():
        before = {k: m(k) for k in ("parley_redeliveries_total", "parley_acks_total",
                                    "parley_ack_latency_seconds_count",
                                    "parley_ack_latency_seconds_sum")}
        pubs_before = m("parley_pubs_total", {"class": "guaranteed"})
        ivy = uniq("ivy")
        ch = f"inbox:#{ivy}"
        cl = await gconnect(gsrv, ivy)
        await subscribe(cl, ch)
        pub = await apublish(gsrv, ch, {"n": 1})
        await next_pub(cl, ch, pub["offset"])
        assert (await next_pub(cl, ch, pub["offset"], timeout=5 * SLOW))["attempt"] == 2
        assert await ack(cl, ch, pub["offset"]) == {"acknowledged": 1}
        await cl.close()
        # the delivery manager counts the ack after the reply: poll
        await acall(wait_until, lambda: m("parley_acks_total") >= before["parley_acks_total"] + 1,
                    5 * SLOW, "parley_acks_total to grow")
        assert m("parley_pubs_total", {"class": "guaranteed"}) >= pubs_before + 1
        assert m("parley_redeliveries_total") >= before["parley_redeliveries_total"] + 1
        assert m("parley_ack_latency_seconds_count") >= \
            before["parley_ack_latency_seconds_count"] + 1
        # latency is measured from the last attempt: > 0, well under a minute
        grew = m("parley_ack_latency_seconds_sum") - before["parley_ack_latency_seconds_sum"]
        assert 0 < grew < 60, grew
        assert gsrv.metric("parley_dead_lettered_total") is not None
    run(body())


def test_ack_on_a_channel_of_named_users_is_a_receipt_for_the_others(gsrv):
    """On `inbox:#alice,bob` an ack that acknowledged something pushes `ack`
    {channel, user, offset} to the channel's other subscribers (the
    publisher's delivery receipt); a repeated ack pushes nothing, nor does an
    ack on a channel of no named users."""
    async def body():
        alice, bob = uniq("al"), uniq("bo")
        ch = f"inbox:#{alice},{bob}"
        ca, cb = await gconnect(gsrv, alice), await gconnect(gsrv, bob)
        await subscribe(ca, ch)
        await subscribe(cb, ch)
        pub = await ca.publish(ch, {"text": "did you get it?"})
        got = await next_pub(cb, ch, pub["offset"])
        assert got["class"] == "guaranteed"
        assert await ack(cb, ch, pub["offset"]) == {"acknowledged": 1}
        push = await ca.push("ack", ch)
        push = {k: v for k, v in push.items() if not k.startswith("_")}
        assert push == {"push": "ack", "channel": ch, "user": bob, "offset": pub["offset"]}
        await asyncio.sleep(0.3)
        assert not cb.drain(lambda m: m.get("push") == "ack"), "the acker gets no receipt of its own"
        assert await ack(cb, ch, pub["offset"]) == {"acknowledged": 0}
        # a group channel (no named users): acks push nothing
        group = "inbox:" + uniq("grp")
        await subscribe(ca, group)
        await subscribe(cb, group)
        gp = await ca.publish(group, {"text": "all"})
        await next_pub(cb, group, gp["offset"])
        await ack(cb, group, gp["offset"])
        await asyncio.sleep(0.3)
        assert not ca.drain(lambda m: m.get("push") == "ack"), "no receipts outside named-user channels"
        await ca.close()
        await cb.close()
    run(body())
