"""docs/settings.md is what config/settings.py says: every variable, its default, its meaning."""

from __future__ import annotations

import re
from dataclasses import fields
from pathlib import Path

from batchline.config import settings_doc
from batchline.config.settings import Settings

DOC = Path(__file__).resolve().parents[2] / "docs" / "settings.md"


def documented() -> dict[str, str]:
    """variable -> default cell of docs/settings.md's table."""
    cells = (line.split("|") for line in DOC.read_text().splitlines() if line.startswith("| `"))
    return {c[1].strip().strip("`"): c[2].strip() for c in cells}


def test_committed_settings_doc_is_what_render_writes():
    assert DOC.read_text() == settings_doc.render(), "docs/settings.md is stale: run `make docs`"


def test_every_variable_read_in_settings_py_is_documented_with_its_default():
    read = set(re.findall(r'"(BATCHLINE_[A-Z0-9_]+)"', settings_doc.SOURCE.read_text()))
    table, defaults = documented(), Settings.from_env({})
    by_variable = {r.variable: r.field for r in settings_doc.rows()}
    assert read and read <= set(table), f"missing from docs/settings.md: {sorted(read - set(table))}"
    for variable in read:
        expected = settings_doc.format_default(getattr(defaults, by_variable[variable]))
        assert table[variable] == expected, f"{variable}: documented {table[variable]}, default {expected}"


def test_every_field_has_a_variable_and_a_meaning():
    rows = settings_doc.rows()
    assert {r.field for r in rows} == {f.name for f in fields(Settings)}
    assert not [r.variable for r in rows if not r.meaning], "a field without a #: comment in config/settings.py"


def test_defaults_are_formatted_as_a_reader_writes_them():
    assert settings_doc.format_default(None) == "unset"
    assert settings_doc.format_default(()) == "unset"
    assert settings_doc.format_default(False) == "`false`"
    assert settings_doc.format_default(30 * 86400) == "2,592,000"
    assert settings_doc.format_default(60.0) == "60"
    assert settings_doc.format_default(0.5) == "0.5"
    assert settings_doc.format_default("bl") == "`bl`"
