"""Reading and writing ``.npz`` archives of named arrays, with clear errors.

Motion files (exponential maps, joint positions) and the dataset builder's
render cache are ``.npz`` archives. ``open_archive`` opens one or says what
is wrong and how to write a good one; ``save_atomic`` writes one through
``structnet_jax.files.write_atomic``, so an interrupted write never leaves a
truncated archive where a good one (or none) was.
"""

from __future__ import annotations

import zipfile
from typing import Mapping

import numpy as np

from structnet_jax import files


def open_archive(path: str, fix: str) -> np.lib.npyio.NpzFile:
  """``np.load(path)`` of an ``.npz`` of named arrays (pickles refused).

  Args:
    path: the archive.
    fix: how to make a good one, appended to the error messages.

  Raises:
    ValueError: not a readable ``.npz``, or a single ``.npy`` array.
  """
  try:
    archive = np.load(path, allow_pickle=False)
  except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
    raise ValueError(f"{path} is not a readable .npz archive ({e}). {fix}"
                     ) from e
  if not isinstance(archive, np.lib.npyio.NpzFile):
    raise ValueError(f"{path} holds a single array, not an .npz archive of "
                     f"named sequences. {fix}")
  return archive


def save_atomic(path: str, arrays: Mapping[str, np.ndarray]) -> str:
  """Writes ``arrays`` to the ``.npz`` ``path`` atomically; returns ``path``."""
  return files.write_atomic(path, lambda f: np.savez(f, **arrays))
