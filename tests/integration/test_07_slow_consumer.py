# Scenario family 7: slow consumers. A subscriber that stops reading while
# large pubs flow is cut with 4001 once its outbound queue passes
# limits.outbound_queue_bytes, while a fast subscriber on the same channel
# keeps receiving every offset and the slow-consumer metric goes up.
from parley_client import SLOW, RawWS, connect, make_token, offsets, run, uniq


def _tight_queue(cfg):
    cfg["limits"]["outbound_queue_bytes"] = 262144


def test_slow_consumer_is_cut_fast_one_unaffected(server_factory):
    srv = server_factory(_tight_queue, name="slow")
    ch = "chat:" + uniq()
    before = srv.metric("parley_slow_consumer_disconnects_total") or 0

    slow = RawWS(srv, rcvbuf=4096)
    assert "result" in slow.rpc("connect", {"token": make_token("sloth")})
    assert "result" in slow.rpc("subscribe", {"channel": ch})
    # from here on `slow` never reads until the end

    async def body():
        fast = await connect(srv, "fast")
        await fast.subscribe(ch)
        pub = await connect(srv, "alice")
        blob = "z" * 60000
        n, cut = 0, False
        for n in range(1, 401):
            ack = await pub.publish(ch, {"n": n, "blob": blob})
            assert ack["offset"] == n
            p = (await fast.pubs(ch, 1))[0]
            assert p["offset"] == n, (n, p["offset"])
            if n % 10 == 0 and (srv.metric("parley_slow_consumer_disconnects_total") or 0) > before:
                cut = True
                break
        assert cut, f"slow consumer not cut after {n} pubs of 60 KB (queue limit 256 KB)"
        # the fast one keeps going after the cut
        for k in range(20):
            await pub.publish(ch, {"after": k})
        assert offsets(await fast.pubs(ch, 20)) == list(range(n + 1, n + 21))
        assert not fast.closed.is_set()
        await fast.close()
        await pub.close()
    run(body(), timeout=180 * SLOW)

    # now read what the slow socket has: buffered pubs, then the close (or a reset)
    code, msgs, how = slow.read_to_close(timeout=20 * SLOW)
    slow.close()
    assert how in ("close", "eof", "reset"), f"slow socket still open ({how})"
    if how == "close":
        assert code == 4001, f"slow consumer closed with {code}"
        disc = [m for m in msgs if m.get("push") == "disconnect"]
        if disc:
            assert disc[-1]["code"] == 4001 and disc[-1]["reconnect"] is True
    got = [m["offset"] for m in msgs if m.get("push") == "pub"]
    assert got == sorted(got) and len(got) == len(set(got)), "slow consumer got a garbled stream"
    assert (srv.metric("parley_slow_consumer_disconnects_total") or 0) >= before + 1


def test_slow_consumer_can_resume_by_offset(server_factory):
    """After the cut, reconnecting with `since` recovers what was missed."""
    srv = server_factory(_tight_queue, name="slow-resume")
    ch = "chat:" + uniq()
    slow = RawWS(srv, rcvbuf=4096)
    slow.rpc("connect", {"token": make_token("sloth")})
    first = slow.rpc("subscribe", {"channel": ch})["result"]
    before = srv.metric("parley_slow_consumer_disconnects_total") or 0

    async def publish_until_cut():
        pub = await connect(srv, "alice")
        blob = "q" * 60000
        for n in range(1, 401):
            await pub.publish(ch, {"n": n, "blob": blob})
            if n % 10 == 0 and (srv.metric("parley_slow_consumer_disconnects_total") or 0) > before:
                break
        await pub.close()
        return n

    head = run(publish_until_cut(), timeout=180 * SLOW)
    _, msgs, _ = slow.read_to_close(timeout=20 * SLOW)
    slow.close()
    got = [m["offset"] for m in msgs if m.get("push") == "pub"]
    last = got[-1] if got else 0

    async def resume():
        cl = await connect(srv, "sloth")
        # small pages: the catch-up is streamed as the connection drains
        r = await cl.subscribe(ch, since={"offset": last, "epoch": first["epoch"]}, limit=2)
        assert r["recovered"] is True, r
        rest = offsets(r["pubs"])
        if r["more"]:
            rest += offsets(await cl.pubs(ch, head - last - len(rest)))
        assert rest == list(range(last + 1, head + 1))
        await cl.close()
    run(resume())


def test_fast_subscribers_not_cut_under_load(server_factory):
    srv = server_factory(_tight_queue, name="fast-only")
    ch = "chat:" + uniq()

    async def body():
        subs = [await connect(srv, f"s{i}") for i in range(4)]
        for s in subs:
            await s.subscribe(ch)
        pub = await connect(srv, "alice")
        blob = "f" * 20000
        await pub.publish_many(ch, 100, data=lambda i: {"i": i, "b": blob}, window=2)
        for s in subs:
            assert offsets(await s.pubs(ch, 100)) == list(range(1, 101))
            assert not s.closed.is_set()
        for c in subs + [pub]:
            await c.close()
    run(body(), timeout=120 * SLOW)
    assert (srv.metric("parley_slow_consumer_disconnects_total") or 0) == 0
