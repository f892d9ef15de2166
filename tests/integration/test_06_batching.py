# Scenario family 6: batching. Several commands in one text frame separated
# by '\n' are each answered exactly once, matched by id; the server's own
# batched push frames are split correctly; connect itself can lead a batch.
# Commands of one connection take effect in the order sent, within a frame
# too: a subscribe or history before a publish does not see it, and the
# subscriber then gets the pub as a push, exactly once.
import asyncio
import json

from parley_client import connect, make_token, offsets, raw_client, run, uniq


def test_mixed_batch_replies_by_id(server):
    async def body():
        cl = await connect(server)
        ch = "chat:" + uniq()
        cmds = [("subscribe", {"channel": ch}),
                ("publish", {"channel": ch, "data": "a"}),
                ("publish", {"channel": ch, "data": "b"}),
                ("no_such_method", {}),
                ("publish", {"channel": "news:x", "data": 1}),
                ("history", {"channel": ch, "limit": 10}),
                ("publish", {"channel": ch, "data": "c"})]
        replies = await cl.batch(cmds)
        ids = sorted(replies)
        assert len(ids) == len(cmds)
        r = [replies[i] for i in ids]
        assert "result" in r[0]
        pub_offsets = sorted(r[i]["result"]["offset"] for i in (1, 2, 6))
        assert pub_offsets == [1, 2, 3]
        assert r[3]["error"]["code"] == 104
        assert r[4]["error"]["code"] == 103
        # commands take effect in the order sent: the subscribe sees none of
        # the publishes after it, the history the two before it
        assert r[0]["result"]["offset"] == 0
        assert offsets(r[5]["result"]["pubs"]) == [1, 2]
        got = await cl.pubs(ch, 3)
        assert offsets(got) == [1, 2, 3]
        await asyncio.sleep(0.3)
        assert cl.drain_pubs(ch) == []
        await cl.close()
    run(body())


def test_large_publish_batch(server):
    async def body():
        cl = await connect(server)
        sub = await connect(server, "bob")
        ch = "chat:" + uniq()
        await sub.subscribe(ch)
        n = 200
        replies = await cl.batch([("publish", {"channel": ch, "data": {"i": i}})
                                  for i in range(n)])
        assert len(replies) == n
        by_offset = {}
        for rep in replies.values():
            assert "result" in rep, rep
            by_offset[rep["result"]["offset"]] = rep["result"]["id"]
        assert sorted(by_offset) == list(range(1, n + 1))
        got = await sub.pubs(ch, n)
        assert offsets(got) == list(range(1, n + 1))
        assert all(by_offset[p["offset"]] == p["id"] for p in got)
        # the server batched pushes: fewer frames than messages is expected,
        # and the client above split them; nothing is left over or unparsed
        assert sub.drain_pubs(ch) == []
        await cl.close()
        await sub.close()
    run(body())


def test_connect_first_in_batch(server):
    async def body():
        cl = await raw_client(server)
        ch = "chat:" + uniq()
        replies = await cl.batch([("connect", {"token": make_token("alice")}),
                                  ("subscribe", {"channel": ch}),
                                  ("publish", {"channel": ch, "data": "x"})])
        r = [replies[i] for i in sorted(replies)]
        assert r[0]["result"]["user"] == "alice"
        assert "result" in r[1], r[1]
        assert r[2]["result"]["offset"] == 1
        assert r[1]["result"]["offset"] == 0
        assert offsets(await cl.pubs(ch, 1)) == [1]
        await asyncio.sleep(0.3)
        assert cl.drain_pubs(ch) == []
        await cl.close()
    run(body())


async def own_pub_once(cl, ch, result, offset):
    """The pub at `offset` reaches cl exactly once: in the subscribe result
    or as a push (here always the push: the subscribe came first)."""
    in_result = [p["offset"] for p in result.get("pubs", [])]
    pushed = [] if offset in in_result else offsets(await cl.pubs(ch, 1))
    await asyncio.sleep(0.3)
    pushed += offsets(cl.drain_pubs(ch))
    assert (in_result + pushed).count(offset) == 1, (in_result, pushed)
    assert [o for o in pushed if o != offset] == [], pushed


def test_subscribe_then_publish_in_one_frame(server):
    """The client's own pub, published right after its subscribe in the same
    frame, reaches it once: the subscribe result names the head before it."""
    async def body():
        cl = await connect(server)
        ch = "chat:" + uniq()
        replies = await cl.batch([("subscribe", {"channel": ch}),
                                  ("publish", {"channel": ch, "data": "mine"})])
        sub, pub = [replies[i] for i in sorted(replies)]
        assert sub["result"]["offset"] == 0, sub
        assert pub["result"]["offset"] == 1, pub
        await own_pub_once(cl, ch, sub["result"], 1)
        await cl.close()
    run(body())


def test_recovering_subscribe_then_publish_in_one_frame(server):
    """The same with `since`: recovered at the head before the publish, the
    publish's pub then pushed once."""
    async def body():
        other = await connect(server, "bob")
        ch = "chat:" + uniq()
        await other.publish(ch, 1)
        epoch = (await other.publish(ch, 2))["epoch"]
        cl = await connect(server)
        replies = await cl.batch([
            ("subscribe", {"channel": ch, "since": {"offset": 1, "epoch": epoch}}),
            ("publish", {"channel": ch, "data": "mine"})])
        sub, pub = [replies[i] for i in sorted(replies)]
        res = sub["result"]
        assert res["recovered"] is True and res["offset"] == 2, res
        assert offsets(res["pubs"]) == [2]
        assert pub["result"]["offset"] == 3
        await own_pub_once(cl, ch, res, 3)
        await cl.close()
        await other.close()
    run(body())


def test_connect_subs_then_publish_in_one_frame(server):
    """A connect whose subs name a channel, then a publish to it, in one frame."""
    async def body():
        other = await connect(server, "bob")
        ch = "chat:" + uniq()
        epoch = (await other.publish(ch, 1))["epoch"]
        cl = await raw_client(server)
        replies = await cl.batch([
            ("connect", {"token": make_token("alice"),
                         "subs": {ch: {"offset": 1, "epoch": epoch}}}),
            ("publish", {"channel": ch, "data": "mine"})])
        con, pub = [replies[i] for i in sorted(replies)]
        res = con["result"]["subs"][ch]
        assert res["recovered"] is True and res["offset"] == 1, res
        assert res["pubs"] == []
        assert pub["result"]["offset"] == 2
        await own_pub_once(cl, ch, res, 2)
        await cl.close()
        await other.close()
    run(body())


def test_history_around_publish_in_one_frame(server):
    """A history before a publish in the same frame does not include it, one
    after does."""
    async def body():
        cl = await connect(server)
        ch = "chat:" + uniq()
        await cl.publish(ch, 1)
        epoch = (await cl.publish(ch, 2))["epoch"]
        replies = await cl.batch([("history", {"channel": ch, "limit": 10}),
                                  ("publish", {"channel": ch, "data": 3}),
                                  ("history", {"channel": ch, "limit": 10}),
                                  ("publish", {"channel": ch, "data": 4}),
                                  ("history", {"channel": ch, "limit": 10,
                                               "since": {"offset": 2, "epoch": epoch}})])
        h1, p1, h2, p2, h3 = [replies[i]["result"] for i in sorted(replies)]
        assert (p1["offset"], p2["offset"]) == (3, 4)
        assert h1["offset"] == 2 and offsets(h1["pubs"]) == [1, 2]
        assert h2["offset"] == 3 and offsets(h2["pubs"]) == [1, 2, 3]
        assert h3["offset"] == 4 and offsets(h3["pubs"]) == [3, 4]
        await cl.close()
    run(body())


def test_batch_with_blank_lines_and_crlf(server):
    async def body():
        cl = await connect(server)
        ch = "chat:" + uniq()
        c1 = cl.command("publish", {"channel": ch, "data": 1})
        c2 = cl.command("publish", {"channel": ch, "data": 2})
        await cl.send_raw(json.dumps(c1) + "\n\n" + json.dumps(c2) + "\n")
        a, b = await cl.reply(c1["id"]), await cl.reply(c2["id"])
        assert sorted([a["result"]["offset"], b["result"]["offset"]]) == [1, 2]
        await cl.close()
    run(body())


def test_batch_with_one_bad_shape_line(server):
    """A bad-shape line is answered 107 (with its id) and the others still run."""
    async def body():
        cl = await connect(server)
        ch = "chat:" + uniq()
        good1 = cl.command("publish", {"channel": ch, "data": 1})
        bad = cl.command("publish", [1, 2])
        good2 = cl.command("publish", {"channel": ch, "data": 2})
        await cl.send_raw("\n".join(json.dumps(c) for c in (good1, bad, good2)))
        assert "result" in await cl.reply(good1["id"])
        assert (await cl.reply(bad["id"]))["error"]["code"] == 107
        assert "result" in await cl.reply(good2["id"])
        await cl.close()
    run(body())


def test_out_of_order_ids(server):
    async def body():
        cl = await connect(server)
        ch = "chat:" + uniq()
        cmds = [cl.command("publish", {"channel": ch, "data": i}, cid=cid)
                for i, cid in enumerate((900, 7, 123456789, 42))]
        await cl.send_raw("\n".join(json.dumps(c) for c in cmds))
        for c in cmds:
            rep = await cl.reply(c["id"])
            assert rep["id"] == c["id"] and "result" in rep
        await cl.close()
    run(body())
