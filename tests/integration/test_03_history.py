# Scenario family 3: history. Newest `limit` oldest-first, `reverse`, paging
# forward and backward with `since`, the 1000 cap, retention by
# history_size, and exact round-tripping of every JSON data type.
from parley_client import connect, offsets, run, uniq


def _ch():
    return "chat:" + uniq()


async def _filled(server, n):
    cl = await connect(server)
    ch = _ch()
    acks = await cl.publish_many(ch, n, data=lambda i: {"i": i + 1})
    assert sorted(offsets(acks)) == list(range(1, n + 1))
    return cl, ch, acks[0]["epoch"]


def test_history_default_and_limit(server):
    async def body():
        cl, ch, epoch = await _filled(server, 130)
        h = await cl.history(ch)
        assert offsets(h["pubs"]) == list(range(31, 131))  # default limit 100
        assert h["offset"] == 130 and h["epoch"] == epoch
        assert [p["data"]["i"] for p in h["pubs"]] == list(range(31, 131))
        assert all(p["channel"] == ch and p["epoch"] == epoch for p in h["pubs"])
        h = await cl.history(ch, limit=10)
        assert offsets(h["pubs"]) == list(range(121, 131))
        h = await cl.history(ch, limit=1000)
        assert offsets(h["pubs"]) == list(range(1, 131))
        await cl.close()
    run(body())


def test_history_reverse(server):
    async def body():
        cl, ch, _ = await _filled(server, 30)
        h = await cl.history(ch, limit=10, reverse=True)
        assert offsets(h["pubs"]) == list(range(30, 20, -1))
        h = await cl.history(ch, reverse=True)
        assert offsets(h["pubs"]) == list(range(30, 0, -1))
        await cl.close()
    run(body())


def test_history_since_forward_and_backward(server):
    async def body():
        cl, ch, epoch = await _filled(server, 30)
        h = await cl.history(ch, since={"offset": 25, "epoch": epoch})
        assert offsets(h["pubs"]) == [26, 27, 28, 29, 30]
        h = await cl.history(ch, since={"offset": 10, "epoch": epoch}, limit=5)
        assert offsets(h["pubs"]) == [11, 12, 13, 14, 15]
        h = await cl.history(ch, since={"offset": 25, "epoch": epoch}, limit=5, reverse=True)
        assert offsets(h["pubs"]) == [24, 23, 22, 21, 20]
        h = await cl.history(ch, since={"offset": 3, "epoch": epoch}, reverse=True)
        assert offsets(h["pubs"]) == [2, 1]
        h = await cl.history(ch, since={"offset": 30, "epoch": epoch})
        assert h["pubs"] == [] and h["offset"] == 30
        # paging back through the whole channel 7 at a time
        seen, before = [], 31
        while True:
            page = await cl.history(ch, since={"offset": before, "epoch": epoch}, limit=7,
                                    reverse=True)
            if not page["pubs"]:
                break
            seen += offsets(page["pubs"])
            before = page["pubs"][-1]["offset"]
        assert seen == list(range(30, 0, -1))
        await cl.close()
    run(body())


def test_history_limit_cap(server):
    async def body():
        cl = await connect(server)
        ch = _ch()
        assert (await cl.error("history", {"channel": ch, "limit": 1001}))["code"] == 106
        for bad in ("10", -1, 1.5, [], {}):
            err = await cl.error("history", {"channel": ch, "limit": bad})
            assert err["code"] in (106, 107), (bad, err)
        err = await cl.error("history", {"channel": ch, "reverse": "yes"})
        assert err["code"] == 107
        err = await cl.error("history", {"channel": ch, "since": {"offset": "1", "epoch": "e"}})
        assert err["code"] == 107
        await cl.close()
    run(body())


def test_history_of_empty_channel(server):
    async def body():
        cl = await connect(server)
        h = await cl.history(_ch())
        assert h["pubs"] == [] and h["offset"] == 0
        assert isinstance(h["epoch"], str)
        await cl.close()
    run(body())


def test_retention_history_size(server):
    async def body():
        cl = await connect(server)
        ch = "small:" + uniq()
        await cl.publish_many(ch, 25, window=1)
        h = await cl.history(ch, limit=100)
        assert offsets(h["pubs"]) == list(range(16, 26))
        assert h["offset"] == 25
        h = await cl.history(ch, limit=3, reverse=True)
        assert offsets(h["pubs"]) == [25, 24, 23]
        await cl.close()
    run(body())


def test_data_round_trip(server):
    async def body():
        cl = await connect(server)
        ch = _ch()
        values = [None, True, False, 0, -17, 3.25, 1e300, "", "plain", "quote\" back\\slash",
                  "ctl\n\t\u0001", "\u00e9\u4e2d\U0001F600", [], {}, [1, [2, [3]]],
                  {"k": {"l": [None, {"m": "n"}]}}, "</script>"]
        for v in values:
            await cl.publish(ch, v)
        h = await cl.history(ch)
        assert [p["data"] for p in h["pubs"]] == values
        await cl.close()
    run(body())


def test_history_ephemeral_namespace_default_is_standard(server):
    """Pubs without a class in a standard namespace are stored and get ids."""
    async def body():
        cl = await connect(server)
        ch = uniq("plain")  # default namespace
        ack = await cl.publish(ch, "v")
        h = await cl.history(ch)
        assert len(h["pubs"]) == 1 and h["pubs"][0]["id"] == ack["id"]
        assert h["pubs"][0]["info"]["user"] == "alice"
        await cl.close()
    run(body())


def test_history_paging_back_and_forward_by_tens(server):
    """The worked example of docs/protocol.md: 25 pubs, limit 10."""
    async def body():
        cl, ch, epoch = await _filled(server, 25)
        first = await cl.history(ch, limit=10, reverse=True)
        assert offsets(first["pubs"]) == list(range(25, 15, -1)) and first["offset"] == 25
        assert first["more"] is False, first  # small pubs: nothing was cut
        pages, page = [offsets(first["pubs"])], first
        while page["pubs"]:
            page = await cl.history(ch, limit=10, reverse=True,
                                    since={"offset": page["pubs"][-1]["offset"], "epoch": epoch})
            pages.append(offsets(page["pubs"]))
        assert pages == [list(range(25, 15, -1)), list(range(15, 5, -1)), [5, 4, 3, 2, 1], []]
        seen = [o for p in pages for o in p]
        assert seen == list(range(25, 0, -1)), "reaches offset 1, no duplicate, no hole"

        pages, last = [], 0
        while True:
            page = await cl.history(ch, limit=10, since={"offset": last, "epoch": epoch})
            pages.append(offsets(page["pubs"]))
            if not page["pubs"]:
                break
            last = page["pubs"][-1]["offset"]
        assert pages == [list(range(1, 11)), list(range(11, 21)), list(range(21, 26)), []]
        assert last == page["offset"] == 25
        await cl.close()
    run(body())


def test_history_paging_edges(server):
    async def body():
        cl, ch, epoch = await _filled(server, 25)
        assert (await cl.history(ch, limit=0))["pubs"] == []
        # reverse from past the head starts at the head
        h = await cl.history(ch, limit=3, reverse=True, since={"offset": 1000, "epoch": epoch})
        assert offsets(h["pubs"]) == [25, 24, 23]
        # forward from past the head: nothing
        assert (await cl.history(ch, since={"offset": 1000, "epoch": epoch}))["pubs"] == []
        # history reads since.offset against the current stream, whatever the epoch
        h = await cl.history(ch, limit=3, since={"offset": 20, "epoch": "other-epoch"})
        assert offsets(h["pubs"]) == [21, 22, 23] and h["epoch"] == epoch
        await cl.close()
    run(body())


def test_history_paging_skips_what_retention_trimmed(server):
    async def body():
        cl = await connect(server)
        ch = "small:" + uniq()
        acks = await cl.publish_many(ch, 25, window=1)
        epoch = acks[0]["epoch"]
        h = await cl.history(ch, limit=4, since={"offset": 0, "epoch": epoch})
        assert offsets(h["pubs"]) == [16, 17, 18, 19], "starts at the first retained pub"
        h = await cl.history(ch, limit=10, reverse=True, since={"offset": 18, "epoch": epoch})
        assert offsets(h["pubs"]) == [17, 16], "stops at the first retained pub"
        h = await cl.history(ch, limit=10, reverse=True, since={"offset": 16, "epoch": epoch})
        assert h["pubs"] == []
        await cl.close()
    run(body())


def test_history_of_big_pubs_is_cut_to_fit_and_pages_on(server):
    # 40 pubs of 60 KB are 2.4 MB, more than the 1 MiB outbound queue: the
    # reply holds what fits with more: true (never a slow-consumer close), and
    # paging on with since returns every pub exactly once.
    async def body():
        cl = await connect(server, "bigpages")
        ch = "chat:" + uniq()
        await cl.publish_many(ch, 40, data=lambda i: {"n": i, "pad": "x" * 60000}, window=4)
        seen, since, pages = [], None, 0
        while True:
            params = {"limit": 40}
            if since is not None:
                params["since"] = since
            page = await cl.history(ch, **params)
            pages += 1
            seen += offsets(page["pubs"])
            assert page["pubs"], page["more"]
            if not page["more"]:
                break
            since = {"offset": page["pubs"][-1]["offset"], "epoch": page["epoch"]}
        assert seen == list(range(1, 41)), "every pub once, in order"
        assert pages > 1
        assert cl.close_code is None
        await cl.close()
    run(body())
