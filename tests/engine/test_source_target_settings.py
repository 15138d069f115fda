"""Each kind points its own settings at a restore target (the pre-restore safety snapshot reads
the target, not the source): URLs and DSNs it can read, None for anything else."""

from __future__ import annotations

import pytest

from strongroom.sources import registry

BLOCK = {"host": "10.0.0.5", "port": 1, "password": "pw", "uri": "bolt://10.0.0.5:7687",
         "database": "orders"}


@pytest.mark.parametrize(("kind", "target", "changed"), [
    ("redis", "redis://127.0.0.1:6380",
     {"host": "127.0.0.1", "port": 6380, "tls": False, "url": None}),
    ("redis", "rediss://cache.example/2",
     {"host": "cache.example", "port": 6379, "tls": True, "url": None}),
    ("redis", "redis://restorer@10.0.0.6",
     {"host": "10.0.0.6", "port": 6379, "tls": False, "url": None, "username": "restorer"}),
    ("neo4j", "neo4j+s://graph.example:7688/db",
     {"uri": "neo4j+s://graph.example:7688", "database": "db"}),
    ("neo4j", "bolt://127.0.0.1", {"uri": "bolt://127.0.0.1:7687"}),
    ("s3", "s3://other-bucket/some/prefix/", {"bucket": "other-bucket",
                                              "prefix": "some/prefix/"}),
    ("s3", "s3://other-bucket", {"bucket": "other-bucket", "prefix": ""}),
    ("postgres", "postgresql://127.0.0.1:5433/restored",
     {"host": "127.0.0.1", "port": 5433, "database": "restored"}),
    ("postgres", "postgres://db.example", {"host": "db.example", "port": 5432}),
    ("postgres", "host=127.0.0.1 port=5434 dbname=copy",
     {"host": "127.0.0.1", "port": "5434", "database": "copy"}),
])
def test_a_target_the_kind_can_read_replaces_only_where_it_points(kind, target, changed):
    got = registry.get(kind).settings_for_target(dict(BLOCK), target)
    assert got == BLOCK | changed


@pytest.mark.parametrize(("kind", "target"), [
    ("redis", "postgresql://127.0.0.1/x"), ("redis", "/var/lib/redis"),
    ("neo4j", "redis://127.0.0.1"), ("postgres", "/srv/pg/restored-data"),
    ("postgres", "bolt://127.0.0.1"), ("files", "/srv/restore"), ("s3", "/srv/restore"),
    ("s3", "redis://127.0.0.1"), ("redis", "s3://bucket/prefix"), ("neo4j", "/var/lib/neo4j"),
])
def test_a_target_the_kind_cannot_read_is_none(kind, target):
    assert registry.get(kind).settings_for_target(dict(BLOCK), target) is None
