"""The emulator's state: batches by id, in creation order, and the books kept for tests."""

from __future__ import annotations

import random
import secrets
import string
import threading
import time
from collections import Counter
from typing import Any

from .batch import EXPIRED, NEVER, RESULT_TYPES, Batch, Requests
from .clock import Clock
from .config import EmulatorConfig
from .errors import ApiError, invalid, not_found
from .foreign import foreign_analyses, foreign_ids
from .intake import Analysis, analyze, check_body, parse_body

BASE62 = string.ascii_letters + string.digits
FOREIGN_BOOKS = ("batches_created", "requests_created", "canceled", "deleted", "results_downloads")


class Store:
    """Batches and books behind one lock; every method is safe to call from any thread."""

    def __init__(self, config: EmulatorConfig, clock: Clock) -> None:
        self.config = config
        self.clock = clock
        self.lock = threading.RLock()
        self._reset_state()

    def _reset_state(self) -> None:
        self.batches: dict[str, Batch] = {}
        self.seq = 0
        self.batch_count: Counter[str] = Counter()  # custom_id -> batches it was submitted in
        self.cache_seen: set[bytes] = set()
        self.deleted_counts = [0, 0, 0, 0]
        self.served = [0, 0, 0, 0]
        self.downloads = 0
        self.http_faults: Counter[str] = Counter()
        self.operations: Counter[str] = Counter()
        self.realtime: Counter[str] = Counter()  # POST /v1/messages: calls and tokens
        self.realtime_betas: Counter[str] = Counter()  # ... and the betas of their anthropic-beta headers
        self.requests_created = 0
        self.foreign: Counter[str] = Counter()  # foreign batches: created, requests, and what was done to them
        self.foreign_batch_ids: list[str] = []
        self.results_betas: dict[str, list[str]] = {}  # batch id -> betas of its last results download

    def reset(self) -> None:
        """Forget every batch and zero the books."""
        with self.lock:
            self._reset_state()

    # -- create -------------------------------------------------------------------------------

    def create(self, payload: list[bytes | bytearray], betas: tuple[str, ...] = ()) -> Batch:
        """Check and record a batch from the raw JSON body (a one-item list, emptied here) and the
        betas of its `anthropic-beta` header."""
        cfg = self.config
        items = check_body(parse_body(payload), cfg.max_requests)
        self._check_queue(len(items))
        analyses: list[Analysis] = []
        custom_ids: list[str] = []
        for n, item in enumerate(items):
            custom_ids.append(item["custom_id"])
            analyses.append(analyze(item["params"]))
            items[n] = None  # let the params go as soon as they are digested
        del items
        with self.lock:
            self._check_queue(len(custom_ids))
            batch = self._record(custom_ids, analyses)
            batch.betas = betas
            return batch

    def _check_queue(self, adding: int) -> None:
        limit = self.config.queue_limit
        if limit is None:
            return
        with self.lock:
            now = self.clock.now()
            queued = sum(len(b.requests) for b in self.batches.values() if b.status(now) != "ended")
        if queued + adding > limit:
            self.http_faults["queue_limit"] += 1
            raise ApiError(
                "rate_limit_error",
                f"Number of requests in the processing queue ({queued}) plus this batch ({adding}) "
                f"would exceed the limit of {limit}.",
                headers={"retry-after": str(max(1, self.config.retry_after_seconds))},
            )

    def create_foreign(self, batches: int, requests: int) -> list[Batch]:
        """Batches of another application in this workspace (custom_ids not the caller's)."""
        made = []
        with self.lock:
            for _ in range(batches):
                serial = self.foreign["batches_created"]
                batch = self._record(
                    foreign_ids(self.config.seed, serial, requests), foreign_analyses(requests), foreign=True
                )
                self.foreign["batches_created"] += 1
                self.foreign["requests_created"] += requests
                self.foreign_batch_ids.append(batch.id)
                made.append(batch)
        return made

    def touched(self, batch: Batch, what: str) -> None:
        """Count an operation on a foreign batch (the books' ``foreign`` section)."""
        if batch.foreign:
            with self.lock:
                self.foreign[what] += 1

    def _record(self, custom_ids: list[str], analyses: list[Analysis], foreign: bool = False) -> Batch:
        cfg = self.config
        self.seq += 1
        lo, hi = cfg.processing_range
        end_offset = round(random.Random(f"{cfg.seed}:batch:{self.seq}").uniform(lo, hi), 6)
        strings: list[str] = []
        index: dict[str, int] = {}

        def ix(s: str) -> int:
            if s not in index:
                index[s] = len(strings)
                strings.append(s)
            return index[s]

        reqs = Requests()
        never_ends = False
        slow = any(a.slow for a in analyses)
        if slow:
            end_offset = hi
        for cid, a in zip(custom_ids, analyses, strict=True):
            attempt = self.batch_count[cid]
            rng = random.Random(f"{cfg.seed}:{cid}:{attempt}")
            outcome, error = self._outcome(a, rng.random())
            reqs.custom_ids.append(cid)
            reqs.outcome.append(outcome)
            reqs.error_ix.append(ix(error or ""))
            reqs.message_ix.append(ix(a.problem or _message_for(error)))
            reqs.model_ix.append(ix(a.model))
            reqs.digest += a.digest
            finish = rng.random() * end_offset
            if outcome == EXPIRED:
                finish, never_ends = NEVER, True
            reqs.finish.append(finish)
            write = read = 0
            if outcome != EXPIRED and a.size.cache_key is not None:
                if a.size.cache_key in self.cache_seen:
                    read = a.size.cache_tokens
                else:
                    write = a.size.cache_tokens
                    self.cache_seen.add(a.size.cache_key)
            reqs.tokens.extend((a.size.input_tokens, a.out_tokens, write, read, int(a.size.cache_ttl_1h)))
        if never_ends:
            end_offset = cfg.expires_after_seconds
        if not foreign:  # the books count the caller's own work; foreign batches have their own section
            self.batch_count.update(custom_ids)
            self.requests_created += len(custom_ids)
        batch = Batch(
            id="msgbatch_" + "".join(secrets.choice(BASE62) for _ in range(24)),
            seq=self.seq,
            created_at=round(self.clock.now(), 6),
            created_real=time.monotonic(),
            end_offset=end_offset,
            expires_after=cfg.expires_after_seconds,
            archive_after=cfg.archive_after_seconds,
            requests=reqs,
            strings=strings,
            foreign=foreign,
        )
        self.batches[batch.id] = batch
        return batch

    def _outcome(self, a: Analysis, draw: float) -> tuple[int, str | None]:
        if a.problem is not None:
            return 1, "invalid_request_error"
        if a.marker_error is not None:
            return 1, a.marker_error
        if a.marker_expire:
            return EXPIRED, None
        acc = 0.0
        for error_type, rate in sorted(self.config.error_rates.items()):
            acc += rate
            if draw < acc:
                return 1, error_type
        if draw < acc + self.config.expire_rate:
            return EXPIRED, None
        return 0, None

    # -- read and change ----------------------------------------------------------------------

    def get(self, batch_id: str, *, fresh_404: bool = False) -> Batch:
        """The batch, or 404 (also while it is 'fresh' when ``fresh_404`` is asked)."""
        with self.lock:
            batch = self.batches.get(batch_id)
        if batch is None:
            raise not_found(batch_id)
        window = self.config.fresh_404_seconds
        if fresh_404 and window > 0:
            if self.config.fresh_404_real_time:
                age = time.monotonic() - batch.created_real
            else:
                age = self.clock.now() - batch.created_at
            if age < window:
                self.http_faults["fresh_404"] += 1
                raise not_found(batch_id)
        return batch

    def page(self, limit: int, after_id: str | None, before_id: str | None) -> tuple[list[Batch], bool]:
        """Newest first; ``after_id`` pages to older batches, ``before_id`` to newer ones. With
        ``list_page_max`` a page holds fewer than ``limit`` (the API promises at most ``limit``)."""
        if not 1 <= limit <= 1000:
            raise invalid("limit: Input should be between 1 and 1000")
        if self.config.list_page_max is not None:
            limit = min(limit, self.config.list_page_max)
        if after_id and before_id:
            raise invalid("after_id and before_id are mutually exclusive")
        with self.lock:
            ordered = list(reversed(self.batches.values()))
        ids = [b.id for b in ordered]
        if after_id:
            if after_id not in self.batches:
                raise invalid(f"after_id: unknown batch {after_id!r}")
            rest = ordered[ids.index(after_id) + 1 :]
            return rest[:limit], len(rest) > limit
        if before_id:
            if before_id not in self.batches:
                raise invalid(f"before_id: unknown batch {before_id!r}")
            rest = ordered[: ids.index(before_id)]
            return rest[-limit:], len(rest) > limit
        return ordered[:limit], len(ordered) > limit

    def cancel(self, batch_id: str) -> Batch:
        """Start canceling; a batch already canceling is returned as is."""
        with self.lock:
            batch = self.get(batch_id)
            now = self.clock.now()
            status = batch.status(now)
            if status == "ended":
                raise invalid(f"message_batch {batch_id!r} has already ended and cannot be canceled")
            if status == "in_progress":
                batch.cancel_initiated_at = round(now, 6)
                batch.cancel_seconds = self.config.cancel_seconds
            self.touched(batch, "canceled")
            return batch

    def delete(self, batch_id: str) -> None:
        """Delete an ended batch; 400 for one still processing."""
        with self.lock:
            batch = self.get(batch_id)
            if batch.status(self.clock.now()) != "ended":
                raise invalid(f"message_batch {batch_id!r} is still processing; cancel it and wait until it ends")
            self.touched(batch, "deleted")
            if not batch.foreign:
                for k, v in enumerate(batch.final_counts()):
                    self.deleted_counts[k] += v
            del self.batches[batch_id]

    # -- books --------------------------------------------------------------------------------

    def count_realtime(self, usage: dict[str, Any], betas: tuple[str, ...] = ()) -> None:
        """A real-time `POST /v1/messages` answered: counted apart from batches (standard price)."""
        with self.lock:
            self.realtime_betas.update(betas)
            self.realtime["messages"] += 1
            self.realtime["input_tokens"] += int(usage["input_tokens"])
            self.realtime["output_tokens"] += int(usage["output_tokens"])

    def books(self) -> dict[str, Any]:
        """What happened so far, for tests: see docs/emulator.md."""
        with self.lock:
            now = self.clock.now()
            results = list(self.deleted_counts)
            open_batches = open_requests = 0
            for b in self.batches.values():
                if b.foreign:
                    continue
                if b.status(now) == "ended":
                    for k, v in enumerate(b.final_counts()):
                        results[k] += v
                else:
                    open_batches += 1
                    open_requests += len(b.requests)
            multi = sorted(cid for cid, n in self.batch_count.items() if n > 1)
            return {
                "batches_created": self.seq - self.foreign["batches_created"],
                "requests_created": self.requests_created,
                "requests_in_multiple_batches": len(multi),
                "multi_batch_ids": multi,
                "results": dict(zip(RESULT_TYPES, results, strict=True)),
                "billed_requests": results[0],
                "results_served": dict(zip(RESULT_TYPES, self.served, strict=True)),
                "results_downloads": self.downloads,
                "open_batches": open_batches,
                "open_requests": open_requests,
                "http_faults": dict(self.http_faults),
                "operations": dict(self.operations),
                "realtime": {"messages": 0, "input_tokens": 0, "output_tokens": 0, **self.realtime},
                "foreign": {**{k: 0 for k in FOREIGN_BOOKS}, **self.foreign, "batch_ids": list(self.foreign_batch_ids)},
                "batch_betas": {b.id: list(b.betas) for b in self.batches.values() if b.betas},
                "results_betas": dict(self.results_betas),
                "realtime_betas": dict(self.realtime_betas),  # beta -> real-time calls that carried it
            }


def _message_for(error_type: str | None) -> str:
    if error_type is None:
        return ""
    return f"emulated {error_type}"
