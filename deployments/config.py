"""The platform file (``strongroom.yaml``): sources, targets, keys, schedules and retention.

Validated with pydantic; any problem becomes one ``ConfigError`` line naming the field.
``${VAR}`` in a string value is replaced from the environment, so secrets need not be in the file.
"""

from __future__ import annotations

import os
import re
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from deployments.notifications import NotificationsConfig
from deployments.seed import SEED_SCHEDULES, SEED_TIMEZONE
from strongroom.crypto.key_models import KeyModel
from strongroom.errors import ConfigError, NotSupported
from strongroom.sources import registry

TIERS = ("full", "incremental", "differential", "snapshot", "replication", "monthly_archive")
ObjectiveClass = Literal["database", "files", "system", "security"]
_ENV_RE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_OBJECTIVE_RE = re.compile(r"(\d+)\s*(w|d|h|min|m|s)")
_OBJECTIVE_UNIT = {"w": 604800, "d": 86400, "h": 3600, "min": 60, "m": 60, "s": 1}


def valid_cron(value: str) -> str:
    """Return ``value`` if it is a five-field cron expression Prefect's schedules accept."""
    from prefect.client.schemas.schedules import CronSchedule

    try:
        if len(value.split()) != 5:
            raise ValueError(value)
        CronSchedule(cron=value)
    except ValueError:  # pydantic's ValidationError is a ValueError
        raise ValueError(f"invalid cron expression {value!r}") from None
    return value


def parse_objective(value: str) -> timedelta:
    """An RTO/RPO such as ``4h``, ``15m`` or ``1h30m``: weeks, days, hours, minutes (``m`` or
    ``min``: an objective is never months), seconds. ValueError names the value."""
    text = str(value).strip().lower()
    if not text or _OBJECTIVE_RE.sub("", text).strip():
        raise ValueError(f"bad objective {value!r}: use e.g. 4h, 15m (minutes), 1h30m, 2d")
    seconds = sum(int(n) * _OBJECTIVE_UNIT[unit] for n, unit in _OBJECTIVE_RE.findall(text))
    if seconds <= 0:
        raise ValueError(f"bad objective {value!r}: must be longer than zero")
    return timedelta(seconds=seconds)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class KeyConfig(KeyModel):
    """``keys.<name>``: exactly one of a password, a key file, a PKCS#11 token (``pkcs11:``:
    token and key labels, module, and the PIN as ``pin_env``, ``pin_file`` or ``pin: ${VAR}``;
    none: the host's STRONGROOM_PKCS11_PIN(_FILE)) or a KMS key (``kms:``: key id, endpoint,
    region and an optional key pair; empty fields: the slot's values and the AWS chain). The
    fields and checks are the key block's (:mod:`strongroom.crypto.key_models`)."""

    model_config = ConfigDict(extra="forbid")


class TargetConfig(_Model):
    url: str
    role: Literal["primary", "secondary", "tertiary"] = "primary"
    key: str
    endpoint_url: str | None = None
    region: str | None = None
    access_key_id: str | None = None
    secret_access_key: str | None = None
    options: dict[str, str | int | bool] = {}
    capacity_bytes: int | None = Field(default=None, gt=0)  # else local: the file system


class SourceConfig(BaseModel):
    """A source: its kind (any kind in the source registry), class of objectives, the host
    (work queue) its backups and restores run on, and kind-specific settings (extra fields)."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    kind: str
    class_: ObjectiveClass | None = Field(default=None, alias="class")
    restore_target: str | None = None
    # host whose worker runs this source's backups and restores (a work queue of the pool);
    # None: any worker of the pool's default queue (or the local ``serve`` process)
    runs_on: str | None = Field(default=None, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    # runbook: command a recovery runs before overwriting ("pg_ctl": the managed cluster),
    # the one that starts it again when the recovery stops with nothing overwritten, and
    # smoke checks after it ({sql|cypher|redis_key|http: ..., expect: ...})
    stop_service: str | None = None
    start_service: str | None = None
    smoke: list[dict[str, Any]] = []

    @field_validator("kind")
    @classmethod
    def _kind(cls, value: str) -> str:
        if value not in registry.kinds():
            raise ValueError(f"unknown source kind {value!r} "
                             f"(known: {', '.join(registry.kinds()) or 'none'})")
        return value

    @property
    def default_class(self) -> str:
        """The objective class of this kind when the file names none (from the registry)."""
        try:
            return registry.get(self.kind).default_class
        except NotSupported:
            return "files"

    def settings(self) -> dict[str, Any]:
        """Kind-specific settings passed to the source block (not kind/class/target/host)."""
        return dict(self.model_extra or {})


class ScheduleConfig(_Model):
    tier: Literal[TIERS]  # type: ignore[valid-type]
    cron: str
    classes: list[ObjectiveClass]
    keep: str
    sources: list[str] | None = None  # default: every source of the classes
    # delay alert after this long without a backup (default: the row's period + grace)
    alert_within: str | None = None

    _cron = field_validator("cron")(lambda cls, v: valid_cron(v))
    _within = field_validator("alert_within")(
        lambda cls, v: v if v is None or parse_objective(v) else v)

    @field_validator("keep")
    @classmethod
    def _keep(cls, value: str) -> str:
        from strongroom.policy.retention import Duration

        try:
            Duration.parse(value)
        except ConfigError as exc:
            raise ValueError(str(exc)) from None
        return value


class PlatformConfig(_Model):
    site: str = "default"
    timezone: str = SEED_TIMEZONE
    keys: dict[str, KeyConfig]
    targets: dict[str, TargetConfig]
    sources: dict[str, SourceConfig]
    schedules: dict[str, ScheduleConfig] = Field(
        default_factory=lambda: {k: ScheduleConfig(**v) for k, v in SEED_SCHEDULES.items()})
    objectives: dict[ObjectiveClass, dict[Literal["rto", "rpo"], str]] = {}
    # when the retention deployment forgets and prunes by the schedules' keep values
    retention_cron: str = "30 3 * * *"
    verify: Literal["structure", "read-data", "subset"] = "subset"
    # disaster recovery restores classes in this order (same class: at once); WAL reaches the
    # secondary tier within wal_copy_bound_s of being written
    recovery_priority: list[ObjectiveClass] = ["security", "database", "files", "system"]
    wal_copy_bound_s: float = Field(default=60.0, gt=0)
    notifications: NotificationsConfig = Field(default_factory=NotificationsConfig)
    metrics_textfile: str | None = None  # node-exporter textfile the backups rewrite

    _retention_cron = field_validator("retention_cron")(lambda cls, v: valid_cron(v))

    @field_validator("objectives")
    @classmethod
    def _objectives(cls, value: dict[str, dict[str, str]]) -> dict[str, dict[str, str]]:
        for pair in value.values():
            for text in pair.values():
                parse_objective(text)
        return value

    @field_validator("timezone")
    @classmethod
    def _tz(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}") from None
        return value

    @model_validator(mode="after")
    def _refs(self) -> PlatformConfig:
        for name, target in self.targets.items():
            if target.key not in self.keys:
                raise ValueError(f"target {name!r} names unknown key {target.key!r}")
        primaries = [n for n, t in self.targets.items() if t.role == "primary"]
        if len(primaries) != 1:
            raise ValueError(f"exactly one primary target needed, found {len(primaries)}")
        for name, sched in self.schedules.items():
            for src in sched.sources or []:
                if src not in self.sources:
                    raise ValueError(f"schedule {name!r} names unknown source {src!r}")
        return self

    @property
    def primary(self) -> str:
        return next(n for n, t in self.targets.items() if t.role == "primary")

    def replicas(self) -> list[str]:
        """Secondary then tertiary targets."""
        order = {"secondary": 0, "tertiary": 1}
        return sorted((n for n, t in self.targets.items() if t.role != "primary"),
                      key=lambda n: (order[self.targets[n].role], n))

    def source_class(self, name: str) -> str:
        src = self.sources[name]
        return src.class_ or src.default_class

    def sources_for(self, schedule: str) -> list[str]:
        """Sources a schedule covers: named ones, else every source of its classes."""
        sched = self.schedules[schedule]
        if sched.sources is not None:
            return list(sched.sources)
        return [n for n in self.sources if self.source_class(n) in sched.classes]

    def hosts(self) -> list[str | None]:
        """Hosts that sources run on, sorted; None (the default queue) first when a source
        names no host."""
        named = sorted({s.runs_on for s in self.sources.values() if s.runs_on})
        return ([None] if any(not s.runs_on for s in self.sources.values()) else []) + named


def _expand(value: Any, where: str) -> Any:
    if isinstance(value, dict):
        return {k: _expand(v, f"{where}.{k}" if where else str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [_expand(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, str):
        def sub(match: re.Match[str]) -> str:
            var = match.group(1)
            if var not in os.environ:
                raise ConfigError(f"{where}: environment variable {var} is not set")
            return os.environ[var]

        return _ENV_RE.sub(sub, value)
    return value


def parse_config(data: Any, origin: str = "platform file") -> PlatformConfig:
    """Validate a loaded document; errors become one line naming the field."""
    if not isinstance(data, dict):
        raise ConfigError(f"{origin}: expected a mapping at the top level")
    try:
        return PlatformConfig.model_validate(_expand(data, ""))
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err.get("loc", ())) or "file"
        msg = str(err.get("msg", "invalid")).removeprefix("Value error, ")
        raise ConfigError(f"{origin}: {where}: {msg}") from None


def load_config(path: str | Path, strict: bool = False) -> PlatformConfig:
    """Read and validate a platform YAML file; warn on stderr about sources whose schedules
    cannot meet their RPO (``strict``: a ConfigError)."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read platform file {path}: {exc.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark else ""
        raise ConfigError(f"{path}: not valid YAML{at}") from None
    config = parse_config(data, str(path))
    from deployments.objectives import check_schedules

    check_schedules(config, str(path), strict)
    return config
