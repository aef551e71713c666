"""The `batchline` command: one entry point, a sub-command per role.

Each sub-command lives in the module that owns it and exposes `add_arguments(parser)` and
`run(args) -> int`; imports are lazy so that `batchline submit` on a producer host never
imports Celery, boto3 or the emulator.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from batchline.errors import RetryableError

# name -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "submit": ("batchline.producers.submit_cli", "submit a JSONL file of requests"),
    "status": ("batchline.producers.status_cli", "show a request's state, or the pipeline's"),
    "cancel": ("batchline.producers.cancel_cli", "cancel a request, or every request of a batch"),
    "costs": ("batchline.costs_cli", "what was spent, per day, tenant and model, vs standard prices"),
    "redeliver": ("batchline.workers.redeliver_cli", "send undeliverable requests again once their target is fixed"),
    "replay": ("batchline.workers.replay_cli", "send stored results from S3 again, to any reply target"),
    "metrics": ("batchline.metrics", "serve Prometheus metrics computed from Redis"),
    "flower": ("batchline.workers.run_flower", "start Flower (basic auth from the environment)"),
    "worker": ("batchline.workers.run", "start a Celery worker for one role or all"),
    "health": ("batchline.workers.health", "liveness: does this worker still consume? (for probes)"),
    "beat": ("batchline.workers.run_beat", "start Celery beat (one per deployment)"),
    "emulator": ("batchline.emulator.server", "run the local Message Batches API stand-in"),
    "tenants": ("batchline.tenants_cli", "manage tenants, their API keys and quotas"),
    "gateway": ("batchline.gateway.server", "serve the Anthropic-compatible batches API for tenants"),
    "demo": ("batchline.demo", "run the whole pipeline locally on embedded defaults"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="batchline", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (module_name, help_text) in COMMANDS.items():
        sp = sub.add_parser(name, help=help_text, description=help_text)
        sp.set_defaults(_module=module_name)
        # Arguments are added lazily below, only for the command actually used.
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    if argv and argv[0] in COMMANDS:
        module = importlib.import_module(COMMANDS[argv[0]][0])
        sp = argparse.ArgumentParser(prog=f"batchline {argv[0]}", description=COMMANDS[argv[0]][1])
        module.add_arguments(sp)
        args = sp.parse_args(argv[1:])
        try:
            return int(module.run(args) or 0)
        except RetryableError as exc:  # e.g. NotReplicated: nothing wrong with the input, try again
            print(f"batchline {argv[0]}: {exc}", file=sys.stderr)
            return 3
        except Exception as exc:
            from batchline.redis_client import unreachable

            message = unreachable(exc)
            if message is None:
                raise
            print(f"batchline {argv[0]}: {message}", file=sys.stderr)
            return 2
    parser.parse_args(argv)
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
