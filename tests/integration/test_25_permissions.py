# Issue A: channel permissions. A private namespace needs a channel token
# (right channel, user, tenant and signature, not expired) or a `channels`
# claim pattern to subscribe, and a `publish` claim pattern to publish;
# user-limited channels (dm:#alice,bob) admit only the listed users for
# every channel method; refusals are 103 and leave the connection usable.
import time

import pytest

from helpers_api import api, with_api
from parley_client import (SECRETS, channel_token, connect, jwt_encode, make_token, run, uniq)


@pytest.fixture(scope="module")
def psrv(module_factory):
    return module_factory(tweak=with_api, name="perm")


def test_private_channel_needs_a_valid_channel_token(psrv):
    async def body():
        ch, other = "secret:" + uniq(), "secret:" + uniq()
        cl = await connect(psrv, "alice")
        assert (await cl.error("subscribe", {"channel": ch}))["code"] == 103
        exp = int(time.time()) + 600
        bad_tokens = {
            "other channel": channel_token(other, "alice"),
            "other user": channel_token(ch, "bob"),
            "other tenant's secret": channel_token(ch, "alice", "globex"),
            "other tenant claim": jwt_encode({"sub": "alice", "tenant": "globex", "channel": ch,
                                              "exp": exp}, SECRETS["acme"]),
            "expired": channel_token(ch, "alice", ttl=-120),
            "bad signature": channel_token(ch, "alice")[:-3] + "AAA",
            "alg none": jwt_encode({"sub": "alice", "tenant": "acme", "channel": ch, "exp": exp},
                                   "", alg="none"),
            "connection token": make_token("alice"),
            "garbage": "not.a.token",
            "channel pattern": channel_token("secret:*", "alice"),
        }
        for why, tok in bad_tokens.items():
            err = await cl.error("subscribe", {"channel": ch, "token": tok})
            assert err["code"] == 103, (why, err)
        res = await cl.subscribe(ch, token=channel_token(ch, "alice"))
        assert res["offset"] == 0
        # publishing still needs a publish claim
        assert (await cl.error("publish", {"channel": ch, "data": 1}))["code"] == 103
        api(psrv, "publish", {"channel": ch, "data": "from-server"})
        (p,) = await cl.pubs(ch, 1)
        assert p["data"] == "from-server"
        # history and presence of a private channel need the same permission
        peer = await connect(psrv, "bob")
        assert (await peer.error("history", {"channel": ch}))["code"] == 103
        assert (await peer.error("presence", {"channel": ch}))["code"] == 103
        assert (await peer.error("presence_stats", {"channel": ch}))["code"] == 103
        assert (await peer.error("typing", {"channel": ch}))["code"] == 103
        assert (await peer.error("read", {"channel": ch, "offset": 1}))["code"] == 103
        assert (await cl.history("chat:" + uniq()))["offset"] == 0  # still usable
        await cl.close()
        await peer.close()
    run(body())


def test_claims_grant_private_subscribe_and_publish(psrv):
    async def body():
        room = uniq("r")
        ch = f"secret:{room}"
        tok = make_token("carol", channels=["secret:" + room[:4] + "*"], publish=[ch])
        cl = await connect(psrv, token=tok)
        await cl.subscribe(ch)
        ack = await cl.publish(ch, "mine")
        assert ack["offset"] == 1
        (p,) = await cl.pubs(ch, 1)
        assert p["data"] == "mine"
        other = "secret:" + uniq("zz")
        assert (await cl.error("subscribe", {"channel": other}))["code"] == 103
        assert (await cl.error("publish", {"channel": other, "data": 1}))["code"] == 103
        # a subscribe pattern alone does not allow publishing
        sub_only = await connect(psrv, token=make_token("dan", channels=["secret:*"]))
        await sub_only.subscribe(ch)
        assert (await sub_only.error("publish", {"channel": ch, "data": 1}))["code"] == 103
        # the claims are per tenant: globex's token with the same claims sees
        # only globex's stream of the channel
        g = await connect(psrv, token=make_token("carol", "globex", channels=["secret:*"]))
        gres = await g.subscribe(ch)
        assert gres["offset"] == 0
        for c in (cl, sub_only, g):
            await c.close()
    run(body())


def test_news_namespace_is_server_publish_only(psrv):
    async def body():
        ch = "news:" + uniq()
        cl = await connect(psrv, "alice")
        await cl.subscribe(ch)
        assert (await cl.error("publish", {"channel": ch, "data": 1}))["code"] == 103
        api(psrv, "publish", {"channel": ch, "data": "headline"})
        (p,) = await cl.pubs(ch, 1)
        assert p["data"] == "headline"
        await cl.close()
    run(body())


def test_user_limited_channels(psrv):
    async def body():
        tag = uniq("p")
        ch = f"dm:{tag}#alice,bob"
        alice = await connect(psrv, "alice")
        bob = await connect(psrv, "bob")
        carol = await connect(psrv, "carol")
        # a user whose name is a prefix or suffix of a listed one is not listed
        ali = await connect(psrv, "ali")
        bobby = await connect(psrv, "bobby")
        await alice.subscribe(ch)
        await bob.subscribe(ch)
        await alice.publish(ch, "hi bob")
        assert [p["data"] for p in await bob.pubs(ch, 1)] == ["hi bob"]
        for outsider in (carol, ali, bobby):
            for method, params in (("subscribe", {"channel": ch}),
                                   ("publish", {"channel": ch, "data": "x"}),
                                   ("history", {"channel": ch}),
                                   ("presence", {"channel": ch}),
                                   ("presence_stats", {"channel": ch}),
                                   ("typing", {"channel": ch}),
                                   ("read", {"channel": ch, "offset": 1})):
                err = await outsider.error(method, params)
                assert err["code"] == 103, (method, err)
        # the same list in globex is another channel; alice of acme cannot
        # reach it and globex's alice sees only globex's history
        galice = await connect(psrv, "alice", "globex")
        assert (await galice.history(ch))["offset"] == 0
        h = await alice.history(ch)
        assert [p["data"] for p in h["pubs"]] == ["hi bob"]
        await bob.publish(ch, "hi alice")
        assert [p["data"] for p in await alice.pubs(ch, 2)][-1] == "hi alice"
        for c in (alice, bob, carol, ali, bobby, galice):
            await c.close()
    run(body())


def test_malformed_user_lists_are_refused(psrv):
    async def body():
        cl = await connect(psrv, "alice")
        for ch in ("dm:x#", "dm:x#alice,", "dm:x#,alice", "dm:x#alice,,bob", "dm:x#ali ce"):
            err = await cl.error("subscribe", {"channel": ch})
            assert err["code"] == 107, (ch, err)
        await cl.close()
    run(body())
