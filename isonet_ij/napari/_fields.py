"""magicgui fields generated from the option declarations of :mod:`isonet_ij.workflow`.

A field shows the same default as the ImageJ dialog (:attr:`Setting.ij_value`: a
stand-in such as factor 0 or fusion ``model`` where the library default is "unset"), and
:func:`value_of` turns a stand-in back into None so that the workflow applies its default,
exactly as the CLI and ImageJ do.
"""

from __future__ import annotations

__all__ = ["field_for", "value_of", "values_of"]

_MAX = {int: 1_000_000, float: 1e6}


def _label(setting, label: str | None) -> str:
    if label:
        return label
    return setting.label or setting.name.replace("_", " ")


def field_for(setting, *, label: str | None = None, value=None):
    """A magicgui widget for one :class:`~isonet_ij.workflow.Setting`."""
    from magicgui import widgets

    value = setting.ij_value if value is None else value
    kw = {"name": setting.name, "label": _label(setting, label),
          "tooltip": setting.ij_help or setting.help}
    if setting.choices:
        choices = list(setting.choices)
        if value not in choices:
            choices.append(value)
        return widgets.ComboBox(choices=choices, value=value, **kw)
    if setting.type is bool:
        return widgets.CheckBox(value=bool(value), **kw)
    if setting.type in (int, float) and setting.ij_kind is None or setting.ij_kind == "number":
        kind = int if setting.type is int else float
        cls = widgets.SpinBox if kind is int else widgets.FloatSpinBox
        extra = {} if kind is int else {"step": 0.1}
        low = setting.minimum if setting.minimum is not None else 0
        return cls(value=value if value is not None else low, min=low, max=_MAX[kind],
                   **extra, **kw)
    return widgets.LineEdit(value="" if value is None else str(value), **kw)


def value_of(setting, value):
    """The workflow's value of a field: None for the stand-ins of "unset"."""
    if isinstance(value, str):
        value = value.strip()
        if value == "":
            return None
    if setting.unset and value in setting.unset and not isinstance(value, bool):
        return None
    return value


def values_of(container, settings, names) -> dict:
    """``{name: value_of(...)}`` of the fields ``names`` of a container."""
    return {n: value_of(settings[n], getattr(container, n).value) for n in names}
