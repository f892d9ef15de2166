# Scenario family 5: idempotent publish. A repeated idempotency key returns
# the original result with duplicate=true and stores nothing, per channel and
# per tenant, and the memory of keys survives a clean restart and a kill -9.
from parley_client import connect, offsets, run, uniq


def test_duplicate_key_returns_original(server_factory):
    srv = server_factory(name="idem")

    async def body():
        cl = await connect(srv)
        sub = await connect(srv, "bob")
        ch = "chat:" + uniq()
        await sub.subscribe(ch)
        first = await cl.publish(ch, {"v": 1}, idempotency_key="order-42")
        assert first["duplicate"] is False and first["offset"] == 1
        again = await cl.publish(ch, {"v": 1}, idempotency_key="order-42")
        assert again["duplicate"] is True
        assert (again["id"], again["offset"], again["epoch"]) == \
            (first["id"], first["offset"], first["epoch"])
        # a retry with different data is still the original (the key decides)
        third = await cl.publish(ch, {"v": 2}, idempotency_key="order-42")
        assert third["duplicate"] is True and third["id"] == first["id"]
        nxt = await cl.publish(ch, {"v": 3}, idempotency_key="order-43")
        assert nxt["duplicate"] is False and nxt["offset"] == 2
        h = await cl.history(ch)
        assert [p["data"] for p in h["pubs"]] == [{"v": 1}, {"v": 3}]
        # subscribers saw each stored pub once, duplicates are not fanned out
        assert offsets(await sub.pubs(ch, 2)) == [1, 2]
        # the same key on another channel, or in another tenant, is independent
        other = await cl.publish(ch + "x", "o", idempotency_key="order-42")
        assert other["duplicate"] is False and other["offset"] == 1
        g = await connect(srv, "alice", "globex")
        gres = await g.publish(ch, "g", idempotency_key="order-42")
        assert gres["duplicate"] is False and gres["offset"] == 1
        for c in (cl, sub, g):
            await c.close()
    run(body())


def test_duplicates_in_one_batch(server_factory):
    srv = server_factory(name="idem-batch")

    async def body():
        cl = await connect(srv)
        ch = "chat:" + uniq()
        replies = await cl.batch([("publish", {"channel": ch, "data": i, "idempotency_key": "same"})
                                  for i in range(10)])
        results = [r["result"] for r in replies.values()]
        assert sum(1 for r in results if r["duplicate"] is False) == 1
        assert len({(r["id"], r["offset"]) for r in results}) == 1
        h = await cl.history(ch)
        assert len(h["pubs"]) == 1 and h["offset"] == 1
        await cl.close()
    run(body())


def _check_after_restart(srv, ch, originals):
    async def body():
        cl = await connect(srv)
        for key, orig in originals.items():
            again = await cl.publish(ch, {"retry": key}, idempotency_key=key)
            assert again["duplicate"] is True, (key, again)
            assert (again["id"], again["offset"], again["epoch"]) == \
                (orig["id"], orig["offset"], orig["epoch"])
        h = await cl.history(ch, limit=1000)
        assert offsets(h["pubs"]) == list(range(1, len(originals) + 1))
        assert sorted(p["id"] for p in h["pubs"]) == sorted(o["id"] for o in originals.values())
        fresh = await cl.publish(ch, "fresh", idempotency_key="brand-new")
        assert fresh["duplicate"] is False and fresh["offset"] == len(originals) + 1
        await cl.close()
    run(body())


def _publish_keyed(srv, ch, n):
    async def body():
        cl = await connect(srv)
        out = {}
        for i in range(n):
            out[f"key-{i}"] = await cl.publish(ch, {"i": i}, idempotency_key=f"key-{i}")
        await cl.close()
        return out
    return run(body())


def test_idempotency_survives_restart(server_factory):
    srv = server_factory(name="idem-restart")
    ch = "chat:" + uniq()
    originals = _publish_keyed(srv, ch, 20)
    srv.restart()
    _check_after_restart(srv, ch, originals)


def test_idempotency_survives_kill9(server_factory):
    srv = server_factory(name="idem-kill")
    ch = "chat:" + uniq()
    originals = _publish_keyed(srv, ch, 20)
    srv.kill()
    srv.start()
    _check_after_restart(srv, ch, originals)
