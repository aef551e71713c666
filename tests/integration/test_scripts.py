"""Every Lua script from every state, against the real Redis: the moves it makes are the ones
`states.py` allows, and no other (the compare-and-set guards and the transition table are one rule)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import redis

from batchline.fields import B, R
from batchline.keys import Keys
from batchline.leases import HANDOFF
from batchline.scripts import NAMES, DeliverRow, Scripts, source
from batchline.states import BATCH_TRANSITIONS, REQUEST_TRANSITIONS, BatchState, RequestState, can_move

NOW = 1_700_000_000_000
RID, BID, OWNER = "r0", "b0", "me"


@pytest.fixture
def env(settings, redis_client) -> tuple[Scripts, Keys, redis.Redis]:
    keys = Keys(settings.key_prefix)
    return Scripts(redis_client, keys), keys, redis_client


def deliver(action: str) -> Callable[[Scripts], object]:
    row = DeliverRow(RID, action, "succeeded", "", "", "c0", "t0", "{}", "{}", "", "")
    return lambda s: s.deliver(BID, NOW, 60, "2026-01-01", 0, [row])


# script -> (the batch move it makes, how to call it)
BATCH_MOVES: dict[str, tuple[BatchState, Callable[[Scripts], object]]] = {
    "intent": (BatchState.CREATING, lambda s: s.intent(BID, OWNER, NOW, NOW + 1000)),
    "submitted": (BatchState.SUBMITTED, lambda s: s.submitted(BID, "msgbatch_1", NOW, OWNER)),
    "ended": (BatchState.ENDED, lambda s: s.ended(BID, NOW, "{}", "", NOW + 1000)),
    "release": (BatchState.RELEASED, lambda s: s.release(BID, NOW, "test", OWNER)),
    "finish": (BatchState.DELIVERED, lambda s: s.finish(BID, OWNER, NOW, 1, 60)),
}

# script -> (the state its batch must be in, the request move it makes, how to call it, cancel flag)
REQUEST_MOVES: dict[str, tuple[BatchState | None, RequestState, Callable[[Scripts], object], bool]] = {
    "claim": (None, RequestState.BATCHED, lambda s: s.claim("b-new", OWNER, 10, 10_000, NOW, NOW + 1000), False),
    "submitted": (BatchState.CREATING, RequestState.SUBMITTED, BATCH_MOVES["submitted"][1], False),
    "release": (BatchState.CLAIMED, RequestState.QUEUED, BATCH_MOVES["release"][1], False),
    "deliver": (BatchState.ENDED, RequestState.DELIVERED, deliver("D"), False),
    "deliver, re-drive": (BatchState.ENDED, RequestState.QUEUED, deliver("R"), False),
    "deliver, its target refused it": (BatchState.ENDED, RequestState.UNDELIVERABLE, deliver("U"), False),
    "redeliver": (BatchState.DELIVERED, RequestState.DELIVERED, lambda s: s.redeliver(NOW, "{}", 0, [(RID, "sent")]),
                  False),
    # webhook and SQS targets: through the outbox (external.lua settles each send)
    "deliver, external target": (BatchState.ENDED, RequestState.DELIVERING, deliver("W"), False),
    "external, delivered": (None, RequestState.DELIVERED, lambda s: s.external(NOW, 60, [(RID, "D", 0, "")]), False),
    "external, refused": (None, RequestState.UNDELIVERABLE, lambda s: s.external(NOW, 60, [(RID, "U", 0, "410")]),
                          False),
    "external, later": (None, RequestState.DELIVERING, lambda s: s.external(NOW, 60, [(RID, "L", NOW, "503")]),
                        False),
    "redeliver, external": (BatchState.DELIVERED, RequestState.DELIVERING,
                            lambda s: s.redeliver(NOW, "{}", 0, [(RID, "outbox")]), False),
    # a queued request canceled moves to the cancel batch; its `canceled` is delivered from there
    "cancel": (None, RequestState.BATCHED, lambda s: s.cancel([RID], NOW, 60, "{}"), False),
    # deadlines (route.lua): a queued request taken real-time, or hedged while still queued
    "route, real-time": (None, RequestState.BATCHED, lambda s: s.route(NOW, NOW + 1000, [(RID, "T", "", "{}")]),
                         False),
    "route, hedge": (None, RequestState.BATCHED, lambda s: s.route(NOW, NOW + 1000, [(RID, "H", "", "{}")]), False),
    "route, batch": (None, RequestState.QUEUED, lambda s: s.route(NOW, NOW + 1000, [(RID, "B", "", "{}")]), False),
    "route, late": (None, RequestState.QUEUED, lambda s: s.route(NOW, NOW + 1000, [(RID, "L", "", "{}")]), False),
}


def put_batch(client: redis.Redis, keys: Keys, state: str) -> None:
    client.hset(keys.batch(BID), mapping={B.STATE: state, B.N: 1, B.INTENT_AT: NOW, B.LEASE_OWNER: OWNER,
                                          B.LEASE_UNTIL: NOW + 1000})
    client.zadd(keys.leases, {BID: NOW - 1})
    client.rpush(keys.batch_members(BID), RID)


def put_request(client: redis.Redis, keys: Keys, state: str, cancel: bool) -> None:
    client.hset(keys.request(RID), mapping={R.STATE: state, R.BATCH: BID, R.SIZE: 10, R.TENANT: "t0",
                                             R.CUSTOM_ID: "c0", R.PARAMS: "{}", R.OUTCOME: "succeeded"})
    if cancel:
        client.hset(keys.request(RID), R.CANCEL, "1")
    if state == "queued":  # waiting in its tenant's list, counted as intake.lua leaves it
        client.rpush(keys.pending_of("t0"), RID)
        client.zadd(keys.pending_tenants, {"t0": NOW})
        client.hset(keys.stats, mapping={"pending": 1, "pending_bytes": 10})


def edges(table) -> set[tuple[str, str]]:
    return {(str(a), str(b)) for a, targets in table.items() for b in targets}


def test_batch_scripts_make_exactly_the_moves_of_the_table(env):
    scripts, keys, client = env
    seen: set[tuple[str, str]] = set()
    for script, (target, call) in BATCH_MOVES.items():
        for state in BatchState:
            client.flushdb()
            put_batch(client, keys, state)
            call(scripts)
            after = (client.hget(keys.batch(BID), B.STATE) or b"").decode()
            if after != state:
                assert after == target and can_move(BATCH_TRANSITIONS, state, after), (script, str(state), after)
                seen.add((str(state), after))
    assert seen == edges(BATCH_TRANSITIONS)


def test_request_scripts_make_exactly_the_moves_of_the_table(env):
    scripts, keys, client = env
    seen: set[tuple[str, str]] = set()
    for script, (batch_state, target, call, cancel) in REQUEST_MOVES.items():
        for state in RequestState:
            client.flushdb()
            if batch_state is not None:
                put_batch(client, keys, batch_state)
            put_request(client, keys, state, cancel)
            call(scripts)
            after = (client.hget(keys.request(RID), R.STATE) or b"").decode()
            if after != state:
                assert after == target and can_move(REQUEST_TRANSITIONS, state, after), (script, str(state), after)
                seen.add((str(state), after))
    # a request's `ended` is never written: `batchline status` derives it from its batch's state
    assert seen == edges(REQUEST_TRANSITIONS) - {("submitted", "ended")}


def test_every_script_is_loaded_at_start_and_a_broken_one_fails_there(env, monkeypatch):
    _, keys, client = env
    client.script_flush()
    Scripts(client, keys)
    assert all(client.script_exists(*[redis.client.Redis.register_script(client, source(n)).sha for n in NAMES]))
    source.cache_clear()
    monkeypatch.setattr("batchline.scripts.NAMES", (*NAMES, "no_such_script"))
    with pytest.raises(FileNotFoundError):
        Scripts(client, keys)
    monkeypatch.setattr("batchline.scripts.NAMES", ("intake",))
    monkeypatch.setattr("batchline.scripts.source", lambda name: "this is not lua")
    with pytest.raises(RuntimeError, match=r"batchline/lua/intake\.lua"):
        Scripts(client, keys)


LEASED_MOVES: dict[str, tuple[BatchState, Callable[[Scripts, str], object], BatchState]] = {
    "intent": (BatchState.CLAIMED, lambda s, who: s.intent(BID, who, NOW, NOW + 5000), BatchState.CREATING),
    "submitted": (BatchState.CREATING, lambda s, who: s.submitted(BID, "msgbatch_1", NOW, who), BatchState.SUBMITTED),
    "release": (BatchState.CREATING, lambda s, who: s.release(BID, NOW, "test", who), BatchState.RELEASED),
    "finish": (BatchState.ENDED, lambda s, who: s.finish(BID, who, NOW, 1, 60), BatchState.DELIVERED),
}


@pytest.mark.parametrize("script", LEASED_MOVES)
def test_a_lease_lets_only_its_holder_move_the_batch_until_it_expires(env, script):
    scripts, keys, client = env
    start, call, target = LEASED_MOVES[script]
    for who, lease_until, moves in [("other", NOW + 1, False), ("", NOW + 1, False), (OWNER, NOW + 1, True),
                                    (OWNER, NOW - 1, True), ("other", NOW, True), ("", NOW - 1, True)]:
        client.flushdb()
        put_batch(client, keys, start)
        client.hset(keys.batch(BID), B.LEASE_UNTIL, lease_until)
        call(scripts, who)
        after = client.hget(keys.batch(BID), B.STATE).decode()
        assert (after == target) == moves, (script, who, lease_until, after)
        if moves and target != BatchState.CREATING:  # a settled batch holds no lease any more
            assert client.hget(keys.batch(BID), B.LEASE_OWNER) is None


def test_a_hand_off_lease_is_taken_over_by_a_collector_and_a_collect_lease_is_not(env):
    scripts, keys, client = env
    put_batch(client, keys, BatchState.SUBMITTED)
    assert scripts.ended(BID, NOW, "{}", "", NOW + 1000)
    handoff = client.hget(keys.batch(BID), B.LEASE_OWNER).decode()
    assert handoff.startswith(HANDOFF)
    # a second hand-off (another sweeper) waits while the first is fresh; a collector takes it over
    assert not scripts.lease(keys.batch(BID), "handoff:x", NOW, NOW + 1000, state="ended")
    assert scripts.lease(keys.batch(BID), "c1", NOW, NOW + 1000, state="ended", take_over=HANDOFF)
    assert not scripts.lease(keys.batch(BID), "c2", NOW, NOW + 1000, state="ended", take_over=HANDOFF)
    assert scripts.lease(keys.batch(BID), "c1", NOW + 500, NOW + 1500, state="ended")  # renewed by its holder
    assert not scripts.lease(keys.batch(BID), "c2", NOW + 1499, NOW + 2000, state="ended", take_over=HANDOFF)
    assert scripts.lease(keys.batch(BID), "c2", NOW + 1500, NOW + 2500, state="ended", take_over=HANDOFF)
    assert not scripts.lease(keys.batch(BID), "c1", NOW + 1600, NOW + 2600, state="ended")  # c1 lost it
    assert not scripts.lease(keys.batch(BID), "c3", NOW, NOW + 1000, state="submitted")  # wrong state


@pytest.mark.parametrize("state", list(RequestState))
def test_route_fall_back_moves_only_a_request_of_the_realtime_batch(env, state):
    """route.lua 'F': a request taken real-time goes back to its tenant's list (head), counted pending
    again; from any other batch or state nothing moves (a hedged one stays in its batch)."""
    from batchline.keys import REALTIME_BATCH

    scripts, keys, client = env
    for bid in (REALTIME_BATCH, BID):
        client.flushdb()
        put_request(client, keys, state, cancel=False)
        client.hset(keys.request(RID), R.BATCH, bid)
        client.rpush(keys.pending_of("t0"), "other")
        client.zadd(keys.realtime, {RID: NOW + 1000})
        (code,) = scripts.route(NOW, 0, [(RID, "F", "why", "{}")])
        after = client.hget(keys.request(RID), R.STATE).decode()
        assert not client.zscore(keys.realtime, RID)
        if bid == REALTIME_BATCH and state == "batched":
            assert (code, after) == ("back", "queued") and can_move(REQUEST_TRANSITIONS, state, after)
            assert client.lindex(keys.pending_of("t0"), 0) == RID.encode()
            assert client.hget(keys.stats, "pending") == b"1"
        else:
            assert (code, after) == ("released", state)


def test_route_twice_from_two_passes_takes_once_and_keeps_the_first_path(env):
    """The route tick and a pack may read the same slice of new deadline requests: the second 'T' finds
    the request taken and leaves it (its path, its real-time lease) as the first pass set them."""
    from batchline.keys import REALTIME_BATCH

    scripts, keys, client = env
    put_request(client, keys, "queued", cancel=False)
    client.zadd(keys.deadlines_new, {RID: NOW + 60_000})
    assert scripts.route(NOW, NOW + 1000, [(RID, "T", "first", "{}")]) == ["taken"]
    assert scripts.route(NOW, NOW + 1000, [(RID, "T", "second", "{}")]) == ["gone"]
    rec = client.hmget(keys.request(RID), R.STATE, R.BATCH, R.PATH, R.PATH_REASON)
    assert rec == [b"batched", REALTIME_BATCH.encode(), b"realtime", b"first"]
    assert not client.zscore(keys.deadlines_watch, RID) and client.hget(keys.stats, "pending") == b"0"
