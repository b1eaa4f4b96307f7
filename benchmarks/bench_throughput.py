#!/usr/bin/env python
"""Throughput benchmark: anonlab (faces + plates) against deface (faces only), end to end, on the same clips.

Prints, per clip and configuration: frames, wall seconds, fps, × real time, peak memory (sum of RSS over the
process tree, sampled every 0.1 s) and the ratio to deface. Not a test: a measurement to run by hand.

Clips are made from ``../shared/eval/videos/facenet_pytorch_video.mp4`` (1080p, kept at 1080p and scaled to
720p) and ``sample_media/street.mp4`` (faces and a plate, scaled to 720p), re-encoded with a keyframe every
second so long clips can be cut into chunks. ``--frames`` longer than the source plays it forward and back.

Configurations:
    deface              ``deface CLIP -o OUT`` (its defaults), where installed. Never install deface into
                        anonlab's venv (it pulls opencv-python): ``python3 -m venv /tmp/deface-venv &&
                        /tmp/deface-venv/bin/pip install deface``; found on PATH or there.
    anonlab 1 local     ``anonlab.pipeline.anonymize`` in one process (what ``anonlab anonymize`` runs).
    anonlab N dask      ``run_batch(executor="dask")`` on a LocalCluster of N workers (one thread each); with
                        N > 1 the clip is cut into N chunks analysed in parallel, then rendered in one pass.
                        Cluster start-up is timed apart ("startup") and left out of "proc fps".

"fps" is end to end (interpreter start, model loading and, for Dask, cluster start-up included), like the
deface figure; "proc fps" is the processing alone.

``--profiles`` measures the named speed profiles instead (`anonlab.settings.SPEED_PROFILES`, issue 18): deface and
every profile side by side at 720p and 1080p (fps, × real time, × deface, peak memory) in one run, each
profile's per-frame recall on the semi-synthetic clips of ``benchmarks/eval_tracking.py`` (faces and plates of
the labelled eval photos, analysed as ``anonlab anonymize`` does: `eval_tracking.synth_recall`), and writes the
figures to ``anonlab/speed_profiles.json`` (what ``anonymize --help`` and the workbench show) and the README's
profile table. ``--rounds N`` runs every configuration N times, alternating the order, and keeps the mean.

Usage:
    .venv/bin/python benchmarks/bench_throughput.py                                   # the full table
    .venv/bin/python benchmarks/bench_throughput.py --clips facenet:720 --frames 60 --workers 1,2
    .venv/bin/python benchmarks/bench_throughput.py --detect-every 1,5 --no-deface
    .venv/bin/python benchmarks/bench_throughput.py --profiles --frames 100 --rounds 2  # the speed profiles
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOURCES = {
    "facenet": ROOT.parent / "shared" / "eval" / "videos" / "facenet_pytorch_video.mp4",
    "street": ROOT / "sample_media" / "street.mp4",
}
DEFAULT_CLIPS = "facenet:720,facenet:1080,street:720"


# --- clips ----------------------------------------------------------------------------------------------


def make_clip(src: Path, dst: Path, height: int, frames: int | None) -> dict:
    """Re-encode ``src`` scaled to ``height`` (even width, same aspect), a keyframe every second."""
    import av
    import cv2

    with av.open(str(src)) as inp:
        stream = inp.streams.video[0]
        fps = stream.average_rate or 25
        images = [f.to_ndarray(format="bgr24") for f in inp.decode(stream)]
    if frames and frames > len(images):  # forward and back: no jump that a scene-cut detector would see
        loop = images + images[-2:0:-1]
        images = [loop[i % len(loop)] for i in range(frames)]
    elif frames:
        images = images[:frames]
    h0, w0 = images[0].shape[:2]
    width = int(round(w0 * height / h0 / 2)) * 2
    out = av.open(str(dst), "w")
    vs = out.add_stream("libx264", rate=fps)
    vs.width, vs.height, vs.pix_fmt = width, height, "yuv420p"
    vs.options = {"crf": "18", "preset": "veryfast", "g": str(int(round(float(fps))))}
    for img in images:
        if img.shape[:2] != (height, width):
            interp = cv2.INTER_AREA if height < h0 else cv2.INTER_CUBIC
            img = cv2.resize(img, (width, height), interpolation=interp)
        for packet in vs.encode(av.VideoFrame.from_ndarray(img, format="bgr24")):
            out.mux(packet)
    for packet in vs.encode():
        out.mux(packet)
    out.close()
    return {"path": dst, "frames": len(images), "fps": float(fps), "width": width, "height": height}


# --- measuring a subprocess ---------------------------------------------------------------------------------


def measure(cmd: list[str], timeout: float, env: dict | None = None) -> dict:
    """Run ``cmd``; wall seconds, peak summed RSS of its process tree (MiB), exit code and its last stdout line."""
    import psutil

    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    peak = 0
    try:
        root = psutil.Process(proc.pid)
        while proc.poll() is None:
            if time.perf_counter() - t0 > timeout:
                proc.kill()
                break
            total = 0
            try:
                for p in [root, *root.children(recursive=True)]:
                    try:
                        total += p.memory_info().rss
                    except psutil.Error:
                        pass
            except psutil.Error:
                pass
            peak = max(peak, total)
            time.sleep(0.1)
    finally:
        out, err = proc.communicate()
    wall = time.perf_counter() - t0
    lines = [ln for ln in out.strip().splitlines() if ln.startswith("{")]
    return {"wall": wall, "rss_mib": peak / 2**20, "rc": proc.returncode, "result": json.loads(lines[-1]) if lines
            else None, "stderr": err.strip().splitlines()[-1:] if proc.returncode else []}


def find_deface(explicit: str | None) -> str | None:
    for candidate in (explicit, shutil.which("deface"), "/tmp/deface-venv/bin/deface"):
        if candidate and Path(candidate).exists():
            return candidate
    return None


# --- the runner (this script in a child process) --------------------------------------------------------------


def run_child(args) -> None:
    sys.path.insert(0, str(ROOT))
    from anonlab.settings import Settings

    settings = Settings.from_dict(json.loads(args.settings))
    clip, out = Path(args.clip), Path(args.out)
    result = {"startup": 0.0}
    if args.mode == "local":
        from anonlab.pipeline import anonymize

        t0 = time.perf_counter()
        anonymize(clip, out / clip.name, settings, overwrite=True, progress=False)
        result["seconds"] = time.perf_counter() - t0
    else:
        import logging

        from distributed import Client, LocalCluster

        from anonlab.batch import run_batch

        t0 = time.perf_counter()
        cluster = LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                               dashboard_address=None, silence_logs=logging.ERROR)
        client = Client(cluster)
        result["startup"] = time.perf_counter() - t0
        folder = out / "in"
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / clip.name
        if not target.exists():
            os.symlink(clip, target)
        t1 = time.perf_counter()
        summary = run_batch(folder, out / "out", settings, executor="dask", scheduler=client,
                            chunk_seconds=args.chunk_seconds, progress=False, echo=False, reports=False)
        result["seconds"] = time.perf_counter() - t1
        result["failed"] = summary["failed"]
        from anonlab.batch import read_ledger

        result["chunks"] = max((r["chunks"] or 1) for r in read_ledger(out / "out"))
        if summary["failed"]:
            result["error"] = summary["failures"][0]["error"]
        client.close()
        cluster.close()
    print(json.dumps(result), flush=True)


# --- main -----------------------------------------------------------------------------------------------


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--clips", default=DEFAULT_CLIPS, help=f"SOURCE:HEIGHT list (default {DEFAULT_CLIPS})")
    ap.add_argument("--frames", type=int, default=None, help="frames per clip (default: the source's length)")
    ap.add_argument("--workers", default="1,2", help="Dask worker counts (default 1,2)")
    ap.add_argument("--no-local", action="store_true", help="skip the one-process run")
    ap.add_argument("--detect-every", default="1", help="anonlab --detect-every values to measure (default 1)")
    ap.add_argument("--what", default="face,plate", help="what anonlab masks (default face,plate)")
    ap.add_argument("--int8", action="store_true", help="anonlab with --int8 (the int8 copies of the models)")
    ap.add_argument("--deface", default=None, help="deface executable (default: PATH, then /tmp/deface-venv)")
    ap.add_argument("--no-deface", action="store_true")
    ap.add_argument("--timeout", type=float, default=3600, help="seconds per run")
    ap.add_argument("--workdir", default=None, help="keep clips and outputs here (default: a temporary folder)")
    ap.add_argument("--json", default=None, help="also write the rows as JSON to this file")
    ap.add_argument("--profiles", nargs="?", const="all", default=None,
                    help="measure the speed profiles (all, or a comma list) at --clips (default facenet:720,"
                         "facenet:1080) and write anonlab/speed_profiles.json and the README's table")
    ap.add_argument("--rounds", type=int, default=1, help="--profiles: runs per configuration (mean kept)")
    ap.add_argument("--recall-photos", default="12,6", help="--profiles: face,plate photos made into clips (12,6)")
    ap.add_argument("--no-write", action="store_true", help="--profiles: print only, write no figures")
    ap.add_argument("--_run", dest="mode", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--clip", help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    ap.add_argument("--settings", help=argparse.SUPPRESS)
    ap.add_argument("--chunk-seconds", type=float, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--n", dest="workers_n", type=int, default=1, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.mode:
        args.workers = args.workers_n
        run_child(args)
        return 0

    sys.path.insert(0, str(ROOT))
    from anonlab.settings import Settings

    if args.profiles:
        from bench_profiles import run_profiles

        return run_profiles(args, make_clip=make_clip, measure=measure, deface=None if args.no_deface else
                            find_deface(args.deface))
    work = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="anonlab-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    deface = None if args.no_deface else find_deface(args.deface)
    workers = [int(w) for w in args.workers.split(",") if w]
    ks = [int(k) for k in args.detect_every.split(",") if k]
    print(f"machine: {os.cpu_count()} cores, {platform.processor() or platform.machine()}, "
          f"python {platform.python_version()}; load average before: "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"deface: {deface or 'not installed (skipped)'}; anonlab --what {args.what}; workdir {work}")
    rows = []
    header = (f"{'clip':<15} {'frames':>6} {'configuration':<30} {'wall s':>7} {'fps':>6} {'x real':>6} "
              f"{'proc fps':>8} {'startup':>7} {'peak MiB':>8} {'vs deface':>9}")
    print(header)
    print("-" * len(header))
    for spec in args.clips.split(","):
        name, height = spec.split(":")
        clip = make_clip(SOURCES[name], work / f"{name}_{height}p.mp4", int(height), args.frames)
        label = f"{name} {height}p"
        runs = []
        if deface:
            runs.append(("deface (faces, defaults)", [deface, str(clip["path"]), "-o",
                                                      str(work / f"deface_{clip['path'].name}")], None))
        for k in ks:
            settings = Settings(what=tuple(args.what.split(",")), detect_every=k, int8=args.int8)
            sjson = json.dumps(settings.to_dict())
            base = [sys.executable, str(Path(__file__).resolve()), "--clip", str(clip["path"]), "--settings", sjson]
            tag = (f" k={k}" if len(ks) > 1 or k != 1 else "") + (" int8" if args.int8 else "")
            if not args.no_local:
                out = work / f"local_k{k}_{clip['path'].stem}"
                out.mkdir(exist_ok=True)
                runs.append((f"anonlab 1 local{tag}", [*base, "--_run", "local", "--out", str(out)], None))
            for n in workers:
                out = work / f"dask{n}_k{k}_{clip['path'].stem}"
                shutil.rmtree(out, ignore_errors=True)
                out.mkdir()
                duration = clip["frames"] / clip["fps"]
                chunk = duration / n + 1e-3 if n > 1 else None
                extra = ["--chunk-seconds", str(chunk)] if chunk else []
                runs.append((f"anonlab {n} dask{' chunked' if chunk else ''}{tag}",
                             [*base, "--_run", "dask", "--n", str(n), "--out", str(out), *extra], None))
        deface_fps = None
        for config, cmd, env in runs:
            m = measure(cmd, args.timeout, env)
            frames = clip["frames"]
            fps = frames / m["wall"]
            res = m["result"] or {}
            proc_fps = frames / res["seconds"] if res.get("seconds") else None
            if config.startswith("deface") and m["rc"] == 0:
                deface_fps = fps
            ok = m["rc"] == 0 and not res.get("failed")
            if "chunked" in config:
                config = config.replace("chunked", f"{res.get('chunks', '?')} chunks")
            ratio = f"{fps / deface_fps:.2f}x" if deface_fps and ok and not config.startswith("deface") else ""
            row = {"clip": label, "frames": frames, "config": config, "wall_s": round(m["wall"], 2),
                   "fps": round(fps, 2), "x_realtime": round(fps / clip["fps"], 3),
                   "proc_fps": round(proc_fps, 2) if proc_fps else None, "startup_s": round(res.get("startup", 0), 2),
                   "peak_rss_mib": round(m["rss_mib"]), "vs_deface": ratio, "ok": ok}
            rows.append(row)
            if not ok:
                print(f"{label:<15} {frames:>6} {config:<30} FAILED rc={m['rc']} {res.get('error', '')} "
                      f"{' '.join(m['stderr'])}")
                continue
            proc = f"{row['proc_fps']:.2f}" if row["proc_fps"] else "-"
            print(f"{label:<15} {frames:>6} {config:<30} {row['wall_s']:>7.1f} {row['fps']:>6.2f} "
                  f"{row['x_realtime']:>6.3f} {proc:>8} {row['startup_s']:>7.1f} "
                  f"{row['peak_rss_mib']:>8} {ratio:>9}", flush=True)
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
