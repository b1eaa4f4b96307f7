"""What the workbench opens: a media file with its case, a case file, a `Case`, or a folder of photos.

Plain Python without ipywidgets: `anonlab.widgets.launch` checks the input with `photos_in` before any server
starts (``anonlab app`` must answer with anonlab's own one line, also where the jupyter extra is missing),
and the view (`anonlab.widgets.workbench`) and the folder chooser (`anonlab.widgets.folder`) open their
cases and photos with these functions.
"""

from __future__ import annotations

from pathlib import Path

from anonlab.case import Case, default_case_path
from anonlab.errors import AnonlabError
from anonlab.media import PHOTO_EXTENSIONS, VIDEO_EXTENSIONS
from anonlab.pipeline import default_output


def photos_in(folder: str | Path) -> list[Path]:
    """The photos directly in ``folder``, sorted by name (hidden files skipped, and the workbench's own exports:
    ``NAME_anonymized.jpg`` beside ``NAME.jpg``). Raises `AnonlabError` when there is none."""
    folder = Path(folder)
    found = sorted(p for p in folder.iterdir()
                   if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in PHOTO_EXTENSIONS)
    # An export is written beside its photo: opened again, the folder listed every output between the photos,
    # and stepping through them made a case file for each output.
    exports = {default_output(p).name for p in found}
    found = [p for p in found if p.name not in exports]
    if not found:
        raise AnonlabError(f"{folder.name}: no photos in this folder ({', '.join(sorted(PHOTO_EXTENSIONS))})")
    return found


def videos_in(folder: str | Path) -> list[Path]:
    """The videos directly in ``folder``, sorted by name (hidden files and the workbench's exports skipped): the
    folder view lists photos only, and says which videos it left out."""
    folder = Path(folder)
    found = sorted(p for p in folder.iterdir()
                   if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in VIDEO_EXTENSIONS)
    exports = {default_output(p).name for p in found}
    return [p for p in found if p.name not in exports]


def open_case(path_or_case, settings=None, case_path=None) -> Case:
    """The case for a media file (the case file beside it when there is one, else a new case saved there),
    a case file (``*.json``, its input checked), or a `Case` (as it is)."""
    if isinstance(path_or_case, Case):
        return path_or_case
    p = Path(path_or_case)
    if p.name.endswith(".json"):
        case = Case.load(p)
        case.verify_input()
        return case
    cp = Path(case_path) if case_path is not None else default_case_path(p)
    if cp.exists():
        case = Case.load(cp)
        case.verify_input(p)
        if Path(case.input.path) != p.resolve():
            case.input.path = str(p.resolve())
        return case
    case = Case.new(p, settings)
    case.path = cp
    return case
