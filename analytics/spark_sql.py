"""DuckDB SQL to Spark SQL: sqlglot's transpiler plus four documented rewrites of its tree.

The batch jobs keep one copy of their SQL, the DuckDB SQL the product runs every day; Spark runs
it translated by :func:`to_spark_sql`. sqlglot (``read="duckdb", write="spark"``) translates most of
it as is: ``QUALIFY`` becomes a filtered subquery, ``GROUP BY ALL`` stays (Spark 3.4+ has it),
``//`` becomes ``DIV``, ``::`` casts become ``CAST`` (``TIMESTAMP`` -> ``TIMESTAMP_NTZ``),
``unnest([...])`` becomes ``explode(array(...))``, ``count_if``/``FILTER`` stay, and ``$as_of``
becomes ``:as_of``, a named parameter marker that ``spark.sql(sql, args=...)`` binds. Where the
DuckDB SQL used a function without a Spark twin and a portable spelling was as fast, the DuckDB
SQL itself was changed (``date_diff('microsecond', ...)`` for a difference of ``epoch_us``).

What remains are four DuckDB constructs that sqlglot translates wrongly or not at all; each is
rewritten on the parsed tree (:func:`_spark_twin`), to a Spark expression with the same value:

1. ``max(x, n)`` (the n largest values, largest first) has no Spark aggregate: sqlglot refuses it.
   -> ``CASE WHEN size(l) > 0 THEN slice(sort_array(l, false), 1, n) END`` with
   ``l = collect_list(x)`` (a ``FILTER`` stays on the ``collect_list``); NULL for no rows, as DuckDB.
2. ``list(x ORDER BY k)`` becomes ``collect_list(x)``, whose order Spark does not define.
   -> ``transform(array_sort(collect_list(struct(k, x))), e -> e.x)``: sorted by the keys
   (ascending only; a descending key is refused).
3. ``l[i]`` with a computed ``i``: DuckDB counts from 1, Spark's ``[]`` from 0, and sqlglot shifts
   literal indexes only. -> ``element_at(l, CAST(i AS INT))``, which counts from 1.
4. ``quantile_cont(x, q)``: Spark's ``percentile_cont`` takes neither two arguments nor a list of
   fractions. -> ``percentile(x, q)``: the same linear interpolation, lists of fractions included
   (the last bits of the interpolated value may differ: different float formulas).

sqlglot is imported lazily: the default (DuckDB) path never needs it.
"""

from __future__ import annotations

from typing import Any

from errors import RecsightError

__all__ = ["to_spark_sql", "ENGINES_HINT"]

ENGINES_HINT = "pip install -r requirements-engines.txt"


def to_spark_sql(duckdb_sql: str) -> str:
    """``duckdb_sql`` (one statement) as Spark SQL, named parameters as ``:name`` markers."""
    try:
        import sqlglot
    except ImportError:
        raise RecsightError(f"the spark engine needs sqlglot: {ENGINES_HINT}") from None
    try:
        tree = sqlglot.parse_one(duckdb_sql, read="duckdb")
        return tree.transform(_spark_twin).sql("spark", unsupported_level=sqlglot.ErrorLevel.RAISE)
    except sqlglot.errors.SqlglotError as exc:
        raise RecsightError(f"cannot translate a batch query to Spark SQL: {str(exc).splitlines()[0]}") from None


def _spark_twin(node: Any) -> Any:
    """The Spark spelling of one DuckDB node (see the module docstring), or the node itself."""
    from sqlglot import exp

    if isinstance(node, exp.Filter) and isinstance(node.this, exp.Max) and node.this.args.get("count"):
        return _top_n(node.this, node.args["expression"])
    if isinstance(node, exp.Max) and node.args.get("count"):
        return _top_n(node, None)
    if isinstance(node, exp.ArrayAgg) and isinstance(node.this, exp.Order):
        return _ordered_list(node.this)
    if isinstance(node, exp.Bracket) and not all(isinstance(i, exp.Literal) for i in node.expressions):
        if len(node.expressions) != 1:
            raise RecsightError("cannot translate a multi-index subscript to Spark SQL")
        return _call("ELEMENT_AT", node.this.copy(), exp.cast(node.expressions[0].copy(), "INT"))
    if isinstance(node, exp.PercentileCont) and node.args.get("expression") is not None:
        return _call("PERCENTILE", node.this.copy(), node.expression.copy())
    return node


def _call(name: str, *args: Any) -> Any:
    from sqlglot import exp

    return exp.Anonymous(this=name, expressions=list(args))


def _top_n(node: Any, where: Any) -> Any:
    """``max(x, n) [FILTER (WHERE c)]`` -> the n largest of ``collect_list(x) [FILTER (WHERE c)]``."""
    from sqlglot import exp

    def values() -> Any:
        collected = _call("COLLECT_LIST", node.this.copy())
        return exp.Filter(this=collected, expression=where.copy()) if where is not None else collected

    largest = _call("SLICE", _call("SORT_ARRAY", values(), exp.false()), exp.Literal.number(1),
                    node.args["count"].copy())
    return exp.Case().when(exp.GT(this=_call("SIZE", values()), expression=exp.Literal.number(0)), largest)


def _ordered_list(order: Any) -> Any:
    """``list(x ORDER BY k1, k2)`` -> ``transform(array_sort(collect_list(struct(k1, k2, x))), e -> e.x)``."""
    from sqlglot import exp

    keys = []
    for i, ordered in enumerate(order.expressions):
        if ordered.args.get("desc"):
            raise RecsightError("cannot translate list(... ORDER BY ... DESC) to Spark SQL")
        keys.append(exp.alias_(ordered.this.copy(), f"k{i}"))
    entries = exp.Struct(expressions=[*keys, exp.alias_(order.this.copy(), "v")])
    element = exp.Lambda(this=exp.column("v", table="e"), expressions=[exp.to_identifier("e")])
    return _call("TRANSFORM", _call("ARRAY_SORT", _call("COLLECT_LIST", entries)), element)
