"""How many review decisions a minute of footage asks for: per event (before issue 14) and per track (now).

    .venv/bin/python benchmarks/review_load.py [--eval-dir ../shared/eval] [--cache DIR] [--page-size 12]

For each clip of ``videos/`` (facenet, hamilton, traffic; no ground truth needed) the clip is analysed with
the default settings (`anonlab.pipeline.analyse`; the case file is cached in ``--cache`` by the clip's sha256
and the settings digest, so a second run only recounts) and its review queue built as the workbench builds
it (`anonlab.widgets.review_panel.ReviewSession`). Printed per clip:

* ``before``: items of the per-event queue (one per gap, low-score run, short track, start, end, edit, shot
  start): `anonlab.review.event_count`, which counts the flags of the per-track queue, i.e. the same events;
* ``after``: decisions of the per-track queue: one per card that needs its own decision, one per page of
  routine tracks (`anonlab.review.decisions_needed`);
* both per minute of footage, their ratio, and what the decisions are (own cards by kind, pages).

Every flagged frame stays one click away: it is on its card's filmstrip (checked here: the union of the
filmstrips and the card frames holds the first frame of every flag).
Evaluation data is read from ``--eval-dir`` and never copied.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CLIPS = {"facenet": "facenet_pytorch_video.mp4", "hamilton": "face_recognition_short_hamilton_clip.mp4",
         "traffic": "opencv_tutorial_slow_traffic_small.mp4"}


def log(*args) -> None:
    print(*args, flush=True)


def load() -> str:
    return "load %.1f/%.1f/%.1f" % os.getloadavg()


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def case_for(clip: Path, cache: Path, settings):
    """The analysed case of ``clip`` (from the cache when the clip and the settings are the same)."""
    from anonlab.case import Case
    from anonlab.pipeline import analyse

    path = cache / f"{clip.stem}-{sha256(clip)[:16]}-{settings.digest[:12]}.case.json"
    if path.exists():
        return Case.load(path), 0.0
    t = time.perf_counter()
    case = Case.from_analysis(analyse(clip, settings, progress=False))
    case.save(path)
    return case, time.perf_counter() - t


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--eval-dir", default=str(ROOT.parent / "shared" / "eval"))
    p.add_argument("--cache", default=str(Path(tempfile.gettempdir()) / "anonlab-review-load-cache"))
    p.add_argument("--page-size", type=int, default=None)
    p.add_argument("--clips", default=",".join(CLIPS), help="names among " + ", ".join(CLIPS))
    args = p.parse_args(argv)

    from anonlab.review import PAGE_SIZE, decisions_needed, event_count
    from anonlab.settings import Settings
    from anonlab.widgets.review_panel import Page, ReviewSession

    page_size = args.page_size or PAGE_SIZE
    cache = Path(args.cache)
    cache.mkdir(parents=True, exist_ok=True, mode=0o700)  # case files hold coordinates: private
    settings = Settings()
    log(f"review load, default settings, page size {page_size}; {load()}")
    log(f"{'clip':9} {'min':>5} {'tracks':>6} {'before':>6} {'after':>5} {'before/min':>10} {'after/min':>9} "
        f"{'fewer':>6}  what the decisions are")
    for name in args.clips.split(","):
        clip = Path(args.eval_dir) / "videos" / CLIPS[name]
        if not clip.exists():
            log(f"{name}: {clip} is missing; skipped")
            continue
        case, took = case_for(clip, cache, settings)
        session = ReviewSession(case, page_size=page_size)
        queue = session.queue
        before, after = event_count(queue), decisions_needed(queue, page_size=page_size)
        minutes = case.input.n_frames / (case.input.fps or 25.0) / 60
        own = Counter(c.kind for c in session.cards if not isinstance(c, Page))
        pages = sum(isinstance(c, Page) for c in session.cards)
        reachable = {f for i in queue for f in (*i.frames, i.frame)}
        flagged = {f.first for i in queue for f in i.flags} | {i.frame for i in queue if not i.flags}
        assert flagged <= reachable, f"{name}: flagged frames off every filmstrip: {sorted(flagged - reachable)[:5]}"
        what = ", ".join(f"{v} {k}" for k, v in own.most_common()) + (", " if own else "") + f"{pages} page(s)"
        log(f"{name:9} {minutes:5.2f} {len(case.tracks):6d} {before:6d} {after:5d} {before / minutes:10.0f} "
            f"{after / minutes:9.0f} {before / max(after, 1):5.1f}x  {what}"
            + (f"  (analysed in {took:.0f} s)" if took else ""))
    log(load())
    return 0


if __name__ == "__main__":
    sys.exit(main())
