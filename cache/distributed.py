"""Running shards on Dask distributed: a LocalCluster, or an existing scheduler.

Each shard is one task; the job (dataset, models, background) is scattered
to every worker once. Workers write their shards into the cache folder
themselves (the manifest is updated under a file lock), so for a remote
cluster the folder must be on a file system the workers share.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

__all__ = ["run_on_dask", "local_cluster"]


def run_on_dask(
    fn: Callable,
    job,
    tasks: Sequence,
    workers: int = 0,
    scheduler: str | None = None,
    on_done: Callable | None = None,
) -> list:
    """Run ``fn(job, task)`` for every task on Dask and return the results in completion order.

    Parameters
    ----------
    fn : callable
        A module-level function ``fn(job, task) -> result`` (picklable by reference).
    job : object
        Sent to every worker once (``Client.scatter(broadcast=True)``).
    tasks : sequence
        One Dask task each.
    workers : int
        Size of a new ``LocalCluster`` (one thread per worker process), when
        ``scheduler`` is not given.
    scheduler : str, optional
        Address of an existing scheduler (``tcp://host:8786``).
    on_done : callable, optional
        Called as ``on_done(task, result)`` when a task finishes.

    Returns
    -------
    list
        The results.
    """
    try:
        from dask.distributed import Client, as_completed
    except ImportError as err:  # pragma: no cover - dask is an optional dependency
        raise ValueError(
            "workers/scheduler need dask[distributed]: pip install 'defocus-forensics[dist]'"
        ) from err
    if not tasks:
        return []
    if not scheduler and (isinstance(workers, bool) or int(workers) < 1):
        raise ValueError(f"workers must be at least 1 without a scheduler, got {workers!r}")
    cluster = None
    if scheduler:
        client = Client(scheduler)
    else:
        cluster = local_cluster(int(workers))
        client = Client(cluster)
    results = []
    try:
        # workers import this project: make sure they find it the way this process does
        client.run(_add_path, os.fspath(Path(__file__).resolve().parents[1]))
        remote_job = client.scatter(job, broadcast=True)
        futures = {client.submit(fn, remote_job, t, pure=False): t for t in tasks}
        for fut in as_completed(futures):
            res = fut.result()
            results.append(res)
            if on_done is not None:
                on_done(futures[fut], res)
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
    return results


def local_cluster(workers: int):
    """Return a Dask ``LocalCluster`` of ``workers`` single-thread worker processes for extraction.

    Dask's nanny sets ``MALLOC_TRIM_THRESHOLD_=65536`` in its workers, which
    turns off glibc's dynamic mmap threshold: every large tensor then is a
    fresh mmap with page faults, and our tasks used twice the CPU of the same
    work in-process. The cluster keeps the one-thread settings and drops that
    one; the statistical profiler is off too.
    """
    import dask
    from dask.distributed import LocalCluster

    environ = dict(dask.config.get("distributed.nanny.pre-spawn-environ", {}) or {})
    environ.pop("MALLOC_TRIM_THRESHOLD_", None)
    settings = {
        "distributed.worker.profile.enabled": False,
        "distributed.nanny.pre-spawn-environ": environ,
    }
    with dask.config.set(settings):
        return LocalCluster(
            n_workers=int(workers),
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            silence_logs=40,
        )


def _add_path(root: str) -> None:
    if root not in sys.path:
        sys.path.insert(0, root)
    mod = sys.modules.get("cache")
    if mod is not None and getattr(mod, "__file__", None) is None:  # a namespace stand-in
        del sys.modules["cache"]
