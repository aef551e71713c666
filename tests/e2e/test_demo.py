"""`batchline demo` as a user runs it: a real process that starts the whole pipeline and must deliver its sample."""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import sys
import threading
import time

import httpx2
import pytest
import redis

from batchline.config.settings import Settings
from batchline.demo import SAMPLE
from batchline.demo_flower import FlowerView, finished, idle
from batchline.producers.producer import Producer
from batchline.workers.task_summary import parse

SIZE = 150
FLOWER_LINE = re.compile(r"Flower: (?P<url>http://127\.0\.0\.1:\d+) \(user (?P<user>\S+), password (?P<password>\S+)\)")


def demo(args: list[str], env: dict[str, str], timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "batchline.cli", "demo", *args], env=env, capture_output=True,
                          text=True, timeout=timeout)


def demo_env(redis_server, db: int) -> tuple[str, dict[str, str]]:
    """An emptied Redis db of the session server, and the environment a user's shell would give the demo."""
    url = redis_server.url.rsplit("/", 1)[0] + f"/{db}"
    redis.Redis.from_url(url).flushdb()
    return url, {**{k: v for k, v in os.environ.items() if not k.startswith(("BATCHLINE_", "ANTHROPIC_"))},
                 "BATCHLINE_REDIS_URL": url, "COLUMNS": "200"}


@pytest.mark.e2e
def test_demo_delivers_every_accepted_request(redis_server, tmp_path):
    url, env = demo_env(redis_server, 3)
    done = demo(["--limit", str(SIZE), "--documents", "0", "--timeout", "150", "--keep-logs", str(tmp_path / "logs")], env)
    out = done.stdout
    assert done.returncode == 0, out[-3000:] + done.stderr[-3000:]
    counts = re.search(r"accepted (\d+), delivered (\d+) \(.*\), delivered twice (\d+)", out)
    assert counts, out[-2000:]
    accepted, delivered, twice = map(int, counts.groups())
    assert accepted == delivered == SIZE and twice == 0
    # And Redis agrees: every request of the sample's first SIZE lines is delivered, with an outcome.
    prefix = re.search(r"key prefix (\S+)", out).group(1)
    producer = Producer.from_settings(Settings(redis_url=url, key_prefix=prefix))
    lines = [json.loads(x) for x in SAMPLE.read_text().splitlines()[:SIZE]]
    states = [producer.status(item["custom_id"], tenant=item.get("tenant", "default")) for item in lines]
    assert all(s is not None and s["state"] == "delivered" and s["outcome"] for s in states)
    streams = {s["reply_to"].removeprefix("redis-stream:") for s in states}
    assert sum(producer.redis.xlen(s) for s in streams) == SIZE
    producer.close()


@pytest.mark.parametrize("content", [None, "{not json\n", "[1, 2]\n", ""])
def test_demo_refuses_a_bad_file_in_one_line(tmp_path, content):
    path = tmp_path / "requests.jsonl"
    if content is not None:
        path.write_text(content)
    done = demo(["--file", str(path)], dict(os.environ), timeout=30)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"batchline demo: --file {path}"), done.stderr
    assert "Traceback" not in done.stderr and done.stdout == ""


@pytest.mark.e2e
def test_demo_with_flower_lists_the_work_not_the_ticks(redis_server, tmp_path):
    """`batchline demo --flower` as a newcomer watches it: Flower's own API, read all through the run,
    lists tasks of which at least 90% did work; their kwargs and results name batches and counts, never
    a key or a result body."""
    url = redis_server.url.rsplit("/", 1)[0] + "/5"
    redis.Redis.from_url(url).flushdb()
    env = {**{k: v for k, v in os.environ.items() if not k.startswith(("BATCHLINE_", "ANTHROPIC_", "FLOWER_"))},
           "BATCHLINE_REDIS_URL": url, "COLUMNS": "200", "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "batchline.cli", "demo", "--flower", "--limit", "600",
                             "--documents", "0", "--timeout", "150", "--keep-logs", str(tmp_path / "logs")], env=env, text=True,
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True)
    reader.start()
    view, tasks, deadline = None, {}, time.monotonic() + 240
    while proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.5)
        if view is None:
            found = next(filter(None, (FLOWER_LINE.search(x) for x in list(lines))), None)
            view = found and FlowerView(found["url"], found["user"], found["password"])
            if view:  # it answers only with the printed credentials
                assert httpx2.get(f"{view.url}/api/tasks", timeout=5).status_code == 401
            continue
        with contextlib.suppress(httpx2.HTTPError):
            tasks.update(view.tasks(timeout=2))
    if proc.poll() is None:
        proc.kill()
    reader.join(10)
    out = "".join(lines)
    assert proc.wait() == 0, out[-3000:]
    assert view is not None, out[-2000:]
    with pytest.raises(httpx2.HTTPError):  # the demo stopped its Flower with the rest
        FlowerView(view.url, view.user, view.password).tasks(timeout=2)

    done = finished(tasks)
    names = {t["name"] for t in done}
    assert {"batchline.aggregator.pack", "batchline.poller.poll", "batchline.results.collect"} <= names, names
    worked = len(done) - len(idle(tasks))
    assert worked / len(done) >= 0.9, [(t["name"], t["result"]) for t in idle(tasks)]
    # the webhook part: its sends went by the send task the hand-off dispatched, and no outbox tick
    # found its sends already taken (the hand-off holds them for the task)
    assert "batchline.delivery.send" in names, names
    idle_delivery = [(t["name"], t["result"]) for t in idle(tasks) if t["name"].startswith("batchline.delivery.")]
    assert not idle_delivery, idle_delivery
    printed = re.search(r"Flower: (\d+) finished tasks listed, (\d+) did work", out)
    print(printed and printed[0])
    assert printed and int(printed[2]) <= int(printed[1]) and int(printed[2]) / int(printed[1]) >= 0.9, out[-2000:]
    for t in done:
        shown = f"{t.get('args')} {t.get('kwargs')} {t.get('result')}"
        assert "emulator-demo-key" not in shown and "blk_" not in shown and view.password not in shown, shown
        assert "Reply " not in shown and "'content'" not in shown and "usage" not in shown, shown
        assert len(shown) < 2000, shown
    collected = [parse(t["result"]) for t in done if t["name"] == "batchline.results.collect"]
    assert sum(c["lines"] for c in collected) == 720  # 600 of the sample, the gateway's 20, the webhooks' 100
    assert all(c["batch_id"].startswith("blb_") for c in collected)


@pytest.mark.e2e
def test_demo_runs_the_document_sample(redis_server, tmp_path):
    _, env = demo_env(redis_server, 4)
    done = demo(["--limit", "10", "--documents", "200", "--timeout", "200", "--keep-logs", str(tmp_path / "logs")],
                env, timeout=300)
    out = done.stdout
    assert done.returncode == 0, out[-3000:] + done.stderr[-3000:]
    assert "Submitted 200 documents of ~1 MB" in out and "accepted 200, rejected 0" in out
    counts = re.search(r"accepted (\d+), delivered (\d+) \(.*\), delivered twice (\d+)", out)
    assert counts, out[-2000:]
    accepted, delivered, twice = map(int, counts.groups())
    assert accepted == delivered == 210 and twice == 0
