"""Neo4j fixtures: one harness per session (auth on), a cleared database per test."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from strongroom.repository import Repository
from tests.support.neo4j_server import Neo4jServer, launcher_built, neo4j_server


@pytest.fixture(scope="session")
def neo4j_srv() -> Iterator[Neo4jServer]:
    if not launcher_built():
        if os.environ.get("CI"):
            pytest.fail("tests/neo4j launcher not built (.ci/run builds it with Maven)")
        pytest.skip("tests/neo4j launcher not built: mvn -q -B -f tests/neo4j/pom.xml package")
    with neo4j_server(auth=True) as srv:
        os.environ[srv.password_env] = srv.password  # for CLI and restore options
        yield srv
        os.environ.pop(srv.password_env, None)


@pytest.fixture
def neo4j_db(neo4j_srv: Neo4jServer) -> Iterator[Neo4jServer]:
    """The session's server with its database emptied (nodes, constraints, indexes)."""
    from strongroom.sources.neo4j import graph

    target = graph.Target.parse(neo4j_srv.uri, neo4j_srv.user, neo4j_srv.password)
    with graph.session(target, write=True) as s:
        graph.clear(s)
        graph.finish_import(s)
    yield neo4j_srv


@pytest.fixture
def repo(tmp_path: Path) -> Repository:
    return Repository.init(str(tmp_path / "repo"), password="test-pass")
