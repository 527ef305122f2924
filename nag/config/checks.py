"""Checking values against the declarations of :mod:`nag.config.params`: one function for composition time
(:func:`problem`, used by :mod:`nag.config.schema`) and one decorator for construction time (:func:`checked`).
Imports neither torch nor Lightning."""

from __future__ import annotations

import functools
import inspect
import math
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from typing import Annotated, Any, Literal, Union

from annotated_types import Ge, Gt, Le, Len, Lt, MultipleOf

from nag.config.errors import ConfigError
from nag.config.params import Excludes, Hint, Keys, NotBelow, OneOrLength


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _split(annotation: Any) -> tuple[Any, list[Any]]:
    """``Annotated[T, m1, m2]`` -> ``(T, [m1, m2])``, nested Annotated flattened; anything else -> ``(it, [])``."""
    meta: list[Any] = []
    while typing.get_origin(annotation) is Annotated:
        annotation, *more = typing.get_args(annotation)
        meta = [*more, *meta]
    return annotation, meta


def _members(annotation: Any) -> list[Any]:
    origin = typing.get_origin(annotation)
    if origin is Union or origin is types.UnionType:
        return list(typing.get_args(annotation))
    return [annotation]


def _type_problem(value: Any, annotation: Any) -> str | None:
    """What is wrong with ``value``'s type against a (non-Annotated) type, as a sentence; None if it fits or the
    type is not one the vocabulary describes."""
    members = [_split(m)[0] for m in _members(annotation)]
    if value is None:
        return None if type(None) in members or None in members else "must be set (it is null)"
    kinds = []
    for m in members:
        origin = typing.get_origin(m)
        if m is bool:
            kinds.append("bool")
            if isinstance(value, bool):
                return None
        elif m is int:
            kinds.append("int")
            if _is_int(value):
                return None
        elif m is float:
            kinds.append("float")
            if _is_number(value):
                return None
        elif m is str:
            kinds.append("str")
            if isinstance(value, str):
                return None
        elif origin is Literal:
            kinds.append("literal")
            if value in typing.get_args(m) and not isinstance(value, bool):
                return None
        elif origin in (list, tuple, Sequence, typing.Sequence) or m in (list, tuple):
            kinds.append("list")
            args = typing.get_args(m)
            if isinstance(value, list | tuple) and not isinstance(value, str):
                item = args[0] if args else Any
                if all(_type_problem(v, item) is None for v in value):
                    return None
        elif m is type(None) or m is None:
            continue
        else:
            return None  # not described by the vocabulary (a Mapping, a Tensor): not checked here
    if kinds == ["float", "list"]:
        return "must be a number or a list of numbers"
    if set(kinds) == {"bool", "literal"}:
        choices = [v for m in members if typing.get_origin(m) is Literal for v in typing.get_args(m)]
        return "must be true, false or " + " or ".join(map(str, choices))
    if "literal" in kinds:
        choices = [v for m in members if typing.get_origin(m) is Literal for v in typing.get_args(m)]
        return f"must be one of {', '.join(map(repr, choices))}"
    first = kinds[0] if kinds else ""
    return {
        "bool": "must be true or false",
        "int": "must be an integer",
        "float": "must be a number",
        "str": "must be a string",
        "list": "must be a list",
    }.get(first)


def _bound_problem(x: float, meta: list[Any]) -> str | None:
    if not math.isfinite(x):
        return "must be finite"
    for m in meta:
        if isinstance(m, Gt) and not x > m.gt:
            return f"must be > {m.gt:g}"
        if isinstance(m, Ge) and not x >= m.ge:
            return f"must be >= {m.ge:g}"
        if isinstance(m, Lt) and not x < m.lt:
            return f"must be < {m.lt:g}"
        if isinstance(m, Le) and not x <= m.le:
            return f"must be <= {m.le:,}" if isinstance(m.le, int) else f"must be <= {m.le:g}"
        if isinstance(m, MultipleOf) and _is_int(x) and x % m.multiple_of:
            return f"must be a multiple of {m.multiple_of}"
    return None


def problem(
    value: Any,
    annotation: Any,
    siblings: Callable[[str], Any] = lambda name: None,
    name_of: Callable[[str], str] = lambda name: name,
) -> str | None:
    """What is wrong with ``value`` against its declaration, as the end of a sentence (``must be > 0``), or None.

    Args:
        value: A plain value (lists as lists).
        annotation: The parameter's annotation (a type of the vocabulary, possibly Annotated).
        siblings: The value of another parameter of the same component, by name (for NotBelow, OneOrLength).
        name_of: How to name that parameter in the message (its config path, at composition).
    """
    members = _members(annotation)
    if len(members) > 1:  # a union at the top (Count | None): the member the value is, with its own bounds
        if value is None:
            return None if type(None) in members or None in members else "must be set (it is null)"
        for member in members:
            if member not in (None, type(None)) and _type_problem(value, _split(member)[0]) is None:
                return problem(value, member, siblings, name_of)
        return _type_problem(value, annotation)
    base, meta = _split(annotation)
    hint = next((f" ({m.text})" for m in meta if isinstance(m, Hint)), "")
    kind = _type_problem(value, base)
    if kind:
        return kind
    if value is None:
        return None
    values = list(value) if isinstance(value, list | tuple) else [value]
    for m in meta:
        if isinstance(m, Len) and isinstance(value, list | tuple):
            high = m.max_length if m.max_length is not None else math.inf
            if not m.min_length <= len(value) <= high:
                count = m.min_length if m.max_length == m.min_length else f"{m.min_length} to {high}"
                return f"must have {count} values{hint}"
        if isinstance(m, OneOrLength) and isinstance(value, list | tuple):
            n = siblings(m.other)
            if _is_int(n) and len(value) not in (1, n):
                return f"has {len(value)} values but {name_of(m.other)}={n}: give one value or {n}"
        if isinstance(m, NotBelow):
            other = siblings(m.other)
            if _is_number(other) and _is_number(value) and value < other:
                return f"is smaller than {name_of(m.other)}={other}{': ' + m.why if m.why else ''}"
        if isinstance(m, Excludes) and value in m.values:
            return m.why
        if isinstance(m, Keys) and isinstance(value, Mapping):
            for key, declared in m.declared.items():
                if key in value:
                    found = problem(value[key], declared)
                    if found:
                        return f"has {key}={value[key]!r}: it {found}"
    for x in values:
        if _is_number(x):
            bound = _bound_problem(x, meta)
            if bound:
                return bound + hint
    return None


def _defaults(cls: type) -> dict[str, Any]:
    """The defaults of ``cls.__init__``'s parameters and of the constructors it forwards ``**kwargs`` to."""
    out: dict[str, Any] = {}
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        params = inspect.signature(getattr(init, "__wrapped__", init)).parameters
        for name, p in params.items():
            if p.default is not p.empty:
                out.setdefault(name, p.default)
        if not any(p.kind == p.VAR_KEYWORD for p in params.values()):
            break
    return out


def _annotations(cls: type) -> list[tuple[str, Any]]:
    """The declared parameters of ``cls.__init__`` and of the constructors it forwards ``**kwargs`` to."""
    out: list[tuple[str, Any]] = []
    seen: set[str] = set()
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        init = getattr(init, "__wrapped__", init)
        try:
            hints = typing.get_type_hints(init, include_extras=True)
        except Exception:  # an annotation that names what only a type checker knows
            hints = {}
        params = inspect.signature(init).parameters
        for name, p in params.items():
            if name != "self" and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL) and name not in seen:
                seen.add(name)
                if name in hints:
                    out.append((name, hints[name]))
        if not any(p.kind == p.VAR_KEYWORD for p in params.values()):
            break
    return out


def checked(init: Callable[..., None]) -> Callable[..., None]:
    """Decorator of a component's ``__init__``: check the call's arguments against the declaration, naming the
    class and the parameter (``NormalPrior: variance=-1 must be > 0``); the same rules as at composition."""

    @functools.wraps(init)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> None:
        bound = inspect.signature(init).bind(self, *args, **kwargs)
        bound.apply_defaults()
        given = dict(bound.arguments)
        given.update(
            given.pop(
                next((n for n, p in inspect.signature(init).parameters.items() if p.kind == p.VAR_KEYWORD), "\0"), {}
            )
        )
        problems = []
        known = {**_defaults(type(self)), **given}  # what a sibling is, given or by default
        for name, annotation in _annotations(type(self)):
            if name in given:
                found = problem(_plain(given[name]), annotation, lambda other: _plain(known.get(other)))
                if found:
                    problems.append(f"{name}={_shown(given[name])} {found}")
        if problems:
            raise ConfigError(f"{type(self).__name__}: " + "; ".join(problems) + ".")
        init(self, *args, **kwargs)

    return wrapper


def _plain(value: Any) -> Any:
    """Lists and tuples (and OmegaConf's ListConfig) as lists; tensors of one value as numbers."""
    if hasattr(value, "tolist") and not isinstance(value, list | tuple):
        value = value.tolist()
    if isinstance(value, list | tuple) or type(value).__name__ == "ListConfig":
        return [_plain(v) for v in value]
    return value


def _shown(value: Any) -> str:
    return repr(_plain(value))
