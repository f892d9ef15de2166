# Scenario family 2: live publish/subscribe. Pushes carry the documented
# fields, offsets are contiguous from 1 per channel and per tenant, ephemeral
# pubs skip storage, and every refusal (size, namespace, permission, channel
# name, limits) gets its error code without harming the connection.
import asyncio
import time

from parley_client import (channel_token, connect, make_token, offsets, run, scaled, uniq)


def test_pub_push_fields(server):
    async def body():
        ch = "chat:" + uniq()
        sub = await connect(server, "bob")
        pub = await connect(server, "alice")
        res = await sub.subscribe(ch)
        assert res["offset"] == 0 and res["recovered"] is False and res["pubs"] == []
        assert isinstance(res["epoch"], str) and res["epoch"]
        data = {"text": "héllo ✓", "n": [1, 2.5, None, True], "nested": {"a": {}}}
        ack = await pub.publish(ch, data, type="message.created", correlation_id="corr-1",
                                headers={"x-trace": "abc"})
        assert ack["offset"] == 1 and ack["epoch"] == res["epoch"]
        assert ack["duplicate"] is False and isinstance(ack["id"], str) and len(ack["id"]) == 26
        (p,) = await sub.pubs(ch, 1)
        assert p["channel"] == ch
        assert p["offset"] == 1
        assert p["epoch"] == res["epoch"]
        assert p["id"] == ack["id"]
        assert abs(p["ts"] - time.time() * 1000) < 120_000
        assert p["data"] == data
        assert p["info"] == {"user": "alice", "client": pub.connect_result["client"]}
        assert p["type"] == "message.created"
        assert p["correlation_id"] == "corr-1"
        assert p["headers"] == {"x-trace": "abc"}
        assert "class" not in p or p["class"] == "standard"
        await sub.close()
        await pub.close()
    run(body())


def test_offsets_contiguous_from_one_for_every_subscriber(server):
    async def body():
        ch = "chat:" + uniq()
        n = scaled(200, 60)
        subs = [await connect(server, f"u{i}") for i in range(3)]
        for s in subs:
            await s.subscribe(ch)
        pub = await connect(server, "alice")
        acks = await pub.publish_many(ch, n, window=16)
        assert sorted(offsets(acks)) == list(range(1, n + 1))
        by_offset = {a["offset"]: a["id"] for a in acks}
        for s in subs:
            got = await s.pubs(ch, n)
            assert offsets(got) == list(range(1, n + 1))
            assert all(by_offset[p["offset"]] == p["id"] for p in got)
        for c in subs + [pub]:
            await c.close()
    run(body())


def test_publisher_subscribed_to_own_channel_gets_its_pub(server):
    async def body():
        ch = uniq("self")  # default namespace
        cl = await connect(server)
        await cl.subscribe(ch)
        ack = await cl.publish(ch, "me")
        (p,) = await cl.pubs(ch, 1)
        assert p["offset"] == ack["offset"] == 1 and p["data"] == "me"
        await cl.close()
    run(body())


def test_tenants_are_separate_streams(server):
    async def body():
        ch = "chat:" + uniq()
        a_sub = await connect(server, "alice", "acme")
        g_sub = await connect(server, "alice", "globex")
        await a_sub.subscribe(ch)
        await g_sub.subscribe(ch)
        a_pub = await connect(server, "bob", "acme")
        g_pub = await connect(server, "bob", "globex")
        assert (await a_pub.publish(ch, "acme-1"))["offset"] == 1
        assert (await a_pub.publish(ch, "acme-2"))["offset"] == 2
        assert (await g_pub.publish(ch, "globex-1"))["offset"] == 1
        assert [p["data"] for p in await a_sub.pubs(ch, 2)] == ["acme-1", "acme-2"]
        assert [p["data"] for p in await g_sub.pubs(ch, 1)] == ["globex-1"]
        await asyncio.sleep(0.3)
        assert a_sub.drain_pubs(ch) == [] and g_sub.drain_pubs(ch) == []
        h = await g_pub.history(ch)
        assert [p["data"] for p in h["pubs"]] == ["globex-1"] and h["offset"] == 1
        for c in (a_sub, g_sub, a_pub, g_pub):
            await c.close()
    run(body())


def test_ephemeral_pub_is_live_only(server):
    async def body():
        ch = "chat:" + uniq()
        sub = await connect(server, "bob")
        pub = await connect(server, "alice")
        await sub.subscribe(ch)
        await pub.publish(ch, "stored-1")
        ack = await pub.publish(ch, "flash", **{"class": "ephemeral"})
        assert ack["offset"] == 0
        await pub.publish(ch, "stored-2")
        got = await sub.pubs(ch, 3)
        assert [p["data"] for p in got] == ["stored-1", "flash", "stored-2"]
        assert [p["offset"] for p in got] == [1, 0, 2]
        assert got[1].get("class") == "ephemeral"
        h = await pub.history(ch)
        assert [p["data"] for p in h["pubs"]] == ["stored-1", "stored-2"]
        assert h["offset"] == 2
        await sub.close()
        await pub.close()
    run(body())


def test_unsubscribe_stops_delivery(server):
    async def body():
        ch, other = "chat:" + uniq(), "chat:" + uniq()
        sub = await connect(server, "bob")
        pub = await connect(server, "alice")
        await sub.subscribe(ch)
        await sub.subscribe(other)
        await pub.publish(ch, 1)
        await sub.pubs(ch, 1)
        assert await sub.call("unsubscribe", {"channel": ch}) == {}
        await pub.publish(ch, 2)
        await pub.publish(other, "sentinel")
        await sub.pubs(other, 1)
        await asyncio.sleep(0.3)
        assert sub.drain_pubs(ch) == []
        # subscribing again works (no 105) and resumes live delivery
        res = await sub.subscribe(ch)
        assert res["offset"] == 2
        await pub.publish(ch, 3)
        assert [p["offset"] for p in await sub.pubs(ch, 1)] == [3]
        await sub.close()
        await pub.close()
    run(body())


def test_already_subscribed_is_105(server):
    async def body():
        cl = await connect(server)
        ch = "chat:" + uniq()
        await cl.subscribe(ch)
        err = await cl.error("subscribe", {"channel": ch})
        assert err["code"] == 105
        # unsubscribing a channel never subscribed is not a crash either way
        reply = await cl.rpc("unsubscribe", {"channel": "chat:" + uniq()})
        assert "result" in reply or reply["error"]["code"] in (102, 107), reply
        await cl.close()
    run(body())


def test_publish_refusals(server):
    async def body():
        cl = await connect(server)
        big = "x" * 70000
        cases = [
            ({"channel": "chat:a", "data": big}, 106),
            ({"channel": "news:a", "data": 1}, 103),
            ({"channel": "nope:x", "data": 1}, 102),
            ({"channel": "chat:has space", "data": 1}, 107),
            ({"channel": "a:b:c", "data": 1}, 107),
            ({"channel": "", "data": 1}, 107),
            ({"channel": "chat:" + "a" * 251, "data": 1}, 107),  # 256 bytes
            ({"channel": "chat:caf\u00e9", "data": 1}, 107),
            ({"channel": "chat:a", "data": 1, "idempotency_key": "k" * 129}, 107),
            ({"channel": "chat:a", "data": 1, "class": "gold"}, 107),
            ({"channel": "chat:a"}, 107),  # no data
            ({"channel": 42, "data": 1}, 107),
            ({"channel": "chat:a", "data": 1, "headers": {"x": 1}}, 107),
        ]
        for params, code in cases:
            err = await cl.error("publish", params)
            assert err["code"] == code, (params if len(str(params)) < 300 else "big", err)
            assert err["temporary"] is False
        # the connection is still usable and nothing was stored in chat:a
        ch = "chat:" + uniq()
        assert (await cl.publish(ch, "ok"))["offset"] == 1
        # a long but legal channel name (255 bytes) and a 60 KB payload work
        long_ch = "chat:" + "b" * 250
        assert (await cl.publish(long_ch, "y" * 60000))["offset"] >= 1
        # a 128-byte idempotency key is legal
        assert (await cl.publish(ch, 1, idempotency_key="k" * 128))["offset"] == 2
        await cl.close()
    run(body())


def test_news_is_subscribe_only_unless_publish_claim(server):
    async def body():
        ch = "news:" + uniq()
        cl = await connect(server)
        res = await cl.subscribe(ch)
        assert res["offset"] == 0
        assert (await cl.error("publish", {"channel": ch, "data": 1}))["code"] == 103
        editor = await connect(server, token=make_token("editor", publish=["news:*"]))
        assert (await editor.publish(ch, "headline"))["offset"] == 1
        assert (await cl.pubs(ch, 1))[0]["data"] == "headline"
        # a claim for other channels grants nothing here
        other = await connect(server, token=make_token("intern", publish=["chat:*"]))
        assert (await other.error("publish", {"channel": ch, "data": 1}))["code"] == 103
        for c in (cl, editor, other):
            await c.close()
    run(body())


def test_unknown_namespace_subscribe_is_102(server):
    async def body():
        cl = await connect(server)
        assert (await cl.error("subscribe", {"channel": "nope:x"}))["code"] == 102
        assert (await cl.error("history", {"channel": "nope:x"}))["code"] == 102
        await cl.close()
    run(body())


def test_dm_channel_members_only(server):
    async def body():
        ch = "dm:#alice,bob"
        alice = await connect(server, "alice", "globex")
        bob = await connect(server, "bob", "globex")
        carol = await connect(server, "carol", "globex")
        await alice.subscribe(ch)
        await bob.subscribe(ch)
        assert (await carol.error("subscribe", {"channel": ch}))["code"] == 103
        assert (await carol.error("publish", {"channel": ch, "data": "hi"}))["code"] == 103
        assert (await carol.error("history", {"channel": ch}))["code"] == 103
        ack = await alice.publish(ch, "hi bob")
        assert (await bob.pubs(ch, 1))[0]["id"] == ack["id"]
        await bob.publish(ch, "hi alice")
        got = await alice.pubs(ch, 2)
        assert [p["data"] for p in got] == ["hi bob", "hi alice"]
        for c in (alice, bob, carol):
            await c.close()
    run(body())


def test_private_namespace_needs_channel_token(server):
    async def body():
        ch = "secret:" + uniq()
        cl = await connect(server, "alice")
        err = await cl.error("subscribe", {"channel": ch})
        assert err["code"] == 103, err
        # a token for another channel, another user, or signed badly is refused
        for tok in (channel_token("secret:other", "alice"),
                    channel_token(ch, "mallory"),
                    channel_token(ch, "alice", secret="wrong-secret-0123456789"),
                    channel_token(ch, "alice", "globex")):
            err = await cl.error("subscribe", {"channel": ch, "token": tok})
            assert err["code"] in (101, 103), err
        res = await cl.subscribe(ch, token=channel_token(ch, "alice"))
        assert res["offset"] == 0
        # publishing into a private channel uses the token's `publish` claim
        pub = await connect(server, token=make_token("bob", publish=["secret:*"]))
        await pub.publish(ch, "psst")
        assert (await cl.pubs(ch, 1))[0]["data"] == "psst"
        await cl.close()
        await pub.close()
    run(body())


def test_expired_channel_token_is_refused(server):
    async def body():
        ch = "secret:" + uniq()
        cl = await connect(server, "alice")
        err = await cl.error("subscribe", {"channel": ch, "token": channel_token(ch, ttl=-60)})
        assert err["code"] in (103, 109), err
        await cl.close()
    run(body())


def test_max_channels_per_connection(server):
    async def body():
        cl = await connect(server)
        base = uniq("m")
        replies = await cl.batch([("subscribe", {"channel": f"chat:{base}-{i}"})
                                  for i in range(128)])
        assert all("result" in r for r in replies.values()), \
            [r for r in replies.values() if "error" in r][:3]
        err = await cl.error("subscribe", {"channel": f"chat:{base}-extra"})
        assert err["code"] == 106
        # freeing one slot allows one more
        await cl.call("unsubscribe", {"channel": f"chat:{base}-0"})
        await cl.subscribe(f"chat:{base}-extra")
        await cl.close()
    run(body())


def test_subscribe_limit_above_1000_is_106(server):
    async def body():
        cl = await connect(server)
        err = await cl.error("subscribe", {"channel": "chat:" + uniq(),
                                           "since": {"offset": 0, "epoch": "x"}, "limit": 1001})
        assert err["code"] == 106
        await cl.close()
    run(body())


def test_many_subscribers_fan_out(server):
    async def body():
        ch = "chat:" + uniq()
        n_subs = scaled(40, 12)
        subs = await asyncio.gather(*(connect(server, f"fan{i}") for i in range(n_subs)))
        await asyncio.gather(*(s.subscribe(ch) for s in subs))
        pub = await connect(server, "alice")
        await pub.publish_many(ch, 20)
        for s in subs:
            assert offsets(await s.pubs(ch, 20)) == list(range(1, 21))
        await asyncio.gather(*(c.close() for c in subs + [pub]))
    run(body())


def test_token_channels_claim_does_not_open_other_tenants(server):
    """A globex client never receives acme's pubs, whatever its claims say."""
    async def body():
        ch = "chat:" + uniq()
        g = await connect(server, token=make_token("eve", "globex", channels=["*"]))
        await g.subscribe(ch)
        a = await connect(server, "alice", "acme")
        await a.publish(ch, "acme-only")
        await asyncio.sleep(0.3)
        assert g.drain_pubs(ch) == []
        await g.close()
        await a.close()
    run(body())
