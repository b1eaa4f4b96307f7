"""The case file's format: its constants, the strict reader's checks, the review record and the JSON writer.

A case file is JSON, ``format = "anonlab-case"``, ``version = 2`` (version 1 files are read too)::

    {"format": "anonlab-case", "version": 2, "anonlab": "0.1.0", "created": ISO, "saved": ISO,
     "input": {"path", "name", "sha256", "size", "kind", "n_frames", "width", "height", "fps"},
     "settings": Settings.to_dict(), "models": [{...}, ...],
     "analysis": null | {"damaged": [frame, ...], "scene_cuts": [frame, ...], "timings": {...}, "tracks": [
         {"id": 1, "label": "face", "frames": [3, 4, ...], "boxes": [[x1, y1, x2, y2], ...],
          "scores": [0.91, ...], "sources": "ddti...",              # one letter per frame: SOURCES[i][0]
          "turn": 2}]},                         # optional: quarter turns that stand it upright (Regions.turn)
     "edits": [{"op": "set", "track": 1, "keys": [[frame, x1, y1, x2, y2]], "source": "analyst",
                "tool": "move", "at": ISO, "by": NAME}, ...],       # "exclude" always names its "by"
     "edit_count": 1,
     "review": {"status": "draft" | "reviewed" | "approved", "reviewer", "at",
                "decisions": {item_id: {"decision": "accepted" | "fixed" | "dismissed", "by", "at"}},
                "override": null | {"reason", "by", "at"}, "history": [{"status", "by", "at", "note"}],
                "risk": {"seed", "frames", "checked"},
                "without_analysis": {"mode": "whole_frames" | "manual_only", "reason", "by", "at"}}}

It is the only artefact anonlab writes that holds region coordinates, so the reader is strict and quotes
none: unknown keys, wrong types, out-of-range frames, boxes without area all raise `AnonlabError` naming the
file and the field (`_Checker`); the edits themselves are checked by `anonlab.case.ops`. The writer puts
one analysis track and one edit per line (``dump_case``), so a diff of two saves reads edit by edit; the
bytes it writes are part of the format (tests compare them), which is why the document is assembled here
and nowhere else. `Case.to_json` and `Case.from_dict` (`anonlab.case.model`) call these helpers in order.
"""

from __future__ import annotations

import json
import math
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Iterable

from anonlab import __version__
from anonlab.case.tracks import Key, Track, _key
from anonlab.errors import AnonlabError
from anonlab.media.facts import InputFacts
from anonlab.regions import LABELS, SOURCES, label_code
from anonlab.settings import Settings

__all__ = [
    "CASE_FORMAT", "CASE_SUFFIX", "CASE_VERSION", "DECISIONS", "MAX_CASE_BYTES", "MAX_COORD", "READ_VERSIONS",
    "Review", "STATUSES", "TOOLS", "WITHOUT_ANALYSIS",
]

CASE_FORMAT = "anonlab-case"
CASE_VERSION = 2
#: Versions the loader reads. 2 added who took each review decision, who left a track unmasked, and the
#: export choice for a never-analysed case (``review.without_analysis``); a version-1 file reads unchanged.
READ_VERSIONS = (1, 2)
CASE_SUFFIX = ".case.json"
STATUSES = ("draft", "reviewed", "approved")
DECISIONS = ("accepted", "fixed", "dismissed")
#: How a never-analysed case may be exported: every frame masked whole, or only the analyst's own boxes
#: (a reason and a name are recorded).
WITHOUT_ANALYSIS = ("whole_frames", "manual_only")
#: The tools a ``set`` edit may name (what the analyst did; the replay does not depend on it).
TOOLS = ("draw", "move", "resize", "keyframe", "follow", "fix", "import")
#: Largest case file the loader reads (a 2-hour video with a crowd stays far below).
MAX_CASE_BYTES = 1 << 30
#: Largest coordinate accepted: far outside any frame, small enough that float32 keeps 1/100 px.
MAX_COORD = 1e5
_SOURCE_LETTERS = "".join(s[0] for s in SOURCES)
assert len(set(_SOURCE_LETTERS)) == len(SOURCES)


def _now() -> str:
    """The time stamp of every record in a case file: UTC, ISO 8601, to the second."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _name(name) -> str:
    """A person's name as recorded: whitespace collapsed, at most 200 characters ('' for none)."""
    return " ".join(str(name or "").split())[:200]


# --- validation helpers ----------------------------------------------------------------------------------
class _Checker:
    """Raises `AnonlabError` naming the case file and the field; never quotes coordinates."""

    def __init__(self, name: str, suffix: str = "; the case file is damaged or was edited by hand") -> None:
        self.name = name
        self.suffix = suffix

    def fail(self, where: str, what: str):
        raise AnonlabError(f"{self.name}: {where}: {what}{self.suffix}")

    def obj(self, v, where: str, required: Iterable[str], optional: Iterable[str] = ()) -> dict:
        if not isinstance(v, dict):
            self.fail(where, "expected an object")
        required, optional = set(required), set(optional)
        missing = sorted(required - set(v))
        if missing:
            self.fail(where, f"missing {', '.join(missing)}")
        unknown = sorted(set(v) - required - optional)
        if unknown:
            self.fail(where, f"unknown field(s) {', '.join(map(str, unknown))[:200]}")
        return v

    def int_(self, v, where: str, lo: int | None = None, hi: int | None = None) -> int:
        if isinstance(v, bool) or not isinstance(v, int):
            self.fail(where, "expected an integer")
        if (lo is not None and v < lo) or (hi is not None and v > hi):
            self.fail(where, "integer out of range")
        return v

    def num(self, v, where: str, lo: float | None = None, hi: float | None = None) -> float:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            self.fail(where, "expected a finite number")
        if (lo is not None and v < lo) or (hi is not None and v > hi):
            self.fail(where, "number out of range")
        return float(v)

    def str_(self, v, where: str, choices: Iterable[str] | None = None, nonempty: bool = False,
             maxlen: int = 10_000) -> str:
        if not isinstance(v, str):
            self.fail(where, "expected a string")
        if choices is not None and v not in tuple(choices):
            self.fail(where, f"expected one of {', '.join(choices)}")
        if nonempty and not v.strip():
            self.fail(where, "must not be empty")
        if len(v) > maxlen:
            self.fail(where, "string too long")
        return v

    def opt_str(self, v, where: str) -> str | None:
        return None if v is None else self.str_(v, where)

    def list_(self, v, where: str, maxlen: int | None = None) -> list:
        if not isinstance(v, list):
            self.fail(where, "expected a list")
        if maxlen is not None and len(v) > maxlen:
            self.fail(where, "list too long")
        return v

    def box(self, v, where: str) -> tuple[float, float, float, float]:
        self.list_(v, where)
        if len(v) != 4:
            self.fail(where, "a box is 4 numbers x1, y1, x2, y2")
        x1, y1, x2, y2 = (self.num(c, where, -MAX_COORD, MAX_COORD) for c in v)
        if not (x2 > x1 and y2 > y1):
            self.fail(where, "box has no area (needs x1 < x2 and y1 < y2)")
        return x1, y1, x2, y2

    def frame_box(self, v, where: str, n_frames: int) -> tuple[int, tuple]:
        self.list_(v, where)
        if len(v) != 5:
            self.fail(where, "a keyframe is [frame, x1, y1, x2, y2]")
        return self.int_(v[0], where, 0, n_frames - 1), self.box(v[1:], where)


def _reject_constant(name: str):
    raise ValueError(f"{name} is not valid JSON")


def _no_duplicates(pairs):
    out = {}
    for k, v in pairs:
        if k in out:
            raise ValueError(f"duplicate key {k[:40]!r}")
        out[k] = v
    return out


def parse_json(text: str, name: str) -> Any:
    """The case file's JSON, refusing NaN/Infinity and duplicate keys; `AnonlabError` naming ``name``."""
    try:
        return json.loads(text, parse_constant=_reject_constant, object_pairs_hook=_no_duplicates)
    except (ValueError, RecursionError) as exc:
        msg = str(exc).split(":")[0] if isinstance(exc, json.JSONDecodeError) else type(exc).__name__
        raise AnonlabError(f"{name}: not a valid case file (JSON: {msg[:80]})") from None


# --- reading, part by part (in the order `Case.from_dict` checks them) ----------------------------------
def check_header(data: Any, c: _Checker) -> None:
    """The format tag, the version (a newer one asks for an upgrade) and the top-level fields."""
    if not isinstance(data, dict) or data.get("format") != CASE_FORMAT:
        raise AnonlabError(f"{c.name}: not an anonlab case file")
    version = data.get("version")
    if isinstance(version, int) and not isinstance(version, bool) and version > CASE_VERSION:
        raise AnonlabError(f"{c.name}: case file version {version} was written by a newer anonlab "
                           f"(this one reads version {CASE_VERSION}); upgrade anonlab")
    c.obj(data, "case", ("format", "version", "input", "settings", "analysis", "edits", "review"),
          ("anonlab", "created", "saved", "models", "edit_count"))
    c.int_(version, "version", READ_VERSIONS[0], CASE_VERSION)
    for k in ("anonlab", "created", "saved"):
        if k in data:
            c.str_(data[k], k, maxlen=64)


def read_input(inp: Any, c: _Checker) -> InputFacts:
    """The ``input`` object."""
    inp = c.obj(inp, "input", ("path", "name", "kind", "n_frames", "width", "height", "fps"), ("sha256", "size"))
    sha = inp.get("sha256")
    if sha is not None and (not isinstance(sha, str) or len(sha) != 64
                            or any(ch not in "0123456789abcdef" for ch in sha)):
        c.fail("input.sha256", "expected 64 lowercase hex digits")
    size = inp.get("size")
    if size is not None:
        c.int_(size, "input.size", 0)
    return InputFacts(
        c.str_(inp["path"], "input.path", nonempty=True), c.str_(inp["name"], "input.name", nonempty=True),
        sha, size, c.str_(inp["kind"], "input.kind", ("photo", "video")),
        c.int_(inp["n_frames"], "input.n_frames", 1, 100_000_000), c.int_(inp["width"], "input.width", 1, 1 << 16),
        c.int_(inp["height"], "input.height", 1, 1 << 16), c.num(inp["fps"], "input.fps", 0, 10_000),
    )


def read_settings(settings_d: Any, c: _Checker) -> Settings:
    """The ``settings`` object (`Settings.from_dict`'s own checks, reported under the case file's name)."""
    if not isinstance(settings_d, dict):
        c.fail("settings", "expected an object")
    try:
        return Settings.from_dict(settings_d)
    except AnonlabError as exc:
        raise AnonlabError(f"{c.name}: settings: {exc}") from None
    except (TypeError, ValueError):
        c.fail("settings", "invalid values")


def read_models(models: Any, c: _Checker) -> list:
    """The ``models`` list (records of the models the analysis used)."""
    models = c.list_(models, "models")
    for i, m in enumerate(models):
        if not isinstance(m, dict):
            c.fail(f"models[{i}]", "expected an object")
    return models


def read_analysis(analysis: Any, c: _Checker, n: int) -> tuple[dict[int, Track], list[int], list[int], dict]:
    """The ``analysis`` object of a case of ``n`` frames: ``(tracks, damaged, scene_cuts, timings)``.

    None (never analysed) gives no tracks. Each track's frames become keyframes with their float32 boxes,
    and an outside marker after each gap, exactly as `tracks_from_regions` built them before the save.
    """
    base: dict[int, Track] = {}
    damaged: list[int] = []
    scene_cuts: list[int] = []
    timings: dict = {}
    if analysis is None:
        return base, damaged, scene_cuts, timings
    c.obj(analysis, "analysis", ("tracks",), ("damaged", "scene_cuts", "timings"))
    scene_cuts = [c.int_(f, "analysis.scene_cuts", 0, n - 1)
                  for f in c.list_(analysis.get("scene_cuts", []), "analysis.scene_cuts")]
    damaged = [c.int_(d, "analysis.damaged", 0, n - 1) for d in c.list_(analysis.get("damaged", []),
                                                                      "analysis.damaged")]
    timings = analysis.get("timings", {})
    if not isinstance(timings, dict):
        c.fail("analysis.timings", "expected an object")
    for i, tr in enumerate(c.list_(analysis["tracks"], "analysis.tracks")):
        where = f"analysis.tracks[{i}]"
        c.obj(tr, where, ("id", "label", "frames", "boxes", "scores", "sources"), ("turn",))
        tid = c.int_(tr["id"], f"{where}.id", 0, 2**62)
        if tid in base:
            c.fail(f"{where}.id", "two tracks share an id")
        label = label_code(c.str_(tr["label"], f"{where}.label", LABELS))
        frames = c.list_(tr["frames"], f"{where}.frames")
        boxes = c.list_(tr["boxes"], f"{where}.boxes")
        scores = c.list_(tr["scores"], f"{where}.scores")
        sources = c.str_(tr["sources"], f"{where}.sources", maxlen=100_000_000)
        if not frames or not (len(frames) == len(boxes) == len(scores) == len(sources)):
            c.fail(where, "frames, boxes, scores and sources must be non-empty and of equal length")
        keys: dict[int, Key | None] = {}
        prev = -1
        for j, f in enumerate(frames):
            c.int_(f, f"{where}.frames[{j}]", 0, n - 1)
            if f <= prev:
                c.fail(f"{where}.frames", "frames must increase")
            box = c.box(boxes[j], f"{where}.boxes[{j}]")
            score = c.num(scores[j], f"{where}.scores[{j}]", 0.0, 1.0)
            src = _SOURCE_LETTERS.find(sources[j])
            if src < 0:
                c.fail(f"{where}.sources", f"unknown source letter (expected one of {_SOURCE_LETTERS})")
            k = _key(box, src, score, exact=True)
            if not (k.x2 > k.x1 and k.y2 > k.y1):
                c.fail(f"{where}.boxes[{j}]", "box has no area")
            if prev >= 0 and f > prev + 1:
                keys[prev + 1] = None
            keys[f] = k
            prev = f
        base[tid] = Track(tid, label, keys, turn=c.int_(tr.get("turn", 0), f"{where}.turn", 0, 3))
    return base, damaged, scene_cuts, timings


# --- writing ---------------------------------------------------------------------------------------------
def analysis_tracks_json(tracks: dict[int, Track]) -> str:
    """The analysis' ``tracks`` list as JSON text: one compact line per track, by id (visible keyframes only)."""
    lines = []
    for tid in sorted(tracks):
        t = tracks[tid]
        vis = [(f, k) for f, k in ((f, t.keys[f]) for f in t.frames) if k is not None]
        lines.append(json.dumps({
            "id": tid, "label": LABELS[t.label], "frames": [f for f, _ in vis],
            "boxes": [list(k.box) for _, k in vis], "scores": [k.score for _, k in vis],
            "sources": "".join(_SOURCE_LETTERS[k.source] for _, k in vis),
            **({"turn": t.turn} if t.turn else {}),  # only for shots found turned: other files keep their bytes
        }, separators=(",", ":")))
    return "[\n" + ",\n".join(lines) + "\n]" if lines else "[]"


def dump_case(*, created: str, input: dict, settings: dict, models: list, analysis: dict | None,
              tracks_json: str | None, edits: list[dict], review: dict) -> str:
    """The case file's text. ``analysis`` is None (never analysed) or its ``damaged``, ``scene_cuts`` and
    ``timings``; ``tracks_json`` is `analysis_tracks_json`'s text for it. Stamps ``saved`` and the version."""
    token = uuid.uuid4().hex
    doc = {
        "format": CASE_FORMAT, "version": CASE_VERSION, "anonlab": __version__, "created": created,
        "saved": _now(), "input": input, "settings": settings, "models": models,
        "analysis": None if analysis is None else {**analysis, "tracks": f"@T{token}"},
        "edits": f"@E{token}", "edit_count": len(edits), "review": review,
    }
    text = json.dumps(doc, indent=1, ensure_ascii=False, allow_nan=False)
    edits_json = "[\n" + ",\n".join(json.dumps(op, separators=(",", ":"), ensure_ascii=False)
                                     for op in edits) + "\n]" if edits else "[]"
    if analysis is not None:
        text = text.replace(f'"@T{token}"', tracks_json, 1)
    return text.replace(f'"@E{token}"', edits_json, 1) + "\n"


# --- review state -----------------------------------------------------------------------------------------
@dataclass
class Review:
    """Where the case stands in review (the review queue and export gate keep their state here)."""

    status: str = "draft"
    reviewer: str | None = None
    at: str | None = None
    decisions: dict[str, str] = field(default_factory=dict)
    override: dict | None = None
    history: list[dict] = field(default_factory=list)
    #: The residual-risk check: ``{"seed", "frames": [sampled frames], "checked": {"frame": misses}}``.
    risk: dict | None = None
    #: Who took each decision and when: ``{item_id: {"by": name | None, "at": ISO | None}}``.
    decided: dict[str, dict] = field(default_factory=dict)
    #: How a case that was never analysed may be exported (`Case.allow_without_analysis`):
    #: ``{"mode": "whole_frames" | "manual_only", "reason", "by", "at"}``, or None (it may not).
    without_analysis: dict | None = None

    def to_dict(self) -> dict:
        d = {"status": self.status, "reviewer": self.reviewer, "at": self.at,
             "decisions": {k: {"decision": v, **{f: w for f, w in self.decided.get(k, {}).items() if w}}
                           for k, v in self.decisions.items()},
             "override": None if self.override is None else dict(self.override),
             "history": [dict(h) for h in self.history]}
        if self.risk is not None:
            d["risk"] = {"seed": self.risk["seed"], "frames": list(self.risk["frames"]),
                         "checked": dict(self.risk["checked"])}
        if self.without_analysis is not None:
            d["without_analysis"] = dict(self.without_analysis)
        return d

    @classmethod
    def from_dict(cls, d, c: _Checker) -> "Review":
        c.obj(d, "review", ("status",), ("reviewer", "at", "decisions", "override", "history", "risk",
                                          "without_analysis"))
        status = c.str_(d["status"], "review.status", STATUSES)
        reviewer = c.opt_str(d.get("reviewer"), "review.reviewer")
        at = c.opt_str(d.get("at"), "review.at")
        raw = d.get("decisions", {})
        c.obj(raw, "review.decisions", (), raw.keys() if isinstance(raw, dict) else ())
        decisions: dict[str, str] = {}
        decided: dict[str, dict] = {}
        for k, v in raw.items():
            if isinstance(v, str):  # version 1: the decision alone
                decisions[k] = c.str_(v, "review.decisions", DECISIONS)
                continue
            c.obj(v, "review.decisions", ("decision",), ("by", "at"))
            decisions[k] = c.str_(v["decision"], "review.decisions", DECISIONS)
            decided[k] = {"by": c.opt_str(v.get("by"), "review.decisions.by"),
                          "at": c.opt_str(v.get("at"), "review.decisions.at")}
        without = d.get("without_analysis")
        if without is not None:
            c.obj(without, "review.without_analysis", ("mode", "by", "at"), ("reason",))
            c.str_(without["mode"], "review.without_analysis.mode", WITHOUT_ANALYSIS)
            c.str_(without["by"], "review.without_analysis.by", nonempty=True, maxlen=200)
            c.str_(without["at"], "review.without_analysis.at", maxlen=64)
            if without["mode"] == "manual_only":
                c.str_(without.get("reason"), "review.without_analysis.reason", nonempty=True, maxlen=2000)
        override = d.get("override")
        if override is not None:
            c.obj(override, "review.override", ("reason", "by", "at"))
            c.str_(override["reason"], "review.override.reason", nonempty=True)
            c.str_(override["by"], "review.override.by", nonempty=True)
            c.str_(override["at"], "review.override.at")
        history = c.list_(d.get("history", []), "review.history")
        for i, h in enumerate(history):
            c.obj(h, f"review.history[{i}]", ("status", "at"), ("by", "note"))
            c.str_(h["status"], f"review.history[{i}].status", STATUSES)
            c.str_(h["at"], f"review.history[{i}].at")
            c.opt_str(h.get("by"), f"review.history[{i}].by")
            c.opt_str(h.get("note"), f"review.history[{i}].note")
        if status != "draft" and not reviewer:
            c.fail("review.reviewer", f"a {status} case names its reviewer")
        risk = d.get("risk")
        if risk is not None:
            c.obj(risk, "review.risk", ("seed", "frames", "checked"))
            seed = c.int_(risk["seed"], "review.risk.seed", 0)
            frames = [c.int_(f, "review.risk.frames", 0) for f in c.list_(risk["frames"], "review.risk.frames")]
            checked = risk["checked"]
            c.obj(checked, "review.risk.checked", (), checked.keys() if isinstance(checked, dict) else ())
            checked = {str(c.int_(int(k) if str(k).isdigit() else -1, "review.risk.checked", 0)):
                       c.int_(v, "review.risk.checked", 0) for k, v in checked.items()}
            risk = {"seed": seed, "frames": frames, "checked": checked}
        return cls(status, reviewer, at, decisions, None if override is None else dict(override),
                   [dict(h) for h in history], risk, decided, None if without is None else dict(without))
