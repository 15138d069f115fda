"""One open repository per target and flow run, shared by that run's tasks.

Opening a repository costs an Argon2id unwrap of the master key (64 MiB) and an index load. A
flow wraps its body in :func:`flow_repositories`; its tasks then ask :func:`repository` for a
target by name and get the run's open :class:`Repository` (opened on first use, closed when the
body ends). Outside such a scope (a task called on its own, another flow) ``repository`` opens
and closes per call, as before.

Sharing is per flow run, not per parent run: a per-source subflow has its own repository
object, so one ``Repository`` sees one writer (the dump) and then readers (checksum, encrypt
check, verify, replication). Two writers on one object could race: a writer's
``reload_index`` swaps the in-memory index while another writer's ``save_index`` adds to the
old one, and a read of that writer's snapshot then misses blobs. The unwrapped key lives only in
this process's memory: it is never returned from a task, persisted or logged.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import TYPE_CHECKING
from uuid import UUID

from prefect.context import FlowRunContext, TaskRunContext

from blocks.loading import load_target
from tasks.audit import run_context

if TYPE_CHECKING:
    from strongroom.repository import Repository

_GUARD = threading.Lock()
_SCOPES: set[UUID] = set()
_OPEN: dict[tuple[UUID, str], Repository] = {}
_OPENING: dict[tuple[UUID, str], threading.Lock] = {}


def _flow_run_id() -> UUID | None:
    """The innermost flow run (a subflow's body still sees the task that called it in
    TaskRunContext, so the flow context decides)."""
    flow_ctx = FlowRunContext.get()
    if flow_ctx is not None and flow_ctx.flow_run is not None:
        return flow_ctx.flow_run.id
    task_ctx = TaskRunContext.get()
    return task_ctx.task_run.flow_run_id if task_ctx is not None else None


@contextmanager
def flow_repositories() -> Iterator[None]:
    """Within a flow's body: share one open repository per target among the run's tasks;
    close them all when the body ends (returns, raises or is cancelled)."""
    run_id = _flow_run_id()
    if run_id is None or run_id in _SCOPES:  # not in a flow run, or already scoped
        yield
        return
    with _GUARD:
        _SCOPES.add(run_id)
    try:
        yield
    finally:
        with _GUARD:
            _SCOPES.discard(run_id)
            keys = [k for k in _OPEN if k[0] == run_id]
            repos = [_OPEN.pop(k) for k in keys]
            for key in keys:
                _OPENING.pop(key, None)
        for repo in repos:
            with suppress(Exception):  # closing must never hide the run's own outcome
                repo.close()


@contextmanager
def repository(target: str, create: bool = False) -> Iterator[Repository]:
    """The open repository of the ``target`` block for the current flow run (``create``:
    initialise it when there is none). Do not close it: the run's scope does."""
    run_id = _flow_run_id()
    if run_id is None or run_id not in _SCOPES:
        with run_context():  # an init on first use carries the flow run's id too
            repo = load_target(target).open(create=create)
        try:
            with run_context():  # audit records carry the flow run's id
                yield repo
        finally:
            repo.close()
        return
    key = (run_id, target)
    with _GUARD:
        opening = _OPENING.setdefault(key, threading.Lock())
    with opening:  # concurrent tasks of the run wait for one open, not one each
        repo = _OPEN.get(key)
        if repo is None:
            with run_context():
                repo = load_target(target).open(create=create)
            with _GUARD:
                if run_id in _SCOPES:
                    _OPEN[key] = repo
                else:  # the scope ended meanwhile: do not leak the open repository
                    repo.close()
                    raise RuntimeError(f"flow run {run_id} ended while opening {target}")
    with run_context():
        yield repo


def open_count() -> int:
    """How many repositories are open in shared scopes (for tests and diagnostics)."""
    with _GUARD:
        return len(_OPEN)
