"""The control API under ``/_emulator``: books, reset, faults and clock; no API key needed."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from .state import EmulatorState


def control_routes(state: EmulatorState) -> list[Route]:
    """Routes: ``GET /_emulator/books``, ``POST /_emulator/reset``, ``GET|POST /_emulator/faults``,
    ``POST /_emulator/clock`` (``{"advance_seconds": N}``), ``POST /_emulator/foreign``
    (``{"batches": B, "requests": N}``: another application creates B batches of N requests)."""

    async def books(request: Request) -> JSONResponse:
        return JSONResponse(state.books())

    async def reset(request: Request) -> JSONResponse:
        state.reset()
        return JSONResponse(state.books())

    async def faults(request: Request) -> JSONResponse:
        if request.method == "POST":
            changes = await _json_object(request)
            if isinstance(changes, JSONResponse):
                return changes
            try:
                state.set_faults(**changes)
            except (TypeError, ValueError) as exc:
                return JSONResponse({"error": str(exc)}, status_code=400)
        return JSONResponse(state.config.to_json())

    async def clock(request: Request) -> JSONResponse:
        body = await _json_object(request)
        if isinstance(body, JSONResponse):
            return body
        state.clock.advance(float(body.get("advance_seconds", 0)))
        return JSONResponse({"now": state.clock.now(), "speed": state.clock.speed})

    async def foreign(request: Request) -> JSONResponse:
        body = await _json_object(request)
        if isinstance(body, JSONResponse):
            return body
        batches, requests = body.get("batches", 1), body.get("requests")
        limit = state.config.max_requests
        if not isinstance(batches, int) or not 1 <= batches <= 10_000:
            return JSONResponse({"error": "batches: must be an integer in [1, 10000]"}, status_code=400)
        if not isinstance(requests, int) or not 1 <= requests <= limit:
            return JSONResponse({"error": f"requests: must be an integer in [1, {limit}]"}, status_code=400)
        made = state.store.create_foreign(batches, requests)
        return JSONResponse({"batch_ids": [b.id for b in made]})

    return [
        Route("/_emulator/foreign", foreign, methods=["POST"]),
        Route("/_emulator/books", books, methods=["GET"]),
        Route("/_emulator/reset", reset, methods=["POST"]),
        Route("/_emulator/faults", faults, methods=["GET", "POST"]),
        Route("/_emulator/clock", clock, methods=["POST"]),
    ]


async def _json_object(request: Request) -> dict[str, Any] | JSONResponse:
    try:
        body = await request.json()
    except ValueError:
        return JSONResponse({"error": "body must be JSON"}, status_code=400)
    if not isinstance(body, dict):
        return JSONResponse({"error": "body must be a JSON object"}, status_code=400)
    return body
