"""The recovery runbook's Cypher smoke check against the real test server (the session's
harness: no extra start-up): a query whose answer matches passes, one that differs fails with
an IntegrityError naming the check."""

from __future__ import annotations

import pytest

from strongroom.errors import IntegrityError
from tests.neo4j.helpers import run
from tests.support.neo4j_server import Neo4jServer


def test_cypher_smoke_check_on_a_restored_graph(neo4j_db: Neo4jServer) -> None:
    from tasks.runbook import smoke_checks

    run(neo4j_db, "UNWIND range(1, 3) AS i CREATE (:Account {id: i})")
    login = {"user": neo4j_db.user, "password": neo4j_db.password}
    check = {"cypher": "MATCH (a:Account) RETURN count(a)", "expect": 3}
    assert smoke_checks([check], neo4j_db.uri, {}, login) == [
        "cypher 'MATCH (a:Account) RETURN count(a)': ok"]
    with pytest.raises(IntegrityError, match=r"smoke check cypher .* gave .*expected '4'"):
        smoke_checks([{**check, "expect": 4}], neo4j_db.uri, {}, login)
    with pytest.raises(IntegrityError, match=r"smoke check cypher 'MATCH \(a:Account\) RETURN"
                                             r" nonsense\(a\)' failed: ") as exc:
        smoke_checks([{"cypher": "MATCH (a:Account) RETURN nonsense(a)", "expect": 3}],
                     neo4j_db.uri, {}, login)
    assert "\n" not in str(exc.value) and neo4j_db.password not in str(exc.value)
