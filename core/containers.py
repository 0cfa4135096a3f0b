"""Which container and TTL nodes are due for deletion (ZooKeeper's ContainerManager rules).

A container that has had children and has none left goes; a TTL node with no children goes
once `ttl` ms have passed since its last modification. The member that makes txns (standalone
or leader) turns each candidate into a deleteContainer txn.
"""

from __future__ import annotations

from core.opcodes import TTL_MASK
from core.tree import DataTree


def candidates(tree: DataTree, now_ms: int) -> list[str]:
    """Paths of empty containers that once had children and of expired TTL nodes."""
    due: list[str] = []
    for path in tree.containers:
        node = tree.get(path)
        if node is not None and node.cversion > 0 and not node.children:
            due.append(path)
    for path in tree.ttls:
        node = tree.get(path)
        if node is not None and not node.children:
            ttl = node.ephemeral_owner & ~TTL_MASK
            if now_ms - node.mtime > ttl:
                due.append(path)
    return due
