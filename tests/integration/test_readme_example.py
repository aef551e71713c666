"""The README's Python example runs as written against a real Redis: the first thing a user copies works."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import uuid
from pathlib import Path

import redis

from batchline.config.settings import Settings
from batchline.keys import Keys
from batchline.pending import count as pending_count
from batchline.producers.producer import Producer

README = Path(__file__).resolve().parents[2] / "README.md"


def readme_example() -> str:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    example = next(b for b in blocks if "Producer.from_env()" in b)
    for call in ("submit(", "submit_many(", "status("):
        assert call in example, f"the README example no longer shows {call}"
    return example


def test_readme_python_example_runs_as_written(redis_server, tmp_path):
    prefix = f"readme{uuid.uuid4().hex[:6]}"
    script = tmp_path / "example.py"
    script.write_text(readme_example())
    env = {**os.environ, "BATCHLINE_REDIS_URL": redis_server.url, "BATCHLINE_KEY_PREFIX": prefix}
    done = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    # What it stored is what it says: the single request and the hundred of submit_many, queued.
    producer = Producer.from_settings(Settings(redis_url=redis_server.url, key_prefix=prefix))
    status = producer.status("invoice-0042", tenant="doc-extract")
    assert status is not None and status["state"] == "queued"
    assert status["reply_to"] == "redis-stream:extract-results"
    assert producer.status("invoice-0199", tenant="doc-extract")["reply_to"] == "celery:extract.handle@extract"
    lines = done.stdout.splitlines()
    assert lines[0] == "100 0 []"  # accepted, duplicate, rejected of submit_many
    assert "'state': 'queued'" in lines[1] and "invoice-0042" in lines[1]
    assert producer.status("long-0001", tenant="default")["state"] == "queued"  # the betas example
    assert pending_count(redis.Redis.from_url(redis_server.url), Keys(prefix)) == 102
    producer.close()
