"""The widgets package's layout: old import paths keep working, the keymap is consistent, ipywidgets stays lazy."""

from __future__ import annotations

import subprocess
import sys

import pytest

from anonlab.widgets import boxes, editor, frames, jobs, keymap, model, viewport

OLD_NAMES = {
    viewport: ["MAX_ZOOM", "Viewport", "render_view", "_paste"],
    frames: ["PROXY_BYTES_PER_PIXEL", "FrameSource"],
    boxes: ["PALETTE", "HANDLES", "BoxView", "TrackSummary", "handle_points", "hex_to_bgr"],
    editor: ["HANDLE_PX", "DRAG_PX", "MIN_BOX", "FOLLOW_FRAMES", "FOLLOW_MAX_SIDE", "Drag", "EditorModel"],
    jobs: ["AnalysisJob", "BackgroundJob", "Cancelled"],
    keymap: ["SHORTCUTS"],
}


def test_the_old_model_module_re_exports_the_same_objects():
    for module, names in OLD_NAMES.items():
        for name in names:
            assert getattr(model, name) is getattr(module, name), name
    assert model.track_colour is boxes.track_color
    assert model.EXCLUDED_COLOUR == boxes.EXCLUDED_COLOR


def test_every_binding_is_found_and_listed_in_the_help():
    shown = " / ".join(keymap.SHORTCUTS)
    for b in keymap.KEYMAP:
        for key in b.keys:
            for shift in ((False, True) if b.shift is None else (b.shift,)):
                assert keymap.find_binding(key, ctrl=b.ctrl, shift=shift) is b
        assert all(keymap._key_name(k, b.ctrl) in shown for k in b.keys)
        assert b.help in " ".join(keymap.SHORTCUTS.values())


@pytest.mark.parametrize("module", ["anonlab.widgets", "anonlab.widgets.model", "anonlab.widgets.launch"])
def test_ipywidgets_is_not_imported_before_the_workbench_is_used(module):
    code = f"import sys, {module}; print('ipywidgets' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
