"""What `batchline status` shows of Redis replication: the role, replicas in sync, and their lag."""

from __future__ import annotations

from typing import Any

import redis


def replication(client: redis.Redis) -> dict[str, Any]:
    """From INFO replication: role, replicas connected and in sync ('online'), the largest lag in seconds
    since a replica last acknowledged and in bytes behind the primary's offset. {} when INFO is refused."""
    try:
        info: dict[str, Any] = client.info("replication")
    except redis.ResponseError:  # a managed Redis may rename or refuse INFO
        return {}
    replicas = [v for k, v in info.items() if k.startswith("slave") and isinstance(v, dict)]
    online = [r for r in replicas if r.get("state") == "online"]
    primary_offset = int(info.get("master_repl_offset", 0))
    return {
        "role": info.get("role", "?"),
        "replicas": len(replicas),
        "in_sync": len(online),
        "lag_s": max((int(r.get("lag", 0)) for r in online), default=0),
        "lag_bytes": max((primary_offset - int(r.get("offset", 0)) for r in online), default=0),
    }


def describe(rep: dict[str, Any], min_replicas: int) -> str:
    if not rep:
        return "replication unknown (INFO refused)"
    line = f"{rep['role']}, {rep['in_sync']} of {rep['replicas']} replicas in sync"
    if rep["in_sync"]:
        line += f", lag {rep['lag_s']} s ({rep['lag_bytes']:,} bytes)"
    if min_replicas:
        line += f"; writes wait for {min_replicas} (BATCHLINE_REDIS_MIN_REPLICAS)"
        if rep["in_sync"] < min_replicas:
            line += ": TOO FEW IN SYNC, intake and outcomes are not acknowledged (NotReplicated)"
    return line
