# A namespace's `redact` list applies where a pub leaves the trust boundary:
# the trace API shows the pub with masked values "***"
# and removed members gone, while a subscriber and history readers of the
# channel get the pub whole. A namespace without the key traces unchanged.
import json

import pytest

from helpers_api import api_raw, full_key, with_api
from helpers_guaranteed import acall, trace, trace_cli
from parley_client import connect, run, uniq

PAY = {"name": "pay", "redact": [
    {"path": "data.card.number", "action": "mask"},
    {"path": "headers.authorization", "action": "remove"},
    "data.ssn",
    "data.items.*.token",
]}

DATA = {"card": {"number": "4111111111111111", "exp": "12/29"}, "ssn": "078-05-1120",
        "items": [{"token": "tok_a1", "q": 1}, {"q": 2}, {"token": "tok_b2"}], "note": "ok"}
HEADERS = {"Authorization": "Bearer s3cr3t-hdr", "x-trace": "abc"}
SECRETS = ["4111111111111111", "078-05-1120", "tok_a1", "tok_b2", "s3cr3t-hdr"]


@pytest.fixture(scope="module")
def rsrv(module_factory):
    return module_factory(tweak=lambda cfg: with_api(cfg, extra_ns=[dict(PAY)]), name="redact")


def test_trace_redacts_subscriber_gets_all(rsrv):
    async def body():
        ch = "pay:" + uniq()
        sub, pub = await connect(rsrv, "bob"), await connect(rsrv, "alice")
        await sub.subscribe(ch)
        ack = await pub.publish(ch, DATA, headers=HEADERS, correlation_id="c-9")
        (p,) = await sub.pubs(ch, 1)
        assert p["data"] == DATA and p["headers"] == HEADERS, p
        hist = await sub.history(ch)
        assert hist["pubs"][0]["data"] == DATA and hist["pubs"][0]["headers"] == HEADERS

        status, raw = await acall(api_raw, rsrv, "trace", {"id": ack["id"]}, full_key("acme"))
        assert status == 200, raw
        text = json.dumps(raw)
        for s in SECRETS:
            assert s not in text, (s, text)
        t = raw["result"]["pub"]
        assert t["data"] == {"card": {"number": "***", "exp": "12/29"},
                             "items": [{"q": 1}, {"q": 2}, {}], "note": "ok"}, t
        assert t["headers"] == {"x-trace": "abc"}, t
        assert (t["id"], t["channel"], t["correlation_id"]) == (ack["id"], ch, "c-9")
        assert raw["result"]["stored"] is True

        # `parley trace` reads the same answer (it prints no data today)
        rc, out, err = await acall(trace_cli, rsrv, ack["id"], full_key("acme"))
        assert rc == 0 and ack["id"] in out, err
        assert not any(s in out for s in SECRETS), out
        await sub.close()
        await pub.close()
    run(body())


def test_trace_without_redact_list_is_whole(rsrv):
    async def body():
        ch = "chat:" + uniq()
        pub = await connect(rsrv, "alice")
        ack = await pub.publish(ch, DATA, headers=HEADERS)
        t = (await acall(trace, rsrv, ack["id"]))["pub"]
        assert t["data"] == DATA and t["headers"] == HEADERS, t
        await pub.close()
    run(body())
