"""Prometheus metrics, as ZooKeeper's PrometheusMetricsProvider exports them.

On when ``metricsProvider.className`` names ZooKeeper's Prometheus provider; served at
``/metrics`` on ``metricsProvider.httpHost:metricsProvider.httpPort`` (0.0.0.0:7000) by
twisted.web on the reactor. Values are read from the server at scrape time by a custom
Collector on a registry of its own (nothing is updated per request). The names are
ZooKeeper's (the ``mntr`` names without ``zk_``); its gauges are gauges, its counters counters
with their names as ZooKeeper writes them (no ``_total``). The JVM's metrics are replaced by
prometheus_client's process and platform collectors (``process_*``, ``python_info``).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector
from twisted.web.resource import Resource
from twisted.web.server import Request

from core.ops import fourletter as fl
from core.ops.admin import ListenerService, QuietSite

if TYPE_CHECKING:
    from core.server import ZKServer

PROMETHEUS_PROVIDER = "org.apache.zookeeper.metrics.prometheus.PrometheusMetricsProvider"

# ZooKeeper's counters among the values we export (the rest are gauges).
COUNTERS = frozenset({"connection_rejected", "bytes_received_count", "response_bytes"})
# Not numbers: not exported (ZooKeeper exports neither).
_TEXT = frozenset({"version", "server_state"})


def enabled(server: ZKServer) -> bool:
    """True when zoo.cfg asks for ZooKeeper's Prometheus provider."""
    return server.config.metrics_provider_class == PROMETHEUS_PROVIDER


class ServerCollector(Collector):
    """Reads the server's values when Prometheus scrapes."""

    def __init__(self, server: ZKServer) -> None:
        self.server = server

    def collect(self) -> Iterator[Metric]:
        server = self.server
        values = fl.monitor_values(server)
        for name, value in values.items():
            if name in _TEXT:
                continue
            if name in COUNTERS:
                metric = Metric(name, name, "counter")
                metric.add_sample(name, {}, float(value))
                yield metric
            else:
                yield GaugeMetricFamily(name, name, value=float(value))
        if server.config.distributed:
            voters = [s for s in server.config.servers.values() if s.role != "observer"]
            yield GaugeMetricFamily("quorum_size", "quorum_size", value=float(len(voters)))


def build_registry(server: ZKServer) -> CollectorRegistry:
    """A registry of our own (never prometheus_client's global one)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ServerCollector(server))
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    return registry


class MetricsResource(Resource):
    """``GET /metrics``: the text exposition format; anything else is 404."""

    isLeaf = True

    def __init__(self, registry: CollectorRegistry) -> None:
        super().__init__()
        self.registry = registry

    def render_GET(self, request: Request) -> bytes:
        if request.path.rstrip(b"/") != b"/metrics":
            request.setResponseCode(404)
            return b"Not Found\n"
        request.setHeader(b"content-type", CONTENT_TYPE_LATEST.encode())
        return generate_latest(self.registry)


def metrics_service(server: ZKServer) -> Any:
    """The metrics endpoint as a child service."""
    cfg = server.config
    site = QuietSite(MetricsResource(build_registry(server)))
    return ListenerService(server.reactor, cfg.metrics_http_port, site, cfg.metrics_http_host,
                           "Prometheus metrics")
