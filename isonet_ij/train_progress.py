"""The training progress bar: steps of the run, or seconds of a time budget.

Without a time budget the bar counts optimizer steps to ``epochs x steps_per_epoch``.
Under a time budget that count says nothing (the budget usually ends the run long before,
and tqdm's ETA for the steps would be hours): the bar then counts the seconds of the
budget, says how much of it is left, and shows the epoch and the latest validation PSNR
(none before the first validation) -- what is true at every moment.
"""

from __future__ import annotations

import math
import time

__all__ = ["TrainingBar", "parse_duration"]


def parse_duration(text) -> float:
    """Seconds from ``"15m"``, ``"90s"``, ``"1.5h"``, ``"2m30s"`` or a plain number (s)."""
    if isinstance(text, (int, float)):
        value = float(text)
    else:
        import re

        s = str(text).strip().lower()
        parts = re.fullmatch(r"(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m)?(?:(\d+(?:\.\d+)?)s?)?", s)
        if not s or parts is None or not any(parts.groups()):
            msg = f"duration must look like 15m, 90s, 1.5h or 2m30s, got {text!r}"
            raise ValueError(msg)
        h, m, sec = (float(g) if g else 0.0 for g in parts.groups())
        value = 3600 * h + 60 * m + sec
    if not math.isfinite(value) or value <= 0:
        msg = f"duration must be positive, got {text!r}"
        raise ValueError(msg)
    return value


class TrainingBar:
    """A tqdm bar over steps (no budget) or over the seconds of ``budget``."""

    def __init__(self, *, desc: str, epochs: int, steps_per_epoch: int, start_epoch: int = 0,
                 budget: float | None = None, t_start: float | None = None):
        from tqdm.auto import tqdm

        self.budget = budget
        self.t_start = time.monotonic() if t_start is None else t_start
        self.epochs = int(epochs)
        self.postfix: dict = {}
        if budget is None:
            self.bar = tqdm(total=self.epochs * steps_per_epoch, initial=start_epoch * steps_per_epoch,
                            unit="step", desc=desc, dynamic_ncols=True)
        else:
            total = max(1, int(round(budget)))
            self.bar = tqdm(total=total, unit="s", desc=f"{desc} (time budget)", dynamic_ncols=True,
                            bar_format=_budget_format(budget))

    def _time(self) -> None:
        elapsed = min(time.monotonic() - self.t_start, float(self.bar.total))
        self.bar.update(elapsed - self.bar.n)

    def _refresh(self, refresh: bool) -> None:
        if self.budget is not None:
            left = max(0.0, float(self.budget) - (time.monotonic() - self.t_start))
            self.bar.bar_format = _budget_format(left)
        self.bar.set_postfix(self.postfix, refresh=refresh)

    def step(self, loss: float) -> None:
        """One optimizer step with training loss ``loss``."""
        self.postfix["loss"] = f"{loss:.3g}"
        if self.budget is None:
            self.bar.update(1)
        else:
            self._time()
        self._refresh(False)

    def validated(self, epoch: int, val_psnr: float, input_psnr: float) -> None:
        """Epoch ``epoch`` (1-based) ended with validation PSNR ``val_psnr`` (input: ``input_psnr``)."""
        if self.budget is not None:
            self.postfix["epoch"] = f"{epoch}/{self.epochs}"
            self._time()
        self.postfix.update(val_psnr=f"{val_psnr:.2f}", input=f"{input_psnr:.2f}")
        self._refresh(True)

    def close(self) -> None:
        self.bar.close()


def _budget_format(left: float) -> str:
    """tqdm's ``bar_format`` under a budget: seconds used of the budget and seconds left."""
    return ("{desc}: {percentage:3.0f}%|{bar}| {n:.0f}/{total:.0f} s of the budget, "
            f"{left:.0f} s left" "{postfix}")
