"""The evaluation notebook runs headless on its generated set, is committed without outputs, and shows its figures."""

import json
import time
from pathlib import Path

import pytest

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "evaluate.ipynb"


def test_notebook_is_committed_without_outputs():
    nb = json.loads(NOTEBOOK.read_text(encoding="utf-8"))
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert code
    assert all(c.get("outputs") == [] and c.get("execution_count") is None for c in code)


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_notebook_runs_headless(tmp_path, monkeypatch):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("matplotlib")
    pytest.importorskip("ipykernel")

    monkeypatch.delenv("ANONLAB_EVAL_SET", raising=False)       # the generated set, as in CI
    monkeypatch.setenv("ANONLAB_NOTEBOOK_WORK", str(tmp_path))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    client = nbclient.NotebookClient(nb, timeout=120, kernel_name="python3",
                                     resources={"metadata": {"path": str(NOTEBOOK.parent)}})
    t0 = time.perf_counter()
    client.execute()
    elapsed = time.perf_counter() - t0

    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    images = [o for o in outputs if o.output_type == "display_data" and "image/png" in o.get("data", {})]
    assert len(images) >= 5                                     # examples, curve, sizes, misses, timeline
    text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert "highest threshold with recall" in text
    assert "after tracking" in text
    assert (tmp_path / "pred.jsonl").exists()
    assert (tmp_path / "clip.mp4").exists()
    assert elapsed < 90, f"the notebook took {elapsed:.0f} s (about 20 s on 2 cores; budget 60 s)"
