"""Settings: the only reader of the environment (PYTAKE_* variables and an optional .env)."""

from __future__ import annotations

import logging
from functools import lru_cache
from typing import Literal
from urllib.parse import parse_qs, urlsplit

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_SECRET_KEY = "pytake-development-secret-change-me"

log = logging.getLogger(__name__)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PYTAKE_", env_file=".env", extra="ignore")

    env: Literal["development", "test", "production"] = "development"
    database_url: str = "sqlite+aiosqlite:///./pytake.db"
    redis_url: str | None = None
    secret_key: str = DEFAULT_SECRET_KEY
    # Fernet key material for secrets at rest; derived from secret_key when not given.
    encryption_key: str | None = None

    host: str = "0.0.0.0"
    port: int = 8080
    auto_migrate: bool = True
    run_background_loops: bool | None = None  # default: in-process when there is no Redis
    log_level: str = "INFO"
    # `serve` and `worker`: freeze what start-up built and collect cyclic garbage less often
    # (kit/gc_tuning.py; fewer pauses and less CPU per request).
    gc_tuning: bool = True
    log_json: bool = False

    allow_signup: bool = True
    access_token_ttl_seconds: int = 900
    # /api/v1 clients get a single token and no refresh flow, so it lives longer.
    legacy_token_ttl_seconds: int = 24 * 3600
    refresh_token_ttl_seconds: int = 30 * 24 * 3600
    login_max_failures: int = 5
    login_lockout_seconds: int = 300
    password_min_length: int = 8
    # Argon2id's cost (pytake.auth.passwords). The defaults are RFC 9106's second recommended
    # option (3 passes over 64 MiB, 4 lanes: ~0.25 s of CPU per sign-in on one core of ours).
    # Production refuses less than OWASP's floor (19 MiB with 2 passes); the test suite runs
    # at the minimum, where most sign-ups and sign-ins would otherwise be most of its CPU.
    password_hash_time_cost: int = Field(default=3, ge=1)
    password_hash_memory_kib: int = Field(default=64 * 1024, ge=8)
    password_hash_parallelism: int = Field(default=4, ge=1, le=64)

    rate_limit_enabled: bool = True
    rate_limit_v1_per_org: str = "1000/minute;100/second"
    rate_limit_v1_anonymous: str = "1000/minute;100/second"
    rate_limit_legacy_auth: str = "5/minute"
    rate_limit_legacy_send: str = "100/minute"
    rate_limit_legacy_config: str = "30/minute"
    rate_limit_legacy_general: str = "1000/hour"
    rate_limit_key_prefix: str = "pytake-rl"

    meta_graph_url: str = "https://graph.facebook.com/v23.0"
    public_base_url: str | None = None
    allow_private_urls: bool = False
    max_webhook_body_bytes: int = 3 * 1024 * 1024
    # Every other request body (pytake.request_guard); contact imports have their own limit.
    max_request_body_bytes: int = 1024 * 1024
    max_import_body_bytes: int = 256 * 1024 * 1024
    # Group-commit batches of Meta webhooks one process keeps in flight (PostgreSQL; SQLite: 1).
    ingest_concurrent_batches: int = 2
    opt_out_keywords: list[str] = Field(default_factory=lambda: ["STOP", "PARAR", "SAIR"])

    # Events, realtime and outgoing webhooks (pytake.events, pytake.realtime, pytake.webhook).
    # Names in Redis (the events channel, the clients' names) start with this, so deployments
    # sharing one Redis stay apart: pub/sub channels are global across database numbers, so
    # the URL's /N does not separate them (a database number other than 0 is added to the
    # channel's name). `events_channel`, when set, is the channel's whole name.
    redis_namespace: str = "pytake"
    events_channel: str | None = None
    events_relay_grace_seconds: float = 5.0
    worker_poll_seconds: float = 2.0
    # On SIGTERM (and when `serve` with its loops stops) the loops claim nothing more and get
    # this long to finish what is in flight (webhook deliveries, sends to WhatsApp) and record
    # the outcomes; what is still running then is cancelled and left to its lease.
    worker_shutdown_grace_seconds: float = Field(default=15.0, ge=0)
    # `pytake worker`'s event loop (uvloop: less CPU per message sent, see bench/dispatch.py).
    worker_event_loop: Literal["uvloop", "asyncio"] = "uvloop"
    # `pytake worker`'s niceness (0-19, applied at start to the whole process): on a host it
    # shares with `serve` and PostgreSQL, background work (media fetch, sends, deliveries)
    # yields the CPU to the request path; it changes nothing where the CPU is idle. Off by
    # default: the worker also runs what customers wait for (the chatbot's replies, sends),
    # and on a saturated host 10 made text ingest beside media downloads 26 % -> 15 % slower
    # but the bot's median reply 3-7x later (docs/benchmarks.md, "… yields to `serve`?").
    worker_nice: int = Field(default=0, ge=0, le=19)
    ws_auth_timeout_seconds: float = 10.0
    ws_send_queue_size: int = 256
    # With Redis, each serve process writes its WebSocket counts this often for /api/v1/ws/stats
    # (an entry not refreshed for three periods counts as a process that has gone).
    ws_stats_report_seconds: float = 5.0
    # permessage-deflate on /ws (see pytake.cli.server_options for why it is off by default).
    ws_compression: bool = False
    webhook_timeout_seconds: float = 10.0
    webhook_max_retries: int = 3
    webhook_backoff_base_seconds: float = 1.0
    webhook_disable_after_seconds: float = 24 * 3600
    webhook_batch_size: int = 100
    webhook_concurrency: int = 64

    # Sending: how long an Idempotency-Key is remembered at least (then the worker deletes it,
    # in batches, every few minutes).
    idempotency_ttl_seconds: float = 24 * 3600
    idempotency_prune_every_seconds: float = 300.0
    idempotency_prune_batch_size: int = 1000

    # Message templates: how often the worker reads each number's templates from Meta again
    # (0 turns the periodic sync off; POST /v1/templates/sync still works).
    template_sync_interval_seconds: float = 6 * 3600

    # Campaigns (pytake.campaign; a number's throughput is its config's `throughput`): how far
    # ahead the dispatcher hands messages to the send pipeline, after how many consecutive
    # 131048 / 131049 failures a campaign pauses, and the window in which a reply counts for it.
    campaign_handoff_ahead_seconds: float = 1.0
    campaign_batch_size: int = 500
    campaign_pause_after_policy_errors: int = 20
    campaign_reply_window_hours: float = 72.0
    # A sent message without a delivery status settles its recipient as `sent` after this.
    campaign_settle_after_seconds: float = 60.0
    # How often a running campaign's in-flight recipients are settled (sent / failed).
    campaign_settle_every_seconds: float = 1.0
    # After a 130429 the pace halves; it grows back by a quarter each this many seconds.
    campaign_throttle_recover_seconds: float = 5.0
    campaign_poll_seconds: float = 0.2

    # Media (pytake.media): where files are kept, the fetch of inbound media, uploads.
    data_dir: str = "./pytake-data"
    media_storage: Literal["local", "s3"] = "local"
    media_local_dir: str | None = None  # default: <data_dir>/media
    media_s3_bucket: str | None = None
    media_s3_endpoint_url: str | None = None  # MinIO, R2, …; None: AWS
    media_s3_region: str | None = None
    media_s3_access_key_id: str | None = None
    media_s3_secret_access_key: str | None = None
    media_s3_prefix: str = ""
    # POST /v1/media bodies (Meta's largest type, documents, is 100 MB; multipart adds a little).
    max_media_upload_bytes: int = 101 * 1024 * 1024
    media_fetch_concurrency: int = 8
    media_fetch_max_attempts: int = 5
    media_fetch_backoff_seconds: float = 5.0
    media_fetch_timeout_seconds: float = 120.0
    media_signed_url_ttl_seconds: int = 300
    media_retention_every_seconds: float = 3600.0

    @model_validator(mode="after")
    def _refuse_default_secret_in_production(self) -> Settings:
        if self.env == "production" and self.secret_key == DEFAULT_SECRET_KEY:
            raise ValueError(
                "PYTAKE_SECRET_KEY must be set in production (PYTAKE_ENV=production); "
                "refusing to start with the development default"
            )
        if self.password_hash_memory_kib < 8 * self.password_hash_parallelism:
            raise ValueError(
                "PYTAKE_PASSWORD_HASH_MEMORY_KIB must be at least 8 KiB per lane "
                f"(PYTAKE_PASSWORD_HASH_PARALLELISM={self.password_hash_parallelism})"
            )
        weak = self.password_hash_memory_kib < 19 * 1024 or (
            self.password_hash_time_cost < 2 and self.password_hash_memory_kib < 46 * 1024
        )
        if self.env == "production" and weak:
            raise ValueError(
                "PYTAKE_PASSWORD_HASH_* is below OWASP's minimum for Argon2id (19 MiB with 2 "
                "passes, or 46 MiB with 1); refusing to store passwords so weakly in production"
            )
        return self

    @property
    def events_channel_name(self) -> str:
        """The Redis channel of the events bus (see `redis_namespace`)."""
        if self.events_channel:
            return self.events_channel
        return f"{self.redis_namespace}:events{_redis_db_suffix(self.redis_url)}"

    def redis_client_name(self, role: str) -> str:
        """What this process's Redis connections call themselves (CLIENT LIST)."""
        return f"{self.redis_namespace}:{role}"

    @property
    def background_loops_in_process(self) -> bool:
        if self.run_background_loops is not None:
            return self.run_background_loops
        return self.redis_url is None

    def warn_if_insecure(self) -> None:
        """Loudly warn when a non-development deployment runs on the placeholder secret."""
        if self.secret_key == DEFAULT_SECRET_KEY and self.env != "development":
            banner = "!" * 78
            log.warning(
                "%s\nPYTAKE_SECRET_KEY is the built-in development default. Anyone can forge "
                "tokens.\nSet PYTAKE_SECRET_KEY to a long random value.\n%s",
                banner,
                banner,
            )


def _redis_db_suffix(url: str | None) -> str:
    """ ":db<N>" for a Redis URL naming database N > 0, else "" (the historical channel)."""
    if not url:
        return ""
    parts = urlsplit(url)
    number = parts.path.strip("/") or parse_qs(parts.query).get("db", ["0"])[0]
    return f":db{number}" if number not in ("", "0") else ""


@lru_cache
def get_settings() -> Settings:
    return Settings()
