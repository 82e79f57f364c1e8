"""How much of the ensemble's result is its combiner? Every combiner variant on one set of fits.

``fit_ensemble`` spends nearly all its time fitting the base models (inner folds and refit);
the combiner is a few least-squares solves. This study runs the issue-11 cross-validation of
the ensemble once (``dump``: the default ensemble, Avocado 40 epochs with a snapshot at 10,
demo network, the folds and seeds of ``bench_crossval.py``) and keeps every input the
combiner sees: each inner out-of-fold imputation and each refitted model's imputation of the
outer held-out tracks (float32, ~2.8 GB for the pilot). ``report`` then refits the combiner
of every variant from those inputs with the package's own ``group_weights``,
``choose_kappa`` and ``peak_lift``, so the default row reproduces the ensemble's CV exactly,
and scores each on the held-out tracks.

A variant chosen by the held-out scores here would be selected on the test tracks; the
``auto`` row chooses per outer fold, by leave-one-track-out over the inner tracks only.

Usage::

    python benchmarks/study_combiner.py dump /tmp/combiner        # ~75 min on 2 cores; resumes
    python benchmarks/study_combiner.py dump /tmp/combiner1 --seed 1   # a second replicate
    python benchmarks/study_combiner.py report /tmp/combiner      # ~5 min
    python benchmarks/study_combiner.py inputs /tmp/combiner      # ~10 min
    python benchmarks/study_combiner.py report /tmp/combiner --with-baselines
    python benchmarks/study_combiner.py masking /tmp/combiner     # ~5 min
    python benchmarks/study_combiner.py check /tmp/combiner --csv ensemble.csv   # ~5 min

``inputs`` adds the regression baselines (``mixture``, ``cross-assay``) to the dumped inputs
(they learn nothing, so their imputations are computed here from each fold's training
tracks, as ``fit_ensemble`` computes a baseline's) and compares input sets with the default
combiner, each also scored by leave-one-track-out over the inner tracks alone (a choice
that reads no held-out track).

``check`` ties the study to the package: ``dump`` also keeps ``fit_ensemble``'s own
imputation of each held-out track, and ``check`` prints its MSE beside the study's
(``Study.predict`` of every input at the package's anchor) and their largest difference;
``--csv`` writes every measure per track for ``bench_crossval.py --report``.
"""

from __future__ import annotations

import argparse
import copy
import inspect
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import xarray as xr
from _common import SHARED, machine
from bench_crossval import print_tables, write_csv

from avocado_xr.evaluation.crossval import METHODS
from avocado_xr.evaluation.ensemble import fit_ensemble
from avocado_xr.evaluation.stacking import SCOPES

FACTORIZATION = {"epochs": 40, "batch_size": 10_000, "device": "cpu", "dropout": 0.5}
#: baselines that ``inputs`` adds to the dumped inputs (computed here: they learn nothing)
EXTRA = ("mixture", "cross-assay")
#: the smoothed averages, added by ``study_smoothing.py`` (a dump of the default has them)
SMOOTHED = ("average-w9", "average-w33")


def dump(out: Path, seed: int = 0) -> None:
    import avocado_xr as ax
    from avocado_xr.config import DEMO_NETWORK
    from avocado_xr.evaluation import ensemble

    out.mkdir(parents=True, exist_ok=True)
    ds = ax.datasets.roadmap_pilot(SHARED / "roadmap_pilot")
    folds = ax.make_folds(ds, 5, seed=seed)  # as cross_validate(..., seed=seed)
    celltypes, assays = [str(c) for c in ds.celltype.values], [str(a) for a in ds.assay.values]
    inner_of_fold = ensemble.out_of_fold
    for fold in range(5):
        if (out / f"meta_{fold}.json").exists():  # written last: the fold is complete
            print(f"fold {fold}: already dumped", flush=True)
            continue
        tic = time.perf_counter()
        held = [(celltypes[c], assays[a]) for c, a in np.argwhere(folds.values == fold)]
        train = ax.mask(ds, held)
        kept = {}

        def keeping(*args, kept=kept, **kwargs):
            for track, target, inputs in inner_of_fold(*args, **kwargs):
                kept[track] = np.stack(inputs).astype(np.float32)
                yield track, target, inputs

        ensemble.out_of_fold = keeping  # fit_ensemble itself, watched
        try:
            model = ensemble.fit_ensemble(
                train, seed=seed + fold, factorization={**FACTORIZATION, **DEMO_NETWORK}
            )
        finally:
            ensemble.out_of_fold = inner_of_fold
        outer = []
        for name in model.inputs:  # each input alone: one-hot weights, no calibration
            alone = copy.copy(model)
            alone.calibration = None
            alone.weights = xr.zeros_like(model.weights)
            alone.weights["coef"].loc[{"input": name}] = 1.0
            parts = [alone.impute(train, celltypes=c, assays=a, merge=False) for c, a in held]
            outer.append([p.imputed.values.reshape(-1) for p in parts])
        ensembled = [model.impute(train, celltypes=c, assays=a, merge=False) for c, a in held]
        np.save(out / f"inner_{fold}.npy", np.stack(list(kept.values())))
        np.save(out / f"outer_{fold}.npy", np.asarray(outer, np.float32).transpose(1, 0, 2))
        np.save(
            out / f"ensemble_{fold}.npy", np.stack([e.imputed.values.ravel() for e in ensembled])
        )
        meta = {"inner": list(kept), "held": held, "inputs": model.inputs, "seed": seed + fold}
        meta["anchor"] = model.info["anchor"]  # the package's default when dumped
        (out / f"meta_{fold}.json").write_text(json.dumps(meta))
        print(f"fold {fold}: {time.perf_counter() - tic:.0f} s", flush=True)


def _kappa_by_error(combined, target, threshold, budget):
    """The peak calibration's rule before the gain rule: the lowest ``kappa`` whose lift raises
    the squared error of ``combined`` by at most ``budget`` (a fraction). It is the gain rule
    with a share of 1 against a reference whose squared error is ``1 + budget`` times it."""
    from avocado_xr.evaluation.stacking import choose_kappa

    reference = target + np.sqrt(1 + budget) * (combined - target)
    return choose_kappa([(combined, target, reference)], threshold, 1.0)


def _sse(w, gram, rhs, yy) -> float:
    """Squared error of the combination ``w`` from the normal equations and ``y'y``."""
    return float(w @ gram @ w - 2 * w @ rhs + yy)


class Study:
    """The dumped inputs as normal equations (inner) and stacks (outer), per fold."""

    #: the combiner's pull towards the average alone: ``fit_ensemble``'s default
    anchor: float = inspect.signature(fit_ensemble).parameters["anchor"].default

    def __init__(self, path: Path, extra: tuple[str, ...] = (), replace=None):
        """``extra``: baselines added as inputs; ``replace``: ``{input name: f(train) ->
        imputed (celltype, assay, position)}``, inputs computed by ``f`` instead (dumped or
        extra)."""
        import avocado_xr as ax
        from avocado_xr.evaluation.baselines import BaselineModel

        self.ds = ax.datasets.roadmap_pilot(SHARED / "roadmap_pilot")
        self.y = self.ds.signal.values.astype(np.float64)
        self.celltypes = [str(c) for c in self.ds.celltype.values]
        self.assays = [str(a) for a in self.ds.assay.values]
        n = self.y.shape[-1]
        self.grams, self.kept, self.outer, self.yy = {}, {}, {}, {}
        dumped = json.loads((path / "meta_0.json").read_text())["inputs"]
        #: the outer folds dumped so far (a dump resumes fold by fold)
        self.folds = [f for f in range(5) if (path / f"meta_{f}.json").exists()]
        extra = tuple(m for m in extra if m not in dumped)  # a dump of the new default has them
        for fold in self.folds:
            meta = json.loads((path / f"meta_{fold}.json").read_text())
            self.names = meta["inputs"] + list(extra)
            rng = np.random.default_rng(meta.get("seed", fold))  # as fit_ensemble's subset
            rows = np.sort(rng.choice(n, min(n, 100_000), False))
            inner = np.load(path / f"inner_{fold}.npy", mmap_mode="r")
            train = ax.mask(self.ds, [tuple(t) for t in meta["held"]])
            # extra baseline inputs, as fit_ensemble takes a baseline's: from the training set
            more = [BaselineModel(m).impute(train, merge=False).imputed for m in extra]
            swap = {self.names.index(m): f(train) for m, f in (replace or {}).items()}

            def added(c, a, more=more):
                return [m.sel(celltype=c, assay=a).values.astype(np.float32) for m in more]

            def stacked(dumped, c, a, swap=swap):
                stack = [*np.asarray(dumped), *added(c, a)]
                for j, values in swap.items():
                    stack[j] = values.sel(celltype=c, assay=a).values.astype(np.float32)
                return np.asarray(stack, np.float64)

            for i, (c, a) in enumerate(meta["inner"]):
                stack = stacked(inner[i], c, a)
                x = np.column_stack([np.ones(n), *stack])
                y = self.target(c, a)
                self.grams[fold, c, a] = (x.T @ x, x.T @ y)
                self.kept[fold, c, a] = (x[rows], y[rows])
                self.yy[fold, c, a] = float(y @ y)
            outer = np.load(path / f"outer_{fold}.npy")
            for i, (c, a) in enumerate(meta["held"]):
                self.outer[c, a] = (fold, stacked(outer[i], c, a))
        self.average = {t: self.mse(x, *t) for t, x in self.alone("average").items()}

    def alone(self, name: str) -> dict:
        """The held-out imputations of the input ``name`` alone, per track."""
        i = self.names.index(name)
        return {t: x[i] for t, (_, x) in self.outer.items()}

    def mask_inner_baselines(self, path: Path) -> None:
        """Recompute the baseline inputs of every inner track from its inner fold's training
        set (the inner fold's tracks hidden too, as a learned base sees it), not from the outer
        training set as ``fit_ensemble`` does; the inner folds are ``fit_ensemble``'s own."""
        import avocado_xr as ax
        from avocado_xr.evaluation.baselines import BaselineModel

        baselines = [n for n in self.names if n in METHODS and METHODS[n].kind == "baseline"]
        n = self.y.shape[-1]
        for fold in self.folds:
            meta = json.loads((path / f"meta_{fold}.json").read_text())
            seed = meta.get("seed", fold)
            train = ax.mask(self.ds, [tuple(t) for t in meta["held"]])
            folds = ax.make_folds(train, 4, seed=seed)
            rows = np.sort(np.random.default_rng(seed).choice(n, min(n, 100_000), False))
            dumped = np.load(path / f"inner_{fold}.npy", mmap_mode="r")
            index = {tuple(t): i for i, t in enumerate(meta["inner"])}
            for f in range(int(folds.max()) + 1):
                held = [
                    (self.celltypes[c], self.assays[a]) for c, a in np.argwhere(folds.values == f)
                ]
                inner = ax.mask(train, held)
                imputed = {
                    m: BaselineModel(m).impute(inner, merge=False).imputed for m in baselines
                }
                for c, a in held:
                    x = np.ones((n, 1 + len(self.names)))  # every extra input is a baseline
                    x[:, 1 : 1 + dumped.shape[1]] = np.asarray(dumped[index[c, a]]).T
                    for m, values in imputed.items():
                        column = values.sel(celltype=c, assay=a).values.astype(np.float32)
                        x[:, 1 + self.names.index(m)] = column
                    y = self.target(c, a)
                    self.grams[fold, c, a] = (x.T @ x, x.T @ y)
                    self.kept[fold, c, a] = (x[rows], y[rows])

    def target(self, c, a):
        return self.y[self.celltypes.index(c), self.assays.index(a)]

    def mse(self, pred, c, a) -> float:
        return float(np.mean((pred - self.target(c, a)) ** 2))

    def fold_grams(self, fold, columns, relative: bool):
        """Normal equations of the fold's inner tracks over ``columns`` (intercept first);
        ``relative``: each divided by the average baseline's squared error on the track."""
        j = np.r_[0, np.asarray(columns) + 1]
        out = {}
        for (f, c, a), (g, r) in self.grams.items():
            if f != fold:
                continue
            g, r = g[np.ix_(j, j)], r[j]
            if relative:
                sse = _sse(self.average_only(columns), g, r, self.yy[f, c, a])
                g, r = g / sse, r / sse
            out[c, a] = (g, r)
        return out

    def average_only(self, columns) -> np.ndarray:
        """Combiner weights (intercept first) that take the average baseline alone."""
        w = np.zeros(len(columns) + 1)
        w[1 + list(columns).index(self.names.index("average"))] = 1.0
        return w

    def weights(self, grams, names, scope):
        from avocado_xr.evaluation.stacking import anchor_reference, group_weights

        anchor = {"anchor": self.anchor, "reference": anchor_reference(names)}
        return group_weights(grams, self.celltypes, self.assays, names, scope=scope, **anchor)

    def loto(self, fold, columns, scope, relative) -> tuple[int, float]:
        """Leave one inner track out: (tracks beating the average, mean MSE ratio)."""
        grams = self.fold_grams(fold, columns, relative)
        plain = self.fold_grams(fold, columns, False)
        names = [self.names[i] for i in columns]
        avg = self.average_only(columns)
        wins, ratios = 0, []
        for t in grams:
            w = self.weights({k: v for k, v in grams.items() if k != t}, names, scope)
            w = w.sel(celltype=t[0], assay=t[1])
            w = np.r_[float(w.intercept), w.coef.values]
            mse, base = (_sse(v, *plain[t], self.yy[(fold, *t)]) for v in (w, avg))
            wins += mse < base
            ratios.append(mse / base)
        return wins, float(np.mean(ratios))

    def predict(
        self, columns, scope="celltype", relative=False, budget=0.5, choose=None, rule="gain"
    ):
        """Held-out imputations of a variant; ``choose(fold) -> (scope, relative)`` picks per
        fold from the inner tracks only. The peak calibration's ``rule``: ``"gain"``, the
        package's (``budget``: the share of each inner track's gain over the average that the
        lift may spend); ``"error"``, the rule before it (a budget on the summed inner
        squared error); ``"error per track"``, that budget on every inner track's error."""
        from avocado_xr.evaluation.stacking import choose_kappa, combine, peak_lift
        from avocado_xr.evaluation.track import PEAK_THRESHOLD

        names = [self.names[i] for i in columns]
        j = np.r_[0, np.asarray(columns) + 1]
        out = {}
        for fold in self.folds:
            if choose is not None:
                scope, relative = choose(fold)
            w = self.weights(self.fold_grams(fold, columns, relative), names, scope)
            kept = {(c, a): (x[:, j], y) for (f, c, a), (x, y) in self.kept.items() if f == fold}
            tracks = combine(w, kept, "average")
            if budget is None:
                kappa = None
            elif rule == "gain":
                kappa = choose_kappa(tracks.values(), PEAK_THRESHOLD, budget)
            else:
                pairs = [(x, y) for x, y, _ in tracks.values()]
                if rule == "error":
                    pairs = [tuple(np.concatenate(v) for v in zip(*pairs, strict=True))]
                kappas = [_kappa_by_error(x, y, PEAK_THRESHOLD, budget) for x, y in pairs]
                kappa = None if None in kappas else max(kappas)
            for (c, a), (f, x) in self.outer.items():
                if f == fold:
                    v = w.sel(celltype=c, assay=a)
                    p = float(v.intercept) + v.coef.values @ x[columns]
                    out[c, a] = p if kappa is None else peak_lift(p, kappa, PEAK_THRESHOLD)
        return out

    def table(self, pred):
        """Every measure of ``avocado_xr.evaluate`` (pilot annotations, as ``bench_crossval``)
        of held-out imputations, per track and mean."""
        import avocado_xr as ax
        from avocado_xr.evaluation.scoring import metric_table

        imputed = xr.full_like(self.ds.signal, np.nan).transpose("celltype", "assay", "position")
        for (c, a), values in pred.items():
            imputed.loc[{"celltype": c, "assay": a}] = values
        result = self.ds[["chrom", "start"]].assign(imputed=imputed.astype(np.float32))
        return metric_table(ax.evaluate(self.ds, result, annotations="pilot")["score"])

    def ceiling(self):
        """Each held-out track's own least-squares blend of the inputs (reads the track)."""
        from avocado_xr.evaluation.least_squares import nnls

        out = {}
        for (c, a), (_, x) in self.outer.items():
            design = np.column_stack([np.ones(x.shape[1]), *x])
            out[c, a] = design @ nnls(design.T @ design, design.T @ self.target(c, a))
        return out

    def row(self, label, pred) -> str:
        ratios = {t: self.mse(p, *t) / self.average[t] for t, p in pred.items()}
        mse = np.mean([self.mse(p, *t) for t, p in pred.items()])
        lost = ", ".join(
            f"{c}/{a} {r:.3f}"
            for (c, a), r in sorted(ratios.items(), key=lambda kv: -kv[1])
            if r >= 1
        )
        wins = sum(r < 1 for r in ratios.values())
        return f"| {label} | {mse:.4f} | {wins}/{len(ratios)} | {lost} |"


def report(path: Path, extra: tuple[str, ...] = ()) -> None:
    study = Study(path, extra=extra)
    names = study.names
    every = list(range(len(names)))
    no_raw = [i for i, n in enumerate(names) if n.endswith("~qn") or n == "average"]
    no_qn = [i for i, n in enumerate(names) if not n.endswith("~qn")]
    print(f"# machine: {machine()}\n# inputs: {names}\n")
    print("| combiner variant | MSE | MSE wins vs average | tracks lost (MSE / average's) |")
    print("|---|---|---|---|")
    rows = [
        (f"default: per cell type, anchor {study.anchor}, peak budget half of each gain", {}),
        ("no peak calibration", {"budget": None}),
        ("peak budget a quarter of each inner track's gain", {"budget": 0.25}),
        (
            "peak budget 1% of the summed inner error (the rule before)",
            {"rule": "error", "budget": 0.01},
        ),
        ("per assay", {"scope": "assay"}),
        ("one for all tracks", {"scope": "global"}),
        ("relative error (each track / the average's error)", {"relative": True}),
        ("relative error, per assay", {"relative": True, "scope": "assay"}),
        ("quantile copies and average only", {"columns": no_raw}),
        ("no quantile copies", {"columns": no_qn}),
    ]
    for label, kwargs in rows:
        print(study.row(label, study.predict(kwargs.pop("columns", every), **kwargs)), flush=True)
    picks = {}

    def choose(fold):
        scores = {
            (scope, rel): study.loto(fold, every, scope, rel)
            for scope in SCOPES
            for rel in (False, True)
        }
        picks[fold] = max(scores, key=lambda k: (scores[k][0], -scores[k][1]))
        return picks[fold]

    pred = study.predict(every, choose=choose)
    print(study.row("auto: per fold, the best inner leave-one-track-out", pred))
    mean = study.table(pred).loc["mean", ["mse", "gwcorr", "match1", "aucobs1", "recall"]]
    print(f"auto's means: {mean.round(4).to_dict()}", flush=True)
    print(study.row("ceiling, not a method: each held-out track fitted to itself", study.ceiling()))
    print(f"\nauto's picks (scope, relative) by fold: {picks}")


def masking(path: Path) -> None:
    """The default combiner with the baseline inputs of inner tracks computed as
    ``fit_ensemble`` does (from the outer training set) and from each inner fold's training
    set (as a learned base sees them, and as the outer held-out tracks are imputed)."""
    study = Study(path, extra=EXTRA)
    every = list(range(len(study.names)))
    print(f"# machine: {machine()}\n# inputs: {study.names}\n")
    print("| baseline inputs of the inner tracks | MSE | MSE wins vs average | tracks lost |")
    print("|---|---|---|---|")
    for label in ("from the outer training set (fit_ensemble)", "from the inner fold's set"):
        if label.endswith("set"):
            study.mask_inner_baselines(path)
        pred = study.predict(every)
        print(study.row(label, pred), flush=True)
        mean = study.table(pred).loc["mean", ["mse", "gwcorr", "match1", "aucobs1", "recall"]]
        print(f"means: {mean.round(4).to_dict()}", flush=True)


def inputs(path: Path) -> None:
    """Which base methods? The default combiner over input sets with the regression
    baselines added, each also scored by leave-one-track-out over the inner tracks only."""
    study = Study(path, extra=EXTRA)
    names = study.names
    dumped = [i for i, n in enumerate(names) if n not in EXTRA]
    column = {n: i for i, n in enumerate(names)}
    print(f"# machine: {machine()}\n# inputs: {names}\n")
    print(
        "| inputs (default combiner) | MSE | MSE wins vs average | tracks lost (MSE / average's)"
        " | inner leave-one-track-out: wins, mean MSE / average's |"
    )
    print("|---|---|---|---|---|")
    sets = {
        "default (Avocado 10 and 40 epochs, their quantile copies, average)": dumped,
        "default + mixture": [*dumped, column["mixture"]],
        "default + cross-assay": [*dumped, column["cross-assay"]],
        "default + mixture + cross-assay": [*dumped, column["mixture"], column["cross-assay"]],
        "average + mixture + cross-assay (no Avocado)": [
            column[n] for n in ("average", "mixture", "cross-assay")
        ],
    }
    tables = {"average": study.table(study.alone("average"))}
    for label, columns in sets.items():
        inner = [study.loto(fold, columns, "celltype", False) for fold in study.folds]
        wins = sum(w for w, _ in inner)
        ratio = np.mean([r for _, r in inner])
        pred = study.predict(columns)
        print(f"{study.row(label, pred)} {wins}/{len(study.kept)}, {ratio:.4f} |", flush=True)
        tables[label] = study.table(pred)
    both = sets["default + mixture + cross-assay"]
    calibrations = [(None, "gain"), (0.25, "gain"), (0.5, "gain"), (1.0, "gain")]
    calibrations += [(0.0025, "error"), (0.005, "error"), (0.01, "error")]
    calibrations += [(0.01, "error per track"), (0.02, "error per track")]
    for budget, rule in calibrations:  # the peak calibration's trade: recall for MSE
        what = {
            "gain": "of each inner track's gain over the average",
            "error": "of the summed inner error",
            "error per track": "of every inner track's error",
        }[rule]
        label = f"default + mixture + cross-assay, peak budget {budget or 0:.2%} {what}"
        if budget is None:
            label = "default + mixture + cross-assay, no peak calibration"
        pred = study.predict(both, budget=budget, rule=rule)
        print(f"{study.row(label, pred)} |", flush=True)
        tables[label] = study.table(pred)
    print_tables(tables)


def check(path: Path, csv: Path | None = None) -> float:
    """The package's own held-out imputations (``fit_ensemble`` with its defaults, dumped as
    ``ensemble_{fold}.npy``) beside the study's (``Study.predict`` of every input at the
    dump's anchor), per track; returns the largest absolute difference of the imputations.
    ``csv``: also write every measure of the package's imputations, and of the study's
    without the peak calibration, per track, for ``bench_crossval.py --report``."""
    anchor = json.loads((path / "meta_0.json").read_text()).get("anchor")
    if anchor is None:
        raise SystemExit(f"{path} was dumped before dumps kept the package's imputations")
    study = Study(path)  # the dumped inputs alone: the package's
    study.anchor = anchor
    every = list(range(len(study.names)))
    ours, package = study.predict(every), {}
    print(f"| track | package MSE | study MSE |  (anchor {study.anchor})\n|---|---|---|")
    worst = 0.0
    for fold in study.folds:
        held = json.loads((path / f"meta_{fold}.json").read_text())["held"]
        for (c, a), values in zip(held, np.load(path / f"ensemble_{fold}.npy"), strict=True):
            package[c, a] = values
            worst = max(worst, float(np.abs(values - ours[c, a]).max()))
            print(
                f"| {c}/{a} | {study.mse(values, c, a):.6f} | {study.mse(ours[c, a], c, a):.6f} |"
            )
    print(f"largest absolute difference of the imputations: {worst:.2e}")
    if csv is not None:
        tables = {
            "ensemble": study.table(package),
            "ensemble (no peak calibration)": study.table(study.predict(every, budget=None)),
        }
        write_csv(tables, csv)
    return worst


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("step", choices=["dump", "report", "inputs", "masking", "check"])
    p.add_argument("path", type=Path)
    p.add_argument(
        "--with-baselines",
        action="store_true",
        help="report: add the regression baselines to the dumped inputs",
    )
    p.add_argument(
        "--seed", type=int, default=0, help="dump: folds and fits as cross_validate's seed"
    )
    p.add_argument("--csv", type=Path, help="check: write every measure per track here")
    args = p.parse_args(argv)
    warnings.filterwarnings("ignore", "(?s).*can never be held out")
    if args.step == "report":
        report(args.path, EXTRA if args.with_baselines else ())
    elif args.step == "dump":
        dump(args.path, args.seed)
    elif args.step == "check":
        check(args.path, args.csv)
    else:
        {"inputs": inputs, "masking": masking}[args.step](args.path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
