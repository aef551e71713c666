"""The chaos suite: one fault per run, real worker and beat processes, the emulator over HTTP, a
redis-server with AOF on. Each run asserts nothing lost, nothing delivered twice, nothing billed
twice except deliberate re-drives; `make chaos` also writes the table to docs/chaos.md."""

from __future__ import annotations

import time

import pytest

from batchline.hooks import POINTS
from batchline.local_services import RedisServer
from tests.e2e.chaos import Chaos

pytestmark = pytest.mark.e2e
PER_TENANT = 1000


def check_logs(procs) -> None:
    """Errors included, the logs never carry the API key, the AWS secret or prompt text."""
    for proc in procs:
        log = proc.log()
        for secret in ("sk-e2e-secret-key", "testing-secret-value", "chaos item"):
            assert secret not in log, f"{secret!r} in the log of {proc.args}"


def check(result, allow_redrive: bool = False) -> None:
    assert result.lost == 0, result
    assert result.duplicated == 0, result
    assert result.billed_twice == result.redriven, result  # only deliberate re-drives go twice
    if not allow_redrive:
        assert result.billed_twice == 0, result


def start(processes, env, workers: int = 1, beats: int = 1):
    procs = [processes(["worker", "--role", "all", "--concurrency", "2"], env) for _ in range(workers)]
    procs += [processes(["beat"], env) for _ in range(beats)]
    return procs


@pytest.mark.parametrize("point", POINTS)
def test_sigkill_at_each_step(chaos_env, emulator, processes, chaos_report, point):
    env = {**chaos_env, "BATCHLINE_TEST_CRASH_AT": point}
    chaos = Chaos(env, emulator, PER_TENANT)
    procs = start(processes, env)
    t0 = time.monotonic()
    chaos.submit()
    chaos.wait(lambda: chaos.delivered_count() >= 2 * PER_TENANT, 120, "all delivered", procs)
    assert chaos.client.exists(f"{env['BATCHLINE_KEY_PREFIX']}:crashed:{point}"), "the crash point was not reached"
    result = chaos.measure(f"SIGKILL worker child at {point}", t0)
    chaos_report.append(result)
    check_logs(procs)
    check(result)


def test_sigkill_whole_worker_and_beat_mid_run(chaos_env, emulator, processes, chaos_report):
    emulator.set_faults(processing_seconds=1.5)  # batches in flight when the kill comes
    chaos = Chaos(chaos_env, emulator, PER_TENANT)
    worker, beat = start(processes, chaos_env)
    chaos.submit()
    chaos.wait(lambda: chaos.batches_submitted() >= 1, 60, "a batch submitted", [worker, beat])
    assert chaos.delivered_count() < 2 * PER_TENANT, "the fault must land mid-run"
    t0 = time.monotonic()
    worker.kill()
    beat.kill()
    procs = start(processes, chaos_env)
    chaos.wait(lambda: chaos.delivered_count() >= 2 * PER_TENANT, 120, "all delivered", procs)
    result = chaos.measure("SIGKILL whole worker and beat, then restart", t0)
    chaos_report.append(result)
    check(result)


def test_two_beats_and_two_workers_at_once(chaos_env, emulator, processes, chaos_report):
    chaos = Chaos(chaos_env, emulator, PER_TENANT)
    procs = start(processes, chaos_env, workers=2, beats=2)
    t0 = time.monotonic()
    chaos.submit()
    chaos.wait(lambda: chaos.delivered_count() >= 2 * PER_TENANT, 120, "all delivered", procs)
    result = chaos.measure("two beats (two pollers) and two workers at once", t0)
    chaos_report.append(result)
    check(result)


def test_sigkill_redis_under_load(chaos_env, emulator, processes, chaos_report):
    server = RedisServer(appendonly=True).start()
    try:
        env = {**chaos_env, "BATCHLINE_REDIS_URL": server.url}
        emulator.set_faults(processing_seconds=1.5)  # batches in flight when the kill comes
        chaos = Chaos(env, emulator, PER_TENANT)
        chaos.submit()
        time.sleep(1.2)  # AOF everysec: an acknowledged submission is on disk a second later
        procs = start(processes, env)
        chaos.wait(lambda: chaos.batches_submitted() >= 1, 60, "a batch submitted", procs)
        assert chaos.delivered_count() < 2 * PER_TENANT, "the fault must land mid-run"
        t0 = time.monotonic()
        server.kill()
        time.sleep(1.0)
        server.start()
        chaos.wait(lambda: chaos.delivered_count() >= 2 * PER_TENANT, 120, "all delivered", procs)
        restarts = sum(p.restarts for p in procs)
        result = chaos.measure("SIGKILL redis-server under load, restart (AOF)"
                               + (f"; {restarts} process restart(s) by the supervisor" if restarts else ""), t0)
        chaos_report.append(result)
        check(result)
    finally:
        server.stop()


FAULTS = {
    "HTTP 429/529/500 on 30% of calls": (dict(http_429_rate=0.1, http_529_rate=0.1, http_500_rate=0.1), None),
    "404 for 3 s on fresh batches": (dict(fresh_404_seconds=3.0, fresh_404_real_time=True), None),
    "results streams cut after 300 lines, for 4 s": (dict(results_cut_after=300), dict(results_cut_after=None)),
    "spend cap reached for 4 s": (dict(spend_limit_reached=True), dict(spend_limit_reached=False)),
    "2% of requests expire, 3% overloaded_error": (
        dict(expire_rate=0.02, error_rates={"overloaded_error": 0.03}, clock_speed=20_000.0,
             processing_seconds=600.0), None),
}


@pytest.mark.parametrize("name", list(FAULTS))
def test_provider_faults(chaos_env, emulator, processes, chaos_report, name):
    faults, lifted = FAULTS[name]
    emulator.set_faults(**faults)
    chaos = Chaos(chaos_env, emulator, PER_TENANT)
    procs = start(processes, chaos_env)
    t0 = time.monotonic()
    chaos.submit()
    if lifted is not None:  # keep the fault on until it has bitten, and 4 s at least
        chaos.wait(lambda: sum(emulator.books()["http_faults"].values()) > 0, 60, "the fault to bite", procs)
        time.sleep(max(0.0, 4.0 - (time.monotonic() - t0)))
        emulator.set_faults(**lifted)
    chaos.wait(lambda: chaos.delivered_count() >= 2 * PER_TENANT, 150, "all delivered", procs)
    result = chaos.measure(name, t0)
    chaos_report.append(result)
    check_logs(procs)
    assert result.faults, "the emulator injected nothing: the run proves nothing"
    check(result, allow_redrive="expire" in name)


# A busy, shared, misbehaving workspace. Each: (emulator faults, faults lifted once they bit (None: kept
# all run), env, foreign batches made at the start). Foreign batches from the generator appear as the
# emulator is called (each create call finds one created just before it: inside its window).
WORKSPACE = {
    "another app's batches of our size every 1 s; creates fail before creating until one did": (
        dict(foreign_batch_requests=500, foreign_every_real_seconds=1.0, http_500_rate=1.0,
             fault_operations=("create",)), dict(http_500_rate=0.0), {}, 0),
    "another app's batches of our size every 1 s; creates answer 500 after creating until one did": (
        dict(foreign_batch_requests=500, foreign_every_real_seconds=1.0, create_lost_reply_rate=1.0),
        dict(create_lost_reply_rate=0.0), {}, 0),
    "list pages of 5 with 300 foreign batches; creates answer 500 after creating until one did": (
        dict(list_page_max=5, create_lost_reply_rate=1.0), dict(create_lost_reply_rate=0.0), {}, 300),
    "15% of every operation faulted (429/529/500)": (
        dict(http_429_rate=0.05, http_529_rate=0.05, http_500_rate=0.05), None, {}, 0),
    "relative results_url behind a base URL with a path": (
        dict(mount_path="/anthropic", results_url_mode="relative"), None, {"mount": "/anthropic"}, 0),
    "results 404 for every batch (final outcome results_unavailable)": (
        dict(results_404=True), None, {"BATCHLINE_RESULTS_404_RETRIES": "2"}, 0),
}


@pytest.mark.chaos
@pytest.mark.parametrize("name", list(WORKSPACE))
def test_shared_workspace(chaos_env, emulator, processes, chaos_report, name):
    faults, lifted, extra, foreign_at_start = WORKSPACE[name]
    env = {**chaos_env, **{k: v for k, v in extra.items() if k != "mount"}}
    if "mount" in extra:
        env["ANTHROPIC_BASE_URL"] = emulator.base_url + extra["mount"]
    emulator.set_faults(**faults)
    if foreign_at_start:
        import httpx2

        httpx2.post(f"{emulator.base_url}/_emulator/foreign", json={"batches": foreign_at_start, "requests": 500})
    chaos = Chaos(env, emulator, PER_TENANT)
    procs = start(processes, env)
    t0 = time.monotonic()
    chaos.submit()
    if lifted is not None:
        chaos.wait(lambda: sum(emulator.books()["http_faults"].values()) > 0, 60, "the fault to bite", procs)
        emulator.set_faults(**lifted)
    chaos.wait(lambda: chaos.delivered_count() >= 2 * PER_TENANT, 180, "all delivered", procs)
    time.sleep(1.0)  # a second delivery would show by now
    result = chaos.measure(name, t0)
    chaos_report.append(result)
    check_logs(procs)
    check(result)
    assert result.faults or "relative" in name, "the emulator injected nothing: the run proves nothing"
    foreign = emulator.books()["foreign"]
    assert foreign["canceled"] == 0 and foreign["deleted"] == 0, foreign
    if "404" in name:
        assert result.outcomes == {"errored": 2 * PER_TENANT}
    else:
        assert result.outcomes == {"succeeded": 2 * PER_TENANT}


@pytest.mark.chaos
def test_40_cancels_right_after_submission(chaos_env, emulator, processes, chaos_report):
    from batchline.config.settings import Settings
    from batchline.producers.producer import Producer
    from tests.e2e.chaos import TENANTS

    emulator.set_faults(processing_seconds=1.0)
    chaos = Chaos(chaos_env, emulator, PER_TENANT)
    procs = start(processes, chaos_env)
    t0 = time.monotonic()
    chaos.submit()
    producer = Producer.from_settings(Settings.from_env(chaos_env))
    codes = [producer.cancel(f"c-{i * 47 % PER_TENANT}", tenant=TENANTS[i % 2]) for i in range(40)]
    producer.close()
    chaos.wait(lambda: chaos.delivered_count() >= 2 * PER_TENANT, 120, "all delivered", procs)
    time.sleep(1.0)  # a second delivery would show by now
    result = chaos.measure(f"40 cancels right after submission ({', '.join(f'{c} {codes.count(c)}' for c in sorted(set(codes)))})", t0)
    chaos_report.append(result)
    check(result)
    assert result.outcomes.get("canceled", 0) >= codes.count("removed")
    assert result.outcomes.get("canceled", 0) + result.outcomes.get("succeeded", 0) == 2 * PER_TENANT
