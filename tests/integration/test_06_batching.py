# Scenario family 6: batching. Several commands in one text frame separated
# by '\n' are each answered exactly once, matched by id; the server's own
# batched push frames are split correctly; connect itself can lead a batch.
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
        assert "pubs" in r[5]["result"]
        # the subscription starts after the head its result names (the publishes
        # in the same frame may race it); every later pub arrives exactly once
        head = r[0]["result"]["offset"]
        want = [o for o in (1, 2, 3) if o > head]
        got = await cl.pubs(ch, len(want))
        assert offsets(got) == want
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
        head = r[1]["result"]["offset"]
        assert head in (0, 1)
        if head == 0:
            assert offsets(await cl.pubs(ch, 1)) == [1]
        await asyncio.sleep(0.3)
        assert cl.drain_pubs(ch) == []
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
