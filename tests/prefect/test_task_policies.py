"""Every Prefect task: no input caching (it silently skips backups), retries only on transient
faults (notify excepted: it only emits an event)."""

from __future__ import annotations

import importlib
import pkgutil


def _tasks() -> dict[str, object]:
    from prefect.tasks import Task

    import flows
    import tasks

    found: dict[str, object] = {}
    for package in (tasks, flows):
        for info in pkgutil.iter_modules(package.__path__):
            module = importlib.import_module(f"{package.__name__}.{info.name}")
            for value in vars(module).values():
                if isinstance(value, Task):
                    found[value.name] = value
    return found


def test_every_task_is_uncached_and_retries_only_transient_faults():
    from prefect.cache_policies import NO_CACHE

    from tasks.retry import retry_transient

    found = _tasks()
    assert {"dump", "checksum", "encrypt-check", "replicate", "verify", "notify", "assess",
            "prepare", "restore", "verify-restore", "post-mortem", "retention"} <= set(found)
    for name, task in found.items():
        assert task.cache_policy is NO_CACHE, name
        if task.retries and name not in ("notify", "backup-event"):  # messages, not data
            assert task.retry_condition_fn is retry_transient, name
            assert task.retry_jitter_factor, name
