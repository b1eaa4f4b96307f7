"""Detection benchmark: run the default detectors on ../shared/eval and print the figures of issue 3.

    .venv/bin/python benchmarks/eval_detection.py                 # default detectors, both sets
    .venv/bin/python benchmarks/eval_detection.py --curves        # + precision/recall vs threshold, by size
    .venv/bin/python benchmarks/eval_detection.py --variants      # + recall/speed trade-off of each choice

For each set (faces, plates, plates_extra): predictions of the default detector (``build_detector(Settings(what=...))``),
precision / recall / F1 / mean IoU / FP per image, recall by size and by source, ms per image; then the
time of one 1280×720 frame (min and median of ``--repeat`` runs; the machine's load average is printed
beside it, since other jobs share the cores). Predictions and a JSON of all figures go to ``--out``.

Every set is also reported on two halves (even- and odd-indexed images of its labels file): parameters
chosen on one half should hold on the other (the face fusion defaults were chosen on the even half).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from anonlab.detect import Detector, UnionDetector, build_detector, face_detectors  # noqa: E402
from anonlab.detect.plates import MultiScalePlates, PlateDetector  # noqa: E402
from anonlab.detect.tiling import AutoScale  # noqa: E402
from anonlab.evaluation.images import (  # noqa: E402
    RECALL_ONLY_SOURCES,
    SIZE_BUCKETS,
    detect_labelled_set,
    evaluate,
    evaluate_rows,
    format_summary,
    load_jsonl,
    read_image,
    threshold_curve,
)
from anonlab.settings import Settings  # noqa: E402

SETS = {"faces": "face", "plates": "plate", "plates_extra": "plate"}


def labels_with_meta(labels: Path, out: Path) -> Path:
    """``labels`` with each line's ``exhaustive`` flag taken from ``image_meta.jsonl`` beside it, where there is one
    (plates_extra keeps them there), written under ``out`` with absolute image paths; else ``labels`` itself."""
    meta_file = labels.parent / "image_meta.jsonl"
    if not meta_file.exists():
        return labels
    meta = {m["image"]: m for m in map(json.loads, filter(str.strip, meta_file.read_text().splitlines()))}
    base = labels.parent.resolve()
    lines = []
    for line in filter(str.strip, labels.read_text().splitlines()):
        row = json.loads(line)
        if "exhaustive" in meta.get(row["image"], {}):
            row["exhaustive"] = bool(meta[row["image"]]["exhaustive"])
        lines.append(json.dumps({**row, "image": str(base / row["image"])}) + "\n")
    merged = out / f"labels_{labels.parent.name}_with_meta.jsonl"
    merged.write_text("".join(lines))
    return merged


def default_eval_dir() -> Path:
    return Path(os.environ.get("ANONLAB_EVAL", REPO.parent / "shared" / "eval"))


def frame_720p(eval_dir: Path) -> np.ndarray:
    """A real 1280×720 frame from the plates set (dashcam), for timing."""
    labels = eval_dir / "plates" / "labels.jsonl"
    if labels.exists():
        for row in load_jsonl(labels):
            if (row["width"], row["height"]) == (1280, 720):
                return read_image(labels.parent / row["image"])
    rng = np.random.default_rng(0)
    return rng.integers(0, 255, (720, 1280, 3), dtype=np.uint8)


def time_frame(detector: Detector, frame: np.ndarray, repeat: int) -> dict:
    detector(frame)  # warm-up: session creation, first-run allocations
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        detector(frame)
        times.append((time.perf_counter() - t0) * 1000)
    return {"min_ms": min(times), "median_ms": float(np.median(times)), "load": os.getloadavg()[0]}


def run(detector: Detector, labels: Path, pred: Path, settings: Settings, progress: bool) -> dict:
    info = detect_labelled_set(labels, pred, settings, progress=progress, detector=detector)
    result = evaluate(labels, pred)
    result["detector"] = info["detector"]
    return result


def headline(label: str, result: dict) -> str:
    r = result["by_label"][label]
    o, s = r["overall"], r["by_size"]

    def f(v, d=3):
        return "-" if v is None else f"{v:.{d}f}"

    return (f"R={f(o['recall'])} P={f(o['precision'])} FP/img={f(o['fp_per_image'], 2)} "
            + " ".join(f"R{k}={f(v['recall'])}" for k, v in s.items())
            + f" ms/img={f(result['ms_per_image'], 1)}")


def halves(labels: Path, pred: Path, thresh: float | None = None) -> dict:
    """Figures on the even- and odd-indexed images of the labels file (a held-out check of tuned defaults)."""
    rows, preds = load_jsonl(labels, "labels"), load_jsonl(pred, "pred")
    return {name: evaluate_rows(rows[start::2], preds, thresh=thresh, recall_only=RECALL_ONLY_SOURCES)
            for name, start in (("even", 0), ("odd", 1))}


def size_curves(labels: Path, pred: Path, label: str, thresholds) -> list[dict]:
    """Per size bucket: recall (by true size) and precision (by predicted size) against one flat threshold.

    The curves from which a size-dependent threshold is read: where precision stays high at a low
    threshold (small boxes), a lower threshold buys recall cheaply.
    """
    rows, preds = load_jsonl(labels, "labels"), load_jsonl(pred, "pred")
    out = []
    for t in thresholds:
        res = evaluate_rows(rows, preds, thresh=float(t), recall_only=RECALL_ONLY_SOURCES)["by_label"][label]["by_size"]
        out.append({"thresh": float(t), **{f"{k}_{m}": res[k][m] for k in res for m in ("recall", "precision", "fp")}})
    return out


def variants(label: str) -> list[tuple[str, Detector]]:
    """The alternatives whose recall/speed trade-off the report shows."""
    s = Settings(what=(label,))
    if label == "plate":
        yolo, dyn = PlateDetector(), PlateDetector(name="plate_yolov8n_dynamic")
        return [("plates RGB input, letterbox only", PlateDetector(grayscale=False)),
                ("plates grey, letterbox only (previous)", yolo),
                ("plates grey, + shrunk view", MultiScalePlates(yolo, dyn, None)),
                ("plates, + zoom on text blocks (default)", build_detector(s))]
    cf_only = s.replace(second_face_detector=False)
    yunet = face_detectors(s)[1]
    return [
        ("CenterFace, no upscale", face_detectors(cf_only, max_upscale=1.0)[0]),
        ("CenterFace, upscale <=1.5x", face_detectors(cf_only, max_upscale=1.5)[0]),
        ("CenterFace, upscale <=2x", face_detectors(cf_only)[0]),
        ("YuNet alone, upscale <=2x", yunet),
        ("CenterFace + YuNet union (previous default)", UnionDetector(face_detectors(s), name="faces")),
        ("CenterFace + YuNet fused (default)", build_detector(s)),
    ]


def time_only(frame: np.ndarray, sets: list[str], repeat: int) -> int:
    """ms per 720p frame of each alternative, interleaved run by run so that load changes hit all alike."""
    dets: list[tuple[str, Detector]] = []
    for name in sets:
        dets += variants(SETS[name])
        if name == "faces":
            cf = face_detectors(Settings(what=("face",), second_face_detector=False), pixel_budget=4 * 1280 * 720)[0]
            dets.append(("CenterFace, 720p upscaled 1.5x", AutoScale(cf.base, pixel_budget=2.25 * 1280 * 720)))
            dets.append(("CenterFace, 720p upscaled 2x", cf))
    for _, det in dets:
        det(frame)
    times: dict[str, list[float]] = {n: [] for n, _ in dets}
    for _ in range(repeat):
        for n, det in dets:
            t0 = time.perf_counter()
            det(frame)
            times[n].append((time.perf_counter() - t0) * 1000)
    print(f"ms per 1280x720 frame, {repeat} runs each, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}")
    for n, ts in times.items():
        print(f"  {n:<36} min {min(ts):6.0f}   median {np.median(ts):6.0f}")
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--eval", type=Path, default=default_eval_dir(), help="folder with faces/ and plates/")
    ap.add_argument("--out", type=Path, default=REPO / "out" / "eval_detection")
    ap.add_argument("--sets", default="faces,plates,plates_extra")
    ap.add_argument("--repeat", type=int, default=5, help="timed runs of the 720p frame")
    ap.add_argument("--curves", action="store_true", help="also print precision/recall vs threshold")
    ap.add_argument("--int8", action="store_true", help="the int8 copies of the models (anonlab --int8)")
    ap.add_argument("--variants", action="store_true", help="also measure the alternatives (slow)")
    ap.add_argument("--time-only", action="store_true",
                    help="only time the default and alternative detectors on the 720p frame (no evaluation)")
    ap.add_argument("--limit", type=int, default=0, help="only the first N images of each set (a quick check)")
    ap.add_argument("--no-progress", action="store_true")
    args = ap.parse_args(argv)

    if not (args.eval / "faces").exists() and not (args.eval / "plates").exists():
        print(f"no evaluation sets under {args.eval} (set ANONLAB_EVAL or --eval)", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    frame = frame_720p(args.eval)
    if args.time_only:
        return time_only(frame, args.sets.split(","), args.repeat)
    report: dict = {"eval": str(args.eval), "cpu_count": os.cpu_count(), "sets": {}}
    summary: list[str] = []
    for name in [s for s in args.sets.split(",") if s]:
        label = SETS[name]
        labels = args.eval / name / "labels.jsonl"
        if not labels.exists():
            print(f"\n=== {name}: no {labels}, skipped")
            continue
        labels = labels_with_meta(labels, args.out)
        if args.limit:
            # a subset keeps image paths relative to the set folder, so it is written beside the labels' images
            lines = [ln for ln in labels.read_text().splitlines() if ln.strip()][: args.limit]
            subset = args.out / f"labels_{name}_first{args.limit}.jsonl"
            base = (args.eval / name).resolve()
            subset.write_text("".join(json.dumps({**json.loads(ln), "image": str(base / json.loads(ln)["image"])}) + "\n"
                                      for ln in lines))
            labels = subset
        settings = Settings(what=(label,), int8=args.int8)
        detector = build_detector(settings)
        print(f"\n=== {name}: {detector!r}", flush=True)
        result = run(detector, labels, args.out / f"pred_{name}.jsonl", settings, not args.no_progress)
        timing = time_frame(detector, frame, args.repeat)
        result["ms_per_720p_frame"] = timing
        print(format_summary(result))
        line = (f"{name:<7} {headline(label, result)}  ms/720p min {timing['min_ms']:.0f} "
                f"median {timing['median_ms']:.0f} (load {timing['load']:.1f})")
        summary.append(line)
        entry = {"default": result}
        split = halves(labels, args.out / f"pred_{name}.jsonl")
        entry["halves"] = split
        for half, res in split.items():
            summary.append(f"  {half} half: {headline(label, dict(res, ms_per_image=result['ms_per_image']))}")

        if args.curves:
            low = detector.with_threshold(0.05)
            pred_low = args.out / f"pred_{name}_low.jsonl"
            detect_labelled_set(labels, pred_low, settings, progress=not args.no_progress, detector=low)
            curve = threshold_curve(labels, pred_low, [0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.6, 0.7])
            entry["curve"] = curve
            print(f"\n{name}: one flat threshold on the output score (detector at 0.05, filtered; faces: fused score)")
            print(f"  {'thresh':>6} {'recall':>7} {'precis.':>8} {'FP/img':>7} {'R<16':>6} {'R16-32':>7}")
            for row in curve[label]:
                def f(v, d=3):
                    return "-" if v is None else f"{v:.{d}f}"
                print(f"  {row['thresh']:>6.2f} {f(row['recall']):>7} {f(row['precision']):>8} "
                      f"{f(row['fp_per_image'], 2):>7} {f(row['recall_<16']):>6} {f(row['recall_16-32']):>7}")
            sc = size_curves(labels, pred_low, label, [0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.5])
            entry["size_curves"] = sc
            print(f"\n{name}: by size (recall by true size / precision by predicted size / false boxes), one threshold")
            print(f"  {'thresh':>6} " + " ".join(f"{k + ' px':>21}" for k, _, _ in SIZE_BUCKETS))
            for row in sc:
                print(f"  {row['thresh']:>6.2f} " + " ".join(
                    f"{f(row[k + '_recall']):>6}/{f(row[k + '_precision']):>6}/{str(row[k + '_fp']):>6}" + "  "
                    for k, _, _ in SIZE_BUCKETS))

        if args.variants:
            entry["variants"] = {}
            upscaled = face_detectors(settings.replace(second_face_detector=False), pixel_budget=4 * 1280 * 720)[0]
            rows = []
            for vname, det in variants(label):
                res = run(det, labels, args.out / f"pred_{name}_variant.jsonl", settings, False)
                t = time_frame(det, frame, args.repeat)
                entry["variants"][vname] = {"result": res, "ms_per_720p_frame": t}
                rows.append(f"  {vname:<36} {headline(label, res)}  ms/720p {t['min_ms']:.0f}")
                print(rows[-1], flush=True)
            if label == "face":
                t = time_frame(upscaled, frame, args.repeat)
                rows.append(f"  {'CenterFace, 720p upscaled 2x':<36} (timing only)  ms/720p {t['min_ms']:.0f}")
                print(rows[-1], flush=True)
            summary.extend(rows)
        report["sets"][name] = entry

    (args.out / "results.json").write_text(json.dumps(report, indent=1, default=str))
    print("\n=== summary (IoU >= 0.3; precision and FP/img on exhaustively labelled sources only)")
    print("\n".join(summary))
    print(f"\n{os.cpu_count()} CPUs; figures and predictions in {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
