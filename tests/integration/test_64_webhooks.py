# Outbound webhooks end to end: pubs committed by the real server, matched by
# configured routes, delivered to a real HTTP receiver on loopback that
# verifies every signature itself. Retries on the schedule, the status
# contract (500, 410, 429 + Retry-After), dead-lettering and recovery,
# restarts (kill -9 mid-retry), per-channel ordering under failures, the
# publish action with loop protection, and redaction of webhook bodies.
import asyncio
import json
import random
import subprocess
import time

import pytest

from helpers_api import api, api_error, full_key, wait_until
from helpers_webhooks import SECRET, Receivers, hooks_config, publish, verify, wait_requests
from parley_client import SLOW, connect, parley_bin, run, scaled



def parley_cli(srv, *args):
    res = subprocess.run([parley_bin(), *args, "--url", f"http://127.0.0.1:{srv.port}",
                          "--key", full_key("acme")], capture_output=True, text=True,
                         timeout=20 * SLOW)
    assert res.returncode == 0, res.stderr
    return res.stdout

@pytest.fixture
def receivers():
    made = Receivers()
    yield made
    made.close()


def test_delivers_signed_envelope_once_per_match(server_factory, receivers):
    r = receivers({"status": 200})
    srv = server_factory(hooks_config(r.url))
    res = publish(srv, "alerts:db", {"severity": "high", "n": 1}, correlation_id="corr-1")
    publish(srv, "alerts:db", {"n": 2}, type_="deploy.done")  # type does not match
    publish(srv, "chat:x", {"n": 3})  # channel does not match
    reqs = wait_requests(r, 1)
    time.sleep(0.5 * SLOW)
    assert len(r.requests) == 1, [q["body"] for q in r.requests]
    q = reqs[0]
    assert verify(SECRET, q["headers"], q["body"]), q["headers"]
    env = json.loads(q["body"])
    assert env["id"] == res["id"] and env["offset"] == res["offset"]
    assert env["channel"] == "alerts:db" and env["type"] == "incident.opened"
    assert env["tenant"] == "acme" and env["schema_version"] == 1
    assert env["data"] == {"severity": "high", "n": 1}
    assert env["correlation_id"] == "corr-1"
    assert q["headers"]["webhook-id"] == f"{res['id']}.ops"
    assert q["headers"]["content-type"] == "application/json"
    wait_until(lambda: srv.metric("parley_webhook_deliveries_total",
                                  {"endpoint": "ops", "outcome": "delivered"}) == 1,
               5 * SLOW, "delivered counted")


def test_500_twice_then_200_same_id_on_schedule(server_factory, receivers):
    r = receivers({"status": 500}, {"status": 500, "body": "boom"}, {"status": 200})
    srv = server_factory(hooks_config(r.url))
    res = publish(srv, "alerts:a", {"x": 1})
    reqs = wait_requests(r, 3)
    time.sleep(0.3)
    assert len(r.requests) == 3
    assert len({q["headers"]["webhook-id"] for q in reqs}) == 1
    assert all(verify(SECRET, q["headers"], q["body"]) for q in reqs)
    assert reqs[0]["body"] == reqs[2]["body"]
    for a, b in zip(reqs, reqs[1:]):  # 1 s +- 10% jitter, loosely
        assert b["t"] - a["t"] >= 0.85, (a["t"], b["t"])
    did = f"{res['id']}.ops"

    def three():
        return len(api(srv, "webhooks.attempts", {"delivery": did})["attempts"]) == 3
    wait_until(three, 5 * SLOW, "3 attempts recorded")
    log = api(srv, "webhooks.attempts", {"delivery": did})["attempts"]
    assert [a["status"] for a in log] == [500, 500, 200]
    assert log[1]["body"] == "boom" and log[2]["error"] is None
    health = api(srv, "webhooks.health", {"id": "ops"})
    assert health["state"] == "healthy" and health["deliveries"]["delivered"] == 1
    trace = api(srv, "trace", {"id": res["id"]})
    assert trace["webhooks"][0]["id"] == did and trace["webhooks"][0]["state"] == "delivered"
    assert len(trace["webhooks"][0]["attempt_log"]) == 3
    out = parley_cli(srv, "trace", res["id"])
    assert f"webhook ops (delivery {did}): delivered after 3 attempt(s)" in out, out
    assert out.count("status 500") == 2 and out.count("status 200") == 1, out


def test_410_disables_the_endpoint(server_factory, receivers):
    r = receivers({"status": 410})
    srv = server_factory(hooks_config(r.url))
    publish(srv, "alerts:a", {"x": 1})
    wait_requests(r, 1)
    wait_until(lambda: api(srv, "webhooks.health", {"id": "ops"})["state"] == "disabled",
               5 * SLOW, "disabled")
    health = api(srv, "webhooks.health", {"id": "ops"})
    assert "410" in health["reason"], health
    publish(srv, "alerts:a", {"x": 2})
    time.sleep(1.5 * SLOW)
    assert len(r.requests) == 1  # nothing more is sent to a disabled endpoint
    # Re-enabling (a configured endpoint allows only this change) sends again.
    api(srv, "webhooks.update", {"id": "ops", "enabled": True})
    assert api(srv, "webhooks.health", {"id": "ops"})["state"] == "healthy"
    r.script = [{"status": 200}]
    publish(srv, "alerts:a", {"x": 3})
    wait_requests(r, 2)
    assert json.loads(r.requests[1]["body"])["data"] == {"x": 3}


def test_429_retry_after_is_honoured(server_factory, receivers):
    r = receivers({"status": 429, "headers": {"Retry-After": "2"}}, {"status": 200})
    srv = server_factory(hooks_config(r.url, schedule=("0s", "100ms", "100ms")))
    publish(srv, "alerts:a", {"x": 1})
    reqs = wait_requests(r, 2)
    assert reqs[1]["t"] - reqs[0]["t"] >= 1.95, (reqs[0]["t"], reqs[1]["t"])


def test_receiver_down_dead_letters_then_recover_delivers(server_factory, receivers):
    r = receivers({"status": 503})
    srv = server_factory(hooks_config(r.url, schedule=("0s", "200ms", "200ms")))
    t0 = int(time.time() * 1000) - 1000
    res = publish(srv, "alerts:a", {"x": 1})
    wait_requests(r, 3)
    did = f"{res['id']}.ops"

    def dead():
        entries = api(srv, "dlq.list", {})["entries"]
        return [e for e in entries if e.get("delivery_id") == did]
    wait_until(dead, 5 * SLOW, "a webhook DLQ entry")
    entry = dead()[0]
    assert entry["kind"] == "webhook" and entry["endpoint"] == "ops"
    assert entry["attempts"] == 3 and entry["pub_id"] == res["id"]
    dry = api(srv, "webhooks.recover", {"endpoint": "ops", "since": t0, "dry_run": True})
    assert dry["count"] == 1 and dry["queued"] == 0 and dry["ids"] == [did]
    time.sleep(0.5)
    assert len(r.requests) == 3  # a dry run queues nothing
    r.script = [{"status": 200}]
    rec = api(srv, "webhooks.recover", {"endpoint": "ops", "since": t0})
    assert rec["queued"] == 1
    wait_requests(r, 4)
    wait_until(lambda: api(srv, "webhooks.health", {"id": "ops"})["deliveries"]["delivered"] == 1,
               5 * SLOW, "delivered after recover")
    # Nothing failed is left in the window.
    again = api(srv, "webhooks.recover", {"endpoint": "ops", "since": t0, "dry_run": True})
    assert again["count"] == 0


def test_dlq_replay_requeues_a_webhook_delivery(server_factory, receivers):
    r = receivers({"status": 500})
    srv = server_factory(hooks_config(r.url, schedule=("0s",)))
    res = publish(srv, "alerts:a", {"x": 1})
    wait_requests(r, 1)
    did = f"{res['id']}.ops"
    wait_until(lambda: any(e.get("delivery_id") == did
                           for e in api(srv, "dlq.list", {})["entries"]), 5 * SLOW, "dlq entry")
    entry = [e for e in api(srv, "dlq.list", {})["entries"] if e.get("delivery_id") == did][0]
    out = parley_cli(srv, "dlq", "list")
    assert f"{entry['id']} {res['id']} alerts:a webhook ops webhook_failed attempts 1" in out, out
    r.script = [{"status": 200}]
    api(srv, "dlq.replay", {"id": entry["id"]})
    reqs = wait_requests(r, 2)
    assert reqs[1]["headers"]["webhook-id"] == did


def test_kill_mid_retry_resumes_after_restart(server_factory, receivers):
    r = receivers({"status": 500}, {"status": 200})
    srv = server_factory(hooks_config(r.url, schedule=("0s", "3s", "3s")))
    res = publish(srv, "alerts:a", {"x": 1})
    wait_requests(r, 1)
    time.sleep(0.3)  # the failed attempt is recorded
    srv.kill()
    srv.start()
    reqs = wait_requests(r, 2, timeout=20 * SLOW)
    time.sleep(1)
    assert len(r.requests) == 2
    assert reqs[1]["headers"]["webhook-id"] == f"{res['id']}.ops"
    did = f"{res['id']}.ops"
    wait_until(lambda: [a["status"] for a in api(srv, "webhooks.attempts", {"delivery": did})
                        ["attempts"]] == [500, 200], 5 * SLOW, "attempt log across restart")


def test_kill_before_routing_loses_nothing(server_factory, receivers):
    r = receivers({"status": 200})
    srv = server_factory(hooks_config(r.url))
    n = scaled(200, 50)
    ids = {publish(srv, f"alerts:k{i % 5}", {"i": i})["id"] for i in range(n)}
    srv.kill()
    srv.start()
    def missing():
        return ids - {json.loads(q["body"])["id"] for q in r.requests}
    try:
        wait_until(lambda: not missing(), 30 * SLOW, "every pub delivered after the crash")
    except AssertionError:
        m = [ln for ln in srv.metrics().splitlines() if "route" in ln or "webhook_" in ln]
        raise AssertionError(f"missing {len(missing())} of {n}, {len(r.requests)} requests\n"
                             + "\n".join(m))


def test_ordering_by_channel_under_failures(server_factory, receivers):
    rnd = random.Random(7)

    def flaky(n, req):
        return {"status": 500 if rnd.random() < 0.05 else 200}
    r = receivers(fn=flaky)
    srv = server_factory(hooks_config(r.url, schedule=("0s", "50ms", "50ms", "50ms", "50ms",
                                                       "50ms", "50ms", "50ms"),
                                      extra_hook={"ordering": "channel", "max_in_flight": 32}))
    n, channels = scaled(5000, 1000), 50

    async def go():
        c = await connect(srv)
        sem = asyncio.Semaphore(64)

        async def one(i):
            async with sem:
                await c.publish(f"alerts:o{i % channels}", {"i": i}, type="incident.x")
        await asyncio.gather(*(one(i) for i in range(n)))
        await c.close()
    run(go(), timeout=120 * SLOW)
    wait_until(lambda: srv.metric("parley_webhook_deliveries_total",
                                  {"endpoint": "ops", "outcome": "delivered"}) == n,
               120 * SLOW, f"{n} deliveries", step=0.5)
    seen = {}
    inversions = 0
    for q in r.requests:
        env = json.loads(q["body"])
        ch, off = env["channel"], env["offset"]
        if off < seen.get(ch, 0):
            inversions += 1
        seen[ch] = max(seen.get(ch, 0), off)
    assert inversions == 0
    assert len(seen) == channels


def test_publish_action_and_loop_protection(server_factory, receivers):
    r = receivers({"status": 200})
    routes = [
        # copies alerts:** to pager:main, and pager:** back to alerts:copy: a loop
        {"id": "page", "tenant": "acme", "match": {"channel": "alerts:**"},
         "action": {"publish": "pager:main"}},
        {"id": "back", "tenant": "acme", "match": {"channel": "pager:**"},
         "action": {"publish": "alerts:copy"}},
        {"id": "self", "tenant": "acme", "match": {"channel": "pager:**"},
         "action": {"publish": "pager:again"}},
    ]
    srv = server_factory(hooks_config(r.url, routes=routes))
    res = publish(srv, "alerts:a", {"x": 1})
    wait_until(lambda: api(srv, "history", {"channel": "pager:main"})["pubs"], 10 * SLOW,
               "the copy")
    time.sleep(1.5 * SLOW)
    main = api(srv, "history", {"channel": "pager:main"})["pubs"]
    copy = api(srv, "history", {"channel": "alerts:copy"})["pubs"]
    again = api(srv, "history", {"channel": "pager:again"})["pubs"]
    # page fired once: never on alerts:copy, whose chain it starts. self
    # fired on pager:main, never on its own pager:again. back fired on both
    # pager pubs (it produced neither), and never again on its output.
    assert len(main) == 1 and len(again) == 1 and len(copy) == 2, (main, copy, again)
    assert main[0]["data"] == {"x": 1}
    assert main[0]["headers"]["parley-route"] == "page"
    assert again[0]["headers"]["parley-route"] == "page,self"
    assert sorted(p["headers"]["parley-route"] for p in copy) == ["page,back", "page,self,back"]
    assert main[0]["correlation_id"] == res["id"]


def test_redacted_paths_absent_from_webhook_bodies(server_factory, receivers):
    r = receivers({"status": 200})
    ns = {"name": "cards", "redact": ["data.card", {"path": "headers.x-token",
                                                    "action": "mask"}]}
    routes = [{"id": "c", "tenant": "acme", "match": {"channel": "cards:**"},
               "action": {"webhook": "ops"}}]
    srv = server_factory(hooks_config(r.url, routes=routes, ns_extra=[ns]))
    publish(srv, "cards:1", {"card": "4111", "amount": 5}, headers={"x-token": "t0p"})
    q = wait_requests(r, 1)[0]
    assert verify(SECRET, q["headers"], q["body"])
    env = json.loads(q["body"])
    assert "card" not in env["data"] and env["data"]["amount"] == 5
    assert env["headers"]["x-token"] == "***"
    assert b"4111" not in q["body"] and b"t0p" not in q["body"]
    assert "4111" not in srv.log_text()
    full = api(srv, "history", {"channel": "cards:1"})["pubs"][0]
    assert full["data"]["card"] == "4111"  # subscribers keep the whole pub


def test_loopback_refused_without_allowlist(server_factory, receivers):
    r = receivers({"status": 200})

    def tweak(cfg):
        hooks_config(r.url, schedule=("0s",))(cfg)
        del cfg["webhook_allowed_networks"]
    srv = server_factory(tweak)
    res = publish(srv, "alerts:a", {"x": 1})
    did = f"{res['id']}.ops"
    wait_until(lambda: api(srv, "webhooks.attempts", {"delivery": did})["attempts"], 10 * SLOW,
               "the refused attempt")
    att = api(srv, "webhooks.attempts", {"delivery": did})["attempts"][0]
    assert att["status"] == 0 and "loopback" in att["error"], att
    assert r.requests == []


def test_redirect_is_a_failure_not_followed(server_factory, receivers):
    target = receivers({"status": 200})
    r = receivers({"status": 302, "headers": {"Location": target.url}})
    srv = server_factory(hooks_config(r.url, schedule=("0s",)))
    res = publish(srv, "alerts:a", {"x": 1})
    did = f"{res['id']}.ops"
    wait_until(lambda: api(srv, "webhooks.attempts", {"delivery": did})["attempts"], 10 * SLOW,
               "the attempt")
    assert api(srv, "webhooks.attempts", {"delivery": did})["attempts"][0]["status"] == 302
    time.sleep(0.5)
    assert target.requests == []


def test_unknown_delivery_and_endpoint_are_404(server_factory, receivers):
    r = receivers({"status": 200})
    srv = server_factory(hooks_config(r.url))
    status, err = api_error(srv, "webhooks.attempts", {"delivery": "nope.ops"})
    assert status == 404 and err["code"] == 116
    status, err = api_error(srv, "webhooks.health", {"id": "nope"})
    assert status == 404 and err["code"] == 116 and "nope" in err["message"]
    # Another tenant does not see acme's endpoint.
    status, err = api_error(srv, "webhooks.health", {"id": "ops"}, tenant="globex")
    assert status == 404


def test_lifecycle_events_routed_in_client_order(server_factory, receivers):
    r = receivers({"status": 200})
    everything = receivers({"status": 200})
    routes = [{"id": "life", "tenant": "acme",
               "match": {"channel": ["$sys:clients", "$sys:presence"], "type": ["$sys.**"]},
               "action": {"webhook": "ops"}},
              # a catch-all never sees system channels
              {"id": "all", "tenant": "acme", "match": {}, "action": {"webhook": "all"}}]

    def tweak(cfg):
        hooks_config(r.url, routes=routes)(cfg)
        cfg["webhooks"].append({"id": "all", "tenant": "acme", "url": everything.url,
                                "secret": SECRET})
    srv = server_factory(tweak)

    async def go():
        c = await connect(srv, user="bob")
        await c.subscribe("room:lobby")
        await c.call("unsubscribe", {"channel": "room:lobby"})
        await c.close()
    run(go())
    reqs = wait_requests(r, 6)
    time.sleep(0.5)
    # Two channels are delivered in parallel: the per-client seq orders them.
    evs = sorted((json.loads(q["body"]) for q in r.requests), key=lambda e: e["data"]["seq"])
    types = [e["type"].rsplit(".", 1)[1] for e in evs]
    assert [e["data"]["seq"] for e in evs] == [1, 2, 3, 4, 5, 6]
    assert types[0] == "connect" and types[-1] == "disconnect", types
    assert sorted(types[1:5]) == ["join", "leave", "subscribe", "unsubscribe"], types
    assert types.index("join") < types.index("leave"), types
    assert types.index("subscribe") < types.index("unsubscribe"), types
    assert len({e["data"]["client"] for e in evs}) == 1
    assert all(e["data"]["user"] == "bob" for e in evs)
    assert evs[1]["data"]["channel"] == "room:lobby"
    assert evs[0]["channel"] == "$sys:clients" and evs[2]["channel"] == "$sys:presence"
    assert "code" in evs[-1]["data"]
    assert all(verify(SECRET, q["headers"], q["body"]) for q in reqs)
    assert everything.requests == []


def test_endpoint_disabled_event_is_routable(server_factory, receivers):
    gone = receivers({"status": 410})
    ops = receivers({"status": 200})
    routes = [{"id": "alerts", "tenant": "acme", "match": {"channel": "alerts:**"},
               "action": {"webhook": "ops"}},
              {"id": "watch", "tenant": "acme", "match": {"channel": "$sys:webhooks"},
               "action": {"webhook": "oncall"}}]

    def tweak(cfg):
        hooks_config(gone.url, routes=routes)(cfg)
        cfg["webhooks"].append({"id": "oncall", "tenant": "acme", "url": ops.url,
                                "secret": SECRET})
    srv = server_factory(tweak)
    publish(srv, "alerts:a", {"x": 1})
    q = wait_requests(ops, 1)[0]
    env = json.loads(q["body"])
    assert env["type"] == "$sys.webhook.disabled" and env["channel"] == "$sys:webhooks"
    assert env["data"]["endpoint"] == "ops" and "410" in env["data"]["reason"]
    wait_until(lambda: srv.metric("parley_webhook_state_changes_total",
                                  {"event": "disabled"}) == 1, 2 * SLOW, "counted")
    with open(f"{srv.data_dir}/audit.log") as f:
        assert any('"webhooks.disabled"' in line and '"ops"' in line for line in f)


def test_recover_filter_picks_matching_failed_deliveries(server_factory, receivers):
    r = receivers({"status": 500})
    srv = server_factory(hooks_config(r.url, schedule=("0s",)))
    t0 = int(time.time() * 1000) - 1000
    ids = {sev: publish(srv, "alerts:f", {"severity": sev})["id"] for sev in ("high", "low")}
    publish(srv, "alerts:g", {"severity": "high"})
    wait_until(lambda: api(srv, "webhooks.health", {"id": "ops"})["deliveries"]["dead"] == 3,
               10 * SLOW, "3 dead deliveries")
    flt = {"channel": "alerts:f", "where": {"data.severity": {"$eq": "high"}}}
    dry = api(srv, "webhooks.recover", {"endpoint": "ops", "since": t0, "filter": flt,
                                        "dry_run": True})
    assert dry["count"] == 1 and dry["ids"] == [f"{ids['high']}.ops"], dry
    r.script = [{"status": 200}]
    rec = api(srv, "webhooks.recover", {"endpoint": "ops", "since": t0, "filter": flt})
    assert rec["queued"] == 1
    q = wait_requests(r, 4)[3]
    assert json.loads(q["body"])["id"] == ids["high"]
    left = api(srv, "webhooks.recover", {"endpoint": "ops", "since": t0, "dry_run": True})
    assert left["count"] == 2  # the others stay dead
    status, err = api_error(srv, "webhooks.recover", {"endpoint": "ops", "since": t0,
                                                      "filter": {"where": {"data.x": {"$bad": 1}}}})
    assert status == 400 and "filter.where" in err["message"], err
    status, err = api_error(srv, "webhooks.recover", {"endpoint": "ops", "since": t0,
                                                      "filter": "high"})
    assert status == 400 and "filter" in err["message"], err


def test_rate_limit_spaces_requests(server_factory, receivers):
    r = receivers({"status": 200})
    srv = server_factory(hooks_config(r.url, extra_hook={"rate": 5}))
    for i in range(12):
        publish(srv, "alerts:rate", {"i": i})
    reqs = wait_requests(r, 12, timeout=20 * SLOW)
    # 5 per second from an empty bucket: 12 requests need at least ~2.2 s.
    assert reqs[-1]["t"] - reqs[0]["t"] >= 1.8, [q["t"] - reqs[0]["t"] for q in reqs]


def test_max_in_flight_bounds_concurrent_attempts(server_factory, receivers):
    r = receivers({"status": 200, "sleep": 0.4})
    srv = server_factory(hooks_config(r.url, extra_hook={"max_in_flight": 2}))
    for i in range(6):
        publish(srv, "alerts:mif", {"i": i})
    reqs = wait_requests(r, 6, timeout=20 * SLOW)
    # A third request starts only when one of the first two was answered.
    for a, b in zip(reqs, reqs[2:]):
        assert b["t"] - a["t"] >= 0.3, [q["t"] - reqs[0]["t"] for q in reqs]


def test_ordering_by_json_path(server_factory, receivers):
    def script(n, req):
        env = json.loads(req["body"])
        # The first attempt of order A's first event fails; the rest succeed.
        first_a = env["data"] == {"order": "A", "n": 1} and not any(
            json.loads(q["body"])["data"] == env["data"] for q in r.requests[:n])
        return {"status": 500 if first_a else 200}
    r = receivers(fn=script)
    srv = server_factory(hooks_config(r.url, schedule=("0s", "500ms"),
                                      extra_hook={"ordering": "data.order"}))
    publish(srv, "alerts:x", {"order": "A", "n": 1})
    publish(srv, "alerts:y", {"order": "A", "n": 2})  # another channel, the same key
    publish(srv, "alerts:z", {"order": "B", "n": 1})
    reqs = wait_requests(r, 4)
    seen = [(json.loads(q["body"])["data"]["order"], json.loads(q["body"])["data"]["n"])
            for q in reqs]
    # A2 waits for A1's retry; B does not wait for A.
    assert seen.index(("A", 2)) > len(seen) - 1 - seen[::-1].index(("A", 1)), seen
    assert seen.index(("B", 1)) < 2, seen
