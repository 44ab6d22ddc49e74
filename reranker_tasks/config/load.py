"""From a flat DAG-run conf to a :class:`RunConfig`: the accepted keys, their types and settings, strict coercion.

Part of :mod:`reranker_tasks.config` (import from there).
"""

from __future__ import annotations

import math
import types
from collections.abc import Mapping
from dataclasses import MISSING, fields
from typing import Any, get_args, get_origin, get_type_hints

from reranker_tasks.config.steps import STEP_CONFIGS, RunConfig
from reranker_tasks.config_fields import Setting, setting_of
from reranker_tasks.errors import ConfigError


def conf_keys() -> dict[str, tuple[type, Any]]:
    """Every accepted conf key with its type and default (a key shared by two steps, e.g. ``seed``, appears once)."""
    keys: dict[str, tuple[type, Any]] = {}
    for cls in STEP_CONFIGS.values():
        hints = get_type_hints(cls)
        for f in fields(cls):
            if f.default is not MISSING:
                default = f.default
            elif f.default_factory is not MISSING:
                default = f.default_factory()
            else:  # pragma: no cover - every field has a default
                default = None
            hint = hints[f.name]
            kind = hint if isinstance(hint, types.UnionType) else (get_origin(hint) or hint)
            keys.setdefault(f.name, (kind, default))
    return keys


def conf_settings() -> dict[str, Setting]:
    """Every accepted conf key's :class:`~reranker_tasks.config_fields.Setting` (bounds, choices, form entry).

    Same keys and order as :func:`conf_keys`. A key shared by several steps is one setting: every step declares it
    from the same :func:`~reranker_tasks.config_fields.shared` declaration, and this raises if two steps disagree.
    """
    settings: dict[str, Setting] = {}
    for cls in STEP_CONFIGS.values():
        for f in fields(cls):
            spec = setting_of(f)
            if spec is None:
                raise TypeError(f"{cls.__name__}.{f.name}: a conf key must be declared with setting() or shared()")
            first = settings.setdefault(f.name, spec)
            if first != spec:
                raise TypeError(
                    f"{cls.__name__}.{f.name}: declared unlike the step before it ({first} vs {spec}); "
                    "declare a shared key once with shared()"
                )
    return settings



def load_run_config(conf: Mapping[str, Any] | None) -> RunConfig:
    """Build and validate the run configuration from a flat DAG-run conf.

    Args:
        conf: the DAG-run conf (``None`` or ``{}`` means all defaults).

    Returns:
        The frozen run configuration.

    Raises:
        ConfigError: on an unknown key, a wrong type or an out-of-range value; the message names the key.
    """
    conf = dict(conf or {})
    known = conf_keys()
    unknown = sorted(set(conf) - set(known))
    if unknown:
        raise ConfigError(
            f"unknown conf key(s) {unknown}; accepted keys are {sorted(known)} (see README, 'Configuration')"
        )
    for key, value in conf.items():
        conf[key] = _coerce(key, value, known[key][0])
    parts: dict[str, Any] = {}
    for step, cls in STEP_CONFIGS.items():
        names = {f.name for f in fields(cls)}
        parts[step] = cls(**{k: v for k, v in conf.items() if k in names})
    return RunConfig(**parts)


def _coerce(key: str, value: Any, expected: type) -> Any:
    """Check a conf value against its declared type; only int → float is converted."""
    if isinstance(expected, types.UnionType):  # pos_weight: "auto" or a number
        members = get_args(expected)
        if isinstance(value, str) and str in members:
            return value
        if float in members and isinstance(value, (int, float)) and not isinstance(value, bool):
            return _coerce(key, value, float)
        raise ConfigError(f"{key}: expected a string or a number, got {type(value).__name__} {value!r}")
    if expected is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: expected true/false, got {type(value).__name__} {value!r}")
        return value
    if expected is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key}: expected an integer, got {type(value).__name__} {value!r}")
        return value
    if expected is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{key}: expected a number, got {type(value).__name__} {value!r}")
        if not math.isfinite(value):
            raise ConfigError(f"{key}: must be a finite number, got {value!r}")
        return float(value)
    if expected is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key}: expected a string, got {type(value).__name__} {value!r}")
        return value
    if expected is dict:
        if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
            raise ConfigError(f"{key}: expected a JSON object, got {type(value).__name__} {value!r}")
        return dict(value)
    if expected is list:
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"{key}: expected a list of strings, got {type(value).__name__} {value!r}")
        return list(value)
    raise ConfigError(f"{key}: unsupported type {expected}")  # pragma: no cover - programming error

