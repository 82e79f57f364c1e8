"""k-fold cross-validation of every method on the real pilot data: per-track and mean tables.

Every method of the registry (``avocado_xr.evaluation.crossval.METHODS``: Avocado, Avocado
with the average input, the PREDICTD-style linear model, the average and mean baselines, the
autoencoder and the stacked ensemble) is cross-validated on the same folds over the observed
tracks (``ax.make_folds``), each held-out track scored on all its positions with every
measure of ``avocado_xr.evaluate``. Printed, in Markdown:

- the wall time of each method (fitting every fold, imputing and scoring);
- the mean over tracks of every measure, the best method per measure starred;
- for each method, the per-track table of every measure, a value starred where that method is
  the best of all methods on that track and measure;
- per track, how many methods beat the average baseline on MSE, and which method is best.

Usage::

    python benchmarks/bench_crossval.py                        # every method, 5 folds, 10 epochs
    python benchmarks/bench_crossval.py --methods avocado,average,ensemble --epochs 20
    python benchmarks/bench_crossval.py --network paper --precision bfloat16 --epochs 1 \\
        --methods avocado,average                              # item 2 of issue 11
    python benchmarks/bench_crossval.py --network paper --precision bfloat16 --epochs 400 \\
        --batch-size 40000 --methods avocado --device cuda --predict-on-device   # on a GPU
    python benchmarks/bench_crossval.py --variant 'avocado-e40=avocado:{"epochs": 40}'
    python benchmarks/bench_crossval.py --store sample --k 3 --epochs 1 --ae-windows 2000

Other processes on the machine slow every method down; the timings are wall times.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np
import pandas as pd
from _common import SHARED, machine

LOWER_IS_BETTER_PREFIX = "mse"


def parse_args(argv=None) -> argparse.Namespace:
    from avocado_xr.evaluation.crossval import METHODS

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--store", default="pilot", help="'pilot', 'sample' or a zarr compendium")
    p.add_argument("--methods", default=",".join(METHODS), help="comma-separated registry names")
    p.add_argument(
        "--variant",
        action="append",
        default=[],
        metavar="NAME=METHOD:JSON",
        help="an extra row: METHOD with its options updated by JSON, nested dicts merged, "
        'e.g. \'ens-e40=ensemble:{"factorization": {"epochs": 40}}\' (repeatable)',
    )
    p.add_argument("--k", type=int, default=5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--epochs", type=int, default=10, help="factorization epochs")
    p.add_argument("--network", choices=["demo", "paper"], default="demo")
    p.add_argument("--precision", choices=["float32", "bfloat16"], default="float32")
    p.add_argument("--batch-size", type=int, default=10_000)
    p.add_argument("--device", default="cpu", help="'cpu' or 'cuda' (models that learn)")
    p.add_argument(
        "--predict-on-device",
        action="store_true",
        help="predict the held-out tracks of the factorization methods on --device, in memory "
        "(AvocadoModel.predict), instead of the lazy imputation's CPU workers",
    )
    p.add_argument("--ae-windows", type=int, default=100_000)
    p.add_argument("--ae-epochs", type=int, default=1)
    p.add_argument("--inner-k", type=int, default=None, help="ensemble inner folds")
    p.add_argument("--inner-epochs", type=int, default=None, help="ensemble inner epochs")
    p.add_argument("--bases", default=None, help="ensemble base methods, comma-separated")
    p.add_argument("--annotations", choices=["pilot", "none"], default="pilot")
    p.add_argument("--csv", default=None, help="also write the long score table here")
    p.add_argument(
        "--report",
        nargs="+",
        default=None,
        metavar="CSV",
        help="run nothing: print the tables of the methods in these --csv files together "
        "(PATH:OLD=NEW renames a method)",
    )
    return p.parse_args(argv)


def build_methods(args) -> dict[str, dict]:
    from avocado_xr.config import DEMO_NETWORK
    from avocado_xr.evaluation.crossval import method_options

    factorization = {"epochs": args.epochs, "batch_size": args.batch_size, "device": args.device}
    if args.network == "demo":
        factorization.update(DEMO_NETWORK)
    if args.precision != "float32":
        factorization["precision"] = args.precision
    autoencoder = {"n_windows": args.ae_windows, "epochs": args.ae_epochs, "device": args.device}
    ensemble = {}
    if args.inner_k is not None:
        ensemble["inner_k"] = args.inner_k
    if args.inner_epochs is not None:
        ensemble["inner_epochs"] = args.inner_epochs
    if args.bases:
        ensemble["bases"] = tuple(args.bases.split(","))
    names = [m for m in args.methods.split(",") if m]
    methods = method_options(
        factorization=factorization, autoencoder=autoencoder, ensemble=ensemble, methods=names
    )
    for spec in args.variant:
        name, _, rest = spec.partition("=")
        method, _, text = rest.partition(":")
        options = method_options(
            factorization=factorization,
            autoencoder=autoencoder,
            ensemble=ensemble,
            methods=[method],
        )[method]
        for key, value in json.loads(text or "{}").items():  # nested dicts are merged
            if isinstance(value, dict) and isinstance(options.get(key), dict):
                options[key].update(value)
            else:
                options[key] = value
        methods[name] = {"method": method, **options}
    return methods


def _recorder(fit, fitted: dict):
    """A method that fits with ``fit`` and keeps each fold's model by seed."""

    def run(train, *, seed, **options):
        fitted[seed] = fit(train, seed=seed, **options)
        return fitted[seed]

    return run


class _PredictedOnDevice:
    """A fitted factorization whose held-out tracks are predicted on its training device, in
    memory and float32, at every model position (:meth:`AvocadoModel.predict`): the lazy
    imputation runs the network on the CPU workers, which for the paper-size network takes
    longer than its training on a GPU."""

    def __init__(self, model):
        if model.config.average != "none":
            raise SystemExit("--predict-on-device: AvocadoModel.predict takes no average input")
        self.model = model

    def impute(self, ds, *, celltypes, assays, merge):
        imp = self.model.impute(ds, celltypes=celltypes, assays=assays, merge=merge)
        if imp.sizes["position"] != self.model.layout.n_positions:
            raise SystemExit("--predict-on-device predicts every model position only")
        values = np.stack([[self.model.predict(c, a) for a in assays] for c in celltypes])
        imp["imputed"] = imp["imputed"].copy(data=values)
        return imp


def _uncalibrated(fitted: dict):
    """A method returning each fold's recorded ensemble without its peak calibration."""
    return lambda train, *, seed, **_: fitted[seed].uncalibrated()


def _higher_is_better(metric: str) -> bool:
    return not metric.startswith(LOWER_IS_BETTER_PREFIX)


def per_track_tables(results) -> dict[str, pd.DataFrame]:
    from avocado_xr.evaluation.scoring import metric_table

    return {name: metric_table(cv["score"]) for name, cv in results.items()}


def starred(tables: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    """Each table as text, a value starred where its method is the best of all on that
    row (track or mean) and measure."""
    names = list(tables)
    stack = np.stack([tables[n].to_numpy(dtype=float) for n in names])  # method, row, metric
    out = {}
    columns = list(next(iter(tables.values())).columns)
    best = np.full(stack.shape[1:], -1)
    for j, metric in enumerate(columns):
        values = stack[:, :, j]
        with np.errstate(all="ignore"):
            filled = np.where(
                np.isnan(values), -np.inf if _higher_is_better(metric) else np.inf, values
            )
            pick = filled.argmax(0) if _higher_is_better(metric) else filled.argmin(0)
        best[:, j] = np.where(np.isnan(values).all(0), -1, pick)
    for m, name in enumerate(names):
        frame = tables[name].copy().astype(object)
        for i in range(stack.shape[1]):
            for j in range(stack.shape[2]):
                v = stack[m, i, j]
                star = "*" if best[i, j] == m else ""
                frame.iat[i, j] = "nan" if np.isnan(v) else f"{v:.4f}{star}"
        out[name] = frame
    return out


def write_csv(tables: dict[str, pd.DataFrame], path) -> None:
    """Per-method tables as the long table (method, track, metric, value) ``--report`` reads."""
    long = []
    for name, table in tables.items():
        frame = table.reset_index().melt(id_vars="track", var_name="metric")
        frame.insert(0, "method", name)
        long.append(frame)
    pd.concat(long).to_csv(path, index=False)


def read_tables(entries) -> dict[str, pd.DataFrame]:
    """Per-method tables (track x metric, with the ``mean`` row) from ``--csv`` files, in
    the order the methods, tracks and metrics first appear; ``PATH:OLD=NEW,...`` renames
    methods, and a method met again in a later file is taken from the first."""
    frames = []
    for entry in entries:
        path, _, renames = entry.partition(":")
        frame = pd.read_csv(path)
        pairs = [pair.split("=", 1) for pair in renames.split(",") if pair]
        frames.append(frame.replace({"method": dict(pairs)}))
    long = pd.concat(frames).drop_duplicates(["method", "track", "metric"])
    tables = {}
    for name, frame in long.groupby("method", sort=False):
        table = frame.pivot(index="track", columns="metric", values="value")
        tables[name] = table.loc[frame.track.unique(), frame.metric.unique()]
    return tables


def print_tables(tables: dict[str, pd.DataFrame]) -> None:
    """The mean table, the MSE wins over the average baseline and the per-track tables, each
    value starred where its method is the best of ``tables`` on that row and measure."""
    marked = starred(tables)
    print("\n## Mean over the tracks (best per measure starred)\n")
    means = pd.DataFrame({name: marked[name].loc["mean"] for name in marked}).T
    print(markdown(means))
    if "average" in tables:
        base = tables["average"].drop(index="mean")["mse"]
        print("\n## Tracks on which each method beats the average baseline on MSE\n")
        print("| method | tracks won | of |\n|---|---|---|")
        for name, table in tables.items():
            mse = table.drop(index="mean")["mse"]
            print(f"| {name} | {int((mse < base).sum())} | {len(mse)} |")
    print("\n## Per track")
    for name, frame in marked.items():
        print(f"\n### {name}\n")
        print(markdown(frame))


def markdown(frame: pd.DataFrame) -> str:
    from avocado_xr.evaluation.report import markdown_table

    return markdown_table(frame)


def main(argv=None) -> int:
    import avocado_xr as ax
    from avocado_xr.evaluation.crossval import METHODS
    from avocado_xr.evaluation.report import compare_methods

    args = parse_args(argv)
    if args.report:
        print_tables(read_tables(args.report))
        return 0
    if args.store == "pilot":
        ds = ax.datasets.roadmap_pilot(SHARED / "roadmap_pilot")
    elif args.store == "sample":
        ds = ax.datasets.roadmap_pilot_sample()
    else:
        ds = ax.open_compendium(args.store)
    methods = build_methods(args)
    print(f"# machine: {machine()}")
    print(f"# settings: {json.dumps(vars(args))}")
    print(f"# {dict(ds.sizes)}; methods: {json.dumps(methods, default=str)}", flush=True)
    annotations = None if args.annotations == "none" else args.annotations
    results = {}
    for name, options in methods.items():
        options = dict(options)
        method = options.pop("method", name)
        fitted = {}
        if METHODS[method].kind == "ensemble":  # keep the fold models for the extra row
            options["method"] = _recorder(METHODS[method].fit, fitted)
        elif args.predict_on_device and METHODS[method].kind == "factorization":
            fit = METHODS[method].fit
            options["method"] = lambda train, fit=fit, **o: _PredictedOnDevice(fit(train, **o))
        else:  # a variant's row name is not a method name
            options["method"] = method
        tic, cpu = time.perf_counter(), time.process_time()
        results.update(
            compare_methods(ds, {name: options}, k=args.k, seed=args.seed, annotations=annotations)
        )
        results[name].attrs["cpu_seconds"] = time.process_time() - cpu
        print(f"# {name}: {time.perf_counter() - tic:.0f} s", flush=True)
        if fitted and any(m.calibration is not None for m in fitted.values()):
            extra = f"{name} (no peak calibration)"
            tic = time.perf_counter()
            results.update(
                compare_methods(
                    ds,
                    {extra: {"method": _uncalibrated(fitted)}},
                    k=args.k,
                    seed=args.seed,
                    annotations=annotations,
                )
            )
            # the same fits: the ensemble's time (the re-imputation took the rest)
            results[extra].attrs["seconds"] = results[name].attrs["seconds"]
            results[extra].attrs["cpu_seconds"] = results[name].attrs["cpu_seconds"]
            print(f"# {extra}: re-imputed in {time.perf_counter() - tic:.0f} s", flush=True)
            print(f"# {name}: the peak calibration's kappa by fold", flush=True)
            for seed, model in sorted(fitted.items()):
                kappa = model.calibration and round(model.calibration["kappa"], 3)
                print(f"#   fold seed {seed}: kappa {kappa}, info {model.info['seconds']}")
    tables = per_track_tables(results)
    print("\n## Time per method (fit every fold, impute, score)\n")
    print("CPU seconds count every thread of this process (torch uses 2); unlike wall time they")
    print("do not grow while other processes hold the cores.\n")
    print("| method | wall seconds | CPU seconds |\n|---|---|---|")
    for name, cv in results.items():
        print(f"| {name} | {cv.attrs['seconds']:.0f} | {cv.attrs['cpu_seconds']:.0f} |")
    print_tables(tables)
    if args.csv:
        write_csv(tables, args.csv)
    return 0


if __name__ == "__main__":
    sys.exit(main())
