"""Night benchmark: faces and plates on night-like copies at several darkness levels, with and without the night view.

    .venv/bin/python benchmarks/eval_night.py                          # faces and plates, every level
    .venv/bin/python benchmarks/eval_night.py --what faces --step 3    # faces on every 3rd photo
    .venv/bin/python benchmarks/eval_night.py --levels 2.2x0.5         # one darkness level

No night photo is labelled, so night-like copies are made of the labelled photos (`eval_plates.night_copy`:
gamma G, times K, sodium-lamp cast, sensor noise sigma 6, blur sigma 1, seeded per image) at each level
``GxK`` of ``--levels``; ``plain`` is the photos as they are. For each level and image the detector runs on
the copy (``plain view``) and on its `anonlab.detect.night.night_view` (``night view``), at `FLOOR` times its
threshold; each row keeps the boxes at its own threshold (faces: `keep_by_size`, the fused detector's
size-dependent rule; plates: the score) and unites the views where `NightView` would:

* ``detector``: the plain view alone at the default threshold (the detector without the lever);
* ``night view only``: the night view alone (what replacing the frame would give);
* ``NightView``: the plain view united with the night view where the copy `is_dark` (how many images are dark
  is printed: only they pay the second view);
* ``NightView, dark xF``: the same with both views at F times the threshold on dark images (``--factors``).

Faces: the default face detector (``build_detector(Settings(what=("face",)))``) on ``faces/``: recall, precision,
false boxes per image (exhaustive sources), recall per size. Plates: the default plate detector's two views
(``--plates quick``, `MultiScalePlates.detect_quick`; the text blocks changed 0.825 to 0.827 at night) or the
whole default (``--plates default``) on ``plates/`` + ``plates_extra/``: recall per source and size, false
boxes per image where exhaustive (the tallies of `eval_plates`). Predictions are cached per level and view
under ``--out`` (by image: a larger ``--step`` reuses a smaller one's); ms per 1280x720 frame of each detector with and without the lever are printed at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import zlib
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

import eval_plates as ep  # noqa: E402
from anonlab.detect import build_detector  # noqa: E402
from anonlab.detect.fusion import keep_by_size  # noqa: E402
from anonlab.detect.night import DARK_MEAN, NightView, is_dark, mean_luma, night_view, unite  # noqa: E402
from anonlab.evaluation.images import RECALL_ONLY_SOURCES, SIZE_BUCKETS, evaluate_rows, load_jsonl  # noqa: E402
from anonlab.regions import Regions  # noqa: E402
from anonlab.settings import Settings  # noqa: E402

LEVELS = "plain,1.5x0.5,2.2x0.5,3x0.5,2.2x0.3"
#: Detections are cached at this factor times each detector's threshold; every row filters them.
FLOOR = 0.5


def log(*args, **kw) -> None:
    print(*args, flush=True, **kw)


def parse_level(level: str) -> tuple[float, float] | None:
    if level == "plain":
        return None
    g, k = level.split("x")
    return float(g), float(k)


def darken(image: np.ndarray, level: str, key: str) -> np.ndarray:
    p = parse_level(level)
    return image if p is None else ep.night_copy(image, zlib.crc32(key.encode()), gamma=p[0], gain=p[1])


def cached_views(items, detector, cache: Path, level: str) -> dict:
    """Per image key: ``{"plain": records, "night": records or None, "luma": mean luma, "ms": {...}}``. The
    night view is run on every darkened copy, and on plain photos only where they are dark (what NightView does)."""
    data = json.loads(cache.read_text()) if cache.exists() else {}
    todo = [(k, get) for k, get in items if k not in data]
    for i, (key, get) in enumerate(todo):
        image = darken(get(), level, key)
        luma = mean_luma(image)
        t0 = time.perf_counter()
        plain = detector(image)
        ms_plain = (time.perf_counter() - t0) * 1000
        night = None
        ms_night = 0.0
        if level != "plain" or luma < DARK_MEAN:
            t0 = time.perf_counter()
            night = detector(night_view(image)).to_records(with_track=False, ndigits=1)
            ms_night = (time.perf_counter() - t0) * 1000
        data[key] = {"plain": plain.to_records(with_track=False, ndigits=1), "night": night, "luma": luma,
                     "ms": {"plain": ms_plain, "night": ms_night}}
        if (i + 1) % 25 == 0 or i + 1 == len(todo):
            cache.write_text(json.dumps(data))
            log(f"  {cache.name}: {i + 1}/{len(todo)} ({ep.load_avg()})")
    return data


def predictions(entry: dict, row: str, dark: float, keep) -> Regions:
    """The boxes of one row (see the module docstring); ``keep(regions, factor)`` applies a threshold factor."""
    plain = Regions.from_records(entry["plain"])
    night = Regions.from_records(entry["night"]) if entry["night"] is not None else None
    is_dark_ = night is not None and entry["luma"] < dark
    if row == "detector" or (row != "night view only" and not is_dark_):
        return keep(plain, 1.0)
    if row == "night view only":
        return keep(night if night is not None else plain, 1.0)
    f = float(row.split("x")[-1]) if "dark x" in row else 1.0
    return unite(keep(plain, f), keep(night, f))


def row_names(factors: str) -> list[str]:
    return ["detector", "night view only", "NightView"] + [f"NightView, dark x{f}" for f in factors.split(",") if f]


def row_ms(entry: dict, row: str, dark: float) -> float:
    return entry["ms"]["plain"] + (entry["ms"]["night"] if row != "detector" and entry["luma"] < dark else 0.0)


# --- faces ---------------------------------------------------------------------------------------------------


def faces(args, report) -> None:
    labels = args.eval / "faces" / "labels.jsonl"
    rows = load_jsonl(labels, "labels")[:: args.step]
    fused = build_detector(Settings(what=("face",))).detector  # without its NightView: the views are made here
    detector = fused.lowered(FLOOR)
    items = [(r["image"], lambda r=r: cv2.imread(str(labels.parent / r["image"]))) for r in rows]
    sizes = [n for n, _, _ in SIZE_BUCKETS]

    def keep(regions, factor):
        return keep_by_size(regions, fused.thresh * factor, fused.small_factor, fused.small_side, fused.large_side)

    log(f"\nfaces: {len(rows)} photos of faces/ (every {args.step}th), default face detector ({ep.load_avg()})")
    log(f"{'level':<10}{'row':<26}{'dark':>6}{'recall':>8}{'prec':>7}{'FP/img':>8}" + "".join(f"{s:>9}" for s in sizes)
        + f"{'ms/img':>8}")
    report["faces"] = {}
    for level in args.levels.split(","):
        data = cached_views(items, detector, args.out / f"faces_{level}.json", level)
        n_dark = sum(data[r["image"]]["luma"] < args.dark for r in rows)
        for row in row_names(args.factors):
            preds = [{"image": r["image"], "boxes": [(b["label"], b["x"], b["y"], b["w"], b["h"], b["score"])
                                                     for b in predictions(data[r["image"]], row, args.dark, keep)
                                                     .to_records(with_track=False)], "ms": 0.0} for r in rows]
            res = evaluate_rows(rows, preds, recall_only=RECALL_ONLY_SOURCES)["by_label"]["face"]
            o, s = res["overall"], res["by_size"]
            ms = np.mean([row_ms(data[r["image"]], row, args.dark) for r in rows])
            log(f"{level:<10}{row:<26}{n_dark:>6}{o['recall']:>8.3f}{o['precision'] or 0:>7.3f}"
                f"{o['fp_per_image'] or 0:>8.2f}" + "".join(f"{s[k]['recall'] if s[k]['recall'] is not None else 0:>9.3f}"
                                                         for k in sizes) + f"{ms:>8.0f}")
            report["faces"].setdefault(level, {})[row] = {"overall": o, "by_size": s, "dark_images": n_dark, "ms": ms}


# --- plates --------------------------------------------------------------------------------------------------


def plates(args, report) -> None:
    rows = ep.load_rows(args.eval)[:: args.step]
    plate = build_detector(Settings(what=("plate",))).detector.lowered(FLOOR)  # without its NightView
    detector = plate if args.plates == "default" else _Quick(plate)

    def keep(regions, factor):
        return regions[np.nonzero(regions.score >= plate_thresh * factor - 1e-6)[0]]
    plate_thresh = build_detector(Settings(what=("plate",))).thresh
    items = [(r["key"], lambda r=r: cv2.imread(r["path"])) for r in rows]
    log(f"\nplates: {len(rows)} photos of plates/ + plates_extra/ (every {args.step}th), {args.plates} plate "
        f"detector; recall/false boxes per image (exhaustive sources) ({ep.load_avg()})")
    report["plates"] = {}
    for level in args.levels.split(","):
        data = cached_views(items, detector, args.out / f"plates_{args.plates}_{level}.json", level)
        n_dark = sum(data[r["key"]]["luma"] < args.dark for r in rows)
        results = {}
        for row in row_names(args.factors):
            preds = {}
            for r in rows:
                p = predictions(data[r["key"]], row, args.dark, keep)
                preds[r["key"]] = np.concatenate([p.xyxy, p.score[:, None]], 1) if len(p) else np.zeros((0, 5))
            ms = float(np.mean([row_ms(data[r["key"]], row, args.dark) for r in rows]))
            results[f"{row}"] = (ep.score(rows, preds), ms)
        report["plates"][level] = ep.table(f"plates, level {level} ({n_dark} of {len(rows)} images dark)", rows, results)


class _Quick:
    """The plate detector's two views (its quick pass) as a plain callable."""

    def __init__(self, detector):
        self.detector = detector

    def __call__(self, frame):
        return self.detector.quick(frame)


# --- cost ----------------------------------------------------------------------------------------------------


def speed(args, report) -> None:
    rows = [r for r in ep.load_rows(args.eval) if "romania" in r["path"]]
    frame = cv2.imread(rows[0]["path"]) if rows else np.random.default_rng(0).integers(0, 255, (720, 1280, 3), np.uint8)
    dark = ep.night_copy(frame, 0)
    log(f"\nms per 1280x720 frame (min / median of {args.repeat} interleaved runs; mean luma {mean_luma(frame):.0f} "
        f"plain, {mean_luma(dark):.0f} dark) ({ep.load_avg()})")
    report["speed"] = {}
    t0 = time.perf_counter()
    for _ in range(20):
        is_dark(frame)
    log(f"  the dark check: {(time.perf_counter() - t0) / 20 * 1000:.2f} ms; night_view: ", end="")
    t0 = time.perf_counter()
    for _ in range(5):
        night_view(dark)
    log(f"{(time.perf_counter() - t0) / 5 * 1000:.1f} ms")
    for what in args.what.split(","):
        base = build_detector(Settings(what=("face",) if what == "faces" else ("plate",)))
        dets = {"detector": base, "NightView": NightView(base)}
        for label, f in (("plain", frame), ("dark", dark)):
            times = {k: [] for k in dets}
            for d in dets.values():
                d(f)
            for _ in range(args.repeat):
                for k, d in dets.items():
                    t0 = time.perf_counter()
                    d(f)
                    times[k].append((time.perf_counter() - t0) * 1000)
            log(f"  {what} {label} frame ({ep.load_avg()}): " + ", ".join(
                f"{k} {min(t):.0f} / {np.median(t):.0f}" for k, t in times.items()))
            report["speed"][f"{what} {label}"] = {k: [min(t), float(np.median(t))] for k, t in times.items()}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--eval", type=Path, default=Path(os.environ.get("ANONLAB_EVAL", REPO.parent / "shared" / "eval")))
    ap.add_argument("--out", type=Path, default=REPO / "out" / "eval_night")
    ap.add_argument("--what", default="faces,plates")
    ap.add_argument("--levels", default=LEVELS, help="darkness levels GAMMAxGAIN, comma-separated, or plain")
    ap.add_argument("--step", type=int, default=1, help="every Nth photo")
    ap.add_argument("--plates", choices=("quick", "default"), default="quick")
    ap.add_argument("--factors", default="0.75,0.5", help="threshold factors on dark images, comma-separated")
    ap.add_argument("--dark", type=float, default=DARK_MEAN, help="mean-luma line of the dark check (0-255)")
    ap.add_argument("--speed", action="store_true", help="also time 720p frames with and without NightView")
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    report: dict = {"eval": str(args.eval), "cpu_count": os.cpu_count(), "step": args.step, "dark": args.dark}
    for what in args.what.split(","):
        {"faces": faces, "plates": plates}[what](args, report)
    if args.speed:
        speed(args, report)
    (args.out / "results.json").write_text(json.dumps(report, indent=1, default=str))
    log(f"\nfigures in {args.out / 'results.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
