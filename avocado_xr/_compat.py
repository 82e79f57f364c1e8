"""PyTorch helpers: device resolution, autocast and model-state hygiene."""

from __future__ import annotations

import contextlib

import torch

__all__ = ["resolve_device", "preserve_model_state", "autocast"]


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """``device`` as a torch.device; ``None`` means CUDA when available, else CPU."""
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device='cuda' was asked for but torch sees no CUDA device.")
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
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if precision == "float32":
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
