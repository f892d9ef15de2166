# Crash safety of guaranteed delivery: after kill -9 (and after a clean
# restart) on the same data dir, unacknowledged pubs come again (on
# subscribe, with the next attempt number; and deliveries left in state sent
# are tracked and retried until acked or dead-lettered), acknowledged ones
# never do, and queued ones still wait for their offline recipient.
import json

import pytest

from helpers_api import api, wait_until
from helpers_guaranteed import (ack, acall, apublish, audit_lines, audit_verify,
                                delivery_of, dlq_list, gconnect, guaranteed_cfg, next_pub, no_pub,
                                subscribe, wait_dlq, wait_sent, wait_state)
from parley_client import SLOW, run, uniq

# the `slow` namespace: ack_wait 1 s, backoff <= 100 ms, 3 attempts
SLOW_MAX = 3


def slow_quiet():
    return 1.1 + 0.5 * SLOW


def states(d):
    return [(t["state"], t["attempt"]) for t in d["transitions"]]


@pytest.mark.parametrize("how", ["kill9", "sigterm"])
def test_unacked_come_again_acked_do_not(server_factory, how):
    srv = server_factory(tweak=guaranteed_cfg, name=f"grestart-{how}")
    bob, carol = uniq("bob"), uniq("carol")
    ch, cch = f"slow:#{bob}", f"slow:#{carol}"

    async def before():
        cl = await gconnect(srv, bob)
        await subscribe(cl, ch)
        pubs = [await apublish(srv, ch, {"n": i}) for i in range(4)]
        for p in pubs:
            assert (await next_pub(cl, ch, p["offset"]))["attempt"] == 1
        # the first two acknowledged (answered: durable), the last two not
        assert await ack(cl, ch, pubs[1]["offset"]) == {"acknowledged": 2}
        queued = await apublish(srv, cch, {"for": "carol"})  # carol is offline
        for p in pubs[2:]:
            await acall(wait_state, srv, p["id"], bob, "sent")
        await cl.close()  # promptly: the crash must find them in state sent
        return pubs, queued

    pubs, queued = run(before())
    if how == "kill9":
        srv.kill()
        srv.start()
    else:
        srv.restart()

    async def after():
        for p in pubs[:2]:
            assert (await acall(delivery_of, srv, p["id"], bob))["state"] == "acknowledged"
        cl = await gconnect(srv, bob)
        await subscribe(cl, ch)
        got = {}
        for p in pubs[2:]:
            m = await next_pub(cl, ch, p["offset"], timeout=5 * SLOW)
            assert m["id"] == p["id"] and m["attempt"] >= 2, m
            got[p["offset"]] = m
        early = cl.drain(lambda m: m.get("push") == "pub" and m["offset"] <= pubs[1]["offset"])
        assert early == [], f"acknowledged pubs delivered again: {early}"
        # attempt numbers keep counting across the restart (the state trails
        # the wire by a group commit: poll)
        for p in pubs[2:]:
            want = got[p["offset"]]["attempt"]
            await acall(wait_until, lambda: (delivery_of(srv, p["id"], bob) or {})
                        .get("attempts", 0) >= want, 5 * SLOW, f"attempts >= {want}")
            d = await acall(delivery_of, srv, p["id"], bob)
            assert "failed" not in [t["state"] for t in d["transitions"]], d
        assert await ack(cl, ch, pubs[3]["offset"]) == {"acknowledged": 2}
        await no_pub(cl, ch, slow_quiet())
        for p in pubs:
            await acall(wait_state, srv, p["id"], bob, "acknowledged")
        # the offline recipient's queued pub is still waiting, at attempt 1
        cc = await gconnect(srv, carol)
        await subscribe(cc, cch)
        m = await next_pub(cc, cch, queued["offset"])
        assert m["attempt"] == 1 and m["id"] == queued["id"], m
        await acall(wait_sent, srv, queued["id"], carol)
        assert await ack(cc, cch, queued["offset"]) == {"acknowledged": 1}
        d = await acall(wait_state, srv, queued["id"], carol, "acknowledged")
        assert states(d) == [("queued", 0), ("sent", 1), ("acknowledged", 1)], d
        await cl.close()
        await cc.close()

    run(after())


def test_sent_deliveries_are_retried_after_a_crash(server_factory):
    """Nobody reconnects: the restarted server still tracks the delivery left
    in state sent; when its resend is due and the recipient has no subscribed
    connection, it goes back to queued (no attempt is spent on nobody, and it
    is not dead-lettered), and the recipient gets it, attempt 2, when it
    subscribes again."""
    srv = server_factory(tweak=guaranteed_cfg, name="grestart-retry")
    eve = uniq("eve")
    ch = f"slow:#{eve}"

    async def before():
        cl = await gconnect(srv, eve)
        await subscribe(cl, ch)
        pub = await apublish(srv, ch, {"n": 1}, correlation_id="crash-retry")
        assert (await next_pub(cl, ch, pub["offset"]))["attempt"] == 1
        await acall(wait_state, srv, pub["id"], eve, "sent")
        await cl.close()
        return pub

    pub = run(before())
    srv.kill()
    srv.start()
    d = delivery_of(srv, pub["id"], eve)
    assert d["state"] == "sent" and d["attempts"] == 1, f"crash came too late: {d}"
    d = wait_state(srv, pub["id"], eve, "queued", timeout=15 * SLOW)
    assert d["attempts"] == 1, d
    assert api(srv, "dlq.list", {"user": eve})["entries"] == []

    async def after():
        cl = await gconnect(srv, eve)
        await subscribe(cl, ch)
        got = await next_pub(cl, ch, pub["offset"])
        assert got["attempt"] == 2, got
        await ack(cl, ch, pub["offset"])
        await cl.close()

    run(after())
    d = wait_state(srv, pub["id"], eve, "acknowledged")
    assert ("queued", 1) in states(d), d


def test_retry_after_crash_reaches_a_resubscribed_client(server_factory):
    """The restored delivery reaches the user's new connection with attempt
    numbers that continue from before the crash, and one ack ends it."""
    srv = server_factory(tweak=guaranteed_cfg, name="grestart-resub")
    fay = uniq("fay")
    ch = f"slow:#{fay}"

    async def before():
        cl = await gconnect(srv, fay)
        await subscribe(cl, ch)
        pub = await apublish(srv, ch, {"n": 1})
        assert (await next_pub(cl, ch, pub["offset"]))["attempt"] == 1
        await acall(wait_state, srv, pub["id"], fay, "sent")
        await cl.close()
        return pub

    pub = run(before())
    srv.kill()
    srv.start()

    async def after():
        cl = await gconnect(srv, fay)
        await subscribe(cl, ch)
        first = await next_pub(cl, ch, pub["offset"], timeout=5 * SLOW)
        assert 2 <= first["attempt"] <= SLOW_MAX, first
        if first["attempt"] < SLOW_MAX:
            second = await next_pub(cl, ch, pub["offset"], timeout=5 * SLOW)
            assert second["attempt"] == first["attempt"] + 1, (first, second)
        assert await ack(cl, ch, pub["offset"]) == {"acknowledged": 1}
        await no_pub(cl, ch, slow_quiet())
        d = await acall(wait_state, srv, pub["id"], fay, "acknowledged")
        assert d["attempts"] <= SLOW_MAX, d
        assert (await acall(dlq_list, srv, {"user": fay}))["entries"] == []
        await cl.close()

    run(after())


def test_dead_letters_and_audit_survive_a_crash(server_factory):
    srv = server_factory(tweak=guaranteed_cfg, name="grestart-dlq")
    gil = uniq("gil")
    ch = f"fast:#{gil}"

    async def before():
        cl = await gconnect(srv, gil)
        await subscribe(cl, ch)
        pubs = [await apublish(srv, ch, {"n": i}) for i in range(2)]
        entries = await acall(wait_dlq, srv, {"user": gil}, 2)
        await cl.close()
        return pubs, entries

    pubs, entries = run(before())
    assert api(srv, "dlq.purge", {"id": entries[0]["id"]}) == {"count": 1}
    srv.kill()
    srv.start()
    left = dlq_list(srv, {"user": gil})["entries"]
    assert left == [entries[1]], left
    offsets = {p["id"]: p["offset"] for p in pubs}

    async def after():
        cl = await gconnect(srv, gil)
        await subscribe(cl, ch)
        await no_pub(cl, ch, 0.3 * SLOW)  # failed deliveries are not pending
        res = await acall(api, srv, "dlq.replay", {"id": entries[1]["id"]})
        assert res == {"count": 1}, res
        m = await next_pub(cl, ch, offsets[entries[1]["pub_id"]], timeout=5 * SLOW)
        assert m["id"] == entries[1]["pub_id"] and m["attempt"] == 1, m
        assert await ack(cl, ch, m["offset"]) == {"acknowledged": 1}
        await cl.close()

    run(after())
    actions = [json.loads(line)["action"] for line in audit_lines(srv)]
    assert actions.count("dlq.purge") == 1 and actions.count("dlq.replay") == 1, actions
    rc, out = audit_verify(srv)
    assert rc == 0, out
