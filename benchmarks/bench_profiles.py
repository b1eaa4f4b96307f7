"""The speed profiles measured side by side with deface: ``bench_throughput.py --profiles`` (issue 18).

Kept apart from ``bench_throughput.py`` (which times configurations one flag at a time, and Dask) because this
run also measures recall and writes the figures the tool shows: ``anonlab/speed_profiles.json`` (read by
``anonymize --help`` and the workbench's speed choice, `anonlab.settings.speed_figures`) and the README's
profile table between its markers. Nothing there is typed by hand.

For each clip (the facenet clip at 720p and 1080p by default) deface and every profile run end to end in their
own process (interpreter start and model loading included, as ``anonlab anonymize`` runs), ``--rounds`` times
in alternating order, the mean kept; peak memory is the process tree's summed RSS. Per-frame recall is each
profile's on the semi-synthetic clips of ``eval_tracking.py`` (`eval_tracking.synth_recall`: labelled eval
photos made into moving clips, analysed with the profile's settings as ``anonymize`` analyses), and its
detector's per-image recall on the labelled eval photos themselves (``anonlab eval``: 2065 faces, 452 plates;
keyframe spacing plays no part there, int8, the upscale and the second face model do); deface finds faces
only and is not scored.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FIGURES = ROOT / "anonlab" / "speed_profiles.json"
README = ROOT / "README.md"
START = "<!-- speed profiles: written by benchmarks/bench_throughput.py --profiles, do not edit by hand -->"
END = "<!-- end of speed profiles -->"


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def run_profiles(args, *, make_clip, measure, deface: str | None) -> int:
    sys.path.insert(0, str(ROOT))
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from anonlab.settings import SPEED_PROFILES, speed_settings

    names = list(SPEED_PROFILES) if args.profiles == "all" else args.profiles.split(",")
    clips_spec = "facenet:720,facenet:1080" if args.clips == "facenet:720,facenet:1080,street:720" else args.clips
    work = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="anonlab-profiles-"))
    work.mkdir(parents=True, exist_ok=True)
    load_before = load()
    print(f"machine: {os.cpu_count()} cores, {platform.processor() or platform.machine()}, python "
          f"{platform.python_version()}; load average before: {load_before}")
    print(f"deface: {deface or 'not installed (skipped)'}; anonlab --what {args.what}; {args.rounds} round(s); "
          f"workdir {work}")
    settings = {n: speed_settings(n, what=tuple(args.what.split(","))) for n in names}
    figures = {n: {"settings": dict(SPEED_PROFILES[n]), "fps": {}, "x_realtime": {}, "vs_deface": {},
                   "peak_mib": {}} for n in names}
    deface_rows: dict = {}
    rows = []
    for spec in clips_spec.split(","):
        name, height = spec.split(":")
        from bench_throughput import SOURCES

        clip = make_clip(SOURCES[name], work / f"{name}_{height}p.mp4", int(height), args.frames)
        size = f"{height}p"
        runs = [("deface", [deface, str(clip["path"]), "-o", str(work / f"deface_{clip['path'].name}")])] if deface else []
        for n in names:
            out = work / f"{n}_{clip['path'].stem}"
            out.mkdir(exist_ok=True)
            runs.append((n, [sys.executable, str(Path(__file__).resolve().with_name("bench_throughput.py")), "--clip",
                             str(clip["path"]), "--settings", json.dumps(settings[n].to_dict()), "--_run", "local",
                             "--out", str(out)]))
        results: dict = {label: [] for label, _ in runs}
        for r in range(args.rounds):
            for label, cmd in (runs if r % 2 == 0 else runs[::-1]):
                m = measure(cmd, args.timeout)
                if m["rc"]:
                    print(f"{size} {label}: FAILED rc={m['rc']} {' '.join(m['stderr'])}", flush=True)
                    continue
                results[label].append(m)
        deface_fps = None
        for label, _ in runs:
            ms = results[label]
            if not ms:
                continue
            wall = sum(m["wall"] for m in ms) / len(ms)
            fps = clip["frames"] / wall
            peak = max(m["rss_mib"] for m in ms)
            if label == "deface":
                deface_fps = fps
                deface_rows[size] = {"fps": round(fps, 2), "x_realtime": round(fps / clip["fps"], 3),
                                     "peak_mib": round(peak)}
            row = {"clip": f"{name} {size}", "frames": clip["frames"], "config": label, "wall_s": round(wall, 2),
                   "fps": round(fps, 2), "x_realtime": round(fps / clip["fps"], 3), "peak_mib": round(peak),
                   "vs_deface": round(fps / deface_fps, 2) if deface_fps and label != "deface" else None,
                   "load": load()}
            rows.append(row)
            if label in figures:
                f = figures[label]
                f["fps"][size], f["x_realtime"][size], f["peak_mib"][size] = row["fps"], row["x_realtime"], row["peak_mib"]
                if row["vs_deface"] is not None:
                    f["vs_deface"][size] = row["vs_deface"]
    load_timed = load()  # the recall runs after this are not timed
    recall = measure_recall(args, names, settings, work)
    photos = photo_recall(names, settings, work)
    for n in names:
        figures[n]["recall"] = {k: v["recall"] for k, v in recall[n].items()}
        figures[n]["photo_recall"] = photos[n]
    load_after = load()
    print_table(rows, recall, photos, load_before, load_timed, load_after)
    measured = (f"{time.strftime('%Y-%m-%d')}, {os.cpu_count()} CPU cores, no GPU, load average {load_before} before "
                f"the timed runs and {load_timed} after them, {rows[0]['frames'] if rows else 0} frames a clip, "
                f"{args.rounds} round(s)")
    data = {"measured": measured, "profiles": figures, "deface": deface_rows, "rows": rows,
            "recall_detail": recall, "photo_recall": photos, "command": "benchmarks/bench_throughput.py " + " ".join(_public_args(sys.argv[1:]))}
    if args.json:
        Path(args.json).write_text(json.dumps(data, indent=1))
    if not args.no_write:
        old = json.loads(FIGURES.read_text()) if FIGURES.exists() else {}
        if old.get("profiles"):  # a run of some profiles keeps the others' last figures
            data["profiles"] = {**{k: v for k, v in old["profiles"].items() if k in SPEED_PROFILES}, **figures}
        FIGURES.write_text(json.dumps(data, indent=1) + "\n")
        write_readme(data)
        print(f"figures written to {FIGURES.relative_to(ROOT)} and the README's table")
    return 0


def _public_args(argv: list[str]) -> list[str]:
    """The command's arguments without the ones naming this machine's folders (``--workdir``, ``--json``)."""
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
        elif a in ("--workdir", "--json"):
            skip = True
        elif not a.startswith(("--workdir=", "--json=")):
            out.append(a)
    return out


def measure_recall(args, names, settings, work: Path) -> dict:
    """Per-frame recall of each profile on the semi-synthetic clips (`eval_tracking.synth_recall`)."""
    import eval_tracking as et

    eval_dir = ROOT.parent / "shared" / "eval"
    faces, plates = (int(x) for x in args.recall_photos.split(","))
    clips = et.synth_clips(eval_dir, work, counts={"face": faces, "plate": plates})
    out = {}
    for n in names:
        t = time.perf_counter()
        out[n] = et.synth_recall(settings[n], clips)
        r = out[n]
        print(f"recall {n}: faces {r['face']['recall']:.4f} plates {r['plate']['recall']:.4f} all "
              f"{r['all']['recall']:.4f} ({r['all']['found']}/{r['all']['object_frames']} object-frames, "
              f"{time.perf_counter() - t:.0f} s; load {load()})", flush=True)
    return out


def photo_recall(names, settings, work: Path) -> dict:
    """Per-image recall of each profile's detector on the labelled eval photos (faces, plates), as ``anonlab eval``
    scores it (IoU >= 0.3); profiles whose detectors are the same share one run."""
    from anonlab.evaluation.images import detect_labelled_set, evaluate

    eval_dir = ROOT.parent / "shared" / "eval"
    out: dict = {}
    done: dict = {}
    for n in names:
        s = settings[n]
        out[n] = {}
        for label, rel in (("face", "faces/labels.jsonl"), ("plate", "plates/labels.jsonl")):
            key = (label, s.int8) + ((s.max_upscale, s.second_face_detector) if label == "face" else ())
            if key not in done:
                t = time.perf_counter()
                pred = work / f"photos_{'_'.join(map(str, key))}.jsonl"
                detect_labelled_set(eval_dir / rel, pred, s.replace(what=(label,)), progress=False)
                r = evaluate(eval_dir / rel, pred)["by_label"][label]
                small = r["by_size"].get("<16")
                done[key] = {"recall": round(r["overall"]["recall"], 4),
                             "under_16px": round(small["recall"], 4) if small and small.get("recall") is not None else None}
                print(f"photos {label} {key[1:]}: recall {done[key]['recall']:.4f} ({time.perf_counter() - t:.0f} s; "
                      f"load {load()})", flush=True)
            out[n][label] = done[key]["recall"]
            if label == "face":
                out[n]["face_under_16px"] = done[key]["under_16px"]
    return out


def print_table(rows: list[dict], recall: dict, photos: dict, before: str, timed: str, after: str) -> None:
    head = (f"{'clip':<14} {'frames':>6} {'configuration':<10} {'wall s':>7} {'fps':>6} {'x real':>7} {'x deface':>8} "
            f"{'peak MiB':>8} {'clips: all / faces / plates':>28} {'photos: faces / plates':>23}")
    print()
    print(head)
    print("-" * len(head))
    for r in rows:
        rec = recall.get(r["config"])
        text = (f"{rec['all']['recall']:.3f} / {rec['face']['recall']:.3f} / {rec['plate']['recall']:.3f}" if rec
                else "- (faces only)")
        ph = photos.get(r["config"])
        ptext = f"{ph['face']:.3f} / {ph['plate']:.3f}" if ph else "-"
        ratio = f"{r['vs_deface']:.2f}x" if r["vs_deface"] else ""
        print(f"{r['clip']:<14} {r['frames']:>6} {r['config']:<10} {r['wall_s']:>7.1f} {r['fps']:>6.2f} "
              f"{r['x_realtime']:>7.3f} {ratio:>8} {r['peak_mib']:>8} {text:>28} {ptext:>23}")
    print(f"load average before: {before}; after the timed runs: {timed}; at the end: {after}")


def readme_table(data: dict) -> str:
    from anonlab.settings import SPEED_PROFILES, speed_summary

    lines = [START, "", "| `--speed` | sets | per-frame recall on clips: all / faces / plates | recall on the eval photos: "
             "faces / plates | 720p25 | 1080p25 | peak memory |", "|---|---|---|---|---|---|---|"]
    for name, f in data["profiles"].items():
        sets = speed_summary(name, {}).split(": ")[1]
        rec = f.get("recall") or {}
        recall = f"{rec.get('all', 0):.3f} / {rec.get('face', 0):.3f} / {rec.get('plate', 0):.3f}" if rec else "-"
        ph = f.get("photo_recall") or {}
        photos = f"{ph['face']:.3f} / {ph['plate']:.3f}" if ph else "-"
        cells = []
        for size in ("720p", "1080p"):
            if size in f["fps"]:
                ratio = f", {f['vs_deface'][size]:.2f}× deface" if size in f.get("vs_deface", {}) else ""
                cells.append(f"{f['fps'][size]:.1f} fps ({f['x_realtime'][size]:.2f}× real time{ratio})")
            else:
                cells.append("-")
        peak = " / ".join(f"{f['peak_mib'][s]} MiB" for s in ("720p", "1080p") if s in f["peak_mib"])
        default = " (default)" if name == "thorough" else ""
        lines.append(f"| `{name}`{default} | {sets} | {recall} | {photos} | {cells[0]} | {cells[1]} | {peak} |")
    dfc = data.get("deface") or {}
    if dfc:
        lines.append("| deface (faces only, its defaults) | | | | "
                     + " | ".join(f"{dfc[s]['fps']:.1f} fps ({dfc[s]['x_realtime']:.2f}× real time)" if s in dfc
                                  else "-" for s in ("720p", "1080p"))
                     + " | " + " / ".join(f"{dfc[s]['peak_mib']} MiB" for s in ("720p", "1080p") if s in dfc) + " |")
    lines += ["", f"Measured {data['measured']}: `python {data['command']}`. Recall: semi-synthetic clips made from "
              "the labelled eval photos (`benchmarks/eval_tracking.py`); photos: the labelled eval photos themselves, per "
              "image (`anonlab eval`); fps: the facenet clip end to end, faces and plates, process start and model "
              "loading included.", "", END]
    assert set(data["profiles"]) <= set(SPEED_PROFILES)
    return "\n".join(lines)


def write_readme(data: dict) -> None:
    text = README.read_text()
    if START not in text or END not in text:
        print("README has no speed-profile markers; table not written")
        return
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    README.write_text(head + readme_table(data) + tail)
