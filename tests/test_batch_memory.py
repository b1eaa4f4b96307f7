"""Batch memory bounded by frame size, not duration: what a chunk task returns, and what a Dask worker keeps.

A chunk task's result crosses processes and waits in the driver until the file's last chunk is done, so it
must hold regions (a few dozen bytes a row) and nothing frame-sized; once the finish task has them, the driver
lets them go. A LocalCluster worker must not run
Dask's statistical profiler, which keeps a call tree per second of work (memory growing with wall time).
No timing or RSS thresholds here: sizes are counted from the objects themselves.
"""

from __future__ import annotations

import gc
import pickle
import time
import weakref
from concurrent.futures import Future

import numpy as np
import pytest

from anonlab import batch
from anonlab.batch import Job
from anonlab.batch.chunks import Chunk, ChunkResult
from anonlab.batch.display import _Display
from anonlab.batch.driver import _Driver, _FileState
from anonlab.batch.executors import _Channel, _run_task
from anonlab.settings import Settings
from mediagen import make_clip
from test_batch import FPS, H, W, anonymizer, object_frame

N_FRAMES = 72


def arrays(obj, seen=None):
    """Every ndarray reachable from ``obj`` (dataclass fields, dicts, lists), with the array each one views."""
    seen = set() if seen is None else seen
    if id(obj) in seen:
        return
    seen.add(id(obj))
    if isinstance(obj, np.ndarray):
        yield obj
        if isinstance(obj.base, np.ndarray):
            yield obj.base
    elif isinstance(obj, dict):
        for v in obj.values():
            yield from arrays(v, seen)
    elif isinstance(obj, (list, tuple, set)):
        for v in obj:
            yield from arrays(v, seen)
    elif hasattr(obj, "__dict__"):
        yield from arrays(vars(obj), seen)


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    d = tmp_path_factory.mktemp("batch_memory")
    return make_clip(d / "long.mp4", n_frames=N_FRAMES, width=W, height=H, fps=FPS, gop=12, frame_fn=object_frame)


def test_a_chunk_task_returns_its_regions_and_nothing_frame_sized(clip):
    proc = anonymizer()
    job = Job("long.mp4", str(clip), "unused.mp4", None, "", Settings(detect_every=3), chunk_seconds=24 / FPS)
    chunks = proc.plan(job)
    assert len(chunks) == 3
    for chunk in chunks:
        result = _run_task(proc, "chunk", job, chunk, _Channel("inline"))
        assert isinstance(result, ChunkResult), result
        assert len(result.regions) > 0
        # The biggest array allowed is one column of the regions or the timestamps (8 bytes a frame); a grey
        # frame (W*H bytes) is already more than either on this clip.
        biggest = max(a.nbytes for a in arrays(result))
        assert biggest <= max(16 * len(result.regions), 8 * N_FRAMES) < W * H
        # Pickled (as Dask and the process pool send it): the regions' rows, the timestamps, a fixed overhead.
        assert len(pickle.dumps(result, protocol=5)) <= 4096 + 64 * len(result.regions) + 8 * N_FRAMES


def test_local_cluster_workers_keep_no_profile_history():
    pytest.importorskip("distributed")
    executor = batch._Dask(1)
    try:
        # A task that outlasts the profiler's one-second cycle: with the profiler on, the worker would now hold
        # a sampled call tree of it and one history entry per second since it started.
        executor.client.submit(time.sleep, 1.5, pure=False).result()
        kept = executor.client.run(lambda dask_worker: (len(dask_worker.profile_history),
                                                        len(dask_worker.profile_keys_history),
                                                        dask_worker.profile_recent["count"]))
    finally:
        executor.close()
    assert list(kept.values()) == [(0, 0, 0)]


class _Result:
    """Stands for a `ChunkResult` (the whole video's regions, once every chunk is in); weak-referenceable."""


class _HeldExecutor:
    """Plans two chunks, returns a `_Result` per chunk at once, and keeps the finish task running; it keeps no
    reference to what it is given, as a remote executor holds only its own serialized copy."""

    parallel = True

    def __init__(self):
        self.made: list[weakref.ref] = []
        self.finish_args = 0

    def submit(self, processor, stage, job, arg):
        fut: Future = Future()
        if stage == "plan":
            fut.set_result([Chunk(0, 0, 10, 0), Chunk(1, 10, 20, 8)])
        elif stage == "chunk":
            result = _Result()
            self.made.append(weakref.ref(result))
            fut.set_result(result)
        else:
            self.finish_args = len(arg)
        return fut


class _NoLedger:
    def running(self, rel):
        pass


def test_the_driver_lets_chunk_results_go_once_the_finish_task_has_them():
    ex = _HeldExecutor()
    driver = _Driver(ex, _NoLedger(), object(), _Display(1, False), max_in_flight=2)
    driver.start(_FileState(Job("a.mp4", "a.mp4", "b.mp4", None, "", Settings()), chunked=True))
    while any(f.done() for f in driver.futures):
        driver.handle(next(f for f in driver.futures if f.done()))  # no name here keeps a done future
    assert ex.finish_args == 2
    assert [stage for _, stage, _ in driver.futures.values()] == ["finish"]
    gc.collect()
    # Still alive here, they would be held for the whole render: every chunk's regions, a second copy beside the
    # one the finish task was sent (with Dask its scheduler runs in the driver's process and keeps that one).
    assert [ref() for ref in ex.made] == [None, None]
