"""The case file: track model, edits and undo, strict loading, atomic saves, deterministic rendering."""

from __future__ import annotations

import contextlib
import copy
import json
import multiprocessing
import os
import re
import signal
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings as hsettings, strategies as st

from anonlab.case import Case, Track, default_case_path, render_case, tracks_from_regions
from anonlab.case.storage import CaseChangedElsewhere
from anonlab.errors import AnonlabError
from anonlab.pipeline import Analysis
from anonlab.regions import ANALYST, DETECTOR, EXTENDED, INTERPOLATED, PLATE, TRACKER, Regions
from anonlab.settings import Settings


def fake_analysis(path="clip.mp4", n_frames=40, width=160, height=96) -> Analysis:
    """Three tracks: 1 detected in 0..9 and 20..29 (a gap), 2 with mixed sources, plus loose rows."""
    rows = []
    for f in list(range(0, 10)) + list(range(20, 30)):
        rows.append((f, 7, 0, DETECTOR, 0.9, (10 + f, 10, 30 + f, 34)))
    for f in range(5, 15):
        src = INTERPOLATED if f in (8, 9) else (EXTENDED if f == 14 else TRACKER if f % 2 else DETECTOR)
        rows.append((f, 3, PLATE, src, 0.55, (80, 50 + f * 0.5, 120, 60 + f * 0.5)))
    rows.append((12, -1, 0, DETECTOR, 0.4, (130.3, 5.25, 150.7, 25.125)))
    rows.append((12, -1, 0, DETECTOR, 0.35, (0, 60, 12, 72)))
    rows.append((3, 7, 0, DETECTOR, 0.3, (100, 70, 110, 80)))  # a second row of track 7 in frame 3
    f, tid, lab, src, sc, box = zip(*rows)
    regions = Regions(xyxy=np.asarray(box, np.float32), score=sc, label=lab, track_id=tid, source=src, frame=f)
    return Analysis(path=Path(path), kind="video", n_frames=n_frames, width=width, height=height, fps=25.0,
                    times=np.arange(n_frames) / 25.0, regions=regions, settings=Settings(mask="solid"),
                    models=[{"name": "centerface", "sha256": "ab" * 32}], damaged=[39])


def rows(regions: Regions) -> list[tuple]:
    return sorted(zip(regions.frame.tolist(), np.round(regions.xyxy, 2).tolist().__iter__(),
                      regions.label.tolist(), regions.source.tolist(), np.round(regions.score, 4).tolist()),
                  key=lambda r: (r[0], r[1]))


def blank(n=30, w=160, h=96) -> Case:
    return Case.blank("clip.mp4", n_frames=n, width=w, height=h)


# --- the track model --------------------------------------------------------------------------------------
def test_unedited_case_masks_exactly_the_analysis():
    a = fake_analysis()
    case = Case.from_analysis(a)
    eff = case.effective_regions()
    assert rows(eff) == rows(a.regions)
    assert len(case.tracks) == 5  # 7, 3, two loose rows, the duplicate row
    assert sorted(case.tracks) == [1, 2, 3, 4, 5]
    # sorted by frame then track id; regions_at agrees with effective_regions frame by frame
    assert np.all(np.diff(eff.frame) >= 0)
    for n in range(a.n_frames):
        assert case.regions_at(n) == eff.at_frame(n)


def test_gap_in_analysis_track_stays_open():
    case = Case.from_analysis(fake_analysis())
    t = case.tracks[1]
    assert [f for f in range(40) if t.value(f) is not None] == list(range(0, 10)) + list(range(20, 30))


def test_keyframes_interpolate_linearly():
    case = blank()
    t = case.add_track("face", {0: (0, 0, 10, 10), 10: (20, 10, 40, 30)})
    assert case.tracks[t].value(5)[:4] == pytest.approx((10, 5, 25, 20))
    assert case.tracks[t].value(5)[4] == INTERPOLATED
    assert case.tracks[t].value(11) is None
    assert len(case.effective_regions()) == 11
    assert set(case.effective_regions().source.tolist()) == {ANALYST, INTERPOLATED}


def test_set_keyframe_extends_and_corrects():
    case = blank()
    t = case.add_track("face", {0: (0, 0, 10, 10)})
    case.set_keys(t, {4: (40, 0, 50, 10)})
    assert case.tracks[t].value(2)[:4] == pytest.approx((20, 0, 30, 10))
    case.set_keys(t, {2: (0, 0, 10, 10)}, tool="move")
    assert case.tracks[t].value(1)[:4] == pytest.approx((0, 0, 10, 10))
    assert case.tracks[t].value(3)[:4] == pytest.approx((20, 0, 30, 10))


def test_delete_one_frame_of_an_interpolated_track():
    case = blank()
    t = case.add_track("face", {0: (0, 0, 10, 10), 10: (100, 0, 110, 10)})
    before = {n: case.tracks[t].value(n) for n in range(11)}
    case.delete_frames(t, 5)
    after = {n: case.tracks[t].value(n) for n in range(11)}
    assert after[5] is None
    for n in set(range(11)) - {5}:
        assert after[n][:4] == pytest.approx(before[n][:4])


def test_delete_range_and_track():
    case = Case.from_analysis(fake_analysis())
    case.delete_frames(1, 2, 6)
    assert [f for f in range(12) if case.tracks[1].value(f) is not None] == [0, 1, 6, 7, 8, 9]
    case.delete_track(2)
    assert 2 not in case.tracks
    with pytest.raises(AnonlabError, match="does not exist"):
        case.delete_track(2)
    with pytest.raises(AnonlabError, match="no box"):
        case.delete_frames(1, 12, 15)


def test_split_and_merge():
    case = blank(40)
    t = case.add_track("face", {0: (0, 0, 10, 10), 20: (20, 0, 30, 10)})
    new = case.split(t, 10)
    assert case.tracks[t].span() == (0, 9)
    assert case.tracks[new].span() == (10, 20)
    assert case.tracks[new].value(10)[:4] == pytest.approx((10, 0, 20, 10))
    with pytest.raises(AnonlabError, match="both sides"):
        case.split(t, 0)
    # merging the two fragments back gives the same coverage
    case.merge(t, new)
    assert new not in case.tracks
    assert case.tracks[t].span() == (0, 20)
    assert case.tracks[t].n_visible() == 21


def test_merge_bridges_the_gap_between_fragments_but_keeps_internal_gaps():
    case = blank(60)
    a = case.add_track("face", {0: (0, 0, 10, 10), 4: (4, 0, 14, 10)})
    case.delete_frames(a, 2)  # a: 0, 1, 3, 4 (internal gap at 2)
    b = case.add_track("face", {10: (10, 0, 20, 10), 12: (12, 0, 22, 10)})
    c = case.add_track("face", {3: (50, 50, 60, 60)})  # overlaps a in frame 3
    case.merge(a, b)
    vis = [f for f in range(20) if case.tracks[a].value(f) is not None]
    assert vis == [0, 1, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]
    case.merge(a, c)
    assert case.tracks[a].value(3)[:4] == pytest.approx((3, 0, 60, 60))  # union where both had a box
    assert case.tracks[a].value(3)[4] == ANALYST


def test_exclusion_needs_a_reason_and_is_reported_without_coordinates():
    case = Case.from_analysis(fake_analysis())
    with pytest.raises(AnonlabError, match="reason"):
        case.exclude(1, "  ", by="Ann")
    with pytest.raises(AnonlabError, match="your name"):  # issue 14 item 8: who decided is recorded
        case.exclude(1, "the mayor at a press conference")
    n_before = len(case.effective_regions())
    case.exclude(1, "the mayor at a press conference", by="Ann  Analyst")
    assert len(case.effective_regions()) == n_before - 20
    (ex,) = case.exclusions()
    assert ex["at"]
    assert ({k: v for k, v in ex.items() if k != "at"} == {
        "track": 1, "track_id": 1, "label": "face", "frames": 20, "reason": "the mayor at a press conference",
        "by": "Ann Analyst"})
    assert len(case.regions_at(5, include_excluded=True)) > len(case.regions_at(5))
    case.include(1)
    assert len(case.effective_regions()) == n_before
    with pytest.raises(AnonlabError, match="not excluded"):
        case.include(1)


def test_relabel_and_interpolate():
    case = Case.from_analysis(fake_analysis())
    case.relabel(1, "plate")
    assert case.tracks[1].label == PLATE
    case.interpolate(3, 5, 14)
    t = case.tracks[3]
    assert sorted(f for f in t.keys if t.keys[f] is not None) == [5, 14]
    assert t.value(9)[4] == INTERPOLATED
    with pytest.raises(AnonlabError, match="interpolation needs a box at both ends"):
        case.interpolate(3, 20, 25)


EDITS = [
    ("add_track", lambda c: c.add_track("plate", {3: (1, 2, 30, 40), 9: (5, 5, 40, 40)})),
    ("set", lambda c: c.set_keys(1, {4: (11, 11, 31, 35)})),
    ("set follow", lambda c: c.set_keys(1, {n: (n, 1, n + 20, 30) for n in range(10, 20)}, source="tracker",
                                        tool="follow")),
    ("delete", lambda c: c.delete_frames(1, 3)),
    ("delete range", lambda c: c.delete_frames(3, 6, 9)),
    ("delete_track", lambda c: c.delete_track(2)),
    ("interpolate", lambda c: c.interpolate(3, 5, 14)),
    ("merge", lambda c: c.merge(1, 2)),
    ("split", lambda c: c.split(1, 22)),
    ("exclude", lambda c: c.exclude(2, "consented on camera", by="Ann")),
    ("label", lambda c: c.relabel(3, "face")),
]


@pytest.mark.parametrize("name,edit", EDITS, ids=[e[0] for e in EDITS])
def test_every_edit_undoes_and_redoes_exactly(name, edit):
    case = Case.from_analysis(fake_analysis())
    before = case.effective_regions()
    tracks_before = {t: (v.label, dict(v.keys), v.excluded) for t, v in case.tracks.items()}
    edit(case)
    after = case.effective_regions()
    assert after != before
    assert case.edit_count == 1
    assert case.can_undo
    assert case.undo() is not None
    assert case.effective_regions() == before
    assert {t: (v.label, dict(v.keys), v.excluded) for t, v in case.tracks.items()} == tracks_before
    assert case.can_redo
    assert case.edit_count == 0
    case.redo()
    assert case.effective_regions() == after
    assert case.undo()
    assert case.undo() is None


def test_new_edit_clears_redo_and_ids_are_never_reused():
    case = blank()
    a = case.add_track("face", {0: (0, 0, 10, 10)})
    case.undo()
    b = case.add_track("face", {1: (0, 0, 10, 10)})
    assert b != a
    assert not case.can_redo


# --- review ------------------------------------------------------------------------------------------------
def test_review_status_transitions_and_reopen_on_edit():
    case = blank()
    with pytest.raises(AnonlabError, match="reviewed first"):
        case.set_status("approved", "ana")
    with pytest.raises(AnonlabError, match="reviewer"):
        case.set_status("reviewed", "")
    case.set_status("reviewed", "ana")
    with pytest.raises(AnonlabError, match="another person"):
        case.set_status("approved", "ana", distinct_approver=True)
    case.set_status("approved", "ben")
    assert case.review.status == "approved"
    assert case.review.reviewer == "ben"
    assert case.review.at
    case.decide("gap:1:12", "fixed")
    with pytest.raises(ValueError, match="unknown decision"):
        case.decide("x", "maybe")
    case.override_gate("deadline; checked by hand", "ben")
    case.add_track("face", {0: (0, 0, 10, 10)})
    assert case.review.status == "draft"
    assert case.review.reviewer is None
    assert [h["status"] for h in case.review.history] == ["reviewed", "approved", "draft"]
    again = Case.from_json(case.to_json())
    assert again.review == case.review


def decide_open_cards(case: Case, by: str = "Ana Müller") -> None:
    """Accept every card of the case's review queue nobody decided yet (what a reviewer does before signing)."""
    case.decide([i.id for i in case.review_queue() if i.id not in case.review.decisions], "accepted", by=by)


def test_a_case_is_reviewed_or_approved_only_with_its_cards_decided():
    """A case was approved in the workbench with its cards open, and render-cases published it "signed off"."""
    case = Case.from_analysis(fake_analysis())
    assert case.review_queue()
    with pytest.raises(AnonlabError, match=r"not reviewed: \d+ of \d+ review item\(s\) undecided"):
        case.set_status("reviewed", "Ana")
    assert case.review.status == "draft"
    decide_open_cards(case)
    case.set_status("reviewed", "Ana")
    case.add_track("face", {2: (1, 1, 20, 20)})  # an edit reopens it, with a card of its own
    with pytest.raises(AnonlabError, match="not reviewed"):
        case.set_status("reviewed", "Ana")
    case.override_gate("the new box is ours, checked by eye", "Ana")  # or an override, with its reason
    case.set_status("reviewed", "Ana")
    case.set_status("approved", "Ben")
    assert case.review.status == "approved"


# --- persistence -------------------------------------------------------------------------------------------
def edited_case() -> Case:
    case = Case.from_analysis(fake_analysis())
    case.add_track("plate", {3: (1.234, 2.345, 30.111, 40.999), 9: (5, 5, 40, 40)})
    case.set_keys(1, {4: (11.005, 11, 31, 35)})
    case.split(3, 10)
    case.exclude(1, "public official — mayor «Ÿ»", by="Ana Müller")
    case.decide("track:3", "dismissed", by="Ana Müller")
    decide_open_cards(case)
    case.set_status("reviewed", "Ana Müller")
    return case


def test_round_trip_is_exact(tmp_path):
    case = edited_case()
    p = case.save(tmp_path / "clip.case.json")
    again = Case.load(p)
    assert again.effective_regions() == case.effective_regions()
    assert again.edits == case.edits
    assert again.edit_count == 4
    assert again.review == case.review
    assert again.settings == case.settings
    assert again.models == case.models
    assert again.damaged == [39]
    assert again.to_json().split('"saved"')[0] == case.to_json().split('"saved"')[0]
    # undo works after a reload too
    again.undo()
    assert again.exclusions() == []


def test_case_file_is_private_and_valid_json(tmp_path):
    p = edited_case().save(tmp_path / "c.case.json")
    assert stat.S_IMODE(p.stat().st_mode) == 0o600
    doc = json.loads(p.read_text())
    assert doc["format"] == "anonlab-case"
    assert doc["version"] == 2
    assert doc["analysis"]["tracks"][0]["sources"] == "d" * 20
    assert not [f for f in os.listdir(tmp_path) if f.endswith(".tmp")]


def test_autosave_after_every_change(tmp_path):
    case = blank()
    case.path = tmp_path / "a.case.json"
    case.autosave = True
    t = case.add_track("face", {0: (0, 0, 10, 10)})
    assert Case.load(case.path).edit_count == 1
    case.undo()
    assert Case.load(case.path).edit_count == 0
    case.redo()
    case.exclude(t, "reason", by="Ann")
    assert Case.load(case.path).exclusions()[0]["reason"] == "reason"


def test_autosave_failure_is_reported_not_raised(tmp_path):
    case = blank()
    case.path = tmp_path / "missing-folder" / "a.case.json"
    case.autosave = True
    case.add_track("face", {0: (0, 0, 10, 10)})
    assert case.save_error
    assert "does not exist" in case.save_error


def test_default_case_path(tmp_path):
    assert default_case_path(tmp_path / "street.mp4") == tmp_path / "street.case.json"


def valid_doc() -> dict:
    return json.loads(edited_case().to_json())


def _set(doc, path, value):
    d = doc
    for k in path[:-1]:
        d = d[k]
    d[path[-1]] = value
    return doc


def _del(doc, path):
    d = doc
    for k in path[:-1]:
        d = d[k]
    del d[path[-1]]
    return doc


MALFORMED = [
    ("not an object", lambda d: [1, 2], "not an anonlab case file"),
    ("wrong format", lambda d: _set(d, ["format"], "other"), "not an anonlab case file"),
    ("newer version", lambda d: _set(d, ["version"], 99), "newer anonlab"),
    ("version zero", lambda d: _set(d, ["version"], 0), "version"),
    ("unknown top key", lambda d: _set(d, ["extra"], 1), "unknown field"),
    ("missing edits", lambda d: _del(d, ["edits"]), "missing edits"),
    ("bad sha", lambda d: _set(d, ["input", "sha256"], "xyz"), "input.sha256"),
    ("n_frames zero", lambda d: _set(d, ["input", "n_frames"], 0), "input.n_frames"),
    ("bool as int", lambda d: _set(d, ["input", "width"], True), "input.width"),
    ("bad setting", lambda d: _set(d, ["settings", "mask"], "paint"), "settings"),
    ("unknown setting", lambda d: _set(d, ["settings", "colour"], 1), "settings"),
    ("frame out of range", lambda d: _set(d, ["analysis", "tracks", 0, "frames", 0], 40), "frames"),
    ("frames not increasing", lambda d: _set(d, ["analysis", "tracks", 0, "frames", 1], 0), "increase"),
    ("box no area", lambda d: _set(d, ["analysis", "tracks", 0, "boxes", 0], [5, 5, 5, 9]), "no area"),
    ("box 3 numbers", lambda d: _set(d, ["analysis", "tracks", 0, "boxes", 0], [5, 5, 9]), "4 numbers"),
    ("box string", lambda d: _set(d, ["analysis", "tracks", 0, "boxes", 0], ["1", 2, 3, 4]), "finite number"),
    ("score > 1", lambda d: _set(d, ["analysis", "tracks", 0, "scores", 0], 1.5), "out of range"),
    ("bad source", lambda d: _set(d, ["analysis", "tracks", 0, "sources"], "x" * 20), "source letter"),
    ("lengths differ", lambda d: _set(d, ["analysis", "tracks", 0, "scores"], [0.5]), "equal length"),
    ("duplicate track id", lambda d: _set(d, ["analysis", "tracks", 1, "id"], 1), "share an id"),
    ("bad label", lambda d: _set(d, ["analysis", "tracks", 0, "label"], "dog"), "label"),
    ("bad turn", lambda d: _set(d, ["analysis", "tracks", 0, "turn"], 4), "tracks[0].turn"),
    ("bad drawn turn", lambda d: _set(d, ["edits", 0, "turn"], 7), "edits[0].turn"),
    ("unknown op", lambda d: _set(d, ["edits", 0, "op"], "paint"), "edits[0].op"),
    ("edit on missing track", lambda d: _set(d, ["edits", 1, "track"], 999), "does not exist"),
    ("edit frame range", lambda d: _set(d, ["edits", 0, "keys", 0, 0], 40), "edits[0].keys[0]"),
    ("edit extra field", lambda d: _set(d, ["edits", 0, "colour"], "red"), "unknown field"),
    ("exclude empty reason", lambda d: _set(d, ["edits", 3, "reason"], " "), "must not be empty"),
    ("edit_count wrong", lambda d: _set(d, ["edit_count"], 9), "edit_count"),
    ("bad status", lambda d: _set(d, ["review", "status"], "done"), "review.status"),
    ("approved without reviewer", lambda d: _set(d, ["review", "reviewer"], None), "reviewer"),
    ("bad decision", lambda d: _set(d, ["review", "decisions"], {"a": "ok"}), "review.decisions"),
    ("huge coordinate", lambda d: _set(d, ["edits", 0, "keys", 0, 1], 1e300), "out of range"),
]


@pytest.mark.parametrize("name,mutate,match", MALFORMED, ids=[m[0] for m in MALFORMED])
def test_strict_loader(name, mutate, match, tmp_path):
    doc = mutate(valid_doc())
    p = tmp_path / "bad.case.json"
    p.write_text(json.dumps(doc))
    with pytest.raises(AnonlabError, match=re.escape(match)) as err:
        Case.load(p)
    msg = str(err.value)
    assert msg.startswith("bad.case.json:")
    assert "\n" not in msg
    assert "11.0" not in msg
    assert "30.11" not in msg  # no coordinates in errors


@pytest.mark.parametrize("text,match", [
    ("", "not a valid case file"), ("{", "not a valid case file"), ('{"a": NaN}', "not a valid case file"),
    ('{"format": "anonlab-case", "format": "x"}', "not a valid case file"), ("[" * 100000, "not a valid case file"),
])
def test_loader_rejects_bad_json(text, match):
    with pytest.raises(AnonlabError, match=match):
        Case.from_json(text, name="x.json")


def test_loader_rejects_binary_and_missing(tmp_path):
    (tmp_path / "b.json").write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(AnonlabError, match="UTF-8"):
        Case.load(tmp_path / "b.json")
    with pytest.raises(AnonlabError, match="no such case file"):
        Case.load(tmp_path / "none.json")


def test_loader_refuses_a_file_over_the_size_limit(tmp_path, monkeypatch):
    monkeypatch.setattr("anonlab.case.storage.MAX_CASE_BYTES", 10)
    (tmp_path / "big.json").write_text("{" + " " * 20 + "}")
    with pytest.raises(AnonlabError, match=r"^big\.json: case file too large \(22 bytes\)$"):
        Case.load(tmp_path / "big.json")


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)
_VALID = None


def _paths(doc, prefix=()):
    yield prefix
    if isinstance(doc, dict):
        for k, v in doc.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(doc, list):
        for i, v in enumerate(doc[:3]):
            yield from _paths(v, prefix + (i,))


@hsettings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_fuzz_loader_only_raises_anonlab_error(data):
    global _VALID
    if _VALID is None:
        _VALID = valid_doc()
    doc = copy.deepcopy(_VALID)
    paths = [p for p in _paths(doc) if p]
    for _ in range(data.draw(st.integers(1, 3))):
        path = data.draw(st.sampled_from(paths))
        action = data.draw(st.sampled_from(["set", "del"]))
        try:
            if action == "set":
                _set(doc, list(path), data.draw(json_values))
            else:
                _del(doc, list(path))
        except (KeyError, IndexError, TypeError):
            pass
    try:
        case = Case.from_json(json.dumps(doc), name="fuzz.json")
    except AnonlabError as exc:
        assert "\n" not in str(exc)
        return
    case.effective_regions()  # a case that loads is usable
    Case.from_json(case.to_json())


@hsettings(max_examples=100, deadline=None)
@given(st.one_of(json_values, st.text(max_size=50), st.binary(max_size=50).map(lambda b: b.decode("latin-1"))))
def test_fuzz_loader_random_input(value):
    text = value if isinstance(value, str) else json.dumps(value)
    with pytest.raises(AnonlabError, match=r"r\.json: not a"):
        Case.from_json(text, name="r.json")


# --- concurrency and kills ---------------------------------------------------------------------------------
def _save_many(path: str, seed: int, n: int) -> None:
    case = Case.from_analysis(fake_analysis())
    for i in range(n):
        case.add_track("face", {i % 30: (seed, seed, seed + 10 + i, seed + 10)})
        case.save(path)


def test_concurrent_saves_never_corrupt(tmp_path):
    path = tmp_path / "c.case.json"
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_save_many, args=(str(path), s, 15)) for s in range(3)]
    threads = [threading.Thread(target=_save_many, args=(str(path), 50 + s, 15)) for s in range(2)]
    for p in procs + threads:
        p.start()
    seen = 0
    deadline = time.time() + 60
    while any(p.is_alive() for p in procs) or any(t.is_alive() for t in threads):
        if path.exists():
            Case.load(path)  # every read sees a complete file
            seen += 1
        assert time.time() < deadline
    for p in procs:
        p.join()
        assert p.exitcode == 0
    for t in threads:
        t.join()
    assert Case.load(path).edit_count == 15
    assert seen > 0
    assert not [f for f in os.listdir(tmp_path) if f.endswith(".tmp")]


def test_two_tabs_on_one_case_never_save_over_each_other(tmp_path):
    """A newcomer opened one case in two browser tabs and drew a box in each: both said "saved", the file kept
    only the second, the first tab's mask was gone. Now the second save is refused, said, and nothing lost."""
    path = edited_case().save(tmp_path / "c.case.json")
    tab_a, tab_b = Case.load(path), Case.load(path)
    for tab in (tab_a, tab_b):
        tab.autosave = True
    a = tab_a.add_track("face", {0: (1, 1, 20, 20)})
    assert tab_a.save_error is None
    tracks_b, edits_b, decisions_b = dict(tab_b.tracks), list(tab_b.edits), dict(tab_b.review.decisions)
    with pytest.raises(CaseChangedElsewhere, match="changed by another window"):
        tab_b.add_track("face", {5: (40, 40, 60, 60)})
    assert "changed by another window" in tab_b.save_error
    # tab B shows nothing it could not keep (it showed a "new face track 5" the file never had)
    assert tab_b.tracks == tracks_b and tab_b.edits == edits_b and not tab_b.can_redo
    for refused in (lambda: tab_b.undo(), lambda: tab_b.decide("x:1", "accepted", by="B"),
                    lambda: tab_b.override_gate("a reason", "B")):
        with pytest.raises(CaseChangedElsewhere):
            refused()
    assert tab_b.edits == edits_b and tab_b.review.decisions == decisions_b and tab_b.review.override is None
    on_disk = Case.load(path)
    assert on_disk.edits == tab_a.edits and a in on_disk.tracks  # tab A's box is kept
    tab_a.add_track("plate", {1: (2, 2, 30, 12)})  # tab A goes on saving
    assert tab_a.save_error is None and Case.load(path).edits == tab_a.edits
    # a new case never saved writes over no case file that appeared meanwhile (two tabs on a new clip)
    fresh = blank()
    fresh.path, fresh.autosave = path, True
    with pytest.raises(CaseChangedElsewhere):
        fresh.add_track("face", {0: (1, 1, 9, 9)})
    assert "changed by another window" in fresh.save_error and not fresh.tracks
    assert Case.load(path).edits == tab_a.edits
    # the file changing between the check and the save is still caught at the save (and said)
    tab_a.disk_digest = "not what the file has"
    tab_a._changing = contextlib.nullcontext  # as if the file changed just after the check
    tab_a.add_track("face", {2: (3, 3, 9, 9)})
    assert "changed by another window" in tab_a.save_error
    # saving to a path given on purpose writes as asked
    fresh.save(path)
    assert Case.load(path).edits == fresh.edits


KILL_SCRIPT = r"""
import sys
sys.path.insert(0, {tests!r})
from test_case import fake_analysis
from anonlab.case import Case
case = Case.from_analysis(fake_analysis(n_frames=4000))
for i in range(3000):
    case.set_keys(1, {{i % 4000: (1, 1, 20 + i % 7, 20)}})
    case.save({path!r})
    if i == 0:
        print("saved", flush=True)
"""


def test_kill_during_save_leaves_previous_state(tmp_path):
    path = tmp_path / "k.case.json"
    code = KILL_SCRIPT.format(tests=str(Path(__file__).parent), path=str(path))
    for delay in (0.05, 0.2, 0.45):
        proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE)
        assert proc.stdout.readline().strip() == b"saved"
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        case = Case.load(path)  # the last complete save, never a torn file
        assert case.edit_count >= 1
    case.save(path)  # the next save sweeps temporary files a kill left behind
    assert sorted(os.listdir(tmp_path)) == [".k.case.json.lock", "k.case.json"]


# --- rendering ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    from mediagen import make_clip

    return make_clip(tmp_path_factory.mktemp("case") / "clip.mp4", n_frames=12)


def test_new_case_reads_metadata_and_hash(clip):
    from anonlab.media import sha256_file

    case = Case.new(clip)
    assert (case.input.n_frames, case.input.width, case.input.height, case.input.kind) == (12, 160, 96, "video")
    assert case.input.sha256 == sha256_file(clip)
    assert not case.analysed
    assert len(case.effective_regions()) == 0


def _decode(path):
    from anonlab.media import open_media

    with open_media(path) as r:
        return [f.copy() for _, f in r.frames()]


def test_render_case_respects_edits_and_is_deterministic(clip, tmp_path):
    case = Case.new(clip, Settings(mask="solid", mask_scale=1.0))
    keep = case.add_track("face", {0: (20, 30, 60, 70), 11: (80, 30, 120, 70)})
    gone = case.add_track("face", {0: (100, 40, 140, 80)})
    case.exclude(gone, "the analyst's decision", by="Ann")
    case.allow_without_analysis("manual_only", "Ann", "synthetic clip; every frame checked by eye")
    p = case.save(tmp_path / "clip.case.json")
    info = render_case(Case.load(p), tmp_path / "a.mp4", progress=False)
    assert info["frames"] == 12
    assert info["case"]["regions"] == 12
    assert info["case"]["excluded"][0]["reason"] == "the analyst's decision"
    render_case(Case.load(p), tmp_path / "b.mp4", progress=False)
    a, b, src = _decode(tmp_path / "a.mp4"), _decode(tmp_path / "b.mp4"), _decode(clip)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))  # same case file -> same frames
    assert a[0][35:65, 25:55].max() < 40  # inside the kept box: solid black
    assert a[6][35:65, 55:85].max() < 40  # interpolated halfway
    assert np.abs(a[0][45:75, 105:135].astype(int) - src[0][45:75, 105:135]).mean() < 8  # excluded: unmasked
    case.undo()  # include again: only in memory, the saved file is unchanged
    assert Case.load(p).exclusions()


def test_render_case_checks_input_and_gate(clip, tmp_path):
    import shutil

    copy_ = shutil.copy(clip, tmp_path / "clip.mp4")
    case = Case.new(copy_)
    case.allow_without_analysis("whole_frames", "Ann")
    with pytest.raises(AnonlabError, match="blocked"):
        render_case(case, tmp_path / "o.mp4", progress=False,
                    gate=lambda c: (_ for _ in ()).throw(AnonlabError("export blocked: 3 open review items")))
    assert not (tmp_path / "o.mp4").exists()
    with open(copy_, "ab") as f:
        f.write(b"\0")
    with pytest.raises(AnonlabError, match="sha256 mismatch"):
        render_case(case, tmp_path / "o.mp4", progress=False)


def test_case_finds_input_moved_beside_it(clip, tmp_path):
    import shutil

    case = Case.new(clip)
    moved = tmp_path / "moved"
    moved.mkdir()
    shutil.copy(clip, moved / clip.name)
    case.input.path = str(tmp_path / "elsewhere" / clip.name)
    case.save(moved / "c.case.json")
    assert Case.load(moved / "c.case.json").locate_input() == moved / clip.name


def test_set_analysis_replays_edits_or_refuses():
    case = Case.blank("clip.mp4", n_frames=40, width=160, height=96)
    mine = case.add_track("face", {0: (1, 1, 20, 20)})
    case.set_analysis(fake_analysis())
    assert mine in case.tracks
    assert len(case.tracks) == 6
    assert case.analysed
    case.set_analysis(fake_analysis())  # only the analyst's own edits: replayed on any analysis
    case.delete_track(max(case.tracks))
    case.set_analysis(fake_analysis())  # the same analysis again: the edit still means the same track
    fewer = fake_analysis()
    fewer.regions = fewer.regions[fewer.regions.track_id == -1]
    before = case.effective_regions()
    with pytest.raises(AnonlabError, match="conflicts with the case's edits"):
        case.set_analysis(fewer)
    assert case.effective_regions() == before


def test_tracks_from_regions_drops_boxes_without_area_and_keeps_slivers_as_rendered():
    r = Regions(xyxy=[[1, 1, 1, 5], [0, 0, 4, 4]], track_id=[1, 1], frame=[0, 1])
    tracks = tracks_from_regions(r)
    assert len(tracks) == 1
    assert isinstance(tracks[1], Track)
    assert tracks[1].span() == (1, 1)
    # a sliver keeps its float32 width: pipeline.render masks the pixel column it touches, so must the case
    sliver = tracks_from_regions(Regions(xyxy=[[1, 1, 1.001, 5]], track_id=[1], frame=[0]))
    assert sliver[1].value(0)[2] == pytest.approx(1.001, abs=1e-6)


def test_analysis_boxes_keep_their_float32_values_through_the_file(tmp_path):
    r = Regions(xyxy=[[10.123456, 20.987654, 30.5, 40.25]] * 3, track_id=[1] * 3, frame=[0, 1, 2])
    analysis = fake_analysis()
    analysis.regions = r
    case = Case.from_analysis(analysis)
    want = np.asarray(r.xyxy, np.float32)
    assert np.array_equal(case.effective_regions().xyxy.astype(np.float32), want)
    back = Case.load(case.save(tmp_path / "c.case.json"))
    assert back.effective_regions() == case.effective_regions()  # memory == disk


def test_a_track_found_turned_keeps_its_turn_through_edits_and_the_file(tmp_path):
    # the analysis found the content upside down (Regions.turn 2): the masker extends faces towards the chin
    # by it, so the case must hand it on to every render, after edits and after a save
    analysis = fake_analysis()
    upright_json = Case.from_analysis(analysis).to_json()
    assert '"turn"' not in upright_json  # upright tracks (nearly all) write nothing new
    analysis.regions = analysis.regions.replace(turn=np.where(analysis.regions.track_id == 7, 2, 0))
    case = Case.from_analysis(analysis)
    assert rows(case.effective_regions()) == rows(analysis.regions)
    turned = [t for t in case.tracks.values() if t.turn == 2]
    assert len(turned) == 2  # track 7 and the second row it had in frame 3
    tid = min(t.id for t in turned)
    new = case.split(tid, 25)
    assert case.tracks[new].turn == 2
    eff = case.effective_regions()
    assert set(eff.turn[np.isin(eff.track_id, [t.id for t in turned] + [new])].tolist()) == {2}
    assert set(eff.turn[~np.isin(eff.track_id, [t.id for t in turned] + [new])].tolist()) == {0}
    assert (case.regions_at(25).turn[case.regions_at(25).track_id == new] == 2).all()
    back = Case.load(case.save(tmp_path / "c.case.json"))
    assert back.effective_regions() == eff
    # an analyst's box drawn where the analysis found the content upside down takes that turn, through the file
    drawn = case.add_track("face", {25: (1, 1, 9, 9)})
    assert case.tracks[drawn].turn == 2
    assert Case.load(case.save(tmp_path / "c2.case.json")).tracks[drawn].turn == 2
    assert case.tracks[case.add_track("face", {35: (1, 1, 9, 9)})].turn == 0  # nothing found there: upright


def test_reanalysis_with_the_same_result_keeps_edits_on_analysis_tracks():
    case = Case.from_analysis(fake_analysis())
    mine = case.add_track("face", {0: (1, 1, 20, 20)})
    case.exclude(1, "reason", by="Ann")
    case.set_analysis(fake_analysis())
    assert case.exclusions()[0]["track"] == 1
    assert mine in case.tracks


@pytest.mark.slow
def test_unedited_case_renders_like_the_pipeline(tmp_path):
    """Analysis -> case file -> render_case gives the frames pipeline.render gives for the analysis."""
    from mediagen import make_clip

    from anonlab.pipeline import analyse, render

    def frame(n):
        img = np.full((96, 160, 3), 120, np.uint8)
        img[20:50, 10 + 3 * n : 40 + 3 * n] = (30, 200, 60)
        return img

    clip = make_clip(tmp_path / "c.mp4", n_frames=25, frame_fn=frame)

    def detector(img):  # a stand-in detector: finds the green square, misses it in frames 10-12
        ys, xs = np.nonzero(img[:, :, 1] > 150)
        if not len(xs) or 40 < xs.min() < 50:
            return Regions.empty()
        return Regions(xyxy=[[xs.min() + 0.337, ys.min() + 0.21, xs.max() + 1.113, ys.max() + 0.9]], score=[0.8])

    analysis = analyse(clip, Settings(mask="pixelate"), detector=detector, progress=False)
    render(analysis, tmp_path / "pipeline.mp4", progress=False)
    Case.from_analysis(analysis).save(tmp_path / "c.case.json")
    render_case(Case.load(tmp_path / "c.case.json"), tmp_path / "case.mp4", progress=False)
    a, b = _decode(tmp_path / "pipeline.mp4"), _decode(tmp_path / "case.mp4")
    assert len(a) == len(b) == 25
    assert all(np.array_equal(x, y) for x, y in zip(a, b))


def test_review_edits_for_the_queue():
    case = Case.from_analysis(fake_analysis())
    case.set_keys(1, {4: (11, 11, 31, 35)})
    case.delete_frames(3, 7)
    case.delete_track(2)
    assert case.review_edits() == [1, 3, (7, 3), (3, 2)]


# --- export policy (issue 14 item 1): a never-analysed case exports nothing by itself -----------------------
def test_never_analysed_case_is_refused_whatever_the_gate(clip, tmp_path):
    case = Case.new(clip)
    assert not case.analysed
    with pytest.raises(AnonlabError, match="not analysed yet"):
        render_case(case, tmp_path / "o.mp4", progress=False, gate=lambda c: None)  # an open gate does not help
    assert not (tmp_path / "o.mp4").exists()
    case.override_gate("deadline", "Ann")  # the review gate's override is not this choice
    with pytest.raises(AnonlabError, match="not analysed yet"):
        render_case(case, tmp_path / "o.mp4", progress=False)
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("args, match", [
    (("whole_frames", ""), "your name"),
    (("manual_only", "Ann", "  "), "reason"),
    (("manual_only", "", "checked by eye"), "your name"),
    (("everything", "Ann"), "unknown export choice"),
])
def test_export_without_analysis_needs_a_choice_a_name_and_for_manual_boxes_a_reason(args, match):
    case = blank()
    with pytest.raises(AnonlabError, match=match):
        case.allow_without_analysis(*args)
    assert case.review.without_analysis is None


def test_whole_frames_choice_masks_every_frame_edge_to_edge(clip, tmp_path):
    case = Case.new(clip)
    case.add_track("face", {0: (20, 30, 60, 70)})
    case.allow_without_analysis("whole_frames", "Ann Analyst")
    p = case.save(tmp_path / "c.case.json")
    back = Case.load(p)
    assert back.review.without_analysis["by"] == "Ann Analyst"
    assert back.review.without_analysis["at"]
    info = render_case(back, tmp_path / "o.mp4", progress=False)
    assert info["case"]["whole_frames"] == 12
    assert all(f.max() < 30 for f in _decode(tmp_path / "o.mp4"))  # nothing of the picture is left


def test_manual_only_choice_masks_the_analysts_boxes_only(clip, tmp_path):
    case = Case.new(clip, Settings(mask="solid", mask_scale=1.0))
    case.add_track("face", {0: (20, 30, 60, 70)})
    case.allow_without_analysis("manual_only", "Ann", "a test card: I checked every frame")
    info = render_case(case, tmp_path / "o.mp4", progress=False)
    out, src = _decode(tmp_path / "o.mp4"), _decode(clip)
    assert info["case"]["whole_frames"] == 0
    assert out[0][35:65, 25:55].max() < 40
    assert np.abs(out[5].astype(int) - src[5]).mean() < 8


def test_unmasked_track_without_a_name_is_refused_at_export(clip, tmp_path):
    """A version-1 case file has exclusions without a name: they must be confirmed by someone before export."""
    case = Case.new(clip)
    t = case.add_track("face", {0: (20, 30, 60, 70)})
    case.allow_without_analysis("manual_only", "Ann", "checked")
    case.apply({"op": "exclude", "track": t, "reason": "old file"})  # what a version-1 edit log holds
    with pytest.raises(AnonlabError, match="nobody is named"):
        render_case(case, tmp_path / "o.mp4", progress=False)
    case.exclude(t, "the mayor", by="Ben")
    render_case(case, tmp_path / "o.mp4", progress=False)


def test_actor_is_recorded_with_every_edit_and_decision():
    case = blank()
    case.actor = "Ann"
    t = case.add_track("face", {0: (0, 0, 10, 10)})
    case.decide(["track:1", "track:2"], "accepted")
    case.exclude(t, "consented")
    assert all(op["by"] == "Ann" for op in case.edits)
    assert case.review.decided["track:2"]["by"] == "Ann"
    assert case.exclusions()[0]["by"] == "Ann"
    case.actor = None
    with pytest.raises(AnonlabError, match="name"):
        case.decide("track:3", "dismissed")  # a dismissal leaves something unmasked
    again = Case.from_json(case.to_json())
    assert again.review == case.review


def test_version_1_case_files_are_still_read():
    doc = Case.from_analysis(fake_analysis()).to_dict()
    doc["version"] = 1
    doc["review"]["decisions"] = {"gap:1:12": "accepted"}
    doc["edits"] = [{"op": "exclude", "track": 1, "reason": "old"}]
    doc["edit_count"] = 1
    case = Case.from_dict(doc)
    assert case.review.decisions == {"gap:1:12": "accepted"}
    assert case.exclusions()[0]["by"] is None


def test_edits_that_uncover_found_boxes_are_counted_for_the_report(monkeypatch, tmp_path):
    """A careless drag moved a face's box off the face; the report said "manual edits: 1" and nothing else.
    Frames where an edit left part of a found box unmasked are now counted (counts only, never where)."""
    import anonlab.case.render as case_render

    case = Case.from_analysis(fake_analysis())
    assert case.uncovered_by_edits() == {}
    case.actor = "Ann"
    case.set_keys(1, {4: (60, 10, 80, 34)})  # track 1's face (14, 10, 34, 34) in frame 4, moved off it
    case.set_keys(1, {6: (10, 5, 50, 40)})  # grown around it: uncovers nothing
    assert case.uncovered_by_edits() == {1: 1}
    monkeypatch.setattr(case_render, "sha256_file", lambda p: "0" * 64)
    monkeypatch.setattr(case, "locate_input", lambda: tmp_path / "clip.mp4")
    report = case_render.case_report(case, tmp_path / "o.mp4", {"frames": 40})  # checked safe by make_report
    assert report["extra"]["edits_uncovering_found_objects"].startswith("1 frame(s) of 1 track(s)")
    case.exclude(1, "the mayor, consented")  # left unmasked whole: reported as an exclusion instead
    assert case.uncovered_by_edits() == {}


def test_a_dismissal_says_in_the_report_that_masks_stay():
    """A newcomer dismissed a false plate's card ("nothing to mask here"); its mask stayed, and the report listed
    "review item track:12 dismissed" under regions left unmasked on purpose. The line says what it decided."""
    case = edited_case()
    [row] = case.dismissals()
    assert row["reason"] == "review item track:3 dismissed: nothing to mask there (masks already drawn stay)"
    assert row["by"] == "Ana Müller"
