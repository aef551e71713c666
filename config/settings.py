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
    """All of batchline's settings. Field docs name the environment variable that sets each."""

    redis_url: str = "redis://127.0.0.1:6379/0"  # BATCHLINE_REDIS_URL (data and Celery broker)
    key_prefix: str = "bl"  # BATCHLINE_KEY_PREFIX
    default_tenant: str = "default"  # BATCHLINE_DEFAULT_TENANT
    max_batch_requests: int = 10_000  # BATCHLINE_MAX_BATCH_REQUESTS (<= 100,000)
    max_batch_bytes: int = DEFAULT_MAX_BATCH_BYTES  # BATCHLINE_MAX_BATCH_BYTES (< 256 MB)
    max_wait_seconds: float = 60.0  # BATCHLINE_MAX_WAIT_SECONDS
    max_requests_in_flight: int = 100_000  # BATCHLINE_MAX_REQUESTS_IN_FLIGHT (<= tier queue: 200k/300k/500k)
    poll_interval_seconds: float = 30.0  # BATCHLINE_POLL_INTERVAL_SECONDS
    pack_interval_seconds: float = 1.0  # BATCHLINE_PACK_INTERVAL_SECONDS
    sweep_interval_seconds: float = 15.0  # BATCHLINE_SWEEP_INTERVAL_SECONDS
    claim_lease_seconds: float = 120.0  # BATCHLINE_CLAIM_LEASE_SECONDS
    collect_lease_seconds: float = 60.0  # BATCHLINE_COLLECT_LEASE_SECONDS
    create_timeout_seconds: float = 300.0  # BATCHLINE_CREATE_TIMEOUT_SECONDS
    clock_skew_seconds: float = 60.0  # BATCHLINE_CLOCK_SKEW_SECONDS (ours vs the provider's, when reconciling)
    fresh_batch_grace_seconds: float = 120.0  # BATCHLINE_FRESH_BATCH_GRACE_SECONDS (404s tolerated)
    reconcile_delay_seconds: float = 10.0  # BATCHLINE_RECONCILE_DELAY_SECONDS (a new batch shows in list by then)
    reconcile_max_pages: int = 200  # BATCHLINE_RECONCILE_MAX_PAGES (list pages back to a create's window)
    poll_call_budget: int = 20  # BATCHLINE_POLL_CALL_BUDGET (list + retrieve calls per poll round, >= 2)
    results_from_base_url: bool = False  # BATCHLINE_RESULTS_FROM_BASE_URL (documented path on ANTHROPIC_BASE_URL)
    results_404_retries: int = 5  # BATCHLINE_RESULTS_404_RETRIES (then each request: errored results_unavailable)
    record_ttl_seconds: int = 30 * 86400  # BATCHLINE_RECORD_TTL_SECONDS (after delivery)
    max_attempts: int = 3  # BATCHLINE_MAX_ATTEMPTS
    pause_probe_seconds: float = 60.0  # BATCHLINE_PAUSE_PROBE_SECONDS (while paused, probe this often)
    stuck_batch_seconds: float = 6 * 3600.0  # BATCHLINE_STUCK_BATCH_SECONDS (watchdog)
    results_warn_age_seconds: float = 26 * 86400.0  # BATCHLINE_RESULTS_WARN_AGE_SECONDS (29-day end)
    anthropic_api_key: str | None = field(default=None, repr=False)  # ANTHROPIC_API_KEY
    anthropic_base_url: str | None = None  # ANTHROPIC_BASE_URL
    s3_bucket: str | None = None  # BATCHLINE_S3_BUCKET (unset: no S3 output)
    s3_prefix: str = "batchline"  # BATCHLINE_S3_PREFIX
    s3_endpoint_url: str | None = None  # BATCHLINE_S3_ENDPOINT_URL
    s3_put_threads: int = 16  # BATCHLINE_S3_PUT_THREADS
    # Claim check (docs/large-requests.md): a request whose encoded params are over this many bytes is
    # stored in the object store above (BATCHLINE_S3_BUCKET, key `{s3_prefix}/params/<sha256>`) at
    # intake, and Redis keeps its size, digest and key only; 0: every request is kept inline in Redis.
    inline_max_bytes: int = 65536  # BATCHLINE_INLINE_MAX_BYTES
    # a params object no request refers to any more is deleted by the sweeper this long after (a
    # producer submitting the same document again meanwhile keeps it); deploy/'s lifecycle rule is the backstop
    params_gc_grace_seconds: float = 600.0  # BATCHLINE_PARAMS_GC_GRACE_SECONDS
    results_chunk_lines: int = 500  # BATCHLINE_RESULTS_CHUNK_LINES
    reply_stream_prefix: str | None = None  # BATCHLINE_REPLY_STREAM_PREFIX (unset: any stream name)
    # Admission control (0: no limit). Intake refuses new requests with `Backpressure` past any of them.
    max_queued_requests: int = 2_000_000  # BATCHLINE_MAX_QUEUED_REQUESTS (waiting to be packed, all tenants)
    max_queued_bytes: int = 2_000_000_000  # BATCHLINE_MAX_QUEUED_BYTES (their create-body bytes)
    intake_memory_percent: int = 80  # BATCHLINE_INTAKE_MEMORY_PERCENT (of Redis maxmemory; the rest is the workers')
    tenant_max_queued_requests: int = 1_000_000  # BATCHLINE_TENANT_MAX_QUEUED_REQUESTS (accepted, not yet final)
    tenant_max_queued_bytes: int = 1_000_000_000  # BATCHLINE_TENANT_MAX_QUEUED_BYTES
    # BATCHLINE_TENANT_LIMITS: JSON {"tenant": {"requests": N, "bytes": N}}, either key optional
    tenant_limits: Mapping[str, tuple[int, int]] = field(default_factory=dict)
    metrics_max_tenants: int = 50  # BATCHLINE_METRICS_MAX_TENANTS (the rest are labelled `other`)
    cost_days_kept: int = 90  # BATCHLINE_COST_DAYS_KEPT (older per-day cost hashes roll into months)
    reply_stream_maxlen: int = 0  # BATCHLINE_REPLY_STREAM_MAXLEN (trim reply streams to ~N entries; 0: never)
    flower_basic_auth: str | None = field(default=None, repr=False)  # FLOWER_BASIC_AUTH ("user:password")
    prices_file: str | None = None  # BATCHLINE_PRICES_FILE (JSON merged over config/prices.json)
    log_format: str = "auto"  # BATCHLINE_LOG_FORMAT: auto | json | console
    log_level: str = "INFO"  # BATCHLINE_LOG_LEVEL
    crash_at: str | None = None  # BATCHLINE_TEST_CRASH_AT: named crash hook, tests only
    # Tenants and the gateway (batchline/tenants.py, gateway/)
    key_grace_seconds: float = 86400.0  # BATCHLINE_KEY_GRACE_SECONDS (a rotated key keeps working this long)
    gateway_max_body_bytes: int = 256_000_000  # BATCHLINE_GATEWAY_MAX_BODY_BYTES (413 above it)
    gateway_max_batch_requests: int = 1_000_000  # BATCHLINE_GATEWAY_MAX_BATCH_REQUESTS (per client batch)
    gateway_rate_limit: int = 600  # BATCHLINE_GATEWAY_RATE_LIMIT (HTTP requests per key per window)
    gateway_rate_window_seconds: int = 60  # BATCHLINE_GATEWAY_RATE_WINDOW_SECONDS
    # failed authentications per client address per window, then 429 for that address (guessing keys)
    gateway_auth_failure_limit: int = 30  # BATCHLINE_GATEWAY_AUTH_FAILURE_LIMIT
    # proxies in front that append X-Forwarded-For (0: the peer address is the client; never trust XFF)
    gateway_trusted_proxy_hops: int = 0  # BATCHLINE_GATEWAY_TRUSTED_PROXY_HOPS
    gateway_body_timeout_seconds: float = 60.0  # BATCHLINE_GATEWAY_BODY_TIMEOUT_SECONDS (slow clients: 408)
    gateway_cors_origins: tuple[str, ...] = ()  # BATCHLINE_GATEWAY_CORS_ORIGINS (comma-separated; none: no CORS)
    gateway_public_url: str | None = None  # BATCHLINE_GATEWAY_PUBLIC_URL (base of results_url; default: the Host)
    gateway_host: str = "127.0.0.1"  # BATCHLINE_GATEWAY_HOST (`batchline gateway --host`)
    gateway_port: int = 8080  # BATCHLINE_GATEWAY_PORT (`batchline gateway --port`)

    def __post_init__(self) -> None:
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
            redis_url=_str(env, "BATCHLINE_REDIS_URL", d.redis_url) or d.redis_url,
            key_prefix=_str(env, "BATCHLINE_KEY_PREFIX", d.key_prefix) or d.key_prefix,
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
        )
