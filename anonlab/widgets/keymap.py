"""The workbench's keyboard: one table of key bindings, from which both the dispatch and the help are made.

Each `KeyBinding` says which key (DOM ``KeyboardEvent.key`` names) with which modifiers does what to the
editing model, the name `anonlab.widgets.editor.EditorModel.on_key` returns for it, and one line of help.
`find_binding` looks a key up in `KEYMAP`; `shortcut_help` lists `KEYMAP` for the help under the picture.
Because the dispatch and the help read the same table they cannot drift apart, as they could when the
dispatch was an if/elif ladder in the model and the help a dict beside it.

Modifiers: ``shift`` is True (only with Shift), False (only without) or None (either); an upper-case letter
counts as Shift plus the lower-case letter. Ctrl bindings ignore Alt; any other key pressed with Ctrl or Alt
is unbound, so the browser keeps its own shortcuts.

The actions are small functions of the model, written against its public methods, so this module imports
nothing from the editor and the editor imports the table (one way). A binding with ``selected`` set acts on
the selected track: the model passes the track, or reports "select a box first". A binding with ``edit`` set
changes the case: when the case refuses the edit (no selection, no analyst name, ...) the model says why and
``on_key`` still returns the edit's name; a failed view action returns None.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from anonlab.regions import LABELS


@dataclass(frozen=True)
class KeyBinding:
    """One key (or several keys that do the same) with its modifiers -> an action and a line of help.

    A Shift variant's help is read after its plain key's: ``next flagged frame (Shift: previous)``.
    """

    keys: tuple[str, ...]
    action: str  # what on_key returns
    run: Callable[..., Any] | None  # run(model), or run(model, track) when ``selected``; None: the view's job
    help: str
    shift: bool | None = None
    ctrl: bool = False
    selected: bool = False
    edit: bool = False


#: How the help names what a label key draws.
_PLURAL = {"face": "faces", "plate": "plates", "head": "heads", "person": "persons", "text": "text boxes"}


def _key(keys, action, run, help, **kw) -> KeyBinding:
    return KeyBinding(tuple(keys), action, run, help, **kw)


#: Every key the workbench answers, in the order the help lists them.
KEYMAP: tuple[KeyBinding, ...] = (
    _key(["ArrowRight"], "step", lambda m: m.step(1), "next frame", shift=False),
    _key(["ArrowRight"], "step", lambda m: m.step(10), "10 frames", shift=True),
    _key(["ArrowLeft"], "step", lambda m: m.step(-1), "previous frame", shift=False),
    _key(["ArrowLeft"], "step", lambda m: m.step(-10), "10 frames", shift=True),
    _key(["Home"], "seek", lambda m: m.seek(0), "first frame"),
    _key(["End"], "seek", lambda m: m.seek(m.n_frames - 1), "last frame"),
    _key(["n"], "flagged", lambda m: m.next_flagged(), "next flagged frame", shift=False),
    _key(["n"], "flagged", lambda m: m.prev_flagged(), "previous", shift=True),
    _key([" "], "play", None, "play / pause"),
    _key(["Tab"], "cycle", lambda m: m.cycle_selection(1), "select the next box in this frame", shift=False),
    _key(["Tab"], "cycle", lambda m: m.cycle_selection(-1), "the previous one", shift=True),
    _key(["Escape"], "escape", lambda m: m.escape(), "cancel the drag, clear the selection"),
    _key(["Delete", "Backspace"], "delete_region", lambda m, t: m.delete_region(t),
         "delete the selected box in this frame", shift=False, selected=True, edit=True),
    _key(["Delete", "Backspace"], "delete_track", lambda m, t: m.delete_track(t), "the whole track", shift=True,
         selected=True, edit=True),
    _key(["k"], "keyframe", lambda m, t: m.add_keyframe(t), "keyframe the selected track here", selected=True,
         edit=True),
    _key(["f"], "follow", lambda m, t: m.follow(t, 1), "follow the selected box forward", shift=False,
         selected=True, edit=True),
    _key(["f"], "follow_back", lambda m, t: m.follow(t, -1), "backward", shift=True, selected=True, edit=True),
    _key(["s"], "split", lambda m, t: m.split(t), "split the selected track at this frame", selected=True,
         edit=True),
    _key(["h"], "hide", lambda m: m.toggle_hidden(m.selected) if m.selected is not None else None,
         "hide / show the selected track"),
    _key(["m"], "masked", lambda m: m.toggle_masked(), "masked preview on / off"),
    *(_key([str(i + 1)], "label", (lambda m, name=name: m.set_draw_label(name)), f"draw {_PLURAL.get(name, name)}")
      for i, name in enumerate(LABELS)),
    _key(["+", "="], "zoom", lambda m: m.zoom(1.25), "zoom in"),
    _key(["-"], "zoom", lambda m: m.zoom(0.8), "zoom out"),
    _key(["0"], "zoom", lambda m: m.reset_zoom(), "zoom to fit"),
    _key(["z"], "undo", lambda m: m.undo(), "undo", ctrl=True, shift=False, edit=True),
    _key(["z"], "redo", lambda m: m.redo(), "redo", ctrl=True, shift=True, edit=True),
    _key(["y"], "redo", lambda m: m.redo(), "redo", ctrl=True, edit=True),
)


def _index(keymap: tuple[KeyBinding, ...]) -> dict[tuple[str, bool, bool], KeyBinding]:
    """``(key, ctrl, shift) -> binding``; two bindings for the same key and modifiers are a mistake in the table."""
    index: dict[tuple[str, bool, bool], KeyBinding] = {}
    for b in keymap:
        for key in b.keys:
            for shift in ((False, True) if b.shift is None else (b.shift,)):
                if (key, b.ctrl, shift) in index:
                    raise ValueError(f"keymap: {key!r} (ctrl={b.ctrl}, shift={shift}) is bound twice")
                index[key, b.ctrl, shift] = b
    return index


_INDEX = _index(KEYMAP)


def find_binding(key: str, *, ctrl: bool = False, shift: bool = False, alt: bool = False) -> KeyBinding | None:
    """The binding of ``key`` with these modifiers, or None when the key is unbound."""
    if len(key) == 1 and key.isalpha() and key.isupper():
        shift, key = True, key.lower()
    if alt and not ctrl:
        return None
    return _INDEX.get((key, bool(ctrl), bool(shift)))


def _key_name(key: str, ctrl: bool) -> str:
    name = "Space" if key == " " else key
    return f"Ctrl+{name.upper() if len(name) == 1 else name}" if ctrl else name


def shortcut_help(keymap: tuple[KeyBinding, ...] = KEYMAP) -> list[tuple[str, str]]:
    """``(keys, what they do)`` rows for the help: one row per key (or keys) of the table, in its order, with
    the Shift variant after the plain one (``delete the selected box in this frame (Shift: the whole track)``)."""
    rows: dict[tuple[tuple[str, ...], bool], dict[bool | None, str]] = {}
    for b in keymap:
        rows.setdefault((b.keys, b.ctrl), {})[b.shift] = b.help
    out = []
    for (keys, ctrl), helps in rows.items():
        names = " / ".join(_key_name(k, ctrl) for k in keys)
        plain = helps.get(None, helps.get(False))
        if plain is None:  # only a Shift variant
            out.append((" / ".join(f"Shift+{_key_name(k, ctrl)}" for k in keys), helps[True]))
        else:
            out.append((names, plain + (f" (Shift: {helps[True]})" if True in helps else "")))
    return out


#: The help as ``{keys: what they do}``, made from `KEYMAP` (the view shows it under the picture).
SHORTCUTS: dict[str, str] = dict(shortcut_help())
