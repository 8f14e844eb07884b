"""Shoppers for the synthetic shop: shown lists, clicks, carts and purchases through the intake.

``cli.py simulate`` runs this. Each simulated visit is one customer of the synthetic shop opening
a list: the list is the one the product would show them at that moment (their experiment
variant's model version and rule set when an experiment runs: :func:`workflows.variants.served_for`
and :func:`workflows.merchandising.merchandised`, the same calls the API makes), it is recorded
as an impression (:func:`workflows.performance.append_impressions`), and the shopper answers it
with their planted tastes (:mod:`analytics.shopper_model`); their clicks, carts and purchases go in
through :func:`workflows.intake.append_events`, the writer ``POST /api/v1/events`` uses. So an
experiment's Performance and Experiments pages fill in minutes, and the truth is known: the
expected clicks of every shown list are summed beside the simulated ones.

Visits are spread evenly over the last ``span_hours`` before now (from the running experiment's
start when that is later), ending ten minutes ago so that every purchase, minutes after its
visit, is in the past when it is taken in. Customers visit in a seeded random order, each once
before anyone visits twice.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

from analytics import experiments_store
from analytics import schema as S
from analytics.privacy import pseudonymise
from analytics.shopper_model import ItemFacts, Tastes, Visit, expected_clicks, item_facts, load_tastes, shop_visit
from errors import RecsightError
from progress import SILENT, Progress
from settings import Settings
from workflows.intake import append_events
from workflows.merchandising import merchandised
from workflows.performance import append_impressions
from workflows.variants import Served, served_for

__all__ = ["SimulationConfig", "VariantTally", "SimulationResult", "simulate"]

log = logging.getLogger(__name__)

_FLUSH_EVENTS = 500  # under the intake's 1,000 per batch
_FLUSH_IMPRESSIONS = 200
_SETTLE = timedelta(minutes=10)


@dataclass(frozen=True)
class SimulationConfig:
    """How many visits, when, and the shoppers' behaviour (``click_lifts``: a planted relative click
    lift per variant name, e.g. {"B": 0.05}, to check that an experiment finds a known effect)."""

    visits: int = 1_000
    seed: int = 7
    list_name: str = "home"
    k: int = 10
    eta: float = 1.0
    span_hours: float = 24.0
    click_lifts: Mapping[str, float] = field(default_factory=dict)


@dataclass
class VariantTally:
    """What one variant's (or, outside an experiment, one model version's) visits gave."""

    visits: int = 0
    shown: int = 0
    clicks: int = 0
    expected_clicks: float = 0.0
    carts: int = 0
    purchases: int = 0


@dataclass
class SimulationResult:
    """Counts of what was sent, per variant, and how long it took."""

    visits: int = 0
    skipped_customers: int = 0  # planted customers the shop does not know
    events: int = 0
    rejected: int = 0
    by_variant: dict[str, VariantTally] = field(default_factory=dict)
    seconds: float = 0.0

    def as_dict(self) -> dict[str, object]:
        return {"visits": self.visits, "skipped_customers": self.skipped_customers, "events": self.events,
                "rejected": self.rejected, "seconds": round(self.seconds, 1),
                "by_variant": {name: vars(tally) for name, tally in self.by_variant.items()}}


class _Outbox:
    """Impressions and events waiting to be sent in batches the intake takes."""

    def __init__(self, settings: Settings, secret: str, result: SimulationResult) -> None:
        self.settings, self.secret, self.result = settings, secret, result
        self.impressions: list[dict] = []
        self.events: list[dict] = []

    def add(self, impression: dict, events: list[dict]) -> None:
        self.impressions.append(impression)
        self.events.extend(events)
        if len(self.impressions) >= _FLUSH_IMPRESSIONS or len(self.events) >= _FLUSH_EVENTS:
            self.flush()

    def flush(self) -> None:
        # Impressions first: a click is attributed to an impression stored before it was read.
        if self.impressions:
            shown = append_impressions(self.settings.db_path, self.impressions, self.secret)
            self.result.rejected += len(shown.rejected)
            self.impressions = []
        for start in range(0, len(self.events), _FLUSH_EVENTS):
            taken = append_events(self.settings.db_path, self.events[start:start + _FLUSH_EVENTS], self.secret)
            self.result.events += taken.accepted
            self.result.rejected += len(taken.rejected)
        self.events = []


def simulate(settings: Settings, truth_dir: Path | str, config: SimulationConfig = SimulationConfig(),
             progress: Progress = SILENT, now: datetime | None = None) -> SimulationResult:
    """Run ``config.visits`` simulated visits against the served shop (see the module docstring)."""
    if config.visits < 1:
        raise RecsightError("the number of visits must be 1 or more")
    secret = settings.require_secret()
    started = time.perf_counter()
    now = (now or datetime.now(UTC)).replace(tzinfo=None)
    tastes = load_tastes(truth_dir)
    rng = np.random.default_rng(config.seed)
    order = list(rng.permutation(sorted(tastes)))
    moments = _moments(settings, now, config)
    result, run = SimulationResult(), uuid.uuid4().hex[:10]
    outbox = _Outbox(settings, secret, result)
    facts: dict[str, ItemFacts] | None = None
    progress.phase("simulated visits", total=config.visits)
    for n, at in enumerate(moments):
        raw = str(order[n % len(order)])
        user = pseudonymise(raw, secret)
        served = served_for(settings, user, now=at.replace(tzinfo=UTC))
        if facts is None:
            with served.recommender.connection() as con:
                facts = item_facts(con)
        try:
            # the rules of the customer's variant, with the current exclusions: what the API shows them
            listed = merchandised(served.recommender, user, config.k, now=at.replace(tzinfo=UTC))
        except RecsightError:
            result.skipped_customers += 1
            continue
        shown = [item.item_id for item in listed.items]
        visit = shop_visit(rng, tastes[raw], shown, facts, eta=config.eta, click_lift=_lift(config, served))
        _tally(result, served, shown, visit, tastes[raw], facts, config)
        outbox.add(_impression(run, n, raw, at, served, shown, config.list_name),
                   _events(run, n, raw, at, shown, visit, rng))
        progress.advance(1)
    outbox.flush()
    result.visits = sum(t.visits for t in result.by_variant.values())
    result.seconds = time.perf_counter() - started
    log.info("simulated %d visits in %.1f s: %d events", result.visits, result.seconds, result.events)
    return result


def _moments(settings: Settings, now: datetime, config: SimulationConfig) -> list[datetime]:
    end = now - _SETTLE
    start = end - timedelta(hours=config.span_hours)
    experiment = experiments_store.running(settings.db_path, now.replace(tzinfo=UTC))
    if experiment is not None:
        start = max(start, experiment.start.replace(tzinfo=None) + timedelta(seconds=1))
    if start >= end:
        raise RecsightError("the running experiment started less than ten minutes ago: nothing to simulate yet")
    step = (end - start) / config.visits
    return [start + step * i for i in range(config.visits)]


def _lift(config: SimulationConfig, served: Served) -> float:
    return float(config.click_lifts.get(served.variant or "", 0.0))


def _tally(result: SimulationResult, served: Served, shown: list[str], visit: Visit, tastes: Tastes,
           facts: Mapping[str, ItemFacts], config: SimulationConfig) -> None:
    name = served.variant if served.experiment is not None else served.model_version
    tally = result.by_variant.setdefault(str(name), VariantTally())
    tally.visits += 1
    tally.shown += len(shown)
    tally.clicks += len(visit.clicked)
    tally.carts += len(visit.carted)
    tally.purchases += len(visit.bought)
    tally.expected_clicks += expected_clicks(tastes, shown, facts, eta=config.eta, click_lift=_lift(config, served))


def _impression(run: str, n: int, raw: str, at: datetime, served: Served, shown: list[str], list_name: str) -> dict:
    return {"event_id": f"sim-{run}-{n}", "user_id": raw, "ts": at.isoformat(), "list": list_name, "items": shown,
            "model_version": served.model_version, "experiment": served.experiment, "variant": served.variant}


def _events(run: str, n: int, raw: str, at: datetime, shown: list[str], visit: Visit,
            rng: np.random.Generator) -> list[dict]:
    """The visit's clicks, carts and purchases, seconds to minutes after the list was shown."""
    out = []
    quantities = dict(zip(visit.bought, visit.quantities))
    for position in visit.clicked:
        item = shown[position - 1]
        when = at + timedelta(seconds=float(rng.uniform(5, 20)))
        steps = [(S.CLICK, when, None)]
        if position in visit.carted:
            when += timedelta(seconds=float(rng.uniform(10, 60)))
            steps.append((S.CART, when, 1))
        if position in quantities:
            when += timedelta(seconds=float(rng.uniform(30, 300)))
            steps.append((S.PURCHASE, when, quantities[position]))
        for kind, ts, quantity in steps:
            event = {"event_id": f"sim-{run}-{n}-{position}-{kind}", S.USER_ID: raw, S.ITEM_ID: item,
                     S.EVENT_TYPE: kind, S.TS: ts.isoformat(), S.SESSION_ID: f"sim-{run}-{n}"}
            if quantity is not None:
                event[S.QUANTITY] = quantity
            out.append(event)
    return out
