"""The twistd service tree: the server, then its client port."""

from __future__ import annotations

import os
import sys

from typing import Any

from twisted.application.service import MultiService, Service
from twisted.internet.defer import Deferred
from twisted.logger import Logger

from core.config import Config
from core.connection import ClientFactory
from core.server import ZKServer
from core.ops.services import ops_services

log = Logger()


class ZKService(Service):
    """Starts the server (recovery included), then listens for clients; stops in reverse."""

    def __init__(self, server: ZKServer) -> None:
        self.server = server
        self.config = server.config
        self.port: Any = None

    def startService(self) -> None:
        super().startService()
        reactor = self.server.reactor
        installed = [name for name, _ in self.server.pm.list_name_plugin() if name]
        for key in self.config.unknown_keys(installed):
            log.warn("{source}: unknown key {key} ignored", source=self.config.source, key=key)
        d = self.server.start()
        d.addCallback(lambda _: self._listen(reactor))
        d.addErrback(self._failed, reactor)

    def _listen(self, reactor: Any) -> None:
        cfg = self.config
        self.port = reactor.listenTCP(cfg.client_port, ClientFactory(self.server), interface=cfg.client_port_address)
        log.info("serving clients on {addr}:{port} (storage={storage}, consensus={consensus})",
                 addr=cfg.client_port_address, port=cfg.client_port, storage=cfg.storage, consensus=cfg.consensus)
        self.server.heap.start(reactor.seconds())  # what start-up built (modules, plugins, the tree) lives on

    def _failed(self, failure: Any, reactor: Any) -> None:
        """Start-up failed after the reactor began (recovery, the client port): one line, stop,
        and leave with status 1 once everything has shut down."""
        log.critical("start-up failed: {err}", err=failure.getErrorMessage())
        reactor.addSystemEventTrigger("after", "shutdown", _exit_failed)
        reactor.stop()

    def stopService(self) -> Deferred[None] | None:
        super().stopService()
        if self.port is not None:
            self.port.stopListening()
        return self.server.stop()


def _exit_failed() -> None:
    """Leave with status 1 (twistd itself has no way to set one); flush the log first."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(1)


def build_service(config: Config, reactor: Any = None) -> MultiService:
    """The whole server as a twistd service. Backends are picked and the store is opened here,
    before the reactor runs, so a misnamed backend (ConfigError) or a store that cannot open
    (StoreError) stops start-up with one line."""
    top = MultiService()
    server = ZKServer(config, reactor)
    server.open_store()
    ZKService(server).setServiceParent(top)
    for child in ops_services(server):  # AdminServer, Prometheus metrics
        child.setServiceParent(top)
    return top
