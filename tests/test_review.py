"""The review step: queue, disagreement check, export gate, statuses, red team, sampling and the risk bound."""

import json
import logging
import math
from datetime import datetime, timezone
from fractions import Fraction

import numpy as np
import pytest

from anonlab.errors import AnonlabError
from anonlab.privacy import looks_like_coordinates
from anonlab.regions import ANALYST, DETECTOR, FACE, INTERPOLATED, PLATE, Regions
from anonlab.review import (PRIORITY, ExportBlocked, Finding, ReviewItem, _merge_detections, advance_status,
                            binomial_upper, build_queue, decisions_needed, event_count, export_allowed,
                            find_disagreements, findings_to_items, gate_summary, group_findings, make_override,
                            new_review_state, poisson_upper, rank_findings, red_team, report_review_fields,
                            require_export_allowed, review_pages, risk_bound, sample_frames)
from anonlab.settings import Settings
from anonlab.track.temporal import apply_temporal_safety

# Distinctive coordinates: no reason, summary or log line may contain them.
X1, Y1, X2, Y2 = 777.25, 555.5, 888.75, 666.5


def track(tid, frames, *, score=0.9, source=DETECTOR, label=FACE, box=(X1, Y1, X2, Y2)):
    frames = list(frames)
    return Regions(xyxy=[box] * len(frames), score=[score] * len(frames), label=[label] * len(frames),
                   track_id=[tid] * len(frames), source=[source] * len(frames), frame=frames)


def ids(queue):
    return {i.id for i in queue}


def no_coordinates(text: str) -> bool:
    return not any(s in text for s in ("777", "555", "888", "666")) and not looks_like_coordinates(text)


# --- queue: one decision per track, not per event (issue 14) --------------------------------------------

def card(queue, tid):
    return next(i for i in queue if i.track_id == tid and i.id == f"track:{tid}")


def test_removed_detection_inside_a_track_is_a_gap_flag_on_its_card():
    full = track(1, range(40))
    planted = full[full.frame != 17]                       # the detector blinked at frame 17
    regions = apply_temporal_safety(planted, 40, Settings())
    assert INTERPOLATED in regions.source.tolist()
    queue = build_queue(regions, 40)
    assert [i.id for i in queue] == ["track:1"]            # one decision for the whole track
    gap = next(f for f in queue[0].flags if f.kind == "gap")
    assert (gap.first, gap.last, gap.routine) == (17, 17, True)
    assert "1 frames" in gap.reason
    assert 17 in queue[0].frames                           # the flagged frame is one click away (filmstrip)
    assert queue[0].routine
    assert queue[0].kind == "track"   # short guessed run, masked throughout: a page item
    # the unplanted track raises no gap
    assert not card(build_queue(apply_temporal_safety(full, 40, Settings()), 40), 1).flags


def test_a_found_box_the_analyst_changed_is_a_decision_of_its_own():
    """A newcomer's careless drag moved a face's mask off the face in one frame; the track's card said "analyst
    boxes", was routine, and a page of routine cards accepted it. A found box changed by hand is its own card."""
    found = track(1, range(40))
    found.source[found.frame == 20] = ANALYST
    item = card(build_queue(found, 40), 1)
    assert not item.routine and item.kind == "edited"
    assert 20 in item.frames and "changed the found boxes" in item.reason
    drawn = track(2, range(10, 20)).replace(source=ANALYST)  # a track the analyst drew alone: routine
    assert card(build_queue(drawn, 40), 2).routine


def test_a_long_guessed_run_is_a_decision_of_its_own():
    regions = apply_temporal_safety(Regions.merge([track(1, range(0, 10)), track(1, range(18, 40))]), 40,
                                    Settings(max_gap=30))
    (item,) = build_queue(regions, 40)
    assert item.kind == "gap"
    assert not item.routine
    assert item.frame == 10


def test_unfilled_hole_makes_the_card_urgent():
    regions = Regions.merge([track(4, range(0, 10)), track(4, range(25, 40)), track(5, range(0, 40))])
    queue = build_queue(regions, 40)
    assert queue[0].id == "track:4"
    assert queue[0].kind == "unmasked_gap"
    assert queue[0].frame == 10
    assert not queue[0].routine
    assert "15 frames" in queue[0].reason
    assert queue[-1].id == "track:5"
    assert queue[-1].routine


def test_track_flags_short_edits_starts_ends_low_scores():
    regions = Regions.merge([
        track(1, range(0, 50)),                            # long, from frame 0 to the end: nothing to flag
        track(2, range(20, 23)),                           # 3 frames: short
        track(3, range(5, 30), score=0.3),                 # low score throughout
        track(5, range(30, 36), source=ANALYST),           # drawn by the analyst
    ])
    queue = build_queue(regions, 50, edited=[(44, 9), 1], short_track=5, low_score=0.5)
    kinds = {i.id: [f.kind for f in i.flags] for i in queue}
    assert kinds["track:1"] == ["edited"]
    assert sorted(kinds["track:2"]) == ["short_track", "track_end", "track_start"]
    assert sorted(kinds["track:3"]) == ["low_score", "track_end", "track_start"]
    assert sorted(kinds["track:5"]) == ["edited", "track_end", "track_start"]  # analyst tracks: no short flag
    assert [f for f in card(queue, 3).flags if f.kind == "low_score"][0].first == 5  # one flag per run
    deleted = next(i for i in queue if i.kind == "deleted")
    assert deleted.id == "deleted:44:9"
    assert not deleted.routine  # a deleted track: its mask is gone
    assert all(i.routine for i in queue if i.id.startswith("track:"))
    assert all(no_coordinates(i.reason) and all(no_coordinates(f.reason) for f in i.flags) for i in queue)
    # after temporal safety the analyst's track gains extended rows: still an edit, not a short track
    safe = build_queue(apply_temporal_safety(regions, 50, Settings()), 50)
    assert "short_track" not in [f.kind for f in card(safe, 5).flags]


def test_deleted_box_on_a_track_makes_its_card_a_decision():
    queue = build_queue(track(2, range(0, 30)), 30, edited=[(12, 2), 2])
    (item,) = queue
    assert item.kind == "deleted"
    assert not item.routine
    assert 12 in item.frames


def test_excluded_tracks_and_an_empty_analysis_are_looked_at():
    left = track(7, range(3, 9))
    queue = build_queue(track(1, range(0, 20)), 20, excluded={7: left})
    assert card(queue, 7).kind == "excluded"
    assert not card(queue, 7).routine
    assert [i.kind for i in build_queue(Regions.empty(), 20, analysed=True)] == ["nothing_found"]
    assert build_queue(Regions.empty(), 20) == []


def test_photo_faces_are_routine_cards_without_starts_or_ends():
    faces = Regions.merge([track(t, [0], score=0.3 if t == 3 else 0.9) for t in range(1, 57)])
    queue = build_queue(faces, 1)
    assert len(queue) == 56
    assert all(i.routine for i in queue)
    assert not any(f.kind in ("track_start", "track_end", "short_track") for i in queue for f in i.flags)
    pages = review_pages(queue, size=12)
    assert [len(p) for p in pages] == [12, 12, 12, 12, 8]
    assert pages[0][0].track_id == 3  # low score first
    assert decisions_needed(queue, page_size=12) == 5
    assert event_count(queue) == 56


def test_decisions_scale_with_tracks_not_events():
    # 40 tracks of a street clip: each starts and ends inside the clip, half with a low-score run
    parts = [apply_temporal_safety(track(t, [f for f in range(5 + t, 60 + t) if f % 7], score=0.4 if t % 2 else 0.9),
                                   120, Settings()) for t in range(1, 41)]
    queue = build_queue(Regions.merge(parts), 120, scene_cuts=[50])
    assert event_count(queue) >= 3 * 41
    assert decisions_needed(queue) == 1 + math.ceil(40 / 12)
    decided = {i.id: "accepted" for p in review_pages(queue) for i in p}
    assert [i.kind for i in queue if i.id not in decided] == ["scene_cut"]


def test_disagreements_scene_cuts_and_findings_become_items():
    regions = track(1, range(0, 30))
    finding = Finding(frame=12, kind="exposed", label="face", score=0.31, detectors=("yunet",), coverage=0.0,
                      box=(X1, Y1, X2, Y2))
    queue = build_queue(regions, 30, scene_cuts=[8, 99], disagreement_frames=[3, 3, 21], findings=[finding])
    got = ids(queue)
    assert {"disagreement:3:-1", "disagreement:21:-1", "scene_cut:8:-1", "exposed:12:-1"} <= got
    assert "scene_cut:99:-1" not in got                    # outside the video
    assert queue[0].id == "exposed:12:-1"
    assert queue[0].priority == PRIORITY["exposed"]
    assert all(no_coordinates(i.reason) for i in queue)


def test_queue_ids_are_stable_unique_and_sorted():
    regions = apply_temporal_safety(Regions.merge([track(1, [0, 1, 2, 5, 6, 7]), track(2, [10, 11])]), 20, Settings())
    a = build_queue(regions, 20, scene_cuts=[10], disagreement_frames=[4])
    b = build_queue(regions.copy(), 20, scene_cuts=[10], disagreement_frames=[4])
    assert [i.id for i in a] == [i.id for i in b]
    assert len(ids(a)) == len(a)
    assert [i.priority for i in a] == sorted((i.priority for i in a), reverse=True)
    assert all(i.id == (f"track:{i.track_id}" if i.track_id >= 0 else f"{i.kind}:{i.frame}:-1") for i in a)
    assert all(ReviewItem.from_dict(i.to_dict()) == i for i in a)


def test_untracked_photo_regions():
    photo = Regions(xyxy=[[X1, Y1, X2, Y2]] * 3, score=[0.2, 0.9, 1.0], source=[DETECTOR, DETECTOR, ANALYST])
    assert ids(build_queue(photo, 1)) == {"low_score:0:-1", "edited:0:-1"}


# --- red-team findings an analyst can act on (issue 15) -----------------------------------------------------

def one_frame(n, label="plate", score=0.25, kind="exposed", box=(100, 100, 140, 120), sure=False, detectors=("plates",)):
    return Finding(n, kind, label, score, detectors, 0.0 if kind == "exposed" else 0.9, box=box, sure=sure,
                   strength=score / 0.4)


def test_repeated_low_score_noise_is_one_doubtful_finding_and_a_real_exposure_stands_out():
    # an office clip: one false plate on a poster, found frame after frame at a low score...
    noise = [one_frame(n, score=0.22 + 0.01 * (n % 5), box=(100 + n % 3, 100, 140 + n % 3, 120)) for n in range(241)]
    # ... and a face half hidden behind another person, bare in its first frames, found at 0.49 by one detector
    face = [one_frame(n, "face", 0.49 if n == 3 else 0.4, box=(300 + n, 50, 340 + n, 100), sure=True,
                      detectors=("centerface",)) for n in range(0, 6)]
    found = rank_findings(group_findings(noise + face, max_gap=3))
    assert len(found) == 2
    real, junk = found
    assert (real.label, real.kind, real.sure, real.frame, real.last, real.best) == ("face", "exposed", True, 0, 5, 3)
    assert real.score == pytest.approx(0.49)
    assert real.n_frames == 6
    assert (junk.label, junk.sure, junk.frame, junk.last, junk.n_frames) == ("plate", False, 0, 240, 241)
    assert "doubtful" in junk.summary()
    assert "frames 0-240" in junk.summary()
    items = findings_to_items(found)
    assert [i.kind for i in items] == ["exposed", "doubtful"]
    assert items[0].id == "exposed:0:-1"
    assert 3 in items[0].frames
    assert {0, 240} <= set(items[1].frames)  # filmstrip: first, best, last frames
    assert all(no_coordinates(i.reason) for i in items)


def test_two_objects_stay_apart_and_a_gap_splits_a_finding():
    a = [one_frame(n, box=(0, 0, 40, 20)) for n in (0, 1, 2)]
    b = [one_frame(n, box=(200, 0, 240, 20)) for n in (0, 1, 2)]
    later = [one_frame(n, box=(0, 0, 40, 20)) for n in (20, 21)]
    found = group_findings(a + b + later, max_gap=3)
    assert sorted((f.frame, f.last) for f in found) == [(0, 2), (0, 2), (20, 21)]
    items = findings_to_items(found)
    assert len({i.id for i in items}) == 3                 # two findings from frame 0: distinct ids


def test_a_finding_is_sure_at_the_analysis_threshold_or_with_two_detectors():
    parts = [("plates", Regions(xyxy=[[0, 0, 40, 20]], score=[0.3], label=[PLATE]))]
    covered = np.zeros((50, 50), bool)
    (f,) = _merge_detections(0, parts, covered, 0.8, 0.3, {"plates": 0.4})
    assert not f.sure
    assert f.strength == pytest.approx(0.75)
    (f,) = _merge_detections(0, parts, covered, 0.8, 0.3, {"plates": 0.25})
    assert f.sure
    two = [("centerface", Regions(xyxy=[[0, 0, 40, 40]], score=[0.12])),
           ("yunet", Regions(xyxy=[[2, 2, 40, 40]], score=[0.3]))]
    (f,) = _merge_detections(0, two, covered, 0.8, 0.3, {"centerface": 0.2, "yunet": 0.6})
    assert f.sure
    assert f.detectors == ("centerface", "yunet")


# --- disagreement check -------------------------------------------------------------------------------

class FakeReader:
    def get(self, n):
        return np.full((40, 60, 3), n, np.uint8)


def fake_detector(boxes_by_frame, name):
    def detect(frame):
        n = int(frame[0, 0, 0])
        boxes = boxes_by_frame.get(n, [])
        return Regions(xyxy=np.array(boxes, np.float32).reshape(-1, 4), score=[0.8] * len(boxes))
    detect.name = name
    return detect


def test_find_disagreements():
    a = fake_detector({2: [[10, 10, 20, 22]], 5: [[30, 5, 40, 17]], 7: [[1, 1, 9, 9]]}, "centerface")
    b = fake_detector({2: [[9, 8, 21, 24]], 6: [[40, 20, 50, 30]]}, "yunet")   # frame 2: same face, larger box
    frames = range(10)
    assert find_disagreements(FakeReader(), [a, b], frames) == [5, 6, 7]
    masked = Regions(xyxy=[[28, 3, 42, 19], [38, 18, 52, 32]], frame=[5, 6], track_id=[1, 2])
    assert find_disagreements(FakeReader(), [a, b], frames, regions=masked) == [7]
    assert find_disagreements(FakeReader(), [a, b], [2]) == []                # agreement on a sampled frame


# --- export gate ----------------------------------------------------------------------------------------

@pytest.fixture
def queue():
    return build_queue(apply_temporal_safety(track(1, [0, 1, 2, 6, 7, 8, 9, 10]), 20, Settings()), 20,
                       disagreement_frames=[15], scene_cuts=[12])


def test_export_blocked_until_every_item_is_decided(queue):
    assert len(queue) >= 3
    ok, why = export_allowed(queue, {})
    assert not ok
    assert f"{len(queue)} of {len(queue)}" in why
    assert "override" in why
    decisions = {i.id: "accepted" for i in queue[:-1]}
    ok, why = export_allowed(queue, decisions)
    assert not ok
    assert f"1 of {len(queue)}" in why
    assert f"(1 {queue[-1].kind})" in why  # a count of a kind, never read as a track's number
    with pytest.raises(ExportBlocked, match="export blocked") as err:
        require_export_allowed(queue, decisions)
    assert isinstance(err.value, AnonlabError)
    decisions[queue[-1].id] = "maybe"                      # not a decision
    assert not export_allowed(queue, decisions)[0]
    decisions[queue[-1].id] = "dismissed"
    decisions["gap:999:1"] = "fixed"                       # stale ids are ignored
    assert export_allowed(queue, decisions) == (True, f"all {len(queue)} review item(s) decided")
    assert export_allowed([], {})[0]


def test_override_reason_allows_export_and_goes_into_the_report(queue):
    for blank in (None, "", "   \n"):
        assert not export_allowed(queue, {}, blank)[0]
    ok, why = export_allowed(queue, {}, "  court deadline; reviewed on paper  ")
    assert ok
    assert why.endswith("court deadline; reviewed on paper")
    assert "undecided" in why
    assert not looks_like_coordinates(why + str(gate_summary(queue, {})))
    summary = gate_summary(queue, {queue[0].id: "fixed"}, "court deadline")
    assert summary["export_allowed"]
    assert summary["override_reason"] == "court deadline"
    assert summary["items"] == len(queue)
    assert summary["decided"] == 1
    assert summary["undecided"] == len(queue) - 1
    assert summary["by_kind"][queue[0].kind]["fixed"] == 1
    done = gate_summary(queue, {i.id: "accepted" for i in queue}, "unused")
    assert done["override_reason"] is None
    assert done["undecided"] == 0


# --- review status ------------------------------------------------------------------------------------

def test_status_transitions_record_reviewer_and_utc_time():
    s0 = new_review_state()
    t = datetime(2025, 3, 4, 10, 11, 12, tzinfo=timezone.utc)
    s1 = advance_status(s0, "reviewed", "  Ada   Analyst ", now=t, note="queue done")
    assert s0["status"] == "draft"
    assert s0["history"] == []             # input untouched
    assert (s1["status"], s1["reviewer"], s1["at"]) == ("reviewed", "Ada Analyst", "2025-03-04T10:11:12+00:00")
    s2 = advance_status(s1, "approved", "Otto Officer")
    assert s2["status"] == "approved"
    assert s2["reviewer"] == "Otto Officer"
    assert datetime.fromisoformat(s2["at"]).utcoffset().total_seconds() == 0
    assert [(h["status"], h["by"]) for h in s2["history"]] == [("reviewed", "Ada Analyst"), ("approved", "Otto Officer")]
    assert s2["history"][0]["note"] == "queue done"
    assert "note" not in s2["history"][1]
    s3 = advance_status(s2, "draft", "Ada Analyst")                      # reopened
    assert (s3["status"], s3["reviewer"], s3["at"]) == ("draft", None, None)
    assert len(s3["history"]) == 3
    assert s3["decisions"] == {}
    assert s3["override"] is None                # other keys kept


def test_review_state_fits_the_case_file():
    case = pytest.importorskip("anonlab.case")
    if not hasattr(case, "Review") or not hasattr(case, "_Checker"):
        pytest.skip("anonlab.case has no Review/_Checker")
    state = advance_status(advance_status(new_review_state(), "reviewed", "Ada"), "approved", "Otto")
    state = {**state, "decisions": {"gap:3:1": {"decision": "accepted", "by": "Otto", "at": "2024-01-01T00:00:00+00:00"}},
             "override": make_override("deadline", "Otto")}
    try:
        checker = case._Checker("case.json")
    except TypeError:
        pytest.skip("anonlab.case._Checker has another signature")
    review = case.Review.from_dict(state, checker)
    assert review.to_dict() == state


@pytest.mark.parametrize("status, to, name, match", [
    ("draft", "approved", "Ada", "reviewed first"),
    ("draft", "draft", "Ada", "cannot move"),
    ("reviewed", "reviewed", "Ada", "cannot move"),
    ("approved", "reviewed", "Ada", "cannot move"),
    ("draft", "reviewed", "", "name"),
    ("draft", "reviewed", "   ", "name"),
    ("draft", "reviewed", None, "name"),
    ("draft", "published", "Ada", "unknown review status"),
])
def test_illegal_status_steps_are_refused(status, to, name, match):
    with pytest.raises(AnonlabError, match=match):
        advance_status({**new_review_state(), "status": status}, to, name)


def test_four_eyes_option():
    s = advance_status(new_review_state(), "reviewed", "Ada")
    with pytest.raises(AnonlabError, match="another person"):
        advance_status(s, "approved", "Ada", distinct_approver=True)
    assert advance_status(s, "approved", "Ada")["status"] == "approved"
    assert advance_status(s, "approved", "Bob", distinct_approver=True)["status"] == "approved"


def test_override_record_and_report_fields(queue):
    with pytest.raises(AnonlabError, match="reason"):
        make_override("  ", "Ada")
    with pytest.raises(AnonlabError, match="name"):
        make_override("deadline", "")
    o = make_override(" court   deadline ", "Ada", now=datetime(2025, 1, 2, tzinfo=timezone.utc))
    assert o == {"reason": "court deadline", "by": "Ada", "at": "2025-01-02T00:00:00+00:00"}
    assert export_allowed(queue, {}, o)[0]                               # the case's override record works too
    state = advance_status(advance_status(new_review_state(), "reviewed", "Ada"), "approved", "Otto")
    state = {**state, "decisions": {queue[0].id: "accepted"}, "override": o}
    risk = risk_bound(300, 0, 9000, 25)
    fields = report_review_fields(state, queue, risk)
    assert fields["status"] == "approved"
    assert fields["signed_off_by"] == "Otto"
    assert fields["signed_off_at"]
    assert fields["reviewed_items"] == 1
    assert fields["total_items"] == len(queue)
    assert fields["residual_risk"] == risk["statement"]
    assert "court deadline" in fields["note"]
    assert "by Ada" in fields["note"]
    assert all(isinstance(v, (str, int, float, type(None))) for v in fields.values())
    assert not looks_like_coordinates(json.dumps(fields))
    done = report_review_fields({**state, "decisions": {i.id: "fixed" for i in queue}}, queue)
    assert "note" not in done
    # the case file's own form of decisions ({"decision", "by", "at"}) counts too: a workbench export reported
    # "0 of 3 reviewed" after every card was accepted
    filed = report_review_fields({**state, "decisions": {i.id: {"decision": "accepted", "by": "Ann"} for i in queue}},
                                 queue)
    assert filed["reviewed_items"] == filed["total_items"] == len(queue) and "note" not in filed
    assert "residual_risk" not in done
    try:
        from anonlab.report.audit import _review
    except ImportError:
        return
    assert _review(fields)["residual_risk"] == risk["statement"]          # the report keeps every field


# --- residual risk: sampling -------------------------------------------------------------------------

def test_sample_frames_is_stratified_reproducible_and_covers_every_shot():
    cuts = [100, 103, 700]                                  # a 3-frame shot among long ones
    s = sample_frames(1000, 40, scene_cuts=cuts, seed=7)
    assert s == sample_frames(1000, 40, scene_cuts=cuts, seed=7)
    assert s != sample_frames(1000, 40, scene_cuts=cuts, seed=8)
    assert len(s) == len(set(s)) == 40
    assert s == sorted(s)
    assert 0 <= s[0]
    assert s[-1] < 1000
    bounds = [0, *cuts, 1000]
    per_shot = [sum(a <= f < b for f in s) for a, b in zip(bounds[:-1], bounds[1:])]
    assert all(c >= 1 for c in per_shot)                   # every shot is checked
    assert abs(per_shot[0] - 4) <= 1
    assert abs(per_shot[2] - 24) <= 1
    assert abs(per_shot[3] - 12) <= 1  # proportional
    assert max(np.diff([0, *s, 1000])) <= 2 * 1000 / 40 + 1      # no long stretch unchecked


def test_sample_frames_gives_each_frame_the_same_chance():
    counts = np.zeros(60)
    for seed in range(3000):
        counts[sample_frames(60, 6, scene_cuts=[25], seed=seed)] += 1
    rate = counts / 3000
    assert np.allclose(rate, 0.1, atol=0.025)


def test_sample_frames_edges():
    assert sample_frames(5, 10, seed=0) == [0, 1, 2, 3, 4]
    assert sample_frames(5, 0, seed=0) == []
    assert sample_frames(0, 3, seed=0) == []
    assert sample_frames(10, 2, scene_cuts=[5], seed=1)[0] < 5 <= sample_frames(10, 2, scene_cuts=[5], seed=1)[1]


# --- residual risk: the bound --------------------------------------------------------------------------

def exact_binomial_cdf(k: int, n: int, p: Fraction) -> Fraction:
    """P(X <= k), X ~ Binomial(n, p), in exact rational arithmetic."""
    return sum(Fraction(math.comb(n, i)) * p**i * (1 - p) ** (n - i) for i in range(k + 1))


def exact_upper(k: int, n: int, confidence: float) -> float:
    """Clopper-Pearson upper bound by bisection on the exact binomial CDF (independent of anonlab)."""
    alpha = Fraction(1) - Fraction(confidence)
    lo, hi = Fraction(0), Fraction(1)
    for _ in range(45):                                    # width 2**-45
        mid = (lo + hi) / 2
        mid = Fraction(float(mid))                         # keep the rationals short
        if exact_binomial_cdf(k, n, mid) > alpha:
            lo = mid
        else:
            hi = mid
    return float(hi)


@pytest.mark.parametrize("k, n, confidence", [(0, 300, 0.95), (3, 200, 0.95), (7, 50, 0.95), (2, 1000, 0.99),
                                               (1, 10, 0.9), (0, 1, 0.95), (49, 50, 0.95)])
def test_binomial_upper_matches_the_exact_bound(k, n, confidence):
    assert binomial_upper(k, n, confidence) == pytest.approx(exact_upper(k, n, confidence), abs=1e-12)


def test_rule_of_three():
    for n in (100, 300, 3000):
        p = binomial_upper(0, n)
        assert p == pytest.approx(1 - 0.05 ** (1 / n), rel=1e-12)
        assert p == pytest.approx(3 / n, rel=0.02)             # the rule of three, closer as n grows
        assert poisson_upper(0) / n == pytest.approx(3 / n, rel=0.002)
    assert binomial_upper(5, 5) == 1.0


@pytest.mark.parametrize("k, expected", [(0, 2.995732), (1, 4.743865), (2, 6.295794), (3, 7.753657), (5, 10.51303)])
def test_poisson_upper_matches_the_chi_square_table(k, expected):
    # Garwood: half the 95 % quantile of chi-square with 2k+2 degrees of freedom
    assert poisson_upper(k, 0.95) == pytest.approx(expected, abs=2e-5)


def test_risk_bound_on_a_video_with_known_misses():
    # A 10-minute, 25 fps video; 2 % of its frames show a face the analysis missed.
    n_frames, fps = 15000, 25.0
    rng = np.random.default_rng(3)
    missed = np.zeros(n_frames, bool)
    missed[rng.choice(n_frames, 300, replace=False)] = True
    sample = sample_frames(n_frames, 400, scene_cuts=[4000, 9000], seed=11)
    k = int(missed[sample].sum())
    r = risk_bound(len(sample), k, n_frames, fps)
    p_up = exact_upper(k, len(sample), 0.95)
    assert r["miss_rate_per_frame"]["upper"] == pytest.approx(p_up, abs=1e-12)
    assert r["miss_rate_per_frame"]["upper"] >= 0.02                # covers the truth here
    assert r["exposed_frames_per_minute_upper"] == pytest.approx(p_up * fps * 60)
    assert r["exposed_frames_upper"] == pytest.approx(p_up * n_frames)
    assert r["missed_objects_per_minute_upper"] == pytest.approx(poisson_upper(k) / len(sample) * fps * 60)
    assert r["missed_objects_per_minute_upper"] >= r["exposed_frames_per_minute_upper"]
    assert r["video_minutes"] == pytest.approx(10.0)
    assert r["sampled_frames"] == 400
    assert r["missed_objects"] == k
    assert r["frames_with_miss"] == k
    assert "95 %" in r["statement"]
    assert "Clopper-Pearson" in r["methods"]["miss_rate_per_frame"]


def test_risk_bound_zero_misses_and_several_misses_per_frame():
    r = risk_bound(300, 0, 9000, 30)
    assert r["miss_rate_per_frame"]["upper"] == pytest.approx(1 - 0.05 ** (1 / 300))
    assert r["missed_objects_per_minute_upper"] == pytest.approx(2.995732 / 300 * 30 * 60, rel=1e-5)
    many = risk_bound(20, 30, 1000, 25, n_frames_with_miss=4)      # a crowd frame with many misses
    assert many["frames_with_miss"] == 4
    assert many["miss_rate_per_frame"]["upper"] == pytest.approx(exact_upper(4, 20, 0.95), abs=1e-12)
    assert risk_bound(20, 30, 1000, 25)["frames_with_miss"] == 20    # default: conservative


def test_clopper_pearson_coverage():
    # The exact bound covers the true rate in at least 95 % of repeated samples.
    rng = np.random.default_rng(0)
    p, n = 0.03, 120
    ks = rng.binomial(n, p, 400)
    bounds = {k: binomial_upper(int(k), n) for k in np.unique(ks)}
    assert np.mean([bounds[k] >= p for k in ks]) >= 0.95


@pytest.mark.parametrize("args, match", [
    ((0, 0, 100, 25), "at least one checked frame"),
    ((10, -1, 100, 25), "0 or more"),
    ((200, 0, 100, 25), "only 100"),
    ((10, 0, 100, 0), "fps"),
])
def test_risk_bound_rejects_bad_input(args, match):
    with pytest.raises(AnonlabError, match=match):
        risk_bound(*args)


# --- red team: real detectors on a rendered clip ---------------------------------------------------------

@pytest.fixture(scope="module")
def face_scene():
    """The sample portrait's head on a plain background (a textured one draws false faces at half threshold)."""
    import cv2

    from anonlab.evaluation.teaching import portrait_head

    head, (fx1, fy1, fx2, fy2) = portrait_head()
    s = 56 / (fx2 - fx1)                                   # a face 56 px wide
    head = cv2.resize(head, None, fx=s, fy=s, interpolation=cv2.INTER_AREA)
    image = np.full((192, 256, 3), 128, np.uint8)
    x, y = 90, 20
    image[y:y + head.shape[0], x:x + head.shape[1]] = head
    return image, np.array([fx1 * s + x, fy1 * s + y, fx2 * s + x, fy2 * s + y], np.float32)


def make_video(path, frames):
    from mediagen import make_clip

    h, w = frames[0].shape[:2]
    return make_clip(path, n_frames=len(frames), width=w, height=h, frame_fn=lambda n: frames[n])


@pytest.mark.slow
def test_red_team_finds_the_face_left_unmasked(tmp_path, face_scene, caplog):
    from anonlab.pipeline import Analysis, render

    image, box = face_scene
    src = make_video(tmp_path / "in.mp4", [image] * 3)
    applied = Regions(xyxy=[box, box], frame=[0, 2], track_id=[1, 1], score=[0.9, 0.9])   # frame 1 left bare
    settings = Settings(what=("face",))  # (the plate model fires on the cap badge: a plate test of its own)
    analysis = Analysis(path=src, kind="video", n_frames=3, width=256, height=192, fps=25.0,
                        times=np.arange(3) / 25, regions=applied, settings=settings)
    out = tmp_path / "out.mp4"
    render(analysis, out, progress=False)
    with caplog.at_level(logging.INFO, logger="anonlab.review"):
        findings = red_team(out, applied, settings)
    assert [(f.frame, f.kind, f.label) for f in findings] == [(1, "exposed", "face")]
    f = findings[0]
    assert f.coverage == 0.0
    assert f.score > 0.1
    assert {"centerface", "yunet"} & set(f.detectors)
    assert f.box is not None
    assert len(f.box) == 4
    text = f.summary() + " " + str(f.to_dict()) + " " + caplog.text + " " + repr(f)
    assert "frame 1" in f.summary()
    assert not looks_like_coordinates(text)
    for v in np.round(box).astype(int).tolist():
        assert f" {v}" not in text
        assert f"[{v}" not in text
        assert f"({v}" not in text     # no coordinates
    assert "box" in f.to_dict(with_box=True)
    items = findings_to_items(findings)
    assert items[0].id == "exposed:1:-1"
    assert not export_allowed(items, {})[0]


@pytest.mark.slow
def test_red_team_flags_a_mask_that_only_darkens(tmp_path, face_scene):
    image, box = face_scene
    x1, y1, x2, y2 = (int(v) for v in mask_box(box))
    weak = image.copy()
    weak[y1:y2, x1:x2] = (weak[y1:y2, x1:x2] * 0.7).astype(np.uint8)   # "masked", but only darkened
    out = make_video(tmp_path / "weak.mp4", [weak] * 2)
    applied = Regions(xyxy=[box, box], frame=[0, 1])
    findings = red_team(out, applied, Settings(what=("face",)))
    assert [(f.frame, f.last, f.kind, f.sure) for f in findings] == [(0, 1, "weak_mask", True)]  # one object
    assert all(f.coverage >= 0.8 for f in findings)
    assert "inside a mask" in findings[0].summary()


def mask_box(box, scale=1.3):
    c = (box[:2] + box[2:]) / 2
    half = (box[2:] - box[:2]) * scale / 2
    return np.concatenate([c - half, c + half])


def test_red_team_with_fake_detectors_on_a_photo(tmp_path):
    import cv2

    image = np.full((60, 80, 3), 120, np.uint8)
    path = tmp_path / "photo.png"
    cv2.imwrite(str(path), image)

    def det(frame):
        return Regions(xyxy=[[10, 10, 20, 20], [50, 30, 60, 40], [51, 31, 61, 41]], score=[0.3, 0.5, 0.6],
                       label=[FACE, PLATE, PLATE])
    det.name = "fake"
    applied = Regions(xyxy=[[49, 29, 62, 42]], label=[PLATE])
    findings = red_team(path, applied, Settings(), detectors=[det])
    assert [(f.kind, f.label) for f in findings] == [("exposed", "face"), ("weak_mask", "plate")]
    assert findings[1].score == pytest.approx(0.6)                     # the two plate boxes are one object
    only_faces = red_team(path, applied, Settings(what=("face",)), detectors=[det])
    assert [f.label for f in only_faces] == ["face"]
    assert red_team(path, applied, Settings(), detectors=[det], whole_frames=[0])[0].kind == "weak_mask"


def test_cli_exit_code_counts_sure_findings_only(tmp_path, monkeypatch):
    """Issue 15: exit 4 for a real exposure, not for one false plate seen frame after frame."""
    import anonlab.review
    from anonlab.pipeline import Analysis, red_team_check

    noise = group_findings([one_frame(n) for n in range(241)])
    real = group_findings([one_frame(n, "face", 0.49, sure=True, box=(300, 50, 340, 100)) for n in range(3)])
    analysis = Analysis(path=tmp_path / "in.mp4", kind="video", n_frames=241, width=640, height=360, fps=25.0,
                        times=np.arange(241) / 25, regions=Regions.empty(), settings=Settings())
    monkeypatch.setattr(anonlab.review, "red_team", lambda *a, **k: rank_findings(noise))
    only_noise = red_team_check(analysis, tmp_path / "out.mp4", {})
    assert (only_noise["exposed"], only_noise["weak_mask"], only_noise["doubtful"]) == (0, 0, 1)
    assert len(only_noise["findings"]) == 1  # one line, not 241
    monkeypatch.setattr(anonlab.review, "red_team", lambda *a, **k: rank_findings(noise + real))
    both = red_team_check(analysis, tmp_path / "out.mp4", {})
    assert (both["exposed"], both["doubtful"]) == (1, 1)
    assert both["findings"][0].startswith("frames 0-2 (3 frame(s) where found): face")


def test_every_flagged_frame_is_on_the_filmstrip():
    scores = [0.3 if (f // 3) % 2 else 0.9 for f in range(120)]  # 20 low-score runs
    r = Regions(xyxy=[[X1, Y1, X2, Y2]] * 120, score=scores, track_id=[1] * 120, frame=list(range(120)))
    (card,) = build_queue(r, 200)
    assert {f.first for f in card.flags} <= set(card.frames)
    assert len(card.frames) > 8
