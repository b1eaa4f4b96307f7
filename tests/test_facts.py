"""One record of an input's facts: the analysis, the case and the batch's chunks give the same `InputFacts`."""

from pathlib import Path

import numpy as np

from anonlab.case import Case
from anonlab.media import sha256_file
from anonlab.media.facts import InputFacts
from anonlab.pipeline import Analysis
from anonlab.regions import Regions


def _analysis(path) -> Analysis:
    return Analysis(path=Path(path), kind="video", n_frames=3, width=64, height=48, fps=25.0,
                    times=np.arange(3) / 25.0, regions=Regions.empty())


def test_an_analysis_and_its_case_share_the_facts(tmp_path):
    src = tmp_path / "clip.mp4"
    src.write_bytes(b"not decoded here")
    a = _analysis(src)
    assert a.facts == InputFacts(str(src), "clip.mp4", None, None, "video", 3, 64, 48, 25.0)
    case = Case.from_analysis(a)
    assert case.input == a.facts.on_disk()
    assert case.input.sha256 == sha256_file(src)
    assert case.input.size == len(b"not decoded here")


def test_facts_of_a_file_that_has_gone_have_no_hash_or_size(tmp_path):
    facts = _analysis(tmp_path / "gone.mp4").facts.on_disk()
    assert facts.sha256 is None
    assert facts.size is None
    assert Path(facts.path).is_absolute()
