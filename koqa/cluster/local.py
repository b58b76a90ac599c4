"""A local multi-node Ray cluster on one machine, every listener on 127.0.0.1 (tests, benchmarks).

``ray start`` binds to the machine's external address; ``ray.cluster_utils.Cluster`` with
``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`` keeps the head and each added node on loopback.
"""

from __future__ import annotations

import contextlib
import os
from typing import Iterator

__all__ = ["local_ray_cluster"]


@contextlib.contextmanager
def local_ray_cluster(nodes: int = 2, cpus_per_node: float = 2, gpus_on_head: int = 0) -> Iterator[str]:
    """Start a head and ``nodes - 1`` more nodes, connect (``ray.init``), yield the address; stop on exit."""
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    import ray
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": cpus_per_node, "num_gpus": gpus_on_head,
                                                            "include_dashboard": False})
    try:
        for _ in range(nodes - 1):
            cluster.add_node(num_cpus=cpus_per_node)
        ray.init(address=cluster.address, log_to_driver=False)
        yield cluster.address
    finally:
        ray.shutdown()
        cluster.shutdown()
