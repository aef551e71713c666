"""The result worker process of the memory benchmark: one `results.collect`, peak RSS reported.

Run: python -m benchmarks.memchild SETTINGS_JSON BATCH_ID; prints one JSON line.
"""

from __future__ import annotations

import json
import resource
import sys
import time


def status_kb(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def main() -> None:
    from batchline import log
    from batchline.config.settings import Settings
    from batchline.workers import results
    from batchline.workers.context import Context

    log.configure("WARNING", "console")
    settings = Settings(**json.loads(sys.argv[1]))
    bid = sys.argv[2]
    ctx = Context(settings)
    ctx.redis.ping()
    ctx.anthropic  # noqa: B018 - build the client (and its imports) before the baseline
    before_rss = status_kb("VmRSS")
    before_hwm = status_kb("VmHWM")
    t0 = time.perf_counter()
    report = results.collect(ctx, bid)
    elapsed = time.perf_counter() - t0
    print(
        json.dumps(
            {
                "before_rss_kb": before_rss,
                "before_hwm_kb": before_hwm,
                "after_rss_kb": status_kb("VmRSS"),
                "peak_hwm_kb": status_kb("VmHWM"),
                "ru_maxrss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                "lines": report.lines,
                "delivered": report.delivered,
                "status": report.status,
                "seconds": elapsed,
            }
        )
    )


if __name__ == "__main__":
    main()
