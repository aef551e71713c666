"""`batchline demo --flower`: Flower beside the demo, and the share of its listed tasks that did work.

Flower runs through `batchline flower` (basic auth required) on a free loopback port, with
credentials made up for this run and printed once. At the end the demo reads Flower's own API
(`/api/tasks`) and prints how many of the finished tasks it lists did work (`task_summary.did_work`).
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from batchline.local_services import BatchlineProcess, free_port, wait_for_port
from batchline.workers.task_summary import did_work

FINISHED = frozenset({"SUCCESS", "FAILURE"})


@dataclass(frozen=True)
class FlowerView:
    url: str
    user: str
    password: str

    def tasks(self, timeout: float = 5.0) -> dict[str, dict[str, Any]]:
        """Flower's task list: uuid -> task (name, state, args, kwargs, result as a repr, ...)."""
        import httpx2

        resp = httpx2.get(f"{self.url}/api/tasks", auth=(self.user, self.password), timeout=timeout)
        resp.raise_for_status()
        tasks: dict[str, dict[str, Any]] = resp.json()
        return tasks


def start(stack: list[Any], env: dict[str, str], logs: Path) -> FlowerView:
    """Start Flower over the demo's broker; it stops with the rest of the stack."""
    port = free_port()
    user, password = "demo", secrets.token_urlsafe(12)
    proc = BatchlineProcess(["flower", "--port", str(port), "--address", "127.0.0.1"],
                            {**env, "FLOWER_BASIC_AUTH": f"{user}:{password}"}, str(logs / "flower.log")).start()
    stack.append(proc)
    wait_for_port(port, timeout=60, proc=proc.proc)
    view = FlowerView(f"http://127.0.0.1:{port}", user, password)
    deadline = time.monotonic() + 30
    while True:  # listening is not serving yet: wait for the API to answer
        try:
            view.tasks(timeout=2)
            return view
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def idle(tasks: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """The finished tasks in a Flower task list that did no work."""
    return [t for t in finished(tasks) if not did_work(str(t.get("name")), t.get("result"))]


def finished(tasks: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    return [t for t in tasks.values() if t.get("state") in FINISHED]


def report(view: FlowerView) -> str:
    try:
        tasks = view.tasks()
    except Exception as exc:  # the demo's verdict is about delivery; Flower's answer is shown, not judged
        return f"Flower: could not read {view.url}/api/tasks ({exc.__class__.__name__})"
    done, nothing = len(finished(tasks)), idle(tasks)
    share = f"{100 * (done - len(nothing)) / done:.0f}%" if done else "n/a"
    line = f"Flower: {done} finished tasks listed, {done - len(nothing)} did work ({share})"
    if nothing:
        line += "; did nothing: " + ", ".join(f"{t.get('name')} -> {t.get('result')}" for t in nothing[:5])
    return line
