"""Strict loaders: whatever JSON a user hands in, the answer is a result or one `AnonlabError` line."""

import json

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from anonlab.errors import AnonlabError
from anonlab.evaluation.images import load_jsonl
from anonlab.pipeline import read_regions
from anonlab.settings import Settings

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.floats(allow_nan=True) | st.text(max_size=8),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)
setting_keys = st.sampled_from(["what", "thresh", "mask", "shape", "mask_scale", "feather", "detect_every",
                                "max_gap", "lead", "trail", "crf", "keep_metadata", "bogus"])
box = st.fixed_dictionaries({}, optional={k: json_values for k in ("label", "x", "y", "w", "h", "score",
                                                                   "track_id", "source")})
line = st.fixed_dictionaries({}, optional={"image": json_values, "frame": json_values, "time": json_values,
                                           "boxes": st.lists(box, max_size=3) | json_values,
                                           "regions": st.lists(box, max_size=3) | json_values})
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def one_line_error(exc: AnonlabError) -> None:
    assert str(exc)
    assert "\n" not in str(exc)


@FUZZ
@given(st.dictionaries(setting_keys, json_values, max_size=6))
def test_settings_from_dict(data):
    try:
        s = Settings.from_dict(data)
    except AnonlabError as exc:
        one_line_error(exc)
    else:
        assert Settings.from_dict(s.to_dict()) == s


@FUZZ
@given(st.lists(line | json_values, min_size=1, max_size=4))
def test_labels_loader(tmp_path_factory, lines):
    path = tmp_path_factory.mktemp("fuzz") / "labels.jsonl"
    path.write_text("\n".join(json.dumps(x) for x in lines))
    for kind in ("labels", "pred"):
        try:
            load_jsonl(path, kind)
        except AnonlabError as exc:
            one_line_error(exc)


@FUZZ
@given(st.lists(line | json_values, min_size=1, max_size=4))
def test_regions_loader(tmp_path_factory, lines):
    path = tmp_path_factory.mktemp("fuzz") / "regions.jsonl"
    path.write_text("\n".join(json.dumps(x) for x in lines))
    try:
        regions = read_regions(path, n_frames=10)
    except AnonlabError as exc:
        one_line_error(exc)
    else:
        assert ((regions.frame >= 0) & (regions.frame < 10)).all()


def test_an_unknown_setting_is_named_on_one_line():
    # found by the case-file fuzzer: a key holding a newline split the error message in two
    with pytest.raises(AnonlabError, match=r"unknown setting\(s\): '\\n'") as exc:
        Settings.from_dict({"\n": None})
    assert "\n" not in str(exc.value)
