"""TensorBoard scalar summaries without TensorFlow.

Writes the event files TensorBoard reads (``events.out.tfevents.*``) with the
``tensorboard`` package's writer and protos, so summaries work on a GPU/TPU
host that has no TensorFlow (``pip install tensorboard`` is pure Python).

  writer = SummaryWriter(os.path.join(workdir, "tensorboard"))
  writer.scalars(step, {"stage2/cost": 1.3, "stage2/step_size": 0.01})
  writer.close()

``trainer.MetricWriter(workdir, extra_writers=[writer.stage_metrics])``
sends every logged training step here (tags ``<stage>/<metric>``).
"""

from __future__ import annotations

import math
import os
import time
from typing import Mapping


class SummaryWriter:
  """Appends scalar summaries to an event file in ``logdir``.

  Raises:
    ImportError: (at construction) when the ``tensorboard`` package is
      missing, with the command that installs it.
  """

  def __init__(self, logdir: str):
    try:
      # pylint: disable=g-import-not-at-top
      from tensorboard.compat.proto import event_pb2
      from tensorboard.compat.proto import summary_pb2
      from tensorboard.summary.writer.event_file_writer import EventFileWriter
    except ImportError as e:
      raise ImportError(
          f"TensorBoard summaries need the tensorboard package ({e}); "
          "pip install tensorboard (pure Python, no TensorFlow).") from e
    os.makedirs(logdir, exist_ok=True)
    self.logdir = logdir
    self._event_pb2, self._summary_pb2 = event_pb2, summary_pb2
    self._writer = EventFileWriter(logdir)

  def scalars(self, step: int, values: Mapping[str, float]) -> None:
    """Writes ``{tag: value}`` at ``step``; non-finite values are skipped."""
    summary = self._summary_pb2.Summary(value=[
        self._summary_pb2.Summary.Value(tag=tag, simple_value=float(v))
        for tag, v in values.items() if math.isfinite(float(v))])
    self._writer.add_event(self._event_pb2.Event(
        step=int(step), summary=summary,
        wall_time=time.time()))

  def stage_metrics(self, stage: str, step: int,
                    metrics: Mapping[str, float]) -> None:
    """The ``MetricWriter`` hook: tags ``<stage>/<metric>``."""
    self.scalars(step, {f"{stage}/{k}": v for k, v in metrics.items()})
    self._writer.flush()

  def flush(self) -> None:
    self._writer.flush()

  def close(self) -> None:
    self._writer.close()
