"""Where a batch's tasks run: in this process, in a pool of processes, or on a Dask cluster.

``local`` runs in this process (``workers=1``, `_Inline`) or in a pool of ``workers`` spawned processes
(`_Pool`); ``dask`` runs on ``dask.distributed`` (`_Dask`): a ``LocalCluster`` (``workers`` processes, one thread
each, dashboard on 127.0.0.1 when bokeh is installed) or the scheduler at ``scheduler`` (an address or a
``Client``). All three offer the same small interface to the driver (``submit(processor, stage, job, arg)``,
``wait``, ``messages``, ``close``, and ``parallel``, ``dashboard``, ``channel``), so the driver never asks which
one it has. With a process pool a worker that dies (a decoder crash) breaks the pool; the driver then reruns the
files that were in flight one at a time (`anonlab.batch.driver`).

Every task runs through `_run_task`, which turns any exception into `_Failed` with its one line in the worker,
so no executor ever logs a traceback (which could quote file contents). Progress travels home over a
`_Channel`: a direct call, a multiprocessing queue, or Dask events (`PROGRESS_TOPIC`). Everything sent to a
worker (`_run_task`, `_Channel`, `_limit_threads`, the `Job` and its processor) is a module-level name here or in
`anonlab.batch.processors` / `anonlab.batch.chunks`, because spawned processes and Dask pickle functions and
classes by module path.

Privacy with Dask: chunk results (region coordinates) travel between the processes of the cluster in memory;
a LocalCluster's workers spill to a private temporary folder (0700) that is removed at the end. With a remote
scheduler the cluster's own configuration applies: keep it on-premise, with TLS between machines
(``distributed`` security settings) where the network is not trusted.

Memory with Dask: a LocalCluster's workers run without Dask's statistical profiler (`WORKER_CONFIG`), whose
history grows with the batch's wall time. A remote cluster's workers take their own configuration: start them
with ``distributed.worker.profile.enabled: false`` (``DASK_DISTRIBUTED__WORKER__PROFILE__ENABLED=False``) for
long batches. What else Dask keeps is bounded, measured: progress events (at most one per task every 0.3 s from
`anonlab.batch.processors.Anonymizer`) about 0.5 kB each in the scheduler, which keeps the last 1,000 per topic
(``distributed.admin.low-level-log-length``); each process's system monitor, about 0.4 kB per sample every
0.5 s up to 7,200 samples (2.8 MB after an hour). Growth with a video's length is its regions: chunk results
wait in the driver until the file's last chunk is in (the finish task then holds the stitched copy).
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import queue
import secrets
import time
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor
from concurrent.futures import wait as futures_wait
from dataclasses import dataclass
from typing import Callable

from anonlab.batch.chunks import Chunk
from anonlab.batch.processors import Job, ProgressFn, error_line
from anonlab.errors import AnonlabError
from anonlab.privacy import private_tempdir

log = logging.getLogger(__name__)

EXECUTORS = ("local", "dask")
#: Name of the Dask event topic that carries per-file progress from workers to the client.
PROGRESS_TOPIC = "anonlab-batch-progress"

_PROGRESS_QUEUE = None  # set in pool workers by _init_pool_worker

#: Dask settings of the LocalCluster's workers. The statistical profiler samples the running task's stack every
#: 10 ms and keeps one call tree per second in two histories of 1,000 entries each (per worker), so a worker's
#: memory grew with the batch's wall time, not with frame size: measured on 1,248 frames at 180p, 261 s of
#: work, 2.1 MB pickled per history and +4-5 MiB RSS per chunk task per worker with the profiler, flat
#: (496-497 MiB) without it. The dashboard's profile page stays empty; everything else on it still works.
WORKER_CONFIG = {"distributed.worker.profile.enabled": False}


def _init_pool_worker(progress_queue, threads: int) -> None:
    global _PROGRESS_QUEUE
    _PROGRESS_QUEUE = progress_queue
    _limit_threads(threads)


#: Threads each worker process should give a model session (cores / workers), for code that reads it.
THREADS_ENV = "ANONLAB_THREADS"


def _limit_threads(threads: int) -> None:
    """Keep N workers on C cores from oversubscribing: OpenCV to C/N threads, and ``ANONLAB_THREADS`` set."""
    os.environ[THREADS_ENV] = str(max(1, threads))
    with contextlib.suppress(Exception):
        import cv2  # here: this runs first thing in a fresh worker, and a failed import must not fail it

        cv2.setNumThreads(max(1, threads))


@dataclass(frozen=True)
class _Channel:
    """How a task sends progress home: ``inline`` (direct call), ``queue`` (pool) or ``dask`` (events)."""

    kind: str
    token: str = ""

    def sink(self, rel: str, task: str, inline: Callable | None) -> ProgressFn:
        def send(phase: str, done: int, total: int) -> None:
            msg = (self.token, rel, task, phase, int(done), int(total))
            try:
                if self.kind == "inline" and inline is not None:
                    inline(msg)
                elif self.kind == "queue" and _PROGRESS_QUEUE is not None:
                    _PROGRESS_QUEUE.put_nowait(msg)
                elif self.kind == "dask":
                    from distributed import get_worker  # optional dependency (anonlab[dask])

                    get_worker().log_event(PROGRESS_TOPIC, msg)
            except Exception:  # progress is best effort; it must never fail a job
                pass

        return send


@dataclass(frozen=True)
class _Failed:
    """A task's failure, already reduced to its one line in the worker (so no executor logs a traceback)."""

    error: str


def _run_task(processor, stage: str, job: Job, arg, channel: _Channel, inline: Callable | None = None):
    """One unit of work in a worker; any exception comes back as `_Failed` with its one line."""
    progress = channel.sink(job.rel, f"{stage}{arg.index}" if isinstance(arg, Chunk) else stage, inline)
    try:
        if stage == "file":
            return processor(job, progress)
        if stage == "plan":
            return processor.plan(job)
        if stage == "chunk":
            return processor.analyse(job, arg, progress)
        if stage == "finish":
            return processor.finish(job, arg, progress)
        raise ValueError(f"unknown stage {stage}")
    except Exception as exc:
        if not isinstance(exc, AnonlabError):
            log.debug("%s: %s failed", job.rel, stage, exc_info=True)
        return _Failed(error_line(exc))


class _Inline:
    """Runs each task at once in this process (``workers=1``)."""

    parallel = False
    dashboard = None
    channel = _Channel("inline")

    def __init__(self, on_progress: Callable):
        self.on_progress = on_progress

    def submit(self, processor, stage, job, arg) -> Future:
        fut: Future = Future()
        try:
            fut.set_result(_run_task(processor, stage, job, arg, self.channel, self.on_progress))
        except Exception as exc:
            fut.set_exception(exc)
        return fut

    def wait(self, futures, timeout: float):
        return [f for f in futures if f.done()]

    def messages(self) -> list:
        return []

    def close(self) -> None:
        pass


class _Pool:
    """A pool of ``workers`` processes (spawned: no inherited threads or locks)."""

    parallel = True
    dashboard = None
    channel = _Channel("queue")

    def __init__(self, workers: int):
        self.workers = workers
        self.ctx = multiprocessing.get_context("spawn")
        self.queue = self.ctx.Queue()
        self.pool = self._new_pool()

    def _new_pool(self) -> ProcessPoolExecutor:
        threads = max(1, (os.cpu_count() or 1) // self.workers)
        return ProcessPoolExecutor(max_workers=self.workers, mp_context=self.ctx, initializer=_init_pool_worker,
                                   initargs=(self.queue, threads))

    def restart(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)
        self.pool = self._new_pool()

    def submit(self, processor, stage, job, arg) -> Future:
        return self.pool.submit(_run_task, processor, stage, job, arg, self.channel)

    def wait(self, futures, timeout: float):
        done, _ = futures_wait(futures, timeout=timeout, return_when=FIRST_COMPLETED)
        return list(done)

    def messages(self) -> list:
        out = []
        with contextlib.suppress(queue.Empty, OSError, ValueError):
            while True:
                out.append(self.queue.get_nowait())
        return out

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)
        self.queue.close()


class _Dask:
    """``dask.distributed``: a LocalCluster of ``workers`` processes, or a running scheduler."""

    parallel = True

    def __init__(self, workers: int, scheduler=None):
        try:  # optional dependency (anonlab[dask]): imported only when this executor is chosen
            import dask
            import distributed
        except ImportError:
            raise AnonlabError("the dask executor needs dask.distributed: pip install 'anonlab[dask]'") from None

        self.cluster = None
        self.own_client = True
        self._stack = contextlib.ExitStack()
        if scheduler is not None and not isinstance(scheduler, str):
            self.client = scheduler  # a Client the caller made (a notebook's)
            self.own_client = False
        elif scheduler:
            try:
                self.client = distributed.Client(scheduler, timeout="20s")
            except (OSError, TimeoutError) as exc:
                raise AnonlabError(f"cannot reach the Dask scheduler at {scheduler} ({type(exc).__name__}); "
                                   "check the address and that the scheduler is running") from None
        else:
            try:
                import bokeh  # noqa: F401  the dashboard needs it

                dashboard = "127.0.0.1:0"
            except ImportError:
                dashboard = None

            # Workers spill memory to their local directory; chunk results hold region coordinates, so that
            # directory is a private one (0700) removed at the end, like every other anonlab temporary.
            scratch = self._stack.enter_context(private_tempdir("dask"))
            threads = max(1, (os.cpu_count() or 1) // workers)
            # Dask starts workers with MALLOC_TRIM_THRESHOLD_ set, which turns off glibc's adaptive mmap
            # threshold: every decoded frame is then a fresh mmap and page faults (measured: a two-file batch
            # 20-22 s in a local pool, 24-26 s with that variable). OpenMP (YuNet) gets the worker's share.
            environ = "distributed.nanny.pre-spawn-environ"
            try:
                with dask.config.set({f"{environ}.MALLOC_TRIM_THRESHOLD_": None,
                                      f"{environ}.OMP_NUM_THREADS": threads, **WORKER_CONFIG}):
                    self.cluster = distributed.LocalCluster(
                        n_workers=workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                        dashboard_address=dashboard, silence_logs=logging.ERROR, local_directory=str(scratch),
                    )
                self.client = distributed.Client(self.cluster)
            except BaseException:
                if self.cluster is not None:
                    self.cluster.close()
                self._stack.close()
                raise
            with contextlib.suppress(Exception):
                self.client.run(_limit_threads, threads)
        self.dashboard = self._dashboard_link()
        self.channel = _Channel("dask", secrets.token_hex(8))
        self._inbox: queue.SimpleQueue = queue.SimpleQueue()
        token = self.channel.token

        def handler(event) -> None:
            msg = event[1] if isinstance(event, tuple) and len(event) == 2 else event
            if isinstance(msg, (tuple, list)) and msg and msg[0] == token:
                self._inbox.put(tuple(msg))

        with contextlib.suppress(Exception):
            self.client.subscribe_topic(PROGRESS_TOPIC, handler)

    def _dashboard_link(self) -> str | None:
        try:
            if self.cluster is not None and self.cluster.scheduler.services.get("dashboard") is None:
                return None
            return self.client.dashboard_link
        except Exception:
            return None

    def submit(self, processor, stage, job, arg):
        return self.client.submit(_run_task, processor, stage, job, arg, self.channel, pure=False,
                                  key=f"anonlab-{stage}-{os.urandom(6).hex()}")

    def wait(self, futures, timeout: float):
        deadline = time.monotonic() + timeout
        while True:
            done = [f for f in futures if f.done()]
            if done or time.monotonic() >= deadline:
                return done
            time.sleep(0.05)

    def messages(self) -> list:
        out = []
        with contextlib.suppress(queue.Empty):
            while True:
                out.append(self._inbox.get_nowait())
        return out

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.client.unsubscribe_topic(PROGRESS_TOPIC)
        if self.own_client:
            with contextlib.suppress(Exception):
                self.client.close()
        if self.cluster is not None:
            with contextlib.suppress(Exception):
                self.cluster.close()
        self._stack.close()


def _make_executor(executor: str, workers: int, scheduler, on_progress: Callable):
    """The executor ``run_batch`` asked for: ``local`` (inline for one worker, else a process pool) or ``dask``.

    Raises:
        AnonlabError: an unknown executor, a ``scheduler`` without ``dask``, dask not installed, or its scheduler
            not reachable.
    """
    if executor not in EXECUTORS:
        raise AnonlabError(f"--executor must be one of {', '.join(EXECUTORS)}; got {executor!r}")
    if executor == "dask":
        return _Dask(workers, scheduler)
    if scheduler:
        raise AnonlabError("--scheduler needs --executor dask")
    return _Inline(on_progress) if workers == 1 else _Pool(workers)
