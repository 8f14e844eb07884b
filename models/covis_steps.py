"""The co-visitation tables of the candidate index as named SQL steps, for the batch jobs.

The steps are :mod:`models.candidates`' own SQL (:func:`~models.candidates.sequences_sql`,
:func:`~models.candidates.covis_weights_sql`, :func:`~models.candidates.covis_top_sql`), so DuckDB
and Spark (:mod:`analytics.spark_engine`, the SQL transpiled) compute the tables that training
saves with a model: per variant, every source item's top ``top_n`` neighbours ``(src, dst, w, p)``,
here over the events before ``$as_of``.
"""

from __future__ import annotations

from analytics import schema as s
from analytics.sql_steps import Step
from models.candidates import WEIGHTS_SUFFIX, CandidateConfig, covis_top_sql, covis_weights_sql, sequences_sql

__all__ = ["covis_steps", "covis_table"]


def covis_table(name: str) -> str:
    """The output table of the co-visitation variant ``name``."""
    return f"covis_{name}"


def covis_steps(events_table: str = s.EVENTS, config: CandidateConfig | None = None) -> list[Step]:
    """Sequences, then per variant its untruncated weights and its served top-N (an output)."""
    config = config or CandidateConfig()
    history = (f"(SELECT {s.USER_ID}, {s.ITEM_ID}, {s.TS} FROM {events_table} "
               f"WHERE {s.TS} < $as_of) AS history")
    seq = "covis_sequences"
    steps = [Step(seq, sequences_sql(history))]
    for covis in config.covis:
        table = covis_table(covis.name)
        weights = table + WEIGHTS_SUFFIX
        steps += [Step(weights, covis_weights_sql(seq, covis)),
                  Step(table, covis_top_sql(weights, covis), output=True)]
    return steps
