"""The server deletes empty containers and expired TTL nodes (ContainerManager), on both servers."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from kazoo.client import KazooClient

from core.opcodes import OpCode
from core.records import CreateRequest, CreateTTLRequest
from tests.harness import SERVER_KINDS, ZKServer
from wire import OPEN_ACL_UNSAFE, WireClient

CHECK_MS = "300"


@pytest.fixture(scope="module", params=["apache", "ours"])
def cleaning_server(request: pytest.FixtureRequest) -> Iterator[ZKServer]:
    server = SERVER_KINDS[request.param](extended_types=True,
                                         extra_cfg={"znode.container.checkIntervalMs": CHECK_MS})
    with server:
        yield server


@pytest.fixture
def client(cleaning_server: ZKServer) -> Iterator[KazooClient]:
    zk = KazooClient(hosts=cleaning_server.hosts, timeout=10)
    zk.start(timeout=10)
    yield zk
    zk.stop()
    zk.close()


@pytest.fixture
def wire(cleaning_server: ZKServer) -> Iterator[WireClient]:
    """A raw client, for the creates kazoo has no call for (container, TTL)."""
    w = WireClient(cleaning_server.host, cleaning_server.port)
    w.connect()
    yield w
    w.close_quietly()


def _container(w: WireClient, path: str) -> None:
    assert w.call(OpCode.createContainer, CreateRequest(path, b"", OPEN_ACL_UNSAFE, 4)).err == 0


def _ttl(w: WireClient, path: str, ttl: int) -> None:
    assert w.call(OpCode.createTTL, CreateTTLRequest(path, b"", OPEN_ACL_UNSAFE, 5, ttl)).err == 0


def _gone_within(zk: KazooClient, path: str, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if zk.exists(path) is None:
            return True
        time.sleep(0.05)
    return False


@pytest.mark.timeout(30)
def test_container_goes_once_its_last_child_goes(client: KazooClient, wire: WireClient) -> None:
    _container(wire, "/cont")
    client.create("/cont/x", b"")
    client.delete("/cont/x")
    assert _gone_within(client, "/cont", 5.0)


@pytest.mark.timeout(30)
def test_container_that_never_had_children_stays(client: KazooClient, wire: WireClient) -> None:
    _container(wire, "/never")
    time.sleep(3 * int(CHECK_MS) / 1000)
    assert client.exists("/never") is not None
    client.delete("/never")


@pytest.mark.timeout(30)
def test_ttl_node_expires_after_its_ttl(client: KazooClient, wire: WireClient) -> None:
    _ttl(wire, "/ttl", 500)
    _ttl(wire, "/ttl-busy", 500)
    client.create("/ttl-busy/child", b"")
    assert _gone_within(client, "/ttl", 5.0)
    assert client.exists("/ttl-busy") is not None  # a TTL node with children stays
    client.delete("/ttl-busy", recursive=True)
