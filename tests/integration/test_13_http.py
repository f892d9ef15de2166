# Plain HTTP endpoints on a kept-alive connection: several requests over one
# socket, spread over more than the handshake timeout, are all answered (the
# deadline is per request, not per connection), and a silent kept-alive
# connection is closed once the deadline passes.
import http.client
import time


def slow_handshake(cfg):
    cfg.setdefault("limits", {})["handshake_timeout"] = "1s"
    return cfg


def test_keep_alive_requests_past_the_handshake_timeout(server_factory):
    srv = server_factory(tweak=slow_handshake, name="keepalive")
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=10)
    try:
        for _ in range(4):
            conn.request("GET", "/healthz")
            resp = conn.getresponse()
            assert resp.status == 200 and resp.read() == b"ok\n"
            time.sleep(0.6)  # 2.4 s in all, more than the 1 s deadline
        time.sleep(2.5)  # now idle for longer than the deadline: closed
        try:
            conn.request("GET", "/healthz")
            resp = conn.getresponse()
            closed = False
        except (http.client.HTTPException, ConnectionError, OSError):
            closed = True
        assert closed, "an idle kept-alive connection must be closed after the deadline"
    finally:
        conn.close()
