"""Settings: environment variables ``BERTH_*`` over an optional TOML file.

Every field of :class:`Settings` is one setting; its environment variable is
``BERTH_`` plus the field name in upper case.  ``BERTH_CONFIG`` names a TOML
file whose top-level keys are the same field names (lower case).  The
environment wins over the file, the file over the defaults.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, get_type_hints

AUTH_STRATEGIES = ("noauth2", "admin_token", "keystone")
# Host-state sync backends (berth.sync.backends.NAMES; docs/scheduler.md, "Sync backends").
HOST_STATE_SYNCS = ("db", "pg_notify", "redis", "nats", "memcached")


def _default_data_dir() -> str:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return str(Path(base) / "berth")


@dataclass(frozen=True)
class Settings:
    """All of berth's settings, with their defaults."""

    data_dir: str = field(default_factory=_default_data_dir)
    database_url: str = ""
    # How long the database may keep a request waiting, in seconds (0: no limit);
    # berth.db.engine.Timeouts says which driver and server setting each becomes.
    database_connect_timeout: float = 5.0
    database_lock_timeout: float = 10.0
    database_statement_timeout: float = 30.0
    database_pool_timeout: float = 10.0
    # Sent data unacknowledged, or a connection waiting for an answer hearing nothing from
    # the database's machine, for this long: the connection is dead (a cut network link).
    database_network_timeout: float = 5.0
    # A pooled connection idle for longer than this (seconds) is pinged before use.
    database_ping_after: float = 1.0
    # Connections per worker process (PostgreSQL, MariaDB), and how many more for a burst.
    database_pool_size: int = 20
    database_max_overflow: int = 10
    # Retry-After (seconds) of the 503 answered while the database is unavailable.
    database_retry_after: int = 2
    bind: str = "127.0.0.1:8780"
    workers: int = field(default_factory=lambda: os.cpu_count() or 1)
    # Requests one worker process serves at once (its threads); more wait in the server's queue.
    threads: int = 16
    server: str = "granian"
    shutdown_grace: int = 8
    auth_strategy: str = "noauth2"
    enforce_new_defaults: bool = True
    policy_file: str = ""
    cors_allowed_origin: str = ""
    cors_allow_headers: str = ""
    cors_expose_headers: str = ""
    cors_max_age: int = 3600
    allocation_conflict_retry_count: int = 10
    randomize_allocation_candidates: bool = False
    max_allocation_candidates: int = -1
    candidates_filter: str = "memory"
    log_level: str = "INFO"
    log_json: bool = True
    log_requests: bool = True
    # Bounds on what a client may send (docs/configuration.md, "Request limits").
    max_request_body_bytes: int = 4 * 1024 * 1024
    max_json_depth: int = 32
    # Keystone (auth_strategy = "keystone"; needs the berth[keystone] extra).
    # Empty values are not passed on, so keystonemiddleware's defaults (or
    # the keystone_config_file's [keystone_authtoken] values) apply.
    keystone_config_file: str = ""
    keystone_auth_url: str = ""
    keystone_www_authenticate_uri: str = ""
    keystone_auth_type: str = ""
    keystone_username: str = ""
    keystone_password: str = ""
    keystone_project_name: str = ""
    keystone_user_domain_name: str = ""
    keystone_project_domain_name: str = ""
    keystone_region_name: str = ""
    keystone_interface: str = ""
    keystone_cafile: str = ""
    keystone_insecure: bool = False
    keystone_memcached_servers: str = ""
    keystone_service_token_roles_required: bool = True
    # The scheduler (berth.scheduler; docs/scheduler.md).  Lists are
    # comma-separated; weighers are name=multiplier (negative RAM/CPU/disk
    # multipliers pack, positive ones spread).
    scheduler_filters: str = (
        "host_enabled,availability_zone,tenant_isolation,aggregate_extra_specs,"
        "server_group,same_host,different_host,ignore_hosts,metrics_threshold"
    )
    scheduler_weighers: str = "ram=1.0,cpu=1.0,disk=0.0,instances=0.0,server_group=1.0"
    scheduler_host_subset_size: int = 1
    scheduler_alternates: int = 2
    scheduler_claim_retries: int = 3
    scheduler_claim_batch: int = 64
    scheduler_scan_limit: int = 20
    scheduler_scan_random_start: bool = True
    scheduler_partitioning: str = "none"
    # False: a worker whose own hosts are full answers NoValidHost (placement-bench's strict
    # partitions) instead of placing on another worker's hosts.
    scheduler_partition_fallback: bool = True
    scheduler_worker_index: int = -1
    scheduler_worker_count: int = 0
    scheduler_worker_heartbeat: int = 10
    scheduler_hash_replicas: int = 64
    scheduler_refresh_ms: int = 1000
    scheduler_index_refresh_ms: int = 1000
    scheduler_metric_limits: str = ""
    scheduler_metric_weights: str = ""
    scheduler_default_availability_zone: str = "nova"
    # Host state in namespaces (docs/scheduler.md, "Host state"): the most bytes one
    # namespace's JSON may take, the directory of operator-registered JSON Schemas
    # (<namespace>.json), and what the host_fresh filter judges.
    scheduler_host_state_max_bytes: int = 65536
    scheduler_host_state_schema_dir: str = ""
    scheduler_host_fresh_namespace: str = "compute"
    scheduler_host_fresh_seconds: int = 120
    # How workers learn of host-state and aggregate-metadata writes (docs/scheduler.md,
    # "Sync backends"): db (poll the change logs), pg_notify, redis, nats or memcached;
    # the backend's server (empty: its default); and how often a worker still reads the
    # logs while the backend is listening (0: every scheduler_refresh_ms).
    host_state_sync: str = "db"
    host_state_sync_url: str = ""
    host_state_sync_check_ms: int = 0
    # Pull-based dispatch (berth.pull; docs/pull.md).  NATS JetStream carries the work;
    # the database stays the truth.
    nats_url: str = "nats://127.0.0.1:4222"
    # Seconds a NATS connect or request may take; after a failed connect, NATS is
    # not asked again for nats_retry_s (the routes go on, the sweeper publishes later).
    nats_timeout_s: float = 2.0
    nats_retry_s: float = 2.0
    pull_ack_wait_s: int = 60
    pull_max_ack_pending: int = 10000
    pull_duplicate_window_s: int = 120
    # 0: this process runs no sweeper.
    pull_sweep_interval_s: float = 5.0
    pull_sweep_batch: int = 500
    pull_heartbeat_timeout_s: int = 30
    pull_request_timeout_s: int = 600
    # Claimed and not confirmed active for this long (its host heartbeating or not): failed,
    # allocation removed.  Well above any boot: a boot that outlasts it is lost.
    pull_claim_timeout_s: int = 900
    pull_queues_sync_interval_s: int = 60

    def __post_init__(self) -> None:
        if self.auth_strategy not in AUTH_STRATEGIES:
            raise ValueError(
                f"auth_strategy must be one of {', '.join(AUTH_STRATEGIES)}, "
                f"not {self.auth_strategy!r}"
            )
        if self.workers < 1:
            raise ValueError("workers must be at least 1")
        if self.threads < 1:
            raise ValueError("threads must be at least 1")
        if self.max_request_body_bytes < 1 or self.max_json_depth < 1:
            raise ValueError("max_request_body_bytes and max_json_depth must be at least 1")
        if self.server not in ("gunicorn", "granian"):
            raise ValueError("server must be gunicorn or granian")
        if self.shutdown_grace < 1:
            raise ValueError("shutdown_grace must be at least 1 (seconds)")
        if self.candidates_filter not in ("memory", "sql", "python"):
            raise ValueError("candidates_filter must be memory, sql or python")
        for name in ("connect", "lock", "statement", "pool", "network"):
            if getattr(self, f"database_{name}_timeout") < 0:
                raise ValueError(f"database_{name}_timeout must not be negative")
        if self.scheduler_host_state_max_bytes < 2 or self.scheduler_host_fresh_seconds < 1:
            raise ValueError(
                "scheduler_host_state_max_bytes must be at least 2 and "
                "scheduler_host_fresh_seconds at least 1"
            )
        if self.scheduler_partitioning not in ("none", "modulo", "consistent"):
            raise ValueError("scheduler_partitioning must be none, modulo or consistent")
        self._check_sync()
        self._check_pull()

    def _check_sync(self) -> None:
        if self.host_state_sync not in HOST_STATE_SYNCS:
            raise ValueError(
                f"host_state_sync must be one of {', '.join(HOST_STATE_SYNCS)}, "
                f"not {self.host_state_sync!r}"
            )
        if self.host_state_sync == "pg_notify" and not self.effective_database_url.startswith(
            "postgres"
        ):
            raise ValueError(
                "host_state_sync = pg_notify needs a PostgreSQL database (LISTEN/NOTIFY); "
                "database_url is not one: choose db, redis, nats or memcached"
            )
        if self.host_state_sync_check_ms < 0:
            raise ValueError("host_state_sync_check_ms must not be negative")

    @property
    def host_state_sync_target(self) -> str:
        """The sync backend's server: the setting, or nats_url for nats (empty: the
        backend's own default)."""
        if self.host_state_sync_url:
            return self.host_state_sync_url
        return self.nats_url if self.host_state_sync == "nats" else ""

    def _check_pull(self) -> None:
        positive = [
            "pull_ack_wait_s",
            "pull_max_ack_pending",
            "pull_duplicate_window_s",
            "pull_sweep_batch",
            "pull_heartbeat_timeout_s",
            "pull_request_timeout_s",
            "pull_claim_timeout_s",
            "pull_queues_sync_interval_s",
        ]
        for name in positive:
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        if self.nats_timeout_s <= 0 or self.nats_retry_s < 0 or self.pull_sweep_interval_s < 0:
            raise ValueError(
                "nats_timeout_s must be positive; nats_retry_s and "
                "pull_sweep_interval_s must not be negative"
            )
        if not self.nats_url.startswith(("nats://", "tls://")):
            raise ValueError(f"nats_url must be a nats:// or tls:// URL, not {self.nats_url!r}")

    @property
    def effective_database_url(self) -> str:
        """The database URL, defaulting to a SQLite file in the data dir."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{Path(self.data_dir) / 'berth.sqlite'}"

    @property
    def host_port(self) -> tuple[str, int]:
        """``bind`` split into host and port."""
        host, _, port = self.bind.rpartition(":")
        return host or "127.0.0.1", int(port)


def _coerce(kind: Any, raw: Any, name: str) -> Any:
    if not isinstance(raw, str):
        return raw
    if kind is bool:
        lowered = raw.strip().lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off", ""):
            return False
        raise ValueError(f"BERTH_{name.upper()}: not a boolean: {raw!r}")
    if kind is int:
        try:
            return int(raw)
        except ValueError:
            raise ValueError(f"BERTH_{name.upper()}: not an integer: {raw!r}") from None
    if kind is float:
        try:
            return float(raw)
        except ValueError:
            raise ValueError(f"BERTH_{name.upper()}: not a number: {raw!r}") from None
    return raw


def load(environ: dict[str, str] | None = None, **overrides: Any) -> Settings:
    """Build settings from the TOML file, the environment and ``overrides``."""
    env = dict(os.environ if environ is None else environ)
    values: dict[str, Any] = {}
    config_path = env.get("BERTH_CONFIG")
    if config_path:
        with open(config_path, "rb") as fh:
            values.update(tomllib.load(fh))
    names = {f.name for f in fields(Settings)}
    unknown = set(values) - names
    if unknown:
        raise ValueError(f"unknown settings in {config_path}: {', '.join(sorted(unknown))}")
    for name in names:
        key = f"BERTH_{name.upper()}"
        if key in env:
            values[name] = env[key]
    values.update(overrides)
    hints = get_type_hints(Settings)
    coerced = {name: _coerce(hints[name], raw, name) for name, raw in values.items()}
    return Settings(**coerced)


def describe() -> list[tuple[str, str, str]]:
    """(environment variable, default, type) for every setting."""
    rows = []
    hints = get_type_hints(Settings)
    for f in fields(Settings):
        default = repr(f.default) if f.default is not dataclasses.MISSING else "(computed)"
        rows.append((f"BERTH_{f.name.upper()}", default, hints[f.name].__name__))
    return rows
