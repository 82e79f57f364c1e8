"""Adding a cell type to a trained model, on the real pilot data (issue 10, item 4).

A demo-size model is trained on the four cell types other than E117 (20 tracks). For each of
E117's five assays, E117 is then added from its other four tracks (``add_celltypes``: only its
factors learned, everything else frozen) and the fifth is imputed; optionally everything is
then fine-tuned at a tenth of the learning rate (``fine_tune``, validation on one of E117's
four training tracks, early stopping). The held-out track is scored (MSE and Pearson r over
all 1,126,469 positions) against:

- the joint fit: the same network trained from the start on the 24 tracks (E117's four in);
- the average of the same assay in the other cell types, and the track mean.

The compendium is read lazily from a zarr store (written once into the scratch folder).

Usage: ``python benchmarks/bench_transfer.py [epochs] [add_epochs] [fine_tune_epochs]``
(default 20 10 5; ``AVOCADO_XR_BENCH_POSITIONS=n`` uses the first n positions only, for a
quick check of the script)
"""

from __future__ import annotations

import json
import os
import sys
import time

import numpy as np
from _common import machine, pilot_store
from bench_train import DEMO

NEW = "E117"


def score(pred: np.ndarray, truth: np.ndarray) -> dict:
    r = float(np.corrcoef(pred, truth)[0, 1]) if np.ptp(pred) > 0 else float("nan")
    return {"mse": float(np.mean((pred - truth) ** 2)), "pearson": r}


def cell(scores: dict) -> str:
    r = scores["pearson"]
    return f"{scores['mse']:.4f} ({'—' if np.isnan(r) else f'{r:.3f}'})"


def main() -> None:
    import avocado_xr as ax
    from avocado_xr.evaluation.baselines import average_baseline, mean_baseline

    args = [int(a) for a in sys.argv[1:4]]
    epochs, add_epochs, tune_epochs = args + [20, 10, 5][len(args) :]
    print(f"# machine: {machine()}")
    print(f"# epochs: fit {epochs}, add_celltypes {add_epochs}, fine_tune <= {tune_epochs}")
    ds = ax.open_compendium(pilot_store())
    if os.environ.get("AVOCADO_XR_BENCH_POSITIONS"):
        ds = ds.isel(position=slice(0, int(os.environ["AVOCADO_XR_BENCH_POSITIONS"])))
    print(f"# positions: {ds.sizes['position']:,}")
    others = [str(c) for c in ds.celltype.values if c != NEW]
    assays = [str(a) for a in ds.assay.values]
    options = {"seed": 0, "device": "cpu", **DEMO}

    tic = time.perf_counter()
    base = ax.fit(ds.sel(celltype=others), epochs=epochs, **options)
    base_seconds = time.perf_counter() - tic
    print(json.dumps({"base": others, "tracks": 20, "seconds": round(base_seconds, 1)}))

    rows = []
    for held in assays:
        train = ds.avocado.mask([(NEW, held)])
        truth = ds.signal.sel(celltype=NEW, assay=held).values.astype(np.float32)
        row = {"assay": held}

        tic = time.perf_counter()
        added = base.add_celltypes(train, celltypes=NEW, epochs=add_epochs, device="cpu")
        row["add_seconds"] = time.perf_counter() - tic
        row["add"] = score(added.predict(NEW, held), truth)

        # fine-tune everything, validating on one of E117's four training tracks
        check = next(a for a in assays if a != held)
        tic = time.perf_counter()
        tuned = added.fine_tune(
            train, validation=[(NEW, check)], epochs=tune_epochs, patience=2, device="cpu"
        )
        row["tune_seconds"] = time.perf_counter() - tic
        report = tuned.training_info["fine_tune"]
        row["tune_helped_on_validation"] = report["helped"]
        row["tune_validation"] = f"{NEW}/{check}"
        row["add+fine-tune"] = score(tuned.predict(NEW, held), truth)

        tic = time.perf_counter()
        joint = ax.fit(train, epochs=epochs, **options)
        row["joint_seconds"] = time.perf_counter() - tic
        row["joint"] = score(joint.predict(NEW, held), truth)

        row["average"] = score(average_baseline(train, NEW, held).values, truth)
        row["mean"] = score(mean_baseline(train, NEW, held).values, truth)
        print(json.dumps(row))
        rows.append(row)

    methods = ["add", "add+fine-tune", "joint", "average", "mean"]
    print()
    print("| held-out E117 track | " + " | ".join(f"{m} MSE (r)" for m in methods) + " |")
    print("|---" * (len(methods) + 1) + "|")
    for row in rows:
        cells = [cell(row[m]) for m in methods]
        print(f"| {row['assay']} | " + " | ".join(cells) + " |")
    within = sum(r["add"]["mse"] <= 1.1 * r["joint"]["mse"] for r in rows)
    below = sum(r["add"]["mse"] < min(r["average"]["mse"], r["mean"]["mse"]) for r in rows)
    print()
    print(f"add_celltypes within 10% of the joint fit's MSE: {within}/{len(rows)} tracks")
    print(f"add_celltypes below both baselines' MSE: {below}/{len(rows)} tracks")
    helped = sum(r["add+fine-tune"]["mse"] < r["add"]["mse"] for r in rows)
    print(f"fine-tuning lowered the held-out MSE on {helped}/{len(rows)} tracks")
    mean_s = {k: np.mean([r[f"{k}_seconds"] for r in rows]) for k in ("add", "tune", "joint")}
    print(
        f"wall time: base fit {base_seconds:.0f} s (once); per track: add_celltypes "
        f"{mean_s['add']:.0f} s, fine_tune {mean_s['tune']:.0f} s, joint fit "
        f"{mean_s['joint']:.0f} s"
    )


if __name__ == "__main__":
    main()
