"""Which open batches a poll round looks at, pure: a bounded number of API calls per round that
rotates, so every open batch is seen within a bounded number of rounds however many batches other
applications create in the workspace.

A round spends at most `budget` calls: list pages first (newest first; one page can cover up to
1,000 batches, ours among them), at most `max_list_pages(budget)` of them and only while open
batches remain unseen and older ones may still be on later pages; then one `retrieve` each for the
open batches the pages did not show, the longest unseen first. At least half the budget is left
for retrieves, so a batch is seen within ceil(open batches / (budget / 2)) rounds.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class OpenBatch:
    batch_id: str
    provider_id: str
    submitted_ms: int
    seen_ms: int  # when a round last saw it at the provider (0: never)


MIN_BUDGET = 2  # one list page and one retrieve


def max_list_pages(budget: int) -> int:
    """List pages a round may read: half the budget (at least one; `budget` >= MIN_BUDGET)."""
    return max(1, budget // 2)


def list_more(
    pages_read: int,
    budget: int,
    unseen: int,
    has_more: bool,
    page_oldest_ms: int | None,
    oldest_open_ms: int,
    skew_ms: int,
) -> bool:
    """Read another list page? Only while open batches are unseen, pages remain, the page budget
    allows, and the last page did not already reach past the oldest open batch's submission."""
    if unseen == 0 or not has_more or pages_read >= max_list_pages(budget):
        return False
    return page_oldest_ms is None or page_oldest_ms >= oldest_open_ms - skew_ms


def to_retrieve(open_batches: Sequence[OpenBatch], seen: Collection[str], calls_left: int) -> list[OpenBatch]:
    """The open batches the pages did not show, the longest unseen first, within the calls left."""
    unseen = [b for b in open_batches if b.provider_id not in seen]
    unseen.sort(key=lambda b: (b.seen_ms, b.submitted_ms, b.batch_id))
    return unseen[: max(0, calls_left)]


def rounds_to_see_all(open_count: int, budget: int) -> int:
    """The bound: rounds within which every open batch is seen, with no list page seeing any."""
    per_round = budget - max_list_pages(budget)
    return -(-open_count // per_round)
