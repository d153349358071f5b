"""Search spaces written as strings in config files: ``"log(1e-4, 1e-1)"`` <-> :class:`~hyperoptax.LogSpace`.

``results.json`` describes each searched name with :func:`describe_space` (its string, its axis scale and,
for a choice, its values), so reports and plots read the results without parsing spaces back.
"""

from __future__ import annotations

import ast

from hyperoptax import spaces as sp
from hyperoptax.errors import ConfigurationError, HyperoptaxError, closest

__all__ = ["parse_space", "space_spec", "build_space", "describe_space", "SPACE_KINDS"]

SPACE_KINDS = {
    "linear": sp.LinearSpace, "log": sp.LogSpace, "int": sp.QLinearSpace, "qlinear": sp.QLinearSpace,
    "int_log": sp.QLogSpace, "qlog": sp.QLogSpace, "choice": sp.DiscreteSpace,
}
_EXAMPLE = "Write e.g. 'log(1e-4, 1e-1)', 'linear(0, 0.5)', 'int(1, 4)' or \"choice('adam', 'sgd')\"."


def parse_space(spec) -> sp.Space:
    """``"log(1e-4, 1e-1)"``, ``"linear(0, 0.5)"``, ``"int(1, 4)"``, ``"int_log(8, 256)"``,
    ``"choice(32, 64)"``, ``"choice('adam', 'sgd')"`` (or a Space) -> a hyperoptax Space."""
    if isinstance(spec, sp.Space):
        return spec
    if not isinstance(spec, str):
        raise ConfigurationError(f"A search space must be a string such as 'log(1e-4, 1e-1)', got {spec!r}. {_EXAMPLE}")
    try:
        node = ast.parse(spec.strip(), mode="eval").body
    except SyntaxError:
        node = None
    if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)):
        raise ConfigurationError(f"Cannot parse the search space {spec!r}. {_EXAMPLE}")
    kind = node.func.id
    if kind not in SPACE_KINDS:
        raise ConfigurationError(
            f"Unknown search space kind {kind!r} in {spec!r}. Allowed: {', '.join(SPACE_KINDS)}."
            f"{closest(kind, SPACE_KINDS)}"
        )
    try:
        args = [ast.literal_eval(a) for a in node.args]
        kwargs = {kw.arg: ast.literal_eval(kw.value) for kw in node.keywords}
    except ValueError:
        raise ConfigurationError(f"The arguments of {spec!r} must be literals (numbers, strings). {_EXAMPLE}") from None
    if kind == "choice":
        return sp.DiscreteSpace(tuple(args), **kwargs)
    try:
        return SPACE_KINDS[kind](*args, **kwargs)
    except TypeError as err:
        raise ConfigurationError(f"{spec!r}: {err}. {_EXAMPLE}") from None


def space_spec(leaf: sp.Space) -> str:
    """The string form of a Space (inverse of :func:`parse_space`)."""
    if isinstance(leaf, sp.DiscreteSpace):
        return f"choice({', '.join(repr(v) for v in leaf.values)})"
    kind = {sp.QLogSpace: "int_log", sp.QLinearSpace: "int", sp.LogSpace: "log", sp.LinearSpace: "linear"}[type(leaf)]
    base = f", base={leaf.base!r}" if isinstance(leaf, sp.LogSpace) and leaf.base != 10 else ""
    return f"{kind}({leaf.lower_bound!r}, {leaf.upper_bound!r}{base})"


def build_space(space_config) -> dict[str, sp.Space]:
    """``config.search.space`` (name -> spec string; None drops an entry) -> dict of Spaces."""
    items = dict(space_config.items()) if space_config is not None else {}
    space = {}
    for name, spec in items.items():
        if spec is None:
            continue
        try:
            space[name] = parse_space(spec)
        except HyperoptaxError as err:
            raise type(err)(f"search.space.{name}: {err}") from None
    if not space:
        raise ConfigurationError(
            "config.search.space is empty. Add e.g. config.search.space = {'learning_rate': 'log(1e-4, 1e-1)'}."
        )
    return space


def describe_space(space: dict[str, sp.Space]) -> dict[str, dict]:
    """Per name: ``spec`` (the string), ``scale`` (``"linear"``, ``"log"`` or ``"categorical"``: how to
    draw its axis) and, for a choice, its ``values``. JSON-ready, for ``results.json``."""
    out = {}
    for name, leaf in space.items():
        entry = {"spec": space_spec(leaf)}
        if isinstance(leaf, sp.DiscreteSpace):
            entry.update(scale="categorical", values=list(leaf.values))
        else:
            entry["scale"] = "log" if isinstance(leaf, sp.LogSpace) else "linear"
        out[name] = entry
    return out
