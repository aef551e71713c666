"""The Lua scripts in `batchline/lua/`, one typed Python function each.

Each method owns its script's key order and argument encoding, so no call site builds KEYS/ARGV
by hand. Every script is loaded into Redis when `Scripts` is built (`SCRIPT LOAD`): a missing file
or a script that does not compile fails there, at start, not on first use. The record's hash
fields come from `batchline.fields`, prepended to every script as the Lua tables `R` and `B`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

import redis

from batchline.errors import NotReplicated
from batchline.fields import lua_prelude
from batchline.keys import REALTIME_BATCH, Keys
from batchline.leases import HANDOFF, new_owner
from batchline.redis_client import text
from batchline.requests import EncodedRequest

NAMES = (
    "intake", "cancel", "claim", "intent", "submitted", "ended", "release", "deliver", "finish", "lease",
    "redeliver", "gateway_count", "migrate_pending", "outbox_claim", "outbox_release", "external", "host_slot",
    "params_gc", "route", "waste",
)
LIBRARY = "_lease"  # Lua functions every script may call (the lease checks)
#: a script that needs shared functions names their file: `-- include: targets` (the reply-target
#: checks, lua/targets.lua), `-- include: pending` (the per-tenant pending lists, lua/pending.lua)
INCLUDE = re.compile(r"^-- include: (\w+)\n", re.MULTILINE)


@cache
def source(name: str) -> str:
    """The script as Redis runs it: the field tables, the lease functions, then the file."""
    return lua_prelude() + _file(LIBRARY) + _file(name)


def _file(name: str) -> str:
    text = resources.files("batchline").joinpath("lua", f"{name}.lua").read_text()
    return INCLUDE.sub(lambda m: _file(m.group(1)), text)


@dataclass(frozen=True, slots=True)
class DeliverRow:
    """One result line for deliver.lua: a final delivery ('D') or a re-drive ('R')."""

    rid: str
    action: str  # 'D' deliver, 'R' re-drive, 'U' undeliverable (its Celery send failed)
    outcome: str  # for 'R': the reason of the re-drive
    s3_key: str
    stream: str  # '' for none; for 'U' the error
    custom_id: str
    tenant: str
    result_json: bytes | str
    history_entry: bytes | str
    model: str
    cost: str  # 'batch_micros:standard_micros', 'unpriced' or ''

    @classmethod
    def redrive(cls, rid: str, reason: str, custom_id: str, tenant: str, entry: bytes) -> DeliverRow:
        return cls(rid, "R", reason, "", "", custom_id, tenant, "", entry, "", "")

    def encode(self) -> tuple[Any, ...]:
        return (self.rid, self.action, self.outcome, self.s3_key, self.stream, self.custom_id, self.tenant,
                self.result_json, self.history_entry, self.model, self.cost)


class Scripts:
    """The scripts, registered and loaded for one client and one key prefix."""

    def __init__(self, client: redis.Redis, keys: Keys, min_replicas: int = 0, wait_ms: int = 1000) -> None:
        self._keys = keys
        self._client = client
        self._min_replicas, self._wait_ms = min_replicas, wait_ms
        self._run = {name: client.register_script(source(name)) for name in NAMES}
        for name in NAMES:  # compile each now: a broken script fails here, naming itself
            try:
                client.script_load(source(name))
            except redis.ResponseError as exc:
                raise RuntimeError(f"batchline/lua/{name}.lua: {exc}") from exc

    def _durable(self, name: str, keys: list[str], args: list[Any]) -> Any:
        """Run a script whose write is an acknowledgement (intake, the create intent, an outcome): with
        `min_replicas`, answer only once that many replicas have it (WAIT, same connection)."""
        if not self._min_replicas:
            return self._run[name](keys=keys, args=args)
        pipe = self._client.pipeline(transaction=False)
        self._run[name](keys=keys, args=args, client=pipe)
        # a write of its own, so WAIT covers everything the primary had when this script ran, a
        # duplicate's earlier intake included (WAIT waits for this connection's last write)
        pipe.incr(self._keys.replication_probe)
        pipe.execute_command("WAIT", self._min_replicas, self._wait_ms)  # type: ignore[no-untyped-call]
        result, _probe, acked = pipe.execute(raise_on_error=False)
        if isinstance(result, Exception):  # the script's own error, as without WAIT
            raise result
        if isinstance(acked, Exception):
            raise acked
        # (a refused probe, Redis at maxmemory say, only narrows WAIT to this connection's writes)
        if int(acked) < self._min_replicas:
            raise NotReplicated(f"Redis: {name} reached {acked} of {self._min_replicas} replicas in "
                                f"{self._wait_ms} ms (BATCHLINE_REDIS_MIN_REPLICAS): applied on the primary, "
                                "not acknowledged; retry, it is idempotent", result=result)
        return result

    def intake(self, rows: Sequence[EncodedRequest], now: int, admission: Sequence[Any]) -> list[int | str]:
        """Store validated requests. One code each: 1 accepted, 0 duplicate, 2 conflict, or a string: why
        its reply target is refused, or 'backpressure|LIMIT|CURRENT|MAX|TENANT' (see intake.lua).
        `admission`: max queued requests, max queued bytes, memory percent, K, then K (tenant, max n, max b)."""
        k = self._keys
        args: list[Any] = [k.request(""), now, k.pending_lists, k.broker_prefix, *admission]
        for r in rows:
            args += r  # rid, tenant, custom_id, params_json, reply_to, metadata_json, digest, size, betas,
            # deadline_ms, model
        codes = self._durable("intake",
            keys=[k.pending_tenants, k.stats, k.counters, k.reply_streams, k.reply_queues, k.params_refs,
                  k.params_gc, k.deadlines_new], args=args)
        return [c.decode() if isinstance(c, bytes) else int(c) for c in codes]

    def cancel(self, rids: Sequence[str], now: int, record_ttl: int, entry: str) -> list[str]:
        """One code per id: 'removed' (queued: moved to the cancel batch, its `canceled` delivered by a
        worker), 'requested', 'final' or 'unknown'."""
        k = self._keys
        codes = self._durable("cancel", keys=[k.stats, k.counters, k.canceled_queue, k.legacy_pending],
                                    args=[k.request(""), k.batch(""), now, record_ttl, entry, *rids])
        return [text(c) or "" for c in codes]

    def claim(self, bid: str, owner: str, max_requests: int, max_bytes: int, now: int,
              lease_until: int) -> list[bytes]:
        """Move pending requests into a new claimed batch leased to `owner`, shared across tenants by
        weight (fair share, see claim.lua); the flat [rid, params, ...]."""
        k = self._keys
        return list(self._run["claim"](
            keys=[k.pending_tenants, k.stats, k.leases, k.batches, k.batch(bid), k.batch_members(bid), k.tenants],
            args=[k.request(""), bid, max_requests, max_bytes, now, lease_until, owner, k.pending_lists]))

    def intent(self, bid: str, owner: str, now: int, lease_until: int) -> bool:
        """claimed -> creating by the lease's holder, the lease extended over the create call."""
        k = self._keys
        return bool(self._durable("intent", keys=[k.leases, k.batch(bid)], args=[bid, now, lease_until, owner]))

    def submitted(self, bid: str, provider_id: str, now: int, owner: str) -> bool:
        """creating -> submitted with the provider's id: saved by the lease's holder after its create, or
        adopted by the sweeper (`owner` '') once the lease expired."""
        k = self._keys
        return bool(self._durable("submitted",
            keys=[k.leases, k.open, k.provider_index, k.batch(bid), k.batch_members(bid)],
            args=[k.request(""), bid, provider_id, now, int(not owner), owner]))

    def ended(self, bid: str, now: int, counts_json: str, provider_ended_at: str, handoff_until: int) -> bool:
        """submitted -> ended, once, with a hand-off lease; only the caller that gets True hands it off."""
        k = self._keys
        return bool(self._durable("ended", keys=[k.open, k.ended, k.stats, k.batch(bid)],
                                       args=[bid, now, counts_json, provider_ended_at, new_owner(HANDOFF),
                                             handoff_until]))

    def release(self, bid: str, now: int, reason: str, owner: str, where: str = "head") -> int:
        """claimed/creating -> released by the lease's holder (or anyone, `owner` '', once it expired),
        its requests back to pending (`where`: 'head', 'rotate' or 'tail'); how many went back, or -1
        while a request its caller canceled is still in it (settle those first)."""
        k = self._keys
        return int(self._durable("release",
            keys=[k.pending_tenants, k.stats, k.leases, k.batch(bid), k.batch_members(bid)],
            args=[k.request(""), bid, now, reason, owner, where, k.pending_lists]))

    def finish(self, bid: str, owner: str, now: int, lines: int, record_ttl: int) -> bool:
        """ended -> delivered by the collect lease's holder, once every line is settled."""
        k = self._keys
        return bool(self._durable("finish", keys=[k.ended, k.batch(bid), k.batch_members(bid)],
                                        args=[bid, now, lines, record_ttl, owner]))

    def lease(self, key: str, owner: str, now: int, until: int, *, state: str = "", take_over: str = "",
              index: str = "", expire: bool = False) -> bool:
        """Take or renew the lease in hash `key` (see `lease.lua`); True when `owner` holds it now."""
        return bool(self._run["lease"](keys=[key, self._keys.leases],
                                       args=[owner, now, until, state, take_over, index, int(expire)]))

    def deliver(self, bid: str, now: int, record_ttl: int, day: str, stream_maxlen: int,
                rows: Sequence[DeliverRow], held_until: int = 0) -> tuple[int, int, list[tuple[str, str]], int]:
        """Settle result lines of one batch; (delivered, re-driven, [(rid, error)] of the undeliverable,
        handed to the outbox for an external target). `held_until` (ms, 0: none): those handed are held
        for the send task about to be dispatched for them until then, instead of due now."""
        k = self._keys
        args: list[Any] = [k.request(""), bid, now, record_ttl, day, stream_maxlen, k.pending_lists, held_until]
        for row in rows:
            args += row.encode()
        delivered, retried, failed, handed = self._durable("deliver",
            keys=[k.pending_tenants, k.stats, k.counters, k.cost_day(day), k.batch(bid), k.cost_days, k.reply_queues,
                  k.undeliverable, k.outbox, k.params_refs, k.params_gc, k.outbox_held],
            args=args)
        pairs = [(text(r) or "", text(e) or "") for r, e in zip(failed[::2], failed[1::2], strict=True)]
        return int(delivered), int(retried), pairs, int(handed)

    def params_gc(self, cutoff: int, limit: int) -> list[str]:
        """Params objects no request refers to since before `cutoff` (ms), up to `limit`: taken off the
        list to delete now (one referred to again meanwhile is only taken off)."""
        k = self._keys
        return [text(x) or "" for x in self._run["params_gc"](keys=[k.params_refs, k.params_gc], args=[cutoff, limit])]

    def redeliver(self, now: int, entry: str, stream_maxlen: int, modes: Sequence[tuple[str, str]]) -> list[str]:
        """Settle undeliverable requests whose target now takes them; per (rid, mode): 'delivered', 'gone'
        or the error (modes: 'stream', 'sent', 'outbox', or the send's error); 'delivering' for 'outbox'."""
        k = self._keys
        args: list[Any] = [k.request(""), now, entry, stream_maxlen]
        for rid, mode in modes:
            args += (rid, mode)
        codes = self._durable("redeliver", keys=[k.counters, k.undeliverable, k.reply_queues, k.outbox], args=args)
        return [text(c) or "" for c in codes]

    def outbox_claim(self, now: int, until: int, limit: int, fields: Sequence[str],
                     rids: Sequence[str] = ()) -> list[tuple[str, list[bytes | None]]]:
        """Claim due requests of the outbox (only those of `rids` that are due or held for this send
        task, when given) until `until`; per claimed request, its id and its record's `fields`."""
        k = self._keys
        flat = self._run["outbox_claim"](keys=[k.outbox, k.outbox_held],
                                         args=[now, until, limit, k.request(""), len(fields), *fields, *rids])
        step = len(fields) + 1
        return [(text(flat[i]) or "", list(flat[i + 1 : i + step])) for i in range(0, len(flat), step)]

    def outbox_release(self, now: int, rids: Sequence[str]) -> int:
        """Make requests still held for a send task that was never dispatched due now; how many."""
        k = self._keys
        return int(self._run["outbox_release"](keys=[k.outbox, k.outbox_held], args=[now, *rids]))

    def external(self, now: int, record_ttl: int, rows: Sequence[tuple[str, str, int, str]]) -> list[str]:
        """Settle external sends, per (rid, action 'D'/'U'/'L'/'S', due ms, error): 'ok' or 'gone'."""
        k = self._keys
        args: list[Any] = [k.request(""), now, record_ttl]
        for row in rows:
            args += row
        codes = self._durable("external", keys=[k.counters, k.outbox, k.undeliverable], args=args)
        return [text(c) or "" for c in codes]

    def host_slot(self, host_port: str, now: int, until: int, bound: int, token: str) -> bool:
        """Take one of a webhook host's `bound` send slots until `until`; False when all are taken."""
        return self.slot(self._keys.host_slots(host_port), now, until, bound, token)

    def slot(self, key: str, now: int, until: int, bound: int, token: str) -> bool:
        """Take one of `bound` slots of zset `key` until `until` (host_slot.lua); False when all are taken."""
        return bool(self._run["host_slot"](keys=[key], args=[now, until, bound, token]))

    def route(self, now: int, until: int, rows: Sequence[tuple[str, str, str, str]]) -> list[str]:
        """Route deadline requests, per (rid, action 'T'/'B'/'H'/'L'/'F', reason, history entry): see route.lua."""
        k = self._keys
        args: list[Any] = [k.request(""), now, until, k.pending_lists, REALTIME_BATCH]
        for row in rows:
            args += row
        codes = self._durable("route", keys=[k.pending_tenants, k.stats, k.deadlines_watch, k.deadlines_new,
                                             k.realtime, k.counters], args=args)
        return [text(c) or "" for c in codes]

    def waste(self, day: str, rows: Sequence[tuple[str, str, str, int, str]]) -> int:
        """Count answers not delivered (rid, tenant, model, micro-dollars, 'rt' or 'batch'), once per
        request; how many now."""
        k = self._keys
        args: list[Any] = [k.request(""), day]
        for row in rows:
            args += row
        return int(self._run["waste"](keys=[k.cost_day(day), k.cost_days], args=args))

    def gateway_count(self, gid: str, tenant: str, cid_prefix: str, chunk: int, now: int,
                      record_ttl: int) -> tuple[int, int, int]:
        """Count a gateway client batch's new outcomes from its result stream; (read, counted, requests)."""
        k = self._keys
        read, counted, n = self._run["gateway_count"](
            keys=[k.gateway_batch(gid), k.gateway_results(gid), k.gateway_custom_ids(gid)],
            args=[tenant, cid_prefix, chunk, now, record_ttl])
        return int(read), int(counted), int(n)

    def migrate_pending(self, chunk: int = 5000) -> tuple[int, int]:
        """Move a chunk of 0.1's single pending list into the per-tenant lists; (moved, left)."""
        k = self._keys
        moved, left = self._run["migrate_pending"](keys=[k.legacy_pending, k.pending_tenants, k.stats],
                                                   args=[k.request(""), k.pending_lists, chunk])
        return int(moved), int(left)
