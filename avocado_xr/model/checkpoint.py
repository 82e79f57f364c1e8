"""Training checkpoints: one per epoch, written atomically, checksummed, resumable.

A checkpoint directory holds ``checkpoint.json`` (format tag, the run's fingerprint, the epoch,
the name and SHA-256 of the state file) and that state file, ``checkpoint-epoch<N>.pt``
(tensors and plain containers only: network, optimiser state, history). A new epoch's state is
written under a new name, then the JSON pointer is replaced atomically, then the older state
file is removed; a run killed at any moment leaves a pointer to a complete, verified state.
Reading checks the fingerprint (same data layout, tracks, configuration, seed and precision),
the SHA-256, and loads with ``torch.load(weights_only=True)``, so no code from the files runs.
"""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import torch

from .._files import file_digest
from ..exceptions import CheckpointError

__all__ = ["Checkpoint"]

FORMAT = "avocado_xr-checkpoint-2"
_Unpickling = pickle.UnpicklingError
POINTER = "checkpoint.json"


class Checkpoint:
    """The checkpoint directory of one training run.

    Parameters
    ----------
    directory : str or path
        Where checkpoints are written (created if needed).
    fingerprint : dict
        JSON-able identity of the run; a checkpoint of another run is refused.

    Raises
    ------
    CheckpointError
        ``directory`` exists and is not a directory, or cannot be written.
    """

    def __init__(self, directory: str | os.PathLike, fingerprint: dict):
        self.directory = Path(directory)
        self.fingerprint = json.loads(json.dumps(fingerprint))
        if self.directory.exists() and not self.directory.is_dir():
            raise CheckpointError(
                f"checkpoint={str(self.directory)!r} is a file; pass a directory (it is "
                "created if needed and holds one checkpoint per run)."
            )
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise CheckpointError(
                f"Cannot create the checkpoint directory {str(self.directory)!r}: {err}"
            ) from err
        if not os.access(self.directory, os.W_OK):
            raise CheckpointError(
                f"The checkpoint directory {str(self.directory)!r} is not writable; pass "
                "another checkpoint= directory."
            )

    @property
    def pointer(self) -> Path:
        return self.directory / POINTER

    def _read_pointer(self) -> dict | None:
        if not self.pointer.exists():
            if any(self.directory.glob("checkpoint*.pt")):
                raise CheckpointError(
                    f"{self.directory} holds checkpoint files but no {POINTER}; it was written "
                    "by another version or damaged. Delete it to start afresh."
                )
            return None
        try:
            meta = json.loads(self.pointer.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise CheckpointError(
                f"{self.pointer} is unreadable ({err}); delete the directory to start afresh."
            ) from err
        if not isinstance(meta, dict) or meta.get("format") != FORMAT:
            raise CheckpointError(f"{self.pointer} is not an avocado_xr checkpoint ({FORMAT}).")
        return meta

    def load(self, net: torch.nn.Module, optimizers, device, epochs: int):
        """Restore ``net`` and ``optimizers`` from the latest checkpoint.

        Returns ``(epochs_done, history)``, ``(0, [])`` when there is no checkpoint yet.

        Raises
        ------
        CheckpointError
            The checkpoint belongs to another run, holds more than ``epochs`` epochs, or is
            corrupt (the message names the file).
        """
        meta = self._read_pointer()
        if meta is None:
            return 0, []
        if meta.get("fingerprint") != self.fingerprint:
            previous = meta.get("fingerprint") or {}
            differs = sorted(
                k
                for k in set(previous) | set(self.fingerprint)
                if previous.get(k) != self.fingerprint.get(k)
            )
            raise CheckpointError(
                f"The checkpoint in {self.directory} belongs to a different run (differs in "
                f"{differs}); use another checkpoint directory or delete it to start afresh."
            )
        done = int(meta["epoch"])
        if done > epochs:
            raise CheckpointError(
                f"The checkpoint in {self.directory} has {done} epochs but epochs={epochs} was "
                f"asked for; pass epochs >= {done} to continue it, or use another directory."
            )
        path = self.directory / str(meta["file"])
        if not path.is_file() or file_digest(path) != meta.get("sha256"):
            raise CheckpointError(
                f"{path} is missing or does not match the SHA-256 in {self.pointer}: the "
                "checkpoint is corrupt. Delete the directory to start afresh."
            )
        try:
            state = torch.load(path, map_location=device, weights_only=True)
            net.load_state_dict(state["net"])
            for opt, opt_state in zip(optimizers, state["optimizers"], strict=True):
                if opt is not None:  # None: a frozen part (no optimiser state)
                    opt.load_state_dict(opt_state)
        except (
            RuntimeError,
            OSError,
            EOFError,
            KeyError,
            ValueError,
            pickle.UnpicklingError,
        ) as err:
            raise CheckpointError(
                f"{path} cannot be read as a checkpoint of this model ({err}); delete the "
                "directory to start afresh."
            ) from err
        return done, list(state["history"])

    def save(self, net: torch.nn.Module, optimizers, epoch: int, history: list[dict]) -> None:
        """Write the state after ``epoch`` epochs (see the module notes for the order)."""
        name = f"checkpoint-epoch{epoch:05d}.pt"
        state = {
            "epoch": epoch,
            "history": history,
            "net": net.state_dict(),
            "optimizers": [None if opt is None else opt.state_dict() for opt in optimizers],
        }
        tmp = self.directory / (name + ".tmp")
        torch.save(state, tmp)
        meta = {
            "format": FORMAT,
            "epoch": epoch,
            "file": name,
            "sha256": file_digest(tmp),
            "fingerprint": self.fingerprint,
        }
        os.replace(tmp, self.directory / name)
        pointer_tmp = self.directory / (POINTER + ".tmp")
        pointer_tmp.write_text(json.dumps(meta, indent=1))
        os.replace(pointer_tmp, self.pointer)
        for old in self.directory.glob("checkpoint-epoch*.pt"):
            if old.name != name:
                old.unlink()
