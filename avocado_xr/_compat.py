"""PyTorch helpers: device resolution, autocast and model-state hygiene."""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import sys
import threading

import torch

from .exceptions import ConfigError

__all__ = [
    "TORCH_LOCK",
    "active_client",
    "autocast",
    "preserve_model_state",
    "resolve_device",
    "reuse_freed_memory",
]

#: held while a Dask task runs PyTorch on the CPU. PyTorch already uses every core for one
#: operation; two Dask threads each starting its own parallel region oversubscribe the cores
#: and spin-wait, which made blockwise imputation up to 100x slower on a 2-core machine.
#: Data reads and NumPy work in other tasks still run in parallel.
TORCH_LOCK = threading.Lock()


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """``device`` as a torch.device; ``None`` means CUDA when available, else CPU."""
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise ConfigError(
            f"device={device!r} is not a torch device; pass 'cpu' or 'cuda'."
        ) from err
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(
            f"device={str(device)!r} was asked for but torch sees no CUDA device; pass "
            "device='cpu', or install a CUDA build of PyTorch on a machine with a GPU."
        )
    return device


@contextlib.contextmanager
def preserve_model_state(model: torch.nn.Module):
    """Restore the module's train/eval mode on exit (never mutate a user's module silently)."""
    training = model.training
    try:
        yield model
    finally:
        model.train(training)


PRECISIONS = ("float32", "bfloat16")


def autocast(device: torch.device, precision: str):
    """Autocast context for ``precision`` ("float32": none; "bfloat16": bf16 matmuls)."""
    if precision not in PRECISIONS:
        raise ConfigError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if precision == "float32":
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)


def active_client():
    """The active ``dask.distributed`` client, or None (distributed is optional)."""
    try:
        from distributed import get_client
    except ImportError:  # pragma: no cover - distributed is an extra
        return None
    try:
        return get_client()
    except ValueError:
        return None


#: glibc ``mallopt`` parameters and the values training uses (32 MiB is glibc's largest
#: mmap threshold on 64-bit systems)
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_TRAINING_MALLOPT = {_M_MMAP_THRESHOLD: 32 * 2**20, _M_TRIM_THRESHOLD: 2**30}
_MALLOPT_ENV = {
    _M_MMAP_THRESHOLD: "MALLOC_MMAP_THRESHOLD_",
    _M_TRIM_THRESHOLD: "MALLOC_TRIM_THRESHOLD_",
}
_GLIBC_DEFAULTS = {_M_MMAP_THRESHOLD: 128 * 2**10, _M_TRIM_THRESHOLD: 128 * 2**10}
#: trainers inside :func:`reuse_freed_memory` (a Dask worker may run several at once)
_MALLOPT_USERS = [0]
_MALLOPT_LOCK = threading.Lock()


@contextlib.contextmanager
def reuse_freed_memory():
    """Let glibc keep freed memory for reuse while training, where a process has pinned its
    allocator thresholds through the environment; restore them afterwards.

    ``dask.distributed`` starts workers with ``MALLOC_TRIM_THRESHOLD_=65536`` so that they
    hand memory back to the OS. Setting any threshold also fixes glibc's mmap threshold at
    128 KiB, so every large temporary of a training step is a fresh ``mmap`` that page-faults
    in again: demo-size training ran at ~205 k instead of ~385 k samples/s per thread. Inside
    this context freed memory stays with the process; on exit the environment's thresholds
    come back and ``malloc_trim`` returns what is free. A no-op off glibc and in processes
    that set no threshold (glibc's dynamic thresholds already reuse memory there).
    """
    pinned = [k for k, name in _MALLOPT_ENV.items() if name in os.environ]
    libc = _glibc() if pinned else None
    if libc is None:
        yield
        return
    with _MALLOPT_LOCK:  # the settings are per process: the first trainer in sets them
        _MALLOPT_USERS[0] += 1
        if _MALLOPT_USERS[0] == 1:
            for param, value in _TRAINING_MALLOPT.items():
                libc.mallopt(param, value)
    try:
        yield
    finally:
        with _MALLOPT_LOCK:  # and the last one out restores them
            _MALLOPT_USERS[0] -= 1
            if _MALLOPT_USERS[0] == 0:
                for param in _TRAINING_MALLOPT:
                    value = os.environ.get(_MALLOPT_ENV[param], "")
                    default = _GLIBC_DEFAULTS[param]
                    libc.mallopt(param, int(value) if value.isdigit() else default)
                libc.malloc_trim(0)


def _glibc():
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.mallopt, libc.malloc_trim  # noqa: B018 (musl lacks them)
    except (OSError, AttributeError):
        return None
    return libc
