"""An application's tests against a real zkserver, with the fixtures zkserver installs for pytest.

Nothing to configure: with zkserver installed in the environment, pytest finds its plugin
(entry point ``zkserver`` in ``pytest11``) and offers the ``zkserver`` and ``zkserver_factory``
fixtures. Each server is a real process on a free loopback port, stopped after the test.
"""

from kazoo.client import KazooClient
from kazoo.recipe.lock import Lock


def test_workers_register_ephemeral_nodes(zkserver):
    client = KazooClient(hosts=zkserver.hosts, timeout=10)
    client.start(timeout=15)
    try:
        client.ensure_path("/app/workers")
        client.create("/app/workers/w-", b"busy", ephemeral=True, sequence=True)
        assert client.get_children("/app/workers") == ["w-0000000000"]
    finally:
        client.stop()
        client.close()
    assert zkserver.four_letter_word("ruok") == "imok"


def test_a_lock_survives_a_restart_on_sqlite(zkserver_factory):
    server = zkserver_factory(storage="sqlite", config={"maxClientCnxns": "10"})
    client = KazooClient(hosts=server.hosts, timeout=10)
    client.start(timeout=15)
    try:
        with Lock(client, "/app/lock", identifier="me"):
            assert client.exists("/app/lock")
        client.set("/app/lock", b"released")
    finally:
        client.stop()
        client.close()
    assert (server.data_dir / "sqlite").is_dir()
    assert "Mode: standalone" in server.four_letter_word("srvr")
