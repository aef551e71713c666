"""The README's commands are real: each `make` target exists, each `batchline` line parses with its
sub-command's own arguments, and each Python block compiles. (The Producer example also runs, against
Redis: tests/integration/test_readme_example.py.)"""

from __future__ import annotations

import argparse
import importlib
import re
import shlex
from pathlib import Path

import pytest

from batchline.cli import COMMANDS

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()


def blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README, flags=re.S)


def shell_lines() -> list[list[str]]:
    lines = (line.split("#", 1)[0].strip() for block in blocks("sh") for line in block.splitlines())
    return [shlex.split(line) for line in lines if line]


def make_targets() -> set[str]:
    return set(re.findall(r"^([a-z][\w-]*):", (ROOT / "Makefile").read_text(), flags=re.M))


def test_the_readme_shows_commands_and_code():
    words = {words[0] for words in shell_lines()}
    assert words == {"make", "batchline"}, f"a README command that no test checks: {words}"
    assert len(blocks("python")) >= 2


@pytest.mark.parametrize("words", [w for w in shell_lines() if w[0] == "make"], ids=" ".join)
def test_make_targets_exist(words):
    targets = [w for w in words[1:] if "=" not in w]
    assert targets and set(targets) <= make_targets(), f"no such Makefile target: {targets}"


@pytest.mark.parametrize("words", [w for w in shell_lines() if w[0] == "batchline"], ids=" ".join)
def test_batchline_commands_parse(words):
    name = words[1]
    assert name in COMMANDS, f"no such sub-command: batchline {name}"
    parser = argparse.ArgumentParser(prog=f"batchline {name}", exit_on_error=False)
    importlib.import_module(COMMANDS[name][0]).add_arguments(parser)
    parser.parse_args(words[2:])  # raises (or exits) on an unknown flag or a missing argument


@pytest.mark.parametrize("index", range(len(blocks("python"))))
def test_python_blocks_compile(index):
    compile(blocks("python")[index], f"README.md python block {index}", "exec")
