"""The workbench: review and edit masks in JupyterLab or as a Voilà app.

``Workbench(path)`` (ipywidgets + ipycanvas view) over `anonlab.widgets.editor.EditorModel` (plain Python).
Importing `anonlab.widgets` or the model's modules (`editor`, `viewport`, `frames`, `boxes`, `jobs`) does not
import ipywidgets; `Workbench` is loaded on first use.

Example:
    >>> from anonlab.widgets import Workbench          # doctest: +SKIP
    >>> Workbench("street.mp4")                         # doctest: +SKIP
"""

from __future__ import annotations

__all__ = ["Workbench"]


def __getattr__(name: str):
    if name == "Workbench":
        from anonlab.widgets.workbench import Workbench

        return Workbench
    raise AttributeError(f"module 'anonlab.widgets' has no attribute {name!r}")
