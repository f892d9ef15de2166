# Scenario family 14: a channel large enough that one round of writes to its
# subscribers takes longer than the flush pacing threshold (200 us), so the
# worker holds rounds back and pubs share writes. Every subscriber must still
# get every pub once, in offset order, and a small channel on the same
# worker must keep flowing while the large one is paced.
import asyncio

from parley_client import connect, offsets, run, scaled, uniq


def test_paced_fanout_is_complete_and_ordered(server):
    async def body():
        big, small = "chat:" + uniq(), "chat:" + uniq()
        nsubs = scaled(250, 100)
        n = scaled(150, 60)
        subs = await asyncio.gather(*(connect(server, f"u{i}") for i in range(nsubs)))
        for s in subs:
            await s.subscribe(big)
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
