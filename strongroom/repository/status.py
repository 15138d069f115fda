"""3-2-1 check and utilisation across a set of repositories.

Per source: how many copies exist (the live data counts as one unless told otherwise, plus one
per repository holding a snapshot of it), on how many distinct media, and whether one is
off-site (its site differs from the home site). Per repository and tier: bytes stored, growth
(bytes added by snapshots of the last 7 and 30 days) and deduplication ratio (logical bytes of
all snapshots over stored data bytes).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlparse

from strongroom.errors import ConfigError, StrongroomError
from strongroom.repository.repo import Repository

TIERS = ("primary", "secondary", "archive")


@dataclass
class RepoSpec:
    """A repository to include: where, which tier, which site, and how to open it."""

    url: str
    tier: str = "primary"
    site: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    password: str | None = field(default=None, repr=False)
    keyfile: str | None = None

    @classmethod
    def parse(cls, text: str) -> RepoSpec:
        """``URL[,tier=T][,site=S][,password-file=F][,key-file=F][,<backend option>=V]``."""
        url, *rest = [p.strip() for p in text.split(",")]
        spec = cls(url)
        for item in rest:
            key, sep, value = item.partition("=")
            key = key.strip().replace("-", "_")
            if not sep or not key:
                raise ConfigError(f"repository option {item!r} is not key=value")
            if key == "tier":
                spec.tier = value
            elif key == "site":
                spec.site = value
            elif key == "password_file":
                from pathlib import Path

                from strongroom.repository.repo import read_password_file

                spec.password = read_password_file(Path(value))
            elif key == "key_file":
                spec.keyfile = value
            elif key.removeprefix("aws_") in ("password", "secret_access_key", "session_token"):
                raise ConfigError(f"repository option {key} would put a secret on the command "
                                  "line (visible in ps): use password-file=F or the AWS "
                                  "variables")
            else:
                spec.options[key] = value
        if spec.tier not in TIERS:
            raise ConfigError(f"unknown tier {spec.tier!r} for {url}: use {', '.join(TIERS)}")
        return spec


def _default_site(describe: dict[str, Any]) -> str:
    if describe.get("kind") == "s3":
        endpoint = describe.get("endpoint")
        return urlparse(endpoint).netloc if endpoint else f"aws:{describe.get('region')}"
    return "local"


def _medium(describe: dict[str, Any]) -> str:
    if describe.get("kind") == "s3":
        return f"s3:{describe.get('endpoint') or 'aws'}:{describe.get('region')}"
    return f"local:{describe.get('device')}"


def _usage(repo: Repository) -> dict[str, int]:
    out = {"data": 0, "index": 0, "snapshots": 0, "other": 0}
    for prefix in ("data", "index", "snapshots"):
        out[prefix] = sum(size for _, size in repo.backend.list(prefix + "/"))
    for prefix in ("keys", "copymap", "prune", "locks"):
        out["other"] += sum(size for _, size in repo.backend.list(prefix + "/"))
    out["total"] = sum(out.values())
    return out


def repository_status(repo: Repository, spec: RepoSpec, now: datetime) -> dict[str, Any]:
    """Utilisation and snapshot facts of one repository."""
    snaps = repo.list_snapshots()
    desc = repo.backend.describe()
    usage = _usage(repo)
    logical = sum(s.stats.bytes_total for s in snaps)
    growth = {f"{d}d": sum(s.stats.bytes_stored for s in snaps
                       if s.order_time >= now - timedelta(d))
              for d in (7, 30)}
    sources: dict[str, dict[str, Any]] = {}
    for s in snaps:
        entry = sources.setdefault(s.source_name, {"snapshots": 0, "latest": None})
        entry["snapshots"] += 1
        entry["latest"] = s.order_time.isoformat()  # a future date never hides a gap
    return {
        "url": repo.url, "tier": spec.tier, "site": spec.site or _default_site(desc),
        "backend": desc.get("kind"), "medium": _medium(desc),
        "storage_class": desc.get("storage_class"), "snapshots": len(snaps),
        "sources": sources, "bytes": usage, "logical_bytes": logical,
        "dedup_ratio": round(logical / usage["data"], 2) if usage["data"] else None,
        "growth_bytes": growth,
    }


def status(specs: list[RepoSpec], home_site: str | None = None, count_original: bool = True,
           max_age: timedelta | None = None, now: datetime | None = None,
           opener: Callable[[RepoSpec], Repository] | None = None) -> dict[str, Any]:
    """The 3-2-1 verdict and utilisation report for ``specs`` (first spec = home if no site).

    A repository that cannot be opened is listed with its error and holds no copies.
    ``max_age``: only snapshots newer than this count as copies.
    """
    if not specs:
        raise ConfigError("no repositories given")
    now = now or datetime.now(UTC)
    opener = opener or (lambda s: Repository.open(s.url, s.password, s.keyfile, s.options))
    repos: list[dict[str, Any]] = []
    for spec in specs:
        try:
            repo = opener(spec)
        except StrongroomError as exc:
            repos.append({"url": spec.url, "tier": spec.tier, "site": spec.site,
                          "error": str(exc), "sources": {}})
            continue
        try:
            repos.append(repository_status(repo, spec, now))
        finally:
            repo.close()
    home = home_site or next((r["site"] for r in repos if r.get("site")), "local")
    sources: dict[str, dict[str, Any]] = {}
    for r in repos:
        for name, facts in r["sources"].items():
            if max_age and datetime.fromisoformat(facts["latest"]) < now - max_age:
                continue
            entry = sources.setdefault(name, {"repositories": [], "media": set(),
                                              "backends": set(), "sites": set()})
            entry["repositories"].append(r["url"])
            entry["media"].add(r["medium"])
            entry["backends"].add(r["backend"])
            entry["sites"].add(r["site"])
    report_sources = []
    failing = []
    for name in sorted(sources):
        e = sources[name]
        copies = len(e["repositories"]) + (1 if count_original else 0)
        offsite = any(site != home for site in e["sites"])
        media = len(e["media"])
        problems = []
        if copies < 3:
            problems.append(f"{copies} copies (needs 3)")
        if media < 2:
            problems.append(f"{media} medium (needs 2)")
        if not offsite:
            problems.append("no off-site copy")
        failing += [f"{name}: {p}" for p in problems]
        report_sources.append({"source": name, "copies": copies, "media": media,
                               "backends": sorted(e["backends"]), "offsite": offsite,
                               "repositories": e["repositories"], "ok": not problems,
                               "problems": problems})
    failing += [f"{r['url']}: cannot be opened ({r['error']})" for r in repos if "error" in r]
    tiers: dict[str, dict[str, int]] = {}
    for r in repos:
        if "bytes" in r:
            t = tiers.setdefault(r["tier"], {"bytes": 0, "repositories": 0})
            t["bytes"] += r["bytes"]["total"]
            t["repositories"] += 1
    return {"ok": not failing, "home_site": home, "count_original": count_original,
            "time": now.isoformat(), "sources": report_sources, "failing": failing,
            "repositories": repos, "tiers": tiers}
