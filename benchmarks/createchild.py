"""The aggregator process of the large-batch benchmark: one `pack_once` of requests kept by reference
(bodies streamed from S3), peak RSS reported.

Run: python -m benchmarks.createchild SETTINGS_JSON; prints one JSON line.
"""

from __future__ import annotations

import json
import sys
import time

from benchmarks.memchild import status_kb


def main() -> None:
    from batchline import log
    from batchline.config.settings import Settings
    from batchline.workers import aggregator
    from batchline.workers.context import Context

    log.configure("WARNING", "console")
    ctx = Context(Settings(**json.loads(sys.argv[1])))
    ctx.redis.ping()
    ctx.anthropic  # noqa: B018 - build the clients (and their imports) before the baseline
    ctx.params_store  # noqa: B018
    before = status_kb("VmRSS")
    t0 = time.perf_counter()
    created = aggregator.pack_once(ctx)
    elapsed = time.perf_counter() - t0
    assert created is not None
    print(json.dumps({"outcome": created.outcome, "requests": created.requests, "bytes": created.bytes,
                      "seconds": elapsed, "before_rss_kb": before, "peak_hwm_kb": status_kb("VmHWM")}))


if __name__ == "__main__":
    main()
