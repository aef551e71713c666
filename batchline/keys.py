"""Every Redis key batchline uses is built here, and nowhere else."""

from __future__ import annotations

import hashlib

from batchline.errors import ConfigError


def request_id(tenant: str, custom_id: str) -> str:
    """The system's own id for (tenant, custom_id): unique across tenants, valid as an API custom_id.

    Deterministic, so idempotency needs no extra index: the same pair always maps to the same
    record key. 96 bits of BLAKE2b make a collision between two live requests negligible.
    """
    return hashlib.blake2b(f"{tenant}\x00{custom_id}".encode(), digest_size=12).hexdigest()


#: The batch id of the requests canceled while still queued: never created at the provider; a worker
#: delivers their one `canceled` outcome (workers/cancels.py).
CANCEL_BATCH = "canceled"
#: The batch id of requests sent through the real-time Messages API instead of a batch (deadlines,
#: workers/realtime.py): never created at the provider; their answers settle through deliver.lua as any.
REALTIME_BATCH = "realtime"


def hash_tag(key: str) -> str | None:
    """The part of `key` Redis Cluster hashes when it has one: between the first `{` and the first `}`
    after it, when not empty (the cluster spec's rule); None when the whole key is hashed."""
    start = key.find("{")
    end = key.find("}", start + 1) if start >= 0 else -1
    return key[start + 1 : end] if start >= 0 and end > start + 1 else None


def cluster_prefix(prefix: str) -> str:
    """`BATCHLINE_KEY_PREFIX` as a Redis Cluster deployment uses it: a hash tag, so that every key lands in
    one slot. `bl` becomes `{bl}`; a prefix that already carries a tag (`{bl}`, `app:{bl}`) is kept as
    it is; braces that do not make one tag are refused (Redis would hash the whole key)."""
    if "{" not in prefix and "}" not in prefix:
        return f"{{{prefix}}}"
    tag = hash_tag(prefix)
    if tag is None or prefix.count("{") != 1 or prefix.count("}") != 1:
        raise ConfigError(
            f"BATCHLINE_KEY_PREFIX={prefix!r}: in cluster mode a prefix has no braces (it becomes "
            "{PREFIX}) or exactly one non-empty hash tag, like '{bl}' or 'app:{bl}'"
        )
    return prefix


class Keys:
    """Key names under one prefix (`BATCHLINE_KEY_PREFIX`).

    A prefix that carries a hash tag (cluster mode: `config.settings` makes `bl` into `{bl}`) puts every
    key in one Redis Cluster slot, batchline's own and the Celery broker's (`broker_prefix`, kombu's
    `global_keyprefix`); reply streams must then carry the same tag (`batchline/requests.py`)."""

    def __init__(self, prefix: str = "bl") -> None:
        self.prefix = prefix
        self.tag = hash_tag(prefix)
        # kombu's keys (queues, bindings, unacked) in cluster mode; '' leaves them where they always were
        self.broker_prefix = f"{prefix}:kombu:" if self.tag else ""
        # Pending work, per tenant (fair share, lua/pending.lua): a list of request ids per tenant, oldest
        # first, and the tenants that have some
        self.pending_lists = f"{prefix}:pending:t:"  # + tenant: list of request ids, oldest first
        self.pending_tenants = f"{prefix}:pending:tenants"  # zset: tenant -> queued_at (ms) of its list's head
        self.legacy_pending = f"{prefix}:pending"  # 0.1's one list of every tenant: moved at worker start
        self.stats = f"{prefix}:stats"  # hash: pending, pending_bytes, in_flight, fair_turn
        self.leases = f"{prefix}:leases"  # zset: batch id -> lease expiry (ms) for claimed/creating
        self.open = f"{prefix}:open"  # zset: batch id -> submitted at (ms), polled by the poller
        self.ended = f"{prefix}:ended"  # zset: batch id -> ended at (ms), awaiting collection
        self.provider_index = f"{prefix}:provider"  # hash: provider batch id -> batch id
        self.batches = f"{prefix}:batches"  # zset: batch id -> created at (ms), every batch
        self.create_backoff = f"{prefix}:backoff:create"  # string with a TTL while creates back off
        self.poll_backoff = f"{prefix}:backoff:poll"
        self.paused = f"{prefix}:paused"  # hash while submission is paused (account-level error)
        self.limit_override = f"{prefix}:override"  # hash with a TTL: smaller batches after a 413/400
        self.in_flight_cap = f"{prefix}:cap:in_flight"  # after a queue-full 429: the effective in-flight limit
        self.alerts = f"{prefix}:alerts"  # hash: watchdog alerts, rewritten by a sweep when they change
        self.counters = f"{prefix}:counters"  # hash: accepted/delivered/redriven/canceled totals
        self.cost_days = f"{prefix}:cost:days"  # set of the days that have a cost hash
        self.canceled_queue = self.batch_members(CANCEL_BATCH)  # list: queued requests canceled, to deliver
        self.standing_alerts = f"{prefix}:alerts:standing"  # hash: alerts no sweep rewrites (results unavailable)
        self.cost_months = f"{prefix}:cost:months"  # set of the months older days were rolled into
        self.replication_probe = f"{prefix}:replication:probe"  # counter written before each WAIT (MIN_REPLICAS)
        # Names reply targets write, by kind: a name used as a stream is never accepted as a Celery
        # queue and back (bounded by the number of distinct targets callers name)
        self.reply_streams = f"{prefix}:targets:streams"  # set of reply stream names
        self.reply_queues = f"{prefix}:targets:queues"  # set of Celery queues named by reply targets
        # large params kept by reference (batchline/objects.py): object key -> requests not yet final
        # that refer to it, and the keys no request refers to any more (zset, by when), to delete
        self.params_refs = f"{prefix}:params:refs"
        self.params_gc = f"{prefix}:params:gc"
        self.undeliverable = f"{prefix}:undeliverable"  # zset: request id -> when its target refused it
        # External targets (webhook, SQS): requests `delivering`, by when their next send is due (a
        # send in progress has moved it past its own lease: a crashed sender's requests come due again)
        self.outbox = f"{prefix}:outbox"  # zset: request id -> next send due (ms)
        # handed to the outbox with a send task dispatched for them: that task's to claim until then
        # (their outbox due time is the same), so beat's outbox tick does not race it
        self.outbox_held = f"{prefix}:outbox:held"  # zset: request id -> held until (ms)
        # an outbox tick beat sent that has not claimed yet (it expires with the tick): no second one
        self.outbox_tick = f"{prefix}:outbox:tick"  # string: when beat sent it (ms), with a TTL
        self.webhook_secrets = f"{prefix}:whsecrets"  # hash: tenant -> [{"secret", "expires_ms"}] (JSON)
        self.tenants = f"{prefix}:tenants"  # hash: tenant name -> its settings (JSON)
        # Deadlines (workers/deadlines.py): requests with a deadline not yet routed, and those left to
        # their batch, watched until their batch is too late (zsets: rid -> deadline, ms)
        self.deadlines_new = f"{prefix}:deadlines:new"
        self.deadlines_watch = f"{prefix}:deadlines:watch"
        self.realtime = f"{prefix}:realtime"  # zset: rid -> lease until (ms) of its real-time call
        self.api_keys = f"{prefix}:apikeys"  # hash: SHA-256 of an API key -> {"tenant", "expires_ms"} (JSON)

    def pending_of(self, tenant: str) -> str:
        return f"{self.pending_lists}{tenant}"

    def request(self, rid: str) -> str:
        return f"{self.prefix}:r:{rid}"

    def batch(self, bid: str) -> str:
        return f"{self.prefix}:b:{bid}"

    def batch_members(self, bid: str) -> str:
        return f"{self.prefix}:b:{bid}:ids"

    def reconcile_proofs(self, bid: str) -> str:
        """hash: provider batch id -> 'ours' | 'not_ours', read from its result lines (reconcile)"""
        return f"{self.prefix}:b:{bid}:proofs"

    def cost_day(self, day: str) -> str:
        """hash '{tenant}|{model}|batch|standard|requests' -> micro-dollars / count, for one UTC day"""
        return f"{self.prefix}:cost:{day}"

    def unpriced_logged(self, model: str) -> str:
        """set (with a day's TTL) once a model without a price has been logged"""
        return f"{self.prefix}:unpriced:{model}"

    def turnaround(self, model: str) -> str:
        """list: recent batch turnarounds (seconds, newest first, bounded) of one model"""
        return f"{self.prefix}:turnaround:{model}"

    def realtime_slots(self, model: str) -> str:
        """zset: real-time calls in flight for one model (token -> until, ms): BATCHLINE_REALTIME_MAX_CONCURRENCY"""
        return f"{self.prefix}:slots:rt:{model}"

    def host_slots(self, host_port: str) -> str:
        """zset: sends in flight to one webhook host (token -> until, ms): the per-host bound"""
        return f"{self.prefix}:slots:{host_port}"

    def poll_lock(self) -> str:
        return f"{self.prefix}:lock:poll"

    # The gateway's own records (gateway/): one hash per client batch, its custom_id map, a result
    # stream the result workers append to, and each tenant's batches newest first.
    def gateway_batch(self, gid: str) -> str:
        return f"{self.prefix}:gw:b:{gid}"

    def gateway_custom_ids(self, gid: str) -> str:
        """hash: index of a request in the client batch -> the caller's custom_id"""
        return f"{self.prefix}:gw:b:{gid}:cids"

    def gateway_tenant_batches(self, tenant: str) -> str:
        """zset: client batch id -> created at (ms)"""
        return f"{self.prefix}:gw:t:{tenant}:batches"

    def gateway_rate(self, key_hash: str, window: int) -> str:
        return f"{self.prefix}:gw:rate:{key_hash[:24]}:{window}"

    def gateway_auth_failures(self, address_hash: str, window: int) -> str:
        """counter: failed authentications from one client address in one rate window"""
        return f"{self.prefix}:gw:authfail:{address_hash[:24]}:{window}"

    @property
    def gateway_stream_prefix(self) -> str:
        """Reply streams of client batches. A reply_to must name a stream, never a key of ours
        (`{prefix}:`), so these sit beside the prefix; no tenant may name them (tenants.py)."""
        return f"{self.prefix}.gw."

    def gateway_results(self, gid: str) -> str:
        return f"{self.gateway_stream_prefix}{gid}"
