"""Per-table row counts, order-independent checksums, columns and primary keys.

The checksum of a table is the sum (mod 2**64) of the first 64 bits of md5(row::text) over its
rows: independent of row order and physical layout, so a physical or logical copy of the same
rows gives the same figure.
"""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg import sql

TABLES_SQL = """
SELECT n.nspname, c.relname,
       array(SELECT a.attname::text FROM pg_attribute a
             WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
             ORDER BY a.attnum),
       coalesce(array(SELECT a.attname::text FROM pg_index i
             JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)
             WHERE i.indrelid = c.oid AND i.indisprimary ORDER BY a.attnum), '{}')
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg_toast%' AND n.nspname NOT LIKE 'pg_temp%'
ORDER BY 1, 2
"""


def table_stats(conn: psycopg.Connection[Any], checksums: bool = True) -> dict[str, Any]:
    """{"schema.table": {"rows", "checksum", "columns", "pk"}} for every user table."""
    out: dict[str, Any] = {}
    for schema, table, columns, pk in conn.execute(TABLES_SQL).fetchall():
        ident = sql.Identifier(schema, table)
        if checksums:
            q = sql.SQL("SELECT count(*), coalesce(sum(('x' || substr(md5(t::text), 1, 16))"
                        "::bit(64)::bigint::numeric), 0) % 18446744073709551616 "
                        "FROM {} t").format(ident)
            rows, digest = conn.execute(q).fetchone()  # type: ignore[misc]
            digest = format(int(digest), "016x")
        else:
            rows = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(ident)).fetchone()[0]
            digest = None
        out[f"{schema}.{table}"] = {"rows": int(rows), "checksum": digest,
                                    "columns": list(columns), "pk": list(pk)}
    return out


def databases(conn: psycopg.Connection[Any]) -> list[str]:
    """Databases that accept connections, templates excluded."""
    rows = conn.execute("SELECT datname FROM pg_database WHERE datallowconn AND NOT "
                        "datistemplate ORDER BY datname").fetchall()
    return [r[0] for r in rows]


def compare(expected: dict[str, Any], actual: dict[str, Any]) -> dict[str, Any]:
    """Per-table differences between two ``table_stats`` results."""
    problems = []
    for table, exp in sorted(expected.items()):
        got = actual.get(table)
        if got is None:
            problems.append(f"{table}: missing")
            continue
        if got["rows"] != exp["rows"]:
            problems.append(f"{table}: {got['rows']} rows, expected {exp['rows']}")
        elif exp.get("checksum") and got.get("checksum") and got["checksum"] != exp["checksum"]:
            problems.append(f"{table}: checksum {got['checksum']}, expected {exp['checksum']}")
    for table in sorted(set(actual) - set(expected)):
        problems.append(f"{table}: not in the backup")
    return {"tables": len(expected), "matched": len(expected) - len(
        [p for p in problems if not p.endswith("not in the backup")]), "problems": problems,
        "ok": not problems}
