#!/usr/bin/env python
"""Memory against duration: peak RSS of the same footage at 1x, 6x and 36x its length, per entry point.

Memory must be bounded by frame size and settings, never by duration (an hour of 720p would otherwise need
hundreds of GB). This script makes one clip per length from a real clip (``../shared/eval/videos``, played
forward and back so no cut appears at the loop), runs each entry point on it in a child process, samples the
summed RSS of the whole process tree every 0.1 s (Dask workers included), and prints the peak per length and
the slope: MiB per 1,000 frames from a least-squares line through the lengths (about zero is the goal; the
regions of a whole video may stay in memory, a few hundred bytes per region).

Entry points (``--modes``):
    anonymize       ``anonlab anonymize CLIP -o OUT`` (analysis with the streaming render)
    render          ``anonlab anonymize CLIP --regions-in REGIONS``: the render alone, the path that
                    ``render-cases`` and the workbench's export take (`anonlab.pipeline.render`); the regions
                    file is made first by an analysis that is not measured
    batch           ``anonlab batch`` on a folder holding the clip, local pool, whole file
    batch-chunked   the same with ``--chunk-seconds`` (chunks analysed apart, stitched, one render)
    dask            ``anonlab batch --executor dask --workers 2`` (LocalCluster), whole file
    dask-chunked    the same with ``--chunk-seconds``

Not a test: a measurement to run by hand; it prints the machine, the load average and the exact commands.

Usage:
    .venv/bin/python benchmarks/bench_memory.py                                    # 180p, 1x/6x/36x, all modes
    .venv/bin/python benchmarks/bench_memory.py --height 720 --factors 1,6 --modes anonymize
    .venv/bin/python benchmarks/bench_memory.py --height 720 --minutes 20 --modes anonymize   # one real long run
    .venv/bin/python benchmarks/bench_memory.py --extra="--detect-every 5"   # cheaper analysis, same buffers

``--extra`` passes settings to every command: memory against duration does not depend on how often the
detector runs (what is kept per frame are regions, which flow carries between detections), so a long run may
detect less often to finish sooner; the report says which settings were used.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOURCES = {
    "facenet": ROOT.parent / "shared" / "eval" / "videos" / "facenet_pytorch_video.mp4",
    "hamilton": ROOT.parent / "shared" / "eval" / "videos" / "face_recognition_short_hamilton_clip.mp4",
    "street": ROOT / "sample_media" / "street.mp4",
}
MODES = ("anonymize", "render", "batch", "batch-chunked", "dask", "dask-chunked")

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_throughput import measure  # noqa: E402  (one process-tree sampler for both benchmarks)


def make_long_clip(src: Path, dst: Path, height: int, frames: int) -> dict:
    """Encode ``frames`` frames of ``src`` scaled to ``height``, forward then back, a keyframe every second.

    Only the source's frames are held (scaled), never the long clip: the benchmark itself stays small.
    """
    import av
    import cv2

    with av.open(str(src)) as inp:
        stream = inp.streams.video[0]
        fps = stream.average_rate or 25
        images = []
        for frame in inp.decode(stream):
            img = frame.to_ndarray(format="bgr24")
            h0, w0 = img.shape[:2]
            width = int(round(w0 * height / h0 / 2)) * 2
            images.append(cv2.resize(img, (width, height), interpolation=cv2.INTER_AREA))
    loop = images + images[-2:0:-1]
    out = av.open(str(dst), "w")
    vs = out.add_stream("libx264", rate=fps)
    vs.width, vs.height, vs.pix_fmt = images[0].shape[1], height, "yuv420p"
    vs.options = {"crf": "20", "preset": "veryfast", "g": str(int(round(float(fps))))}
    for i in range(frames):
        for packet in vs.encode(av.VideoFrame.from_ndarray(loop[i % len(loop)], format="bgr24")):
            out.mux(packet)
    for packet in vs.encode():
        out.mux(packet)
    out.close()
    return {"path": dst, "frames": frames, "fps": float(fps), "loop": len(loop)}


def command(mode: str, clip: Path, work: Path, chunk_seconds: float, extra: list[str] = ()) -> list[str]:
    return _command(mode, clip, work, chunk_seconds) + list(extra)


def _command(mode: str, clip: Path, work: Path, chunk_seconds: float) -> list[str]:
    exe = str(Path(sys.executable).with_name("anonlab"))
    out = work / f"out_{mode}"
    if mode == "anonymize":
        return [exe, "anonymize", str(clip), "-o", str(out.with_suffix(clip.suffix)), "--overwrite", "--quiet"]
    if mode == "render":
        return [exe, "anonymize", str(clip), "-o", str(out.with_suffix(clip.suffix)), "--overwrite", "--quiet",
                "--regions-in", str(work / "regions.jsonl")]
    folder = work / f"in_{clip.stem}"  # one clip per folder: a batch must not also hash the shorter clips
    folder.mkdir(exist_ok=True)
    link = folder / clip.name
    if link.is_symlink() or link.exists():
        link.unlink()
    os.symlink(clip, link)
    cmd = [exe, "batch", str(folder), str(out), "--quiet"]
    if mode.startswith("dask"):
        cmd += ["--executor", "dask", "--workers", "2"]
    if mode.endswith("chunked"):
        cmd += ["--chunk-seconds", str(chunk_seconds)]
    return cmd


def slope(points: list[tuple[int, float]]) -> float:
    """MiB per 1,000 frames, least squares."""
    if len(points) < 2:
        return float("nan")
    n = len(points)
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    sxx = sum((x - mx) ** 2 for x, _ in points)
    return 1000 * sum((x - mx) * (y - my) for x, y in points) / sxx if sxx else float("nan")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--source", default="facenet", choices=sorted(SOURCES))
    ap.add_argument("--height", type=int, default=180)
    ap.add_argument("--base-frames", type=int, default=None, help="frames at 1x (default: the source played "
                    "forward and back)")
    ap.add_argument("--factors", default="1,6,36", help="lengths as multiples of --base-frames")
    ap.add_argument("--minutes", type=float, default=None, help="instead of --factors: one clip this long")
    ap.add_argument("--modes", default=",".join(MODES), help=f"comma list of {', '.join(MODES)}")
    ap.add_argument("--chunk-seconds", type=float, default=10.0)
    ap.add_argument("--timeout", type=float, default=6 * 3600)
    ap.add_argument("--workdir", default=None, help="keep clips and outputs here (default: a temporary folder)")
    ap.add_argument("--json", default=None, help="also write the rows as JSON here")
    ap.add_argument("--extra", default="", help="settings added to every command, e.g. '--detect-every 5'")
    args = ap.parse_args()
    extra = args.extra.split()

    src = SOURCES[args.source]
    if not src.exists():
        print(f"{src} not found (../shared/eval beside the checkout)", file=sys.stderr)
        return 2
    work = Path(args.workdir or tempfile.mkdtemp(prefix="anonlab-mem-"))
    work.mkdir(parents=True, exist_ok=True)
    modes = [m for m in args.modes.split(",") if m]
    probe = make_long_clip(src, work / "probe.mp4", args.height, 2)
    base = args.base_frames or probe["loop"]
    if args.minutes:
        lengths = [int(round(args.minutes * 60 * probe["fps"]))]
    else:
        lengths = [base * int(f) for f in args.factors.split(",")]
    print(f"# machine: {platform.machine()} {os.cpu_count()} cpu, python {platform.python_version()}; "
          f"load average at start {os.getloadavg()[0]:.2f}")
    print(f"# source {src.name} at {args.height}p, {probe['fps']:.2f} fps; lengths {lengths} frames; "
          f"workdir {work}; extra settings {extra or 'none'}")
    rows = []
    for frames in lengths:
        clip = work / f"clip_{args.height}p_{frames}.mp4"
        if not clip.exists():
            t0 = time.perf_counter()
            make_long_clip(src, clip, args.height, frames)
            print(f"# made {clip.name} in {time.perf_counter() - t0:.0f} s")
        if "render" in modes:  # the regions the render-only run masks, from an unmeasured analysis
            exe = str(Path(sys.executable).with_name("anonlab"))
            subprocess.run([exe, "anonymize", str(clip), "-o", str(work / f"regions_src{clip.suffix}"), "--overwrite",
                            "--quiet", "--regions-out", str(work / "regions.jsonl"), *extra], check=True)
        for mode in modes:
            cmd = command(mode, clip, work, args.chunk_seconds, extra)
            res = measure(cmd, args.timeout)
            row = {"mode": mode, "frames": frames, "seconds_of_video": round(frames / probe["fps"], 1),
                   "peak_mib": round(res["rss_mib"], 1), "wall_s": round(res["wall"], 1), "rc": res["rc"],
                   "load": round(os.getloadavg()[0], 2), "command": " ".join(cmd)}
            rows.append(row)
            print(f"{mode:<14} {frames:>7} frames ({row['seconds_of_video']:>7.1f} s)  peak {row['peak_mib']:>8.1f} MiB"
                  f"  wall {row['wall_s']:>7.1f} s  rc {res['rc']}  load {row['load']}"
                  + (f"  {res['stderr']}" if res["rc"] else ""), flush=True)
    if len(lengths) > 1:
        print("\n# slope: MiB per 1,000 frames (least squares over the lengths); peak at the longest / shortest")
        for mode in modes:
            pts = [(r["frames"], r["peak_mib"]) for r in rows if r["mode"] == mode and r["rc"] == 0]
            if pts:
                print(f"{mode:<14} slope {slope(pts):7.2f} MiB/1000 frames   peak ratio "
                      f"{pts[-1][1] / pts[0][1]:.2f}x for {pts[-1][0] / pts[0][0]:.0f}x the frames")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
