"""Benchmark: the experiment statistics checked against a known truth (issue 18, "Done means").

    .venv/bin/python bench/experiment_stats.py [--tests 500] [--seed 1] [--srm-tests 10000]
    .venv/bin/python bench/experiment_stats.py --shop /tmp/recsight-bench/experiment-e2e   # the shopper simulator

Why: an A/B verdict is only worth what its error rates are. This simulates shops where the truth
is planted and counts how often :func:`analytics.experiment_stats.analyse` (what the Experiments
page calls) gets it right.

The click model: each customer has an activity level (Gamma, mean 20 impressions a period) and
a click-through of their own (Beta(2, 38): mean 5 %, most customers 1-12 %); their impressions in
a period are Poisson around their activity and their clicks binomial on those impressions. The
pre-period is the same customers a period earlier (same activity and click-through, fresh
draws), so it correlates with the experiment period as real habits do. Treatment multiplies each
customer's click-through by 1 + lift; each simulated test draws fresh customers for each variant.

(a) A/A: no lift; the share of tests whose verdict names a winner is the false-positive rate
    (alpha 0.05: target 3-7 %), with and without CUPED on the same simulated tests.
(b) Power: the sample size :func:`analytics.experiment_power.sample_size_for_metric` recommends
    for a 5 % relative lift in click-through (from a separate 20,000-customer pre-period), then
    tests with a planted 5 % lift at that size: the share whose verdict says "Variant B wins"
    (target >= 80 %) and the share whose lift interval covers the planted 5 %. With CUPED at the
    same size, and at the smaller size recommended with the variance reduction CUPED achieved in (a).
(c) Sample ratio mismatch: exact 52/48 and 50.3/49.7 splits of 20,000 customers, and random
    assignment at 52/48 and at 50/50 (the false-flag rate, expected 0.1 % at p < 0.001).
Rates come with a 95 % Wilson interval (statsmodels) over the simulated tests.

``--shop DIR`` (a shop that ``bench/experiment_e2e.py`` built: shop.duckdb, models/, shop/truth/)
replaces the Beta click model by the shopper simulator's (:mod:`analytics.shopper_model`): every
customer of that synthetic shop, with the list its current model serves them, has an exact click
probability per position (position bias times their planted tastes); a simulated customer is one
of them drawn at random, visits Poisson(activity / 10) times, and clicks each position of each
visit with that probability (times 1 + lift in the treatment).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterator
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the project importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
from statsmodels.stats.proportion import proportion_confint

from analytics.experiment_power import sample_size_for_metric
from analytics.experiment_stats import Analysis, Customers, Variant, analyse, srm_check
from bench._common import format_table, load_line, machine_line

MEAN_IMPRESSIONS = 20.0
ACTIVITY_SHAPE = 2.0  # Gamma shape of the activity level: a few heavy shoppers, many light ones
CTR_BETA = (2.0, 38.0)  # per-customer click-through: mean 5 %
LIFT = 0.05  # the planted relative lift in click-through
_CHUNK = 50  # tests simulated at once (memory: chunk x customers x 4 arrays)


def simulate(rng: np.random.Generator, tests: int, n: int, lift: float) -> Iterator[tuple[np.ndarray, ...]]:
    """``(impressions, clicks, pre_impressions, pre_clicks)``, each ``(chunk, n)``, for one
    variant of ``tests`` tests, a chunk of tests at a time."""
    for start in range(0, tests, _CHUNK):
        shape = (min(_CHUNK, tests - start), n)
        activity = rng.gamma(ACTIVITY_SHAPE, MEAN_IMPRESSIONS / ACTIVITY_SHAPE, shape)
        if SHOP_CLICKS is not None:
            yield _shop_draws(rng, activity, lift)
            continue
        ctr = rng.beta(*CTR_BETA, shape)
        pre_impressions = rng.poisson(activity)
        impressions = rng.poisson(activity)
        yield (impressions, rng.binomial(impressions, np.minimum(ctr * (1 + lift), 1.0)),
               pre_impressions, rng.binomial(pre_impressions, ctr))


SHOP_CLICKS: np.ndarray | None = None  # (customers, positions) click probabilities with --shop


def _shop_draws(rng: np.random.Generator, activity: np.ndarray, lift: float) -> tuple[np.ndarray, ...]:
    """The shopper simulator's customers: drawn from the shop, clicking position by position."""
    assert SHOP_CLICKS is not None
    per_position = SHOP_CLICKS[rng.integers(len(SHOP_CLICKS), size=activity.shape)]
    positions = per_position.shape[-1]
    visits, pre_visits = rng.poisson(activity / positions), rng.poisson(activity / positions)
    clicks = rng.binomial(visits[..., None], np.minimum(per_position * (1 + lift), 1.0)).sum(axis=-1)
    pre_clicks = rng.binomial(pre_visits[..., None], per_position).sum(axis=-1)
    return visits * positions, clicks, pre_visits * positions, pre_clicks


def shop_clicks(folder: Path, secret: str) -> np.ndarray:
    """Every planted customer's click probability per position of the list the shop's current
    model serves them (see the module docstring)."""
    from analytics.privacy import pseudonymise
    from analytics.shopper_model import click_probabilities, item_facts, load_tastes
    from models.serving import Recommender

    tastes = load_tastes(folder / "shop" / "truth")
    recommender = Recommender.load(folder / "shop.duckdb", folder / "models")
    try:
        with recommender.connection() as con:
            facts = item_facts(con)
        rows = []
        for raw, taste in tastes.items():
            listed = recommender.top.get(pseudonymise(raw, secret), 10) if recommender.top is not None else None
            if listed is not None and len(listed.items) == 10:
                rows.append(click_probabilities(taste, [i.item_id for i in listed.items], facts))
    finally:
        recommender.close()
    if not rows:
        raise SystemExit(f"no customer of {folder} has a precomputed list: is --secret the shop's?")
    return np.array(rows)


def run_tests(rng: np.random.Generator, tests: int, n: int, lift: float, needed: int,
              cuped_modes: tuple[bool, ...]) -> dict[bool, list[Analysis]]:
    """``tests`` simulated A/B tests of ``n`` customers per variant, each analysed with and/or
    without CUPED (the same simulated customers for both)."""
    results: dict[bool, list[Analysis]] = {mode: [] for mode in cuped_modes}
    for control, treatment in zip(simulate(rng, tests, n, 0.0), simulate(rng, tests, n, lift)):
        for i in range(control[0].shape[0]):
            variants = [Variant(name, Customers(arm[0][i], arm[1][i]), Customers(arm[2][i], arm[3][i]))
                        for name, arm in (("A", control), ("B", treatment))]
            for mode in cuped_modes:
                results[mode].append(analyse(variants, "click_through", cuped=mode, needed=needed))
    return results


def rate(hits: int, total: int) -> tuple[str, str]:
    """'4.8 %' and its 95 % Wilson interval '3.2-7.0 %'."""
    low, high = proportion_confint(hits, total, alpha=0.05, method="wilson")
    return f"{hits / total * 100:.1f} %", f"{low * 100:.1f}-{high * 100:.1f} %"


def names_a_winner(analysis: Analysis) -> bool:
    return analysis.verdict.startswith(("Variant B wins", "The control"))


def mean_reduction(analyses: list[Analysis]) -> float:
    return float(np.mean([a.comparisons[0].variance_reduction for a in analyses]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tests", type=int, default=500, help="simulated tests per row of (a) and (b)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--srm-tests", type=int, default=10_000, help="random assignments per row of (c)")
    parser.add_argument("--shop", type=Path, default=None, help="use the shopper simulator on this shop (above)")
    parser.add_argument("--secret", default="bench-secret", help="the --shop's pseudonymisation secret")
    args = parser.parse_args(argv)
    global SHOP_CLICKS
    if args.shop is not None:
        SHOP_CLICKS = shop_clicks(args.shop, args.secret)
    print(machine_line())
    print(load_line())
    started = time.perf_counter()
    history, aa_rng, ab_rng, cuped_rng, srm_rng = (np.random.default_rng(s)
                                                   for s in np.random.SeedSequence(args.seed).spawn(5))
    imp, clk, pre_imp, pre_clk = (a[0] for a in next(simulate(history, 1, 20_000, 0.0)))
    pre = Customers(pre_imp, pre_clk)
    n = sample_size_for_metric(pre, "click_through", LIFT)
    beta = f"click-through Beta{CTR_BETA} (mean {CTR_BETA[0] / sum(CTR_BETA) * 100:g} %)"
    clicks = (f"the shopper simulator on {args.shop}: {len(SHOP_CLICKS):,} customers' lists, position-based"
              if SHOP_CLICKS is not None else beta)
    print(f"\nclick model: activity Gamma(shape {ACTIVITY_SHAPE:g}, mean {MEAN_IMPRESSIONS:g} impressions), "
          f"{clicks}; pre-period of 20,000 customers: click-through {pre_clk.sum() / pre_imp.sum():.4f}")
    print(f"recommended for a {LIFT * 100:g} % relative lift (alpha 0.05, power 0.8): {n:,} customers per variant")

    aa = run_tests(aa_rng, args.tests, n, 0.0, n, (False, True))
    reduction = mean_reduction(aa[True])
    rows = [[f"A/A{', CUPED' if mode else ''}", args.tests, f"{n:,}", sum(map(names_a_winner, aa[mode])),
             *rate(sum(map(names_a_winner, aa[mode])), args.tests),
             f"{mean_reduction(aa[mode]) * 100:.1f} %" if mode else "-"] for mode in (False, True)]
    print("\n(a) A/A tests at alpha 0.05: verdicts naming a winner (target 3-7 %)")
    print(format_table(["analysis", "tests", "customers/variant", "false positives", "rate", "95 % interval",
                        "variance removed"], rows))

    n_cuped = sample_size_for_metric(pre, "click_through", LIFT, variance_reduction=reduction)
    ab = run_tests(ab_rng, args.tests, n, LIFT, n, (False, True))
    ab_cuped = run_tests(cuped_rng, args.tests, n_cuped, LIFT, n_cuped, (True,))
    rows = []
    for label, size, analyses in (("no CUPED", n, ab[False]), ("CUPED", n, ab[True]),
                                  ("CUPED, its own size", n_cuped, ab_cuped[True])):
        wins = sum(a.verdict.startswith("Variant B wins") for a in analyses)
        lifts = [a.comparisons[0] for a in analyses]
        covered = sum(c.lift_low <= LIFT <= c.lift_high for c in lifts)
        rows.append([label, args.tests, f"{size:,}", wins, *rate(wins, args.tests),
                     f"{np.mean([c.lift for c in lifts]) * 100:+.2f} %", f"{covered / args.tests * 100:.1f} %"])
    print(f"\n(b) a planted {LIFT * 100:g} % relative lift in click-through: verdict \"Variant B wins\" "
          f"(target >= 80 %); CUPED's own size uses the {reduction * 100:.1f} % variance reduction of (a)")
    print(format_table(["analysis", "tests", "customers/variant", "detected", "rate", "95 % interval",
                        "mean lift", "interval covers 5 %"], rows))

    rows = []
    for label, counts in (("52.0 / 48.0 exactly", (10_400, 9_600)), ("50.3 / 49.7 exactly", (10_060, 9_940))):
        check = srm_check(counts)
        rows.append([label, 1, "yes" if check.flagged else "no", "-", "-", f"{check.p_value:.2g}"])
    for label, share in (("assigned at random, 52 / 48", 0.52), ("assigned at random, 50 / 50", 0.50)):
        first = srm_rng.binomial(20_000, share, args.srm_tests)
        flags = sum(srm_check((int(a), 20_000 - int(a))).flagged for a in first)
        rows.append([label, f"{args.srm_tests:,}", f"{flags:,}", *rate(flags, args.srm_tests), "-"])
    print("\n(c) sample ratio mismatch, 20,000 customers planned 50 / 50, flagged at p < 0.001")
    print(format_table(["split", "checks", "flagged", "flag rate", "95 % interval", "p-value"], rows))
    print(f"\n{time.perf_counter() - started:.0f} s in all; {load_line()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
