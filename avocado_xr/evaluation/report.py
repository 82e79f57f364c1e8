"""Compare imputation methods by cross-validation: tables and plots.

:func:`compare_methods` runs :func:`avocado_xr.cross_validate` for several methods on the same
folds and returns their scores; :func:`write_report` prints and saves the per-track tables,
a per-metric comparison plot, observed-vs-imputed scatter plots and a locus plot with every
method's imputation. ``avocado-xr evaluate`` is the command-line front end.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from ..variables import CHROM, DIM_ASSAY, DIM_CELLTYPE, IMPUTED, SIGNAL, START
from .crossval import cross_validate
from .metrics import HIGHER_IS_BETTER
from .scoring import metric_table

__all__ = ["compare_methods", "markdown_table", "summary_table", "write_report"]


def compare_methods(
    ds: xr.Dataset,
    methods: dict[str, dict],
    *,
    k: int = 5,
    seed: int = 0,
    annotations=None,
    verbose: bool = False,
) -> dict[str, xr.Dataset]:
    """Cross-validate each method (name -> options) on the same folds.

    Returns
    -------
    dict of str to xarray.Dataset
        The :func:`~avocado_xr.cross_validate` result of each method, computed (the
        out-of-fold imputations are held in memory: n_tracks x n_positions float32 per
        method, so that scores and plots share one computation), with ``attrs["seconds"]``.
    """
    results = {}
    for name, options in methods.items():
        tic = time.perf_counter()
        method = options.pop("method", name)
        cv = cross_validate(ds, k=k, method=method, seed=seed, annotations=annotations, **options)
        cv = cv.compute()  # imputations and scores in one pass
        cv.attrs["seconds"] = time.perf_counter() - tic
        results[name] = cv
        if verbose:
            print(f"{name}: {cv.attrs['seconds']:.0f} s", flush=True)
    return results


def summary_table(results: dict[str, xr.Dataset]) -> pd.DataFrame:
    """Mean of every metric over the scored tracks, one row per method."""
    rows = {name: metric_table(cv["score"]).loc["mean"] for name, cv in results.items()}
    return pd.DataFrame(rows).T


def _best_marks(summary: pd.DataFrame) -> pd.DataFrame:
    marks = summary.copy().astype(object)
    for metric in summary.columns:
        column = summary[metric]
        if column.notna().any():
            best = column.idxmax() if HIGHER_IS_BETTER.get(metric, False) else column.idxmin()
            marks[metric] = [f"{v:.4f}{'*' if m == best else ''}" for m, v in column.items()]
    return marks


def write_report(
    ds: xr.Dataset,
    results: dict[str, xr.Dataset],
    output: str | Path,
    *,
    locus: str | None = None,
    track: tuple[str, str] | None = None,
) -> pd.DataFrame:
    """Write tables (CSV, Markdown) and plots for a :func:`compare_methods` run.

    Files: ``scores.csv`` (long table: method, track, metric, value), ``summary.md`` (means,
    best per metric starred), ``metrics.png`` (per-metric comparison), ``scatter.png``
    (observed vs imputed for ``track``), ``locus.png`` (observed and every method at
    ``locus``). Returns the summary table.
    """
    import matplotlib.pyplot as plt  # headless machines fall back to the Agg backend

    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    long = []
    for name, cv in results.items():
        table = metric_table(cv["score"])
        table.index.name = "track"
        frame = table.reset_index().melt(id_vars="track", var_name="metric")
        frame.insert(0, "method", name)
        long.append(frame)
    pd.concat(long).to_csv(output / "scores.csv", index=False)
    summary = summary_table(results)
    (output / "summary.md").write_text(markdown_table(_best_marks(summary)) + "\n")
    (output / "settings.json").write_text(
        json.dumps({n: dict(cv.attrs) for n, cv in results.items()}, indent=1, default=str)
    )
    _plot_metrics(results, plt).savefig(output / "metrics.png", dpi=110)
    first = next(iter(results.values()))
    if track is None:
        scored = first["score"].notnull().any("metric")
        c, a = np.argwhere(scored.values)[0]
        track = (str(first.celltype.values[c]), str(first.assay.values[a]))
    _plot_scatter(ds, results, track, plt).savefig(output / "scatter.png", dpi=110)
    if locus is not None:
        _plot_methods_locus(ds, results, track, locus, plt).savefig(output / "locus.png", dpi=110)
    plt.close("all")
    return summary


def markdown_table(frame: pd.DataFrame) -> str:
    """A DataFrame as a Markdown table (numbers with 4 decimals).

    Examples
    --------
    >>> print(markdown_table(pd.DataFrame({"mse": [0.1234567]}, index=["avocado"])))
    |  | mse |
    |---|---|
    | avocado | 0.1235 |
    """

    def cell(value) -> str:
        return f"{value:.4f}" if isinstance(value, float | np.floating) else str(value)

    lines = ["|  | " + " | ".join(map(str, frame.columns)) + " |"]
    lines.append("|---" * (len(frame.columns) + 1) + "|")
    for name, row in frame.iterrows():
        lines.append(f"| {name} | " + " | ".join(cell(v) for v in row) + " |")
    return "\n".join(lines)


def _plot_metrics(results, plt):
    metrics = list(next(iter(results.values()))["score"].metric.values)
    metrics = [
        m
        for m in metrics
        if any(cv["score"].sel(metric=m).notnull().any() for cv in results.values())
    ]
    ncols = 4
    nrows = -(-len(metrics) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.2 * ncols, 2.4 * nrows), squeeze=False)
    names = list(results)
    for ax, metric in zip(axes.ravel(), metrics, strict=False):
        for i, name in enumerate(names):
            values = results[name]["score"].sel(metric=metric).values.ravel()
            values = values[np.isfinite(values)]
            if not len(values):
                continue
            ax.scatter(
                np.full(len(values), i) + np.linspace(-0.15, 0.15, len(values)),
                values,
                s=6,
                alpha=0.6,
            )
            ax.plot([i - 0.3, i + 0.3], [values.mean()] * 2, color="k", lw=1.5)
        arrow = "higher is better" if HIGHER_IS_BETTER.get(metric, False) else "lower is better"
        ax.set_title(f"{metric} ({arrow})", fontsize=8)
        ax.set_xticks(range(len(names)), names, rotation=45, ha="right", fontsize=7)
        ax.tick_params(axis="y", labelsize=7)
    for ax in axes.ravel()[len(metrics) :]:
        ax.set_visible(False)
    fig.tight_layout()
    return fig


def _plot_scatter(ds, results, track, plt):
    sel = {DIM_CELLTYPE: track[0], DIM_ASSAY: track[1]}
    observed = np.asarray(ds[SIGNAL].sel(sel).values)
    fig, axes = plt.subplots(1, len(results), figsize=(2.8 * len(results), 2.9), squeeze=False)
    for ax, (name, cv) in zip(axes[0], results.items(), strict=True):
        imputed = np.asarray(cv[IMPUTED].sel(sel).values)
        ax.hexbin(observed, imputed, gridsize=40, bins="log", cmap="viridis", mincnt=1)
        top = float(np.nanmax(observed))
        ax.plot([0, top], [0, top], color="w", lw=0.8, ls="--")
        ax.set(title=name, xlabel="observed")
    axes[0, 0].set_ylabel(f"imputed {track[0]} {track[1]}")
    fig.tight_layout()
    return fig


def _plot_methods_locus(ds, results, track, locus, plt):
    from ..compendium import region

    sub = region(ds, locus)
    sel = {DIM_CELLTYPE: track[0], DIM_ASSAY: track[1]}
    x = sub[START].values
    fig, axes = plt.subplots(
        len(results) + 1, 1, figsize=(10, 1.3 * (len(results) + 1) + 0.5), sharex=True, sharey=True
    )
    axes[0].fill_between(x, sub[SIGNAL].sel(sel).values, step="post", color="0.5")
    axes[0].set_ylabel("observed", rotation=0, ha="right", fontsize=8)
    for ax, (name, cv) in zip(axes[1:], results.items(), strict=True):
        values = region(cv[IMPUTED].sel(sel), locus).values
        ax.fill_between(x, values, step="post", color="tab:green")
        ax.set_ylabel(name, rotation=0, ha="right", fontsize=8)
    axes[0].set_title(f"{track[0]} {track[1]}, out-of-fold imputations at {locus}")
    axes[-1].set_xlabel(f"{sub[CHROM].values[0]} position (bp)")
    fig.tight_layout()
    return fig
