"""A component's declared parameters, read from its source without importing it (so before torch loads).

``parameters("nag.model.priors.NormalPrior")`` parses ``nag/model/priors.py`` with :mod:`ast`, finds the class's
``__init__`` and evaluates each parameter's annotation in :data:`nag.config.params.VOCABULARY` alone (an
annotation outside it, such as ``Tensor`` or ``Mapping[str, Any]``, is not checked). A constructor that forwards
``**kwargs`` to its base class contributes the base's parameters too, the base found through the module's own
imports. nag's own modules and top-level modules are read (a prior of your own in ``my_priors.py`` is checked
like nag's); a class inside a package not imported yet (torch's optimizers, Lightning's Trainer) is not, since
finding it would import that package: nag declares what it sets of those where it uses them (``Keys`` in
:class:`~nag.training.module.NAGModule`, the entry points' key classes).
"""

from __future__ import annotations

import ast
import importlib.util
import sys
from functools import lru_cache
from pathlib import Path
from typing import Any

from nag.config.params import VOCABULARY


def _evaluate(node: ast.expr) -> Any:
    """An annotation's value in the vocabulary, or None when it names anything else."""
    try:
        return eval(compile(ast.Expression(node), "<annotation>", "eval"), {"__builtins__": {}}, dict(VOCABULARY))  # noqa: S307
    except Exception:  # a name outside the vocabulary: the parameter is not declared for checking
        return None


@lru_cache(maxsize=256)
def _module(module: str) -> tuple[dict[str, ast.ClassDef], dict[str, str]] | None:
    """The classes of a nag module and the names it imports (name -> dotted path), or None without source."""
    top = module.partition(".")[0]
    if top != "nag" and "." in module and top not in sys.modules:
        return None  # finding a submodule imports its package (torch, lightning): not before a config is checked
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.origin or not spec.origin.endswith(".py"):
        return None
    tree = ast.parse(Path(spec.origin).read_text(encoding="utf-8"))
    classes = {n.name: n for n in tree.body if isinstance(n, ast.ClassDef)}
    imports = {}
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                imports[alias.asname or alias.name] = f"{node.module}.{alias.name}"
    return classes, imports


@lru_cache(maxsize=256)
def parameters(target: str, depth: int = 0) -> tuple[tuple[str, Any], ...] | None:
    """``((name, annotation), ...)`` of ``target``'s constructor and the base constructors it forwards ``**kwargs``
    to; annotations outside the vocabulary are None. None when ``target`` is not a class of nag's own source."""
    module, _, name = target.rpartition(".")
    found = _module(module) if module and depth < 8 else None
    if found is None:
        return None
    classes, imports = found
    cls = classes.get(name)
    if cls is None:
        return parameters(imports[name], depth + 1) if name in imports else None
    init = next((n for n in cls.body if isinstance(n, ast.FunctionDef) and n.name == "__init__"), None)
    out: list[tuple[str, Any]] = []
    forwards = init is None or init.args.kwarg is not None
    if init is not None:
        args = [*init.args.posonlyargs, *init.args.args, *init.args.kwonlyargs]
        out = [(a.arg, _evaluate(a.annotation) if a.annotation is not None else None) for a in args if a.arg != "self"]
    if forwards:
        for base in cls.bases:
            if isinstance(base, ast.Name):
                where = f"{module}.{base.id}" if base.id in classes else imports.get(base.id)
                inherited = parameters(where, depth + 1) if where else None
                names = {n for n, _ in out}
                out += [(n, a) for n, a in inherited or () if n not in names]
    return tuple(out)
