"""Training and imputation throughput on the real pilot data, against simple baselines and,
when it is installed, the original Avocado in the same run.

Cases, each in its own interpreter so that its peak RSS is its own:

- ``sampler``: the samplers alone (no network) on the pilot zarr store: resident (the
  observed tracks held in memory, one permutation per epoch), blocks (all tracks per block),
  blocks reading 4 tracks per block; against an in-memory NumPy epoch and naive per-batch zarr
  reads. Reported per second and per core.
- ``tracks``: ``ax.fit`` from zarr, demo-size network, with 25, 250 and 1,000 observed
  tracks over the same 524,288 positions (tracks made by circularly shifting the 25 real
  pilot tracks), with the default sampler (resident) and with ``sampler="blocks",
  tracks_per_block=25``. Goal: >= 0.8x the 25-track rate at 1,000 tracks.
- ``demo`` / ``paper``: ``ax.fit`` from zarr with the demo-size network (1 x 128;
  32/24/10/20/30; batch 10,000) and the paper-size network (2 x 2048; 32/256/25/40/45; batch
  10,000), float32 and bfloat16, against a plain PyTorch port (dense embeddings and Adam,
  ``nn.Dropout``, data in memory) and the original (``AVOCADO_ORIGINAL_PYTHON``); the paper
  case also measures this CPU's float32 and bfloat16 matmul rates to give the fraction of
  peak.
- ``impute``: full-track imputation of the pilot (positions/s), demo- and paper-size
  networks, float32 and bfloat16, against the original's ``predict``.

Usage: ``python benchmarks/bench_train.py [sampler|tracks|demo|paper|impute|all]``.
``AVOCADO_XR_BENCH_DEVICE=cuda`` runs every case on the GPU: the samplers generate their
indices there, the paper-size case then trains on the whole pilot (the GPU is fast enough) and
the matmul peak is the GPU's.
The original runs when ``AVOCADO_ORIGINAL_PYTHON`` names a Python with
``avocado-epigenome==0.4.0`` and ``tensorflow-cpu`` installed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import numpy as np
from _common import (
    DEVICE,
    SCRATCH,
    SHARED,
    machine,
    peak_rss_mib,
    pilot_store,
    run_isolated,
    synchronize,
)

from avocado_xr.config import DEMO_NETWORK

DEMO = {**DEMO_NETWORK, "batch_size": 10_000}
PAPER = dict(batch_size=10_000)  # everything else: the paper's defaults
#: positions of the paper-size cases (a full pilot epoch takes minutes on 2 cores)
PAPER_POSITIONS = 131_072
#: positions of the track-count cases
TRACK_POSITIONS = 524_288


def _original(size: str) -> dict:
    python = os.environ.get("AVOCADO_ORIGINAL_PYTHON")
    if not python:
        return {}
    script = os.path.join(os.path.dirname(__file__), "_original.py")
    out = subprocess.run(
        [python, script, str(SHARED / "roadmap_pilot"), size],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def case_sampler() -> dict:
    import torch

    import avocado_xr as ax
    from avocado_xr.model.sampler import BlockSampler, ResidentSampler, TrackReader

    lazy = ax.open_compendium(pilot_store())
    n = lazy.sizes["position"]
    pairs = np.argwhere(lazy.observed.values)
    device = torch.device(DEVICE)
    threads = torch.get_num_threads()

    def rate(sampler, epochs=3) -> float:
        generator = torch.Generator(device=device).manual_seed(0)
        for _ in sampler.epoch(generator):  # warm-up (file cache)
            pass
        synchronize()
        tic = time.perf_counter()
        for _ in range(epochs):
            for _ in sampler.epoch(generator):
                pass
        synchronize()
        return epochs * n / (time.perf_counter() - tic)

    tic = time.perf_counter()
    resident = ResidentSampler(TrackReader(lazy, pairs), 10_000, device)
    synchronize()
    load_seconds = time.perf_counter() - tic
    out = {
        "case": "sampler",
        "torch threads": threads,
        "resident (samples/s)": rate(resident),
        "resident: one-time load from zarr (s)": load_seconds,
        "blocks, all 25 tracks (samples/s)": rate(
            BlockSampler(TrackReader(lazy, pairs), 10_000, device)
        ),
        "blocks, 4 tracks per block (samples/s)": rate(
            BlockSampler(TrackReader(lazy, pairs), 10_000, device, tracks_per_block=4)
        ),
    }
    signal = lazy.signal.values  # baseline 1: everything in memory, NumPy
    rng = np.random.default_rng(0)
    tic = time.perf_counter()
    for _ in range(3):
        perm = rng.permutation(n)
        track = pairs[rng.integers(0, len(pairs), n)]
        for b in range(0, n, 10_000):
            p = perm[b : b + 10_000]
            _ = signal[track[b : b + 10_000, 0], track[b : b + 10_000, 1], p]
    out["in-memory NumPy epoch (samples/s)"] = 3 * n / (time.perf_counter() - tic)
    data = lazy.signal.data  # baseline 2: naive lazy reads, random positions per batch
    tic = time.perf_counter()
    for _ in range(3):
        p = np.sort(rng.integers(0, n, 10_000))
        t = pairs[rng.integers(0, len(pairs), 10_000)]
        data.vindex[t[:, 0], t[:, 1], p].compute()
    out["naive per-batch zarr reads (samples/s)"] = 3 * 10_000 / (time.perf_counter() - tic)
    for key in [k for k in out if k.endswith("(samples/s)")]:
        out[key.replace("(samples/s)", "(samples/s per core)")] = out[key] / threads
    out["peak RSS (MiB)"] = peak_rss_mib()
    return out


def _shifted_store(n_tracks: int):
    """A zarr compendium of n_tracks over TRACK_POSITIONS positions, built from the real
    pilot tracks circularly shifted (real signal statistics, distinct tracks)."""
    import avocado_xr as ax

    store = SCRATCH / f"tracks{n_tracks}.zarr"
    if store.exists():
        return store
    pilot = ax.datasets.roadmap_pilot(SHARED / "roadmap_pilot").isel(
        position=slice(0, TRACK_POSITIONS)
    )
    real = pilot.signal.values.reshape(25, TRACK_POSITIONS)
    n_celltypes = n_tracks // 5
    signal = np.empty((n_celltypes, 5, TRACK_POSITIONS), dtype=np.float32)
    rng = np.random.default_rng(0)
    for c in range(n_celltypes):
        shift = 0 if c < 5 else int(rng.integers(1_000, TRACK_POSITIONS - 1_000))
        for a in range(5):
            signal[c, a] = np.roll(real[(c % 5) * 5 + a], shift)
    ds = ax.make_compendium(
        signal,
        celltypes=[f"C{c:04d}" for c in range(n_celltypes)],
        assays=list(pilot.assay.values),
        chrom=pilot.chrom.values,
        start=pilot.start.values,
        observed=np.ones((n_celltypes, 5), dtype=bool),
        genome="hg19",
    )
    ax.save_compendium(ds, store)
    return store


def case_tracks(n_tracks: int, sampler: str) -> dict:
    import avocado_xr as ax

    lazy = ax.open_compendium(_shifted_store(n_tracks))
    options = {"sampler": "blocks", "tracks_per_block": 25} if sampler == "blocks" else {}
    tic = time.perf_counter()
    model = ax.fit(lazy, epochs=2, device=DEVICE, **options, **DEMO)
    total = time.perf_counter() - tic
    rates = [h["samples_per_second"] for h in model.history]
    return {
        "case": f"{n_tracks} tracks, sampler={sampler}",
        "samples/s (best epoch)": max(rates),
        "set-up incl. resident load (s)": total - sum(h["seconds"] for h in model.history),
        "peak RSS (MiB)": peak_rss_mib(),
    }


def _plain_pytorch(ds, config: dict, n_batches: int) -> float:
    """The straightforward port: dense embeddings, nn.Dropout, dense Adam, in-memory data
    (on the benchmark's device)."""
    import torch
    from torch import nn

    import avocado_xr as ax
    from avocado_xr.genome import GenomeLayout

    cfg = ax.AvocadoConfig().replace(**config)
    layout = GenomeLayout.from_coords(ds.chrom.values, ds.start.values)
    device = torch.device(DEVICE)
    i250 = torch.from_numpy(layout.scale_index(250)[0]).to(device)
    i5k = torch.from_numpy(layout.scale_index(5000)[0]).to(device)
    n = ds.sizes["position"]
    emb = nn.ModuleList(
        [
            nn.Embedding(5, cfg.n_celltype_factors),
            nn.Embedding(5, cfg.n_assay_factors),
            nn.Embedding(n, cfg.n_25bp_factors),
            nn.Embedding(int(i250.max()) + 1, cfg.n_250bp_factors),
            nn.Embedding(int(i5k.max()) + 1, cfg.n_5kbp_factors),
        ]
    )
    layers, width = [], cfg.n_celltype_factors + cfg.n_assay_factors + cfg.n_genome_factors
    for _ in range(cfg.n_layers):
        layers += [nn.Linear(width, cfg.n_nodes), nn.ReLU(), nn.Dropout(cfg.dropout)]
        width = cfg.n_nodes
    mlp = nn.Sequential(*layers, nn.Linear(width, 1))
    emb, mlp = emb.to(device), mlp.to(device)
    opt = torch.optim.Adam([*emb.parameters(), *mlp.parameters()], lr=cfg.lr)
    signal = torch.from_numpy(ds.signal.values).to(device)
    pairs = torch.from_numpy(np.argwhere(ds.observed.values)).to(device)
    generator = torch.Generator(device=device).manual_seed(0)
    tic = None
    for step in range(n_batches + 2):
        if step == 2:
            synchronize()
            tic = time.perf_counter()
        p = torch.randint(0, n, (cfg.batch_size,), device=device, generator=generator)
        pick = torch.randint(0, len(pairs), (cfg.batch_size,), device=device, generator=generator)
        t = pairs[pick]
        y = signal[t[:, 0], t[:, 1], p]
        x = torch.cat(
            [
                emb[0](t[:, 0]),
                emb[1](t[:, 1]),
                emb[2](p),
                emb[3](i250[p]),
                emb[4](i5k[p]),
            ],
            dim=1,
        )
        loss = nn.functional.mse_loss(mlp(x).squeeze(1), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    synchronize()
    return n_batches * cfg.batch_size / (time.perf_counter() - tic)


def _matmul_rate(dtype) -> float:
    """The device's dense matmul rate (GFLOP/s) at the paper network's layer size."""
    import torch

    a = torch.randn(10_000, 2048, device=DEVICE).to(dtype)
    b = torch.randn(2048, 2048, device=DEVICE).to(dtype)
    a @ b
    repeats = 5 if DEVICE == "cpu" else 200
    synchronize()
    tic = time.perf_counter()
    for _ in range(repeats):
        a @ b
    synchronize()
    return repeats * 2 * 10_000 * 2048 * 2048 / (time.perf_counter() - tic) / 1e9


def case_fit(size: str, precision: str) -> dict:
    import torch

    import avocado_xr as ax

    lazy = ax.open_compendium(pilot_store())
    config = DEMO if size == "demo" else PAPER
    epochs = 3
    if size == "paper" and DEVICE == "cpu":  # a full pilot epoch takes minutes on 2 cores
        lazy = lazy.isel(position=slice(0, PAPER_POSITIONS))
        epochs = 2
    model = ax.fit(lazy, epochs=epochs, device=DEVICE, precision=precision, **config)
    rates = [h["samples_per_second"] for h in model.history]
    result = {
        "case": f"{size} network, ax.fit from zarr, {precision}",
        "samples/s (best epoch)": max(rates),
        "samples/s (epochs)": [round(r) for r in rates],
        "peak RSS (MiB)": peak_rss_mib(),
    }
    if size == "paper":
        flops = (
            2
            * 3
            * sum(
                a * b
                for a, b in (
                    (model.config.n_genome_factors, model.config.n_nodes),
                    (model.config.n_nodes, model.config.n_nodes),
                    (model.config.n_nodes, 1),
                )
            )
        )  # forward + backward of the per-sample layers (the per-track table is shared)
        peak = _matmul_rate(torch.float32 if precision == "float32" else torch.bfloat16)
        result[f"matmul peak, this {DEVICE} (GFLOP/s)"] = peak
        result["fraction of matmul peak"] = max(rates) * flops / 1e9 / peak
    if precision == "float32":
        n_batches = 40 if size == "demo" else 4
        if DEVICE != "cpu":
            n_batches *= 25
        result["plain PyTorch port, same network (samples/s)"] = _plain_pytorch(
            lazy.load(), config, n_batches
        )
        original = _original(size)
        if original:
            result["original avocado 0.4.0 (samples/s)"] = original["train samples/s"]
            result["ours / original"] = max(rates) / original["train samples/s"]
    return result


def case_impute(size: str, precision: str) -> dict:
    import avocado_xr as ax

    ds = ax.open_compendium(pilot_store())
    if size == "paper" and DEVICE == "cpu":
        ds = ds.isel(position=slice(0, PAPER_POSITIONS))
    config = DEMO if size == "demo" else PAPER
    model = ax.fit(ds, epochs=0, device=DEVICE, **config)  # weights do not change the cost
    imp = model.impute(ds, merge=False, precision=precision, device=DEVICE)
    imp.isel(position=slice(0, 20_000)).compute()  # warm-up
    tic = time.perf_counter()
    imp.to_zarr(SCRATCH / f"imputed-{size}-{precision}.zarr", mode="w", consolidated=False)
    seconds = time.perf_counter() - tic
    n = ds.sizes["position"] * ds.sizes["celltype"] * ds.sizes["assay"]
    result = {
        "case": f"impute on {DEVICE}, {size} network, {precision}, 25 tracks to zarr",
        "track-positions/s": n / seconds,
        "peak RSS (MiB)": peak_rss_mib(),
    }
    if precision == "float32":
        original = _original(size)
        if original:
            result["original predict (positions/s)"] = original["predict positions/s"]
            result["ours / original"] = (
                result["track-positions/s"] / original["predict positions/s"]
            )
    return result


def main(which: str) -> None:
    if which == "case":
        name = sys.argv[2]
        kind, *args = name.split(":")
        out = {
            "sampler": case_sampler,
            "tracks": lambda n, s: case_tracks(int(n), s),
            "fit": case_fit,
            "impute": case_impute,
        }[kind](*args)
        print(json.dumps(out))
        return
    print(f"# machine: {machine()}")
    pilot_store()
    cases = {
        "sampler": ["sampler"],
        "tracks": [f"tracks:{n}:{s}" for n in (25, 250, 1000) for s in ("auto", "blocks")],
        "demo": ["fit:demo:float32", "fit:demo:bfloat16"],
        "paper": ["fit:paper:float32", "fit:paper:bfloat16"],
        "impute": [f"impute:{s}:{p}" for s in ("demo", "paper") for p in ("float32", "bfloat16")],
    }
    names = [c for k, v in cases.items() if which in (k, "all") for c in v]
    for name in names:
        result = json.loads(run_isolated(__file__, "case", name).strip().splitlines()[-1])
        print(json.dumps(result, indent=1), flush=True)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "all")
