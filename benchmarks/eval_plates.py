"""Plate benchmark: each plate source measured per source and per size, on photos, night-like copies, plate-free
material and moving clips, with its cost.

    .venv/bin/python benchmarks/eval_plates.py                       # photos, night, negatives, clips, speed
    .venv/bin/python benchmarks/eval_plates.py --sections photos     # one section
    .venv/bin/python benchmarks/eval_plates.py --sections scale      # the model's recall against plate width

Material (read from ``--eval``, never copied): ``plates/`` (434 photos: openalpr US/EU, Romanian dashcam, CCPD)
and ``plates_extra/`` (283 photos of two-line and square plates: Bangladesh, Vietnam, India, Saudi Arabia;
exhaustive flags from its ``image_meta.jsonl``). Precision and false boxes per image only on exhaustively
labelled images; IoU >= 0.3.

Variants (`anonlab.detect.plates`): ``letterbox`` (the model once, the previous default), ``+shrunk`` (and at a
third of the scale), ``default`` (and a zoomed look at two-line text blocks, text detector at 960 px), ``text1280``
(the same with the text detector at 1280 px), ``blocks unverified`` (text blocks added without the zoomed look,
for reference: what the text detector alone would add); with ``--upscaled``, ``+shrunk +x2`` (the model also at
twice the letterbox scale: the brute-force alternative for small plates, four times the pixels).

Sections:

* ``photos`` -- recall per source and per size (smaller side; and plates >= 400 px wide), false boxes per image
  on exhaustive sources, ms per image; a threshold curve of the default;
* ``night`` -- the same on night-like copies made here (`night_copy`: darkened with gamma 2.2 and x0.5, sodium
  colour cast, sensor noise sigma 6, blur sigma 1; seeded per image): no night photos are labelled;
* ``negatives`` -- plate boxes per image on plate-free material: ``faces/`` photos and every 5th frame of the two
  plate-free clips in ``videos/`` (a shopping arcade with signs, a stage);
* ``clips`` -- moving clips made with `anonlab.evaluation.synth` from labelled photos of every source (pan/zoom, motion
  blur, H.264): per-frame recall of the detector on every frame and tracked (`Analyser`, detect every 3rd
  frame, thorough twice a second and the quick pass between), the longest run of frames a plate stays missed; and the plate regions and tracks the analysis makes
  on the two plate-free clips;
* ``closeups`` -- 1280x720 frames cut around labelled plates and scaled so the plate is 400-1200 px wide (a
  close-up plate): recall per width;
* ``far`` -- 1920x1080 and 3840x2160 frames cut around labelled plates scaled to 32-128 px wide (far plates in
  large frames, which the letterbox shrinks): recall of the model views with and without the tiles view;
* ``scale`` -- the model's recall against the plate's width in its input (a 1280x736 window around each plate at
  gains that make it 20-1200 px wide), which sets the shrunk view's and the zoom's scales (slow: off by default);
* ``speed`` -- ms per 1280x720 and 1920x1080 frame of each variant, interleaved, with the load average.

Sources of each image are computed once at a low threshold and cached under ``--out``; every threshold and
variant is then combined from them with the same functions the detector uses (`fuse_views`, `uncovered`,
`combine`), checked against the detector itself on a few images. ``default + NightView`` is the shipped
detector (`anonlab.detect.night.NightView` around the default): on images whose mean luma is under
`DARK_MEAN` both the image and its `night_view` are seen at `PLATE_DARK_FACTOR` times the threshold, united.

Long because every section reads the same cached sources and combines them with the same helpers: split up,
they would each reload and re-check them.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import sys
import tempfile
import time
import zlib
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from anonlab.detect import plates as plm  # noqa: E402
from anonlab.detect.build import PLATE_DARK_FACTOR  # noqa: E402
from anonlab.detect.night import DARK_MEAN, mean_luma, night_view, unite  # noqa: E402
from anonlab.detect.plates import MultiScalePlates, PlateDetector  # noqa: E402
from anonlab.detect.text import TextDetector  # noqa: E402
from anonlab.evaluation.images import match  # noqa: E402
from anonlab.regions import PLATE, Regions, iou_matrix  # noqa: E402

FLOOR = 0.1  # sources are cached down to this plate score
CURVE = (0.2, 0.3, 0.35, 0.4, 0.45, 0.5, 0.6)
SIZES = (("<16", 0, 16), ("16-32", 16, 32), ("32-64", 32, 64), ("64-128", 64, 128), (">=128", 128, math.inf))
WIDE = 400  # "very large" plates: at least this many pixels wide
CLOSE = 0.6  # close-ups: plates at least this share of the image's width
EXTRA_SOURCES = ("bd_dhaka_car", "vn_moto_hh", "in_autorickshaw", "sa_kau_yolov5")
VARIANTS = ("letterbox", "+shrunk", "default, no tiles", "default", "text1280", "blocks unverified")
#: The cache key of the tiles view (`anonlab.detect.plates.tile_windows`): added to cached images that lack it.
TILES = (f"tiles{plm.TILE_OVERLAP}_{plm.TILE_MIN_ZOOM:g}_{plm.TILE_EDGE:g}_{plm.TILE_MAX_WIDTH:g}"
         f"_{plm.TILE_MOST}_{plm.TILE_ENOUGH:g}")
#: Caches are named after the settings they were made with (a change makes new ones); `check_against_detector`
#: catches a change of code behind the same settings.
CODE_TAG = hashlib.sha256(repr((plm.SHRINK, plm.TEXT_GAIN, plm.MERGE_IOS, plm.VIEW_IOU, plm.ZOOM_WIDTH,
                                plm.ZOOM_CONTEXT, plm.MAX_ZOOMS, plm.BLOCK_ASPECT, plm.BLOCK_ROWS,
                                FLOOR)).encode()).hexdigest()[:8]


def log(*args) -> None:
    print(*args, flush=True)


def load_avg() -> str:
    return "load %.1f/%.1f/%.1f" % os.getloadavg()


# --- material ------------------------------------------------------------------------------------------------


def load_rows(eval_dir: Path) -> list[dict]:
    """Labelled photos of ``plates/`` and ``plates_extra/``: path, key, source, exhaustive, true boxes (xyxy)."""
    rows = []
    for name in ("plates", "plates_extra"):
        labels = eval_dir / name / "labels.jsonl"
        if not labels.exists():
            continue
        meta = {}
        if (eval_dir / name / "image_meta.jsonl").exists():
            for line in (eval_dir / name / "image_meta.jsonl").read_text().splitlines():
                if line.strip():
                    m = json.loads(line)
                    meta[m["image"]] = m
        for line in labels.read_text().splitlines():
            if not line.strip():
                continue
            r = json.loads(line)
            ex = meta.get(r["image"], {}).get("exhaustive", r.get("exhaustive"))
            if ex is None:
                ex = r["source"] not in ("openalpr_us", "openalpr_eu", "openalpr_br")
            gt = np.array([[b["x"], b["y"], b["x"] + b["w"], b["y"] + b["h"]] for b in r["boxes"]
                           if b["label"] == "plate"], np.float64).reshape(-1, 4)
            rows.append({"path": str(eval_dir / name / r["image"]), "key": f"{name}/{r['image']}",
                         "source": r["source"], "exhaustive": bool(ex), "gt": gt, "width": r["width"]})
    return rows


def night_copy(image: np.ndarray, seed: int, gamma: float = 2.2, gain: float = 0.5) -> np.ndarray:
    """A night-like copy: darkened (``gain * x ** gamma``, x in [0, 1]; the night section's 2.2 and 0.5),
    sodium-lamp cast, sensor noise (sigma 6), blur (sigma 1)."""
    x = image.astype(np.float32) / 255.0
    x = gain * np.power(x, gamma)
    x *= np.array([0.55, 0.85, 1.0], np.float32)  # BGR: blue suppressed, orange light
    x = cv2.GaussianBlur(x, (0, 0), 1.0)
    x += np.random.default_rng(seed).normal(0, 6 / 255.0, x.shape).astype(np.float32)
    return np.clip(x * 255.0 + 0.5, 0, 255).astype(np.uint8)


def negative_items(eval_dir: Path) -> list[tuple[str, str, object]]:
    """Plate-free images: ``(group, key, loader)``."""
    import av

    items = []
    faces = eval_dir / "faces" / "labels.jsonl"
    if faces.exists():
        for line in faces.read_text().splitlines():
            if line.strip():
                p = str(eval_dir / "faces" / json.loads(line)["image"])
                items.append(("faces photos", p, lambda p=p: cv2.imread(p)))
    for clip, group in (("facenet_pytorch_video.mp4", "arcade clip"),
                        ("face_recognition_short_hamilton_clip.mp4", "stage clip")):
        path = eval_dir / "videos" / clip
        if not path.exists():
            continue
        with av.open(str(path)) as c:
            for i, f in enumerate(c.decode(video=0)):
                if i % 5 == 0:
                    img = f.to_ndarray(format="bgr24")
                    items.append((group, f"{clip}#{i}", lambda img=img: img))
    return items


# --- detectors and cached sources ----------------------------------------------------------------------------


def detectors() -> dict:
    yolo = PlateDetector()
    dyn = PlateDetector(name="plate_yolov8n_dynamic")
    return {
        "yolo": yolo, "dyn": dyn,
        "lines text960": TextDetector(max_side=960), "lines text1280": TextDetector(max_side=1280),
        "letterbox": MultiScalePlates(yolo, None, None),
        "+shrunk": MultiScalePlates(yolo, dyn, None),
        "default, no tiles": MultiScalePlates(yolo, dyn, TextDetector(max_side=960), tiles=False),
        "default": MultiScalePlates(yolo, dyn, TextDetector(max_side=960)),
        "text1280": MultiScalePlates(yolo, dyn, TextDetector(max_side=1280)),
    }


def _blocks_at(lines: dict, t: float) -> tuple[np.ndarray, np.ndarray]:
    q = np.asarray(lines["quads"], np.float32).reshape(-1, 4, 2)
    s = np.asarray(lines["score"], np.float32)
    keep = s >= min(0.5, t / plm.TEXT_GAIN)
    return plm.plate_blocks(q[keep], s[keep])


def compute_sources(image: np.ndarray, dets: dict, texts=("text960", "text1280"), upscaled: bool = False) -> dict:
    """Every source of one image at the floor threshold, with its time (ms); zoomed looks at every block any
    curve threshold makes; with ``upscaled`` the model at twice the letterbox scale too (the alternative
    lever for small plates: 4x the pixels)."""
    out, ms = {}, {}
    h, w = image.shape[:2]
    if upscaled:
        t0 = time.perf_counter()
        out["x2"] = [a.tolist() for a in dets["dyn"].raw(image, FLOOR, gain=dets["yolo"].base_gain(w, h) * 2)]
        ms["x2"] = (time.perf_counter() - t0) * 1000
    t0 = time.perf_counter()
    out["letter"] = [a.tolist() for a in dets["yolo"].raw(image, FLOOR)]
    ms["letter"] = (time.perf_counter() - t0) * 1000
    t0 = time.perf_counter()
    out["shrunk"] = [a.tolist() for a in dets["dyn"].raw(image, FLOOR, gain=dets["yolo"].base_gain(w, h) * plm.SHRINK)]
    ms["shrunk"] = (time.perf_counter() - t0) * 1000
    add_tiles(out, ms, image, dets)
    zoomer = dets["default"]
    for name in texts:
        t0 = time.perf_counter()
        q, s = dets[f"lines {name}"].lines(image, 0.3)  # DB boxes score at least its binarisation threshold, 0.3
        ms[name] = (time.perf_counter() - t0) * 1000
        lines = {"quads": q.tolist(), "score": s.tolist()}
        blocks = {}
        for t in (FLOOR,) + CURVE:
            for b in _blocks_at(lines, t)[0]:
                blocks[",".join(f"{v:.1f}" for v in b)] = b
        zooms, t0 = {}, time.perf_counter()
        if blocks:
            keys = list(blocks)
            xyxy, score = zoomer.zoom(image, np.array([blocks[k] for k in keys], np.float32), thresh=FLOOR)
            zooms = {k: [*map(float, xyxy[i]), float(score[i])] for i, k in enumerate(keys)}
        out[name] = {**lines, "zooms": zooms}
        ms[f"zoom_{name}"] = (time.perf_counter() - t0) * 1000  # all curve thresholds' blocks: an upper bound
    out["ms"] = ms
    return out


def add_tiles(out: dict, ms: dict, image: np.ndarray, dets: dict) -> None:
    """The tiles view of one image (empty where the letterbox does not shrink it enough), with its time."""
    t0 = time.perf_counter()
    out[TILES] = [a.tolist() for a in dets["yolo"].tiles(image, FLOOR)]
    ms[TILES] = (time.perf_counter() - t0) * 1000


def cached_sources(items, cache: Path, dets: dict, transform=None, texts=("text960", "text1280"),
                   upscaled: bool = False) -> dict:
    cache.parent.mkdir(parents=True, exist_ok=True)
    data = json.loads(cache.read_text()) if cache.exists() else {}
    missing = [(k, get) for k, get in items if k in data and TILES not in data[k]]
    for i, (key, get) in enumerate(missing):  # caches made before the tiles view: add it
        image = get()
        add_tiles(data[key], data[key]["ms"], image if transform is None else transform(image, key), dets)
        if (i + 1) % 100 == 0 or i + 1 == len(missing):
            cache.write_text(json.dumps(data))
            log(f"  {cache.name}: tiles added to {i + 1}/{len(missing)} images ({load_avg()})")
    if upscaled:  # add the x2 view to images cached without it
        for key, get in items:
            if key in data and "x2" not in data[key]:
                image = get()
                h, w = image.shape[:2]
                t0 = time.perf_counter()
                data[key]["x2"] = [a.tolist() for a in dets["dyn"].raw(image, FLOOR, gain=dets["yolo"].base_gain(w, h) * 2)]
                data[key]["ms"]["x2"] = (time.perf_counter() - t0) * 1000
    todo = [(k, get) for k, get in items if k not in data]
    for i, (key, get) in enumerate(todo):
        image = get()
        if transform is not None:
            image = transform(image, key)
        data[key] = compute_sources(image, dets, texts, upscaled)
        if (i + 1) % 50 == 0 or i + 1 == len(todo):
            cache.write_text(json.dumps(data))
            log(f"  {cache.name}: {i + 1}/{len(todo)} images ({load_avg()})")
    return data


def combine_cached(src: dict, variant: str, t: float) -> np.ndarray:
    """Boxes ``(N, 5)`` (xyxy, score) of one variant at threshold ``t`` from cached sources."""
    letter = tuple(np.asarray(a, np.float32) for a in src["letter"])
    shrunk = None if variant == "letterbox" else tuple(np.asarray(a, np.float32) for a in src["shrunk"])
    if variant == "+shrunk +x2":  # the x2 view fused like a third view
        x2 = [np.asarray(a, np.float32) for a in src["x2"]]
        letter = (np.concatenate([letter[0].reshape(-1, 4), x2[0].reshape(-1, 4)]), np.concatenate([letter[1], x2[1]]))
    tiles = None
    if variant in ("default", "text1280", "blocks unverified"):  # the shipped detector's tiles view
        tiles = tuple(np.asarray(a, np.float32) for a in src[TILES])
        tiles = (tiles[0].reshape(-1, 4), tiles[1])
    plates = plm.fuse_views((letter[0].reshape(-1, 4), letter[1]),
                            None if shrunk is None else (shrunk[0].reshape(-1, 4), shrunk[1]), t, tiles)
    if variant in ("default", "default, no tiles", "text1280", "blocks unverified"):
        lines = src["text1280" if variant == "text1280" else "text960"]
        blocks, bscore = _blocks_at(lines, t)
        todo = plm.uncovered(blocks, plates.xyxy)
        blocks, bscore = blocks[todo], bscore[todo]
        if variant == "blocks unverified":
            confirmed = (blocks, bscore * plm.TEXT_GAIN)
        else:
            blocks = blocks[np.argsort(-bscore, kind="stable")[: plm.MAX_ZOOMS]]
            z = np.array([lines["zooms"][",".join(f"{v:.1f}" for v in b)] for b in blocks], np.float32).reshape(-1, 5)
            confirmed = (z[:, :4], z[:, 4])
        plates = plm.combine(plates, confirmed, t)
    return np.concatenate([plates.xyxy, plates.score[:, None]], 1) if len(plates) else np.zeros((0, 5), np.float32)


def night_sources(items, cache: Path, dets: dict, transform=None) -> dict:
    """Per image key: ``{"luma": its mean luma}``, and where it is dark (`anonlab.detect.night.is_dark`) the
    sources of its `night_view` too (``"sources"``, as `compute_sources`: what `NightView` adds)."""
    data = json.loads(cache.read_text()) if cache.exists() else {}
    for key, get in items:  # caches made before the tiles view: add it
        if key in data and "sources" in data[key] and TILES not in data[key]["sources"]:
            image = get() if transform is None else transform(get(), key)
            add_tiles(data[key]["sources"], data[key]["sources"]["ms"], night_view(image), dets)
    todo = [(k, get) for k, get in items if k not in data]
    for i, (key, get) in enumerate(todo):
        image = get()
        if transform is not None:
            image = transform(image, key)
        data[key] = {"luma": mean_luma(image)}
        if data[key]["luma"] < DARK_MEAN:
            data[key]["sources"] = compute_sources(night_view(image), dets, ("text960",))
        if (i + 1) % 50 == 0 or i + 1 == len(todo):
            cache.write_text(json.dumps(data))
            log(f"  {cache.name}: {i + 1}/{len(todo)} images ({load_avg()})")
    return data


def combine_night(src: dict, night: dict, variant: str, t: float, factor: float = PLATE_DARK_FACTOR) -> np.ndarray:
    """`combine_cached` as `NightView` around the variant gives it: on a dark image both views at ``t * factor``,
    united; elsewhere the variant alone."""
    if "sources" not in night:
        return combine_cached(src, variant, t)
    views = [combine_cached(x, variant, t * factor) for x in (src, night["sources"])]
    a, b = (Regions(xyxy=v[:, :4], score=v[:, 4], label=np.full(len(v), PLATE)) if len(v) else Regions.empty()
            for v in views)
    out = unite(a, b)
    return np.concatenate([out.xyxy, out.score[:, None]], 1) if len(out) else np.zeros((0, 5), np.float32)


def variant_ms(src: dict, variant: str) -> float:
    ms = src["ms"]
    total = ms["letter"]
    if variant != "letterbox":
        total += ms["shrunk"]
    if variant in ("default", "default, no tiles", "blocks unverified"):
        total += ms["text960"] + (ms["zoom_text960"] if variant.startswith("default") else 0)
    if variant in ("default", "text1280", "blocks unverified"):
        total += ms[TILES]
    if variant == "text1280":
        total += ms["text1280"] + ms["zoom_text1280"]
    if variant == "+shrunk +x2":
        total += ms["x2"]
    return total


# --- scoring -------------------------------------------------------------------------------------------------


def score(rows: list[dict], preds: dict) -> dict:
    """Tallies per group: ``[true boxes, found, exhaustive images, false boxes]``."""
    tally: dict[str, list[int]] = {}

    def add(k, n, tp, ex, fp):
        t = tally.setdefault(k, [0, 0, 0, 0])
        t[0] += n
        t[1] += tp
        t[2] += ex
        t[3] += fp

    for r in rows:
        p = preds[r["key"]]
        pairs = match(r["gt"], p[:, :4].astype(np.float64), 0.3)
        found = {g for g, _, _ in pairs}
        fp = len(p) - len(pairs) if r["exhaustive"] else 0
        groups = ["all", "extra" if r["source"] in EXTRA_SOURCES else "dev", r["source"]]
        for k in groups:
            add(k, len(r["gt"]), len(pairs), int(r["exhaustive"]), fp)
        for g, b in enumerate(r["gt"]):
            side = min(b[2] - b[0], b[3] - b[1])
            name = next(n for n, lo, hi in SIZES if lo <= side < hi)
            add(f"size {name}", 1, int(g in found), 0, 0)
            if b[2] - b[0] >= WIDE:
                add(f"width >={WIDE}", 1, int(g in found), 0, 0)
            if b[2] - b[0] >= CLOSE * r["width"]:
                add(f"close-up >={CLOSE:.0%}", 1, int(g in found), 0, 0)
    return tally


def cell(t: list[int] | None, with_fp: bool = True) -> str:
    if not t or not t[0]:
        return "-"
    s = f"{t[1] / t[0]:.3f}"
    return s + (f"/{t[3] / t[2]:.2f}" if with_fp and t[2] else "")


def table(title: str, rows: list[dict], results: dict[str, tuple[dict, float]]) -> dict:
    sources = sorted({r["source"] for r in rows}, key=lambda s: (s in EXTRA_SOURCES, s))
    cols = ["all", "dev", "extra"] + sources + [f"size {n}" for n, _, _ in SIZES] + [f"width >={WIDE}",
                                                                                 f"close-up >={CLOSE:.0%}"]
    n = {c: 0 for c in cols}
    for name, (tally, _) in results.items():
        for c in cols:
            n[c] = tally.get(c, [0])[0]
    log(f"\n{title}\nrecall (/false boxes per image where exhaustive); IoU >= 0.3; column = source or size (n plates)")
    log(f"{'variant':<22}" + "".join(f"{c[:15]:>16}" for c in cols) + f"{'ms/img':>9}")
    log(f"{'':<22}" + "".join(f"{'n=' + str(n[c]):>16}" for c in cols))
    out = {}
    for name, (tally, ms) in results.items():
        log(f"{name:<22}" + "".join(f"{cell(tally.get(c)):>16}" for c in cols) + f"{ms:>9.0f}")
        out[name] = {"tally": tally, "ms_per_image": ms}
    return out


# --- sections ------------------------------------------------------------------------------------------------


def check_against_detector(rows, data, dets, count=6) -> None:
    """The cached combination must give the detector's own boxes."""
    worst = 0.0
    for r in rows[:: max(1, len(rows) // count)][:count]:
        image = cv2.imread(r["path"])
        for variant in ("letterbox", "+shrunk", "default, no tiles", "default"):
            want = dets[variant](image)
            got = combine_cached(data[r["key"]], variant, dets[variant].thresh)
            if len(want) != len(got):
                raise SystemExit(f"cached {variant} gives {len(got)} boxes, the detector {len(want)} on {r['key']}")
            if len(want):
                worst = max(worst, float(1 - iou_matrix(want.xyxy, got[:, :4]).max(axis=1).min()))
    log(f"cached combination checked against the detectors on {count} images: boxes agree (worst 1-IoU {worst:.3f})")


def section_photos(args, dets, report, night: bool = False) -> None:
    rows = load_rows(args.eval)[:: args.limit or 1]
    if not rows:
        log("no plates/ or plates_extra/ under --eval")
        return
    tag = "night" if night else "photos"
    def darken(image, key):
        return night_copy(image, zlib.crc32(key.encode()))  # a stable seed per image

    transform = darken if night else None
    texts = ("text960",) if night else ("text960", "text1280")
    upscaled = args.upscaled and not night
    data = cached_sources([(r["key"], lambda r=r: cv2.imread(r["path"])) for r in rows],
                          args.out / f"sources_{tag}.{CODE_TAG}.json", dets, transform, texts, upscaled)
    if not night:
        check_against_detector(rows, data, dets)
    dark = night_sources([(r["key"], lambda r=r: cv2.imread(r["path"])) for r in rows],
                         args.out / f"nightview_{tag}.{CODE_TAG}.json", dets, transform)
    results = {}
    for v in [v for v in VARIANTS if v != "text1280" or "text1280" in texts] + (["+shrunk +x2"] if upscaled else []):
        preds = {k: combine_cached(src, v, 0.4) for k, src in data.items()}
        results[v] = (score(rows, preds), float(np.mean([variant_ms(data[r["key"]], v) for r in rows])))
        if v == "default":  # the shipped detector: the default inside NightView (anonlab.detect.night)
            ms = [variant_ms(data[r["key"]], v) + (variant_ms(dark[r["key"]]["sources"], v) if "sources" in
                                                    dark[r["key"]] else 0) for r in rows]
            for f in sorted({1.0, 0.75, 0.5, PLATE_DARK_FACTOR}, reverse=True):  # 0.4 x f must be a CURVE point
                preds = {r["key"]: combine_night(data[r["key"]], dark[r["key"]], v, 0.4, f) for r in rows}
                shipped = " *" if f == PLATE_DARK_FACTOR else ""  # * the shipped factor
                results[f"+ NightView x{f:g}{shipped}"] = (score(rows, preds), float(np.mean(ms)))
    n_dark = sum("sources" in dark[r["key"]] for r in rows)
    log(f"\n{n_dark} of {len(rows)} images are dark (mean luma < {DARK_MEAN:g}): NightView runs its second view there, "
        f"at x the threshold (* marks the shipped factor)")
    title = ("night-like copies (gamma 2.2 x0.5, sodium cast, noise 6, blur 1)" if night else "photos") + \
        f", threshold 0.4, {len(rows)} images ({load_avg()})"
    report[tag] = table(title, rows, results)
    if not night:
        curve = {}
        for t in CURVE:
            preds = {k: combine_cached(src, "default", t) for k, src in data.items()}
            curve[f"default @ {t}"] = (score(rows, preds), float("nan"))
        for t in CURVE:
            preds = {k: combine_cached(src, "letterbox", t) for k, src in data.items()}
            curve[f"letterbox @ {t}"] = (score(rows, preds), float("nan"))
        report["curve"] = table("threshold curves (default and the previous default)", rows, curve)


def section_negatives(args, dets, report) -> None:
    items = negative_items(args.eval)
    if not items:
        log("no plate-free material under --eval")
        return
    data = cached_sources([(k, get) for _, k, get in items], args.out / f"sources_negatives.{CODE_TAG}.json", dets,
                          texts=("text960",))
    groups = sorted({g for g, _, _ in items})
    log(f"\nplate-free material: plate boxes per image at threshold 0.4 (images with any) ({load_avg()})")
    log(f"{'variant':<22}" + "".join(f"{g + ' (' + str(sum(1 for x in items if x[0] == g)) + ')':>28}" for g in groups))
    report["negatives"] = {}
    for v in [v for v in VARIANTS if v != "text1280"]:
        cells, res = [], {}
        for g in groups:
            keys = [k for gg, k, _ in items if gg == g]
            counts = [len(combine_cached(data[k], v, 0.4)) for k in keys]
            res[g] = {"boxes_per_image": float(np.mean(counts)), "images_with_any": int(sum(c > 0 for c in counts))}
            cells.append(f"{np.mean(counts):.3f} ({sum(c > 0 for c in counts)})")
        report["negatives"][v] = res
        log(f"{v:<22}" + "".join(f"{c:>28}" for c in cells))


def frames_of(path: Path):
    import av

    with av.open(str(path)) as c:
        for n, f in enumerate(c.decode(video=0)):
            yield n, f.to_ndarray(format="bgr24")


class Replay:
    """A detector answering with recorded detections (set ``.n`` to the frame index before each call)."""

    def __init__(self, detections):
        self.detections, self.n = detections, 0

    def __call__(self, frame):
        return self.detections[self.n]


class ReplayQuick(Replay):
    """`Replay` with a quick pass recorded too: the Analyser's quick keyframes get those
    (`MultiScalePlates.detect_quick`)."""

    def __init__(self, detections, quick):
        super().__init__(detections)
        self.quick_detections = quick

    def quick(self, frame):
        return self.quick_detections[self.n]


def tracked(frames, dets: list[Regions], k: int, fps: float, quick: list[Regions] | None = None) -> Regions:
    from anonlab.settings import Settings
    from anonlab.track.analyse import Analyser

    replay = Replay(dets) if quick is None else ReplayQuick(dets, quick)
    settings = Settings(what=("plate",), detect_every=k)
    try:
        analyser = Analyser(replay, settings, fps=fps, orient=False)
    except TypeError:  # an Analyser without orientation
        analyser = Analyser(replay, settings, fps=fps)
    for n, frame in frames:
        replay.n = n
        analyser.feed(n, frame)
    return analyser.result(len(dets))


def section_clips(args, dets, report) -> None:
    from anonlab.evaluation.temporal import recall_metrics
    from anonlab.settings import Settings
    from anonlab.evaluation.synth import SynthClip, load_labelled_photo, write_clip

    rows = load_rows(args.eval)
    by_source: dict[str, list[int]] = {}
    index_of = {}
    for name in ("plates", "plates_extra"):
        labels = args.eval / name / "labels.jsonl"
        if labels.exists():
            for i, line in enumerate(labels.read_text().splitlines()):
                if line.strip():
                    index_of[f"{name}/{json.loads(line)['image']}"] = (labels, i)
    for r in rows:
        if len(r["gt"]):
            by_source.setdefault(r["source"], []).append(r["key"])
    rng = np.random.default_rng(11)
    variants = ("letterbox", "default")
    mask_scale = Settings().mask_scale

    def detections(v, key, path):
        cfile = cache / f"{key}.{v}.json"
        if cfile.exists():
            return [Regions.from_records(x) for x in json.loads(cfile.read_text())]
        found = [dets[v](f) for _, f in frames_of(path)]
        cfile.write_text(json.dumps([x.to_records(with_track=False, ndigits=2) for x in found]))
        return found

    log(f"\nmoving clips from labelled photos ({args.clip_photos} per source, {args.clip_frames} frames at 25 fps, "
        f"pan/zoom 1.0-1.35, motion blur, H.264 crf 23); per-frame recall, detector on every frame and tracked "
        f"(detect every 3rd frame); longest run of frames one plate stays missed ({load_avg()})")
    log(f"{'source':<18}{'plates':>7}{'obj-frames':>11}" + "".join(f"{v + ' every':>18}{v + ' k=3':>16}{'run':>5}"
                                                               for v in variants))
    report["clips"] = {}
    totals = {v: [0, 0, 0, 0] for v in variants}
    cache = args.out / f"clip_detections.{CODE_TAG}"
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        for source in sorted(by_source, key=lambda s: (s in EXTRA_SOURCES, s)):
            keys = sorted(rng.choice(by_source[source], size=min(args.clip_photos, len(by_source[source])),
                                     replace=False).tolist())
            res = {v: [0, 0, 0, 0] for v in variants}  # found every, found k3, object-frames, longest run
            n_plates = 0
            for j, key in enumerate(keys):
                labels, idx = index_of[key]
                photo, boxes, _ = load_labelled_photo(labels, idx)
                boxes = boxes[boxes.label == PLATE]
                n_plates += len(boxes)
                clip = SynthClip.plan(photo.shape[1], photo.shape[0], n_frames=args.clip_frames, fps=25.0, seed=j)
                path = Path(tmp) / f"{source}_{j}.mp4"
                truth = write_clip(photo, boxes, clip, path, crf=23, source=f"synth:{key}")
                ckey = f"{key.replace('/', '_')}.{args.clip_frames}.{j}"
                for v in variants:
                    found = detections(v, ckey, path)
                    # the default's quick keyframes run its two views only (detect_quick = the +shrunk variant)
                    quick = detections("+shrunk", ckey, path) if v == "default" else None
                    n = len(found)
                    every = Regions.merge([d.replace(frame=np.full(len(d), i)) for i, d in enumerate(found)])
                    m1 = recall_metrics(every, truth, n, 25.0)
                    m3 = recall_metrics(tracked(frames_of(path), found, 3, 25.0, quick), truth, n, 25.0,
                                        mask_scale=mask_scale)
                    res[v][0] += m1["found"]
                    res[v][1] += m3["found"]
                    res[v][2] += m3["object_frames"]
                    res[v][3] = max(res[v][3], m3.get("longest_miss", 0))
            line = f"{source:<18}{n_plates:>7}{res[variants[0]][2]:>11}"
            for v in variants:
                f1, f3, tot, run = res[v]
                line += f"{f1 / max(tot, 1):>18.3f}{f3 / max(tot, 1):>16.3f}{run:>5}"
                for i in range(3):
                    totals[v][i] += res[v][i]
                totals[v][3] = max(totals[v][3], run)
            log(line)
            report["clips"][source] = res
    line = f"{'all':<18}{'':>7}{totals[variants[0]][2]:>11}"
    for v in variants:
        f1, f3, tot, run = totals[v]
        line += f"{f1 / max(tot, 1):>18.3f}{f3 / max(tot, 1):>16.3f}{run:>5}"
    log(line)
    report["clips"]["all"] = totals

    log("\nplate-free clips through the analysis (plates only, detect every 3rd frame): plate regions, tracks")
    for clip in ("facenet_pytorch_video.mp4", "face_recognition_short_hamilton_clip.mp4"):
        path = args.eval / "videos" / clip
        if not path.exists():
            continue
        cells = []
        import av

        with av.open(str(path)) as c:
            fps = float(c.streams.video[0].average_rate or 25)
        for v in variants:
            found = detections(v, clip, path)
            quick = detections("+shrunk", clip, path) if v == "default" else None
            out = tracked(frames_of(path), found, 3, fps, quick)
            tracks = len(np.unique(out.track_id[out.track_id >= 0]))
            raw = sum(len(d) for d in found)
            cells.append(f"{v}: {len(out)} regions in {tracks} tracks ({raw} detections on {len(found)} frames)")
            report.setdefault("plate_free_clips", {}).setdefault(clip, {})[v] = {"regions": len(out), "tracks": tracks,
                                                                               "detections": raw}
        log(f"  {clip}: " + "; ".join(cells))


def every_nth_plate(rows: list[dict], step: int, min_width: float = 0):
    """``(row, image, true box)`` for every ``step``-th labelled plate at least ``min_width`` px wide, each image
    read once."""
    k = 0
    for r in rows:
        image = None
        for b in r["gt"]:
            if b[2] - b[0] < min_width:
                continue
            k += 1
            if k % step:
                continue
            image = cv2.imread(r["path"]) if image is None else image
            yield r, image, b


def is_two_line(source: str) -> bool:
    """Sources whose plates are all two-line or square (the Saudi plates are two-line, but Latin and Arabic side
    by side, and counted with the one-line ones)."""
    return source in EXTRA_SOURCES and source != "sa_kau_yolov5"


def section_scale(args, dets, report) -> None:
    rows = load_rows(args.eval)
    widths = (20, 28, 40, 56, 80, 112, 160, 224, 320, 448, 640, 900, 1200)
    rng = np.random.default_rng(0)
    yolo = dets["yolo"]
    best: dict[str, list[list[float]]] = {}
    for r, image, b in every_nth_plate(rows, args.scale_step):
        h, w = image.shape[:2]
        rec = []
        for target in widths:
            gain = target / max(b[2] - b[0], 1)
            ww, wh = 1280 / gain, 736 / gain
            cx = (b[0] + b[2]) / 2 + rng.uniform(-0.25, 0.25) * ww
            cy = (b[1] + b[3]) / 2 + rng.uniform(-0.25, 0.25) * wh
            x0, y0 = int(max(0, cx - ww / 2)), int(max(0, cy - wh / 2))
            x1, y1 = int(min(w, cx + ww / 2)), int(min(h, cy + wh / 2))
            xyxy, s = yolo.raw(image[y0:y1, x0:x1], 0.05, gain=min(gain, yolo.base_gain(x1 - x0, y1 - y0)))
            truth = (b - [x0, y0, x0, y0])[None].astype(np.float32)
            ok = iou_matrix(truth, xyxy)[0] >= 0.3 if len(s) else np.zeros(0, bool)
            rec.append(float(s[ok].max()) if ok.any() else 0.0)
        two = is_two_line(r["source"])
        for g in ("all", r["source"], "two-line" if two else "one-line (and Saudi)"):
            best.setdefault(g, []).append(rec)
    log(f"\nthe model's recall at threshold 0.4 against plate width in its input (every {args.scale_step}th plate; "
        f"a 1280x736 window around it) ({load_avg()})")
    log(f"{'':<22}{'n':>5}" + "".join(f"{w:>6}" for w in widths))
    report["scale"] = {}
    for g, recs in best.items():
        a = (np.array(recs) >= 0.4).mean(axis=0)
        report["scale"][g] = {"n": len(recs), "recall": dict(zip(widths, a.tolist()))}
        log(f"{g:<22}{len(recs):>5}" + "".join(f"{x:>6.2f}" for x in a))


def closeup_frame(image: np.ndarray, box: np.ndarray, width: int, rng, size=(1280, 720),
                  border: int = cv2.BORDER_REPLICATE) -> tuple[np.ndarray, np.ndarray]:
    """A ``size`` frame cut from ``image`` around a plate and scaled so the plate is ``width`` px wide (at a
    random place in the middle half; ``border`` fills what lies beyond the photo); the plate's box in it."""
    gain = width / (box[2] - box[0])
    fw, fh = size[0] / gain, size[1] / gain
    cx = (box[0] + box[2]) / 2 + rng.uniform(-0.25, 0.25) * max(0.0, fw - (box[2] - box[0]))
    cy = (box[1] + box[3]) / 2 + rng.uniform(-0.25, 0.25) * max(0.0, fh - (box[3] - box[1]))
    m = np.float32([[gain, 0, size[0] / 2 - gain * cx], [0, gain, size[1] / 2 - gain * cy]])
    frame = cv2.warpAffine(image, m, size, flags=cv2.INTER_CUBIC if gain > 1 else cv2.INTER_AREA, borderMode=border)
    x1, y1 = gain * box[0] + m[0, 2], gain * box[1] + m[1, 2]
    x2, y2 = gain * box[2] + m[0, 2], gain * box[3] + m[1, 2]
    return frame, np.clip(np.array([[x1, y1, x2, y2]], np.float32), 0, [size[0], size[1], size[0], size[1]])


def section_closeups(args, dets, report) -> None:
    rows = load_rows(args.eval)
    widths = (400, 640, 800, 1000, 1200)
    rng = np.random.default_rng(5)
    variants = ("letterbox", "+shrunk", "default")
    hits = {v: {w: [0, 0] for w in widths} for v in variants}
    per_source: dict[str, dict] = {}
    for r, image, b in every_nth_plate(rows, args.closeup_step, min_width=args.closeup_min):
        for w in widths:
            frame, truth = closeup_frame(image, b, w, rng)
            for v in variants:
                found = dets[v](frame)
                ok = len(found) and iou_matrix(truth, found.xyxy).max() >= 0.3
                hits[v][w][0] += int(ok)
                hits[v][w][1] += 1
                src = per_source.setdefault(r["source"], {vv: [0, 0] for vv in variants})
                src[v][0] += int(ok)
                src[v][1] += 1
    log(f"\nclose-ups: 1280x720 frames cut around labelled plates at least {args.closeup_min} px wide (every "
        f"{args.closeup_step}th), scaled so the plate is W px wide; recall (IoU >= 0.3) ({load_avg()})")
    log(f"{'variant':<14}" + "".join(f"{'W=' + str(w):>10}" for w in widths) + "   by source (all W)")
    report["closeups"] = {}
    for v in variants:
        cells = "".join(f"{hits[v][w][0] / max(hits[v][w][1], 1):>10.3f}" for w in widths)
        by_src = ", ".join(f"{s} {c[v][0] / max(c[v][1], 1):.2f} ({c[v][1]})" for s, c in sorted(per_source.items()))
        log(f"{v:<14}{cells}   {by_src}")
        report["closeups"][v] = {"by_width": {w: hits[v][w] for w in widths},
                                 "by_source": {s: c[v] for s, c in per_source.items()}}
    log(f"{'(n frames)':<14}" + "".join(f"{hits[variants[0]][w][1]:>10}" for w in widths))


def section_far(args, dets, report) -> None:
    """Far plates in large frames: 1920x1080 and 3840x2160 frames cut around labelled plates (every
    ``--far-step``th), scaled so the plate is W px wide, the photo mirrored beyond its edges; recall of the two
    model views with and without the tiles view (`anonlab.detect.plates.tile_windows`; the text blocks are left
    out of both: they are the same with or without tiles, and would triple the time)."""
    rows = load_rows(args.eval)
    sizes = {(1920, 1080): (32, 48, 64, 96), (3840, 2160): (48, 64, 96, 128)}
    rng = np.random.default_rng(7)
    variants = {"two views": MultiScalePlates(dets["yolo"], dets["dyn"], None, tiles=False),
                "two views + tiles": MultiScalePlates(dets["yolo"], dets["dyn"], None, tiles=True)}
    hits: dict = {}
    per_source: dict = {}
    ms: dict = {}
    for r, image, b in every_nth_plate(rows, args.far_step):
        two = "two-line" if is_two_line(r["source"]) else "one-line"
        for size, widths in sizes.items():
            for w in widths:
                frame, truth = closeup_frame(image, b, w, rng, size=size, border=cv2.BORDER_REFLECT_101)
                for v, det in variants.items():
                    t0 = time.perf_counter()
                    found = det(frame)
                    ms.setdefault((size, v), []).append((time.perf_counter() - t0) * 1000)
                    ok = int(bool(len(found)) and iou_matrix(truth, found.xyxy).max() >= 0.3)
                    for g in ("all", two):
                        cell_ = hits.setdefault((size, w, v, g), [0, 0])
                        cell_[0] += ok
                        cell_[1] += 1
                    src = per_source.setdefault((size, v, r["source"]), [0, 0])
                    src[0] += ok
                    src[1] += 1
    log(f"\nfar plates: frames cut around labelled plates (every {args.far_step}th), scaled so the plate is W px "
        f"wide; recall (IoU >= 0.3) ({load_avg()})")
    report["far"] = {}
    for size, widths in sizes.items():
        label = f"{size[0]}x{size[1]}"
        log(f"{label:<12}{'variant':<20}{'plates':<10}" + "".join(f"{'W=' + str(w):>8}" for w in widths)
            + f"{'ms/frame':>10}   by source (all W)")
        for v in variants:
            for g in ("all", "one-line", "two-line"):
                cells = [hits.get((size, w, v, g), [0, 0]) for w in widths]
                by_src = ", ".join(f"{s} {c[0] / max(c[1], 1):.2f} ({c[1]})" for (sz, vv, s), c in sorted(per_source.items())
                                   if sz == size and vv == v) if g == "all" else ""
                log(f"{'':<12}{v:<20}{g:<10}" + "".join(f"{c[0] / max(c[1], 1):>8.3f}" for c in cells)
                    + (f"{np.median(ms[(size, v)]):>10.0f}   {by_src}" if g == "all" else ""))
                report["far"][f"{label} {v} {g}"] = {"by_width": dict(zip(widths, cells))}
        log(f"{'':<12}{'(n frames)':<30}" + "".join(f"{hits.get((size, w, 'two views', 'all'), [0, 0])[1]:>8}"
                                                    for w in widths))


def section_speed(args, dets, report) -> None:
    rows = [r for r in load_rows(args.eval) if "romania" in r["path"]]
    frame720 = cv2.imread(rows[0]["path"]) if rows else np.random.default_rng(0).integers(0, 255, (720, 1280, 3), np.uint8)
    frame1080 = None
    clip = args.eval / "videos" / "facenet_pytorch_video.mp4"
    if clip.exists():
        frame1080 = next(f for n, f in frames_of(clip) if n == 30)
    if frame1080 is None or frame1080.shape[:2] != (1080, 1920):
        frame1080 = cv2.resize(frame720, (1920, 1080))
    variants = ("letterbox", "+shrunk", "default", "text1280")
    log(f"\nms per frame (min / median of {args.repeat} interleaved runs, {os.cpu_count()} CPUs)")
    report["speed"] = {}
    for label, frame in (("1280x720", frame720), ("1920x1080", frame1080)):
        for v in variants:
            dets[v](frame)
        times = {v: [] for v in variants}
        for _ in range(args.repeat):
            for v in variants:
                t0 = time.perf_counter()
                dets[v](frame)
                times[v].append((time.perf_counter() - t0) * 1000)
        log(f"  {label} ({load_avg()}): " + ", ".join(f"{v} {min(t):.0f} / {np.median(t):.0f}" for v, t in times.items()))
        report["speed"][label] = {v: {"min_ms": min(t), "median_ms": float(np.median(t))} for v, t in times.items()}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--eval", type=Path, default=Path(os.environ.get("ANONLAB_EVAL", REPO.parent / "shared" / "eval")))
    ap.add_argument("--out", type=Path, default=REPO / "out" / "eval_plates")
    ap.add_argument("--sections", default="photos,night,negatives,closeups,far,clips,speed")
    ap.add_argument("--clip-photos", type=int, default=3, help="photos per source made into clips")
    ap.add_argument("--clip-frames", type=int, default=32)
    ap.add_argument("--scale-step", type=int, default=3, help="scale curve: every Nth plate")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--closeup-min", type=int, default=120, help="close-ups: plates at least this wide, px")
    ap.add_argument("--closeup-step", type=int, default=4, help="close-ups: every Nth such plate")
    ap.add_argument("--far-step", type=int, default=8, help="far plates: every Nth labelled plate")
    ap.add_argument("--upscaled", action="store_true",
                    help="photos: also the model at twice the letterbox scale (the alternative for small plates; slow)")
    ap.add_argument("--limit", type=int, default=0, help="only every Nth photo (a quick check; caches are shared)")
    args = ap.parse_args(argv)
    if not (args.eval / "plates").exists():
        log(f"no evaluation sets under {args.eval} (set ANONLAB_EVAL or --eval)")
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    dets = detectors()
    report: dict = {"eval": str(args.eval), "cpu_count": os.cpu_count()}
    sections = {"photos": section_photos, "night": lambda a, d, r: section_photos(a, d, r, night=True),
                "negatives": section_negatives, "clips": section_clips, "scale": section_scale,
                "closeups": section_closeups, "far": section_far, "speed": section_speed}
    for name in [s for s in args.sections.split(",") if s]:
        if name not in sections:
            log(f"unknown section {name!r}; choose from {', '.join(sections)}")
            return 2
        sections[name](args, dets, report)
    (args.out / "results.json").write_text(json.dumps(report, indent=1, default=str))
    log(f"\nfigures in {args.out / 'results.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
