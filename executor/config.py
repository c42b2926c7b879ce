"""Executor settings: one pydantic-settings class, documented once.

Sources, highest priority first: command-line flags (``xtqueue executor --account ...``), environment variables
(``XTQUEUE_ACCOUNT``, ``XTQUEUE_REDIS_URL``, ...), a TOML file (``--config executor.toml`` or ``XTQUEUE_CONFIG``),
then the defaults below. Units are in the names.
"""

from __future__ import annotations

import math
import os
import socket
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict, TomlConfigSettingsSource

from producer_lib import contract as c


def default_executor_id() -> str:
    """The consumer name (and executor id) when none is configured: this host and process."""
    return f"{socket.gethostname()}-{os.getpid()}"


# --- the [risk] table (executor/safety/risk.py applies it) -----------------------------------------------------
Board = Literal["main", "star", "chinext", "bse", "etf", "lof", "cb", "other"]  # risk.classify_board


class RiskLimits(BaseModel):
    """The ``[risk]`` section of the executor's settings. Every limit is off by default (None / empty list)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    trading_enabled: bool = Field(True, description="false: every new order is refused (rule trading_enabled)")
    allowed_codes: list[str] = Field(default_factory=list, description="only these codes (empty = any)")
    blocked_codes: list[str] = Field(default_factory=list, description="never these codes")
    allowed_boards: list[Board] = Field(default_factory=list, description="only these boards (empty = any): "
                                        "main, star, chinext, bse, etf, lof, cb, other")
    blocked_boards: list[Board] = Field(default_factory=list, description="never these boards")
    max_order_volume: int | None = Field(None, ge=1, description="shares (张 for bonds) per order, inclusive")
    max_order_notional_cny: float | None = Field(None, gt=0, description="price x volume per order, inclusive")
    max_daily_orders: int | None = Field(None, ge=0, description="orders admitted per day (China date)")
    max_daily_notional_cny: float | None = Field(None, ge=0, description="sum of price x volume admitted per day")
    max_open_orders: int | None = Field(None, ge=0, description="non-final orders at once, incl. in flight")
    max_orders_per_s_per_strategy: float | None = Field(None, gt=0, description="token bucket refill rate per "
                                                        "strategy name (\"\" is one strategy)")
    orders_burst_per_strategy: int | None = Field(None, ge=1, description="token bucket capacity; default "
                                                  "ceil(rate), at least 1")
    price_band_pct: float | None = Field(None, gt=0, description="fat finger: a limit buy more than this % above, "
                                         "or a limit sell more than this % below, the reference price is refused")
    price_band_without_reference: Literal["allow", "refuse"] = Field(
        "allow", description="what the band does when no reference price is known")
    sell_within_sellable: bool = Field(False, description="refuse sells above can_use_volume minus own sells in "
                                       "flight (needs a position query, cached positions_cache_ms)")
    positions_cache_ms: int = Field(1_000, ge=0, description="age up to which a position snapshot is reused")
    # credit (两融) accounts
    max_financing_per_order_cny: float | None = Field(None, gt=0, description="融资: a margin buy's price x volume")
    max_short_per_order_cny: float | None = Field(None, gt=0, description="融券: a short sell's price x volume")
    max_financing_daily_cny: float | None = Field(None, ge=0, description="sum of margin buys admitted per day")
    max_short_daily_cny: float | None = Field(None, ge=0, description="sum of short sells admitted per day")
    min_maintenance_ratio_for_new_debt: float | None = Field(
        None, gt=0, description="refuse margin buys and short sells while the maintenance ratio (维持担保比例, "
        "1.5 = 150 %) is below this (needs a credit detail query, cached credit_cache_ms)")
    credit_cache_ms: int = Field(1_000, ge=0, description="age up to which a credit detail snapshot is reused")

    @field_validator("allowed_codes", "blocked_codes")
    @classmethod
    def _codes(cls, v: list[str]) -> list[str]:
        out = [x.strip().upper() for x in v]
        for x in out:
            if not c.CODE_RE.fullmatch(x):
                raise ValueError(f"{x!r} is not a code like 600000.SH")
        return out

    @property
    def burst(self) -> int:
        if self.orders_burst_per_strategy is not None:
            return self.orders_burst_per_strategy
        return max(1, math.ceil(self.max_orders_per_s_per_strategy or 1))


def data_dir() -> Path:
    """The per-user data folder (platformdirs): %LOCALAPPDATA%\\xtqueue on Windows, ~/.local/share/xtqueue on
    Linux. The journal's default home: a folder relative to wherever the executor happens to be started would be
    a fresh, empty journal after a start from elsewhere (and its idempotency lost with it)."""
    from platformdirs import user_data_path

    return user_data_path("xtqueue", appauthor=False)


class ExecutorSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="XTQUEUE_", extra="forbid", frozen=True)

    # Where and what
    redis_url: str = Field("redis://127.0.0.1:6379/0", description="redis:// or rediss:// URL")
    # Redis ACL user and TLS (deploy/redis/README.md, docs/security.md); the password is never logged
    redis_username: str = Field("", description="Redis ACL user (xtqueue acl writes one per account's executor)")
    redis_password: SecretStr | None = Field(None, description="its password (prefer env XTQUEUE_REDIS_PASSWORD)")
    redis_ca_cert: Path | None = Field(None, description="rediss://: CA certificate (PEM) that signed Redis' cert")
    redis_client_cert: Path | None = Field(None, description="rediss://: client certificate (PEM) for mutual TLS")
    redis_client_key: Path | None = Field(None, description="rediss://: private key (PEM) of the client certificate")
    account: str = Field("SIM001", description="fund account id this executor trades (one account per process)")
    account_type: Literal["STOCK", "CREDIT"] = Field("STOCK", description="STOCK (普通) or CREDIT (信用, 两融): "
                                        "what xtquant's StockAccount is built with; sim: CREDIT makes the simulated "
                                        "account a margin account")
    key_prefix: str = Field(c.KEY_PREFIX, description="prefix of every Redis key")
    executor_id: str = Field("", description="consumer name in the group; default host-pid")

    # Broker
    broker: Literal["sim", "xt"] = Field("sim", description="xt = xtquant's XtQuantTrader over MiniQMT; sim = the same "
                                         "class over the simulated MiniQMT serving sim_path (started as a child "
                                         "process when none serves it)")
    qmt_path: Path | None = Field(None, description="xt: full path of MiniQMT's userdata_mini folder")
    session_ids: list[int] = Field(default_factory=lambda: list(range(100, 200)),
                                   description="pool of xtquant session ids, one drawn per (re)connect")
    sim_path: Path = Field(default_factory=lambda: data_dir() / "sim",
                           description="sim: the folder a simulated MiniQMT serves (its SQLite state lives there; "
                                       "xtqueue qmt-sim --path DIR); made absolute, printed at start")
    sim_cash: float = Field(1_000_000.0, description="sim: starting cash of the account on a fresh simulator")
    sim_random_walk: bool = Field(False, description="sim: move prices by a seeded random walk (demo)")
    sim_seed: int = Field(7, description="sim: random walk seed")
    sim_session_clock: bool = Field(False, description="sim: enforce A-share trading sessions")

    # Stream consumption
    batch_size: int = Field(128, ge=1, le=10_000, description="max commands read per XREADGROUP")
    block_ms: int = Field(1_000, ge=1, description="XREADGROUP BLOCK")
    claim_idle_ms: int = Field(30_000, ge=0, description="take over another consumer's entry idle this long")
    max_deliveries: int = Field(5, ge=1, description="dead-letter an entry delivered this many times")
    stream_discovery_ms: int = Field(1_000, ge=100, description="look for new strategies' command streams (SCAN "
                                                                "<prefix>:{ACCOUNT}:cmd:*) this often")
    max_command_streams: int = Field(256, ge=1, description="serve at most this many command streams (the "
                                                            "account's own included); more are logged, not read")
    ack_wait_ms: int = Field(2_000, ge=0, description="after an order id is known, wait this long for its first "
                                                       "status before acknowledging with status 'unreported'")
    broker_timeout_ms: int = Field(10_000, ge=100, description="a broker query/cancel answer later than this fails")
    max_in_flight: int = Field(1_024, ge=1, description="commands being executed at once; reading pauses above it")
    claim_interval_ms: int = Field(5_000, ge=100, description="how often the loop looks for other consumers' "
                                                               "entries idle longer than claim_idle_ms")
    recovery_settle_ms: int = Field(2_000, ge=0, description="recovery: an order handed to the broker less than "
                                                             "this long ago and not in its order list is looked "
                                                             "up once more after this delay before it is re-placed")
    clock_sync_interval_ms: int = Field(5_000, ge=100, description="re-measure the Redis server clock (TIME) "
                                                                   "this often; deadlines use that clock")
    redis_timeout_ms: int = Field(5_000, ge=100, description="socket timeout of a Redis command (a blocking read "
                                                             "gets block_ms on top)")
    shutdown_timeout_ms: int = Field(10_000, ge=0, description="on stop, wait this long for in-flight commands and "
                                                               "the event flush")

    command_retention_ms: int = Field(3_600_000, ge=0, description="answered commands stay on the command stream "
                                                                   "this long (for operators), then are trimmed; "
                                                                   "pending or undelivered ones never are")

    # One active executor per account
    lease_ms: int = Field(5_000, ge=0, description="leadership lease; a standby takes over this long after the "
                                                   "leader stops renewing (0 = no lease: one executor only)")
    lease_renew_ms: int = Field(1_000, ge=50, description="the leader renews, and a standby tries to acquire, "
                                                          "this often (keep it well under lease_ms)")

    # Local durable state (journal of order intents, event spool)
    state_dir: Path = Field(default_factory=lambda: data_dir() / "state",
                            description="folder of the executor's SQLite journal and spool (made absolute, printed "
                                        "at start; keep it the same across restarts)")
    journal_retention_days: int = Field(3, ge=1, description="keep client order id records this many days")
    journal_fsync: bool = Field(False, description="fsync every journal commit (SQLite synchronous=FULL); off = "
                                                   "durable across executor crashes, not across power loss (the "
                                                   "broker's order list, searched by remark, covers that case)")

    # Health and logs
    heartbeat_interval_ms: int = Field(1_000, ge=100)
    reconnect_max_backoff_ms: int = Field(30_000, ge=100)
    probe_interval_ms: int = Field(5_000, ge=100, description="periodic broker liveness probe")
    log_level: str = Field("INFO")
    log_json: bool = Field(False, description="JSON log lines (for log shippers) instead of console lines")

    # Running it safely (docs/operations.md): pre-trade risk limits, kill switch, audit trail
    risk: RiskLimits = Field(default_factory=RiskLimits, description="pre-trade risk limits: the [risk] table of "
                             "the TOML file (flag / env XTQUEUE_RISK: JSON); every limit is off by default")
    halt_poll_ms: int = Field(250, ge=10, description="read the kill switch key this often to announce changes "
                                                      "(it is also read once per batch of orders)")
    audit_enabled: bool = Field(True, description="audit trail: stream xtq:{ACCOUNT}:audit and "
                                                  "state_dir/audit-ACCOUNT.log")
    audit_stream_maxlen: int = Field(c.AUDIT_STREAM_MAXLEN, ge=1_000, description="entries kept in the audit "
                                                                                  "stream (approximate trim)")
    audit_file_max_mb: int = Field(100, ge=1, description="rotate the audit file at this size (MB)")
    audit_file_backups: int = Field(20, ge=0, description="rotated audit files kept")

    # Signed commands (executor/safety/auth.py); secrets are never logged
    signing_keys_file: Path | None = Field(None, description="TOML file of strategies' signing keys (mode 0600)")
    signing_keys: SecretStr | None = Field(None, description="key_id:strategy:secret,... (prefer the file or env "
                                                             "XTQUEUE_SIGNING_KEYS to a flag)")
    signing_required: list[str] = Field(default_factory=list, description="strategies whose commands must be "
                                                                          "signed; * = every command")
    signing_window_ms: int = Field(30_000, ge=1, description="a signature's timestamp may differ from the Redis "
                                                             "server clock by this much")
    signing_replay_cache: int = Field(200_000, ge=1, description="command ids remembered against replays")

    @field_validator("account")
    @classmethod
    def _valid_account(cls, v: str) -> str:
        return c.validate_account(v)

    @field_validator("state_dir", "sim_path")
    @classmethod
    def _absolute(cls, v: Path) -> Path:
        """A relative folder is taken from the current directory once, here, and shown absolute from then on."""
        return v.expanduser().absolute()

    @model_validator(mode="after")
    def _broker_needs_path(self) -> ExecutorSettings:
        if self.broker == "xt" and self.qmt_path is None:
            raise ValueError("broker xt needs qmt_path (--qmt-path): the full path of MiniQMT's userdata_mini folder "
                             "(for the simulated MiniQMT use --broker sim --sim-path DIR)")
        return self

    # Set by load(config_file=...) on a one-off subclass; XTQUEUE_CONFIG names a file otherwise.
    _config_file: ClassVar[Path | None] = None

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        path = getattr(settings_cls, "_config_file", None) or os.environ.get("XTQUEUE_CONFIG")
        if path:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=Path(path)))
        return tuple(sources)

    @classmethod
    def load(cls, config_file: Path | str | None = None, **flags: Any) -> ExecutorSettings:
        """Settings from flags (None values ignored), then environment, then an optional TOML file."""
        given = {k: v for k, v in flags.items() if v is not None}
        if config_file is None:
            return cls(**given)
        from_file = type(cls.__name__, (cls,), {"_config_file": Path(config_file)})
        return from_file(**given)

    def keys(self) -> c.Keys:
        return c.Keys(self.account, self.key_prefix)

    def __repr_args__(self) -> Any:
        """repr/str (and so any traceback or log showing the settings) without the password of the Redis URL; the
        password and signing keys fields are SecretStr already."""
        from executor.logs import mask_url

        for name, value in super().__repr_args__():
            yield name, mask_url(value) if name == "redis_url" and isinstance(value, str) else value
