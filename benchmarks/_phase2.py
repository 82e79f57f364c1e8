"""The real-data check of phase 2, shared by the test (reduced) and the benchmark (full).

On the 25 real pilot tracks with three tracks held out: phase 1 on the pilot regions of the
odd chromosomes, phase 2 on those of the even ones (network, cell type and assay factors
frozen), against one joint fit over all regions with the same number of epochs and against
the average and mean baselines, scored on the held-out tracks over the phase-2 positions.
"""

from __future__ import annotations

import time

import numpy as np

HELD_OUT = [("E065", "H3K4me3"), ("E116", "H3K27me3"), ("E003", "H3K36me3")]


def phase2_check(pilot, workdir, *, epochs: int, seed: int = 0, chroms=None, **network) -> dict:
    """Held-out MSE and Pearson r on the phase-2 positions for phase 2, the joint fit and
    the baselines; and the wall time of each fit. ``chroms`` restricts the data first."""
    import xarray as xr

    import avocado_xr as ax
    from avocado_xr.coords import layout_of
    from avocado_xr.evaluation.baselines import impute_average, impute_mean

    if chroms is not None:
        parts = [pilot.sel(chrom=c) for c in chroms]
        pilot = xr.concat(
            parts, dim="position", data_vars="minimal", coords="minimal", compat="override"
        )

    train = pilot.avocado.mask(HELD_OUT)
    store = workdir / "train.zarr"
    if not store.exists():
        ax.save_compendium(train, store)
    layout = layout_of(pilot)
    chroms = list(dict.fromkeys(layout.chrom))
    odd = [c for c in chroms if int(c[3:]) % 2]
    even = [c for c in chroms if c not in odd]
    regions = [r for r in layout.intervals() if r[0] in odd]
    options = dict(device="cpu", seed=seed, **network)
    tic = time.perf_counter()
    model = ax.fit_genome(
        store, workdir / f"factors-{seed}-{epochs}.zarr", regions=regions,
        phase1_epochs=epochs, epochs=epochs, chroms=even, **options,
    )  # fmt: skip
    seconds = {"two phases": time.perf_counter() - tic}
    tic = time.perf_counter()
    joint = ax.fit(train, epochs=epochs, **options)
    seconds["joint"] = time.perf_counter() - tic
    ranges = [(first, first + sub.n_positions) for first, sub in map(layout.chromosome, even)]
    positions = np.concatenate([np.arange(*r) for r in ranges])
    test = train.isel(position=positions)
    truth = pilot.signal.isel(position=positions)
    methods = {
        "phase 2 (frozen network)": model.impute(test, merge=False),
        "joint fit, same epochs": joint.impute(test, merge=False),
        "average of other cell types": impute_average(test),
        "mean of other cell types": impute_mean(test),
    }
    out = {"epochs": epochs, "seed": seed, "positions": len(positions), "seconds": seconds}
    for name, imputed in methods.items():
        mse, r = [], []
        for c, a in HELD_OUT:
            y = truth.sel(celltype=c, assay=a).values
            p = imputed.imputed.sel(celltype=c, assay=a).values
            mse.append(float(np.mean((y - p) ** 2)))
            r.append(float(np.corrcoef(y, p)[0, 1]) if np.ptp(p) > 0 else float("nan"))
        finite = [v for v in r if np.isfinite(v)]  # a constant imputation has no correlation
        out[name] = {
            "mse": float(np.mean(mse)),
            "pearson": float(np.mean(finite)) if finite else float("nan"),
            "per track mse": mse,
        }
    return out
