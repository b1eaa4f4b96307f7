"""A folder of photos in the workbench: pick a photo, work on it, move to the next.

Each photo keeps its own case file (``NAME.case.json`` beside it, as for a single file), so the folder
view is only a chooser over `anonlab.widgets.workbench.Workbench` instances; `Workbench(folder)` returns one
of these.

Imports run one way: `anonlab.widgets.workbench` imports this module (``Workbench(folder)`` gives a
`FolderWorkbench`), and this module does not import the workbench: the `Workbench` hands in the class that
opens one photo (``open_photo``). Before, each module imported the other (this one inside a method).
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Callable

import ipywidgets as widgets

from anonlab.widgets.inputs import photos_in, videos_in

__all__ = ["FolderWorkbench", "photos_in"]


class FolderWorkbench:
    """A dropdown of the folder's photos above the `Workbench` of the chosen one.

    Args:
        folder: the folder of photos.
        settings, workbench_options: passed to ``open_photo`` for each photo.
        open_photo: opens one photo: ``open_photo(path, settings, **workbench_options)`` (the `Workbench`
            class; ``Workbench(folder)`` passes it).
    """

    def __init__(self, folder: str | Path, settings=None, *, open_photo: Callable, **workbench_options) -> None:
        self.open_photo = open_photo
        self.folder = Path(folder)
        self.photos = photos_in(self.folder)
        self.settings = settings
        self.options = workbench_options
        self.chooser = widgets.Dropdown(options=[(p.name, i) for i, p in enumerate(self.photos)], value=0,
                                        description="photo")
        self.prev_button = widgets.Button(description="◀", tooltip="previous photo", layout=widgets.Layout(width="40px"))
        self.next_button = widgets.Button(description="▶", tooltip="next photo", layout=widgets.Layout(width="40px"))
        self.prev_button.on_click(lambda _: self.step(-1))
        self.next_button.on_click(lambda _: self.step(1))
        # A folder holding a clip and a photo showed the photo alone, as if the clip were not there.
        videos = videos_in(self.folder)
        shown = ", ".join(p.name for p in videos[:3]) + (f" and {len(videos) - 3} more" if len(videos) > 3 else "")
        self.note = widgets.HTML(f"<small>{len(videos)} video(s) here are not in this list ({html.escape(shown)}):"
                                 " open each on its own, <code>anonlab app VIDEO</code></small>" if videos else "")
        #: Which photos have an output beside them (`export_state`): a newcomer exported three of four and left
        #: the fourth without one, with nothing on the page to say which were done.
        self.progress = widgets.HTML()
        self.holder = widgets.Box()
        #: The current photo's counts for the record (the notebook shows ``wb.record``).
        self.record = widgets.Box()
        self.widget = widgets.VBox([widgets.HBox([self.prev_button, self.chooser, self.next_button, self.note]),
                                     self.progress, self.holder])
        self.current = None
        self.chooser.observe(lambda change: self.open(change["new"]), names="value")
        self.open(0)

    def open(self, index: int):
        """Show the workbench of photo ``index`` (its case file is autosaved as it is edited)."""
        if self.current is not None:
            self.options["analyst"] = self.current.actor_name() or self.options.get("analyst")  # keep the name
            self.current.close()
        self.current = self.open_photo(self.photos[index], self.settings, **self.options)
        self.holder.children = (self.current.widget,)
        self.progress.value = self.export_state()
        self.record.children = (self.current.record,)
        if self.chooser.value != index:
            self.chooser.value = index
        return self.current

    def export_state(self) -> str:
        """One line (HTML): how many photos have their output (``NAME_anonymized.EXT`` beside them), and which
        have not, as far as the file names go (checked when a photo is opened)."""
        from anonlab.pipeline import default_output  # the workbench's default output name

        missing = [p.name for p in self.photos if not default_output(p).exists()]
        done = len(self.photos) - len(missing)
        shown = ", ".join(missing[:4]) + (f" and {len(missing) - 4} more" if len(missing) > 4 else "")
        return (f"<small>{done} of {len(self.photos)} photo(s) exported"
                + (f"; not yet: {html.escape(shown)}" if missing else "") + "</small>")

    def step(self, k: int):
        return self.open((self.chooser.value + k) % len(self.photos))

    def _repr_mimebundle_(self, **kwargs):
        return self.widget._repr_mimebundle_(**kwargs)
