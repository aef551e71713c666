"""The Lua scripts in `batchline/lua/`, loaded once per Redis client."""

from __future__ import annotations

from functools import cache
from importlib import resources
from typing import Any

import redis

INCLUDE = "-- include: targets\n"  # a script that needs the reply-target checks names them so


@cache
def source(name: str) -> str:
    text = resources.files("batchline").joinpath("lua", f"{name}.lua").read_text()
    return text.replace(INCLUDE, source("targets")) if INCLUDE in text else text


class Scripts:
    """Registered scripts for one client; attribute access by file name (`scripts.intake`)."""

    def __init__(self, client: redis.Redis) -> None:
        self._client = client
        self._loaded: dict[str, Any] = {}

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        script = self._loaded.get(name)
        if script is None:
            script = self._loaded[name] = self._client.register_script(source(name))
        return script
