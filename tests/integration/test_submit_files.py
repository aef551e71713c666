"""`batchline submit` on files of any size, from a path and from standard input, with the progress bar on."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import uuid

import pytest

from batchline.config.settings import Settings
from batchline.keys import Keys
from batchline.pending import count as pending_count
from batchline.producers.producer import Producer
from batchline.producers.submit_cli import submit_file

LINES = 50_000


def jsonl(n: int, tag: str) -> bytes:
    return b"".join(
        json.dumps({"custom_id": f"{tag}-{i}", "params": {"model": "claude-haiku-4-5", "max_tokens": 8,
                    "messages": [{"role": "user", "content": f"line {i}"}]}}).encode() + b"\n"
        for i in range(n)
    )


def cli(args: list[str], env_url: str, prefix: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    env = {**os.environ, "BATCHLINE_REDIS_URL": env_url, "BATCHLINE_KEY_PREFIX": prefix}
    return subprocess.run([sys.executable, "-m", "batchline.cli", *args], input=stdin, env=env,
                          capture_output=True, timeout=240)


@pytest.mark.slow
@pytest.mark.parametrize("source", ["file", "stdin"])
def test_submit_50k_lines_with_progress(redis_server, redis_client, tmp_path, source):
    prefix = f"s{uuid.uuid4().hex[:6]}"
    body = jsonl(LINES, source)
    if source == "file":
        path = tmp_path / "big.jsonl"
        path.write_bytes(body)
        done = cli(["submit", str(path), "--tenant", "bulk", "--reply-to", "redis-stream:bulk-out"],
                   redis_server.url, prefix)
    else:
        done = cli(["submit", "-", "--tenant", "bulk", "--reply-to", "redis-stream:bulk-out"],
                   redis_server.url, prefix, stdin=body)
    out = done.stdout.decode()
    assert done.returncode == 0, (out, done.stderr.decode()[-2000:])
    assert f"accepted: {LINES}  duplicate: 0  rejected: 0" in out
    assert "submitting" in done.stderr.decode()  # the bar was on (it draws on stderr)
    assert pending_count(redis_client, Keys(prefix)) == LINES
    producer = Producer.from_settings(Settings(redis_url=redis_server.url, key_prefix=prefix))
    assert producer.status(f"{source}-{LINES - 1}", tenant="bulk")["state"] == "queued"
    producer.close()


def test_progress_advances_as_the_file_is_read(settings):
    producer = Producer.from_settings(settings)
    body = jsonl(12_000, "p")
    seen: list[tuple[int, int]] = []
    report, rejected = submit_file(producer, io.BytesIO(body), tenant="t", reply_to=None,
                                   progress=lambda c: seen.append((c.bytes, c.lines)))
    assert report.accepted == 12_000 and not rejected
    assert len(seen) >= 12  # one call per stored chunk of 1,000
    assert [b for b, _ in seen] == sorted(b for b, _ in seen) and seen[0][0] < len(body) // 2
    assert seen[-1][0] == len(body) and seen[-1][1] == 12_000
    producer.close()


def test_invalid_utf8_line_is_that_lines_rejection(settings):
    producer = Producer.from_settings(settings)
    body = jsonl(1, "u") + b'{"custom_id": "\xff\xfe"}\n' + jsonl(2, "v")
    report, rejected = submit_file(producer, io.BytesIO(body), tenant="t", reply_to=None, progress=None)
    assert report.accepted == 3
    assert [(r.index, r.field) for r in rejected] == [(2, "line")] and "UTF-8" in rejected[0].reason
    producer.close()
