"""Changing a recipe's settings for one run: ``--set KEY=VALUE`` on the command line,
``run(name, overrides={KEY: value})`` from Python.

A key names an entry of the size's settings dict (``recipe.settings(size)``; an entry that only
another size of the recipe defines is accepted too), or one entry of a dict setting as
``KEY.SUBKEY`` (e.g. ``fit.lr``). The new value must have the type of the value it replaces:

- int, float: ``12``, ``3e-4`` (an int setting takes a whole number, ``1e4`` included);
- bool: ``true``/``false`` (also ``1``/``0``, ``yes``/``no``, ``on``/``off``);
- str: the text as is (``adam``);
- list, tuple, dict: a Python literal (``[0,25,50]``, ``"['fixed learnt','decoupled']"``,
  ``"{'optimizer':'sgd','lr':0.1,'batch_size':32}"``); elements are checked against the
  elements of the list they replace, and the entries of a dict against the entries it has.

An entry that some size of the recipe leaves out (e.g. ``lr_schedule``, absent at ``paper``: a
constant step) can be left out at any size with the value ``None`` (``--set lr_schedule=None``).

A string value from Python is parsed the same way; other Python values are checked (and an int
becomes a float where a float is expected). ``seeds`` is not a setting here: the seed count is
``--seeds K`` (``run(..., seeds=K)``). Everything is checked before any work starts.
"""
from __future__ import annotations

import ast
import copy
import hashlib
import json
import math
import re

from .recipe import SIZES

__all__ = ["parse_assignments", "check_overrides", "apply_overrides", "folder_suffix", "SYNTAX"]

SYNTAX = ("KEY=VALUE, repeatable: KEY a setting of the size (or KEY.SUBKEY inside a dict setting, e.g. "
          "fit.lr); VALUE of the type it replaces: int/float (12, 3e-4), bool (true/false), str as is, "
          "list/tuple/dict as a Python literal ([0,25,50], \"['fixed learnt']\")")

_TRUE, _FALSE = {"true", "1", "yes", "on"}, {"false", "0", "no", "off"}
_SAFE = re.compile(r"^[A-Za-z0-9._=+,-]*$")


def parse_assignments(items):
    """["KEY=VALUE", ...] -> {KEY: "VALUE"} (the values still text); ValueError for an item
    without "=" or a key given twice."""
    out = {}
    for item in items or ():
        key, sep, value = str(item).partition("=")
        key = key.strip()
        if not sep or not key:
            raise ValueError(f"--set {item!r}: expected KEY=VALUE")
        if key in out:
            raise ValueError(f"--set {key}: given twice ({out[key]!r} and {value!r})")
        out[key] = value
    return out


def _template(recipe, size):
    """The settings of ``size``, completed by the entries only other sizes define (and, inside
    dict settings, their extra entries): what each key's value type is checked against."""
    merged = {}
    for other in [s for s in SIZES if s != size] + [size]:  # the size's own values last: they win
        for key, value in recipe.settings(other).items():
            if isinstance(value, dict) and isinstance(merged.get(key), dict):
                merged[key] = {**merged[key], **value}
            else:
                merged[key] = value
    return merged


def _kind(template):
    if isinstance(template, bool):
        return "bool (true/false)"
    if isinstance(template, (list, tuple)):
        inner = _element(template)
        return f"{type(template).__name__}" + (f" of {_kind(inner)}" if inner is not None else "") + " (a literal)"
    if isinstance(template, dict):
        return "dict (a literal)"
    if template is None:
        return "any literal"
    return type(template).__name__


def _element(template):
    """The template of a list's elements: its first element when all elements share a type."""
    if not template:
        return None
    kinds = {type(v) for v in template}
    if kinds <= {int, float}:
        return float(template[0]) if float in kinds else template[0]
    return template[0] if len(kinds) == 1 else None


class _Bad(ValueError):
    pass


def _parse(text, template):
    """A command-line value as the type of ``template``."""
    t = text.strip()
    if isinstance(template, bool):
        if t.lower() in _TRUE:
            return True
        if t.lower() in _FALSE:
            return False
        raise _Bad
    try:
        return ast.literal_eval(t)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        if template is None:
            return text
        if isinstance(template, float):
            try:
                return float(t)  # inf, nan
            except ValueError:
                pass
        raise _Bad from None


def _coerce(value, template):
    """``value`` (a str is parsed first unless a str is expected) as the type of ``template``;
    _Bad if it has another type."""
    if isinstance(value, str) and not isinstance(template, str):
        value = _parse(value, template)
    if template is None:
        return value
    if isinstance(template, bool):
        if not isinstance(value, bool):
            raise _Bad
        return value
    if isinstance(template, int):
        if isinstance(value, bool):
            raise _Bad
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if not isinstance(value, int):
            raise _Bad
        return value
    if isinstance(template, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise _Bad
        return float(value)
    if isinstance(template, str):
        if not isinstance(value, str):
            raise _Bad
        return value
    if isinstance(template, (list, tuple)):
        if not isinstance(value, (list, tuple)):
            raise _Bad
        inner = _element(template)
        items = [v if inner is None else _coerce(v, inner) for v in value]
        return type(template)(items)
    if isinstance(template, dict):
        if not isinstance(value, dict):
            raise _Bad
        return {k: _coerce(v, template[k]) if k in template else v for k, v in value.items()}
    return value


def _plain(obj):
    return json.loads(json.dumps(obj, default=list))


def check_overrides(recipe, size, overrides):
    """{key: value} of the settings ``overrides`` changes at ``size``, each value parsed and
    checked against the type of the setting it replaces; entries equal to the size's own value
    are dropped. ValueError naming the key for an unknown key (listing the valid ones) or a
    value of the wrong type (naming the expected type)."""
    if not overrides:
        return {}
    if not isinstance(overrides, dict):
        raise TypeError(f"overrides: expected a dict {{setting: value}}, got {type(overrides).__name__}")
    template = _template(recipe, size)
    own = recipe.settings(size)
    valid = sorted(k for k in template if k != "seeds")
    both = [k for k in overrides if isinstance(k, str) and "." in k and k.partition(".")[0] in overrides]
    if both:  # the whole dict would replace the entry, or the entry patch the whole: ambiguous
        top = both[0].partition(".")[0]
        raise ValueError(f"setting {both[0]}: {top} is set as a whole too; give the entry inside {top}'s value, "
                         f"or set only {top}.ENTRY")
    out = {}
    for key, value in overrides.items():
        if not isinstance(key, str):
            raise TypeError(f"overrides: setting names are str, got {key!r}")
        if key == "seeds":
            raise ValueError("seeds: the seed count is not a setting here; use --seeds K (run(..., seeds=K))")
        top, _, sub = key.partition(".")
        if top not in template or top == "seeds":
            raise ValueError(f"unknown setting {top!r} of recipe {recipe.name}; its settings: {', '.join(valid)}")
        slot = template[top]
        current = own.get(top)
        if sub:
            if not isinstance(slot, dict):
                raise ValueError(f"setting {key!r}: {top} is a {_kind(slot)}, not a dict; set {top}=VALUE")
            if sub not in slot:
                raise ValueError(f"unknown entry {sub!r} of setting {top} (recipe {recipe.name}); its entries: "
                                 f"{', '.join(sorted(map(str, slot)))}")
            if not isinstance(current, dict):
                raise ValueError(f"setting {key!r}: size {size} has no {top} setting to change; set {top} as a whole")
            slot, current = slot[sub], current.get(sub)
        if _is_none(value) and _optional(recipe, top, sub):
            # left out, as in the sizes without it (a change only if this size has it)
            if (sub and sub in own[top]) or (not sub and top in own):
                out[key] = None
            continue
        try:
            coerced = _coerce(value, slot)
        except _Bad:
            where = f"its {size} value is {current!r}" if top in own else f"another size's value is {slot!r}"
            raise ValueError(f"setting {key}: expected {_kind(slot)} ({where}), got {value!r}; "
                             f"syntax: {SYNTAX}") from None
        _check_range(recipe, key, top, sub, coerced)
        if top not in own or _plain(coerced) != _plain(current):
            out[key] = coerced
    return out


def _is_none(value):
    return value is None or (isinstance(value, str) and value.strip() in ("None", "none", "null"))


def _optional(recipe, top, sub):
    """Whether some size of ``recipe`` leaves out setting ``top`` (``sub``: that entry of the dict
    setting ``top``): the recipe then reads it with a default, and None may leave it out."""
    for size in SIZES:
        settings = recipe.settings(size)
        if not sub and top not in settings:
            return True
        if sub and isinstance(settings.get(top), dict) and sub not in settings[top]:
            return True
    return False


def _check_range(recipe, key, top, sub, value):
    """ValueError for a value outside what every size of the recipe has: a number that is
    positive in every size (epochs, images, filters, a learning rate, a threshold) must stay a
    finite number > 0, and a list that is non-empty in every size must stay non-empty, so that
    a bad value fails here, before any work, and not deep inside a task. The same holds for each
    entry of a list whose entries are all positive in every size (e.g. widths)."""
    values = []
    for size in SIZES:
        v = recipe.settings(size).get(top)
        if sub:
            v = v.get(sub) if isinstance(v, dict) else None
        if v is not None:
            values.append(v)
    if not values:
        return
    numbers = [v for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)]
    if len(numbers) == len(values) and all(v > 0 for v in numbers) and isinstance(value, (int, float)):
        if not (math.isfinite(value) and value > 0):
            raise ValueError(f"setting {key}: must be a finite number > 0 (every size of {recipe.name} has one: "
                             f"{', '.join(map(repr, values))}), got {value!r}")
    if all(isinstance(v, (list, tuple)) and v for v in values) and isinstance(value, (list, tuple)):
        if not value:
            raise ValueError(f"setting {key}: must not be empty (every size of {recipe.name} has entries)")
        # a list of counts or rates (e.g. widths): positive in every size, so each entry must stay so
        elements = [e for v in values for e in v]
        if all(isinstance(e, (int, float)) and not isinstance(e, bool) and e > 0 for e in elements):
            bad = [e for e in value if isinstance(e, (int, float)) and not (math.isfinite(e) and e > 0)]
            if bad:
                raise ValueError(f"setting {key}: every entry must be a finite number > 0 (as in every size of "
                                 f"{recipe.name}), got {bad[0]!r}")


def apply_overrides(settings, overrides):
    """A copy of ``settings`` with checked ``overrides`` (see :func:`check_overrides`) applied."""
    out = copy.deepcopy(settings)
    for key, value in overrides.items():
        top, _, sub = key.partition(".")
        if value is None:  # left out (see check_overrides)
            if sub:
                out[top] = {k: v for k, v in out[top].items() if k != sub}
            else:
                out.pop(top, None)
        elif sub:
            out[top] = dict(out[top], **{sub: copy.deepcopy(value)})
        else:
            out[top] = copy.deepcopy(value)
    return out


def folder_suffix(overrides):
    """A folder-name suffix that tells runs with different ``overrides`` apart, e.g.
    "epochs=12,relu_epochs=30" ("" without overrides); long or unsafe text is shortened and
    followed by a hash of the whole."""
    if not overrides:
        return ""
    canonical = json.dumps(_plain(overrides), sort_keys=True, separators=(",", ":"))
    parts = []
    for key in sorted(overrides):
        v = _plain(overrides[key])
        parts.append(f"{key}={v if isinstance(v, str) else json.dumps(v, separators=(',', ':'))}")
    text = ",".join(parts)
    if _SAFE.match(text) and len(text) <= 80:
        return text
    safe = re.sub(r"[^A-Za-z0-9._=+,-]+", "-", text)[:60].rstrip("-")
    return f"{safe}-{hashlib.sha1(canonical.encode()).hexdigest()[:8]}"
