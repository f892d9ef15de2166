# Scenario family 12: configuration and the command line. check-config
# accepts the suite's config and refuses broken files with FILE:LINE:COL;
# serve refuses them too, and both refuse keys of features not built yet;
# webhooks and routes are checked (a route naming another tenant's webhook
# is refused); `parley token` mints a token the server accepts; per-config
# limits (message size, frame size) are enforced as configured.
import subprocess
import tempfile

from parley_client import (SECRETS, SLOW, ParleyServer, RawWS, connect, default_config,
                           expect_disconnect, make_token, parley_bin, raw_client, render_yaml,
                           run, uniq, ws_frame, OP_TEXT)


def _cli(*args, timeout=30 * SLOW):
    with tempfile.TemporaryDirectory(prefix="parley-itest-cli-") as cwd:
        return subprocess.run([parley_bin(), *args], capture_output=True, text=True,
                              timeout=timeout, cwd=cwd)


def _write(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text)
    return str(p)


def test_check_config_accepts_suite_config(tmp_path):
    cfg = default_config()
    cfg["listen"] = "127.0.0.1:18080"
    cfg["data_dir"] = str(tmp_path / "data")
    path = _write(tmp_path, "ok.yaml", render_yaml(cfg))
    res = _cli("check-config", path)
    assert res.returncode == 0, res.stderr


BROKEN = [  # (yaml, line the error must point at)
    ('listen: "127.0.0.1:8080"\ndata_dir: "/tmp/x"\nlisten_port: 9\n', 3),
    ('listen: "127.0.0.1:8080"\nnamespaces:\n  - name: chat\n    history_size: -5\n', 4),
    ('namespaces:\n  - {name: chat}\n  - name: x\n    class: gold\n', 4),
    ('tenants:\n  - {id: acme, jwt_secret: s1}\n  - {id: acme, jwt_secret: s2}\n', 3),
    ('limits:\n  max_message_bytes: "100"\n', 2),
    ('ping_interval: "25 parsecs"\n', 1),
    ('limits:\n  max_message_bytes: &n 1000\n  max_frame_bytes: *n\n', 3),  # alias
    ('listen: "127.0.0.1:99999"\n', 1),
    ('\n\n\nlimits:\n  handshake_timeout: "fast"\n', 5),
    ('limits:\n  max_body_bytes: 1000\n  connects_per_second: -1\n', 3),
    ('limits:\n  connects_per_second: lots\n', 2),
    ('data_dir: "/tmp/x"\nweb_root: [a, b]\n', 2),
    ('data_dir: "/tmp/x"\nweb_root: {dir: x}\n', 2),
    ('limits:\n  connects_per_second: 5000000000\n', 2),
    ('limits:\n  connect_burst: 100\n', 2),  # a burst without a rate
]


def test_check_config_reports_line_numbers(tmp_path):
    for i, (text, line) in enumerate(BROKEN):
        path = _write(tmp_path, f"bad{i}.yaml", text)
        res = _cli("check-config", path)
        assert res.returncode != 0, (text, res.stdout)
        msg = res.stderr + res.stdout
        assert f"{path}:{line}:" in msg, f"{text!r}: expected {path}:{line}:COL in {msg!r}"


# Bad connect-rate values, each refused by check-config and serve with the
# key, the position and why.
BAD_CONNECT_RATE = [
    ("connects_per_second: -5", "connects_per_second: must not be negative"),
    ("connects_per_second: 1.5", "connects_per_second: expected an integer"),
    ("connects_per_second: 1000001", "connects_per_second: must be between 0 and 1000000"),
    ("connect_burst: -1", "connect_burst: must not be negative"),
]


def test_bad_connect_rate_is_refused(tmp_path):
    for i, (line, why) in enumerate(BAD_CONNECT_RATE):
        path = _write(tmp_path, f"rate{i}.yaml", f'listen: "127.0.0.1:1"\nlimits:\n  {line}\n')
        for args in (("check-config", path), ("serve", "--config", path)):
            res = _cli(*args, timeout=15 * SLOW)
            assert res.returncode != 0, (args, line, res.stdout)
            msg = res.stderr + res.stdout
            assert f"{path}:3:" in msg and why in msg, (args, msg)


def test_check_config_missing_file(tmp_path):
    res = _cli("check-config", str(tmp_path / "absent.yaml"))
    assert res.returncode != 0
    assert "absent.yaml" in res.stderr + res.stdout


def test_serve_refuses_invalid_config(tmp_path):
    path = _write(tmp_path, "bad.yaml", 'listen: "127.0.0.1:1"\nbogus_key: 1\n')
    res = _cli("serve", "--config", path, timeout=15 * SLOW)
    assert res.returncode != 0
    assert ":2:" in res.stderr


# Keys of features Parley does not have: (yaml, key path the error names,
# line it points at). Port 1 so that a server wrongly accepting the file
# cannot start either.
UNSUPPORTED = [
    ('listen: "127.0.0.1:1"\nengine:\n  type: redis\n  shards: [a]\n', "engine.shards", 4),
    ('listen: "127.0.0.1:1"\nengine: {shards: ["h:1"]}\n', "engine.shards", 2),
]


def test_unsupported_keys_are_refused(tmp_path):
    for i, (text, key, line) in enumerate(UNSUPPORTED):
        path = _write(tmp_path, f"unsupported{i}.yaml", text)
        for args in (("check-config", path), ("serve", "--config", path)):
            res = _cli(*args, timeout=15 * SLOW)
            assert res.returncode != 0, (args, text, res.stdout)
            msg = res.stderr + res.stdout
            assert f"{path}:{line}:" in msg, f"{args}: expected {path}:{line}:COL in {msg!r}"
            assert f"{key}: " in msg and "not supported yet" in msg, (args, msg)


# Webhooks, routes and the networks webhooks may reach: two tenants, each
# with an endpoint, routes to their own tenant's endpoint and to a channel.
WEBHOOKS_OK = """listen: "127.0.0.1:1"
tenants:
  - {id: acme, jwt_secret: s1}
  - {id: globex, jwt_secret: s2}
namespaces: [{name: chat}, {name: alerts}]
webhook_allowed_networks: ["127.0.0.0/8", "::1"]
webhooks:
  - id: ops
    tenant: acme
    url: "https://ops.example.com/hooks"
    secret: [whsec_AAAA, {secret: whsk_AAAA, expires: "2027-01-01T00:00:00Z"}]
    retry_schedule: ["0s", "5s", "5m"]
    max_attempts: 3
    ordering: data.order_id
  - {id: ops, tenant: globex, url: "http://127.0.0.1:9000/in", secret: whsec_BBBB}
routes:
  - id: alerts
    tenant: acme
    match:
      channel: "alerts:**"
      type: ["incident.*"]
      where: {"data.severity": {"$in": ["high", "critical"]}}
    action: {webhook: ops}
  - {id: copy, tenant: globex, match: {channel: "chat:*"}, action: {publish: "alerts:copy"}}
"""

# The same file with a route of globex naming acme's only endpoint: line 9,
# column 23 is the webhook id in the action.
ROUTE_OTHER_TENANT = """listen: "127.0.0.1:1"
tenants:
  - {id: acme, jwt_secret: s1}
  - {id: globex, jwt_secret: s2}
webhooks:
  - {id: ops, tenant: acme, url: "https://ops.example.com/hooks", secret: whsec_AAAA}
routes:
  - id: r
    action: {webhook: ops}
    tenant: globex
"""


def test_webhooks_and_routes_are_checked(tmp_path):
    path = _write(tmp_path, "hooks.yaml", WEBHOOKS_OK)
    res = _cli("check-config", path)
    assert res.returncode == 0, res.stderr + res.stdout
    path = _write(tmp_path, "other.yaml", ROUTE_OTHER_TENANT)
    res = _cli("check-config", path)
    assert res.returncode != 0, res.stdout
    msg = res.stderr + res.stdout
    assert f"{path}:9:23: routes[0].action.webhook: no webhook 'ops' in tenant 'globex'" in msg, msg
    assert "belongs to another tenant" in msg, msg


# Bad inbound sources: (the source's flow mapping, line 4, what the error says).
BAD_INBOUND = [
    ('{id: a, scheme: sha1, secret: s, channel: "chat:a"}', "unknown scheme 'sha1'"),
    ('{id: a, scheme: standard-webhooks, secret: abc, channel: "chat:a"}', "whsec_"),
    ('{id: a, scheme: hmac-sha256, secret: s, channel: "chat:a"}', "needs 'header'"),
    ('{id: a, scheme: stripe, secret: s, channel: "nope:a"}', "in no configured namespace"),
    ('{id: a, scheme: stripe, secret: s, channel: "chat:a", type: "x.{body:y}"}',
     "unknown placeholder"),
]


def test_bad_inbound_source_is_refused(tmp_path):
    for i, (src, why) in enumerate(BAD_INBOUND):
        text = f'listen: "127.0.0.1:1"\nnamespaces: [{{name: chat}}]\ninbound:\n  - {src}\n'
        path = _write(tmp_path, f"inbound{i}.yaml", text)
        for args in (("check-config", path), ("serve", "--config", path)):
            res = _cli(*args, timeout=15 * SLOW)
            assert res.returncode != 0, (args, src, res.stdout)
            msg = res.stderr + res.stdout
            assert f"{path}:4:" in msg and why in msg, (args, msg)


def test_inbound_key_checked_at_start(tmp_path):
    """A whpk_ key of the wrong size passes the file's light check; serve refuses it."""
    text = ('listen: "127.0.0.1:1"\nnamespaces: [{name: chat}]\ninbound:\n'
            '  - {id: a, scheme: standard-webhooks, secret: whpk_YWJj, channel: "chat:a"}\n')
    path = _write(tmp_path, "whpk.yaml", text)
    assert _cli("check-config", path).returncode == 0
    res = _cli("serve", "--config", path, "--data", str(tmp_path / "d"), timeout=15 * SLOW)
    assert res.returncode != 0
    assert "inbound source a: secret 1" in res.stderr, res.stderr


def test_sqlite_engine_is_accepted(tmp_path):
    path = _write(tmp_path, "sqlite.yaml", "engine:\n  type: sqlite\n  max_db_bytes: 0\n")
    res = _cli("check-config", path)
    assert res.returncode == 0, res.stderr


def test_token_command_output_is_accepted(server):
    res = _cli("token", "--user", "alice", "--secret", SECRETS["acme"], "--tenant", "acme")
    assert res.returncode == 0, res.stderr
    tok = res.stdout.strip()
    assert tok.count(".") == 2

    async def body():
        cl = await connect(server, token=tok)
        assert cl.connect_result["user"] == "alice"
        assert cl.connect_result["tenant"] == "acme"
        await cl.close()
    run(body())


def test_token_command_with_wrong_secret_is_refused(server):
    res = _cli("token", "--user", "alice", "--secret", "not-the-secret", "--tenant", "acme")
    assert res.returncode == 0, res.stderr

    async def body():
        cl = await raw_client(server)
        err = await cl.error("connect", {"token": res.stdout.strip()})
        assert err["code"] == 101
        await expect_disconnect(cl, 4500)
        await cl.close()
    run(body())


def test_token_command_channel_token(server):
    ch = "secret:" + uniq()
    res = _cli("token", "--user", "alice", "--secret", SECRETS["acme"], "--tenant", "acme",
               "--channel", ch)
    assert res.returncode == 0, res.stderr

    async def body():
        cl = await connect(server, "alice")
        r = await cl.subscribe(ch, token=res.stdout.strip())
        assert r["offset"] == 0
        await cl.close()
    run(body())


def _small_limits(cfg):
    cfg["limits"].update({"max_message_bytes": 1000, "max_frame_bytes": 4096,
                          "max_channels_per_connection": 3})


def test_configured_limits_are_enforced(server_factory):
    srv = server_factory(_small_limits, name="limits")

    async def body():
        cl = await connect(srv)
        ch = "chat:" + uniq()
        assert (await cl.publish(ch, "x" * 900))["offset"] == 1
        assert (await cl.error("publish", {"channel": ch, "data": "x" * 1500}))["code"] == 106
        for i in range(3):
            await cl.subscribe(f"{ch}{i}")
        assert (await cl.error("subscribe", {"channel": ch + "z"}))["code"] == 106
        await cl.close()
    run(body())
    ws = RawWS(srv)
    assert "result" in ws.rpc("connect", {"token": make_token()})
    ws.send(ws_frame(OP_TEXT, '{"id":2,"method":"publish","params":{"channel":"chat:a","data":"'
                     + "y" * 5000 + '"}}'))
    code, _, how = ws.read_to_close()
    ws.close()
    assert (how, code) == ("close", 1009)


def test_single_tenant_defaults_without_tenants():
    """No tenants configured: tokens from `parley token --config` work."""
    cfg = default_config()
    del cfg["tenants"]
    srv = ParleyServer(cfg, name="single")
    srv.start()
    try:
        res = _cli("token", "--user", "solo", "--config", srv.cfg_path)
        assert res.returncode == 0, res.stderr

        async def body():
            cl = await connect(srv, token=res.stdout.strip())
            assert cl.connect_result["user"] == "solo"
            assert (await cl.publish("chat:" + uniq(), 1))["offset"] == 1
            await cl.close()
        run(body())
    finally:
        srv.stop()
        srv.cleanup()


def test_bench_names_the_option_it_refuses():
    # A bad value and an unknown option are different mistakes: the message
    # says which, and nothing runs.
    bad = _cli("bench", "fanout", "--subs", "many", "--secret", "s")
    assert bad.returncode != 0
    assert "bad value for --subs: many" in bad.stderr
    unknown = _cli("bench", "fanout", "--subscribers", "10", "--secret", "s")
    assert unknown.returncode != 0
    assert "unknown option --subscribers" in unknown.stderr
    missing = _cli("bench", "fanout", "--subs")
    assert missing.returncode != 0
    assert "--subs needs a value" in missing.stderr


def test_bench_verify_is_an_idle_option():
    # --verify only makes sense where every subscriber has its own channel
    # and nothing else publishes: elsewhere it is a usage error (exit 2)
    # that names the option, and nothing runs.
    for scen in ("fanout", "channels", "publish", "storm"):
        res = _cli("bench", scen, "--verify", "--secret", "s")
        assert res.returncode == 2, (scen, res.stderr)
        assert f"--verify is an option of the idle scenario only, not {scen}" in res.stderr
    nats = _cli("bench", "idle", "--verify", "--proto", "nats")
    assert nats.returncode == 2 and "--verify needs publish acks" in nats.stderr
    alone = _cli("bench", "idle", "--verify-read-after", "1", "--secret", "s")
    assert alone.returncode == 2 and "--verify-read-after needs --verify" in alone.stderr
    bad = _cli("bench", "idle", "--verify", "--verify-read-after", "soon", "--secret", "s")
    assert bad.returncode == 2 and "bad value for --verify-read-after: soon" in bad.stderr
    assert "--verify " in alone.stderr and "--verify-read-after T" in alone.stderr


def _bench_verify(srv, *extra):
    import json
    res = _cli("bench", "idle", "--url", f"127.0.0.1:{srv.port}", "--secret", SECRETS["acme"],
               "--tenant", "acme", "--conns", "200", "--hold", "0.2", "--drain", "5",
               "--verify", "--quiet", *extra, timeout=60 * SLOW)
    lines = res.stdout.splitlines()
    assert len(lines) == 2, (res.returncode, res.stdout, res.stderr)
    return res.returncode, lines[0], json.loads(lines[1])["verify"]


def test_bench_verify_checks_every_subscriber():
    srv = ParleyServer(name="benchverify")
    srv.start()
    try:
        rc, human, v = _bench_verify(srv)
        assert rc == 0, human
        assert v["ok"] and v["published"] == v["acked"] == v["delivered"] == 200, v
        assert v["missing"] == 0 and v["disconnects"] == {} and v["publisher_closed"] is None
        assert "200/200 subscribers served" in human
    finally:
        srv.stop()
        srv.cleanup()


def test_bench_verify_reports_the_publisher_closed():
    # A queue far smaller than the burst's 200 acks, and a publisher that
    # reads nothing for a while: a server that closes slow consumers shows
    # up as a failed run naming the close code; one that holds the
    # publisher back instead passes. Either way the figures agree.
    cfg = default_config()
    cfg["limits"]["outbound_queue_bytes"] = 2048
    srv = ParleyServer(cfg, name="benchverifyq")
    srv.start()
    try:
        rc, human, v = _bench_verify(srv, "--verify-read-after", "0.5")
        if rc == 0:
            assert v["ok"] and v["acked"] == v["delivered"] == 200, v
        else:
            assert rc == 1 and not v["ok"], human
            assert v["disconnects"] == {"4001": 1}, v
            assert v["publisher_closed"]["code"] == 4001, v
            assert v["acked"] + v["unanswered"] == 200 and v["unanswered"] > 0, v
            assert "publisher closed with 4001" in human and "FAIL" in human
    finally:
        srv.stop()
        srv.cleanup()


def test_bench_chat_refuses_impossible_options():
    # Sizes no plan can meet, a rate of nothing, and chat's own options on
    # another scenario are usage errors (exit 2) that say why; nothing runs.
    cases = [
        (["--conns", "100", "--rooms", "251"],
         "--rooms 251 is too many for 100 connections: their 500 memberships fill at most 250"),
        (["--conns", "1000", "--rooms", "24"], "--rooms 24 is too few for 1000 connections"),
        (["--rooms", "4"], "--rooms must be at least 5"),
        (["--conns", "1"], "--conns must be at least 2"),
        (["--rate", "0"], "--rate must be at least 1"),
        (["--step-factor", "1"], "bad value for --step-factor: 1"),
        (["--p99-bound", "0"], "bad value for --p99-bound: 0"),
        (["--rooms", "lots"], "bad value for --rooms: lots"),
        (["--seed", "-3"], "bad value for --seed: -3"),
    ]
    for extra, msg in cases:
        res = _cli("bench", "chat", "--secret", "s", *extra)
        assert res.returncode == 2, (extra, res.stderr)
        assert msg in res.stderr, (extra, res.stderr)
    for opt in (["--rooms", "10"], ["--find-max"], ["--seed", "2"], ["--p99-bound", "1"]):
        res = _cli("bench", "fanout", "--secret", "s", *opt)
        assert res.returncode == 2, (opt, res.stderr)
        assert f"{opt[0]} is an option of the chat scenario only, not fanout" in res.stderr
    helped = _cli("bench", "chat", "--help")  # `parley help bench` points here
    assert "<fanout|channels|publish|idle|storm|chat>" in helped.stdout
    assert helped.returncode == 0 and "--find-max" in helped.stdout and "--rooms N" in helped.stdout


def _bench_chat(srv, *extra):
    import json
    res = _cli("bench", "chat", "--url", f"127.0.0.1:{srv.port}", "--secret", SECRETS["acme"],
               "--tenant", "acme", "--conns", "200", "--rooms", "40", "--rate", "300",
               "--duration", "1", "--quiet", *extra, timeout=60 * SLOW)
    lines = res.stdout.splitlines()
    assert len(lines) == 2, (res.returncode, res.stdout, res.stderr)
    return res.returncode, lines[0], json.loads(lines[1])


def test_bench_chat_every_member_gets_every_pub():
    # 200 connections in 5 of 40 rooms each: every (connection, room) gets
    # every pub of its room, in offset order, and the figures add up.
    srv = ParleyServer(name="benchchat")
    srv.start()
    try:
        rc, human, r = _bench_chat(srv)
        assert rc == 0, human
        c = r["chat"]
        assert r["lost"] == r["duplicated"] == r["out_of_order"] == r["gaps"] == 0, r
        assert c["memberships"] == 1000 and c["memberships_lossy"] == 0, c
        assert c["rooms"] == 40 and c["size_min"] == 2 and c["size_max"] <= 200, c
        assert r["pubs_acked"] == r["pubs_sent"] > 200, r
        assert r["deliveries"] == r["expected"] > r["pubs_sent"], r
        assert len(c["steps"]) == 1 and c["steps"][0]["kept_up"], c
        assert "0 of 1000 memberships lossy" in human and "PASS" in human
        rc, human, r = _bench_chat(srv, "--class", "ephemeral")
        assert rc == 0 and r["class"] == "ephemeral" and r["lost"] == 0, human
        # --find-max: steps until a rate is missed twice (a p99 bound nothing
        # meets ends it at the first rate, tried twice), and the highest met
        # is reported.
        rc, human, r = _bench_chat(srv, "--find-max", "--p99-bound", "0.000001", "--drain", "2")
        c = r["chat"]
        assert rc == 0 and c["find_max"] and len(c["steps"]) == 2, human
        assert [t["rate"] for t in c["steps"]] == [300, 300], c
        assert not any(t["ok"] for t in c["steps"]) and c["max_rate"] == 0, c
        assert "max sustainable rate 0 pubs/s" in human
    finally:
        srv.stop()
        srv.cleanup()


def test_serve_with_a_config_without_tenants_prints_the_dev_banner(tmp_path):
    # A config file with no tenants runs single-tenant development mode, as
    # running without one does: the same banner, and its token command works.
    import re
    srv = ParleyServer({}, name="devcfg")
    try:
        srv.start()
        log = open(srv.log_path).read()
        m = re.search(r"development secret: (\S+)", log)
        assert m, log
        assert m.group(1) == open(f"{srv.data_dir}/dev_secret").read().strip()
        cmd = re.search(r"get a token with: build/parley (token .*)", log)
        assert cmd and "--config" in cmd.group(1), log
        out = subprocess.run([parley_bin(), *cmd.group(1).split()], capture_output=True,
                             text=True, timeout=30 * SLOW, cwd=srv.dir)
        assert out.returncode == 0, out.stderr
        tok = out.stdout.strip()

        async def body():
            cl = await connect(srv, token=tok)
            assert cl.connect_result["user"] == "alice"
            await cl.close()
        run(body())
    finally:
        srv.stop()


def test_token_refuses_what_the_server_would_reject(tmp_path):
    # `parley token` prints a token only when the server will take it: it
    # never makes a development secret of its own, names the tenant it
    # cannot find, and refuses a token that is expired when minted.
    empty = _cli("token", "--user", "alice")  # a fresh directory: no server ran here
    assert empty.returncode != 0 and not empty.stdout
    assert "no development secret in ./data/dev_secret" in empty.stderr
    assert "--data" in empty.stderr and "--config" in empty.stderr
    cfg = default_config()
    cfg["data_dir"] = str(tmp_path / "data")
    path = _write(tmp_path, "two.yaml", render_yaml(cfg))
    assert len(cfg["tenants"]) > 1
    several = _cli("token", "--user", "alice", "--config", path)
    assert several.returncode != 0 and "--tenant" in several.stderr
    unknown = _cli("token", "--user", "alice", "--config", path, "--tenant", "nope")
    assert unknown.returncode != 0 and "no tenant 'nope'" in unknown.stderr
    for ttl in ("0", "0s", "500ms", "-1h"):
        bad = _cli("token", "--user", "alice", "--config", path, "--tenant", "acme",
                   "--ttl", ttl)
        assert bad.returncode != 0 and "--ttl" in bad.stderr, ttl
    ok = _cli("token", "--user", "alice", "--config", path, "--tenant", "acme")
    assert ok.returncode == 0 and ok.stdout.count(".") == 2, ok.stderr
    assert not (tmp_path / "data").exists()  # nothing created on the side
