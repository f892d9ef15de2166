# Scenario family 11: process lifecycle and HTTP endpoints. /healthz,
# /readyz, /metrics (the documented series), 404 for unknown paths; SIGTERM
# disconnects every WebSocket client with 4000 (reconnect true), exits 0, and
# every answered publish is in history after the restart.
import asyncio
import re

from parley_client import SLOW, connect, expect_disconnect, offsets, run, uniq


def test_health_endpoints(server):
    status, _, body = server.http("GET", "/healthz")
    assert status == 200 and body.strip() == b"ok"
    status, _, _ = server.http("GET", "/readyz")
    assert status == 200
    for path in ("/nope", "/ws/extra", "/metricsx", "/"):
        status, _, _ = server.http("GET", path)
        assert status == 404, path


def test_metrics_exposition(server):
    async def body():
        cl = await connect(server)
        sub = await connect(server, "bob")
        ch = "chat:" + uniq()
        await sub.subscribe(ch)
        await cl.publish_many(ch, 10, window=1)
        await sub.pubs(ch, 10)
        await cl.publish(ch, "e", **{"class": "ephemeral"})
        await sub.pubs(ch, 1)
        await cl.rpc("frobnicate", {})
        text = server.metrics()
        await cl.close()
        await sub.close()
        return text
    text = run(body())
    status, headers, _ = server.http("GET", "/metrics")
    assert headers.get("Content-Type", headers.get("content-type", "")).startswith("text/plain")
    for name in ("parley_connections", "parley_commands_total", "parley_pubs_total",
                 "parley_deliveries_total", "parley_delivery_latency_seconds_bucket",
                 "parley_commit_batch_size_bucket", "parley_commit_latency_seconds",
                 "parley_slow_consumer_disconnects_total"):
        assert re.search(rf"^{name}(_bucket|_sum|_count)?[{{ ]", text, re.M), \
            f"metric {name} missing"
    assert re.search(r'^parley_commands_total\{[^}]*method="publish"', text, re.M)
    assert server.metric("parley_pubs_total", {"class": "standard"}) >= 10
    assert server.metric("parley_pubs_total", {"class": "ephemeral"}) >= 1
    assert server.metric("parley_deliveries_total") >= 11
    assert server.metric("parley_connections") >= 0
    # every sample line is "name{labels} value" with a numeric value
    for line in text.splitlines():
        if line and not line.startswith("#"):
            assert re.match(r'^[a-zA-Z_:][a-zA-Z0-9_:]*(\{[^}]*\})? [-+0-9.eEInfaN]+$', line), line
    # histograms end with +Inf == _count
    inf = server.metric("parley_delivery_latency_seconds_bucket", {"le": "+Inf"})
    assert inf == server.metric("parley_delivery_latency_seconds_count")


def test_connections_gauge_moves(server):
    async def body():
        base = server.metric("parley_connections")
        cls = [await connect(server, f"g{i}") for i in range(5)]
        during = server.metric("parley_connections")
        assert during >= base + 5
        for c in cls:
            await c.close()
        for _ in range(50):
            if server.metric("parley_connections") <= base:
                break
            await asyncio.sleep(0.1)
        assert server.metric("parley_connections") <= base
    run(body())


def test_sigterm_disconnects_with_4000_and_keeps_acked(server_factory):
    srv = server_factory(name="sigterm")
    ch = "chat:" + uniq()
    state = {}

    async def before():
        clients = [await connect(srv, f"u{i}") for i in range(5)]
        for c in clients:
            await c.subscribe(ch)
        acks = await clients[0].publish_many(ch, 50, window=8)
        state["acks"] = acks
        # keep publishing while the signal lands; record whatever is answered
        pending = [asyncio.get_running_loop().create_task(clients[1].publish(ch, {"late": i}))
                   for i in range(30)]
        await asyncio.sleep(0.01)
        proc = srv.proc
        proc.send_signal(15)
        for c in clients:
            push = await expect_disconnect(c, 4000, timeout=10 * SLOW)
            assert push["reconnect"] is True
        for t in pending:
            try:
                state["acks"].append(await t)
            except Exception:
                pass
        rc = await asyncio.get_running_loop().run_in_executor(None, proc.wait, 10 * SLOW)
        state["rc"] = rc
    run(before())
    assert state["rc"] == 0, srv.log_tail()
    srv.proc = None
    srv.check_sanitizer_log()
    srv.start()

    async def after():
        cl = await connect(srv)
        pubs, last = await cl.full_history(ch)
        by_off = {p["offset"]: p["id"] for p in pubs}
        for a in state["acks"]:
            assert by_off.get(a["offset"]) == a["id"], a
        assert offsets(pubs) == list(range(1, len(pubs) + 1))
        await cl.close()
    run(after())


def test_sigterm_with_sse_and_idle_sockets(server_factory):
    """Shutdown is clean with SSE streams and half-open sockets attached."""
    import socket
    from parley_client import SSEStream, make_token
    srv = server_factory(name="sigterm-mixed")
    sse = SSEStream(srv, f"token={make_token()}&channel=chat:x")
    assert sse.status == 200
    idle = socket.create_connection(("127.0.0.1", srv.port))
    idle.sendall(b"GET /ws HTTP/1.1\r\n")
    srv.stop()  # asserts exit 0 within 10 s
    sse.close()
    idle.close()


def test_restart_keeps_history_and_epoch(server_factory):
    srv = server_factory(name="restart")
    ch = "chat:" + uniq()

    async def fill():
        cl = await connect(srv)
        acks = await cl.publish_many(ch, 20, window=4)
        await cl.close()
        return acks
    acks = run(fill())
    srv.restart()

    async def check():
        cl = await connect(srv)
        h = await cl.history(ch)
        assert offsets(h["pubs"]) == list(range(1, 21))
        assert h["epoch"] == acks[0]["epoch"]
        r = await cl.subscribe(ch, since={"offset": 15, "epoch": acks[0]["epoch"]})
        assert r["recovered"] is True and offsets(r["pubs"]) == [16, 17, 18, 19, 20]
        assert (await cl.publish(ch, "next"))["offset"] == 21
        await cl.close()
    run(check())


def test_second_server_on_a_busy_port_refuses_to_start(server_factory):
    # The workers share their port with SO_REUSEPORT; a second process must
    # not be able to join that group and take part of the traffic. It exits
    # non-zero at once saying why (its health check would be answered by the
    # first, so the process itself is watched), and the first keeps serving.
    import subprocess
    from helpers_api import api, full_key, with_api
    from parley_client import parley_bin
    first = server_factory(with_api, name="first")
    second = server_factory(with_api, name="second", start=False)
    second.cfg["listen"] = first.cfg["listen"]
    second.write_config()
    proc = subprocess.run([parley_bin(), "serve", "--config", second.cfg_path],
                          capture_output=True, text=True, timeout=20 * SLOW,
                          stdin=subprocess.DEVNULL, cwd=second.dir)
    assert proc.returncode != 0
    assert "address already in use" in (proc.stderr + proc.stdout).lower()
    assert first.cfg["listen"] in proc.stderr + proc.stdout
    for _ in range(10):
        assert api(first, "info", {}, key=full_key("acme"))["workers"] >= 1


def test_second_server_on_a_busy_data_dir_names_the_holder(server_factory):
    # One data directory, one server: a second one on another port exits
    # non-zero naming the directory and the PID that holds it.
    import subprocess
    from parley_client import free_port, parley_bin
    first = server_factory(name="owner")
    second = server_factory(name="intruder", start=False)
    second.cfg["data_dir"] = first.data_dir
    second.cfg["listen"] = f"127.0.0.1:{free_port()}"
    second.write_config()
    proc = subprocess.run([parley_bin(), "serve", "--config", second.cfg_path],
                          capture_output=True, text=True, timeout=20 * SLOW,
                          stdin=subprocess.DEVNULL, cwd=second.dir)
    out = proc.stderr + proc.stdout
    assert proc.returncode != 0, out
    assert f"data dir {first.data_dir} is in use" in out, out
    assert f"pid {first.proc.pid}" in out, out
    assert "audit log" not in out
    status, _, _ = first.http("GET", "/healthz")
    assert status == 200


def test_metrics_token_protects_metrics(server_factory):
    # /metrics names every tenant and its traffic: with metrics_token set it
    # answers only a request bearing it; health checks stay open.
    def tweak(cfg):
        cfg["metrics_token"] = "mt-s3cret-0123456789"
    srv = server_factory(tweak, name="metricstoken")
    status, _, body = srv.http("GET", "/metrics")
    assert status == 401 and b"parley_" not in body
    status, _, _ = srv.http("GET", "/metrics", headers={"Authorization": "Bearer wrong"})
    assert status == 401
    status, _, _ = srv.http("GET", "/metrics",
                            headers={"Authorization": "Bearer mt-s3cret-0123456789x"})
    assert status == 401
    status, _, body = srv.http("GET", "/metrics",
                               headers={"Authorization": "Bearer mt-s3cret-0123456789"})
    assert status == 200 and b"parley_connections" in body
    assert srv.http("GET", "/healthz")[0] == 200
    assert srv.http("GET", "/readyz")[0] == 200
