"""Progress display: tqdm bars in terminals and notebooks, one line per step in logs.

A tqdm bar redraws itself with carriage returns; in a non-interactive log (CI, a batch job,
``nohup``) every redraw becomes text. There, :func:`progress` prints one line per completed
step of an outer loop (an epoch, a chromosome) and nothing for inner loops.
"""

from __future__ import annotations

import sys
import time

from tqdm.auto import tqdm

__all__ = ["progress"]


def _interactive() -> bool:
    if "ipykernel" in sys.modules:  # a Jupyter kernel: tqdm.auto draws a widget
        return True
    return bool(getattr(sys.stderr, "isatty", lambda: False)())


class _Lines:
    """The part of tqdm's interface the package uses, printing one line per step."""

    def __init__(self, iterable, total, desc, initial):
        self.iterable, self.total, self.desc, self.initial = iterable, total, desc, initial
        self.postfix: dict = {}

    def __iter__(self):
        tic = time.perf_counter()
        for done, item in enumerate(self.iterable, start=self.initial + 1):
            yield item
            values = " ".join(f"{k}={v}" for k, v in self.postfix.items())
            seconds = time.perf_counter() - tic
            print(f"{self.desc} {done}/{self.total} {values} ({seconds:.1f} s)".rstrip(),
                  file=sys.stderr, flush=True)  # fmt: skip
            tic = time.perf_counter()

    def set_postfix(self, values: dict) -> None:
        self.postfix = dict(values)

    def update(self, n: int = 1) -> None:
        pass

    def close(self) -> None:
        pass


def progress(iterable=None, *, total=None, desc="", verbose=False, outer=True, initial=0):
    """A tqdm bar, a one-line-per-step log (``outer`` loops off a terminal), or nothing.

    Parameters
    ----------
    iterable : iterable, optional
        What to iterate over (None for a bar driven by ``update``).
    total : int, optional
        Number of steps.
    desc : str
        Label.
    verbose : bool
        Show anything at all. Default is False.
    outer : bool
        An outer loop (epochs), logged line by line off a terminal; inner loops (batches)
        are shown only interactively. Default is True.
    initial : int
        Steps already done (a resumed run).
    """
    if verbose and not _interactive():
        if outer and iterable is not None:
            return _Lines(iterable, total, desc, initial)
        verbose = False
    return tqdm(iterable, total=total, desc=desc, disable=not verbose, initial=initial, leave=outer)
