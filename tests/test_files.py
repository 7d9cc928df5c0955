"""Run files on a local disk and in an object store (structnet_jax/files.py).

The object store is ``gs://`` mocked onto a temporary folder through
``etils.epath``'s own test hook, so no network is needed.
"""

import contextlib
import os
from unittest import mock

import numpy as np
from etils.epath import gpath
from etils.epath import testing as epath_testing

from structnet_jax import files
from structnet_jax import trainer


@contextlib.contextmanager
def _bucket_on(root):
  """``gs://<path>`` served from ``root/<path>``."""
  local = lambda p: os.path.join(root, os.fspath(p).split("://", 1)[1])
  one = lambda original, path, *a, **k: original(local(path), *a, **k)
  two = lambda original, path, dst, *a, **k: original(local(path), local(dst),
                                                      *a, **k)
  # With TensorFlow installed epath sends gs:// to tf.io.gfile, around the
  # mocked backends; pretend it is not.
  with mock.patch.object(gpath, "_is_tf_installed", lambda: False), \
      epath_testing.mock_epath(
          open=one, exists=one, isdir=one, makedirs=one, mkdir=one,
          listdir=one, stat=one, remove=one, rename=two, replace=two):
    yield


def test_remote_paths_are_kept_and_written_whole(tmp_path):
  assert files.absolute("gs://bucket/run") == "gs://bucket/run"
  assert files.absolute("run") == os.path.join(os.getcwd(), "run")
  with _bucket_on(str(tmp_path)):
    files.makedirs("gs://bucket/run/eval")
    assert files.isdir("gs://bucket/run/eval")
    assert not files.exists("gs://bucket/run/results.md")
    files.write_atomic("gs://bucket/run/results.md", "# table\n")
    files.write_atomic("gs://bucket/run/raw.bin", b"\x00\x01")
    files.write_atomic("gs://bucket/run/space.npy",
                       lambda f: np.save(f, np.arange(6.0)))
    files.append_text("gs://bucket/run/log.txt", "a\n")
    files.append_text("gs://bucket/run/log.txt", "b\n")
    assert files.read_text("gs://bucket/run/results.md") == "# table\n"
  # What landed in the "bucket" (read back without the mock).
  run = tmp_path / "bucket" / "run"
  assert (run / "results.md").read_text() == "# table\n"
  assert (run / "raw.bin").read_bytes() == b"\x00\x01"
  np.testing.assert_array_equal(np.load(run / "space.npy"), np.arange(6.0))
  assert (run / "log.txt").read_text() == "a\nb\n"
  assert not [p for p in os.listdir(run) if ".tmp-" in p]


def test_metrics_log_in_a_bucket_appends_and_reads_back(tmp_path):
  with _bucket_on(str(tmp_path)):
    writer = trainer.MetricWriter("gs://bucket/run")
    writer.write("stage1", 50, {"cost": 1.5})
    writer.write("stage1", 100, {"cost": np.float32(1.25)})
    assert trainer.read_metrics("gs://bucket/run") == [
        {"stage": "stage1", "step": 50, "cost": 1.5},
        {"stage": "stage1", "step": 100, "cost": 1.25}]


def test_local_write_is_atomic_and_leaves_no_temporary_file(tmp_path):
  path = tmp_path / "results.json"
  files.write_atomic(path, "old")
  try:
    files.write_atomic(path, lambda f: (f.write(b"half"), 1 / 0))
  except ZeroDivisionError:
    pass
  assert path.read_text() == "old"
  assert os.listdir(tmp_path) == ["results.json"]
