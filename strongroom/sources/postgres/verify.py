"""Verification of a restored cluster or database: amcheck, row counts, checksums, ordered
columns and primary keys against the figures recorded at backup time (the engine's own checks,
always run), and a Great Expectations suite when GX is installed.

GX is optional (the ``orchestration`` extra): a default ``pip install strongroom`` restores and
verifies without it. Option ``gx``: ``auto`` (default: run it when installed), ``true`` (it
must run: a restore without GX stops *before* it changes anything), ``false``.
"""

from __future__ import annotations

import importlib.util
from typing import Any

from strongroom.errors import ConfigError, IntegrityError
from strongroom.sources.postgres.cluster import Server
from strongroom.sources.postgres.conn import Dsn
from strongroom.sources.postgres.pgbin import binary, run
from strongroom.sources.postgres.tablestats import compare, databases, table_stats

GX_EXTRA = "orchestration"
GX_MODULES = ("great_expectations", "sqlalchemy")


def gx_missing() -> str | None:
    """The first module the GX suite needs that cannot be imported, or None."""
    for name in GX_MODULES:
        try:
            if importlib.util.find_spec(name) is None:
                return name
        except (ImportError, ValueError):  # a broken or blocked install
            return name
    return None


def gx_choice(options: dict[str, Any]) -> bool:
    """Whether to run the GX suite, from option ``gx`` (auto, true or false). Called before
    a restore changes anything: ``gx=true`` without GX installed is a ConfigError naming the
    extra to install."""
    value = str(options.get("gx", "auto")).strip().lower()
    if value in ("0", "false", "no", "off"):
        return False
    missing = gx_missing()
    if value == "auto":
        return missing is None
    if value not in ("1", "true", "yes", "on"):
        raise ConfigError(f"restore option gx={options.get('gx')!r}: use auto, true or false")
    if missing:
        raise ConfigError(f"restore option gx=true needs {missing}, which is not installed: "
                          f"pip install 'strongroom[{GX_EXTRA}]' (or gx=auto to verify with "
                          "the engine's own checks only)")
    return True


def _gx_skipped() -> dict[str, Any]:
    return {"skipped": f"{gx_missing() or 'great_expectations'} is not installed "
                       f"(pip install 'strongroom[{GX_EXTRA}]'); the engine's own checks ran"}


def structure(expected: dict[str, Any], actual: dict[str, Any]) -> dict[str, Any]:
    """Ordered columns and primary keys per table, compared with the backup-time figures
    (what the GX suite checks beyond row counts, without GX; a primary key implies NOT NULL)."""
    problems = []
    for table, exp in sorted(expected.items()):
        got = actual.get(table)
        if got is None:
            continue  # reported by tablestats.compare
        if "columns" in exp and got.get("columns") != exp["columns"]:
            problems.append(f"{table}: columns {got.get('columns')}, expected {exp['columns']}")
        if "pk" in exp and got.get("pk") != exp["pk"]:
            problems.append(f"{table}: primary key {got.get('pk')}, expected {exp['pk']}")
    return {"ok": not problems, "problems": problems[:50]}


def amcheck(dsn: Dsn, version: int, dbs: list[str], env: dict[str, str] | None = None
            ) -> dict[str, Any]:
    """pg_amcheck over the databases (heap and btree checks; installs amcheck if missing)."""
    args = [binary("pg_amcheck", version), "--install-missing", "-h",
            str(dsn.params.get("host", "")), "-p", str(dsn.params.get("port", "5432")),
            "-U", str(dsn.params.get("user", "postgres"))]
    for db in dbs:
        args += ["--database", db]
    proc = run(args, timeout=3600, env=dsn.env(env), check=False, what="pg_amcheck")
    lines = [ln for ln in (proc.stdout + proc.stderr).splitlines() if ln.strip()]
    if proc.returncode != 0:
        raise IntegrityError(f"amcheck found problems: {lines[0] if lines else proc.returncode}")
    return {"ok": True, "databases": dbs}


def verify_restored(server: Server, stats: dict[str, Any], *, strict: bool,
                    gx: bool = True) -> dict[str, Any]:
    """Verify every database of a restored cluster; ``strict`` makes checksum differences
    with the backup-time figures an error (else they are reported). ``gx`` (see
    :func:`gx_choice`) adds the GX suite; without it the report says it was skipped."""
    dsn = Dsn.parse(server.conninfo())
    with dsn.connect() as conn:
        dbs = databases(conn)
    out: dict[str, Any] = {"amcheck": amcheck(dsn, server.version, dbs), "databases": {}}
    expected = (stats or {}).get("databases", {})
    for db in dbs:
        with dsn.connect(db) as conn:
            actual = table_stats(conn, checksums=True)
        entry: dict[str, Any] = {"tables": len(actual)}
        if db in expected:
            entry["compared"] = compare(expected[db], actual)
            entry["structure"] = structure(expected[db], actual)
        if actual:
            entry["great_expectations"] = run_gx(dsn.with_db(db), expected.get(db) or actual) \
                if gx else _gx_skipped()
        out["databases"][db] = entry
    problems = [f"{db}: {p}" for db, e in out["databases"].items()
                for p in (e.get("compared") or {}).get("problems", [])]
    out["checksums_strict"] = strict
    out["checksums_ok"] = not problems
    out["checksum_problems"] = problems[:50]
    if strict and problems:
        raise IntegrityError(f"restored data differs from the backup: {problems[0]}")
    out["structure_ok"] = all((e.get("structure") or {}).get("ok", True)
                              for e in out["databases"].values())
    gx_failed = [db for db, e in out["databases"].items()
                 if e.get("great_expectations", {}).get("success") is False]
    out["gx_ok"] = not gx_failed
    return out


def verify_database(dsn: Dsn, expected: dict[str, Any], version: int, gx: bool = True,
                    env: dict[str, str] | None = None) -> dict[str, Any]:
    """Verify one restored database (logical restore): checksums must match exactly."""
    with dsn.connect() as conn:
        actual = table_stats(conn, checksums=True)
    result = {"amcheck": amcheck(dsn, version, [dsn.dbname], env),
              "compared": compare(expected, actual), "structure": structure(expected, actual)}
    if actual:
        result["great_expectations"] = run_gx(dsn, expected) if gx else _gx_skipped()
    if not result["compared"]["ok"]:
        raise IntegrityError(f"restored database {dsn.dbname} differs from the backup: "
                             f"{result['compared']['problems'][0]}")
    return result


def run_gx(dsn: Dsn, expected: dict[str, Any]) -> dict[str, Any]:
    """A Great Expectations suite per table (row count, ordered columns, not-null primary
    keys) run in an ephemeral context; a plain dict of the results, without secrets."""
    import logging
    import os

    import great_expectations as gx
    import great_expectations.expectations as gxe

    logging.getLogger("great_expectations").setLevel(logging.ERROR)
    host = dsn.params.get("host", "localhost")
    port = dsn.params.get("port", "5432")
    user = dsn.params.get("user", "postgres")
    if str(host).startswith("/"):  # a socket directory: libpq takes it from the query
        url = f"postgresql+psycopg://{user}@localhost:{port}/{dsn.dbname}?host={host}"
    else:
        url = f"postgresql+psycopg://{user}@{host}:{port}/{dsn.dbname}"
    old = os.environ.get("PGPASSWORD")
    if dsn.password is not None:
        os.environ["PGPASSWORD"] = dsn.password
    try:
        ctx = gx.get_context(mode="ephemeral")
        source = ctx.data_sources.add_postgres(name="restored", connection_string=url)
        results: list[dict[str, Any]] = []
        for table, exp in sorted(expected.items()):
            schema, _, tname = table.partition(".")
            extra = {} if schema == "public" else {"schema_name": schema}
            asset = source.add_table_asset(name=table, table_name=tname, **extra)
            batch = asset.add_batch_definition_whole_table("all")
            suite = ctx.suites.add(gx.ExpectationSuite(name=f"restore-{table}"))
            suite.add_expectation(gxe.ExpectTableRowCountToEqual(value=exp["rows"]))
            suite.add_expectation(gxe.ExpectTableColumnsToMatchOrderedList(
                column_list=exp["columns"]))
            for col in exp.get("pk") or []:
                suite.add_expectation(gxe.ExpectColumnValuesToNotBeNull(column=col))
            vd = ctx.validation_definitions.add(gx.ValidationDefinition(
                name=f"v-{table}", data=batch, suite=suite))
            res = vd.run()
            for r in res.results:
                cfg = r.expectation_config
                results.append({"table": table, "expectation": cfg.type,
                                "kwargs": {k: v for k, v in cfg.kwargs.items()
                                           if k not in ("batch_id",)},
                                "success": bool(r.success)})
    finally:
        if dsn.password is not None:
            if old is None:
                os.environ.pop("PGPASSWORD", None)
            else:
                os.environ["PGPASSWORD"] = old
    ok = all(r["success"] for r in results)
    return {"success": ok, "evaluated": len(results),
            "failed": [r for r in results if not r["success"]], "results": results}
