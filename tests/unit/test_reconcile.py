"""The reconcile decision as a pure function: candidates, proofs, windows, tables of cases."""

from __future__ import annotations

import pytest

from batchline.workers.reconcile import (
    Action,
    Candidate,
    Intent,
    Listing,
    Proof,
    decide,
    intent_of,
    listed_back_far_enough,
    prove,
)

# A create of 10 requests: window 1,000..5,000 ms; releasable from 8,000 ms.
INTENT = Intent("blb_1", 10, window_start_ms=1_000, window_end_ms=5_000, release_after_ms=8_000)
OURS, THEIRS = Proof.OURS, Proof.NOT_OURS


def c(pid: str, size: int = 10, at: int = 2_000, ended: bool = True) -> Candidate:
    return Candidate(pid, size, at, ended)


CASES = [
    # (name, candidates, complete, proofs, taken, now, action, provider_id, to_prove)
    ("nothing listed, window open", [], True, {}, (), 6_000, Action.WAIT, None, ()),
    ("nothing listed, window passed", [], True, {}, (), 8_000, Action.RELEASE, None, ()),
    ("listing incomplete never releases", [], False, {}, (), 99_000, Action.WAIT, None, ()),
    (
        "other sizes and times are not candidates",
        [c("a", size=9), c("b", at=500), c("c", at=5_001)],
        True,
        {},
        (),
        9_000,
        Action.RELEASE,
        None,
        (),
    ),
    ("one same-size ended candidate: read its proof first", [c("a")], True, {}, (), 9_000, Action.WAIT, None, ("a",)),
    (
        "one candidate running: wait (size and time prove nothing)",
        [c("a", ended=False)],
        True,
        {},
        (),
        99_000,
        Action.WAIT,
        None,
        (),
    ),
    ("proven ours: adopt", [c("a")], True, {"a": OURS}, (), 3_000, Action.ADOPT, "a", ()),
    ("proven ours even before the window passed", [c("a")], False, {"a": OURS}, (), 3_000, Action.ADOPT, "a", ()),
    ("disproved: release once the window passed", [c("a")], True, {"a": THEIRS}, (), 9_000, Action.RELEASE, None, ()),
    ("disproved, window open: wait", [c("a")], True, {"a": THEIRS}, (), 7_000, Action.WAIT, None, ()),
    (
        "several same size: the proven one wins",
        [c("a"), c("b"), c("d")],
        True,
        {"a": THEIRS, "b": OURS},
        (),
        9_000,
        Action.ADOPT,
        "b",
        (),
    ),
    (
        "several same size: prove every ended one",
        [c("a"), c("b", ended=False), c("d")],
        True,
        {},
        (),
        9_000,
        Action.WAIT,
        None,
        ("a", "d"),
    ),
    (
        "one disproved, one running: wait for it",
        [c("a"), c("b", ended=False)],
        True,
        {"a": THEIRS},
        (),
        9_000,
        Action.WAIT,
        None,
        (),
    ),
    ("taken by another claim: not a candidate", [c("a")], True, {}, ("a",), 9_000, Action.RELEASE, None, ()),
    ("a proof of a taken batch does not count", [c("a")], True, {"a": OURS}, ("a",), 9_000, Action.RELEASE, None, ()),
]


@pytest.mark.parametrize(
    ("name", "cands", "complete", "proofs", "taken", "now", "action", "pid", "to_prove"),
    CASES,
    ids=[case[0] for case in CASES],
)
def test_decide(name, cands, complete, proofs, taken, now, action, pid, to_prove):
    d = decide(INTENT, Listing(tuple(cands), complete), proofs, taken, now)
    assert (d.action, d.provider_id, d.to_prove) == (action, pid, to_prove)
    assert d.reason


def test_no_mutation_is_ever_proposed_for_an_unproven_candidate():
    cands = tuple(c(f"p{i}", ended=i % 2 == 0) for i in range(6))
    for now in (0, 6_000, 9_000):
        for complete in (True, False):
            d = decide(INTENT, Listing(cands, complete), {"p0": THEIRS}, (), now)
            assert d.action is Action.WAIT and d.provider_id is None


@pytest.mark.parametrize(
    ("answered", "start", "end", "release"),
    [(None, 9_000, 310_000 + 1_000, 316_000), (12_000, 9_000, 13_000, 18_000)],
    ids=["process died: the create timeout bounds it", "5xx answer: nothing in flight after it"],
)
def test_window(answered, start, end, release):
    i = intent_of("b", 3, 10_000, answered, create_timeout_ms=300_000, skew_ms=1_000, visibility_ms=5_000)
    assert (i.window_start_ms, i.window_end_ms, i.release_after_ms) == (start, end, release)


MEMBERS = {"r1", "r2", "r3"}


@pytest.mark.parametrize(
    ("ids", "proof"),
    [
        (["r2", "r1", "r3"], OURS),
        (["r1", "r2"], THEIRS),  # short of the claim's size
        (["r1", "r2", "x9"], THEIRS),  # one stranger
        (["x9"], THEIRS),
        (["r1", "r1", "r2"], THEIRS),  # a repeat is not a proof
        ([], THEIRS),
    ],
)
def test_prove(ids, proof):
    assert prove(ids, MEMBERS, 3) is proof


def test_prove_stops_at_the_first_stranger():
    def lines():
        yield "x9"
        raise AssertionError("read past the first stranger")

    assert prove(lines(), MEMBERS, 3) is THEIRS


@pytest.mark.parametrize(
    ("oldest", "has_more", "done"),
    [(None, False, True), (500, True, True), (1_000, True, False), (2_000, True, False), (2_000, False, True)],
)
def test_paging_stops_past_the_window(oldest, has_more, done):
    assert listed_back_far_enough(oldest, has_more, 1_000) is done
