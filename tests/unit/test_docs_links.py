"""Every relative link in README.md and docs/*.md resolves: the file exists, and an `#anchor` into a
Markdown file names one of its headings (GitHub's slugs)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def unfenced(text: str) -> str:
    return re.sub(r"```.*?```", "", text, flags=re.S)


def prose(text: str) -> str:
    """The text without fenced code blocks or inline code, where brackets are not links."""
    return re.sub(r"`[^`\n]*`", "", unfenced(text))


def slug(heading: str) -> str:
    text = heading.strip().lower().replace("`", "")
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    headings = re.findall(r"^#{1,6} (.+)$", unfenced(page.read_text()), flags=re.M)
    return {slug(h) for h in headings}


def relative_links(page: Path) -> list[str]:
    return [t for t in LINK.findall(prose(page.read_text())) if not re.match(r"[a-z]+:", t)]


def broken_links(page: Path) -> list[str]:
    broken = []
    for target in relative_links(page):
        path, _, anchor = target.partition("#")
        resolved = (page.parent / path).resolve() if path else page
        if not resolved.exists():
            broken.append(f"{target}: no such file")
        elif anchor and resolved.suffix == ".md" and anchor not in anchors(resolved):
            broken.append(f"{target}: no heading #{anchor}")
    return broken


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_resolves(page):
    assert not broken_links(page), f"{page.relative_to(ROOT)}: {broken_links(page)}"


def test_the_readme_links_every_docs_page():
    linked = {(ROOT / t.partition("#")[0]).resolve() for t in relative_links(ROOT / "README.md")}
    assert not [p.name for p in PAGES[1:] if p not in linked]


def test_a_missing_file_or_heading_is_found(tmp_path):
    (tmp_path / "a.md").write_text("# A page\n\n## Two `words`\n")
    page = tmp_path / "b.md"
    page.write_text(
        "[ok](a.md#two-words) [no](c.md) [gone](a.md#three) `[code](x.md)`\n```\n[x](y.md)\n```\n"
        "[web](https://example.com/x.md) [self](#b)\n"
    )
    assert broken_links(page) == ["c.md: no such file", "a.md#three: no heading #three", "#b: no heading #b"]


def test_slugs_are_githubs():
    assert slug("Betas, idempotency, ids") == "betas-idempotency-ids"
    assert slug("batchline's own requests") == "batchlines-own-requests"
    assert slug("The `Producer` API") == "the-producer-api"
