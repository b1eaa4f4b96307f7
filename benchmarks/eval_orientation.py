"""Face recall on content turned by 90°, 180° and 270° without metadata, and how well `Oriented` puts it upright.

    nice -n 10 .venv/bin/python benchmarks/eval_orientation.py [--eval-dir ../shared/eval] [--cache DIR]

Every labelled photo of ``faces/`` is run through the default face detector four times, turned by q = 0, 1, 2, 3
quarter turns (`anonlab.detect.orientation.turn_frame`), the boxes mapped back to the photo's pixels. IoU is the
same before and after a quarter turn, so these four passes answer every question below without more detection:

* **plain detector on rotated copies**: a copy of the photo stored turned by r and detected as it is sees q = r;
* **`Oriented`**: on the copy turned by r, ``choose`` tries turns t and keeps one; turn t sees q = (r + t) % 4.
  The rule is replayed from the cached passes exactly as `Oriented.choose` applies it (same functions).

Figures: recall, precision (the set is not exhaustive: pessimistic), recall under 16 px, per rotation, with the
share of photos whose chosen turn puts them upright, and the extra passes run per photo. Per source too (the
face set has one source). The rotated copies are made in memory, never written.

``--clips`` adds the clips of ``videos/`` with faces, turned by 180° frame by frame (an inverted camera): the
analysis as ``anonymize`` runs it (``detect_every`` 3, quick passes, the clip's frame rate) with and without the
orientation choice, against the analysis of the clip as it is, mapped back (no per-frame face truth exists, so
the upright run stands in for it): per-frame recall of its faces and the frames in which all of them are masked
(90 % of each under the masks as drawn, `anonlab.render.mask.mask_extent`).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from anonlab.detect import build_detector  # noqa: E402
from anonlab.detect.orientation import turn_frame, unturn_boxes, unturn_regions  # noqa: E402
from anonlab.evaluation.images import evaluate_rows, load_jsonl, read_image  # noqa: E402
from anonlab.regions import Regions  # noqa: E402
from anonlab.settings import Settings  # noqa: E402


def log(*args) -> None:
    print(*args, flush=True)


def load() -> str:
    return "load %.1f/%.1f/%.1f" % os.getloadavg()


def passes(labels_path: Path, detector, cache: Path | None, limit: int) -> tuple[list[dict], list[list[Regions]], float]:
    """Labels and, per photo, the detector's boxes at each quarter turn (in the photo's pixels)."""
    rows = load_jsonl(labels_path, "labels")
    if limit:
        rows = rows[:limit]
    path = None
    if cache is not None:
        tag = hashlib.sha256(f"{labels_path}|{limit}|{detector}".encode()).hexdigest()[:16]
        path = cache / f"orientation.{tag}.json"
        if path.exists():
            data = json.loads(path.read_text())
            return rows, [[Regions.from_records(r) for r in per] for per in data["dets"]], data["seconds"]
    dets, spent = [], 0.0
    for i, row in enumerate(rows):
        image = read_image(labels_path.parent / row["image"])
        h, w = image.shape[:2]
        per = []
        for q in range(4):
            t0 = time.perf_counter()
            r = detector(np.ascontiguousarray(turn_frame(image, q)))
            spent += time.perf_counter() - t0
            per.append(r.replace(xyxy=unturn_boxes(r.xyxy, q, w, h)) if len(r) else r)
        dets.append(per)
        if (i + 1) % 50 == 0:
            log(f"  {i + 1}/{len(rows)} photos, {spent / (4 * (i + 1)) * 1000:.0f} ms a pass ({load()})")
    if path is not None:
        cache.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"seconds": spent, "dets": [[r.to_records(with_track=False, ndigits=2) for r in per]
                                                               for per in dets]}))
    return rows, dets, spent


def preds_rows(rows: list[dict], boxes: list[Regions]) -> list[dict]:
    return [{"image": row["image"], "source": row["source"], "exhaustive": None, "width": None, "height": None,
             "ms": None, "boxes": [(b["label"], b["x"], b["y"], b["w"], b["h"], b["score"])
                                   for b in r.to_records(with_track=False, ndigits=2)]}
            for row, r in zip(rows, boxes)]


def figures(rows: list[dict], boxes: list[Regions]) -> dict:
    res = evaluate_rows(rows, preds_rows(rows, boxes), labels_to_score=["face"])["by_label"]["face"]
    o = res["overall"]
    return {"recall": o["recall"], "precision": o["precision"], "small": res["by_size"]["<16"]["recall"],
            "n_gt": o["n_gt"], "tp": o["tp"], "by_source": {k: v["recall"] for k, v in res["by_source"].items()}}


def fmt(f: dict) -> str:
    num = lambda v: "-" if v is None else f"{v:.3f}"  # noqa: E731  (a --limit run may hold no small face)
    return f"recall {num(f['recall'])} ({f['tp']}/{f['n_gt']}), precision {num(f['precision'])}, <16 px {num(f['small'])}"


def section_clips(args) -> dict:
    from anonlab.evaluation.temporal import HIDDEN_SHARE, covered_share, recall_metrics
    from anonlab.render.mask import mask_extent
    from anonlab.media import open_media
    from anonlab.settings import Settings as S
    from anonlab.track.analyse import Analyser, settings_for_rate

    detector = build_detector(S())
    rows = {}
    log("\n== clips turned by 180 degrees (faces; the upright analysis stands in for the truth) ==")
    for name in ("facenet_pytorch_video.mp4", "face_recognition_short_hamilton_clip.mp4"):
        path = args.eval_dir / "videos" / name
        if not path.exists():
            continue
        media = open_media(path)
        fps, width, height = media.fps, media.width, media.height
        limit = args.clip_frames or media.n_frames
        frames = [(n, f) for n, f in media.frames() if n < limit]
        media.close()
        n = len(frames)

        def run(turned: bool, orient: bool) -> Regions:
            a = Analyser(detector, settings_for_rate(S(), fps), fps=fps, orient=orient)
            for i, f in frames:
                a.feed(i, np.ascontiguousarray(turn_frame(f, 2)) if turned else f)
            r = a.result(n)
            r = r[r.label == 0]
            return unturn_regions(r, 2, width, height) if turned else r  # boxes and their turn, as upright

        t0 = time.perf_counter()
        upright = run(False, True)
        truth = upright[upright.source != 3]  # what the upright run masks, without its lead/trail rows
        for title, orient in (("turned, as it is", False), ("turned, orientation chosen", True)):
            got = run(True, orient)
            m = recall_metrics(got, truth, n, fps, mask_scale=S().mask_scale)
            all_masked = 0
            for i in range(n):
                t = truth[truth.frame == i]
                g = mask_extent(got[got.frame == i], S())
                if not len(t) or (len(g) and (covered_share(t.xyxy, g) >= HIDDEN_SHARE).all()):
                    all_masked += 1
            rows[f"{name} {title}"] = {"recall": m["recall"], "frames_all_masked": all_masked, "frames": n}
            log(f"  {name} | {title}: per-frame recall of the upright run's faces {m['recall']:.3f} "
                f"({m['found']}/{m['object_frames']}); frames with every face masked {all_masked}/{n}")
        log(f"  ({n} frames, {time.perf_counter() - t0:.0f} s for the three analyses, {load()})")
    return rows


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--eval-dir", type=Path, default=Path(os.environ.get("ANONLAB_EVAL", REPO.parent / "shared" / "eval")))
    p.add_argument("--cache", type=Path, help="keep the four passes per photo here and reuse them")
    p.add_argument("--limit", type=int, default=0, help="first N photos only (0: all)")
    p.add_argument("--json", type=Path, help="also write the figures here")
    p.add_argument("--clips", action="store_true", help="also the clips of videos/ turned by 180 degrees")
    p.add_argument("--clip-frames", type=int, default=120, help="frames of each clip (0: all)")
    args = p.parse_args(argv)
    labels = args.eval_dir / "faces" / "labels.jsonl"
    if not labels.exists():
        log(f"no face set at {labels}")
        return 2
    detector = build_detector(Settings(what=("face",)))
    log(f"detector: {detector}\nmachine: {os.cpu_count()} CPUs, {load()}")
    rows, dets, spent = passes(labels, detector, args.cache, args.limit)
    n = len(rows)
    log(f"{n} photos x 4 turns{'' if spent else ' (cached)'}" + (f": {spent / (4 * n) * 1000:.0f} ms a pass" if spent else ""))
    out: dict = {"photos": n}
    log("\n== the detector on copies stored turned by r, as they are (what anonlab did before issue 15) ==")
    for r in range(4):
        f = figures(rows, [per[r] for per in dets])
        out[f"plain_r{r}"] = f
        log(f"  r = {90 * r:>3}°: {fmt(f)}")
    try:
        from anonlab.detect.orientation import choose_turn
    except ImportError:
        choose_turn = None
    if choose_turn is not None:
        log("\n== Detector.choose: the turn chosen per photo (replayed from the cached passes) ==")
        for r in range(4):
            chosen, extra, upright = [], 0, 0
            for per in dets:
                turn, regions, tried = choose_turn(lambda t, per=per: per[(r + t) % 4])
                chosen.append(regions)
                extra += tried - 1
                upright += (r + turn) % 4 == 0
            f = figures(rows, chosen)
            f.update(upright_share=upright / n, extra_passes_per_photo=extra / n)
            out[f"oriented_r{r}"] = f
            log(f"  r = {90 * r:>3}°: {fmt(f)}; put upright {upright}/{n}; extra passes {extra / n:.2f} a photo")
    if args.clips:
        out["clips"] = section_clips(args)
    log(f"\n{load()}")
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
