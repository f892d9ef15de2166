# Fixtures of the integration suite: servers started from $PARLEY_BIN on a
# free 127.0.0.1 port with a temp data dir, stopped with SIGTERM (exit 0
# asserted, sanitizer log checked), and their logs printed when a test fails.
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from parley_client import ParleyServer, default_config, parley_bin  # noqa: E402


def pytest_sessionstart(session):
    path = parley_bin()
    if not os.access(path, os.X_OK):
        raise pytest.UsageError(f"PARLEY_BIN={path} is not an executable server binary")


class ServerFactory:
    """Starts servers with a tweaked default config; stops them all at the end."""

    def __init__(self):
        self.servers = []

    def __call__(self, tweak=None, name="srv", start=True):
        cfg = default_config()
        if tweak:
            tweak(cfg)
        srv = ParleyServer(cfg, name)
        self.servers.append(srv)
        return srv.start() if start else srv

    def finish(self):
        errors = []
        for srv in self.servers:
            try:
                srv.stop()
            except AssertionError as e:
                errors.append(str(e))
            else:
                srv.cleanup()
        if errors:
            raise AssertionError("\n\n".join(errors))


@pytest.fixture
def server_factory():
    f = ServerFactory()
    yield f
    f.finish()


@pytest.fixture(scope="module")
def module_factory():
    f = ServerFactory()
    yield f
    f.finish()


@pytest.fixture(scope="module")
def server(module_factory):
    """One server with the standard config, shared by a test module."""
    return module_factory(name="shared")


def _servers_of(item):
    out = []
    for val in item.funcargs.values():
        if isinstance(val, ParleyServer):
            out.append(val)
        elif isinstance(val, ServerFactory):
            out.extend(val.servers)
        elif hasattr(val, "server") and isinstance(val.server, ParleyServer):
            out.append(val.server)
    seen, uniq = set(), []
    for s in out:
        if id(s) not in seen:
            seen.add(id(s))
            uniq.append(s)
    return uniq


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.failed:
        for srv in _servers_of(item):
            rep.sections.append((f"server log {srv.port}", srv.log_tail(60)))
