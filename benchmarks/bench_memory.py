"""Peak memory of training from zarr: the pilot store versus a simulated store 10x longer.

Each run is a fresh interpreter that opens a zarr compendium lazily and trains the demo-size
network for one epoch. If the data pipeline is out-of-core, the peak RSS grows with the number
of positions only by the model's genome state (embedding tables, their Adam moments and the
coarse-bin index buffers), which the script computes and prints beside the measurement.

Usage: ``python benchmarks/bench_memory.py [factor]`` (default factor 10)
"""

from __future__ import annotations

import json
import sys

import numpy as np
from _common import SCRATCH, machine, peak_rss_mib, pilot_store, run_isolated
from bench_train import DEMO


def simulated_store(n_positions: int):
    """A random 5 x 5 compendium of ``n_positions`` bins on 10 chromosomes, written lazily."""
    import dask.array as da

    import avocado_xr as ax

    store = SCRATCH / f"simulated_{n_positions}.zarr"
    if store.exists():
        return store
    chunk = 2**17
    rng = da.random.default_rng(0)
    signal = rng.gamma(0.5, 0.6, size=(5, 5, n_positions), chunks=(1, 1, chunk)).astype("float32")
    per_chrom = -(-n_positions // 10)
    chrom = np.repeat(np.array([f"chr{i + 1}" for i in range(10)], dtype=object), per_chrom)[
        :n_positions
    ]
    start = (np.arange(n_positions) % per_chrom) * 25
    ds = ax.make_compendium(
        signal,
        celltypes=[f"C{i}" for i in range(5)],
        assays=[f"A{i}" for i in range(5)],
        chrom=chrom,
        start=start,
        observed=np.ones((5, 5), bool),
        genome="simulated",
    )
    ax.save_compendium(ds, store, position_chunk=chunk)
    return store


def genome_state_mib(model) -> float:
    """Bytes that must grow with positions: genome tables x 3 (weights, Adam m, v) + indices."""
    tables = sum(t.weight.numel() * 4 for t in model.net.genome_tables())
    buffers = model.net.index_250bp.numel() * 8 + model.net.index_5kbp.numel() * 8
    return (3 * tables + buffers) / 2**20


def case(store: str) -> dict:
    import avocado_xr as ax

    ds = ax.open_compendium(store)
    after_open = peak_rss_mib()
    model = ax.fit(ds, epochs=1, device="cpu", **DEMO)
    return {
        "store": store.split("/")[-1],
        "positions": ds.sizes["position"],
        "peak RSS after open (MiB)": after_open,
        "peak RSS after 1 epoch (MiB)": peak_rss_mib(),
        "genome state (MiB)": genome_state_mib(model),
        "samples/s": model.history[0]["samples_per_second"],
    }


def main() -> None:
    if sys.argv[1:2] == ["case"]:
        print(json.dumps(case(sys.argv[2])))
        return
    factor = int(sys.argv[1]) if len(sys.argv) > 1 else 10
    print(f"# machine: {machine()}")
    pilot = pilot_store()
    import avocado_xr as ax

    n = ax.open_compendium(pilot).sizes["position"]
    big = simulated_store(factor * n)
    rows = [
        json.loads(run_isolated(__file__, "case", str(s)).strip().splitlines()[-1])
        for s in (pilot, big)
    ]
    for row in rows:
        print(json.dumps(row))
    grown = rows[1]["peak RSS after 1 epoch (MiB)"] - rows[0]["peak RSS after 1 epoch (MiB)"]
    state = rows[1]["genome state (MiB)"] - rows[0]["genome state (MiB)"]
    print(
        f"positions x{rows[1]['positions'] / rows[0]['positions']:.1f}: peak RSS grew by "
        f"{grown:.0f} MiB, of which genome state {state:.0f} MiB; the rest "
        f"({grown - state:.0f} MiB) is what the data pipeline and bookkeeping add."
    )


if __name__ == "__main__":
    main()
