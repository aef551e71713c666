"""The Celery broker in cluster mode: kombu's Redis transport, its connections bound to the node that owns
batchline's slot (`batchline/redis_cluster.py`).

kombu's Redis transport does not speak Redis Cluster. It does not need to here: `global_keyprefix`
(`{bl}:kombu:`, batchline/keys.py) puts every key it uses (queues, bindings, unacked) in batchline's slot,
so one node holds them all, and that node is found from the seeds on every new connection. A failover or
a move of the slot drops the connection (MOVED, CLUSTERDOWN: a ConnectionError), and kombu reconnects as it
does after any broker outage. Pub/sub (remote control, events) reaches every node in a Redis Cluster.

Transport options: `cluster_seeds` ([[host, port], ...]) and `cluster_slot`, from `redis_url.broker`.
"""

from __future__ import annotations

from typing import Any

from kombu.transport import redis as kombu_redis

from batchline.redis_cluster import SlotOwnerConnection, SlotOwnerSSLConnection


class Channel(kombu_redis.Channel):
    from_transport_options = (*kombu_redis.Channel.from_transport_options, "cluster_seeds", "cluster_slot")
    connection_class = SlotOwnerConnection
    connection_class_ssl = SlotOwnerSSLConnection
    cluster_seeds: list[list[Any]] = []
    cluster_slot = 0

    def _connparams(self, asynchronous: bool = False) -> dict[str, Any]:
        params: dict[str, Any] = super()._connparams(asynchronous)  # type: ignore[misc]
        params.pop("host", None)
        params.pop("port", None)
        params["cluster_seeds"] = self.cluster_seeds
        params["cluster_slot"] = self.cluster_slot
        return params


class Transport(kombu_redis.Transport):
    Channel = Channel
