"""Settings: the one place that reads the environment.

Everything else receives a `Settings` object; tests build one directly with `Settings(...)`.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from batchline.errors import ConfigError

#: The API's own caps for one batch (docs/batches-api.md). "MB" is not defined, so the byte cap
#: is taken as 10^6-based and the default keeps a wide margin under it.
API_MAX_BATCH_REQUESTS = 100_000
API_MAX_BATCH_BYTES = 256_000_000
DEFAULT_MAX_BATCH_BYTES = 200_000_000


def _int(env: Mapping[str, str], name: str, default: int, lo: int, hi: int | None = None) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r}: must be an integer") from None
    if value < lo or (hi is not None and value > hi):
        bound = f"between {lo} and {hi}" if hi is not None else f">= {lo}"
        raise ConfigError(f"{name}={value}: must be {bound}")
    return value


def _float(env: Mapping[str, str], name: str, default: float, lo: float) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r}: must be a number") from None
    if value < lo:
        raise ConfigError(f"{name}={value}: must be >= {lo}")
    return value


def _redis_url(url: str) -> str:
    from batchline import redis_url

    redis_url.parse(url)  # a malformed sentinel URL fails here, naming the setting and the rule
    return url


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = (env.get(name) or "").strip().lower()
    if raw == "":
        return default
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name}={raw!r}: must be true or false (1/0, yes/no, on/off)")


def _str(env: Mapping[str, str], name: str, default: str | None) -> str | None:
    raw = env.get(name)
    return default if raw is None or raw == "" else raw


def _tenant_limits(env: Mapping[str, str], requests: int, bytes_: int) -> dict[str, tuple[int, int]]:
    """BATCHLINE_TENANT_LIMITS: {"tenant": {"requests": N, "bytes": N}} -> tenant -> (requests, bytes).
    A key left out takes the BATCHLINE_TENANT_MAX_QUEUED_* value (resolved in `Settings.limits_of`)."""
    name, raw = "BATCHLINE_TENANT_LIMITS", env.get("BATCHLINE_TENANT_LIMITS")
    if not raw:
        return {}
    try:
        data = json.loads(raw)
    except ValueError:
        raise ConfigError(f"{name}: must be a JSON object") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{name}: must be a JSON object of tenant -> {{\"requests\": N, \"bytes\": N}}")
    out: dict[str, tuple[int, int]] = {}
    for tenant, limits in data.items():
        if not isinstance(limits, dict) or set(limits) - {"requests", "bytes"}:
            raise ConfigError(f"{name}[{tenant!r}]: must be an object with 'requests' and/or 'bytes'")
        values = [limits.get("requests", -1), limits.get("bytes", -1)]
        if any(type(v) is not int or v < -1 for v in values):
            raise ConfigError(f"{name}[{tenant!r}]: limits must be integers >= 0 (0: no limit)")
        out[str(tenant)] = (values[0], values[1])
    return out


@dataclass(frozen=True)
class Settings:
    """All of batchline's settings. The `#:` comment above a field is its meaning in docs/settings.md
    (`make docs` writes it with `config/settings_doc.py`); `from_env` names the variable that sets it."""

    #: Redis for data and the Celery broker: `redis://`, `rediss://`, `unix://`, a primary behind Sentinel,
    #: `redis+sentinel://` / `rediss+sentinel://` (docs/operating.md, Redis that fails over), or a Redis
    #: Cluster, `redis+cluster://host:port[,host:port...]` / `rediss+cluster://` (docs/redis.md).
    redis_url: str = field(default="redis://127.0.0.1:6379/0", repr=False)  # may hold passwords
    #: Prefix of every Redis key. With a cluster URL it becomes a hash tag, `bl` -> `{bl}` (one slot for
    #: every key; a prefix with one `{tag}` is kept as it is, other braces are refused; docs/redis.md).
    key_prefix: str = "bl"
    #: Replicas that must have a write (Redis `WAIT`) before intake, the create intent or an outcome is
    #: acknowledged; 0 answers once the primary has it (docs/operating.md, Redis that fails over).
    redis_min_replicas: int = 0
    #: How long such a write waits for its replicas; then it is answered as a RetryableError.
    redis_wait_timeout_ms: int = 1000
    #: Tenant of requests that name none.
    default_tenant: str = "default"
    #: Requests per batch (the API's cap is 100,000).
    max_batch_requests: int = 10_000
    #: Create-body bytes per batch (the API's cap is 256 MB).
    max_batch_bytes: int = DEFAULT_MAX_BATCH_BYTES
    #: Send a partial batch when its oldest request has waited this long.
    max_wait_seconds: float = 60.0
    #: Requests across open batches: at most your tier's processing-queue limit (docs/operating.md).
    max_requests_in_flight: int = 100_000
    #: Beat: poll open batches this often (one `list` call per 1,000).
    poll_interval_seconds: float = 30.0
    #: Beat: check this often whether a batch is due.
    pack_interval_seconds: float = 1.0
    #: Beat: check this often for expired leases, lost creates to reconcile, alerts and trims.
    sweep_interval_seconds: float = 15.0
    #: Lease on claimed requests before the create.
    claim_lease_seconds: float = 120.0
    #: Lease of a result worker on a batch, renewed per chunk.
    collect_lease_seconds: float = 60.0
    #: HTTP timeout of a create (made with the SDK's retries off).
    create_timeout_seconds: float = 300.0
    #: Allowed skew between our clock and the provider's `created_at` (reconcile windows).
    clock_skew_seconds: float = 60.0
    #: 404s on a batch this young are transient.
    fresh_batch_grace_seconds: float = 120.0
    #: After a create answered 5xx or timed out, reconcile this soon (a new batch shows in `list` by then).
    reconcile_delay_seconds: float = 10.0
    #: List pages read back to a create's window; short of it, nothing is released.
    reconcile_max_pages: int = 200
    #: List + retrieve calls per poll round (>= 2); rotates so every open batch is seen.
    poll_call_budget: int = 20
    #: Fetch results from `/v1/messages/batches/{id}/results` on `ANTHROPIC_BASE_URL` instead of
    #: `results_url` (gateways).
    results_from_base_url: bool = False
    #: Results 404s retried (with backoff) before each request of the batch ends `errored` /
    #: `results_unavailable`.
    results_404_retries: int = 5
    #: How long a delivered request's record stays, in seconds.
    record_ttl_seconds: int = 30 * 86400
    #: Attempts of a request: a transient error or an expiry is retried in a new batch up to this.
    max_attempts: int = 3
    #: While submission is paused, probe the API this often.
    pause_probe_seconds: float = 60.0
    #: Watchdog: alert on a batch in progress this long.
    stuck_batch_seconds: float = 6 * 3600.0
    #: Watchdog: alert on results not delivered this long after the create (the provider keeps them 29 days).
    results_warn_age_seconds: float = 26 * 86400.0
    #: The Anthropic SDK's own.
    anthropic_api_key: str | None = field(default=None, repr=False)
    #: The Anthropic SDK's own (the emulator's URL in the demo and the tests).
    anthropic_base_url: str | None = None
    #: S3 bucket of the results (unset: no S3 output).
    s3_bucket: str | None = None
    #: Prefix of every S3 key (slashes around it are dropped).
    s3_prefix: str = "batchline"
    #: S3 endpoint (unset: AWS; credentials the boto3 way, `AWS_*`).
    s3_endpoint_url: str | None = None
    #: Parallel per-request PUTs per result worker.
    s3_put_threads: int = 16
    #: Claim check (docs/large-requests.md): a request whose encoded params are over this many bytes is
    #: stored in the object store (`BATCHLINE_S3_BUCKET`, key `{s3_prefix}/params/<sha256>`) at intake, and
    #: Redis keeps its size, digest and key only; 0: every request is kept inline in Redis.
    inline_max_bytes: int = 65536
    #: A params object no request refers to any more is deleted by the sweeper this long after (the same
    #: document submitted again meanwhile keeps it); deploy/'s lifecycle rule is the backstop.
    params_gc_grace_seconds: float = 600.0
    #: Result lines handled per Redis round.
    results_chunk_lines: int = 500
    #: When set, intake refuses reply stream names without this prefix (unset: any stream name).
    reply_stream_prefix: str | None = None
    # Admission control (0: no limit). Intake refuses new requests with `Backpressure` past any of them.
    #: Admission: requests waiting to be packed, all tenants (0: no limit).
    max_queued_requests: int = 2_000_000
    #: Admission: create-body bytes of the requests waiting to be packed, all tenants (0: no limit).
    max_queued_bytes: int = 2_000_000_000
    #: Admission: intake stops at this share of Redis `maxmemory` (when set); the rest is the workers' reserve.
    intake_memory_percent: int = 80
    #: Admission: a tenant's requests accepted and not yet final (0: no limit).
    tenant_max_queued_requests: int = 1_000_000
    #: Admission: a tenant's bytes accepted and not yet final (0: no limit).
    tenant_max_queued_bytes: int = 1_000_000_000
    #: Per-tenant overrides of `BATCHLINE_TENANT_MAX_QUEUED_*`, JSON `{"tenant": {"requests": N, "bytes": N}}`,
    #: either key optional (0: no limit).
    tenant_limits: Mapping[str, tuple[int, int]] = field(default_factory=dict)
    #: Metrics label the N tenants with the most requests; the rest are summed as `other`.
    metrics_max_tenants: int = 50
    #: Per-day cost hashes older than this many days roll into one per month (`batchline costs` shows `YYYY-MM`).
    cost_days_kept: int = 90
    #: Trim each reply stream to about N entries on append (`XADD MAXLEN ~`; 0: never).
    reply_stream_maxlen: int = 0
    #: Flower's basic auth, `user:password` (`batchline flower` refuses to start without it, unless `--no-auth`).
    flower_basic_auth: str | None = field(default=None, repr=False)
    #: A JSON price table merged over `config/prices.json` by key (docs/operating.md, costs).
    prices_file: str | None = None
    #: `auto` (JSON when not on a terminal), `json` or `console`.
    log_format: str = "auto"
    #: Log level.
    log_level: str = "INFO"
    #: A named crash hook: tests only.
    crash_at: str | None = None
    # Tenants and the gateway (batchline/tenants.py, gateway/)
    #: A rotated key keeps working this long.
    key_grace_seconds: float = 86400.0
    #: Gateway: larger bodies get 413 (refused before reading further).
    gateway_max_body_bytes: int = 256_000_000
    #: Gateway: requests per client batch.
    gateway_max_batch_requests: int = 1_000_000
    #: Gateway: HTTP requests per key per window (then 429).
    gateway_rate_limit: int = 600
    #: Gateway: the rate window, in seconds.
    gateway_rate_window_seconds: int = 60
    #: Gateway: failed authentications per client address per rate window, then 429 for that address.
    gateway_auth_failure_limit: int = 30
    #: Gateway: proxies in front that append `X-Forwarded-For`; the client address is the entry the
    #: outermost one wrote (0: the TCP peer, the header ignored).
    gateway_trusted_proxy_hops: int = 0
    #: Gateway: a body must arrive within this (408).
    gateway_body_timeout_seconds: float = 60.0
    #: Gateway: comma-separated CORS origins (unset: no CORS).
    gateway_cors_origins: tuple[str, ...] = ()
    #: Gateway: base of `results_url`, the ingress's URL (unset: the request's Host).
    gateway_public_url: str | None = None
    #: `batchline gateway` listens on this host (`--host`).
    gateway_host: str = "127.0.0.1"
    #: `batchline gateway` listens on this port (`--port`).
    gateway_port: int = 8080
    #: Plain `http://` webhooks are accepted (tests, private networks); otherwise only `https://`.
    webhook_allow_http: bool = False
    #: Comma-separated hosts or CIDRs whose loopback, link-local or private addresses a webhook may reach
    #: (none: only public addresses; SSRF).
    webhook_allow_private: tuple[str, ...] = ()
    #: 429/5xx/timeouts of a webhook are retried this long, then the request is `undeliverable`.
    webhook_retry_hours: float = 24.0
    #: The longest wait between two tries of a webhook (the backoff doubles from 1 s).
    webhook_backoff_max_seconds: float = 600.0
    #: Webhook deliveries in flight per host, across all workers.
    webhook_max_concurrency: int = 8
    #: Per webhook delivery: connect and answer within this.
    webhook_timeout_seconds: float = 10.0
    #: A rotated webhook secret keeps signing (beside the new one) this long.
    webhook_secret_grace_seconds: float = 86400.0
    #: Beat: send due webhook and SQS deliveries (retries, and what a crashed sender left) this often.
    delivery_outbox_seconds: float = 2.0
    #: Region of `sqs:` reply targets (unset: boto3's own, `AWS_DEFAULT_REGION`).
    sqs_region: str | None = None
    #: SQS endpoint (unset: AWS; tests: moto).
    sqs_endpoint_url: str | None = None
    #: Deadlines (docs/deadlines.md): a `deadline` nearer than this many seconds after submission is refused.
    min_deadline_seconds: float = 60.0
    #: Deadlines: the expected batch turnaround (create to ended) until a model has a history of its
    #: own batches (then the p95 of its recent ones); a deadline nearer than it goes real-time at once.
    batch_turnaround_seconds: float = 3600.0
    #: Deadlines: a batch still running this many seconds before its earliest deadline sends its
    #: deadline requests real-time too (a hedge); the first answer is delivered.
    deadline_margin_seconds: float = 120.0
    #: Deadlines: real-time Messages calls in flight per model, across all workers.
    realtime_max_concurrency: int = 8

    def __post_init__(self) -> None:
        from batchline import redis_url
        from batchline.keys import cluster_prefix

        if redis_url.is_cluster(self.redis_url):  # every key in one slot (idempotent: '{bl}' stays '{bl}')
            object.__setattr__(self, "key_prefix", cluster_prefix(self.key_prefix))
        if not 1 <= self.max_batch_requests <= API_MAX_BATCH_REQUESTS:
            raise ConfigError(
                f"max_batch_requests={self.max_batch_requests}: must be between 1 and {API_MAX_BATCH_REQUESTS}"
            )
        if not 1024 <= self.max_batch_bytes < API_MAX_BATCH_BYTES:
            raise ConfigError(
                f"max_batch_bytes={self.max_batch_bytes}: must be between 1024 and {API_MAX_BATCH_BYTES - 1}"
            )
        if self.poll_call_budget < 2:
            raise ConfigError(f"poll_call_budget={self.poll_call_budget}: must be >= 2 (one list page, one retrieve)")
        if not 0 <= self.intake_memory_percent <= 100:
            raise ConfigError(f"intake_memory_percent={self.intake_memory_percent}: must be between 0 and 100")
        if self.inline_max_bytes < 0:
            raise ConfigError(f"inline_max_bytes={self.inline_max_bytes}: must be >= 0 (0: always inline)")
        if self.log_format not in ("auto", "json", "console"):
            raise ConfigError(f"log_format={self.log_format!r}: must be auto, json or console")

    def limits_of(self, tenant: str) -> tuple[int, int]:
        """(max queued requests, max queued bytes) of one tenant; 0 means no limit."""
        requests, bytes_ = self.tenant_limits.get(tenant, (-1, -1))
        return (self.tenant_max_queued_requests if requests < 0 else requests,
                self.tenant_max_queued_bytes if bytes_ < 0 else bytes_)

    def replace(self, **changes: object) -> Settings:
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        d = cls()
        return cls(
            redis_url=_redis_url(_str(env, "BATCHLINE_REDIS_URL", d.redis_url) or d.redis_url),
            key_prefix=_str(env, "BATCHLINE_KEY_PREFIX", d.key_prefix) or d.key_prefix,
            redis_min_replicas=_int(env, "BATCHLINE_REDIS_MIN_REPLICAS", d.redis_min_replicas, 0, 16),
            # below redis-py's 5 s socket timeout, so a WAIT that runs out is an answer, not a dropped connection
            redis_wait_timeout_ms=_int(env, "BATCHLINE_REDIS_WAIT_TIMEOUT_MS", d.redis_wait_timeout_ms, 1, 4_000),
            default_tenant=_str(env, "BATCHLINE_DEFAULT_TENANT", d.default_tenant) or d.default_tenant,
            max_batch_requests=_int(
                env, "BATCHLINE_MAX_BATCH_REQUESTS", d.max_batch_requests, 1, API_MAX_BATCH_REQUESTS
            ),
            max_batch_bytes=_int(
                env, "BATCHLINE_MAX_BATCH_BYTES", d.max_batch_bytes, 1024, API_MAX_BATCH_BYTES - 1
            ),
            max_wait_seconds=_float(env, "BATCHLINE_MAX_WAIT_SECONDS", d.max_wait_seconds, 0.0),
            max_requests_in_flight=_int(
                env, "BATCHLINE_MAX_REQUESTS_IN_FLIGHT", d.max_requests_in_flight, 1
            ),
            poll_interval_seconds=_float(env, "BATCHLINE_POLL_INTERVAL_SECONDS", d.poll_interval_seconds, 0.1),
            pack_interval_seconds=_float(env, "BATCHLINE_PACK_INTERVAL_SECONDS", d.pack_interval_seconds, 0.1),
            sweep_interval_seconds=_float(
                env, "BATCHLINE_SWEEP_INTERVAL_SECONDS", d.sweep_interval_seconds, 0.1
            ),
            claim_lease_seconds=_float(env, "BATCHLINE_CLAIM_LEASE_SECONDS", d.claim_lease_seconds, 1.0),
            collect_lease_seconds=_float(
                env, "BATCHLINE_COLLECT_LEASE_SECONDS", d.collect_lease_seconds, 1.0
            ),
            create_timeout_seconds=_float(
                env, "BATCHLINE_CREATE_TIMEOUT_SECONDS", d.create_timeout_seconds, 1.0
            ),
            clock_skew_seconds=_float(env, "BATCHLINE_CLOCK_SKEW_SECONDS", d.clock_skew_seconds, 0.0),
            fresh_batch_grace_seconds=_float(
                env, "BATCHLINE_FRESH_BATCH_GRACE_SECONDS", d.fresh_batch_grace_seconds, 0.0
            ),
            reconcile_delay_seconds=_float(env, "BATCHLINE_RECONCILE_DELAY_SECONDS", d.reconcile_delay_seconds, 0.0),
            reconcile_max_pages=_int(env, "BATCHLINE_RECONCILE_MAX_PAGES", d.reconcile_max_pages, 1, 100_000),
            poll_call_budget=_int(env, "BATCHLINE_POLL_CALL_BUDGET", d.poll_call_budget, 2, 10_000),
            results_from_base_url=_bool(env, "BATCHLINE_RESULTS_FROM_BASE_URL", d.results_from_base_url),
            results_404_retries=_int(env, "BATCHLINE_RESULTS_404_RETRIES", d.results_404_retries, 0, 1_000),
            record_ttl_seconds=_int(env, "BATCHLINE_RECORD_TTL_SECONDS", d.record_ttl_seconds, 60),
            max_attempts=_int(env, "BATCHLINE_MAX_ATTEMPTS", d.max_attempts, 1, 100),
            pause_probe_seconds=_float(env, "BATCHLINE_PAUSE_PROBE_SECONDS", d.pause_probe_seconds, 0.1),
            stuck_batch_seconds=_float(env, "BATCHLINE_STUCK_BATCH_SECONDS", d.stuck_batch_seconds, 1.0),
            results_warn_age_seconds=_float(
                env, "BATCHLINE_RESULTS_WARN_AGE_SECONDS", d.results_warn_age_seconds, 1.0
            ),
            anthropic_api_key=_str(env, "ANTHROPIC_API_KEY", None),
            anthropic_base_url=_str(env, "ANTHROPIC_BASE_URL", None),
            s3_bucket=_str(env, "BATCHLINE_S3_BUCKET", None),
            s3_prefix=(_str(env, "BATCHLINE_S3_PREFIX", d.s3_prefix) or "").strip("/"),
            s3_endpoint_url=_str(env, "BATCHLINE_S3_ENDPOINT_URL", None),
            s3_put_threads=_int(env, "BATCHLINE_S3_PUT_THREADS", d.s3_put_threads, 1, 256),
            inline_max_bytes=_int(env, "BATCHLINE_INLINE_MAX_BYTES", d.inline_max_bytes, 0),
            params_gc_grace_seconds=_float(env, "BATCHLINE_PARAMS_GC_GRACE_SECONDS", d.params_gc_grace_seconds, 0.0),
            results_chunk_lines=_int(env, "BATCHLINE_RESULTS_CHUNK_LINES", d.results_chunk_lines, 1, 5_000),
            reply_stream_prefix=_str(env, "BATCHLINE_REPLY_STREAM_PREFIX", None),
            max_queued_requests=_int(env, "BATCHLINE_MAX_QUEUED_REQUESTS", d.max_queued_requests, 0),
            max_queued_bytes=_int(env, "BATCHLINE_MAX_QUEUED_BYTES", d.max_queued_bytes, 0),
            intake_memory_percent=_int(env, "BATCHLINE_INTAKE_MEMORY_PERCENT", d.intake_memory_percent, 0, 100),
            tenant_max_queued_requests=_int(
                env, "BATCHLINE_TENANT_MAX_QUEUED_REQUESTS", d.tenant_max_queued_requests, 0
            ),
            tenant_max_queued_bytes=_int(env, "BATCHLINE_TENANT_MAX_QUEUED_BYTES", d.tenant_max_queued_bytes, 0),
            tenant_limits=_tenant_limits(env, d.tenant_max_queued_requests, d.tenant_max_queued_bytes),
            cost_days_kept=_int(env, "BATCHLINE_COST_DAYS_KEPT", d.cost_days_kept, 1),
            reply_stream_maxlen=_int(env, "BATCHLINE_REPLY_STREAM_MAXLEN", d.reply_stream_maxlen, 0),
            metrics_max_tenants=_int(env, "BATCHLINE_METRICS_MAX_TENANTS", d.metrics_max_tenants, 1, 10_000),
            prices_file=_str(env, "BATCHLINE_PRICES_FILE", None),
            flower_basic_auth=_str(env, "FLOWER_BASIC_AUTH", None),
            log_format=_str(env, "BATCHLINE_LOG_FORMAT", d.log_format) or d.log_format,
            log_level=(_str(env, "BATCHLINE_LOG_LEVEL", d.log_level) or d.log_level).upper(),
            crash_at=_str(env, "BATCHLINE_TEST_CRASH_AT", None),
            key_grace_seconds=_float(env, "BATCHLINE_KEY_GRACE_SECONDS", d.key_grace_seconds, 0.0),
            gateway_max_body_bytes=_int(env, "BATCHLINE_GATEWAY_MAX_BODY_BYTES", d.gateway_max_body_bytes, 1024),
            gateway_max_batch_requests=_int(
                env, "BATCHLINE_GATEWAY_MAX_BATCH_REQUESTS", d.gateway_max_batch_requests, 1
            ),
            gateway_rate_limit=_int(env, "BATCHLINE_GATEWAY_RATE_LIMIT", d.gateway_rate_limit, 1),
            gateway_rate_window_seconds=_int(
                env, "BATCHLINE_GATEWAY_RATE_WINDOW_SECONDS", d.gateway_rate_window_seconds, 1, 86400
            ),
            gateway_auth_failure_limit=_int(
                env, "BATCHLINE_GATEWAY_AUTH_FAILURE_LIMIT", d.gateway_auth_failure_limit, 1
            ),
            gateway_trusted_proxy_hops=_int(
                env, "BATCHLINE_GATEWAY_TRUSTED_PROXY_HOPS", d.gateway_trusted_proxy_hops, 0, 16
            ),
            gateway_body_timeout_seconds=_float(
                env, "BATCHLINE_GATEWAY_BODY_TIMEOUT_SECONDS", d.gateway_body_timeout_seconds, 0.1
            ),
            gateway_cors_origins=tuple(
                o.strip() for o in (_str(env, "BATCHLINE_GATEWAY_CORS_ORIGINS", "") or "").split(",") if o.strip()
            ),
            gateway_public_url=_str(env, "BATCHLINE_GATEWAY_PUBLIC_URL", None),
            gateway_host=_str(env, "BATCHLINE_GATEWAY_HOST", d.gateway_host) or d.gateway_host,
            gateway_port=_int(env, "BATCHLINE_GATEWAY_PORT", d.gateway_port, 1, 65535),
            webhook_allow_http=_bool(env, "BATCHLINE_WEBHOOK_ALLOW_HTTP", d.webhook_allow_http),
            webhook_allow_private=tuple(
                h.strip() for h in (_str(env, "BATCHLINE_WEBHOOK_ALLOW_PRIVATE", "") or "").split(",") if h.strip()
            ),
            webhook_retry_hours=_float(env, "BATCHLINE_WEBHOOK_RETRY_HOURS", d.webhook_retry_hours, 0.0),
            webhook_backoff_max_seconds=_float(
                env, "BATCHLINE_WEBHOOK_BACKOFF_MAX_SECONDS", d.webhook_backoff_max_seconds, 0.1
            ),
            webhook_max_concurrency=_int(env, "BATCHLINE_WEBHOOK_MAX_CONCURRENCY", d.webhook_max_concurrency, 1, 1000),
            webhook_timeout_seconds=_float(env, "BATCHLINE_WEBHOOK_TIMEOUT_SECONDS", d.webhook_timeout_seconds, 0.1),
            webhook_secret_grace_seconds=_float(
                env, "BATCHLINE_WEBHOOK_SECRET_GRACE_SECONDS", d.webhook_secret_grace_seconds, 0.0
            ),
            delivery_outbox_seconds=_float(env, "BATCHLINE_DELIVERY_OUTBOX_SECONDS", d.delivery_outbox_seconds, 0.1),
            sqs_region=_str(env, "BATCHLINE_SQS_REGION", None),
            sqs_endpoint_url=_str(env, "BATCHLINE_SQS_ENDPOINT_URL", None),
            min_deadline_seconds=_float(env, "BATCHLINE_MIN_DEADLINE_SECONDS", d.min_deadline_seconds, 0.0),
            batch_turnaround_seconds=_float(
                env, "BATCHLINE_BATCH_TURNAROUND_SECONDS", d.batch_turnaround_seconds, 0.0
            ),
            deadline_margin_seconds=_float(env, "BATCHLINE_DEADLINE_MARGIN_SECONDS", d.deadline_margin_seconds, 0.0),
            realtime_max_concurrency=_int(
                env, "BATCHLINE_REALTIME_MAX_CONCURRENCY", d.realtime_max_concurrency, 1, 1000
            ),
        )
