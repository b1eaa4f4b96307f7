"""Batch jobs: mirrored trees, the ledger, resume after kill -9, isolation, chunked == unchunked, Dask.

The media are generated: each frame carries its index as a barcode and red squares (the "objects") whose
boxes are known exactly. `RedDetector` finds them by colour, so the real tracker, temporal safety, masking,
render and report run on known ground truth in milliseconds; only the ONNX detectors are stood in for.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from anonlab import batch
from anonlab.batch import (Anonymizer, Job, LEDGER_NAME, error_line, format_summary, output_name, plan_outputs,
                           plan_chunks, queue_cases, read_ledger, run_batch, scan_tree)
from anonlab.errors import AnonlabError, MediaError
from anonlab.media import atomic_output, open_media, sha256_file
from anonlab.regions import Regions
from anonlab.settings import Settings
from mediagen import barcode_frame, make_clip, read_barcode

TESTS = Path(__file__).resolve().parent
W, H, FPS = 160, 96, 25


# --- generated media with known objects -----------------------------------------------------------------


def object_boxes(n: int) -> list[tuple[int, int, int, int]]:
    """Ground truth of frame ``n``: A moves right the whole clip; B is there in frames < 47; C from 48 on."""
    x = 16 + (n * 2) % (W - 48)
    boxes = [(x, 24, x + 20, 44)]
    if n < 47:
        boxes.append((120, 60, 140, 80))
    if n >= 48:
        boxes.append((20, 62, 40, 82))
    return boxes


def object_frame(n: int) -> np.ndarray:
    img = barcode_frame(n, W, H)
    for x1, y1, x2, y2 in object_boxes(n):
        img[y1:y2, x1:x2] = (0, 0, 255)
    return img


class RedDetector:
    """Finds the red squares; misses every object on the frames in ``blind`` (a detector blinking)."""

    models = [{"name": "red-squares", "sha256": "0" * 64, "licence": "test"}]

    def __init__(self, blind=(), delay: float = 0.0):
        self.blind = set(blind)
        self.delay = delay

    def __call__(self, frame: np.ndarray) -> Regions:
        if self.delay:
            time.sleep(self.delay)
        if read_barcode(frame) in self.blind:
            return Regions.empty()
        mask = ((frame[..., 2] > 180) & (frame[..., 1] < 90) & (frame[..., 0] < 90)).astype(np.uint8)
        n, _, stats, _ = cv2.connectedComponentsWithStats(mask)
        boxes = [[x, y, x + w, y + h] for x, y, w, h, area in stats[1:] if area >= 30]
        return Regions(xyxy=np.asarray(boxes, np.float32).reshape(-1, 4), score=np.full(len(boxes), 0.9))


#: Frames 23..25 straddle the seam at 24: an unchunked run bridges them by interpolation; so must a chunked one.
BLIND = (23, 24, 25)


def red_factory(settings):
    return RedDetector(blind=BLIND)


def copy_processor(job: Job, progress=None) -> dict:
    """A stand-in job that copies the input (ledger, isolation and executor logic without any decoding)."""
    if Path(job.src).read_bytes().startswith(b"not media"):
        raise MediaError(f"{Path(job.src).name}: not a video or photo anonlab can read")
    with atomic_output(job.dst) as tmp:
        shutil.copyfile(job.src, tmp)
    if job.report:
        with atomic_output(job.report) as tmp:
            tmp.write_text("{}")
    return {"kind": "copy", "frames": 1}


def crashing_processor(job: Job, progress=None) -> dict:
    """Kills its worker process on ``crash.mp4`` (a decoder segfault, as far as the pool can tell)."""
    if Path(job.src).name == "crash.mp4":
        time.sleep(0.2)
        os._exit(3)
    time.sleep(0.3)
    return copy_processor(job, progress)


def buggy_processor(job: Job, progress=None) -> dict:
    raise ValueError("x=12 y=40 secret coordinates that must never reach a log")


# --- fixtures -----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def media(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("batch_media")
    from PIL import Image

    Image.fromarray(object_frame(5)[..., ::-1]).save(d / "photo.jpg", quality=95)
    Image.fromarray(object_frame(9)[..., ::-1]).save(d / "photo.png")
    return {
        "long": make_clip(d / "long.mp4", n_frames=72, width=W, height=H, fps=FPS, gop=12, frame_fn=object_frame),
        "short": make_clip(d / "short.mov", n_frames=30, width=W, height=H, fps=FPS, gop=12, frame_fn=object_frame,
                           audio=True),
        "other": make_clip(d / "other.mp4", n_frames=30, width=W, height=H, fps=FPS, gop=12,
                           frame_fn=lambda n: object_frame(n + 7)),
        "photo": d / "photo.jpg",
        "png": d / "photo.png",
    }


def make_tree(root: Path, media: dict[str, Path], bad: bool = False) -> Path:
    """``root/in``: videos and photos mixed in subfolders, plus files that are not media."""
    src = root / "in"
    (src / "day1" / "cam2").mkdir(parents=True)
    (src / ".hidden").mkdir()
    shutil.copy(media["long"], src / "long.mp4")
    shutil.copy(media["short"], src / "day1" / "short.mov")
    shutil.copy(media["photo"], src / "day1" / "photo.jpg")
    shutil.copy(media["png"], src / "day1" / "cam2" / "still.png")
    shutil.copy(media["other"], src / "day1" / "cam2" / "other.mp4")
    (src / "notes.txt").write_text("not media")
    (src / "day1" / "index.csv").write_text("a,b\n")
    shutil.copy(media["short"], src / ".hidden" / "skip.mp4")
    if bad:
        (src / "day1" / "broken.mp4").write_text("hello, I am a text file\n" * 20)
        (src / "empty.jpg").write_bytes(b"")
    return src


def anonymizer(**kw) -> Anonymizer:
    return Anonymizer(red_factory, warmup_seconds=0.4, **kw)


MEDIA_RELS = ["day1/cam2/other.mp4", "day1/cam2/still.png", "day1/photo.jpg", "day1/short.mov", "long.mp4"]


def outputs(out: Path) -> dict[str, str]:
    """sha256 of every output (not the reports, whose timings differ from run to run)."""
    return {rel: sha256_file(out / rel) for rel in MEDIA_RELS}


def assert_same_outputs(a: Path, b: Path, rels=MEDIA_RELS) -> None:
    """Every output in ``a`` equals its twin in ``b``: byte for byte, or at worst frame for frame.

    `write_video` encodes with slice threads, which made the bytes reproducible in every run we made by
    hand; under heavy CPU contention a video has still (rarely) come out with other bytes, so a video may
    fall back to a decoded comparison: codec noise differs by a few levels on average, a mask missing or
    in the wrong place by ~200 over the object.
    """
    for rel in rels:
        if sha256_file(a / rel) == sha256_file(b / rel):
            continue
        assert Path(rel).suffix.lower() in (".mp4", ".mov"), f"{rel} differs"
        with open_media(a / rel) as x, open_media(b / rel) as y:
            assert x.n_frames == y.n_frames, rel
            for (n, fx), (_, fy) in zip(x.frames(), y.frames()):
                diff = np.abs(fx.astype(np.int16) - fy.astype(np.int16))
                assert diff.max() <= 64, (rel, n, int(diff.max()), float(diff.mean()))
                assert diff.mean() <= 3.0, (rel, n, int(diff.max()), float(diff.mean()))


# --- the tree, the ledger, isolation ------------------------------------------------------------------------


def test_mirrors_the_tree_with_mixed_media_and_skips_done_files(tmp_path, media):
    src = make_tree(tmp_path, media)
    out = tmp_path / "out"
    settings = Settings(mask="solid")
    summary = run_batch(src, out, settings, process_file=anonymizer(), progress=False, echo=False)
    assert (summary["total"], summary["done"], summary["skipped"], summary["failed"]) == (5, 5, 0, 0), \
        summary["failures"]
    assert summary["ignored"] == 2  # notes.txt, index.csv (hidden folders are not entered)
    assert summary["ignored_files"] == sorted(summary["ignored_files"]) and len(summary["ignored_files"]) == 2
    for rel in MEDIA_RELS:
        src_media, out_media = open_media(src / rel), open_media(out / rel)
        assert (out_media.kind, out_media.n_frames, out_media.width, out_media.height) == \
               (src_media.kind, src_media.n_frames, src_media.width, src_media.height)
        assert (out / (rel + ".report.json")).is_file()
        assert (out / (rel + ".report.md")).is_file()
    assert not (out / ".hidden").exists()
    assert not (out / "notes.txt").exists()
    # the objects are masked (solid): the detector finds none in the output
    with open_media(out / "long.mp4") as video:
        assert all(len(RedDetector()(frame)) == 0 for _, frame in video.frames(0, 72))

    rows = {r["path"]: r for r in read_ledger(out)}
    assert set(rows) == set(MEDIA_RELS)
    for rel, row in rows.items():
        assert row["status"] == "done"
        assert row["attempts"] == 1
        assert row["error"] is None
        assert row["input_sha256"] == sha256_file(src / rel)
        assert row["output_sha256"] == sha256_file(out / rel)
        assert row["settings_digest"] == settings.digest
        assert row["finished_at"] >= row["started_at"]
        assert row["seconds"] >= 0
    with sqlite3.connect(out / LEDGER_NAME) as db:
        (stored,) = db.execute("SELECT json FROM settings").fetchone()
    assert Settings.from_dict(json.loads(stored)) == settings

    again = run_batch(src, out, settings, process_file=anonymizer(), progress=False, echo=False)
    assert (again["done"], again["skipped"], again["failed"]) == (0, 5, 0)
    assert {r["path"]: r["finished_at"] for r in read_ledger(out)} == {k: v["finished_at"] for k, v in rows.items()}


def test_a_bad_file_fails_alone_with_its_reason(tmp_path, media, capsys):
    src = make_tree(tmp_path, media, bad=True)
    out = tmp_path / "out"
    summary = run_batch(src, out, process_file=anonymizer(), progress=False)
    assert (summary["total"], summary["done"], summary["failed"]) == (7, 5, 2), summary["failures"]
    reasons = {f["file"]: f["error"] for f in summary["failures"]}
    assert "not a video or photo" in reasons["day1/broken.mp4"]
    assert "empty" in reasons["empty.jpg"]
    printed = capsys.readouterr()
    assert "5 done" in printed.out
    assert "2 failed" in printed.out
    assert "day1/broken.mp4: " in printed.out
    assert "Traceback" not in printed.out + printed.err
    assert not (out / "day1" / "broken.mp4").exists()
    assert [p.name for p in (out / "day1").iterdir() if p.name.startswith(".")] == []  # no temp files
    rows = {r["path"]: r for r in read_ledger(out)}
    assert rows["day1/broken.mp4"]["status"] == "failed"
    assert (rows["day1/broken.mp4"]["error"] == reasons[
        "day1/broken.mp4"])


def test_unexpected_exceptions_are_reduced_to_their_type(tmp_path, media):
    src = make_tree(tmp_path, media)
    summary = run_batch(src, tmp_path / "out", process_file=buggy_processor, progress=False, echo=False)
    assert summary["failed"] == 5
    for f in summary["failures"]:
        assert "ValueError" in f["error"]
        assert "secret" not in f["error"]
        assert "12" not in f["error"]


def test_cli_exits_non_zero_when_a_file_failed(tmp_path, media, monkeypatch, capsys):
    from anonlab.cli import main

    monkeypatch.setattr("anonlab.batch.driver.Anonymizer", anonymizer)
    src = make_tree(tmp_path, media, bad=True)
    assert main(["batch", str(src), str(tmp_path / "out"), "--quiet"]) == 1
    out = capsys.readouterr().out
    assert "2 failed" in out
    assert "broken.mp4" in out
    (src / "day1" / "broken.mp4").unlink()
    (src / "empty.jpg").unlink()
    assert main(["batch", str(src), "-o", str(tmp_path / "out"), "--quiet"]) == 0  # -o, as the other commands
    assert main(["batch", str(src), "--quiet"]) == 2  # no output folder: one line
    assert "name one output folder" in capsys.readouterr().err
    assert main(["anonymize", str(src), "-o", str(tmp_path / "out2"), "--quiet"]) == 0  # a folder input
    assert (tmp_path / "out2" / "day1" / "cam2" / "still.png").is_file()


def test_a_changed_input_or_new_settings_are_redone(tmp_path, media):
    src = make_tree(tmp_path, media)
    out = tmp_path / "out"
    run_batch(src, out, process_file=anonymizer(), progress=False, echo=False)
    before = {r["path"]: r for r in read_ledger(out)}
    first = outputs(out)
    shutil.copy(media["other"], src / "day1" / "short.mov")  # new content, same name
    summary = run_batch(src, out, process_file=anonymizer(), progress=False, echo=False)
    assert (summary["done"], summary["skipped"]) == (1, 4)
    rows = {r["path"]: r for r in read_ledger(out)}
    assert rows["day1/short.mov"]["input_sha256"] == sha256_file(src / "day1" / "short.mov")
    assert rows["day1/short.mov"]["attempts"] == 2
    assert rows["day1/short.mov"]["output_sha256"] != first["day1/short.mov"]
    assert open_media(out / "day1" / "short.mov").n_frames == 30
    assert rows["long.mp4"]["finished_at"] == before["long.mp4"]["finished_at"]

    (tmp_path / "first").mkdir()
    (out / "long.mp4").rename(tmp_path / "first" / "long.mp4")  # a lost output is made again
    assert run_batch(src, out, process_file=anonymizer(), progress=False, echo=False)["done"] == 1
    assert_same_outputs(out, tmp_path / "first", ["long.mp4"])

    summary = run_batch(src, out, Settings(mask="solid"), process_file=anonymizer(), progress=False, echo=False)
    assert summary["done"] == 5
    assert {r["settings_digest"] for r in read_ledger(out)} == {Settings(mask="solid").digest}


KILL_SCRIPT = """
import os, sys, time
sys.path.insert(0, {tests!r})
from anonlab.batch import Anonymizer, run_batch
from test_batch import red_factory

# The kill must land while an output is being written, whatever the machine's load: the second media output
# stops just before it would replace its temporary (written in full, not yet committed) until the test kills us.
_replace, _committed = os.replace, []
def hold_second_output(src, dst, *args, **kwargs):
    if ".part." in str(src) and str(dst).endswith((".mp4", ".mov", ".jpg", ".png")):
        if _committed:
            open({held!r}, "w").close()  # tell the test: the kill lands now, whatever else is written around it
            time.sleep(3600)
        _committed.append(dst)
    return _replace(src, dst, *args, **kwargs)
os.replace = hold_second_output

if __name__ == "__main__":
    run_batch({src!r}, {out!r}, process_file=Anonymizer(red_factory, warmup_seconds=0.4), progress=False,
              echo=False)
"""


def test_resume_after_kill_9_mid_file(tmp_path, media):
    src = make_tree(tmp_path, media)
    reference = tmp_path / "reference"
    run_batch(src, reference, process_file=anonymizer(), progress=False, echo=False)

    out = tmp_path / "out"
    script = tmp_path / "killme.py"
    held = tmp_path / "held"
    script.write_text(KILL_SCRIPT.format(tests=str(TESTS), src=str(src), out=str(out), held=str(held)))
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 900  # a generous bound only: the child waits for its kill (KILL_SCRIPT)
    try:
        # The child says when it holds its second output (a file finished, another one written, not yet
        # committed): polling for temporary files instead could catch a report's, replaced before the kill.
        ledger = out / LEDGER_NAME

        def first_done() -> bool:  # both conditions stay true once met: no race with the kill
            if not (held.exists() and ledger.exists()):
                return False
            with contextlib_closing(sqlite3.connect(ledger, timeout=5)) as db:
                return bool(db.execute("SELECT path FROM jobs WHERE status='done'").fetchall())

        while time.monotonic() < deadline and proc.poll() is None and not first_done():
            time.sleep(0.05)
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
        proc.stderr.close()
    assert list(out.rglob(".*.part*")), "the kill should land while an output is being written"
    killed = {r["path"]: r for r in read_ledger(out)}
    finished = {p for p, r in killed.items() if r["status"] == "done"}
    interrupted = [p for p, r in killed.items() if r["status"] == "running"]
    assert finished
    assert len(interrupted) == 1
    for rel in MEDIA_RELS:  # never a half-written output: absent, or complete
        if (out / rel).exists():
            assert open_media(out / rel).n_frames == open_media(src / rel).n_frames
    mtimes = {rel: (out / rel).stat().st_mtime_ns for rel in finished}

    summary = run_batch(src, out, process_file=anonymizer(), progress=False, echo=False)
    assert summary["skipped"] == len(finished)
    assert summary["done"] == 5 - len(finished)
    assert_same_outputs(out, reference)  # identical to an uninterrupted run
    rows = {r["path"]: r for r in read_ledger(out)}
    assert all(r["status"] == "done" for r in rows.values())
    for rel in finished:  # done files were not redone
        assert rows[rel]["finished_at"] == killed[rel]["finished_at"]
        assert rows[rel]["attempts"] == 1
        assert (out / rel).stat().st_mtime_ns == mtimes[rel]
    assert rows[interrupted[0]]["attempts"] == 2
    assert not list(out.rglob(".*.part*"))
    assert not list(out.rglob(".*.tmp"))  # the killed run's temp files
    for rel in MEDIA_RELS:
        assert open_media(out / rel).n_frames == open_media(src / rel).n_frames
        assert (out / (rel + ".report.json")).is_file()


def contextlib_closing(db):
    import contextlib

    return contextlib.closing(db)


def test_one_output_folder_one_batch(tmp_path, media):
    src = make_tree(tmp_path, media)
    out = tmp_path / "out"
    out.mkdir()
    with open(out / batch.LOCK_NAME, "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        with pytest.raises(AnonlabError, match="another anonlab batch"):
            run_batch(src, out, process_file=copy_processor, progress=False, echo=False)
    assert run_batch(src, out, process_file=copy_processor, progress=False, echo=False)["done"] == 5


@pytest.mark.parametrize("inp, out, match", [
    ("in", "in", "is the input folder"),
    ("in/sub", "in", "inside the output folder"),
    ("missing", "out", "no such folder"),
])
def test_folder_mistakes_are_refused(tmp_path, inp, out, match):
    (tmp_path / "in" / "sub").mkdir(parents=True)
    with pytest.raises(AnonlabError, match=match):
        run_batch(tmp_path / inp, tmp_path / out, process_file=copy_processor, progress=False, echo=False)


def test_output_folder_inside_the_input_is_not_scanned(tmp_path, media):
    src = make_tree(tmp_path, media)
    summary = run_batch(src, src / "anonymized", process_file=copy_processor, progress=False, echo=False)
    assert summary["done"] == 5
    assert run_batch(src, src / "anonymized", process_file=copy_processor, progress=False, echo=False)["skipped"] == 5


# --- chunks ---------------------------------------------------------------------------------------------


def covered(box, regions: Regions, scale: float) -> float:
    """Fraction of ``box`` inside the union of the masked boxes (regions grown by ``scale``)."""
    x1, y1, x2, y2 = box
    canvas = np.zeros((H, W), bool)
    grown = regions.pad((scale - 1) / 2).clip(W, H)
    for a, b, c, d in grown.xyxy:
        canvas[int(np.floor(b)):int(np.ceil(d)), int(np.floor(a)):int(np.ceil(c))] = True
    return float(canvas[y1:y2, x1:x2].mean())


@pytest.mark.parametrize("detect_every", [1, 3])
def test_chunked_regions_match_unchunked_and_expose_nothing_at_seams(media, detect_every):
    settings = Settings(detect_every=detect_every)
    proc = anonymizer()
    job = Job("long.mp4", str(media["long"]), "unused.mp4", None, "", settings, chunk_seconds=24 / FPS)
    chunks = proc.plan(job)
    assert [(c.start, c.stop) for c in chunks] == [(0, 24), (24, 48), (48, 72)]  # keyframes every 12 frames
    assert all(c.warm < c.start and c.warm % detect_every == 0 for c in chunks[1:])
    whole = proc.analyse(job, None).regions
    parts = [proc.analyse(job, c) for c in chunks]
    from anonlab.track.analyse import stitch_chunks

    stitched = stitch_chunks([(p.chunk.start, p.regions) for p in parts], 72, settings).clip(W, H)
    assert len(np.unique(stitched.track_id)) == len(np.unique(whole.track_id))  # tracks continue across seams
    for n in range(72):
        a, b = stitched.at_frame(n), whole.at_frame(n)
        assert len(a) == len(b), n
        if len(a):
            from anonlab.regions import iou_matrix

            assert iou_matrix(a.xyxy, b.xyxy).max(axis=1).min() >= 0.9, n  # the tracker's tolerance
        for box in object_boxes(n):  # no frame with an object bare, blind frames at the seam included
            assert covered(box, stitched, settings.mask_scale) >= 0.99, (n, box)


def test_chunked_batch_output_equals_unchunked(tmp_path, media):
    src = tmp_path / "in"
    src.mkdir()
    shutil.copy(media["long"], src / "long.mp4")
    shutil.copy(media["photo"], src / "photo.jpg")
    run_batch(src, tmp_path / "whole", process_file=anonymizer(), progress=False, echo=False)
    run_batch(src, tmp_path / "chunked", process_file=anonymizer(), chunk_seconds=24 / FPS, progress=False,
              echo=False)
    rows = {r["path"]: r for r in read_ledger(tmp_path / "chunked")}
    assert rows["long.mp4"]["chunks"] == 3
    assert rows["photo.jpg"]["chunks"] == 1
    assert_same_outputs(tmp_path / "chunked", tmp_path / "whole", ["long.mp4", "photo.jpg"])


@pytest.mark.parametrize("n, keys, seconds, expected", [
    (100, [0, 25, 50, 75], 1.0, [(0, 25), (25, 50), (50, 75), (75, 100)]),
    (100, [0, 25, 50, 75], 1.5, [(0, 50), (50, 100)]),
    (30, [0, 12, 24], 1.0, [(0, -1)]),          # shorter than 1.5 chunks: whole
    (500, [0], 1.0, [(0, -1)]),                 # no keyframe to cut at: whole
    (100, [0, 25, 50, 90], 1.0, [(0, 25), (25, 50), (50, 100)]),  # no sliver of a last chunk
])
def test_plan_chunks(n, keys, seconds, expected):
    chunks = plan_chunks(n, 25.0, keys, seconds, detect_every=2, warmup_seconds=0.4)
    assert [(c.start, c.stop) for c in chunks] == expected
    for c in chunks:
        assert c.warm <= c.start
        assert c.warm % 2 == 0
        assert c.start == 0 or c.start - c.warm >= 10


def test_plan_chunks_margin_reaches_across_each_seam():
    # a track that appears up to `margin` frames after a seam is followed back into the chunk before it; a
    # track lost up to `margin` frames before a seam is known to the chunk after it
    chunks = plan_chunks(200, 25.0, [0, 50, 100, 150], 2.0, detect_every=3, warmup_seconds=0.4, margin=30)
    assert [(c.start, c.stop, c.end) for c in chunks] == [(0, 50, 80), (50, 100, 130), (100, 150, 180),
                                                                  (150, 200, 200)]
    assert all(c.start - c.warm >= 30 and c.warm % 3 == 0 for c in chunks[1:])
    assert plan_chunks(200, 25.0, [0, 50, 100, 150], 2.0)[0].end == 50  # no margin: analysed to its stop


# --- executors ------------------------------------------------------------------------------------------


def test_dask_local_cluster_two_workers(tmp_path, media):
    pytest.importorskip("distributed")
    import tempfile

    src = make_tree(tmp_path, media, bad=True)
    run_batch(src, tmp_path / "inline", process_file=anonymizer(), progress=False, echo=False)
    scratch = set(Path(tempfile.gettempdir()).glob("anonlab-dask-*"))
    summary = run_batch(src, tmp_path / "dask", process_file=anonymizer(), executor="dask", workers=2,
                        chunk_seconds=24 / FPS, progress=True, echo=False)
    assert (summary["done"], summary["failed"]) == (5, 2), summary["failures"]
    assert set(Path(tempfile.gettempdir()).glob("anonlab-dask-*")) <= scratch  # the workers' spill folder is gone
    try:
        import bokeh  # noqa: F401
    except ImportError:
        assert summary["dashboard"] is None
    else:
        assert summary["dashboard"].startswith("http://127.0.0.1:")
    assert_same_outputs(tmp_path / "dask", tmp_path / "inline")
    rows = {r["path"]: r for r in read_ledger(tmp_path / "dask")}
    assert rows["long.mp4"]["chunks"] == 3


def test_local_cluster_workers_keep_adaptive_malloc_and_a_share_of_the_cores(monkeypatch):
    pytest.importorskip("distributed")
    monkeypatch.delenv("MALLOC_TRIM_THRESHOLD_", raising=False)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 4)
    executor = batch._Dask(2)
    try:
        envs = executor.client.run(lambda: (os.environ.get("MALLOC_TRIM_THRESHOLD_"), os.environ.get("OMP_NUM_THREADS"),
                                            os.environ.get(batch.THREADS_ENV)))
    finally:
        executor.close()
    assert sorted(envs.values()) == [(None, "2", "2")] * 2


def test_dask_scheduler_by_address(tmp_path, media):
    distributed = pytest.importorskip("distributed")
    src = tmp_path / "in"
    src.mkdir()
    shutil.copy(media["long"], src / "long.mp4")
    shutil.copy(media["photo"], src / "photo.jpg")
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None) \
            as cluster:  # in-process (inproc:// address): the address path without another spawn
        summary = run_batch(src, tmp_path / "out", process_file=anonymizer(), executor="dask",
                            scheduler=cluster.scheduler_address, chunk_seconds=24 / FPS, progress=False, echo=False)
        assert (summary["done"], summary["failed"]) == (2, 0)
        with distributed.Client(cluster) as client:  # a notebook's own Client works too, and stays open
            (src / "photo.jpg").unlink()
            shutil.copy(media["png"], src / "still.png")
            assert run_batch(src, tmp_path / "out", process_file=anonymizer(), executor="dask", scheduler=client,
                             progress=False, echo=False)["done"] == 1
            assert client.status == "running"
    with pytest.raises(AnonlabError, match="--scheduler needs --executor dask"):
        run_batch(src, tmp_path / "out2", process_file=copy_processor, scheduler="tcp://127.0.0.1:1", echo=False)


def test_process_pool_isolates_a_worker_crash(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    for name in ("a.mp4", "b.mp4", "crash.mp4", "d.jpg", "e.mp4"):
        (src / name).write_bytes(name.encode() * 100)
    summary = run_batch(src, tmp_path / "out", process_file=crashing_processor, workers=2, progress=False,
                        echo=False)
    assert (summary["done"], summary["failed"]) == (4, 1)
    assert summary["failures"][0]["file"] == "crash.mp4"
    assert "worker process died" in summary["failures"][0]["error"]
    for name in ("a.mp4", "b.mp4", "d.jpg", "e.mp4"):
        assert (tmp_path / "out" / name).read_bytes() == (src / name).read_bytes()


# --- small parts ------------------------------------------------------------------------------------------


def test_scan_tree_and_output_names(tmp_path):
    (tmp_path / "a" / ".git").mkdir(parents=True)
    for name in ("a/x.MP4", "a/y.webm", "a/y.mkv", "a/z.txt", "a/.git/h.mp4", ".DS_Store", "b.HEIC"):
        (tmp_path / name).write_bytes(b"0")
    rels, ignored = scan_tree(tmp_path)
    assert rels == ["a/x.MP4", "a/y.mkv", "a/y.webm", "b.HEIC"]
    assert ignored == [".DS_Store", "a/z.txt"]  # named: a summary says which
    assert output_name("a/x.MP4") == "a/x.MP4"
    assert output_name("a/y.webm") == "a/y.webm"  # VP9 in WebM since anonlab keeps containers
    assert output_name("a/y.avi") == "a/y.mkv"
    assert output_name("a/y.avi", taken={"a/y.mkv"}) == "a/y.avi.mkv"


@pytest.mark.parametrize("exc, expected", [
    (MediaError("clip.mp4: not a video"), "clip.mp4: not a video"),
    (AnonlabError("two\nlines"), "two lines"),
    (KeyError("x=10,y=20"), "internal error (KeyError)"),
    (MemoryError(), "out of memory"),
])
def test_error_line(exc, expected):
    line = error_line(exc)
    assert line.startswith(expected)
    assert "\n" not in line
    assert "x=10" not in line


def test_format_summary_names_each_failed_file_once():
    text = format_summary({"total": 3, "done": 1, "skipped": 1, "failed": 1, "ignored": 2, "seconds": 1.0,
                           "failures": [{"file": "sub/bad.mp4", "error": "bad.mp4: not a video"}],
                           "ledger": "out/anonlab-ledger.sqlite"})
    assert "  sub/bad.mp4: not a video" in text.splitlines()
    assert "2 other file(s) ignored " in text.splitlines()[0]
    named = format_summary({"total": 1, "done": 1, "skipped": 0, "failed": 0, "ignored": 7, "seconds": 1.0,
                            "ignored_files": [".DS_Store", "a.txt", "b.txt", "c.txt", "d.txt"]})
    assert "7 other file(s) ignored (.DS_Store, a.txt, b.txt, c.txt, d.txt and 2 more)" in named


def test_queue_cases_renders_approved_cases_only(tmp_path):
    def write_case(name, status):
        path = tmp_path / name
        path.write_text(json.dumps({"input": f"/data/{name}.mp4", "review": {"status": status}}))
        return path

    rendered = []

    def fake_render(job, progress=None):
        data = json.loads(Path(job.src).read_text())
        if data["review"]["status"] != "approved":
            raise AnonlabError(f"{Path(job.src).name}: review status is {data['review']['status']}, not approved")
        with atomic_output(job.dst) as tmp:
            tmp.write_bytes(b"rendered")
        rendered.append(Path(job.dst).name)
        return {}

    cases = [write_case("one", "approved"), write_case("two", "in review")]
    summary = queue_cases(cases, tmp_path / "out", render_case=fake_render, reports=False, progress=False, echo=False)
    assert (summary["done"], summary["failed"]) == (1, 1)
    assert rendered == ["one.mp4"]
    assert "not approved" in summary["failures"][0]["error"]
    assert summary["failures"][0]["file"] == str(cases[1])  # the path given, not the ledger's "cases/two"
    again = queue_cases(cases[:1], tmp_path / "out", render_case=fake_render, reports=False, progress=False,
                        echo=False)
    assert again["skipped"] == 1
    assert rendered == ["one.mp4"]


def test_queue_cases_with_workbench_case_files(tmp_path, media):
    case_mod = pytest.importorskip("anonlab.case")
    from anonlab.pipeline import analyse

    src = tmp_path / "in"
    src.mkdir()
    shutil.copy(media["short"], src / "short.mov")
    shutil.copy(media["other"], src / "other.mp4")
    paths = []
    for name, approve in (("short.mov", True), ("other.mp4", False)):
        analysis = analyse(src / name, Settings(mask="solid"), detector=RedDetector(), progress=False)
        case = case_mod.Case.from_analysis(analysis)
        if approve:
            case.decide([i.id for i in case.review_queue()], "accepted", by="Ann Analyst")
            case.set_status("reviewed", "Ann Analyst")
            case.set_status("approved", "Rita Reviewer")
        paths.append(case.save(tmp_path / f"{name}.case.json"))
    out = tmp_path / "out"
    summary = queue_cases(paths, out, progress=False, echo=False)
    assert (summary["done"], summary["failed"]) == (1, 1)
    assert "not approved" in summary["failures"][0]["error"]
    assert (summary["failures"][0]["file"].endswith(
        "other.mp4.case.json"))
    assert not (out / "other.mp4").exists()
    with open_media(out / "short.mov") as video:
        assert video.n_frames == 30
        assert all(len(RedDetector()(frame)) == 0 for _, frame in video.frames())
    report = json.loads((out / "short.mov.report.json").read_text())
    assert report["review"]["status"] == "approved"
    assert queue_cases(paths[:1], out, progress=False, echo=False)["skipped"] == 1


def test_render_cases_command(tmp_path, media, capsys):
    """``anonlab render-cases``: the CLI face of queue_cases; a draft case fails alone, exit 1."""
    from anonlab import cli
    from anonlab.case import Case
    from anonlab.pipeline import analyse

    shutil.copy(media["short"], tmp_path / "short.mov")
    case = Case.from_analysis(analyse(tmp_path / "short.mov", Settings(mask="solid"), detector=RedDetector(),
                                      progress=False))
    draft = case.save(tmp_path / "draft.case.json")
    assert cli.main(["render-cases", str(draft), "-o", str(tmp_path / "out"), "--quiet"]) == 1
    case.decide([i.id for i in case.review_queue()], "accepted", by="Ann Analyst")
    case.set_status("reviewed", "Ann Analyst")
    case.set_status("approved", "Rita Reviewer")
    approved = case.save(tmp_path / "approved.case.json")
    assert cli.main(["render-cases", str(approved), "-o", str(tmp_path / "out2"), "--quiet"]) == 0
    assert (tmp_path / "out2" / "short.mov").exists()
    # a case file approved with its cards open (an older anonlab, a hand edit) is not published as signed off
    data = json.loads(approved.read_text())
    data["review"]["decisions"] = {}
    data["review"].pop("decided", None)
    (tmp_path / "hand.case.json").write_text(json.dumps(data))
    assert cli.main(["render-cases", str(tmp_path / "hand.case.json"), "-o", str(tmp_path / "out3"), "--quiet"]) == 1
    assert not (tmp_path / "out3" / "short.mov").exists()
    printed = capsys.readouterr().out
    assert "approved, but" in printed and "review item(s) undecided" in printed


def test_a_folder_without_media_is_an_error_and_leaves_nothing_behind(tmp_path):
    """A newcomer pointed anonymize at a folder holding a readme: exit 0, and an output folder with a ledger."""
    import subprocess
    import sys

    src = tmp_path / "notes"
    src.mkdir()
    (src / "readme.txt").write_text("no media here")
    out = tmp_path / "out"
    run = subprocess.run([sys.executable, "-m", "anonlab", "anonymize", str(src), "-o", str(out)],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode != 0
    assert "no videos or photos" in run.stderr and "Traceback" not in run.stderr
    assert len(run.stderr.strip().splitlines()) == 1
    assert not out.exists()
    assert not (tmp_path / "notes_anonymized").exists()


def test_a_folder_run_never_writes_over_a_file_it_did_not_write(tmp_path, media):
    """A newcomer's folder run replaced "my precious notes", a file that happened to have an output's name, without
    --overwrite (one file refuses that). Now that input fails with one line and the file is kept; the run's own
    outputs are still redone when the input or the settings change."""
    src = make_tree(tmp_path, media)
    out = tmp_path / "out"
    (out / "day1").mkdir(parents=True)
    notes = out / "day1" / "photo.jpg"
    notes.write_text("my precious notes")
    summary = run_batch(src, out, process_file=copy_processor, progress=False, echo=False)
    assert (summary["done"], summary["failed"]) == (4, 1)
    assert "did not write it" in summary["failures"][0]["error"] and "--overwrite" in summary["failures"][0]["error"]
    assert notes.read_text() == "my precious notes"
    summary = run_batch(src, out, process_file=copy_processor, progress=False, echo=False)  # again: still kept
    assert (summary["skipped"], summary["failed"]) == (4, 1) and notes.read_text() == "my precious notes"
    (out / "day1" / "short.mov.report.json").unlink()  # a lost report: its output is the run's own, redone
    summary = run_batch(src, out, process_file=copy_processor, progress=False, echo=False)
    assert summary["failed"] == 1 and summary["done"] == 1
    summary = run_batch(src, out, process_file=copy_processor, progress=False, echo=False, overwrite=True)
    assert summary["done"] == 1 and notes.read_bytes() == (src / "day1" / "photo.jpg").read_bytes()
    summary = run_batch(src, out, Settings(mask="solid"), process_file=copy_processor, progress=False, echo=False)
    assert (summary["done"], summary["failed"]) == (5, 0)  # new settings: its own outputs are replaced


def test_a_folder_run_checks_every_output_with_the_red_team_and_exits_4(tmp_path, media, monkeypatch, capsys):
    """`anonymize FOLDER --red-team` skipped the check without a word and exited 0, while the same clip alone
    exited 4: a publishing script gating on the exit code would have published the exposed face."""
    from anonlab import pipeline
    from anonlab.cli import main
    from anonlab.review.redteam import Finding

    def red_team(output, regions, settings, frames=None, whole_frames=()):
        if Path(output).name != "short.mov":
            return []
        return [Finding(frame=3, kind="exposed", label="face", score=0.9, detectors=("red",), coverage=0.1,
                        last_frame=5, n_frames=3, sure=True, strength=1.2)]

    monkeypatch.setattr(pipeline.review, "red_team", red_team)
    monkeypatch.setattr("anonlab.batch.driver.Anonymizer", anonymizer)
    src = make_tree(tmp_path, media)
    out = tmp_path / "out"
    assert main(["anonymize", str(src), "-o", str(out), "--quiet"]) == 0  # no check asked for
    assert main(["anonymize", str(src), "-o", str(out), "--quiet", "--red-team"]) == 4  # every output redone
    printed = capsys.readouterr().out
    assert "5 done" in printed and "red team: 5 output(s) checked; 1 with sure findings: 1 exposed" in printed
    assert "day1/short.mov: 1 exposed" in printed
    report = json.loads((out / "day1" / "short.mov.report.json").read_text())
    assert report["red_team"]["exposed"] == 1 and report["extra"]["red_team_exposed"] == 1
    # resumed: nothing is redone, the findings come back from the reports, the exit code stays 4
    assert main(["batch", str(src), str(out), "--quiet", "--red-team"]) == 4
    assert "5 already done" in capsys.readouterr().out
    # the one-file options are refused for a folder, not ignored
    assert main(["anonymize", str(src), "-o", str(out), "--report", str(tmp_path / "r.json")]) == 2
    assert "--report name one file's" in capsys.readouterr().err


def test_a_batch_logged_to_a_file_says_each_file_in_a_line_without_bars(tmp_path, media, capsys):
    """stderr captured (a scheduler's log): no tqdm redraws, one plain line per file finished."""
    src = tmp_path / "in"
    src.mkdir()
    shutil.copy(media["short"], src / "short.mov")
    (src / "photo.jpg").write_bytes((media["long"].parent / "photo.jpg").read_bytes())
    run_batch(src, tmp_path / "out", Settings(mask="solid"), process_file=anonymizer(), progress=True, echo=False)
    err = capsys.readouterr().err
    assert "\r" not in err and "\x1b" not in err
    lines = [line for line in err.splitlines() if line.startswith("batch: ")]
    assert [line[:16] for line in lines] == ["batch: 1/2 file(", "batch: 2/2 file("]  # in the order they finished
    assert sorted(line.split(": ", 2)[2] for line in lines) == ["photo.jpg done", "short.mov done"]


# --- inputs a folder run cannot process as they are ---------------------------------------------------------


def mjpeg_avi(path: Path, n_frames: int = 6) -> Path:
    """A tiny MJPEG AVI: a container anonlab does not write, so its output is renamed to ``.mkv``."""
    import av

    with av.open(str(path), "w") as out:
        vs = out.add_stream("mjpeg", rate=FPS)
        vs.width, vs.height, vs.pix_fmt = W, H, "yuvj420p"
        for n in range(n_frames):
            for p in vs.encode(av.VideoFrame.from_ndarray(object_frame(n), format="bgr24")):
                out.mux(p)
        for p in vs.encode():
            out.mux(p)
    return path


def test_two_inputs_with_one_output_name_both_fail_up_front(tmp_path, media, monkeypatch, capsys):
    """A newcomer's ``clip.avi`` (MJPEG, written as ``clip.mkv``) and ``clip.mkv`` in one folder: the run blamed
    an output "this batch did not write", and with --overwrite the second file replaced the first's output while
    the summary said all was done. Now both fail before any work, with one line naming both, on every run."""
    from anonlab.cli import main

    monkeypatch.setattr("anonlab.batch.driver.Anonymizer", anonymizer)
    src = tmp_path / "mix2"
    src.mkdir()
    mjpeg_avi(src / "clip.avi")
    shutil.copy(media["other"], src / "clip.mkv")  # an H.264 clip; the container does not matter here
    shutil.copy(media["photo"], src / "photo.jpg")
    out = tmp_path / "mix2_out"
    line = "clip.avi and clip.mkv would both be written as clip.mkv: rename one of them"
    for args in ([], ["--overwrite"], []):  # a rerun, with --overwrite or not, behaves the same
        assert main(["batch", str(src), str(out), "--quiet", *args]) == 1
        printed = capsys.readouterr().out
        assert "1 done" in printed or "1 already done" in printed
        assert "2 failed" in printed
        assert f"  clip.avi: {line}" in printed and f"  clip.mkv: {line}" in printed
        assert not (out / "clip.mkv").exists() and not (out / "clip.mkv.report.json").exists()  # no work done
        rows = {r["path"]: r for r in read_ledger(out)}
        assert (rows["clip.avi"]["status"], rows["clip.mkv"]["status"], rows["photo.jpg"]["status"]) == \
               ("failed", "failed", "done")
        assert rows["clip.avi"]["attempts"] == rows["clip.mkv"]["attempts"] == 0  # failed before they ran
    assert main(["anonymize", str(src), "-o", str(tmp_path / "dir"), "--quiet"]) == 1
    assert f"  clip.avi: {line}" in capsys.readouterr().out
    (src / "clip.mkv").rename(src / "clip2.mkv")  # the fix the line asks for
    assert main(["batch", str(src), str(out), "--quiet"]) == 0
    with open_media(out / "clip.mkv") as video:
        assert video.n_frames == 6  # clip.avi's output
    with open_media(out / "clip2.mkv") as video:
        assert video.n_frames == 30


def test_output_names_that_differ_only_in_case_clash_too(tmp_path):
    """``Clip.MP4`` and ``clip.mp4`` are two files here, one file on a Mac, on Windows or on a USB drive (exFAT)."""
    src = tmp_path / "in"
    (src / "Day1").mkdir(parents=True)
    (src / "day1").mkdir()
    for name in ("Day1/Clip.MP4", "day1/clip.mp4", "day1/other.mp4"):
        (src / name).write_bytes(name.encode() * 10)
    summary = run_batch(src, tmp_path / "out", process_file=copy_processor, progress=False, echo=False)
    assert (summary["done"], summary["failed"]) == (1, 2)
    errors = {f["file"]: f["error"] for f in summary["failures"]}
    assert set(errors) == {"Day1/Clip.MP4", "day1/clip.mp4"}
    assert errors["Day1/Clip.MP4"] == errors["day1/clip.mp4"]
    assert errors["day1/clip.mp4"].startswith("Day1/Clip.MP4 and day1/clip.mp4 would both be written as ")
    assert "case" in errors["day1/clip.mp4"] and "rename one of them" in errors["day1/clip.mp4"]
    assert not (tmp_path / "out" / "day1" / "clip.mp4").exists()


@pytest.mark.parametrize("rels, clashing", [
    (["a/clip.avi", "a/clip.mkv", "b/clip.mkv"], {"a/clip.avi", "a/clip.mkv"}),
    (["clip.mpg", "clip.mkv", "clip.wmv"], {"clip.mpg", "clip.mkv", "clip.wmv"}),  # whatever the sort order
    (["x.avi", "x.mp4", "X.JPG", "x.jpg"], {"X.JPG", "x.jpg"}),
    (["caf\u00e9.jpg", "cafe\u0301.jpg"], {"caf\u00e9.jpg", "cafe\u0301.jpg"}),  # one name to macOS
    (["a.mp4", "b.mp4"], set()),
])
def test_plan_outputs_finds_every_clash(rels, clashing):
    outputs, clashes = plan_outputs(rels)
    assert outputs == {rel: output_name(rel) for rel in rels}
    assert set(clashes) == clashing
    for rel in clashing:
        assert "\n" not in clashes[rel] and clashes[rel].endswith("rename one of them")


def animated(path: Path, n_frames: int = 3) -> Path:
    from PIL import Image

    frames = [Image.fromarray(object_frame(n)[..., ::-1]) for n in range(n_frames)]
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=80, loop=0)
    return path


def test_animated_images_are_reported_not_processed_with_how_to_convert(tmp_path, media, monkeypatch, capsys):
    """``anim.gif`` was ignored (exit 0: a face in it left unmasked, unnoticed) while ``anim.webp`` failed with
    "convert it to a video (MP4)" and no how. Now every animated image fails alike, with a command that works."""
    from anonlab.cli import main

    monkeypatch.setattr("anonlab.batch.driver.Anonymizer", anonymizer)
    src = tmp_path / "in"
    src.mkdir()
    names = ("walk.gif", "wave.webp", "turn.png")  # an animated PNG (APNG) too
    for name in names:
        animated(src / name)
    shutil.copy(media["png"], src / "still.png")
    out = tmp_path / "out"
    assert main(["batch", str(src), str(out), "--quiet"]) == 1
    printed = capsys.readouterr().out
    assert "4 file(s): 1 done, 0 already done, 3 failed; 0 other file(s) ignored" in printed
    lines = {line.split(": ", 1)[0].strip(): line for line in printed.splitlines()
             if line.startswith("  ") and line.split(": ", 1)[0].strip() in names}
    assert set(lines) == set(names)
    for name, line in lines.items():
        assert "animated" in line and "3 frames" in line and "not processed" in line
        assert "ffmpeg -i " in line and f"video in its place and move {name} out of the folder: " in line
    assert lines["walk.gif"].endswith(f"out of the folder: ffmpeg -i {src}/walk.gif {src}/walk.mp4")
    assert not any((out / name).exists() for name in names)
    assert main(["batch", str(src), str(out), "--quiet"]) == 1  # a rerun: the same
    assert "3 failed" in capsys.readouterr().out

    # The commands the lines give work, and what they make is processed.
    if shutil.which("ffmpeg") is None:
        pytest.skip("no ffmpeg on PATH to run the suggested commands")
    for name, line in lines.items():
        command = line.split(" out of the folder: ", 1)[1]
        subprocess.run(["bash", "-c", command.replace("python3 ", f"{sys.executable} ", 1)], check=True,
                       capture_output=True, timeout=120, stdin=subprocess.DEVNULL)
        (src / name).unlink()
    assert sorted(p.name for p in src.iterdir()) == ["still.png", "turn.mp4", "walk.mp4", "wave.mp4"]
    assert main(["batch", str(src), str(out), "--quiet"]) == 0
    with open_media(out / "wave.mp4") as video:
        assert video.n_frames >= 3
