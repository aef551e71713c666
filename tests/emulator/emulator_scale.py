"""Scale check: a 100,000-request (~100 MB) create and the full results download, with the peak RSS
of the emulator process (``VmHWM``). Run directly: ``.venv/bin/python tests/emulator/emulator_scale.py``."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from typing import Any

import httpx2

EMULATOR_CMD = [
    sys.executable, "-c", "import sys; from batchline.cli import main; sys.exit(main(sys.argv[1:]))",
    "emulator", "--port", "0", "--processing-seconds", "1", "--log-level", "warning",
]  # fmt: skip


def build_body(n: int, prompt_bytes: int) -> bytes:
    """A create body of ``n`` requests with prompts of about ``prompt_bytes`` each."""
    filler = "lorem ipsum " * (prompt_bytes // 12)
    parts = []
    for i in range(n):
        params = {
            "model": "claude-haiku-4-5",
            "max_tokens": 256,
            "messages": [{"role": "user", "content": f"request {i}: {filler}"}],
        }
        parts.append(json.dumps({"custom_id": f"req-{i:06d}", "params": params}))
    return b'{"requests":[' + ",".join(parts).encode() + b"]}"


def peak_rss_mb(pid: int) -> float:
    """The process's high-water mark of resident memory, MB."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM")


def measure(n: int = 100_000, prompt_bytes: int = 1_000) -> dict[str, Any]:
    """Start ``batchline emulator``, create, download everything; return counts, sizes, timings, RSS."""
    proc = subprocess.Popen(EMULATOR_CMD, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        base_url = proc.stdout.readline().split()[-1]
        body = build_body(n, prompt_bytes)
        idle_mb = peak_rss_mb(proc.pid)
        headers = {"x-api-key": "k", "content-type": "application/json"}
        t0 = time.monotonic()
        with httpx2.Client(base_url=base_url, timeout=600) as http:
            created = http.post("/v1/messages/batches", content=body, headers=headers)
            assert created.status_code == 200, created.text
            t_create = time.monotonic() - t0
            after_create_mb = peak_rss_mb(proc.pid)
            batch_id = created.json()["id"]
            while (b := http.get(f"/v1/messages/batches/{batch_id}", headers=headers).json())[
                "processing_status"
            ] != "ended":
                time.sleep(0.2)
            t1 = time.monotonic()
            lines = 0
            with http.stream("GET", b["results_url"], headers=headers) as r:
                for chunk in r.iter_bytes():
                    lines += chunk.count(b"\n")
            t_results = time.monotonic() - t1
        return {
            "requests": n,
            "body_mb": round(len(body) / 1e6, 1),
            "result_lines": lines,
            "create_s": round(t_create, 1),
            "results_s": round(t_results, 1),
            "idle_rss_mb": round(idle_mb),
            "peak_rss_after_create_mb": round(after_create_mb),
            "peak_rss_mb": round(peak_rss_mb(proc.pid)),
        }
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        if proc.stdout is not None:
            proc.stdout.close()


if __name__ == "__main__":
    print(json.dumps(measure(*(int(a) for a in sys.argv[1:])), indent=2))
