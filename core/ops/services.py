"""The operations listeners as twistd child services: the AdminServer and the metrics endpoint."""

from __future__ import annotations

from typing import TYPE_CHECKING

from twisted.application.service import IService
from twisted.logger import Logger

from core.ops import admin, metrics

if TYPE_CHECKING:
    from core.server import ZKServer

log = Logger()

DEFAULT_PROVIDER = "org.apache.zookeeper.metrics.impl.DefaultMetricsProvider"


def ops_services(server: ZKServer) -> list[IService]:
    """The AdminServer when admin.enableServer is true; the Prometheus endpoint when
    metricsProvider.className names ZooKeeper's Prometheus provider. Another provider class
    (Java-only) is logged and ignored; ZooKeeper's default provider means none."""
    cfg = server.config
    services: list[IService] = []
    if cfg.admin_enable_server:
        services.append(admin.admin_service(server))
    if metrics.enabled(server):
        services.append(metrics.metrics_service(server))
    elif cfg.metrics_provider_class not in (None, DEFAULT_PROVIDER):
        log.warn("metricsProvider.className {name} is not available here; metrics are off "
                 "(supported: {prometheus})", name=cfg.metrics_provider_class,
                 prometheus=metrics.PROMETHEUS_PROVIDER)
    return services
