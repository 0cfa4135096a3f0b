"""Shared test configuration: timeouts, hypothesis profiles, and the server fixtures.

Fixtures (see tests/harness.py for the server classes):

- ``server``      a running ZKServer, parametrized ["apache", "ours"]; one process per kind for
                  the whole session (restarted only if a test killed it). ``server.kind`` says
                  which; ``server.hosts`` is "127.0.0.1:<port>".
- ``server_ext``  the same with ``extendedTypesEnabled=true`` (TTL nodes), its own processes.
- ``zk_factory``  ``zk_factory(srv, **kazoo_kwargs)`` -> a started KazooClient on `srv`,
                  stopped and closed after the test.
- ``zk``          a KazooClient on ``server`` whose node ``root`` already exists.
- ``root``        a per-test unique absolute path, "/t-<test name>"; tests put their nodes
                  below it so that tests sharing a server never see each other's nodes.
- ``wire_factory``  ``wire_factory(srv, connect=True, **connect_kwargs)`` -> a
                  tests.wire.WireClient (connected with a session unless connect=False),
                  closed after the test.
- ``wire``        a connected WireClient on ``server``.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import pytest

TESTS_DIR = Path(__file__).resolve().parent
REPO_ROOT = TESTS_DIR.parent
for p in (str(REPO_ROOT), str(TESTS_DIR)):
    if p not in sys.path:
        sys.path.insert(0, p)

from harness import SERVER_KINDS, ZKServer, in_ci  # noqa: E402

DEFAULT_TIMEOUT = 60

# -- hypothesis profiles -------------------------------------------------------------------

try:
    from hypothesis import HealthCheck, settings
except ImportError:  # hypothesis is a test dependency; tests that need it import it themselves
    settings = None
else:
    settings.register_profile("ci", deadline=None, max_examples=50, derandomize=True)
    settings.register_profile("dev", deadline=None, max_examples=50, derandomize=True,
                              suppress_health_check=[HealthCheck.too_slow])
    settings.load_profile("ci" if in_ci() else os.environ.get("HYPOTHESIS_PROFILE", "dev"))


# -- a timeout for every test ----------------------------------------------------------------

_NEEDS_ZOOKEEPER_FILES = ("test_interop_cli.py", "test_differential.py")


def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(DEFAULT_TIMEOUT))
        callspec = getattr(item, "callspec", None)
        params = callspec.params.values() if callspec else ()
        if any(p == "apache" or (isinstance(p, tuple) and "apache" in p) for p in params) \
                or (item.path.name in _NEEDS_ZOOKEEPER_FILES and params):
            item.add_marker(pytest.mark.needs_zookeeper)


# -- servers -------------------------------------------------------------------------------

class _ServerPool:
    """The session's servers, started on first use, one per (kind, extended_types)."""

    def __init__(self) -> None:
        self.servers: dict[tuple[str, bool], ZKServer] = {}
        self.failed: dict[tuple[str, bool], BaseException] = {}

    def get(self, kind: str, extended_types: bool = False) -> ZKServer:
        key = (kind, extended_types)
        if key in self.failed:  # do not pay a start timeout per test for a server that will not start
            pytest.fail(f"{kind} server failed to start earlier in this session: {self.failed[key]}",
                        pytrace=False)
        srv = self.servers.get(key)
        if srv is not None and not srv.alive():
            srv.stop()  # a previous test killed it: the next test gets a fresh one
            srv = None
        if srv is None:
            srv = SERVER_KINDS[kind](extended_types=extended_types)
            try:
                srv.start()
            except (pytest.skip.Exception, pytest.fail.Exception):
                raise
            except Exception as e:
                self.failed[key] = e
                raise
            self.servers[key] = srv
        return srv

    def stop_all(self) -> None:
        for srv in self.servers.values():
            srv.stop()
        self.servers.clear()


@pytest.fixture(scope="session")
def server_pool():
    pool = _ServerPool()
    yield pool
    pool.stop_all()


@pytest.fixture(params=["apache", "ours"])
def server(request, server_pool) -> ZKServer:
    return server_pool.get(request.param)


@pytest.fixture(params=["apache", "ours"])
def server_ext(request, server_pool) -> ZKServer:
    return server_pool.get(request.param, extended_types=True)


@pytest.fixture
def root(request) -> str:
    return "/t-" + re.sub(r"[^A-Za-z0-9_.-]+", "-", request.node.name).strip("-")


@pytest.fixture
def zk_factory():
    from kazoo.client import KazooClient

    clients = []

    def make(srv: ZKServer, **kwargs):
        kwargs.setdefault("timeout", 10.0)
        c = KazooClient(hosts=srv.hosts, **kwargs)
        clients.append(c)
        c.start(timeout=15)
        return c

    yield make
    for c in clients:
        try:
            c.stop()
            c.close()
        except Exception:
            pass


@pytest.fixture
def zk(server, zk_factory, root):
    client = zk_factory(server)
    client.ensure_path(root)
    return client


@pytest.fixture
def wire_factory():
    from wire import WireClient

    clients = []

    def make(srv: ZKServer, connect: bool = True, timeout: float = 5.0, **connect_kwargs):
        c = WireClient(srv.host, srv.port, timeout=timeout)
        clients.append(c)
        if connect:
            c.connect(**connect_kwargs)
        return c

    yield make
    for c in clients:
        c.close_quietly()


@pytest.fixture
def wire(server, wire_factory):
    return wire_factory(server)
