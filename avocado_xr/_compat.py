"""PyTorch helpers: device resolution, autocast and model-state hygiene."""

from __future__ import annotations

import contextlib
import threading

import torch

from .exceptions import ConfigError

__all__ = ["TORCH_LOCK", "active_client", "autocast", "preserve_model_state", "resolve_device"]

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
