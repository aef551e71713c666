"""The Starlette app: the six Message Batches operations, the control API, request ids."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .batch import iter_results
from .control import control_routes
from .errors import ApiError, invalid, new_request_id
from .messages import message_reply
from .state import EmulatorState

Handler = Callable[[Request], Awaitable[Response]]
PREFIX = "/v1/messages/batches"


class RequestIdMiddleware:
    """Give every request a ``req_...`` id: in ``scope['state']`` and the ``request-id`` header."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = new_request_id()
        scope.setdefault("state", {})["request_id"] = request_id

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", []).append((b"request-id", request_id.encode()))
            await send(message)

        await self.app(scope, receive, send_with_id)


def error_response(request: Request, err: ApiError) -> JSONResponse:
    """The API's error shape, with the request's id in the body."""
    request_id = getattr(request.state, "request_id", None)
    return JSONResponse(err.body(request_id), status_code=err.status, headers=err.headers)


def _check_auth(request: Request) -> None:
    key = request.headers.get("x-api-key", "").strip()
    auth = request.headers.get("authorization", "")
    bearer = auth[7:].strip() if auth.lower().startswith("bearer ") else ""
    if not key and not bearer:
        raise ApiError("authentication_error", "x-api-key header is required")


class MountPath:
    """With ``mount_path`` set, serve the API under that path as well (as behind a gateway whose base
    URL has a path). The prefix becomes the ASGI ``root_path`` (Starlette routes on the path below it),
    so absolute ``results_url``s keep it."""

    def __init__(self, app: ASGIApp, state: EmulatorState) -> None:
        self.app, self.state = app, state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        mount = self.state.config.mount_path
        path = scope.get("path", "")
        if scope["type"] == "http" and mount and path.startswith(mount + "/"):
            scope = {**scope, "root_path": mount}
        await self.app(scope, receive, send)


def build_app(state: EmulatorState) -> ASGIApp:
    """The ASGI app serving ``state``."""
    store = state.store

    def api(operation: str, handler: Callable[[Request], Awaitable[Response]]) -> Handler:
        async def endpoint(request: Request) -> Response:
            try:
                state.foreign_tick()  # another application's batches, due since the last call
                if operation in ("create", "messages"):
                    _check_length(request, state.config.max_body_bytes)
                _check_auth(request)
                store.operations[operation] += 1
                latency = state.gate.check(state.config, operation)
                if latency > 0:
                    await asyncio.sleep(latency)
                return await handler(request)
            except ApiError as err:
                return error_response(request, err)

        return endpoint

    def batch_json(request: Request, batch: Any) -> dict[str, Any]:
        json_batch: dict[str, Any] = batch.to_json(state.clock.now(), _results_base(request, state.config))
        return json_batch

    async def create(request: Request) -> Response:
        body = await _read_body(request, state.config.max_body_bytes)
        payload: list[bytes | bytearray] = [body]
        del body
        batch = await run_in_threadpool(store.create, payload, betas_of(request))
        if state.lose_create_reply():
            raise ApiError("api_error", "Internal server error (emulated, after the batch was created).")
        return JSONResponse(batch_json(request, batch))

    async def retrieve(request: Request) -> Response:
        batch = store.get(request.path_params["batch_id"], fresh_404=True)
        return JSONResponse(batch_json(request, batch))

    async def list_batches(request: Request) -> Response:
        q = request.query_params
        try:
            limit = int(q.get("limit", "20"))
        except ValueError:
            raise invalid("limit: Input should be a valid integer") from None
        batches, has_more = store.page(limit, q.get("after_id"), q.get("before_id"))
        data = [batch_json(request, b) for b in batches]
        return JSONResponse(
            {
                "data": data,
                "has_more": has_more,
                "first_id": data[0]["id"] if data else None,
                "last_id": data[-1]["id"] if data else None,
            }
        )

    async def cancel(request: Request) -> Response:
        return JSONResponse(batch_json(request, store.cancel(request.path_params["batch_id"])))

    async def delete(request: Request) -> Response:
        batch_id = request.path_params["batch_id"]
        store.delete(batch_id)
        return JSONResponse({"id": batch_id, "type": "message_batch_deleted"})

    async def results(request: Request) -> Response:
        batch_id = request.path_params["batch_id"]
        batch = store.get(batch_id, fresh_404=True)
        now = state.clock.now()
        if batch.status(now) != "ended":
            raise invalid(f"message_batch {batch_id!r} has not finished processing; no results yet")
        if now >= batch.created_at + batch.archive_after:
            raise ApiError("not_found_error", f"results of message_batch {batch_id!r} were archived")
        cfg = state.config
        if cfg.results_404:
            with store.lock:
                store.http_faults["results_404"] += 1
            raise ApiError("not_found_error", f"results of message_batch {batch_id!r} not found (emulated)")
        served = store.served
        with store.lock:
            if batch.foreign:  # reading another application's results is allowed; it has its own count
                store.foreign["results_downloads"] += 1
                served = [0, 0, 0, 0]
            else:
                store.downloads += 1
            if betas_of(request):
                store.results_betas[batch_id] = list(betas_of(request))
            if cfg.results_cut_after is not None and cfg.results_cut_after < len(batch.requests):
                store.http_faults["results_cut"] += 1
        newline = b"\r\n" if cfg.crlf else b"\n"
        lines = iter_results(batch, cfg.seed, newline, served, cfg.results_cut_after)
        return StreamingResponse(lines, media_type="application/x-jsonl")

    async def message(request: Request) -> Response:
        body = await _read_body(request, state.config.max_body_bytes)
        try:
            params = json.loads(body)
        except ValueError:
            raise invalid("body: not valid JSON") from None
        reply = message_reply(params)
        store.count_realtime(reply["usage"], betas_of(request))
        return JSONResponse(reply)

    one = PREFIX + "/{batch_id}"
    routes = [
        Route("/v1/messages", api("messages", message), methods=["POST"]),
        Route(PREFIX, api("create", create), methods=["POST"]),
        Route(PREFIX, api("list", list_batches), methods=["GET"]),
        Route(one, api("retrieve", retrieve), methods=["GET"]),
        Route(one, api("delete", delete), methods=["DELETE"]),
        Route(one + "/cancel", api("cancel", cancel), methods=["POST"]),
        Route(one + "/results", api("results", results), methods=["GET"]),
        *control_routes(state),
    ]
    return RequestIdMiddleware(MountPath(Starlette(routes=routes), state))


UNREACHABLE_BASE = "http://results.unreachable.invalid"


def _results_base(request: Request, cfg: Any) -> str:
    """What ``results_url`` starts with: this server as the client reached it (absolute), its path
    only (a relative reference, resolved by RFC 3986), or a host the client cannot reach."""
    root = request.scope.get("root_path", "")
    if cfg.results_url_mode == "relative":
        return str(root)
    if cfg.results_url_mode == "unreachable":
        return UNREACHABLE_BASE + str(root)
    return str(request.base_url)


def betas_of(request: Request) -> tuple[str, ...]:
    """The `anthropic-beta` header's betas: comma-separated, possibly repeated; sorted, unique."""
    names = {b.strip() for value in request.headers.getlist("anthropic-beta") for b in value.split(",")}
    return tuple(sorted(n for n in names if n))


def _too_large(limit: int) -> ApiError:
    return ApiError("request_too_large", f"Request exceeds the maximum size of {limit} bytes", status=413)


def _check_length(request: Request, limit: int) -> None:
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > limit:
        raise _too_large(limit)


async def _read_body(request: Request, limit: int) -> bytearray:
    """Read the body into one buffer, failing with 413 as soon as it passes ``limit``."""
    buf = bytearray()
    async for chunk in request.stream():
        buf += chunk
        if len(buf) > limit:
            raise _too_large(limit)
    return buf
