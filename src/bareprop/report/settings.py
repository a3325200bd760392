"""The report's settings card: what a run changed from its preset (or bareprop's
defaults), every setting folded below, and the settings the run never read."""
from __future__ import annotations

import html

from .page import _card, _table


def _show(value) -> str:
    """A setting as one types it: words plain, lists space-separated, never JSON."""
    if isinstance(value, (list, tuple)):
        return " ".join(_show(v) for v in value) if value else "none"
    return ("none" if value is None else ("yes" if value else "no") if isinstance(value, bool)
            else repr(value) if isinstance(value, float) else str(value))


def _norm(value):
    return list(value) if isinstance(value, tuple) else value


def _flag(key) -> str:
    return "--" + str(key).replace("_", "-")


def unused_settings(cfg: dict) -> list[str]:
    """The settings of ``cfg`` the run never read: the MLP's with an --arch, and those of
    an optimizer or schedule it did not use (experiment.checks.FLAG_USERS)."""
    from ..experiment.checks import FLAG_USERS
    from ..experiment.config import MLP_FIELDS

    return [k for k in MLP_FIELDS if cfg.get("arch") and k in cfg] + [
        name for name, (field, users) in FLAG_USERS.items()
        if name in cfg and field in cfg and cfg[field] not in users]


def settings_rows(cfg: dict) -> list[tuple[str, str]]:
    """(setting, value as typed) rows of the settings a run used: an --arch run leaves
    out the MLP's (hidden, activation, ...: stored with their defaults, they describe no
    layer of the model, and "hidden 128" beside a CNN would mislead), and every run the
    flags its optimizer or schedule never reads (momentum under adam...)."""
    skip = set(unused_settings(cfg))
    return [(k, _show(v)) for k, v in cfg.items() if k not in skip]


def preset_settings(preset) -> dict | None:
    """Every setting of ``preset`` (defaults under the preset's own), or None for a name
    bareprop has no preset of."""
    from ..experiment.config import DEFAULTS
    from ..experiment.presets import PRESETS

    if not isinstance(preset, str) or preset not in PRESETS:
        return None
    return {k: _norm(v) for k, v in {**DEFAULTS, **PRESETS[preset]}.items()}


def changed_settings(cfg: dict) -> tuple[str, list[tuple[str, str, str]]]:
    """(what they are compared with, [(flag, this run's value, that value)]): the used
    settings that differ from the run's preset, or from the defaults when the preset is
    not one bareprop knows. The preset itself and the output folder are left out."""
    from ..experiment.config import DEFAULTS

    base = preset_settings(cfg.get("preset"))
    label = f"preset {cfg.get('preset')}"
    if base is None:
        base, label = {k: _norm(v) for k, v in DEFAULTS.items()}, "bareprop's defaults"
    rows = [(_flag(k), _show(cfg[k]), _show(base[k]) if k in base else "(not a setting)")
            for k, _ in settings_rows(cfg)
            if k not in ("preset", "out") and _norm(cfg[k]) != base.get(k, object())]
    return label, rows


def _settings_section(cfg: dict) -> str:
    label, changed = changed_settings(cfg)
    used = settings_rows(cfg)
    top = (f"<p class=muted>{len(changed)} of the {len(used)} settings differ from "
           f"{html.escape(label)}:</p>" + _table(changed, ["setting", "this run", label])
           if changed else f"<p>Every setting is {html.escape(label)}'s.</p>")
    unused = unused_settings(cfg)
    note = (f"<p class='muted small'>Not read by this run (its optimizer, schedule or --arch "
            f"never uses them): {html.escape(', '.join(_flag(k) for k in unused))}</p>"
            if unused else "")
    folded = ("<details><summary>All " f"{len(used)} settings of the run</summary>"
              + _table([(_flag(k), v) for k, v in used], ["setting", "value"]) + note
              + "</details>")
    return _card("Settings", top + folded)
