"""TensorBoard summaries without TensorFlow (structnet_jax/tensorboard.py),
read back with TensorBoard's own reader."""

import struct
import zlib

import pytest
from tensorboard.backend.event_processing import event_accumulator

from structnet_jax import tensorboard


def _png(width, height):
  """A minimal valid RGB PNG of the given size (all black)."""
  def chunk(kind, data):
    return (struct.pack(">I", len(data)) + kind + data +
            struct.pack(">I", zlib.crc32(kind + data)))
  rows = b"".join(b"\x00" + b"\x00" * 3 * width for _ in range(height))
  return (b"\x89PNG\r\n\x1a\n" +
          chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
          + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


def test_scalars_images_and_text_read_back(tmp_path):
  writer = tensorboard.SummaryWriter(str(tmp_path))
  writer.scalars(5, {"a/b": 1.5, "nan": float("nan")})
  data = _png(7, 3)
  writer.png(5, "figures/f", data)
  writer.text(5, "config", "**hello**")
  with pytest.raises(ValueError, match="not a PNG"):
    writer.png(5, "bad", b"GIF89a" + bytes(30))
  writer.close()
  acc = event_accumulator.EventAccumulator(str(tmp_path))
  acc.Reload()
  assert acc.Tags()["scalars"] == ["a/b"]  # the NaN is skipped
  (image,) = acc.Images("figures/f")
  assert (image.width, image.height, image.step) == (7, 3, 5)
  assert image.encoded_image_string == data
  (text,) = acc.Tensors("config")
  assert text.tensor_proto.string_val == [b"**hello**"]
