# Typing in a namespace that keeps no roster (presence and join/leave off):
# the throttle falls back to one typing push per subscription per interval,
# still never to the sender, and presence methods answer 108.
import asyncio

from parley_client import connect, run, uniq


def quiet_ns(cfg):
    cfg["namespaces"].append({"name": "quiet", "presence": False, "join_leave": False})
    return cfg


def test_typing_throttled_without_a_roster(server_factory):
    srv = server_factory(tweak=quiet_ns, name="quiet")

    async def body():
        ch = "quiet:" + uniq()
        a = await connect(srv, "ann")
        b = await connect(srv, "ben")
        await a.subscribe(ch)
        await b.subscribe(ch)
        for _ in range(10):
            await a.call("typing", {"channel": ch})
        await asyncio.sleep(1.0)
        seen_b = [m for m in b.drain(lambda m: m.get("push") == "typing")]
        seen_a = [m for m in a.drain(lambda m: m.get("push") == "typing")]
        assert len(seen_b) == 1 and seen_b[0]["user"] == "ann", seen_b
        assert seen_a == []
        err = await a.error("presence_stats", {"channel": ch})
        assert err["code"] == 108
        await a.close()
        await b.close()

    run(body())
