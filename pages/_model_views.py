"""The Model page's static pieces: the KPI cards, the evaluation grid, the checks table and the
metadata list, each drawn from what :mod:`dashboard.model_insight` computed.

Kept apart from :mod:`pages.model` (its layout, callback bodies and wiring) so that module stays
small; nothing here reads data or registers a callback. The leading underscore keeps Dash's page
scanner from registering this module as a page.
"""

from __future__ import annotations

from typing import Any

import dash_ag_grid as dag
from dash import html

from analytics.paired import verdict
from dashboard import model_insight as mi

__all__ = ["kpis", "grid", "comparisons", "additivity_row", "checks_table", "metadata"]


def kpis(table: Any, metric: str, metrics: dict[str, Any]) -> html.Div:
    """The four headline cards: the served model's metric, its lift, the test customers and the
    candidate recall (the ranker's ceiling)."""
    served = table[table["kind"] == "served"]
    baselines = table[table["kind"] == "baseline"]
    value = float(served[metric].iloc[0]) if not served.empty and served[metric].iloc[0] is not None else None
    best = baselines.loc[baselines[metric].idxmax()] if not baselines.empty and baselines[metric].notna().any() \
        else None
    lift = served["lift"].iloc[0] if not served.empty else None
    recall = (metrics.get("candidates") or {})
    deepest = max(recall, key=lambda key: int(key.split("@")[1]), default=None) if recall else None
    shown = "" if served.empty else str(served["label"].iloc[0]).removesuffix(mi.SERVED_SUFFIX)
    cards = [
        ("mo-kpi-served", f"Served model {mi.metric_label(metric)}", "—" if value is None else f"{value:.4f}",
         f"{shown}, chosen on the validation customers" if shown else ""),
        ("mo-kpi-lift", "Against the best baseline",
         "—" if lift is None or lift != lift else f"{lift:+.0%}",
         "" if best is None else f"best baseline: {best['label']} ({float(best[metric]):.4f})"),
        ("mo-kpi-users", "Test customers", f"{int(metrics.get('users', 0)):,}", f"target: {metrics.get('target')}"),
        ("mo-kpi-recall", "Candidate recall", "—" if deepest is None else f"{float(recall[deepest]):.1%}",
         "" if deepest is None else f"targets among the first {deepest.split('@')[1]} candidates (ranker's ceiling)"),
    ]
    return html.Div(className="rs-kpis rs-kpis-4", children=[
        html.Div(className="rs-kpi", children=[
            html.Div(label, className="rs-kpi-label"),
            html.Div(shown, className="rs-kpi-value", id=kpi_id),
            html.Div(caption, className="rs-kpi-caption"),
        ]) for kpi_id, label, shown, caption in cards
    ])


_METRIC_PX = 76  # a metric column of the wide grid: a two-line header, "0.0160" and a sort arrow
_FOUR_PLACES = "d3.format('.4f')(params.value)"
_PERCENT = "d3.format('+.0%')(params.value)"
_MISSING = "params.value == null || params.value !== params.value ? '–' : "  # None and NaN


def grid(table: Any, meta: dict[str, Any] | None = None, download: Any = None) -> html.Div:
    """The evaluation table, baselines and the served model marked, in two shapes of which the
    window shows one: a sortable grid of one row per model where there is room, and the same
    numbers turned (one row per metric, a column per model) in a narrow window, where eleven
    metric columns would need a sideways scroll or cut their headers. Under them, with the
    version's metadata ``meta``, the paired :func:`comparisons` (with its ``download`` control) and
    why the served model was chosen."""
    meta = meta or {}
    why = (meta.get("served") or {}).get("why")
    return html.Div([_wide_grid(table), _narrow_grid(table), comparisons(meta.get("metrics") or {}, why, download)])


def _metric_columns(table: Any) -> list[str]:
    return [c for c in table.columns if c not in ("model", "label", "kind", "lift")]


def _wide_grid(table: Any) -> dag.AgGrid:
    columns = [{"field": "label", "headerName": "Model", "pinned": "left", "minWidth": 150, "flex": 2,
                "wrapText": True, "autoHeight": True, "cellClass": "rs-grid-label"}]
    # "Novelty @10": a narrow column's header breaks before the cut-off, not inside a word.
    columns += [{"field": c, "headerName": mi.metric_label(c).replace("@", " @"), "type": "numericColumn",
                 "minWidth": _METRIC_PX,
                 "valueFormatter": {"function": _MISSING + _FOUR_PLACES}} for c in _metric_columns(table)]
    columns.append({"field": "lift", "headerName": "vs best baseline", "type": "numericColumn", "minWidth": _METRIC_PX,
                    "valueFormatter": {"function": _MISSING + _PERCENT}})
    rows = table.astype(object).where(table.notna(), None).to_dict("records")
    return dag.AgGrid(
        id="mo-eval-grid", rowData=rows, columnDefs=columns,
        # Headers wrap onto more lines rather than being cut.
        defaultColDef={"sortable": True, "resizable": True, "flex": 1, "wrapHeaderText": True,
                       "autoHeaderHeight": True, "suppressHeaderMenuButton": True},
        rowClassRules={"rs-row-served": "params.data.kind == 'served'",
                       "rs-row-baseline": "params.data.kind == 'baseline'"},
        dashGridOptions={"domLayout": "autoHeight", "animateRows": False, "suppressCellFocus": True},
        className="rs-grid rs-wide-only", style={"width": "100%"},
    )


def _narrow_grid(table: Any) -> dag.AgGrid:
    models = list(table["model"])
    kinds = dict(zip(table["model"], table["kind"]))
    shown = table.set_index("model")
    rows = [{"metric": mi.metric_label(metric), "percent": False,
             **{m: _number(shown.at[m, metric]) for m in models}} for metric in _metric_columns(table)]
    rows.append({"metric": "vs best baseline", "percent": True, **{m: _number(shown.at[m, "lift"]) for m in models}})
    number = {"function": _MISSING + "(params.data.percent ? " + _PERCENT + " : " + _FOUR_PLACES + ")"}
    columns = [{"field": "metric", "headerName": "Metric", "pinned": "left", "minWidth": 110}]
    columns += [{"field": m, "headerName": label, "type": "numericColumn", "valueFormatter": number,
                 "cellClass": f"rs-col-{kinds[m]}", "headerClass": f"rs-col-{kinds[m]}"}
                for m, label in zip(models, table["label"])]
    return dag.AgGrid(
        id="mo-eval-grid-narrow", rowData=rows, columnDefs=columns,
        defaultColDef={"sortable": False, "resizable": True, "flex": 1, "wrapHeaderText": True,
                       "autoHeaderHeight": True, "suppressHeaderMenuButton": True},
        dashGridOptions={"domLayout": "autoHeight", "animateRows": False, "suppressCellFocus": True},
        className="rs-grid rs-narrow-only", style={"width": "100%"},
    )


def _number(value: Any) -> float | None:
    return None if value is None or value != value else float(value)


def comparisons(metrics: dict[str, Any], why: str | None = None, download: Any = None) -> html.Div | None:
    """The served model against each other model on the same test customers: the difference, its
    paired bootstrap 95 % interval and the customers behind it, and what that says in words (a
    gap whose interval straddles zero is no evidence either way). None for a version evaluated
    before the comparisons were stored. ``why``: the training's reason for the served model."""
    stored = metrics.get("comparisons") or {}
    if not stored.get("against"):
        return None
    label = mi.metric_label(stored["metric"])
    served = mi.MODEL_LABELS.get(stored["served"], stored["served"])
    head = ["Against", f"{label} difference", "Relative", "95% interval", "Customers", "Says"]
    rows = []
    for name, c in stored["against"].items():
        rows.append(html.Tr([
            html.Td(mi.MODEL_LABELS.get(name, name)), html.Td(f"{c['difference']:+.4f}", className="text-end"),
            html.Td("–" if c["relative"] is None else f"{c['relative']:+.1%}", className="text-end"),
            html.Td(f"{c['low']:+.4f} to {c['high']:+.4f}", className="text-end text-nowrap"),
            html.Td(f"{c['users']:,}", className="text-end"), html.Td(verdict(c["low"], c["high"])),
        ]))
    return html.Div(id="mo-comparisons", className="mt-3", children=[
        html.Div(className="rs-card-head", children=[
            html.H3(f"Is the {served} model ahead? Paired over the same customers", className="rs-card-title mb-1"),
            html.Div(download, className="rs-card-tools") if download is not None else None,
        ]),
        html.Table(className="table rs-table mb-1", children=[
            html.Thead(html.Tr([html.Th(h) for h in head])), html.Tbody(rows)]),
        html.Div("The per-customer differences, drawn again with replacement 1,000 times: an interval that "
                 "excludes zero is more than the luck of which customers were tested.", className="rs-table-note"),
        html.Div(f"Why this model is served: {why}." if why else "", id="mo-served-why", className="rs-table-note"),
    ])


def additivity_row(error: float, where: str) -> tuple[str, str]:
    """One checks-table row: how far TreeSHAP is from adding up to the score."""
    return (f"SHAP adds up to the score ({where})", f"max error {error:.1e}")


def checks_table(rows: list[tuple[str, str]]) -> Any:
    """The faithfulness checks as a two-column table (a placeholder while they run)."""
    if not rows:
        return html.Div("Running the checks…", className="rs-empty")
    return html.Div([
        html.Table(className="table rs-table mb-1", children=[
            html.Tbody([html.Tr([html.Td(name), html.Td(value, className="text-end text-nowrap")])
                        for name, value in rows]),
        ]),
        html.Div("SHAP error: max |base + Σ contributions − score|. IG error: |Σ attributions − (score − "
                 "baseline score)| relative to the gap.", className="rs-table-note"),
    ])


def metadata(rows: list[tuple[str, str]]) -> html.Dl:
    """The deployed version's metadata as a definition list (ids in a monospace font)."""
    items = []
    for label, value in rows:
        items += [html.Dt(label), html.Dd(value, className="rs-mono" if label in ("Data fingerprint",
                                                                                  "Model version") else None)]
    return html.Dl(items, className="rs-metadata", id="mo-metadata")
