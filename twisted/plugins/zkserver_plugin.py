"""The twistd dropin: ``twistd zkserver`` runs ``core.tap``."""

from twisted.application.service import ServiceMaker

zkserver = ServiceMaker(
    "zkserver", "core.tap", "ZooKeeper-compatible coordination server", "zkserver"
)
