# Scenario family 14: a channel large enough that one round of writes to its
# subscribers takes longer than the flush pacing threshold (200 us), so the
# worker holds rounds back and pubs share writes. Every subscriber must still
# get every pub once, in offset order, and a small channel on the same
# worker must keep flowing while the large one is paced.
import asyncio

from parley_client import connect, offsets, run, scaled, uniq


async def _subscribers(server, channel, n, prefix):
    """n connections of users prefix0.. subscribed to channel."""
    subs = await asyncio.gather(*(connect(server, f"{prefix}{i}") for i in range(n)))
    for s in subs:
        await s.subscribe(channel)
    return subs


def test_paced_fanout_is_complete_and_ordered(server):
    async def body():
        big, small = "chat:" + uniq(), "chat:" + uniq()
        nsubs = scaled(250, 100)
        n = scaled(150, 60)
        subs = await _subscribers(server, big, nsubs, "u")
        bystander = await connect(server, "carol")
        await bystander.subscribe(small)
        pub = await connect(server, "alice")

        async def small_side():
            for i in range(20):
                await pub.publish(small, {"i": i})

        acks, _ = await asyncio.gather(pub.publish_many(big, n, window=32), small_side())
        assert sorted(offsets(acks)) == list(range(1, n + 1))
        got_small = await bystander.pubs(small, 20)
        assert [p["data"]["i"] for p in got_small] == list(range(20))
        for s in subs:
            got = await s.pubs(big, n)
            assert offsets(got) == list(range(1, n + 1))
        # Nothing after the last offset: no pub was written twice.
        await asyncio.sleep(0.2)
        for s in subs:
            assert s.drain_pubs(big) == []
        for c in subs + [bystander, pub]:
            await c.close()

    run(body())


def test_subscribers_vanishing_while_rounds_are_held(server):
    """Subscribers of a paced channel drop (TCP reset, no close frame) while
    pubs keep coming: a connection whose output waits for the next round
    must leave that round when it closes, not be written after it is gone.
    The server stays up and the subscribers that stay get every pub."""
    async def body():
        big = "chat:" + uniq()
        nsubs = scaled(320, 160)
        n = scaled(500, 250)
        subs = await _subscribers(server, big, nsubs, "v")
        pub = await connect(server, "alice")
        stay, leave = subs[::2], subs[1::2]

        async def drop_in_waves():
            for wave in range(8):
                await asyncio.sleep(0.03)
                for s in leave[wave::8]:
                    s.ws.transport.abort()

        acks, _ = await asyncio.gather(pub.publish_many(big, n, window=16), drop_in_waves())
        assert sorted(offsets(acks)) == list(range(1, n + 1))
        for s in stay:
            got = await s.pubs(big, n)
            assert offsets(got) == list(range(1, n + 1))
        assert server.alive()
        assert server.http("GET", "/healthz")[0] == 200
        for c in stay + [pub]:
            await c.close()
        for s in leave:
            await s.close()

    run(body())
