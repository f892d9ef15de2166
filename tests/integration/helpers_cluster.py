# A real redis-server on a free loopback port (AOF with fsync on every write
# unless asked otherwise) and Parley nodes that share it, for the cluster
# tests. Redis is stopped by PID; its files live in a temp dir.
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time

from parley_client import ParleyServer, default_config, free_port, uniq

REDIS_BIN = shutil.which("redis-server") or "/usr/bin/redis-server"


class Redis:
    def __init__(self, appendfsync="always", replicaof=None):
        self.dir = tempfile.mkdtemp(prefix="parley-itest-redis-")
        self.port = free_port()
        self.appendfsync = appendfsync
        self.replicaof = replicaof
        self.proc = None

    def start(self, timeout=10):
        args = [REDIS_BIN, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", self.dir,
                "--save", "", "--daemonize", "no", "--logfile", os.path.join(self.dir, "log")]
        if self.appendfsync:
            args += ["--appendonly", "yes", "--appendfsync", self.appendfsync]
        else:
            args += ["--appendonly", "no"]
        if self.replicaof:
            args += ["--replicaof", "127.0.0.1", str(self.replicaof.port)]
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL)
        return self.wait_pong(timeout)

    def wait_pong(self, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if self.command("PING") == b"+PONG\r\n":
                    return self
            except OSError:
                pass
            time.sleep(0.05)
        raise AssertionError(f"redis on port {self.port} did not answer PING")

    def command(self, *args):
        """One command over a fresh socket; the raw RESP reply."""
        req = f"*{len(args)}\r\n".encode()
        for a in args:
            a = str(a).encode()
            req += b"$%d\r\n%s\r\n" % (len(a), a)
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as s:
            s.sendall(req)
            return s.recv(65536)

    def kill(self):
        if self.proc:
            self.proc.kill()
            self.proc.wait()
            self.proc = None

    def pause(self):
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self):
        self.proc.send_signal(signal.SIGCONT)

    def stop(self):
        if self.proc:
            self.proc.terminate()
            self.proc.wait(10)
            self.proc = None

    def cleanup(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


class Sentinel(Redis):
    """A redis-server in sentinel mode watching master `name` at primary."""

    def __init__(self, primary, name="m", quorum=2):
        super().__init__(appendfsync=None)
        self.conf = os.path.join(self.dir, "sentinel.conf")
        with open(self.conf, "w") as f:
            f.write(f"port {self.port}\nbind 127.0.0.1\ndir {self.dir}\n"
                    f"sentinel monitor {name} 127.0.0.1 {primary.port} {quorum}\n"
                    f"sentinel down-after-milliseconds {name} 1000\n"
                    f"sentinel failover-timeout {name} 4000\n")

    def start(self, timeout=10):
        self.proc = subprocess.Popen([REDIS_BIN, self.conf, "--sentinel", "--logfile",
                                      os.path.join(self.dir, "log")], stdin=subprocess.DEVNULL)
        return self.wait_pong(timeout)

    def master_port(self, name="m"):
        reply = self.command("SENTINEL", "get-master-addr-by-name", name).split(b"\r\n")
        return int(reply[4]) if len(reply) > 4 else None


def cluster_config(redis, prefix, **engine):
    cfg = default_config()
    cfg["engine"] = {"type": "redis", "address": f"127.0.0.1:{redis.port}", "prefix": prefix,
                     **engine}
    cfg["namespaces"].append({"name": "room", "presence": True, "join_leave": True})
    return cfg


def start_nodes(factory, redis, n=3, prefix=None, **engine):
    prefix = prefix or uniq("t")
    nodes = []
    for i in range(n):
        srv = factory(lambda c: c.update(cluster_config(redis, prefix, **engine)),
                      name=f"node{i}", start=False)
        nodes.append(srv)
    for srv in nodes:
        srv.start()
    for srv in nodes:
        wait_ready(srv)
    return nodes


def ready(srv):
    try:
        status, _, _ = srv.http("GET", "/readyz", timeout=2)
        return status == 200
    except OSError:
        return False


def wait_ready(srv, timeout=15, want=True):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ready(srv) == want:
            return
        time.sleep(0.05)
    raise AssertionError(f"/readyz of {srv.port} not {'200' if want else '503'} "
                         f"within {timeout}s\n{srv.log_tail(30)}")


__all__ = ["Redis", "Sentinel", "ParleyServer", "cluster_config", "start_nodes", "wait_ready", "ready"]
