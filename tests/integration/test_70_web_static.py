# The web app's files (web_root): content types, ETag and 304, gzip, HEAD,
# the security headers, and hostile requests: path traversal (raw, encoded,
# NUL), unknown paths, other methods, oversized Range and If-None-Match.
# Also POST /dev/token, which exists in development mode only.
import gzip
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time

import pytest

from parley_client import SLOW, ParleyServer, connect, default_config, free_port, parley_bin, run

INDEX = b"<!doctype html><title>demo</title>" + b"<p>hello</p>" * 40
APP_JS = b"console.log('app');\n" * 100
ADMIN = b"<!doctype html><title>console</title>"


def make_root(base):
    root = os.path.join(base, "webroot")
    os.makedirs(os.path.join(root, "admin"))
    os.makedirs(os.path.join(root, ".hidden"))
    files = {"index.html": INDEX, "app.js": APP_JS, "app.css": b"body{}", "admin/index.html": ADMIN,
             "data.bin": b"\x00\x01", ".hidden/secret.txt": b"no", ".env": b"no"}
    for name, data in files.items():
        with open(os.path.join(root, name), "wb") as f:
            f.write(data)
    # a link out of the root must not be followed
    os.symlink("/etc/passwd", os.path.join(root, "passwd"))
    return root


@pytest.fixture(scope="module")
def web(module_factory, tmp_path_factory):
    root = make_root(str(tmp_path_factory.mktemp("web")))
    return module_factory(lambda cfg: cfg.update(web_root=root), name="web")


def raw(srv, request, timeout=5 * SLOW):
    """Sends bytes as they are (no client normalization); returns the status line and head."""
    with socket.create_connection(("127.0.0.1", srv.port), timeout=timeout) as s:
        s.sendall(request)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    return data.split(b"\r\n", 1)[0].decode(), data


def test_files_with_their_types_and_security_headers(web):
    cases = [("/", INDEX, "text/html; charset=utf-8"), ("/index.html", INDEX, "text/html; charset=utf-8"),
             ("/app.js", APP_JS, "text/javascript; charset=utf-8"), ("/app.css", b"body{}", "text/css; charset=utf-8"),
             ("/admin", ADMIN, "text/html; charset=utf-8"), ("/admin/", ADMIN, "text/html; charset=utf-8"),
             ("/data.bin", b"\x00\x01", "application/octet-stream")]
    for path, body, ctype in cases:
        status, headers, got = web.http("GET", path)
        assert (status, got) == (200, body), path
        assert headers["Content-Type"] == ctype, path
        assert headers["X-Content-Type-Options"] == "nosniff"
        csp = headers["Content-Security-Policy"]
        assert "default-src 'self'" in csp and "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
        assert "unsafe-inline" not in csp and "http" not in csp
        assert headers["ETag"].startswith('"') and headers["Cache-Control"] == "no-cache"


def test_etag_gives_304_and_changes_with_the_representation(web):
    _, h, _ = web.http("GET", "/app.js")
    etag = h["ETag"]
    status, h2, body = web.http("GET", "/app.js", headers={"If-None-Match": etag})
    assert status == 304 and body == b"" and h2["ETag"] == etag
    # a list, and the weak form, match too; another tag does not
    assert web.http("GET", "/app.js", headers={"If-None-Match": f'"x", W/{etag}'})[0] == 304
    assert web.http("GET", "/app.js", headers={"If-None-Match": "*"})[0] == 304
    assert web.http("GET", "/app.js", headers={"If-None-Match": '"nope"'})[0] == 200
    # the gzip copy is another representation with its own tag
    _, hz, _ = web.http("GET", "/app.js", headers={"Accept-Encoding": "gzip"})
    assert hz["ETag"] != etag
    assert web.http("GET", "/app.js", headers={"Accept-Encoding": "gzip", "If-None-Match": etag})[0] == 200


def test_gzip_only_when_accepted(web):
    status, h, body = web.http("GET", "/app.js", headers={"Accept-Encoding": "br, gzip;q=0.8"})
    assert status == 200 and h["Content-Encoding"] == "gzip" and h["Vary"] == "Accept-Encoding"
    assert gzip.decompress(body) == APP_JS and len(body) < len(APP_JS)
    for ae in ("identity", "gzip;q=0", "br"):
        status, h, body = web.http("GET", "/app.js", headers={"Accept-Encoding": ae})
        assert status == 200 and "Content-Encoding" not in h and body == APP_JS, ae
    # too small to gain: sent as is
    _, h, body = web.http("GET", "/app.css", headers={"Accept-Encoding": "gzip"})
    assert "Content-Encoding" not in h and body == b"body{}"


def test_head_has_the_length_and_no_body(web):
    status, line = raw(web, b"HEAD /app.js HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert status == "HTTP/1.1 200 OK"
    assert f"Content-Length: {len(APP_JS)}".encode() in line
    assert line.endswith(b"\r\n\r\n"), "HEAD answered with a body"


@pytest.mark.parametrize("path", [
    "/../etc/passwd", "/admin/../../etc/passwd", "/%2e%2e/etc/passwd", "/%2E%2e%2fetc%2fpasswd",
    "/admin/%2e%2e/index.html", "/./index.html", "//etc/passwd", "/a%00b", "/index.html%00.js",
    "/%", "/%zz", "/%4", "/a\\..\\b", "/%5c..%5cindex.html", "/a%0d%0aSet-Cookie:x"])
def test_malformed_paths_are_refused(web, path):
    status, head = raw(web, f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
    assert status.startswith("HTTP/1.1 400"), (path, status)
    assert b"root:" not in head


@pytest.mark.parametrize("path", ["/nope", "/admin/nope.js", "/passwd", "/.env", "/.hidden/secret.txt",
                                  "/app.js/", "/INDEX.HTML", "/healthz/x"])
def test_unknown_paths_are_404(web, path):
    status, _, body = web.http("GET", path)
    assert status == 404 and b'"code":116' in body, path
    assert b"root:" not in body


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH"])
def test_other_methods_are_405(web, method):
    status, headers, body = web.http(method, "/index.html", body=b"x")
    assert status == 405 and headers["Allow"] == "GET, HEAD"


def test_oversized_headers_are_refused_and_the_server_goes_on(web):
    big = "bytes=" + ",".join(f"{i}-{i}" for i in range(4000))  # ~40 KB
    status, _ = raw(web, f"GET /app.js HTTP/1.1\r\nHost: x\r\nRange: {big}\r\n\r\n".encode())
    assert status.startswith("HTTP/1.1 431")
    tags = '"x",' * 6000
    status, _ = raw(web, f"GET /app.js HTTP/1.1\r\nHost: x\r\nIf-None-Match: {tags}\r\n\r\n".encode())
    assert status.startswith("HTTP/1.1 431")
    # a Range the server ignores: the whole file, 200
    status, h, body = web.http("GET", "/app.js", headers={"Range": "bytes=0-10"})
    assert status == 200 and body == APP_JS
    # an If-None-Match of many tags under the limit: still compared
    many = ", ".join(f'"t{i}"' for i in range(1000))
    assert web.http("GET", "/app.js", headers={"If-None-Match": many})[0] == 200
    assert web.http("GET", "/healthz")[0] == 200


def test_the_api_and_health_still_win_over_files(web):
    assert web.http("GET", "/healthz")[2] == b"ok\n"
    status, _, body = web.http("POST", "/api/v1/info", body=b"{}")
    assert status == 401


def test_dev_token_only_in_development_mode(server_factory, tmp_path):
    root = make_root(str(tmp_path))
    srv = server_factory(lambda cfg: (cfg.pop("tenants"), cfg.update(web_root=root)), name="devtok")
    status, _, body = srv.http("POST", "/dev/token", body=b'{"user":"alice"}')
    assert status == 200, body
    res = json.loads(body)["result"]
    assert res["user"] == "alice" and 0 < res["expires_at"] - time.time() <= 600
    # the token connects as alice
    async def as_alice():
        cl = await connect(srv, token=res["token"])
        try:
            return cl.connect_result["user"]
        finally:
            await cl.close()
    assert run(as_alice()) == "alice"
    for bad in (b'{"user":"a,b"}', b'{"user":""}', b'{"user":"' + b"a" * 65 + b'"}', b'{}', b'{"user":7}',
                b'not json', b'[1]'):
        status, _, body = srv.http("POST", "/dev/token", body=bad)
        assert status == 400 and b'"code":107' in body, bad
    assert srv.http("GET", "/dev/token")[0] == 404
    # a body over limits.max_body_bytes: 413, the connection closed, the server goes on
    status, _, body = srv.http("POST", "/dev/token", body=b'{"user":"' + b"a" * (2 << 20) + b'"}')
    assert status == 413 and b'"code":106' in body, body[:200]
    assert srv.http("POST", "/dev/token", body=b'{"user":"bob"}')[0] == 200
    # with tenants there is no development mode: no such path
    prod = server_factory(lambda cfg: cfg.update(web_root=root), name="prodtok")
    status, _, body = prod.http("POST", "/dev/token", body=b'{"user":"alice"}')
    assert status == 405
    noweb = server_factory(name="noweb")
    assert noweb.http("POST", "/dev/token", body=b'{"user":"alice"}')[0] == 404


def test_no_web_root_means_no_files(server_factory):
    srv = server_factory(name="off")  # web_root: "" in the suite's config
    status, _, body = srv.http("GET", "/")
    assert status == 404 and b"no such endpoint" in body


def test_a_bad_web_root_stops_the_start(tmp_path):
    for root, why in ((str(tmp_path / "missing"), "No such file"), (str(tmp_path), "no index.html")):
        cfg = default_config()
        cfg["web_root"] = root
        srv = ParleyServer(cfg, "badroot")
        try:
            with pytest.raises(Exception) as e:
                srv.start()
            assert why in str(e.value) and "web_root" in str(e.value)
        finally:
            srv.kill()
            srv.cleanup()


def test_the_web_dir_beside_the_binary_is_served_by_default(tmp_path):
    """Without web_root, web/ next to the binary (where make puts the app)."""
    install = tmp_path / "bin"
    install.mkdir()
    shutil.copy(parley_bin(), install / "parley")
    make_root(str(install))
    os.rename(install / "webroot", install / "web")
    port = free_port()
    data = tmp_path / "data"
    proc = subprocess.Popen([str(install / "parley"), "serve", "--listen", f"127.0.0.1:{port}", "--data", str(data)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=str(tmp_path))
    try:
        deadline = time.monotonic() + 20 * SLOW
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                    s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                    got = b""
                    while chunk := s.recv(65536):
                        got += chunk
                break
            except OSError:
                assert time.monotonic() < deadline, "server never answered"
                time.sleep(0.05)
        assert got.startswith(b"HTTP/1.1 200") and got.endswith(INDEX)
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=20 * SLOW)
    assert f"open http://127.0.0.1:{port}/".encode() in err
