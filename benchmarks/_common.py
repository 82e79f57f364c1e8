"""Shared helpers of the benchmark scripts: machine description, peak memory, timing."""

from __future__ import annotations

import os
import platform
import resource
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("AVOCADO_XR_SHARED_DATA", REPO.parent / "shared" / "data"))
SCRATCH = Path(os.environ.get("AVOCADO_XR_BENCH_SCRATCH", REPO / "benchmarks" / "_scratch"))
#: where the benchmarks that train run their models ("cpu" or "cuda")
DEVICE = os.environ.get("AVOCADO_XR_BENCH_DEVICE", "cpu")


def machine() -> str:
    import torch

    cpu = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return (
        f"{cpu}, {os.cpu_count()} cores, {mem:.0f} GiB, {gpu}; Python {platform.python_version()},"
        f" torch {torch.__version__} ({torch.get_num_threads()} threads)"
    )


def peak_rss_mib() -> float:
    """Peak resident memory of this process so far (MiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def synchronize() -> None:
    """Wait for the GPU's queued work (timings of asynchronous CUDA work need it)."""
    import torch

    if DEVICE.startswith("cuda"):
        torch.cuda.synchronize()


def run_isolated(script: str, *args: str) -> str:
    """Run a benchmark case in a fresh interpreter (so its peak RSS is its own)."""
    out = subprocess.run(
        [sys.executable, script, *args], capture_output=True, text=True, check=True
    )
    return out.stdout


def pilot_store():
    """The real pilot data as a zarr store (written once into the scratch folder)."""
    import avocado_xr as ax

    store = SCRATCH / "pilot.zarr"
    if not store.exists():
        SCRATCH.mkdir(parents=True, exist_ok=True)
        ax.save_compendium(ax.datasets.roadmap_pilot(SHARED / "roadmap_pilot"), store)
    return store
