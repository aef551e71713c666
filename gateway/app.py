"""The gateway's ASGI app (Starlette): routes, authentication, limits and the error shape.

Handlers are thin: read and check the body, then run the Redis work in the thread pool (the clients
are synchronous), and answer. All state is in Redis, so any number of replicas can serve.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from batchline import log
from batchline.config.settings import Settings
from batchline.producers.producer import Producer
from batchline.quotas import check as check_quota
from batchline.quotas import usage
from batchline.redis_client import connect
from batchline.tenants import Tenant, TenantStore

from . import betas, single, validate
from .auth import RateLimiter, authenticate, client_address, presented_key
from .batches import Batches, new_id
from .errors import ApiError, error_response, from_exception, on_http_exception, on_unexpected
from .openapi import document

logger = log.get("batchline.gateway")


class Gateway:
    """What every handler needs, built once per process from settings."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.producer = Producer(connect(settings.redis_url, settings.key_prefix), settings)
        self.redis = self.producer.redis
        self.keys = self.producer.keys
        self.tenants = TenantStore(self.redis, self.keys, settings.key_grace_seconds)
        self.batches = Batches(self.producer)
        self.limiter = RateLimiter(
            self.redis,
            self.keys,
            settings.gateway_rate_limit,
            settings.gateway_rate_window_seconds,
            settings.gateway_auth_failure_limit,
        )
        self.single = single.Requests(self.producer)

    def caller(self, request: Request) -> Tenant:
        """The tenant behind the request's key: a throttled address first (429), then the key
        (401, counted against the address when a key was presented), then the key's rate (429)."""
        peer = request.client.host if request.client else None
        address = client_address(peer, request.headers, self.settings.gateway_trusted_proxy_hops)
        self.limiter.refuse_guessing(address)
        key = presented_key(request.headers)
        try:
            tenant = authenticate(self.tenants, request.headers)
        except ApiError:
            if key is not None:
                self.limiter.failed(address)
            raise
        self.limiter.hit(key or "")
        return tenant

    def check_quota(self, tenant: Tenant, requests: int, size: int) -> None:
        check_quota(tenant.name, tenant.limits, usage(self.redis, self.keys, tenant.name), requests, size)

    def base_url(self, request: Request) -> str:
        return (self.settings.gateway_public_url or str(request.base_url)).rstrip("/")

    def close(self) -> None:
        self.producer.close()


Handler = Callable[[Gateway, Request, Tenant], Awaitable[Response]]


def api(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
    """Authenticate and rate-limit, run the handler, answer batchline's errors in the API's shape."""

    async def endpoint(request: Request) -> Response:
        gw: Gateway = request.app.state.gateway
        try:
            tenant = await run_in_threadpool(gw.caller, request)
            return await handler(gw, request, tenant)
        except Exception as exc:
            err = from_exception(exc)  # re-raises what is not ours: a 500 in the API's shape
            return error_response(err.status, err.message, err.retry_after)

    return endpoint


async def read_body(request: Request, settings: Settings) -> bytearray:
    """The body in one buffer (sized from Content-Length when given, so a 200 MB batch is held once,
    not as chunks plus their join), refused with 413 as soon as it is known to be too large (before
    reading further), and with 408 when the client sends it too slowly."""
    limit = settings.gateway_max_body_bytes
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise ApiError(413, f"request body is {int(declared)} bytes; at most {limit} are accepted")
    expected = int(declared) if declared is not None and declared.isdigit() else 0
    body = bytearray(expected)
    size = 0
    try:
        async with asyncio.timeout(settings.gateway_body_timeout_seconds):
            async for chunk in request.stream():
                end = size + len(chunk)
                if end > limit:
                    raise ApiError(413, f"request body is over {limit} bytes")
                if end <= expected:
                    body[size:end] = chunk  # same length: written in place, no reallocation
                else:
                    del body[size:]
                    body += chunk
                size = end
    except TimeoutError:
        raise ApiError(408, f"request body not received within {settings.gateway_body_timeout_seconds:g} s") from None
    del body[size:]  # shorter than declared (the server would have refused it): what came
    return body


def _json(obj: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(obj), status_code=status, media_type="application/json")


def _batch_id(request: Request) -> str:
    return str(request.path_params["batch_id"])


# -- Message Batches ---------------------------------------------------------------------------


async def create_batch(gw: Gateway, request: Request, tenant: Tenant) -> Response:
    beta_set = betas.check(request.headers)
    body = await read_body(request, gw.settings)

    def work() -> dict[str, Any]:
        # parsed (a large body one request at a time) in the thread pool, each request encoded and its
        # document's PUT started at once: the body is held, and a few documents (docs/large-requests.md)
        n, pairs = validate.create_requests(body, gw.settings.gateway_max_batch_requests)
        gid, claims = new_id(), gw.producer.claims()
        try:
            custom_ids, encoded = gw.batches.encode(tenant, gid, pairs, beta_set, claims)
            body.clear()  # let the buffer go before intake
            gw.check_quota(tenant, n, sum(r.size for r in encoded))
            meta = gw.batches.create(tenant, gid, custom_ids, encoded, claims)
        finally:
            claims.cancel()
        logger.info("gateway.batch_created", tenant=tenant.name, batch_id=gid, requests=n)
        return gw.batches.view(gid, meta, gw.base_url(request))

    return _json(await run_in_threadpool(work))


async def retrieve_batch(gw: Gateway, request: Request, tenant: Tenant) -> Response:
    gid = _batch_id(request)
    meta = await run_in_threadpool(gw.batches.refresh, tenant, gid)
    return _json(gw.batches.view(gid, meta, gw.base_url(request)))


def _limit(request: Request) -> int:
    raw = request.query_params.get("limit", "20")
    if not raw.isdigit() or not 1 <= int(raw) <= 1000:
        raise ApiError(400, "limit: must be an integer between 1 and 1000")
    return int(raw)


async def list_batches(gw: Gateway, request: Request, tenant: Tenant) -> Response:
    limit = _limit(request)
    after, before = request.query_params.get("after_id"), request.query_params.get("before_id")
    if after is not None and before is not None:
        raise ApiError(400, "after_id, before_id: give at most one")
    base = gw.base_url(request)

    def work() -> dict[str, Any]:
        ids, has_more = gw.batches.list(tenant, limit, after, before)
        data = []
        for gid in ids:
            try:
                data.append(gw.batches.view(gid, gw.batches.refresh(tenant, gid), base))
            except ApiError:  # its records expired
                gw.batches.forget(tenant, gid)
        return {
            "data": data,
            "has_more": has_more,
            "first_id": data[0]["id"] if data else None,
            "last_id": data[-1]["id"] if data else None,
        }

    return _json(await run_in_threadpool(work))


async def cancel_batch(gw: Gateway, request: Request, tenant: Tenant) -> Response:
    gid = _batch_id(request)
    meta = await run_in_threadpool(gw.batches.cancel, tenant, gid)
    logger.info("gateway.batch_canceled", tenant=tenant.name, batch_id=gid)
    return _json(gw.batches.view(gid, meta, gw.base_url(request)))


async def delete_batch(gw: Gateway, request: Request, tenant: Tenant) -> Response:
    gid = _batch_id(request)
    await run_in_threadpool(gw.batches.delete, tenant, gid)
    return _json({"id": gid, "type": "message_batch_deleted"})


async def batch_results(gw: Gateway, request: Request, tenant: Tenant) -> Response:
    lines = await run_in_threadpool(gw.batches.results, tenant, _batch_id(request))
    return StreamingResponse(lines, media_type="application/x-jsonl")


# -- batchline's own single requests -------------------------------------------------------------


async def submit_requests(gw: Gateway, request: Request, tenant: Tenant) -> Response:
    items = validate.request_items(await read_body(request, gw.settings), request.headers.get("content-type", ""))
    return _json(await run_in_threadpool(gw.single.submit, tenant, items, gw.check_quota))


async def request_status(gw: Gateway, request: Request, tenant: Tenant) -> Response:
    return _json(await run_in_threadpool(gw.single.status, tenant, str(request.path_params["custom_id"])))


async def cancel_request(gw: Gateway, request: Request, tenant: Tenant) -> Response:
    return _json(await run_in_threadpool(gw.single.cancel, tenant, str(request.path_params["custom_id"])))


# -- service -------------------------------------------------------------------------------------


async def healthz(request: Request) -> Response:
    """Liveness: the process answers."""
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> Response:
    """Readiness: Redis answers."""
    gw: Gateway = request.app.state.gateway
    try:
        await run_in_threadpool(gw.redis.ping)
    except Exception:
        return error_response(529, "redis is not reachable", retry_after=1)
    return JSONResponse({"status": "ready"})


async def openapi(request: Request) -> Response:
    return JSONResponse(document(request.app.state.gateway.base_url(request)))


def build_app(settings: Settings, gateway: Gateway | None = None) -> Starlette:
    routes = [
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/openapi.json", openapi, methods=["GET"]),
        Route("/v1/messages/batches", api(create_batch), methods=["POST"]),
        Route("/v1/messages/batches", api(list_batches), methods=["GET"]),
        Route("/v1/messages/batches/{batch_id}", api(retrieve_batch), methods=["GET"]),
        Route("/v1/messages/batches/{batch_id}", api(delete_batch), methods=["DELETE"]),
        Route("/v1/messages/batches/{batch_id}/cancel", api(cancel_batch), methods=["POST"]),
        Route("/v1/messages/batches/{batch_id}/results", api(batch_results), methods=["GET"]),
        Route("/v1/requests", api(submit_requests), methods=["POST"]),
        Route("/v1/requests/{custom_id}", api(request_status), methods=["GET"]),
        Route("/v1/requests/{custom_id}", api(cancel_request), methods=["DELETE"]),
    ]
    middleware = []
    if settings.gateway_cors_origins:  # no CORS unless configured
        middleware.append(
            Middleware(
                CORSMiddleware,
                allow_origins=list(settings.gateway_cors_origins),
                allow_methods=["GET", "POST", "DELETE"],
                allow_headers=["x-api-key", "authorization", "content-type", "anthropic-version", "anthropic-beta"],
            )
        )
    app = Starlette(
        routes=routes,
        middleware=middleware,
        exception_handlers={HTTPException: on_http_exception, Exception: on_unexpected},
    )
    app.state.gateway = gateway or Gateway(settings)
    return app
