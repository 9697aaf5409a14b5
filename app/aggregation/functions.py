"""The catalogue of Tecton's aggregation functions (reference §2.1, §3.3): how a definition
spells them, their parameters, the input types each takes, the output type and the name part.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from typing import Any

from app.types import FeatureType

NUMERIC = ("Int64", "Int32", "Float64")
ANY_TYPE = "*"  # count takes every type
ARRAY = "Array"  # any Array(T)
MAX_N = 1000


@dataclass(frozen=True, slots=True)
class FunctionKind:
    """One row of the catalogue."""

    name: str  # canonical name used in stored specs
    inputs: tuple[str, ...]  # scalar spellings, ARRAY for any array, ANY_TYPE for everything
    output: str  # "input", "array" (Array of the input type) or a scalar spelling
    params: tuple[str, ...] = ()  # parameter names, in positional order
    defaults: tuple[tuple[str, Any], ...] = ()


_CATALOGUE: dict[str, FunctionKind] = {
    k.name: k
    for k in (
        FunctionKind("count", (ANY_TYPE,), "Int64"),
        FunctionKind("sum", NUMERIC, "input"),
        FunctionKind("mean", NUMERIC, "Float64"),
        FunctionKind("min", (*NUMERIC, "String"), "input"),
        FunctionKind("max", (*NUMERIC, "String"), "input"),
        FunctionKind("last", (*NUMERIC, "Bool", "String", ARRAY), "input"),
        FunctionKind("var_samp", NUMERIC, "Float64"),
        FunctionKind("var_pop", NUMERIC, "Float64"),
        FunctionKind("stddev_samp", NUMERIC, "Float64"),
        FunctionKind("stddev_pop", NUMERIC, "Float64"),
        FunctionKind(
            "last_n", ("String", "Int64", "Float32", "Float64", "Bool", ARRAY), "array", ("n",)
        ),
        FunctionKind(
            "first_n", ("String", "Int64", "Float32", "Float64", "Bool", ARRAY), "array", ("n",)
        ),
        FunctionKind("last_distinct_n", ("String", "Int64"), "array", ("n",)),
        FunctionKind("first_distinct_n", ("String", "Int64"), "array", ("n",)),
        FunctionKind(
            "approx_count_distinct",
            ("String", "Int32", "Int64"),
            "Int64",
            ("precision",),
            (("precision", 8),),
        ),
        FunctionKind(
            "approx_percentile",
            ("Float32", "Float64", "Int32", "Int64"),
            "Float64",
            ("percentile", "precision"),
            (("precision", 100),),
        ),
    )
}

# Spellings without parentheses → catalogue kind. Aliases keep their own spelling in names.
_PLAIN = {
    "count": "count",
    "sum": "sum",
    "mean": "mean",
    "min": "min",
    "max": "max",
    "last": "last",
    "var_samp": "var_samp",
    "variance": "var_samp",
    "var_pop": "var_pop",
    "stddev_samp": "stddev_samp",
    "stddev": "stddev_samp",
    "stddev_pop": "stddev_pop",
}
# Spellings with parentheses (Tecton's helper functions) → catalogue kind.
_CALLS = {
    "last": "last_n",
    "first": "first_n",
    "last_distinct": "last_distinct_n",
    "first_distinct": "first_distinct_n",
    "approx_count_distinct": "approx_count_distinct",
    "approx_percentile": "approx_percentile",
}
_SPELLING = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(?:\((.*)\))?\s*$", re.DOTALL)
KNOWN_SPELLINGS = (
    *_PLAIN,
    "last(n)",
    "first(n)",
    "last_distinct(n)",
    "first_distinct(n)",
    "approx_count_distinct(precision)",
    "approx_percentile(percentile, precision)",
)


class FunctionError(ValueError):
    """A function spelling that is unknown or has a bad parameter."""


@dataclass(frozen=True, slots=True)
class AggregateFunction:
    """A parsed function: its catalogue kind, its parameters and its name as written."""

    kind: str
    written: str  # the plain spelling as written (`stddev`, `SUM`) or the helper name (`last`)
    n: int | None = None
    precision: int | None = None
    percentile: float | None = None

    @property
    def catalogue(self) -> FunctionKind:
        return _CATALOGUE[self.kind]

    @property
    def resolved_name(self) -> str:
        """The function's part of a default feature name (reference §3.3)."""
        if self.kind in ("last_n", "first_n", "last_distinct_n", "first_distinct_n"):
            return f"{self.written}_{self.n}"
        if self.kind == "approx_percentile":
            return "approx_percentile_p" + str(self.percentile).replace(".", "_")
        return self.written

    @property
    def spelling(self) -> str:
        """The canonical definition spelling, which `parse_function` reads back."""
        if self.kind in ("last_n", "first_n", "last_distinct_n", "first_distinct_n"):
            return f"{self.written}({self.n})"
        if self.kind == "approx_count_distinct":
            return f"approx_count_distinct({self.precision})"
        if self.kind == "approx_percentile":
            return f"approx_percentile({self.percentile!r}, {self.precision})"
        return self.written

    @property
    def is_count(self) -> bool:
        """`requestOptions.coerceNullCountsToZero` applies to this function."""
        return self.kind == "count"

    def accepts(self, input_type: FeatureType) -> bool:
        allowed = self.catalogue.inputs
        if ANY_TYPE in allowed:
            return True
        if input_type.kind == "Array":
            return ARRAY in allowed
        return input_type.kind in allowed

    def output_type(self, input_type: FeatureType) -> str:
        """The output type's spelling for a column of `input_type` (which it must accept)."""
        output = self.catalogue.output
        if output == "input":
            return input_type.spelling
        if output == "array":
            return f"Array({input_type.spelling})"
        return output

    def input_types_text(self) -> str:
        allowed = self.catalogue.inputs
        if ANY_TYPE in allowed:
            return "any type"
        return ", ".join("Array(T)" if t == ARRAY else t for t in allowed)


def parse_function(text: object) -> AggregateFunction:
    """`sum`, `stddev`, `last(3)`, `approx_percentile(0.5, precision=200)` → the function;
    raise FunctionError with a message that says what is wrong."""
    if not isinstance(text, str):
        raise FunctionError(f"must be a function name such as sum or last(3), not {text!r}")
    match = _SPELLING.match(text)
    if not match:
        raise FunctionError(f"cannot read function {text!r}; write e.g. sum or last_distinct(3)")
    written, arguments = match.group(1), match.group(2)
    if arguments is None:
        kind = _PLAIN.get(written.lower())
        if kind is None:
            if written.lower() in _CALLS:
                params = ", ".join(_CATALOGUE[_CALLS[written.lower()]].params)
                raise FunctionError(f"{written} needs parameters: {written}({params})")
            raise _unknown(text)
        return AggregateFunction(kind, written)
    name = written.lower()
    if name not in _CALLS:
        if name in _PLAIN:
            raise FunctionError(f"{written} takes no parameters; write {written}")
        raise _unknown(text)
    catalogue = _CATALOGUE[_CALLS[name]]
    values = _arguments(text, arguments, catalogue)
    return _checked(catalogue, name, values)


def _unknown(text: str) -> FunctionError:
    return FunctionError(
        f"unknown aggregation function {text!r}; use one of " + ", ".join(KNOWN_SPELLINGS)
    )


def _arguments(text: str, arguments: str, catalogue: FunctionKind) -> dict[str, Any]:
    """Positional and keyword literals → {parameter: value}, defaults filled in."""
    try:
        call = ast.parse(f"f({arguments})", mode="eval").body
    except SyntaxError:
        raise FunctionError(f"cannot read the parameters of {text!r}") from None
    assert isinstance(call, ast.Call)  # noqa: S101 (the parse above always yields a call)
    values: dict[str, Any] = {}
    if len(call.args) > len(catalogue.params):
        raise FunctionError(
            f"{text!r} has too many parameters; it takes ({', '.join(catalogue.params)})"
        )
    for param, node in zip(catalogue.params, call.args, strict=False):
        values[param] = _literal(text, param, node)
    for keyword in call.keywords:
        if keyword.arg not in catalogue.params:
            raise FunctionError(f"{text!r}: unknown parameter {keyword.arg!r}")
        if keyword.arg in values:
            raise FunctionError(f"{text!r}: parameter {keyword.arg!r} given twice")
        values[keyword.arg] = _literal(text, keyword.arg, keyword.value)
    for param, default in catalogue.defaults:
        values.setdefault(param, default)
    missing = [p for p in catalogue.params if p not in values]
    if missing:
        raise FunctionError(f"{text!r}: missing parameter {missing[0]!r}")
    return values


def _literal(text: str, param: str, node: ast.expr) -> Any:
    try:
        return ast.literal_eval(node)
    except ValueError:
        raise FunctionError(f"{text!r}: {param} must be a number") from None


def _checked(catalogue: FunctionKind, written: str, values: dict[str, Any]) -> AggregateFunction:
    label = f"{written}(...)"
    if "n" in values:
        n = values["n"]
        if isinstance(n, bool) or not isinstance(n, int) or not 0 < n <= MAX_N:
            raise FunctionError(f"{label}: n must be an integer from 1 to {MAX_N}, not {n!r}")
        return AggregateFunction(catalogue.name, written, n=n)
    precision = values["precision"]
    if catalogue.name == "approx_count_distinct":
        if (
            isinstance(precision, bool)
            or not isinstance(precision, int)
            or not 4 <= precision <= 16
        ):
            raise FunctionError(
                f"{label}: precision must be an integer from 4 to 16, not {precision!r}"
            )
        return AggregateFunction(catalogue.name, written, precision=precision)
    percentile = values["percentile"]
    if not isinstance(percentile, float) or not 0.0 <= percentile <= 1.0:
        hint = (
            f" (write {percentile}.0)"
            if isinstance(percentile, int) and percentile in (0, 1)
            else ""
        )
        raise FunctionError(
            f"{label}: percentile must be a float from 0.0 to 1.0, not {percentile!r}{hint}"
        )
    if isinstance(precision, bool) or not isinstance(precision, int) or not 20 <= precision <= 500:
        raise FunctionError(
            f"{label}: precision must be an integer from 20 to 500, not {precision!r}"
        )
    return AggregateFunction(catalogue.name, written, precision=precision, percentile=percentile)
