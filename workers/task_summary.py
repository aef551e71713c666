"""Which task results count as work (the demo's Flower share and its test read this).

A task's result is the small dict its adapter returns (workers/app.py); Flower shows it as a repr.
Work is: a pack that created (or tried to create) a batch, a poll that spent API calls on open
batches, a collect that read result lines, a sweep that did anything at all, a delivery task that
claimed sends, a route tick that routed, hedged or recovered a deadline request, a real-time call that
answered, a health ping.
"""

from __future__ import annotations

import ast
from typing import Any

from batchline.workers.app import COLLECT, DELIVER, OUTBOX, PACK, PING, POLL, REALTIME, ROUTE, SWEEP


def did_work(task: str, result: Any) -> bool:
    """Whether a finished task of name `task` did work, from its result (a dict, or Flower's repr of one)."""
    if task == PING:
        return True
    summary = parse(result)
    if summary is None:
        return False
    if task == PACK:
        return bool(summary.get("batches"))
    if task == POLL:
        return bool(summary.get("open")) and bool(summary.get("api_calls"))
    if task == COLLECT:
        return bool(summary.get("lines") or summary.get("delivered"))
    if task == SWEEP:
        return bool(summary)
    if task in (DELIVER, OUTBOX):  # webhook and SQS sends: it claimed something to send
        return bool(summary.get("claimed"))
    if task == ROUTE:  # deadlines: something was routed, hedged, recovered or marked late
        return any(summary.values())
    if task == REALTIME:  # deadlines: an answer came back (delivered or not)
        return summary.get("status") in ("delivered", "not_delivered", "fell_back")
    return True  # not batchline's: not ours to judge


def parse(result: Any) -> dict[str, Any] | None:
    if isinstance(result, dict):
        return result
    if not isinstance(result, str):
        return None
    try:
        value = ast.literal_eval(result)
    except (ValueError, SyntaxError):
        return None
    return value if isinstance(value, dict) else None
