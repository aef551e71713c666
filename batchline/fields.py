"""The hash fields of a request record and of a batch record, named once.

Python reads them as `R.STATE`, `B.PROVIDER_ID`; the Lua scripts get the same names as the tables
`R` and `B` (`R.state`, `B.provider_id`), prepended to every script by `batchline.scripts`, so a
field is spelled in one place only.
"""

from __future__ import annotations

from enum import StrEnum


class R(StrEnum):
    """Fields of a request record (`{prefix}:r:{rid}`); one letter each, since there are millions."""

    TENANT = "t"
    CUSTOM_ID = "c"
    PARAMS = "p"  # the params JSON, dropped once the request is settled
    DIGEST = "d"  # of params and reply_to: the same request again is a duplicate, another is a conflict
    SIZE = "z"  # bytes of the request's create-body line
    STATE = "s"
    QUEUED_AT = "q"  # ms
    REPLY_TO = "rt"
    METADATA = "m"
    BATCH = "b"  # the batch it is in ('' when none)
    HISTORY = "h"  # one JSON line per attempt or event
    ATTEMPTS = "a"
    CANCEL = "x"  # '1' once its caller asked to cancel it
    OUTCOME = "o"
    S3_KEY = "k"
    DELIVERED_AT = "dl"  # ms
    DELIVERY_ERROR = "dx"  # the stream append failed (a key of another type)
    COST = "cu"  # micro-dollars at batch prices
    STANDARD_COST = "cs"  # micro-dollars at standard prices ('unpriced' in COST: its model has no price)
    BETAS = "bt"  # the beta set (comma-joined, sorted) its batch must carry as anthropic-beta
    UNDELIVERABLE_AT = "ud"  # ms: its reply target refused the result
    UNDELIVERABLE_ERROR = "ue"  # why
    RESULT = "res"  # the result JSON, kept while undeliverable so `batchline redeliver` can send it again
    # (and while delivering: an external target's sends read it)
    EXTERNAL_TRIES = "et"  # sends to a webhook or SQS target so far
    EXTERNAL_SINCE = "es"  # ms: its first send was due (retries stop BATCHLINE_WEBHOOK_RETRY_HOURS later)
    EXTERNAL_ERROR = "el"  # the last send's error, while it is retried
    DEADLINE = "dd"  # ms: when it must be answered by (set only on a request with a deadline)
    MODEL = "md"  # params.model of a deadline request (the expected turnaround is per model)
    PATH = "pa"  # how it is answered: batch, realtime or hedged (batchline/deadlines.py; unset: batch)
    PATH_REASON = "pr"  # why that path
    WASTED = "wz"  # micro-dollars of its answer that was not delivered (a hedge's loser), counted once
    LATE = "lt"  # '1': its real-time budget was spent, it waits for its batch past its deadline


class B(StrEnum):
    """Fields of a batch record (`{prefix}:b:{bid}`)."""

    STATE = "state"
    N = "n"  # requests
    BYTES = "bytes"
    CLAIMED_AT = "claimed_at"
    INTENT_AT = "intent_at"
    PROVIDER_ID = "provider_id"
    SUBMITTED_AT = "submitted_at"
    ADOPTED = "adopted"  # '1' when the sweeper adopted it after a lost create
    ENDED_AT = "ended_at"
    COUNTS = "counts"  # the provider's request counts (JSON)
    PROVIDER_ENDED_AT = "provider_ended_at"
    RELEASED_AT = "released_at"
    REASON = "reason"
    CANCELS = "cancels"  # requests of it whose caller asked to cancel
    CANCEL_SENT = "cancel_sent"
    NOT_FOUND = "not_found"  # 404s from the provider after the grace period
    GONE = "gone"
    COLLECT_TRIES = "collect_tries"
    DELIVERED_AT = "delivered_at"
    LINES = "lines"
    COST = "cost_micros"
    STANDARD_COST = "standard_micros"
    POLLED_AT = "polled_at"  # ms: when a poll round last saw it (the round's budget rotates by this)
    ANSWERED_AT = "answered_at"  # ms: when an ambiguous create answered (the reconcile window's end)
    BETAS = "betas"  # its requests' beta set, sent as anthropic-beta on create and results
    LEASE_OWNER = "lease_owner"  # the lease: who holds this batch ...
    LEASE_UNTIL = "lease_until"  # ... until when (ms, Redis server time)


def lua_prelude() -> str:
    """`local R = {...}; local B = {...}` on one line, so Lua error line numbers shift by one only."""

    def table(name: str, fields: type[StrEnum]) -> str:
        return f"local {name} = {{" + ", ".join(f"{f.name.lower()}='{f.value}'" for f in fields) + "}"

    return f"{table('R', R)}; {table('B', B)}\n"
