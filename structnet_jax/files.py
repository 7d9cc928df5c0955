"""Atomic file writes: a reader sees the old file or the new one, never half.

Results, configs, figures, candidate poses and cached examples are all
written the same way: into a temporary file beside the target, then
``os.replace`` onto it (atomic on one filesystem); the temporary file is
removed if writing fails.
"""

from __future__ import annotations

import os
from typing import BinaryIO, Callable


def write_atomic(path: str | os.PathLike,
                 content: str | bytes | Callable[[BinaryIO], None]) -> str:
  """Writes ``content`` to ``path`` atomically; returns ``path``.

  Args:
    path: the file to (over)write; its folder must exist.
    content: text (UTF-8), bytes, or a function that writes to the binary
      file object it is given (e.g. ``lambda f: np.save(f, array)``).
  """
  path = os.fspath(path)
  tmp = f"{path}.tmp-{os.getpid()}"
  try:
    with open(tmp, "wb") as f:
      if isinstance(content, str):
        f.write(content.encode("utf-8"))
      elif isinstance(content, bytes):
        f.write(content)
      else:
        content(f)
    os.replace(tmp, path)
  finally:
    if os.path.exists(tmp):
      os.remove(tmp)
  return path
