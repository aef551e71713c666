"""One emulated batch: compact per-request data and a lifecycle computed from the clock.

Nothing moves in the background: status, counts and results are functions of the emulated
time at which they are asked for.
"""

from __future__ import annotations

import hashlib
import json
import random
from array import array
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from .clock import rfc3339

SUCCEEDED, ERRORED, EXPIRED = 0, 1, 2
RESULT_TYPES: tuple[str, ...] = ("succeeded", "errored", "canceled", "expired")
NEVER = float("inf")


@dataclass
class Requests:
    """Compact columns, one entry per request; params themselves are not kept."""

    custom_ids: list[str] = field(default_factory=list)
    outcome: bytearray = field(default_factory=bytearray)
    error_ix: array[int] = field(default_factory=lambda: array("I"))  # into Batch.strings
    message_ix: array[int] = field(default_factory=lambda: array("I"))  # into Batch.strings
    model_ix: array[int] = field(default_factory=lambda: array("I"))  # into Batch.strings
    digest: bytearray = field(default_factory=bytearray)  # 8 bytes each: the reply text's hex
    finish: array[float] = field(default_factory=lambda: array("d"))  # emulated seconds after creation
    tokens: array[int] = field(default_factory=lambda: array("q"))  # 5 each: in, out, write, read, ttl1h

    def __len__(self) -> int:
        return len(self.custom_ids)


@dataclass
class Batch:
    """A Message Batch as the emulator keeps it."""

    id: str
    seq: int
    created_at: float
    created_real: float
    end_offset: float  # emulated seconds from creation to the natural end
    expires_after: float
    archive_after: float
    requests: Requests
    strings: list[str]
    cancel_initiated_at: float | None = None
    cancel_seconds: float = 0.0
    foreign: bool = False  # created by "another application" in the workspace (emulator/foreign.py)
    betas: tuple[str, ...] = ()  # the anthropic-beta header of its create
    _final: list[int] | None = None  # cached counts once ended

    @property
    def expires_at(self) -> float:
        return self.created_at + self.expires_after

    def end_time(self) -> float:
        """Emulated time at which the batch ends (or will, unless canceled later)."""
        natural = self.created_at + min(self.end_offset, self.expires_after)
        if self.cancel_initiated_at is None:
            return natural
        return min(natural, self.cancel_initiated_at + self.cancel_seconds)

    def canceled_early(self) -> bool:
        natural = self.created_at + min(self.end_offset, self.expires_after)
        return self.cancel_initiated_at is not None and self.end_time() < natural

    def status(self, now: float) -> str:
        if now >= self.end_time():
            return "ended"
        return "in_progress" if self.cancel_initiated_at is None else "canceling"

    def result_type(self, i: int) -> int:
        """Index into RESULT_TYPES of request ``i``'s final result."""
        reqs = self.requests
        finish = reqs.finish[i]
        if self.canceled_early():
            assert self.cancel_initiated_at is not None
            if finish > self.cancel_initiated_at - self.created_at:
                return 2
        elif finish > self.expires_after:
            return 3
        return 0 if reqs.outcome[i] == SUCCEEDED else 1

    def final_counts(self) -> list[int]:
        """Counts per RESULT_TYPES; only meaningful once the batch has ended."""
        if self._final is None:
            counts = [0, 0, 0, 0]
            for i in range(len(self.requests)):
                counts[self.result_type(i)] += 1
            self._final = counts
        return self._final

    def to_json(self, now: float, base_url: str) -> dict[str, Any]:
        """The ``MessageBatch`` object as seen at emulated time ``now``; ``results_url`` starts with
        ``base_url`` (empty for a relative reference)."""
        status = self.status(now)
        n = len(self.requests)
        counts = dict.fromkeys(("processing", *RESULT_TYPES), 0)
        ended_at = results_url = archived_at = None
        if status == "ended":
            counts.update(zip(RESULT_TYPES, self.final_counts(), strict=True))
            ended_at = rfc3339(self.end_time())
            results_url = f"{base_url.rstrip('/')}/v1/messages/batches/{self.id}/results"
        else:
            counts["processing"] = n
        if now >= self.created_at + self.archive_after:
            archived_at = rfc3339(self.created_at + self.archive_after)
        cancel = self.cancel_initiated_at
        return {
            "id": self.id,
            "type": "message_batch",
            "processing_status": status,
            "request_counts": counts,
            "ended_at": ended_at,
            "created_at": rfc3339(self.created_at),
            "expires_at": rfc3339(self.expires_at),
            "archived_at": archived_at,
            "cancel_initiated_at": None if cancel is None else rfc3339(cancel),
            "results_url": results_url,
        }

    def result_order(self, seed: int) -> list[int]:
        """A per-batch seeded shuffle: differs from submission, same on every download."""
        order = list(range(len(self.requests)))
        random.Random(f"{seed}:order:{self.id}").shuffle(order)
        return order

    def result_line(self, i: int) -> tuple[int, dict[str, Any]]:
        """(result type index, the ``MessageBatchIndividualResponse`` object) of request ``i``."""
        kind = self.result_type(i)
        reqs = self.requests
        custom_id = reqs.custom_ids[i]
        if kind == 0:
            result: dict[str, Any] = {"type": "succeeded", "message": self._message(i)}
        elif kind == 1:
            error = {"type": self.strings[reqs.error_ix[i]], "message": self.strings[reqs.message_ix[i]]}
            result = {"type": "errored", "error": {"type": "error", "error": error, "request_id": None}}
        else:
            result = {"type": RESULT_TYPES[kind]}
        return kind, {"custom_id": custom_id, "result": result}

    def _message(self, i: int) -> dict[str, Any]:
        reqs = self.requests
        inp, out, write, read, ttl1h = reqs.tokens[5 * i : 5 * i + 5]
        text = "Reply " + reqs.digest[8 * i : 8 * i + 8].hex()
        msg_id = hashlib.blake2b(f"{self.id}:{reqs.custom_ids[i]}".encode(), digest_size=12).hexdigest()
        return {
            "id": "msg_" + msg_id,
            "type": "message",
            "role": "assistant",
            "model": self.strings[reqs.model_ix[i]],
            "content": [{"type": "text", "text": text, "citations": None}],
            "stop_reason": "end_turn",
            "stop_sequence": None,
            "stop_details": None,
            "container": None,
            "usage": {
                "input_tokens": inp,
                "output_tokens": out,
                "cache_creation_input_tokens": write,
                "cache_read_input_tokens": read,
                "cache_creation": {
                    "ephemeral_1h_input_tokens": write if ttl1h else 0,
                    "ephemeral_5m_input_tokens": 0 if ttl1h else write,
                },
                "inference_geo": None,
                "server_tool_use": None,
                "service_tier": "batch",
            },
        }


def iter_results(
    batch: Batch, seed: int, newline: bytes, served: list[int], cut_after: int | None = None
) -> Iterator[bytes]:
    """The results file, generated lazily in chunks; ``served`` counts lines per result type.

    With ``cut_after``, raise ``ConnectionAbortedError`` after that many lines so the server
    drops the connection mid-body.
    """
    chunk: list[bytes] = []
    for n, i in enumerate(batch.result_order(seed)):
        if cut_after is not None and n >= cut_after:
            if chunk:
                yield b"".join(chunk)
            raise ConnectionAbortedError(f"emulator: results cut after {cut_after} lines")
        kind, line = batch.result_line(i)
        served[kind] += 1
        chunk.append(json.dumps(line, ensure_ascii=False, separators=(",", ":")).encode() + newline)
        if len(chunk) >= 256:
            yield b"".join(chunk)
            chunk = []
    if chunk:
        yield b"".join(chunk)
