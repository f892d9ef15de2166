# Scenario family 9: crash safety. 20 connections publish acked standard
# pubs (15 to one shared channel, 5 to their own), the server is killed with
# SIGKILL mid-stream and restarted on the same data dir, several rounds in a
# row: every acked pub is in history exactly once at its offset, offsets are
# contiguous from 1 to head, and the epoch did not change.
import asyncio
import random

from parley_client import SLOW, connect, run, scaled

SHARED = "crash:main"
SIDE = [f"crash:side{i}" for i in range(5)]
N_SHARED_WRITERS = 15


async def _writer(server, idx, ch, acked, stop):
    """Publishes with a small window until the server dies; records acks."""
    try:
        cl = await connect(server, f"w{idx}")
    except Exception:
        return
    n = 0
    inflight = set()

    async def one(k):
        try:
            ack = await cl.publish(ch, {"w": idx, "k": k})
        except Exception:  # the server died: this one was never acked
            return
        acked.append((ch, ack["offset"], ack["id"], ack["epoch"], {"w": idx, "k": k}))

    while not stop.is_set() and not cl.closed.is_set():
        while len(inflight) < 4 and not cl.closed.is_set():
            t = asyncio.get_running_loop().create_task(one(n))
            inflight.add(t)
            t.add_done_callback(inflight.discard)
            n += 1
        await asyncio.sleep(0.001)
    if inflight:
        await asyncio.wait(inflight, timeout=10 * SLOW)
    await cl.close()


async def _round(srv, acked, duration):
    stop = asyncio.Event()
    chans = [SHARED] * N_SHARED_WRITERS + SIDE
    tasks = [asyncio.get_running_loop().create_task(_writer(srv, i, ch, acked, stop))
             for i, ch in enumerate(chans)]
    await asyncio.sleep(duration)
    srv.kill()  # mid-stream: writers still have publishes in flight
    stop.set()
    await asyncio.gather(*tasks)


async def _verify(srv, acked, epochs):
    cl = await connect(srv, "auditor")
    for ch in [SHARED] + SIDE:
        pubs, last = await cl.full_history(ch)
        offs = [p["offset"] for p in pubs]
        assert offs == list(range(1, len(offs) + 1)), \
            f"{ch}: offsets not contiguous from 1: first break near " \
            f"{next((i + 1, o) for i, o in enumerate(offs) if o != i + 1)}"
        assert last["offset"] == len(offs), (ch, last["offset"], len(offs))
        ids = [p["id"] for p in pubs]
        assert len(ids) == len(set(ids)), f"{ch}: duplicate ids in history"
        if pubs:
            epochs.setdefault(ch, pubs[0]["epoch"])
            assert all(p["epoch"] == epochs[ch] for p in pubs), f"{ch}: epoch changed"
        by_offset = {p["offset"]: p for p in pubs}
        mine = [a for a in acked if a[0] == ch]
        missing = [a for a in mine if a[1] not in by_offset or by_offset[a[1]]["id"] != a[2]]
        assert not missing, f"{ch}: {len(missing)} acked pubs lost or moved, e.g. {missing[:3]}"
        for _, off, _, epoch, data in mine:
            assert by_offset[off]["data"] == data
            assert epoch == epochs[ch]
    # the stream continues right after the recovered head
    nxt = await cl.publish(SHARED, "after-crash")
    head = (await cl.history(SHARED, limit=1))["offset"]
    assert nxt["offset"] == head
    await cl.close()
    return nxt


def test_kill9_loses_no_acked_pub(server_factory):
    srv = server_factory(name="crash")
    rounds = scaled(4, 2)
    acked, epochs = [], {}
    for r in range(rounds):
        duration = random.uniform(1.0, 2.0) * SLOW
        run(_round(srv, acked, duration), timeout=120 * SLOW)
        assert acked, "nothing was acked before the kill"
        srv.start()
        after = run(_verify(srv, acked, epochs), timeout=120 * SLOW)
        acked.append((SHARED, after["offset"], after["id"], after["epoch"], "after-crash"))
    shared = sum(1 for a in acked if a[0] == SHARED)
    assert shared > rounds * 10, f"too few acked pubs ({shared}) for a meaningful test"
