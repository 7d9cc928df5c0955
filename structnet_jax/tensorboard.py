"""TensorBoard summaries (scalars, PNG images, text) without TensorFlow.

Writes the event files TensorBoard reads (``events.out.tfevents.*``) with the
``tensorboard`` package's writer and protos, so summaries work on a GPU/TPU
host that has no TensorFlow (``pip install tensorboard`` is pure Python).

  writer = SummaryWriter(os.path.join(workdir, "tensorboard"))
  writer.scalars(step, {"stage2/cost": 1.3, "stage2/step_size": 0.01})
  writer.png(step, "figures/figure3", open("figure3.png", "rb").read())
  writer.text(0, "config", "```json\n{...}\n```")
  writer.close()

``trainer.MetricWriter(workdir, extra_writers=[writer.stage_metrics])``
sends every logged training step here (tags ``<stage>/<metric>``).
"""

from __future__ import annotations

import math
import struct
import time
from typing import Mapping

from structnet_jax import files

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


class SummaryWriter:
  """Appends summaries to an event file in ``logdir``.

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
    files.makedirs(logdir)  # gs://...: TensorBoard's gfile needs gcsfs
    self.logdir = logdir
    self._event_pb2, self._summary_pb2 = event_pb2, summary_pb2
    self._writer = EventFileWriter(logdir)

  def scalars(self, step: int, values: Mapping[str, float]) -> None:
    """Writes ``{tag: value}`` at ``step``; non-finite values are skipped."""
    self._add(step, *[
        self._summary_pb2.Summary.Value(tag=tag, simple_value=float(v))
        for tag, v in values.items() if math.isfinite(float(v))])

  def png(self, step: int, tag: str, data: bytes) -> None:
    """Writes a PNG file's bytes as the image summary ``tag`` at ``step``.

    Raises:
      ValueError: ``data`` is not a PNG.
    """
    if data[:8] != _PNG_SIGNATURE or data[12:16] != b"IHDR":
      raise ValueError(f"image summary {tag!r}: the data is not a PNG file.")
    width, height = struct.unpack(">II", data[16:24])
    image = self._summary_pb2.Summary.Image(
        height=height, width=width, encoded_image_string=bytes(data))
    self._add(step, self._summary_pb2.Summary.Value(tag=tag, image=image))

  def text(self, step: int, tag: str, markdown: str) -> None:
    """Writes ``markdown`` as the text summary ``tag`` (TensorBoard's Text
    tab) at ``step``."""
    # pylint: disable=g-import-not-at-top
    from tensorboard.compat.proto import tensor_pb2
    from tensorboard.compat.proto import tensor_shape_pb2
    from tensorboard.compat.proto import types_pb2
    # pylint: enable=g-import-not-at-top
    tensor = tensor_pb2.TensorProto(
        dtype=types_pb2.DT_STRING, string_val=[markdown.encode("utf-8")],
        tensor_shape=tensor_shape_pb2.TensorShapeProto(
            dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=1)]))
    metadata = self._summary_pb2.SummaryMetadata(
        plugin_data=self._summary_pb2.SummaryMetadata.PluginData(
            plugin_name="text"))
    self._add(step, self._summary_pb2.Summary.Value(
        tag=tag, metadata=metadata, tensor=tensor))

  def _add(self, step: int, *values) -> None:
    self._writer.add_event(self._event_pb2.Event(
        step=int(step), summary=self._summary_pb2.Summary(value=list(values)),
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
