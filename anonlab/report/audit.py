"""The audit report of one run: what was done, with what, and how it was checked, without personal data.

A report must be safe to attach to a ticket. It carries counts, settings, tool and model versions,
file *names* and sha256 hashes, frame counts, timings, the review status and who signed it off, and the
reasons given for overrides. It never carries coordinates, crops, frames or file contents:
`assert_report_is_safe` walks every report before it is written and refuses any key that names a geometry
(``x``, ``y``, ``w``, ``h``, ``xyxy``, ``box``...), any list of numbers, any array or bytes, and any text that
reads like a coordinate list.

File names: only the base name (``clip.mp4``) is kept, never the folder. The sha256 already identifies
the exact file for an auditor; the folder adds nothing to that and often carries personal data of its own
(user names in home folders, case numbers, names of the people filmed). The base name is the user's choice
and is kept so a person can match the report to the file by eye.

Example:
    >>> from anonlab.regions import Regions
    >>> from anonlab.settings import Settings
    >>> rep = make_report(settings=Settings(), models=[{"name": "centerface.onnx", "sha256": "ab" * 32}],
    ...                   input_path="/cases/x/in.mp4", output_path="out.mp4", input_sha256="0" * 64,
    ...                   output_sha256="1" * 64, n_frames_in=10, n_frames_out=10,
    ...                   regions=Regions(xyxy=[[1, 2, 30, 40]], track_id=[0]), timings={"total": 1.5})
    >>> rep["input"]["file"], rep["regions"]["by_label"]["face"], rep["tracks"]["total"]
    ('in.mp4', 1, 1)
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
import platform
import re
from collections import Counter
from collections.abc import Mapping
from pathlib import Path, PurePath

import numpy as np

from anonlab.errors import AnonlabError, OutputError
from anonlab import __version__
from anonlab.media import read_bytes_bounded, write_text_atomic
from anonlab.regions import LABELS, NO_TRACK, SOURCES, Regions
from anonlab.settings import Settings

__all__ = ["REPORT_SCHEMA", "UnsafeReportError", "assert_report_is_safe", "earlier_export", "make_report",
           "render_markdown", "write_report"]

REPORT_SCHEMA = "anonlab-report/1"

#: Review fields a report keeps (anything else in ``review`` is dropped).
_REVIEW_KEYS = ("status", "signed_off_by", "signed_off_at", "reviewed_items", "total_items", "residual_risk",
                "note")
#: Exclusion (override) fields a report keeps.
_EXCLUSION_KEYS = ("reason", "label", "track_id", "by", "at")
#: Settings that hold paths: reduced to the base name like every other path.
_PATH_SETTINGS = ("face_model", "plate_model")

#: Keys that name geometry or pixels. Matched on the whole key, case-insensitive, ``-``/``_``/space ignored.
_FORBIDDEN_KEYS = frozenset(
    k.replace("_", "")
    for k in (
        "x", "y", "w", "h", "x1", "y1", "x2", "y2", "cx", "cy", "xyxy", "xywh", "ltrb", "tlwh", "tlbr",
        "box", "boxes", "bbox", "bboxes", "rect", "rects", "xtl", "ytl", "xbr", "ybr", "left", "top",
        "right", "bottom", "point", "points", "polygon", "polygons", "coords", "coordinates", "keypoints",
        "landmarks", "crop", "crops", "pixels", "frame_data", "image_data", "thumbnail", "thumbnails",
        "regions_data", "mask_pixels",
    )
)
#: Key patterns for compound names (``face_bbox``, ``box_0``, ``xyxy_list``...).
_FORBIDDEN_KEY_RE = re.compile(r"(bbox|xyxy|xywh|ltrb|tlwh|coord|landmark|keypoint|thumbnail|crop|polygon)|"
                               r"(^|[_\-\s])(box|boxes)($|[_\-\s])", re.IGNORECASE)
#: Four or more numbers in a row separated by commas, semicolons or spaces: "10, 20, 30, 40", "[1 2 3 4]".
_NUMBER_RUN_RE = re.compile(r"-?\d+(?:\.\d+)?(?:(?:\s*[,;]\s*|\s+)-?\d+(?:\.\d+)?){3,}")


class UnsafeReportError(AnonlabError):
    """A report holds something that could locate or show a person (a bug in the caller, never written)."""


# --- safety -----------------------------------------------------------------------------------------
def _is_number(v) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, (bool, np.bool_))


def assert_report_is_safe(report) -> None:
    """Raise `UnsafeReportError` if ``report`` could carry coordinates, crops, frames or file contents.

    Walks every dict, list and string. Refused: a key naming geometry or pixels (``x``, ``y``, ``w``,
    ``h``, ``xyxy``, ``box``, ``bbox``, ``crop``...), a list or tuple holding two or more numbers, any numpy
    array or bytes, any non-JSON type, a non-finite number, a string with a run of four or more numbers
    (``"10, 20, 30, 40"``; file names excepted), and a ``file`` / ``*_file`` value holding a folder. The message names the
    path of the offending entry, never its value.

    Example:
        >>> assert_report_is_safe({"regions": {"total": 3}})
        >>> assert_report_is_safe({"regions": [{"x": 1}]})
        Traceback (most recent call last):
        ...
        anonlab.report.UnsafeReportError: report entry regions[0].x names a coordinate or pixel field
    """

    def walk(node, where: str) -> None:
        if isinstance(node, Mapping):
            for key, value in node.items():
                if not isinstance(key, str):
                    raise UnsafeReportError(f"report entry {where or 'root'} has a non-text key")
                norm = re.sub(r"[\s_\-]", "", key).lower()
                here = f"{where}.{key}" if where else key
                if norm in _FORBIDDEN_KEYS or _FORBIDDEN_KEY_RE.search(key):
                    raise UnsafeReportError(f"report entry {here} names a coordinate or pixel field")
                is_file = key in ("file", "name") or key.endswith("_file")
                if is_file and isinstance(value, str) and key != "name" and ("/" in value or "\\" in value):
                    raise UnsafeReportError(f"report entry {here} holds a folder, not only a file name")
                if is_file and isinstance(value, str):
                    continue  # a file name is the user's own text, kept as given (module docstring)
                walk(value, here)
        elif isinstance(node, (list, tuple)):
            if sum(_is_number(v) for v in node) >= 2:
                raise UnsafeReportError(f"report entry {where or 'root'} is a list of numbers (could be coordinates)")
            for i, value in enumerate(node):
                walk(value, f"{where}[{i}]")
        elif isinstance(node, str):
            if _NUMBER_RUN_RE.search(node):
                raise UnsafeReportError(
                    f"report entry {where or 'root'} is text with a run of numbers (could be coordinates)")
        elif isinstance(node, (np.ndarray, bytes, bytearray, memoryview)):
            raise UnsafeReportError(f"report entry {where or 'root'} is raw array or byte data")
        elif _is_number(node):
            if isinstance(node, (float, np.floating)) and not math.isfinite(node):
                raise UnsafeReportError(f"report entry {where or 'root'} is not a finite number")
        elif node is None or isinstance(node, (bool, np.bool_)):
            pass
        else:
            raise UnsafeReportError(f"report entry {where or 'root'} has an unexpected type {type(node).__name__}")

    walk(report, "")


# --- building ---------------------------------------------------------------------------------------
def _basename(path) -> str | None:
    if path is None:
        return None
    name = PurePath(os.fspath(path)).name
    # A Windows path read on POSIX keeps its backslashes in .name.
    return name.rsplit("\\", 1)[-1]


def _models(models) -> list[dict]:
    """Model names (base names) and sha256 from a mapping name -> sha256, dicts, or objects."""
    if models is None:
        return []
    if isinstance(models, Mapping):
        items = [{"name": k, "sha256": v} for k, v in models.items()]
    else:
        items = []
        for m in models:
            if isinstance(m, Mapping):
                items.append(dict(m))
            else:
                items.append({k: getattr(m, k) for k in ("name", "file", "sha256", "licence") if hasattr(m, k)})
    out, seen = [], set()
    for m in items:
        name = m.get("name") or m.get("file")
        sha = m.get("sha256")
        if not name or not sha:
            raise AnonlabError("report: every model needs a name and a sha256")
        entry = {"name": _basename(str(name)), "sha256": str(sha)}
        if m.get("file") and m.get("name"):
            entry["file"] = _basename(str(m["file"]))
        if m.get("licence"):
            entry["licence"] = str(m["licence"])
        key = (entry["name"], entry["sha256"])
        if key not in seen:
            seen.add(key)
            out.append(entry)
    return out


def _counts(regions: Regions, what=()) -> tuple[dict, dict]:
    """Region and track counts per label and per source (names, not codes).

    Labels are those the run looked for (``what``) and any other that has rows (an analyst's box of a label
    the run did not look for), zeros included; every source is listed.
    """
    labels = regions.label.astype(int)
    present = set(np.unique(labels).tolist())
    shown = [(i, name) for i, name in enumerate(LABELS) if name in what or i in present]
    sources = regions.source.astype(int)
    tracked = regions.track_id != NO_TRACK
    region_counts = {
        "total": int(len(regions)),
        "frames_with_regions": int(len(np.unique(regions.frame))),
        "by_label": {name: int((labels == i).sum()) for i, name in shown},
        "by_source": {name: int((sources == i).sum()) for i, name in enumerate(SOURCES)},
        "by_label_and_source": {
            lab: {src: int(((labels == i) & (sources == j)).sum()) for j, src in enumerate(SOURCES)}
            for i, lab in shown
        },
        "untracked": int((~tracked).sum()),
    }
    # A track is one (track id, label) pair; "by_source" counts the tracks that hold at least one row of
    # that source (a track found by the detector and gap-filled counts under both).
    pairs = np.stack([regions.track_id[tracked], labels[tracked], sources[tracked]], axis=1) if len(regions) else \
        np.zeros((0, 3), np.int64)
    tracks = np.unique(pairs[:, :2], axis=0) if len(pairs) else np.zeros((0, 2), np.int64)
    with_source = np.unique(pairs[:, [0, 1, 2]], axis=0) if len(pairs) else np.zeros((0, 3), np.int64)
    track_counts = {
        "total": int(len(tracks)),
        "by_label": {name: int((tracks[:, 1] == i).sum()) for i, name in shown},
        "by_source": {name: int((with_source[:, 2] == j).sum()) for j, name in enumerate(SOURCES)},
        "with_analyst_edits": int((with_source[:, 2] == SOURCES.index("analyst")).sum()),
    }
    return region_counts, track_counts


def _scalar(value):
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, (_dt.datetime, _dt.date)):
        return value.isoformat()
    return str(value)


def _review(review) -> dict:
    if review is None:
        return {"status": "not reviewed", "signed_off_by": None}
    if not isinstance(review, Mapping):
        raise AnonlabError("report: review must be a dict (status, signed_off_by, ...)")
    out = {k: _scalar(review[k]) for k in _REVIEW_KEYS if k in review}
    if "by" in review and "signed_off_by" not in out:  # the case file's short name for it
        out["signed_off_by"] = _scalar(review["by"])
    out.setdefault("status", "unknown")
    out.setdefault("signed_off_by", None)
    return out


def _exclusions(exclusions) -> dict:
    items = []
    for e in exclusions or []:
        get = e.get if isinstance(e, Mapping) else (lambda k, _e=e: getattr(_e, k, None))
        item = {k: _scalar(get(k)) for k in _EXCLUSION_KEYS if get(k) is not None}
        if not item.get("reason"):
            raise AnonlabError("report: every override (exclusion) needs a reason")
        items.append(item)
    return {"count": len(items), "reasons": dict(Counter(i["reason"] for i in items)), "items": items}


def _timings(timings) -> dict:
    out = {}
    for k, v in (timings or {}).items():
        if not _is_number(v) or not math.isfinite(float(v)):
            raise AnonlabError(f"report: timing {k!r} must be a number of seconds")
        out[str(k)] = round(float(v), 3)
    return out


def _settings(settings: Settings | Mapping) -> dict:
    d = settings.to_dict() if isinstance(settings, Settings) else dict(settings)
    for k in _PATH_SETTINGS:
        if d.get(k):
            d[k] = _basename(d[k])
    if d.get("audio_ranges") is not None:  # when something was said: the case file keeps the times, this counts
        spans = [b - a for a, b in d["audio_ranges"]]
        d["audio_ranges"] = f"{len(spans)} range(s), {sum(spans):.2f} s" if spans else "none"
    # Lists of names only (e.g. "what"): join them so the report holds no list of values at all.
    return {k: ",".join(map(str, v)) if isinstance(v, (list, tuple)) else v for k, v in d.items()}


def make_report(
    *,
    settings: Settings,
    models,
    input_path,
    output_path,
    input_sha256: str,
    output_sha256: str | None,
    n_frames_in: int,
    n_frames_out: int,
    regions: Regions,
    timings: dict,
    edits: int = 0,
    review: dict | None = None,
    exclusions: list | None = None,
    extra: dict | None = None,
) -> dict:
    """Build the audit report of one run as a JSON-ready dict, checked by `assert_report_is_safe`.

    Args:
        settings: the run's `Settings` (model paths reduced to base names).
        models: the model files used: a mapping ``name -> sha256``, or dicts / objects with ``name``
            (or ``file``) and ``sha256`` (``licence`` kept when present), e.g. ``detector.models``.
        input_path, output_path: only their base names are kept (module docstring).
        input_sha256, output_sha256: hex digests of the files.
        n_frames_in, n_frames_out: frame counts (1 for a photo).
        regions: every masked region of the run (all frames); only counted, never listed.
        timings: seconds per stage, e.g. ``{"analyse": 12.3, "render": 8.1, "total": 20.4}``.
        edits: number of manual edits made by the analyst (case file).
        review: ``status`` (e.g. ``approved``), ``signed_off_by`` (the name the analyst typed; ``by`` is
            accepted too), ``signed_off_at``, optional ``reviewed_items``, ``total_items``, ``residual_risk``,
            ``note``; other keys are dropped.
        exclusions: overrides (regions deliberately left unmasked): dicts or objects with ``reason``
            (required) and optional ``label``, ``track_id``, ``by``, ``at``; other fields (boxes) are dropped.
        extra: further JSON-safe facts (e.g. ``{"corrupt_frames_masked_whole": 2}``); checked like the rest.

    Raises:
        AnonlabError: a missing model hash, an override without a reason, a non-numeric timing.
        UnsafeReportError: something in ``extra`` or the free text looks like coordinates.
    """
    region_counts, track_counts = _counts(regions, settings.what)
    report = {
        "schema": REPORT_SCHEMA,
        "created": _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat(),
        "tool": {"name": "anonlab", "version": __version__, "python": platform.python_version()},
        "settings": _settings(settings),
        "settings_digest": settings.digest if isinstance(settings, Settings) else None,
        "models": _models(models),
        "input": {"file": _basename(input_path), "sha256": input_sha256, "frames": int(n_frames_in)},
        "output": {"file": _basename(output_path), "sha256": output_sha256, "frames": int(n_frames_out)},
        "frames_match": int(n_frames_in) == int(n_frames_out),
        "regions": region_counts,
        "tracks": track_counts,
        "manual_edits": int(edits),
        "review": _review(review),
        "overrides": _exclusions(exclusions),
        "timings_s": _timings(timings),
    }
    if extra:
        report["extra"] = {str(k): v for k, v in extra.items()}
    assert_report_is_safe(report)
    return report


# --- writing ----------------------------------------------------------------------------------------
def _md_escape(value) -> str:
    text = "—" if value is None else str(value)
    return text.replace("|", "\\|").replace("\n", " ")


def _md_table(rows: list[tuple], header: tuple) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_md_escape(c) for c in row) + " |" for row in rows]
    return lines + [""]


def render_markdown(report: dict) -> str:
    """The human-readable twin of a report (same facts, Markdown tables)."""
    r = report
    lines = [f"# anonlab report: {_md_escape(r['input']['file'])}", "",
             f"Created {r['created']} by anonlab {r['tool']['version']} (Python {r['tool']['python']}).", ""]
    lines += ["## Files", ""]
    lines += _md_table([("input", r["input"]["file"], r["input"]["frames"], r["input"]["sha256"]),
                        ("output", r["output"]["file"], r["output"]["frames"], r["output"]["sha256"])],
                       ("", "file", "frames", "sha256"))
    if not r["frames_match"]:
        lines += ["**Frame counts differ between input and output.**", ""]
    lines += ["## Review", ""]
    rev = r["review"]
    lines += _md_table([(k.replace("_", " "), v) for k, v in rev.items()], ("", "value"))
    lines += [f"Manual edits: {r['manual_edits']}.", ""]
    ov = r["overrides"]
    lines += ["## Overrides (tracks left unmasked on purpose, and review items dismissed as false alarms)", ""]
    if ov["count"]:
        lines += _md_table([(i.get("track_id", "-"), i.get("label"), i["reason"], i.get("by"), i.get("at"))
                            for i in ov["items"]], ("track", "label", "reason", "by", "at"))
    else:
        lines += ["None.", ""]
    lines += ["## Regions masked", ""]
    reg, tr = r["regions"], r["tracks"]
    lines += [f"{reg['total']} regions in {reg['frames_with_regions']} frames; {tr['total']} tracks; "
              f"{reg['untracked']} regions without a track.", ""]
    lines += _md_table([(lab, reg["by_label"][lab], tr["by_label"][lab]) for lab in reg["by_label"]],
                       ("label", "regions", "tracks"))
    lines += _md_table([(src, reg["by_source"][src], tr["by_source"][src]) for src in reg["by_source"]],
                       ("source", "regions", "tracks holding it"))
    lines += ["## Settings", "", f"Digest `{r['settings_digest']}`.", ""]
    lines += _md_table(list(r["settings"].items()), ("setting", "value"))
    lines += ["## Models", ""]
    models = [(m["name"], m.get("licence"), m["sha256"]) for m in r["models"]]
    lines += _md_table(models, ("model", "licence", "sha256")) if models else ["None.", ""]
    lines += ["## Timings (seconds)", ""]
    lines += _md_table(list(r["timings_s"].items()), ("stage", "seconds"))
    if r.get("extra"):
        lines += ["## Other facts", ""]
        lines += _md_table([(k, json.dumps(v, ensure_ascii=False)) for k, v in r["extra"].items()], ("fact", "value"))
    lines += ["This report holds counts, settings, file names and hashes only: no coordinates, crops or frames.", ""]
    return "\n".join(lines)


def write_report(report: dict, path) -> tuple[Path, Path]:
    """Write ``report`` as JSON at ``path`` and as Markdown beside it (same name, ``.md``).

    Both files are checked by `assert_report_is_safe` first and written atomically (temporary file in the
    same folder, then renamed), so a failure never leaves half a report.

    Returns:
        The JSON path and the Markdown path.
    """
    assert_report_is_safe(report)
    path = Path(path)
    md_path = path.with_suffix(".md")
    if md_path == path:
        raise OutputError(f"report {path.name}: use a .json name (the Markdown twin is written beside it as .md)")
    if not path.parent.is_dir():
        raise OutputError(f"cannot write report {path.name}: folder does not exist")
    write_text_atomic(path, json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    write_text_atomic(md_path, render_markdown(report))
    return path, md_path


def earlier_export(output, input_sha256: str | None) -> dict | None:
    """What the report beside ``output`` (``NAME.report.json``) says of an export made before, when it was made
    from the input with ``input_sha256``; None when there is no such report (or it is unreadable, or from
    another input).

    Returns:
        ``{"created": ISO time, "frames": int, "regions": int, "edits": int, "status": str}``: counts only.
    """
    path = Path(output)
    path = path.with_name(path.name + ".report.json")
    try:
        if not path.is_file():  # (a named pipe there would block the read)
            return None
        report = json.loads(read_bytes_bounded(path, 16 << 20).decode("utf-8"))
        if input_sha256 is None or report["input"]["sha256"] != input_sha256:
            return None
        return {"created": str(report["created"]), "frames": int(report["output"]["frames"]),
                "regions": int(report["regions"]["total"]), "edits": int(report["manual_edits"]),
                "status": str(report["review"]["status"])}
    except (OSError, AnonlabError, ValueError, KeyError, TypeError):
        return None
