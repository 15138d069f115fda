"""Create-if-absent writes: of writers racing for one name exactly one wins; two ``init`` at
one URL leave one repository and one clear failure."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from strongroom.errors import ConfigError
from strongroom.repository import Repository
from strongroom.storage.registry import open_backend


def test_put_if_absent_has_exactly_one_winner(target) -> None:
    url, opts = target
    backend = open_backend(url, opts)
    backend.prepare()
    for round_ in range(5):
        key = f"race/{round_}"
        start = threading.Barrier(8)

        def write(i: int, key: str = key, start: threading.Barrier = start) -> bool:
            start.wait()
            return backend.put_if_absent(key, f"writer {i}".encode() * 1000)

        with ThreadPoolExecutor(8) as pool:
            won = list(pool.map(write, range(8)))
        assert won.count(True) == 1, won
        assert backend.get(key) == f"writer {won.index(True)}".encode() * 1000
    assert not backend.put_if_absent("race/0", b"late")
    assert not list(backend.leftovers())  # losers leave no temp file


def test_two_inits_at_one_url_one_wins(target) -> None:
    url, opts = target
    start = threading.Barrier(2)

    def init(password: str) -> Repository | Exception:
        start.wait()
        try:
            return Repository.init(url, password=password, options=opts)
        except ConfigError as exc:
            return exc

    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(init, ["first pw", "second pw"]))
    winners = [r for r in results if isinstance(r, Repository)]
    losers = [r for r in results if isinstance(r, Exception)]
    assert len(winners) == 1 and len(losers) == 1, results
    assert "a repository already exists" in str(losers[0]) or \
        "a repository is being created" in str(losers[0])
    password = ["first pw", "second pw"][results.index(winners[0])]
    repo = Repository.open(url, password=password, options=opts)
    assert repo.id == winners[0].id
    assert len(repo.slots()) == 1  # the loser took its key slot back
    with pytest.raises(ConfigError, match="already exists"):
        Repository.init(url, password="third", options=opts)
