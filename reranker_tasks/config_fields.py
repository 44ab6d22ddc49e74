"""What a conf key is, declared once on its config field: bounds, choices, and its line in the trigger form.

Each field of a step config (:mod:`reranker_tasks.config`) is declared with :func:`setting` (or, for a key that
several step configs share, with one :func:`shared` declaration called in each). Its :class:`Setting`, in the
field's metadata, is the single source of

* the range the config checks (:func:`check_ranges`, called by every ``__post_init__``), and
* the DAGs' Params, which ``reranker_airflow.params`` generates from it (type and default from the field,
  ``minimum``/``maximum`` from ``low``/``high``, ``enum`` from ``choices``, ``title``, ``section``, ``doc``).

Checks that are not a range (choices, cross-field rules, formats) stay written by hand in ``__post_init__``; a field
with ``choices`` names the same tuple its check uses. This module never imports Airflow.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import types
from collections.abc import Callable
from dataclasses import MISSING, dataclass
from typing import Any, get_args, get_type_hints

from reranker_tasks.errors import ConfigError

#: The trigger form's sections, in the form's order.
DATA, QUALITY, TRAINING, GATE, HUB = SECTIONS = (
    "Data source",
    "Data validation",
    "Training",
    "Evaluation and gate",
    "Hugging Face Hub",
)

#: The field-metadata key a :class:`Setting` is stored under.
SETTING = "setting"


@dataclass(frozen=True)
class Setting:
    """One conf key's declaration (its type and default are the field's own).

    ``low``/``high``: inclusive bounds, checked for numbers (for ``pos_weight: str | float``, a string is left to
    the field's own check). ``choices``: the fixed set the config's own check accepts. ``doc``: the form's
    description.
    """

    title: str
    section: str
    doc: str
    low: float | None = None
    high: float | None = None
    choices: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if self.section not in SECTIONS:
            raise ValueError(f"{self.title}: section {self.section!r} is not one of {list(SECTIONS)}")

    def field(self, default: Any = MISSING, *, default_factory: Any = MISSING) -> Any:
        """A dataclass field carrying this setting."""
        return dataclasses.field(default=default, default_factory=default_factory, metadata={SETTING: self})


def setting(
    default: Any = MISSING,
    *,
    default_factory: Any = MISSING,
    title: str,
    section: str,
    doc: str,
    low: float | None = None,
    high: float | None = None,
    choices: tuple[str, ...] | None = None,
) -> Any:
    """A step-config field with its bounds and its form entry: ``epochs: float = setting(4.0, low=0.01, ...)``."""
    spec = Setting(title=title, section=section, doc=doc, low=low, high=high, choices=choices)
    return spec.field(default, default_factory=default_factory)


def shared(default: Any, **spec: Any) -> Callable[[], Any]:
    """A key several step configs share (``seed``, ``max_length``, ...), declared once.

    Returns a maker of equal fields, one per config: ``seed: int = SEED()``. ``conf_keys``, ``load_run_config`` and
    the Params treat the key as one setting (same default, bounds and form entry in every step).
    """
    declared = Setting(**spec)
    return lambda: declared.field(default)


def setting_of(field: dataclasses.Field) -> Setting | None:
    """The :class:`Setting` in a field's metadata (``None`` for a field declared without one)."""
    return field.metadata.get(SETTING)


def check_ranges(config: Any) -> None:
    """Check every field of a step config against its setting's ``low``/``high``, in field order."""
    text_ok = _accepts_text(type(config))
    for field in dataclasses.fields(config):
        spec = setting_of(field)
        if spec is None or (spec.low is None and spec.high is None):
            continue
        value = getattr(config, field.name)
        if isinstance(value, str) and field.name in text_ok:
            continue  # pos_weight: "auto" or a number; the bounds are the number's
        check_range(field.name, value, low=spec.low, high=spec.high)


def check_range(key: str, value: float, low: float | None = None, high: float | None = None) -> None:
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"{key}: must be a finite number, got {value!r}")
    if low is not None and value < low:
        raise ConfigError(f"{key}: {value!r} is below the minimum {low!r}")
    if high is not None and value > high:
        raise ConfigError(f"{key}: {value!r} is above the maximum {high!r}")


@functools.cache
def _accepts_text(cls: type) -> frozenset[str]:
    """The fields whose type is a union with ``str`` (a string there is not a number out of range)."""
    hints = get_type_hints(cls)
    return frozenset(
        name for name, hint in hints.items() if isinstance(hint, types.UnionType) and str in get_args(hint)
    )
