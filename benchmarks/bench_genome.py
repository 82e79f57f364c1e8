"""Whole-genome scale: coordinates, phase-2 scaling on a process cluster, genome imputation.

Cases (each in its own interpreter, so peak RSS is its own):

- ``coords``: a whole-hg19 compendium store (124 M positions, 25 tracks; metadata,
  coordinates and layout written, signal chunks not) and a genome-wide model whose factors live
  in a zarr store: open the compendium, select an interval, build the imputation graph of every
  track over the whole genome. Goal: under 300 MB and 5 s. Baseline in the same run: reading
  the stored ``chrom``/``start`` arrays (what an O(positions) design pays).
- ``scaling``: a simulated genome of 20 chromosomes x 1,048,576 positions (21 M) whose 25 tracks
  are the real pilot tracks circularly shifted per chromosome; phase 1 on chr1; phase 2 of all
  chromosomes on a ``LocalCluster`` of 1 and of 2 worker processes (goal: >= 1.7x), per-worker
  peak RSS; then the whole-genome imputation written to zarr on 2 workers (positions/s).
- ``phase2``: the real-data check (``_phase2.phase2_check``) at several epochs.

Usage: ``python benchmarks/bench_genome.py [coords|scaling|phase2|all]``.
"""

from __future__ import annotations

import json
import resource
import sys
import time

import numpy as np
from _common import SCRATCH, SHARED, machine, peak_rss_mib, run_isolated

from avocado_xr.config import DEMO_NETWORK

N_CHROMS, CHROM_POSITIONS = 20, 1_048_576


def _rss_now_mib() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * resource.getpagesize() / 2**20


def _genome_store():
    """A whole-hg19 compendium store (no signal chunks written) and a genome-wide model."""
    import dask.array as da

    import avocado_xr as ax
    from avocado_xr.genome import GenomeLayout
    from avocado_xr.model.genome_store import GenomeFactorStore
    from avocado_xr.model.network import AvocadoHead

    store, factors = SCRATCH / "hg19.zarr", SCRATCH / "hg19-factors.zarr"
    layout = GenomeLayout.from_genome("hg19")
    celltypes = ["E003", "E017", "E065", "E116", "E117"]
    assays = ["H3K4me3", "H3K27me3", "H3K36me3", "H3K9me3", "H3K4me1"]
    if not store.exists():
        signal = da.zeros((5, 5, layout.n_positions), dtype=np.float32, chunks=(1, 1, 2**17))
        ds = ax.make_compendium(
            signal, celltypes=celltypes, assays=assays, chrom=layout, start=None,
            observed=np.ones((5, 5), bool), genome="hg19",
        )  # fmt: skip
        ax.save_compendium(ds, store, compute=False)
    config = ax.AvocadoConfig().replace(**DEMO_NETWORK)
    widths = (config.n_25bp_factors, config.n_250bp_factors, config.n_5kbp_factors)
    genome = GenomeFactorStore.create(factors, layout, widths)
    head = AvocadoHead(5, 5, config)
    model = ax.AvocadoModel(
        None, config, head=head, genome=genome, celltypes=celltypes, assays=assays, layout=layout
    )
    return store, model


def case_coords() -> dict:
    import xarray as xr

    import avocado_xr as ax

    store, model = _genome_store()
    out = {"case": "whole-genome coordinates", "positions": model.layout.n_positions}
    base = _rss_now_mib()
    tic = time.perf_counter()
    ds = ax.open_compendium(store)
    out["open_compendium (s)"] = time.perf_counter() - tic
    tic = time.perf_counter()
    sub = ds.avocado.region("chr20:1,000,000-2,000,000")
    out["region chr20:1-2 Mb (s)"] = time.perf_counter() - tic
    out["region positions"] = sub.sizes["position"]
    tic = time.perf_counter()
    imp = model.impute(ds, merge=False)
    out["impute graph, 25 tracks x whole genome (s)"] = time.perf_counter() - tic
    out["impute tasks"] = len(imp.imputed.data.__dask_graph__())
    out["RSS added by the three steps (MiB)"] = _rss_now_mib() - base
    out["peak RSS of the process (MiB)"] = peak_rss_mib()
    tic = time.perf_counter()  # baseline: what reading the coordinates costs
    plain = xr.open_zarr(store, consolidated=False)
    chrom, start = plain.chrom.values, plain.start.values
    out["baseline: read stored chrom/start (s)"] = time.perf_counter() - tic
    out["baseline: their size in memory (MiB)"] = (chrom.nbytes + start.nbytes) / 2**20
    out["peak RSS incl. baseline (MiB)"] = peak_rss_mib()
    return out


def _simulated_genome():
    """20 chromosomes of 1,048,576 positions; the 25 real pilot tracks shifted per chromosome."""
    import avocado_xr as ax
    from avocado_xr.genome import GenomeLayout

    store = SCRATCH / "genome20.zarr"
    if store.exists():
        return store
    pilot = ax.datasets.roadmap_pilot(SHARED / "roadmap_pilot")
    real = pilot.signal.values
    rng = np.random.default_rng(0)
    signal = np.empty((5, 5, N_CHROMS * CHROM_POSITIONS), dtype=np.float32)
    for k in range(N_CHROMS):
        shift = int(rng.integers(0, real.shape[-1]))
        rolled = np.roll(real, shift, axis=-1)[..., :CHROM_POSITIONS]
        signal[..., k * CHROM_POSITIONS : (k + 1) * CHROM_POSITIONS] = rolled
    layout = GenomeLayout(
        tuple(f"chr{k + 1}" for k in range(N_CHROMS)),
        (0,) * N_CHROMS,
        (CHROM_POSITIONS,) * N_CHROMS,
    )
    ds = ax.make_compendium(
        signal, celltypes=list(pilot.celltype.values), assays=list(pilot.assay.values),
        chrom=layout, start=None, observed=np.ones((5, 5), bool), genome="simulated",
    )  # fmt: skip
    ax.save_compendium(ds, store)
    return store


def _watch_rss(dask_worker, interval: float = 0.1) -> None:
    """Record the worker's own peak RSS by polling, on ``dask_worker.peak_rss_bytes``.

    ``getrusage``'s ``ru_maxrss`` survives ``exec``, so a worker spawned by a driver that
    once held 6 GB would report the driver's peak; polling measures the worker's own.
    """
    import threading

    import psutil

    dask_worker.peak_rss_bytes = 0

    def poll():
        me = psutil.Process()
        while True:
            dask_worker.peak_rss_bytes = max(dask_worker.peak_rss_bytes, me.memory_info().rss)
            time.sleep(interval)

    threading.Thread(target=poll, daemon=True).start()


def _worker_peak_rss(client) -> dict:
    """Peak RSS (MiB) of each worker since :func:`_watch_rss` started there."""

    def peak(dask_worker):
        return dask_worker.peak_rss_bytes / 2**20

    return {str(w): round(v) for w, v in client.run(peak).items()}


def case_scaling(epochs: int) -> dict:
    import distributed

    import avocado_xr as ax

    store = _simulated_genome()
    phase1 = ax.fit(
        ax.open_compendium(store).sel(chrom="chr1"), epochs=2, device="cpu",
        batch_size=10_000, **DEMO_NETWORK,
    )  # fmt: skip
    out = {"case": "phase 2 scaling", "positions": N_CHROMS * CHROM_POSITIONS, "epochs": epochs}
    for workers in (1, 2):
        factors = SCRATCH / f"genome20-factors-{workers}.zarr"
        for path in (factors, SCRATCH / f"genome20-factors-{workers}.zarr.checkpoints"):
            if path.exists():
                import shutil

                shutil.rmtree(path)
        cluster = distributed.LocalCluster(
            n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=":0"
        )
        with distributed.Client(cluster) as client:
            client.run(_watch_rss)
            tic = time.perf_counter()
            model = ax.fit_genome(store, factors, model=phase1, epochs=epochs, device="cpu")
            out[f"phase 2, {workers} worker(s) (s)"] = time.perf_counter() - tic
            out[f"peak RSS per worker, {workers} worker(s) (MiB)"] = _worker_peak_rss(client)
            if workers == 2:
                imputed = model.impute(ax.open_compendium(store), merge=False)
                tic = time.perf_counter()
                imputed.to_zarr(SCRATCH / "genome20-imputed.zarr", mode="w", consolidated=False)
                seconds = time.perf_counter() - tic
                out["impute to zarr, 2 workers (track-positions/s)"] = (
                    25 * N_CHROMS * CHROM_POSITIONS / seconds
                )
                out["peak RSS per worker after imputation (MiB)"] = _worker_peak_rss(client)
        cluster.close()
    out["speed-up, 2 vs 1 worker"] = (
        out["phase 2, 1 worker(s) (s)"] / out["phase 2, 2 worker(s) (s)"]
    )
    records = model.training_info["genome_history"].values()
    rates = [h["samples_per_second"] for record in records for h in record]
    out["phase 2 samples/s per chromosome task (median)"] = float(np.median(rates))
    out["driver peak RSS (MiB)"] = peak_rss_mib()
    return out


def case_phase2(epochs: int, seed: int) -> dict:
    from _phase2 import phase2_check

    import avocado_xr as ax

    pilot = ax.datasets.roadmap_pilot(SHARED / "roadmap_pilot")
    work = SCRATCH / "phase2"
    work.mkdir(parents=True, exist_ok=True)
    return phase2_check(pilot, work, epochs=epochs, seed=seed, batch_size=10_000, **DEMO_NETWORK)


def main(which: str) -> None:
    if which == "case":
        kind, *args = sys.argv[2].split(":")
        out = {
            "coords": case_coords,
            "scaling": lambda e: case_scaling(int(e)),
            "phase2": lambda e, s: case_phase2(int(e), int(s)),
        }[kind](*args)
        print(json.dumps(out))
        return
    print(f"# machine: {machine()}")
    cases = {
        "coords": ["coords"],
        "scaling": ["scaling:2"],
        "phase2": [f"phase2:{e}:{s}" for e in (10, 20) for s in (0, 1)],
    }
    for name in [c for k, v in cases.items() if which in (k, "all") for c in v]:
        result = json.loads(run_isolated(__file__, "case", name).strip().splitlines()[-1])
        print(json.dumps(result, indent=1), flush=True)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "all")
