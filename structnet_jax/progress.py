"""Progress lines for long loops: counts, rate and time left.

Training logs its own lines (``trainer.py``); evaluation, the APF rows and
the LinKDE fit use this:

  progress = Progress("eval: scoring", total=8800, unit="images")
  for batch in batches:
    ...
    progress.update(len(batch))
  progress.done()

A line goes to the absl log at the first update, then at most every
``every_s`` seconds, and at the end:

  [eval: scoring] 1280/8800 images (14%), 212.4 images/s, ETA 0.6 min
"""

from __future__ import annotations

import time
from typing import Callable

from absl import logging


class Progress:
  """Counts of a loop, logged with their rate and estimated time left.

  Attributes:
    what: the name in brackets at the start of each line.
    total: the count at the end, or None when unknown (no percentage, no
      ETA).
    unit: what is counted ("images", "batches", ...).
  """

  def __init__(self, what: str, total: int | None = None,
               unit: str = "images", every_s: float = 20.0,
               clock: Callable[[], float] = time.monotonic,
               log: Callable[[str], None] | None = None):
    self.what, self.total, self.unit = what, total, unit
    self.count = 0
    self._every, self._clock = float(every_s), clock
    self._log = log or (lambda line: logging.info("%s", line))
    self._start = clock()
    self._last = None
    self._logged = None

  def line(self) -> str:
    """The current progress line."""
    elapsed = max(self._clock() - self._start, 1e-9)
    rate = self.count / elapsed
    text = f"[{self.what}] {self.count}"
    if self.total:
      text += f"/{self.total} {self.unit} ({100 * self.count / self.total:.0f}%)"
    else:
      text += f" {self.unit}"
    text += f", {rate:.1f} {self.unit}/s"
    if not self.total:
      text += f", {elapsed / 60:.1f} min so far"
    elif self.count >= self.total:
      text += f", done in {elapsed / 60:.1f} min"
    elif rate > 0:
      text += f", ETA {(self.total - self.count) / rate / 60:.1f} min"
    return text

  def update(self, n: int = 1) -> None:
    """Adds ``n`` to the count; logs when due."""
    self.count += int(n)
    now = self._clock()
    if self._last is None or now - self._last >= self._every:
      self._last = now
      self._logged = self.count
      self._log(self.line())

  def done(self) -> None:
    """Logs the final line (unless the last update logged this count)."""
    if self._logged != self.count:
      self._logged = self.count
      self._log(self.line())
