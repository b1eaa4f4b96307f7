"""Command line: a thin layer over library calls (notebooks and batch jobs use the same functions).

Errors a person can fix are printed as one line (``anonlab: error: ...``) with a non-zero exit; the
traceback appears only with ``--debug``. Nothing here prints region coordinates or pixel data.
Each command imports what it runs inside its own function, so that ``anonlab --help`` and a mistyped
flag answer at once instead of loading PyAV, onnxruntime and the widgets first.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
from pathlib import Path

from anonlab import __version__
from anonlab.errors import AnonlabError

EXIT_USER_ERROR = 2
EXIT_INTERNAL = 3
EXIT_INTERRUPTED = 130
EXIT_RED_TEAM = 4


def _speed_help() -> str:
    """``--speed``'s help: each profile's settings and measured figures, read from the file the benchmark writes
    (`anonlab.settings.speed_figures`), never typed here."""
    from anonlab.settings import DEFAULT_SPEED, SPEED_PROFILES, speed_figures, speed_summary

    figures = speed_figures()
    lines = [speed_summary(name, figures) for name in SPEED_PROFILES]
    where = figures.get("measured", "")
    return (f"speed profile (default {DEFAULT_SPEED}: recall first); flags such as --detect-every or --int8 "
            f"override its values. " + "; ".join(lines)
            + (f" (measured {where}: per-frame recall on semi-synthetic clips made from the labelled eval "
               "photos, recall per image on those photos; fps end to end on the facenet clip, faces and plates)"
               if where else ""))


def _settings_args(p: argparse.ArgumentParser) -> None:
    from anonlab.settings import SPEED_PROFILES

    g = p.add_argument_group("detection and masking")
    g.add_argument("--speed", choices=tuple(SPEED_PROFILES), default=None, help=_speed_help())
    g.add_argument("--what", default="faces,plates",
                   help="what to mask, comma-separated: faces, plates, heads, persons, text (default faces,plates; "
                        "README: what each label costs and finds)")
    g.add_argument("--thresh", type=float, default=None, help="detector score threshold (default: recall-first)")
    g.add_argument("--mask", choices=("blur", "pixelate", "solid"), default=None, help="mask style (default blur)")
    g.add_argument("--shape", choices=("rect", "ellipse"), default=None, help="mask shape (default rect)")
    g.add_argument("--mask-scale", type=float, default=None, help="grow boxes by this factor before masking (1.3)")
    g.add_argument("--feather", type=float, default=None, help="soft mask edge, fraction of box size (0)")
    g.add_argument("--detect-every", type=int, default=None,
                   help="full detection every k frames (default: the --speed profile's, 3 for thorough); tracking "
                        "carries the frames between. "
                        "Higher is faster but TRADES RECALL: objects appearing between detections rely on "
                        "flow and the lead extension. 1 = most thorough")
    g.add_argument("--crf", type=int, default=None, help="video quality, libx264 CRF (18)")
    g.add_argument("--jpeg-quality", type=int, default=None,
                   help="JPEG quality 1-95 for photos (default: keep the source JPEG's own quantisation tables)")
    g.add_argument("--keep-metadata", action="store_true", help="keep EXIF/GPS and container metadata")
    g.add_argument("--face-model", default=None,
                   help="your own face model: a CenterFace- or SCRFD-format .onnx, or a mediapipe .tflite/.task "
                        "(see models/README.md)")
    g.add_argument("--plate-model", default=None, help="path to another YOLOv8 plate ONNX model")
    g.add_argument("--second-face-detector", action=argparse.BooleanOptionalAction, default=None,
                   help="YuNet beside CenterFace (--no-second-face-detector: CenterFace alone, faster, lower recall "
                        "on small faces; default: the --speed profile's, on for thorough and balanced)")
    g.add_argument("--plate-tiles", action=argparse.BooleanOptionalAction, default=None,
                   help="frames larger than 1280x736 (1080p, 4K) are also searched for far plates in tiles (four; "
                        "nine above about 3080x1720: 4K) at up to their own size on thorough keyframes "
                        "(--no-plate-tiles: faster on such frames, far plates missed more often; default: the "
                        "--speed profile's)")
    g.add_argument("--int8", action=argparse.BooleanOptionalAction, default=None,
                   help="int8 copies of the bundled models: 1.2-1.3x faster end to end on CPUs with VNNI, plate "
                        "recall unchanged, 3 of 2065 test faces lost (models/README.md); may be slower elsewhere "
                        "(default: the --speed profile's)")
    g.add_argument("--thorough-per-second", type=float, default=None,
                   help="video keyframes a second that run every model on the whole frame; the others run the "
                        "quick pass (default: the --speed profile's, 2 for thorough)")
    g.add_argument("--device", choices=("auto", "cpu", "cuda"), default=None,
                   help="where the models run: auto (default: an NVIDIA GPU when anonlab[gpu] is installed and one "
                        "is present, else the CPU), cpu, or cuda (an error if it cannot be had)")
    g.add_argument("--max-upscale", type=float, default=None,
                   help="frames under 720p are enlarged up to this many times for small faces; 1 = off "
                        "(default: the --speed profile's, 2 for thorough)")


def _audio_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("audio (voices and spoken names are personal data too)")
    g.add_argument("--audio", choices=("keep", "mute", "beep", "voice"), default=None,
                   help="keep (default: the sound track copied untouched), mute, beep (1 kHz tone) or voice "
                        "(disguise: pitch and formants shifted; what is said stays audible). Photos ignore it")
    g.add_argument("--audio-ranges", default=None, metavar="START-STOP,...",
                   help="where --audio applies, seconds from the first picture (the workbench's 0 s), e.g. "
                        "12.5-14,30-31.2 (m:ss also works); empty or left out: the whole track")


def settings_from_args(args: argparse.Namespace):
    """The `Settings` the flags ask for: the ``--speed`` profile's values, then every flag given over them."""
    from anonlab.settings import DEFAULT_SPEED, speed_settings

    what = tuple(w.strip().rstrip("s") for w in args.what.split(",") if w.strip())
    changes = {"what": what}
    for name in ("thresh", "mask", "shape", "mask_scale", "feather", "detect_every", "crf", "jpeg_quality",
                 "face_model", "plate_model", "int8", "thorough_per_second", "max_upscale", "device", "second_face_detector",
                 "plate_tiles"):
        value = getattr(args, name, None)
        if value is not None:
            changes[name] = value
    if args.keep_metadata:
        changes["keep_metadata"] = True
    if getattr(args, "audio", None) is not None:
        changes["audio"] = args.audio
    if getattr(args, "audio_ranges", None) is not None:
        changes["audio_ranges"] = args.audio_ranges  # text: Settings parses and checks it
    return speed_settings(getattr(args, "speed", None) or DEFAULT_SPEED, **changes)


def _folder_args(p: argparse.ArgumentParser) -> None:
    """Options of `anonymize` that a folder run (`batch`) takes too."""
    p.add_argument("--overwrite", action="store_true",
                   help="replace an existing output (in a folder run: files in the output folder that the run did "
                        "not write itself; its own finished outputs are still skipped)")
    p.add_argument("--red-team", action="store_true",
                   help="check the output again with every detector at a lower threshold; exit 4 if anything shows "
                        "(in a folder run: every output, the findings in each report)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="anonlab", description="Find and mask faces and licence plates.")
    parser.add_argument("--version", action="version", version=f"anonlab {__version__}")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("anonymize", help="mask faces and plates in a photo, a video or a folder")
    p.add_argument("input", help="photo, video or folder")
    p.add_argument("-o", "--output", help="output file, or a folder to write INPUT_anonymized into (a folder input "
                                          "gives a folder); default INPUT_anonymized beside the input")
    p.add_argument("--regions-out", help="write per-frame regions: .jsonl, MOT .csv or CVAT .xml (holds coordinates!)")
    p.add_argument("--regions-in", help="mask these regions instead of detecting (.jsonl, MOT .csv, CVAT .xml)")
    p.add_argument("--report", help="write the audit report (JSON, with a Markdown twin); one file only: a folder "
                                    "run writes each output's report beside it")
    _folder_args(p)
    _settings_args(p)
    _audio_args(p)

    p = sub.add_parser("detect", help="run detection over a labelled image set (labels.jsonl)")
    p.add_argument("--labels", required=True, help="labels.jsonl of the set")
    p.add_argument("--out", required=True, help="predictions JSONL to write")
    p.add_argument("--quiet", action="store_true")
    _settings_args(p)

    p = sub.add_parser("eval", help="score predictions against labels (precision, recall, by size)")
    p.add_argument("--labels", required=True)
    p.add_argument("--pred", help="predictions JSONL (default: run detection first)")
    p.add_argument("--iou", type=float, default=0.3, help="IoU for a match (default 0.3)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.add_argument("--quiet", action="store_true")
    _settings_args(p)

    sub.add_parser("models", help="list bundled models, their licences and checksums")

    p = sub.add_parser("batch", help="process a folder tree (resumable; local or Dask)")
    p.add_argument("input_dir")
    p.add_argument("output_dir", nargs="?", help="folder for the outputs (or -o, as anonymize and render-cases take)")
    p.add_argument("-o", "--output-dir", dest="output_opt", metavar="OUTPUT_DIR", default=None,
                   help="the same as the second argument")
    p.add_argument("--workers", type=int, default=1, help="files processed side by side (processes or Dask workers)")
    p.add_argument("--executor", choices=("local", "dask"), default="local")
    p.add_argument("--scheduler", default=None, help="address of a running Dask scheduler")
    p.add_argument("--chunk-seconds", type=float, default=None, help="split long videos into chunks (Dask)")
    _folder_args(p)
    _settings_args(p)
    _audio_args(p)

    p = sub.add_parser("render-cases", help="render approved case files from the workbench (a batch of cases)")
    p.add_argument("cases", nargs="+", help="case files (NAME.case.json); only approved cases are rendered")
    p.add_argument("-o", "--output-dir", required=True, help="folder for the outputs and their reports")
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--executor", choices=("local", "dask"), default="local")
    p.add_argument("--scheduler", default=None, help="address of a running Dask scheduler")
    p.add_argument("--quiet", action="store_true")

    p = sub.add_parser("verify", help="check that an output keeps the input's stream properties and drops its "
                                      "metadata (not whether its masks cover every person: see --red-team)")
    p.add_argument("input")
    p.add_argument("output")
    p.add_argument("--report", default=None,
                   help="the run's audit report (JSON): redacted audio then passes as 'audio redacted' if the "
                        "report is of this output and says so")

    p = sub.add_parser("app", help="start the workbench as a local web app (Voila on 127.0.0.1, behind a token)")
    p.add_argument("path", nargs="?", default=None, help="a video, a photo or a folder of photos")
    p.add_argument("--port", type=int, default=8866)
    p.add_argument("--no-browser", action="store_true")

    p = sub.add_parser("lab", help="open JupyterLab on the workbench notebook")
    p.add_argument("--port", type=int, default=8888)
    p.add_argument("--no-browser", action="store_true")
    return parser


def cmd_anonymize(args) -> int:
    from anonlab.media import MEDIA_EXTENSIONS
    from anonlab.media.audiotrack import picture_start
    from anonlab.media.dropped import dropped_notes
    from anonlab.pipeline import anonymize

    settings = settings_from_args(args)
    src = Path(args.input)
    if src.is_dir():
        from anonlab.batch import run_batch

        one_file = [f for f, v in (("--report", args.report), ("--regions-out", args.regions_out),
                                   ("--regions-in", args.regions_in)) if v]
        if one_file:  # they were ignored without a word
            raise AnonlabError(f"{' and '.join(one_file)} name one file's; a folder run writes each output's report "
                               "beside it (NAME.report.json): leave the option out, or give one file")
        out_dir = Path(args.output) if args.output else src.with_name(src.name + "_anonymized")
        return _batch_exit(run_batch(src, out_dir, settings, progress=not args.quiet, red_team=args.red_team,
                                     overwrite=args.overwrite))
    if not src.exists():
        raise AnonlabError(f"{src}: no such file or folder")
    if src.suffix.lower() not in MEDIA_EXTENSIONS:
        logging.getLogger("anonlab").info("%s: unusual extension; judging the file by its content", src.name)
    output = args.output
    if output and (Path(output).is_dir() or str(output).endswith(("/", os.sep))):
        # `-o folder/` for one file means "into that folder", as cp does (it asked to --overwrite a folder before)
        from anonlab.pipeline import default_output

        folder = Path(output)
        if not folder.is_dir():
            raise AnonlabError(f"{folder}: no such folder; create it first, or give a file name for the output")
        output = folder / default_output(src).name
    report = anonymize(src, output, settings, overwrite=args.overwrite, regions_out=args.regions_out,
                       regions_in=args.regions_in, report=args.report, red_team=args.red_team,
                       progress=not args.quiet)
    regions, tracks = report["regions"]["by_label"], report["tracks"]["by_label"]
    print(f"{src.name}: {report['output']['frames']} frame(s) written to {report['output']['file']}; masked "
          + ", ".join(f"{regions[k]} {k} region(s) in {tracks[k]} track(s)" for k in regions))
    for note in dropped_notes(report.get("extra", {}).get("dropped_streams", {})):
        print(note, file=sys.stderr)
    cut = report.get("extra", {}).get("input_cut_short")
    if cut:
        if cut.get("listed_frames"):
            print(f"warning: {src.name}: the file is cut off: its header lists {cut['listed_frames']} frames "
                  f"({cut['announced_s']:.2f} s), {cut['read_frames']} could be read ({cut['read_s']:.2f} s); the "
                  "output holds those (find the whole file if there is one)", file=sys.stderr)
        else:
            print(f"warning: {src.name}: the picture stops at {cut['read_s']:.2f} s of the {cut['announced_s']:.2f} s "
                  "its header announces (a file cut off in a copy or a download, or a sound track longer than the "
                  "picture); the output holds the picture that could be read", file=sys.stderr)
    audio = report.get("extra", {}).get("audio")
    if audio and audio["mode"] != "keep":
        where = "the whole track" if audio["whole_track"] else f"{audio['ranges']} range(s)"
        print(f"audio: {audio['note']}" if audio.get("note") else
              f"audio: {audio['mode']} over {where}, {audio['seconds']:.2f} s changed, re-encoded as {audio['codec']}")
        for reason in audio.get("reasons", ()):
            print(f"  {reason}")
        late = picture_start(src) if not audio.get("whole_track") else 0.0
        if late >= 0.05:
            print(f"note: --audio-ranges count from the first picture, which starts {late:.2f} s into the file: a "
                  f"player that counts from the file's start shows them {late:.2f} s later", file=sys.stderr)
    if "red_team" in report:
        rt = report["red_team"]
        print(f"red team: {rt['frames_checked']} frame(s) checked, {rt['exposed']} exposed, "
              f"{rt['weak_mask']} weak mask(s) (sure findings, one per object), "
              f"{rt.get('doubtful', 0)} doubtful finding(s) listed after them")
        for line in rt["findings"][:20]:
            print(f"  {line}")
        if rt["exposed"] or rt["weak_mask"]:
            return EXIT_RED_TEAM
    return 0


def cmd_detect(args) -> int:
    from anonlab.evaluation.images import detect_labelled_set

    detect_labelled_set(args.labels, args.out, settings_from_args(args), progress=not args.quiet)
    print(f"predictions written to {args.out}")
    return 0


def cmd_eval(args) -> int:
    import tempfile

    from anonlab.evaluation.images import detect_labelled_set, evaluate, format_summary

    pred = args.pred
    if pred is None:
        tmpdir = tempfile.mkdtemp(prefix="anonlab-eval-")
        pred = str(Path(tmpdir) / "pred.jsonl")
        detect_labelled_set(args.labels, pred, settings_from_args(args), progress=not args.quiet)
    result = evaluate(args.labels, pred, iou=args.iou)
    print(json.dumps(result, indent=2) if args.json else format_summary(result))
    return 0


def cmd_models(args) -> int:
    from anonlab.models import format_models, list_models

    rows = list_models()
    print(format_models(rows))
    return 0 if all(r.get("status", "ok") == "ok" for r in rows) else 1


def cmd_batch(args) -> int:
    from anonlab.batch import run_batch

    if (args.output_dir is None) == (args.output_opt is None):
        raise AnonlabError("name one output folder: 'anonlab batch IN OUT' or 'anonlab batch IN -o OUT'")
    output_dir = Path(args.output_dir or args.output_opt)
    return _batch_exit(run_batch(Path(args.input_dir), output_dir, settings_from_args(args),
                                 workers=args.workers, executor=args.executor, scheduler=args.scheduler,
                                 chunk_seconds=args.chunk_seconds, progress=not args.quiet, red_team=args.red_team,
                                 overwrite=args.overwrite))


def _batch_exit(summary: dict) -> int:
    """A folder run's exit code: 4 when the red team found something in any output (what a publishing script
    gates on, as for one file), else 1 when a file failed, else 0."""
    if any(f["exposed"] or f["weak_mask"] for f in summary.get("red_team", ())):
        return EXIT_RED_TEAM
    return 0 if summary["failed"] == 0 else 1


def cmd_render_cases(args) -> int:
    from anonlab.batch import queue_cases

    summary = queue_cases([Path(c) for c in args.cases], Path(args.output_dir), workers=args.workers,
                          executor=args.executor, scheduler=args.scheduler, progress=not args.quiet)
    return 0 if summary["failed"] == 0 else 1


def cmd_verify(args) -> int:
    from anonlab.report.verify import main as verify_main

    return verify_main([args.input, args.output] + (["--report", args.report] if args.report else []))


def cmd_app(args) -> int:
    from anonlab.widgets.launch import run_app

    return run_app(args.path, port=args.port, open_browser=not args.no_browser)


def cmd_lab(args) -> int:
    from anonlab.widgets.launch import run_lab

    return run_lab(port=args.port, open_browser=not args.no_browser)


COMMANDS = {"anonymize": cmd_anonymize, "detect": cmd_detect, "eval": cmd_eval, "models": cmd_models,
            "batch": cmd_batch, "render-cases": cmd_render_cases, "verify": cmd_verify, "app": cmd_app, "lab": cmd_lab}


class Stopped(KeyboardInterrupt):
    """SIGTERM or SIGHUP (``kill``, a closed terminal, a scheduler's time limit), taken the way Ctrl-C is, so
    the same clean-up runs: without it the process died at once and left its hidden part-written output."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signame = signal.Signals(signum).name


def _stop(signum, _frame) -> None:
    raise Stopped(signum)


def main(argv: list[str] | None = None) -> int:
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _stop)
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.WARNING,
                        format="anonlab: %(levelname)s: %(message)s")
    try:
        return COMMANDS[args.command](args)
    except AnonlabError as exc:
        if args.debug:
            raise
        print(f"anonlab: error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt as exc:
        how = f"stopped ({exc.signame})" if isinstance(exc, Stopped) else "interrupted"
        print(f"anonlab: {how}; no partial output was left", file=sys.stderr)
        return EXIT_INTERRUPTED
    except MemoryError:
        print("anonlab: error: out of memory; try a smaller input or fewer workers", file=sys.stderr)
        return EXIT_USER_ERROR
    except Exception as exc:  # the last line of defence: one line, no traceback soup
        if args.debug:
            raise
        print(f"anonlab: internal error ({type(exc).__name__}); no partial output was left. "
              "Run again with --debug and report the trace (it holds no image data).", file=sys.stderr)
        return EXIT_INTERNAL


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
