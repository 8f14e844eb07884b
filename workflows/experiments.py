"""A/B experiments as the Experiments page uses them: list, create, stop, and analyse one.

Changes go through :mod:`analytics.experiments_store` (one immutable version per change, with its
author) and are audited: the change is checked first, then the caller's recorder appends the
audit row, and only then is the version written. A change the log cannot record is not made; a
row is never written for a change the store would refuse (a race between the check and the write,
two analysts at once, is the only way the two can differ, and the store then says so).

The analysis reads what customers were shown and did, not what they were assigned: the
impressions tagged with the experiment (the shop's backend echoes the API's ``experiment`` and
``variant``), attributed to clicks and purchases by :mod:`analytics.attribution`, summed per
customer and variant. Those per-customer arrays go to :func:`analytics.experiment_stats.analyse`:
per-variant values with 95 % intervals (delta method), lift against the control, the sample-ratio
check against the planned shares and, with the same customers' impressions in the
:data:`PRE_DAYS` days before the start, CUPED. The sample size is sized from that pre-period
(or, without one, from the control so far) for a relative effect of ``mde``
(:func:`analytics.experiment_power.sample_size_for_metric`), and the verdict refuses to call a
result before it is reached. A customer seen in two variants (a client that tagged wrongly) is
left out and counted, as are impressions naming a variant the experiment does not have.

A variant with fewer than ``k`` customers shows no figure (the pages' k-anonymity rule).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

import numpy as np
import pandas as pd

from analytics import attribution as A
from analytics import experiment_power as power
from analytics import experiment_stats as stats
from analytics import experiments_store as xs
from analytics import rules_store
from analytics.experiments_store import Experiment
from analytics.impressions import VARIANT
from analytics.schema import USER_ID
from errors import RecsightError
from models import registry
from settings import Settings
from workflows.performance import attributed_connection
from workflows.variants import rules_version_name

__all__ = [
    "PRE_DAYS", "DEFAULT_MDE", "MDE_CHOICES", "Recorder", "Choices", "choices", "list_experiments",
    "experiment_history", "save_experiment", "stop_experiment",
    "VariantArrays", "variant_arrays", "ExperimentReport", "report_from", "analyse_experiment",
]

log = logging.getLogger(__name__)

PRE_DAYS = 28  # the pre-period CUPED and the sample size read: the four weeks before the start
DEFAULT_MDE = 0.05  # the smallest relative effect worth finding, unless the analyst picks another
MDE_CHOICES = (0.02, 0.05, 0.10, 0.20)
_SUMS = ("impressions", "clicks", "purchases", "revenue")

Recorder = Callable[[str], None]  # appends one audit row with this detail (raises when it cannot)


# --------------------------------------------------------------------------- definitions


@dataclass(frozen=True)
class Choices:
    """What a new experiment's variants may name: model versions (newest first) and the current
    one, rule-set versions ("v3", newest first) and the one in force (None: no rule sets yet)."""

    models: tuple[str, ...]
    current_model: str | None
    rules: tuple[str, ...]
    current_rules: str | None


def choices(settings: Settings) -> Choices:
    """The model versions of the models folder and the rule-set versions beside the shop."""
    folder = rules_store.rules_folder(settings.db_path)
    numbers = [info.version for info in rules_store.versions(folder)]
    current = rules_store.current_version(folder) if numbers else None
    return Choices(tuple(registry.versions(settings.models_dir)), registry.current(settings.models_dir),
                   tuple(rules_version_name(n) for n in sorted(numbers, reverse=True)),
                   rules_version_name(current) if current else None)


def list_experiments(settings: Settings) -> list[Experiment]:
    """Every experiment (its newest version), newest start first."""
    return xs.load_all(settings.db_path)


def experiment_history(settings: Settings, experiment_id: str) -> list[Experiment]:
    """Every version of one experiment, oldest first (who changed what, when)."""
    return xs.history(settings.db_path, experiment_id)


def save_experiment(settings: Settings, experiment: Experiment, author: str, record: Recorder, *,
                    now: datetime | None = None) -> Experiment:
    """Create or change an experiment: checked against the models folder's versions and the rule
    sets, audited, then written (see the module docstring for the order)."""
    found = choices(settings)
    known = {"known_models": found.models, "known_rules": found.rules}
    planned = xs.check(settings.db_path, experiment, author, now=now, **known)
    record(_detail(planned))
    saved = xs.save(settings.db_path, experiment, author, now=now, **known)
    _pin_versions(settings, now)
    return saved


def stop_experiment(settings: Settings, experiment_id: str, author: str, record: Recorder, *,
                    now: datetime | None = None) -> Experiment:
    """Stop a running experiment now (or cancel a draft), audited before it is written."""
    planned = xs.check_stop(settings.db_path, experiment_id, author, now=now)
    record(_detail(planned))
    stopped = xs.stop(settings.db_path, experiment_id, author, now=now)
    _pin_versions(settings, now)
    return stopped


def _pin_versions(settings: Settings, now: datetime | None) -> None:
    """Keep every model version a draft or running experiment names out of training's pruning
    (:func:`models.registry.pin_versions`); a stopped experiment's versions may go again."""
    names = {v.model_version for e in xs.load_all(settings.db_path) if e.status(now) != xs.STOPPED
             for v in e.variants if v.model_version}
    registry.pin_versions(settings.models_dir, sorted(names))


def _detail(e: Experiment) -> str:
    """The audit row's detail: which experiment, which version, what it now says."""
    arms = "; ".join(f"{v.name} {v.share:.0%} (model {v.model_version or 'current'}, "
                     f"rules {v.rules_version or 'current'})" for v in e.variants)
    stop = e.stop.isoformat(timespec="minutes") if e.stop else "none"
    return (f"experiment {e.id} {e.change} (version {e.version}): {arms}; metric {e.metric}; "
            f"start {e.start.isoformat(timespec='minutes')}, stop {stop}")


# --------------------------------------------------------------------------- per-customer arrays


@dataclass(frozen=True)
class VariantArrays:
    """Per variant (definition order) the customers shown it, as experiment statistics take them."""

    variants: tuple[stats.Variant, ...]  # only the variants with at least one customer
    counts: dict[str, int]  # customers per variant, every variant of the definition
    has_pre: bool  # any of these customers had impressions in the pre-period
    mixed: int  # customers seen in more than one variant: left out
    unknown: int  # customers with impressions naming a variant the experiment lacks: those rows left out


def variant_arrays(during: pd.DataFrame, pre: pd.DataFrame | None, experiment: Experiment) -> VariantArrays:
    """Sum :func:`analytics.attribution.customer_outcomes` rows per customer and variant (a
    customer may have several model versions within one variant) and line the pre-period's sums
    up with them, customers in id order (0 for a customer without pre-period impressions)."""
    names = [v.name for v in experiment.variants]
    per = during.groupby([USER_ID, VARIANT], as_index=False)[list(_SUMS)].sum() if not during.empty else \
        pd.DataFrame(columns=[USER_ID, VARIANT, *_SUMS])
    known = per[VARIANT].isin(names)
    unknown = int(per.loc[~known, USER_ID].nunique())
    per = per[known]
    seen_in = per.groupby(USER_ID)[VARIANT].transform("nunique")
    mixed = int(per.loc[seen_in > 1, USER_ID].nunique())
    per = per[seen_in == 1]
    pre_sums = None
    if pre is not None and not pre.empty:
        pre_sums = pre.groupby(USER_ID)[list(_SUMS)].sum()
        pre_sums = pre_sums[pre_sums.index.isin(per[USER_ID])]
    has_pre = pre_sums is not None and float(pre_sums["impressions"].sum()) > 0
    variants, counts = [], {}
    for name in names:
        rows = per[per[VARIANT] == name].sort_values(USER_ID)
        counts[name] = len(rows)
        if rows.empty:
            continue
        customers = stats.Customers(*(rows[c].to_numpy(float) for c in _SUMS))
        before = None
        if has_pre:
            aligned = pre_sums.reindex(rows[USER_ID]).fillna(0.0)
            before = stats.Customers(*(aligned[c].to_numpy(float) for c in _SUMS))
        variants.append(stats.Variant(name, customers, before))
    return VariantArrays(tuple(variants), counts, has_pre, mixed, unknown)


# --------------------------------------------------------------------------- the analysis


@dataclass(frozen=True)
class ExperimentReport:
    """One experiment's analysis as the page shows it. ``analysis`` is None, with ``message``
    saying why, until every variant has at least ``k`` customers."""

    experiment: Experiment
    status: str
    counts: dict[str, int]
    analysis: stats.Analysis | None
    message: str | None
    needed: int | None
    needed_from: str | None  # "pre-period" or "control so far": what the sample size was sized from
    mde: float
    cuped: bool  # CUPED was applied
    mixed: int
    unknown: int
    k: int


def report_from(experiment: Experiment, arrays: VariantArrays, *, k: int, mde: float = DEFAULT_MDE,
                cuped: bool = True, now: datetime | None = None) -> ExperimentReport:
    """The analysis of ``arrays`` (pure: tests call it with arrays of their own)."""
    status = experiment.status(now)
    base = ExperimentReport(experiment, status, arrays.counts, None, None, None, None, mde, False, arrays.mixed,
                            arrays.unknown, k)
    total = sum(arrays.counts.values())
    if total == 0:
        message = ("The experiment has not started yet." if status == xs.DRAFT else
                   "No impressions of this experiment yet: the shop's backend sends them with the variant "
                   "the recommendations API named (POST /api/v1/impressions).")
        return replace(base, message=message)
    empty = [name for name, n in arrays.counts.items() if n == 0]
    if empty:
        return replace(base, message=f"No customer has been shown variant {', '.join(empty)} yet.")
    if min(arrays.counts.values()) < k:
        return replace(base, message=f"Figures appear once every variant has at least {k} customers "
                                     "(fewer could identify them).")
    needed, needed_from = _needed(arrays, experiment, mde)
    use_cuped = cuped and arrays.has_pre
    try:
        analysis = stats.analyse(list(arrays.variants), experiment.metric, control=experiment.control.name,
                                 planned=[v.share for v in experiment.variants], cuped=use_cuped, needed=needed)
    except RecsightError as exc:
        return replace(base, message=f"Cannot analyse yet: {exc}.", needed=needed, needed_from=needed_from)
    return replace(base, analysis=analysis, needed=needed, needed_from=needed_from, cuped=use_cuped)


def _needed(arrays: VariantArrays, experiment: Experiment, mde: float) -> tuple[int | None, str | None]:
    """Customers per variant for a ``mde`` relative effect: from the pre-period's customers with
    impressions, else from the control's customers so far; None when neither has the metric."""
    sources: list[tuple[str, stats.Customers]] = []
    if arrays.has_pre:
        pre = [v.pre for v in arrays.variants if v.pre is not None]
        joined = stats.Customers(*(np.concatenate([getattr(p, c) for p in pre]) for c in _SUMS))
        shown = joined.impressions > 0
        sources.append(("pre-period", stats.Customers(*(getattr(joined, c)[shown] for c in _SUMS))))
    control = next((v for v in arrays.variants if v.name == experiment.control.name), None)
    if control is not None:
        sources.append(("control so far", control.customers))
    for name, customers in sources:
        try:
            return power.sample_size_for_metric(customers, experiment.metric, mde), name
        except RecsightError as exc:
            log.info("experiment %s: sample size not from the %s: %s", experiment.id, name, exc)
    return None, None


def analyse_experiment(settings: Settings, experiment_id: str, *, mde: float = DEFAULT_MDE, cuped: bool = True,
                       now: datetime | None = None) -> ExperimentReport:
    """Read the experiment's impressions and the pre-period's, attributed, and analyse them."""
    experiment = xs.get(settings.db_path, experiment_id)
    first = experiment.start.date() - timedelta(days=PRE_DAYS)
    last = experiment.start.date() - timedelta(days=1)
    with attributed_connection(settings.db_path) as con:
        during = A.customer_outcomes(con, experiment=experiment.id)
        pre = A.customer_outcomes(con, A.PerformanceFilter(start=first, end=last))
    arrays = variant_arrays(during, pre, experiment)
    log.info("experiment %s: %s customers per variant, %d in several variants", experiment.id, arrays.counts,
             arrays.mixed)
    return report_from(experiment, arrays, k=settings.k_anonymity, mde=mde, cuped=cuped, now=now)
