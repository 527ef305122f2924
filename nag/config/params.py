"""How a component declares its parameters: types and ranges in its constructor's signature, once.

A prior, a distance, a net or a data module annotates its ``__init__`` with the vocabulary below (``Count``,
``Positive``, ``Annotated[int, Ge(2), Hint(...)]``, ...). That one declaration is read twice:

- when a config is composed, *without importing the component* (so before torch loads): :mod:`nag.config.schema`
  reads the signature from the source (:mod:`nag.config.signatures`) and checks every value where the component
  sits in the config, naming its config path (``prior.variance=-1 must be > 0``);
- when a component is built from Python (a notebook, a test), :func:`checked` checks the same annotations and
  names the class (``NormalPrior: variance=-1 must be > 0``).

The constraints are annotated-types' (``Gt``, ``Ge``, ``Lt``, ``Le``, ``MultipleOf``, ``Len``), as pydantic reads
them; markers of nag's own relate a parameter to another one or explain a bound (``NotBelow``, ``OneOrLength``,
``Excludes``, ``Keys``, ``Hint``). How values are checked against them is :mod:`nag.config.checks`'s; ``checked``
is re-exported here so a component imports its declaration vocabulary from one place. This module imports
neither torch nor Lightning.
"""

from __future__ import annotations

import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal, Union

from annotated_types import Ge, Gt, Le, Len, Lt, MultipleOf


@dataclass(frozen=True)
class Hint:
    """Why a bound holds, appended to its message (``must be >= 2 (batch norm needs two images)``)."""

    text: str


@dataclass(frozen=True)
class NotBelow:
    """At least the value of the sibling parameter ``other`` (``crop`` is not below ``image_size``)."""

    other: str
    why: str = ""


@dataclass(frozen=True)
class OneOrLength:
    """A list of one value, or of as many values as the sibling parameter ``other`` says (one per dimension)."""

    other: str


@dataclass(frozen=True)
class Excludes:
    """Not one of ``values`` (``trainer.max_epochs`` is not 0), with why."""

    values: tuple[Any, ...]
    why: str


class Keys:
    """A mapping parameter whose listed keys are declared too (``optimizer: Annotated[Mapping, Keys(lr=Positive)]``:
    the optimizer config's ``lr``)."""

    def __init__(self, **declared: Any) -> None:
        self.declared = declared

    def __repr__(self) -> str:
        return f"Keys({', '.join(self.declared)})"


#: An integer >= 1, >= 0.
Count = Annotated[int, Ge(1)]
#: A split size: >= 1, and at most ten million images (CelebA's training split has 162,770), so a stored config
#: cannot claim a dataset that would fill the disk before the cache's own room check (nag.data.cache).
SplitSize = Annotated[int, Ge(1), Le(10_000_000)]
NonNegativeInt = Annotated[int, Ge(0)]
#: A number > 0, >= 0, in [0, 1).
Positive = Annotated[float, Gt(0)]
NonNegative = Annotated[float, Ge(0)]
Fraction = Annotated[float, Ge(0), Lt(1)]
#: One number, or one per latent dimension.
Floats = Union[float, Sequence[float]]  # noqa: UP007  (evaluated at run time on Python 3.10)
PositiveFloats = Annotated[Floats, Gt(0)]
#: True, false, or "auto" (decided where it runs).
BoolOrAuto = Union[bool, Literal["auto"]]  # noqa: UP007

#: The names a declaration may use, for reading signatures from source (:mod:`nag.config.signatures`).
VOCABULARY: dict[str, Any] = {
    "Annotated": Annotated,
    "Literal": Literal,
    "Union": Union,
    "Optional": typing.Optional,
    "Any": Any,
    "Sequence": Sequence,
    "Mapping": Mapping,
    "list": list,
    "tuple": tuple,
    "dict": dict,
    "int": int,
    "float": float,
    "bool": bool,
    "str": str,
    "None": None,
    "Ge": Ge,
    "Gt": Gt,
    "Le": Le,
    "Lt": Lt,
    "MultipleOf": MultipleOf,
    "Len": Len,
    "Hint": Hint,
    "NotBelow": NotBelow,
    "OneOrLength": OneOrLength,
    "Excludes": Excludes,
    "Keys": Keys,
    "Count": Count,
    "SplitSize": SplitSize,
    "NonNegativeInt": NonNegativeInt,
    "Positive": Positive,
    "NonNegative": NonNegative,
    "Fraction": Fraction,
    "Floats": Floats,
    "PositiveFloats": PositiveFloats,
    "BoolOrAuto": BoolOrAuto,
}


def checked(init: Any) -> Any:
    """See :func:`nag.config.checks.checked` (imported when the component is defined, not before)."""
    from nag.config.checks import checked as _checked

    return _checked(init)
