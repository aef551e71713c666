"""Deadlines as pure decisions: parsing and checking at intake, routing, the hedge's moment, p95."""

from __future__ import annotations

import pytest

from batchline import deadlines
from batchline.deadlines import Path
from batchline.errors import InvalidRequest

NOW = 1_800_000_000_000  # 2027-01-15T08:00:00Z


def test_none_is_no_deadline():
    assert deadlines.parse(None, None, NOW, 60) == 0


@pytest.mark.parametrize(
    ("deadline", "seconds", "expected"),
    [
        (None, 600, NOW + 600_000),
        (None, 90.5, NOW + 90_500),
        ("2027-01-15T09:00:00Z", None, NOW + 3_600_000),
        ("2027-01-15T10:00:00+01:00", None, NOW + 3_600_000),
        ("2027-01-15t09:00:00.250z", None, NOW + 3_600_250),
    ],
)
def test_valid_deadlines(deadline, seconds, expected):
    assert deadlines.parse(deadline, seconds, NOW, 60) == expected


@pytest.mark.parametrize(
    ("deadline", "seconds", "field", "rule"),
    [
        ("2027-01-15T09:00:00Z", 600, "deadline", "not both"),
        ("2027-01-15T07:00:00Z", None, "deadline", "in the past"),
        (None, -5, "deadline_seconds", "in the past"),
        (None, 0, "deadline_seconds", "in the past"),
        (None, 30, "deadline_seconds", "BATCHLINE_MIN_DEADLINE_SECONDS"),
        ("2027-01-15T08:00:30Z", None, "deadline", "at least 60 s"),
        ("2027-01-15T09:00:00", None, "deadline", "UTC offset"),
        ("tomorrow at six", None, "deadline", "RFC 3339"),
        ("2027-01-15", None, "deadline", "RFC 3339"),
        (1800000000, None, "deadline", "as a string"),
        (None, "600", "deadline_seconds", "number of seconds"),
        (None, True, "deadline_seconds", "number of seconds"),
        (None, float("inf"), "deadline_seconds", "finite"),
        (None, 10 * 366 * 86400, "deadline_seconds", "at most a year"),
    ],
)
def test_bad_deadlines_name_the_field_and_rule(deadline, seconds, field, rule):
    with pytest.raises(InvalidRequest) as err:
        deadlines.parse(deadline, seconds, NOW, 60)
    assert err.value.field == field
    assert rule in err.value.rule


@pytest.mark.parametrize(
    ("left_s", "turnaround_s", "path"),
    [(300, 3600, Path.REALTIME), (7200, 3600, Path.BATCH), (3599, 3600, Path.REALTIME), (3600, 3600, Path.BATCH)],
)
def test_route_goes_realtime_only_when_a_batch_would_be_late(left_s, turnaround_s, path):
    decision = deadlines.route(NOW + left_s * 1000, NOW, turnaround_s, from_history=False)
    assert decision.path is path
    assert "BATCHLINE_BATCH_TURNAROUND_SECONDS" in decision.reason
    assert "p95" in deadlines.route(NOW + left_s * 1000, NOW, turnaround_s, from_history=True).reason


def test_hedge_due_at_the_margin():
    assert not deadlines.hedge_due(NOW + 121_000, NOW, 120)
    assert deadlines.hedge_due(NOW + 120_000, NOW, 120)
    assert deadlines.hedge_due(NOW - 1, NOW, 120)
    assert not deadlines.hedge_due(0, NOW, 120)


def test_p95_nearest_rank():
    assert deadlines.p95([]) == 0.0
    assert deadlines.p95([5.0]) == 5.0
    assert deadlines.p95([float(i) for i in range(1, 101)]) == 95.0
    assert deadlines.p95([1.0, 2.0, 100.0]) == 100.0


def test_a_dated_model_shares_its_alias_history():
    from batchline.turnaround import family

    assert family("claude-sonnet-4-5-20250929") == family("claude-sonnet-4-5") == "claude-sonnet-4-5"
    assert family("claude-haiku-4-5") == "claude-haiku-4-5"


def test_route_and_realtime_tasks_count_as_work_only_when_they_did_some():
    from batchline.workers.app import REALTIME, ROUTE
    from batchline.workers.task_summary import did_work

    assert not did_work(ROUTE, {"batch": 0, "realtime": 0, "hedged": 0, "recovered": 0, "late": 0})
    assert did_work(ROUTE, str({"batch": 0, "realtime": 3, "hedged": 0, "recovered": 0, "late": 0}))
    assert did_work(REALTIME, {"request_id": "x", "status": "delivered"})
    assert not did_work(REALTIME, {"request_id": "x", "status": "settled"})
