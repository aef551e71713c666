"""docs/settings.md, generated from config/settings.py: `python -m batchline.config.settings_doc [PATH]`
(`make docs`).

Nothing here is a hand-kept list. The variables and their allowed ranges come from the calls in
`Settings.from_env` (parsed with `ast`), each default from `Settings.from_env({})`, each meaning from
the `#:` comment above the field.
"""

from __future__ import annotations

import ast
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from batchline.config import settings as settings_module
from batchline.config.settings import Settings

SOURCE = Path(settings_module.__file__)
READERS = {"_int": "integer", "_float": "number", "_bool": "true or false", "_str": "text"}

HEADER = """# Settings

Generated from `config/settings.py` by `make docs`; do not edit by hand. Every setting is an
environment variable, read in `config/settings.py` only. A variable set to an empty string counts
as unset; a value out of range stops the process with a `ConfigError` naming it.

| variable | default | allowed | meaning |
|---|---|---|---|
"""

FOOTER = """
Besides these: `AWS_*`, boto3's own (credentials, region). `make demo` and `make test` set what they
need themselves; see [docs/operating.md](operating.md) for the settings that matter in production.
"""


@dataclass(frozen=True)
class Row:
    variable: str
    field: str
    default: str
    allowed: str
    meaning: str


def _strings(node: ast.AST) -> list[str]:
    return [n.value for n in ast.walk(node) if isinstance(n, ast.Constant) and isinstance(n.value, str)]


def _env_names(node: ast.AST, functions: dict[str, ast.FunctionDef]) -> list[str]:
    """Variables read by a from_env argument: its own string literals, else those of the module
    function it calls (`_tenant_limits` reads its variable inside)."""
    names = [s for s in _strings(node) if s.isupper() and "_" in s]
    if not names:
        calls = [n.func.id for n in ast.walk(node) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)]
        names = [s for c in calls if c in functions for s in _strings(functions[c]) if s.isupper() and "_" in s]
    return list(dict.fromkeys(names))


def _value(node: ast.expr) -> Any:
    return eval(compile(ast.Expression(node), str(SOURCE), "eval"), vars(settings_module))


def _number(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return f"{value:,}" if isinstance(value, int) and value >= 10_000 else str(value)


def _allowed(node: ast.AST, variable: str) -> str:
    """What the reader of `variable` accepts: integer/number with its bounds, true or false, text."""
    for call in ast.walk(node):
        if not (isinstance(call, ast.Call) and isinstance(call.func, ast.Name) and call.func.id in READERS):
            continue
        if variable not in _strings(call.args[1]):
            continue
        kind, bounds = READERS[call.func.id], [_number(_value(a)) for a in call.args[3:5]]
        if len(bounds) == 2:
            return f"{kind}, {bounds[0]} to {bounds[1]}"
        return f"{kind} >= {bounds[0]}" if bounds else kind
    return "JSON"


def format_default(value: Any) -> str:
    if value is None or value == () or value == {}:
        return "unset"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, int | float):
        return _number(value)
    return f"`{value}`"


def _meanings(source_lines: list[str], cls: ast.ClassDef) -> dict[str, str]:
    """field -> the text of the `#:` comment lines right above it."""
    out: dict[str, str] = {}
    for node in cls.body:
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            lines: list[str] = []
            i = node.lineno - 2
            while i >= 0 and source_lines[i].strip().startswith("#:"):
                lines.insert(0, source_lines[i].strip()[2:].strip())
                i -= 1
            out[node.target.id] = " ".join(lines)
    return out


def rows(source: str | None = None) -> list[Row]:
    text = SOURCE.read_text() if source is None else source
    tree = ast.parse(text)
    functions = {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}
    cls = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "Settings")
    from_env = next(n for n in cls.body if isinstance(n, ast.FunctionDef) and n.name == "from_env")
    built = next(n.value for n in ast.walk(from_env) if isinstance(n, ast.Return) and isinstance(n.value, ast.Call))
    meanings, defaults = _meanings(text.splitlines(), cls), Settings.from_env({})
    out = []
    for kw in built.keywords:
        name = kw.arg or ""
        default = format_default(getattr(defaults, name))
        for variable in _env_names(kw.value, functions):
            out.append(Row(variable, name, default, _allowed(kw.value, variable), meanings.get(name, "")))
    return out


def render() -> str:
    body = "".join(f"| `{r.variable}` | {r.default} | {r.allowed} | {r.meaning} |\n" for r in rows())
    return HEADER + body + FOOTER


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    text = render()
    if args:
        Path(args[0]).write_text(text)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
