"""Files of a run, on a local disk or in an object store (``gs://...``).

Results, configs, figures, candidate poses and cached examples are written
atomically: a reader sees the old file or the new one, never half. Locally
that is a temporary file beside the target, then ``os.replace`` onto it
(atomic on one filesystem; the temporary file is removed if writing fails);
in an object store a whole-object upload, which is atomic by itself.

Paths with a scheme (``gs://bucket/run``, anything with ``://``) go through
``etils.epath`` (as orbax's checkpoints do), so a workdir can live in a
bucket; local paths take the plain ``os`` route.
"""

from __future__ import annotations

import io
import os
from typing import BinaryIO, Callable

from etils import epath


def is_remote(path: str | os.PathLike) -> bool:
  """Whether ``path`` names an object-store location (``scheme://...``)."""
  return "://" in os.fspath(path)


def absolute(path: str | os.PathLike) -> str:
  """``path`` made absolute (``~`` expanded); a remote path as it is."""
  path = os.fspath(path)
  return path if is_remote(path) else os.path.abspath(os.path.expanduser(path))


def makedirs(path: str | os.PathLike) -> None:
  """Creates the folder ``path`` and its parents when missing."""
  if is_remote(path):
    epath.Path(path).mkdir(parents=True, exist_ok=True)
  else:
    os.makedirs(path, exist_ok=True)


def exists(path: str | os.PathLike) -> bool:
  return (epath.Path(path).exists() if is_remote(path)
          else os.path.exists(path))


def isdir(path: str | os.PathLike) -> bool:
  return epath.Path(path).is_dir() if is_remote(path) else os.path.isdir(path)


def read_bytes(path: str | os.PathLike) -> bytes:
  if is_remote(path):
    return epath.Path(path).read_bytes()
  with open(path, "rb") as f:
    return f.read()


def read_text(path: str | os.PathLike) -> str:
  return read_bytes(path).decode("utf-8")


def append_text(path: str | os.PathLike, text: str) -> None:
  """Appends ``text`` to ``path`` (created when missing). Object stores
  cannot append: the object is read and written whole, which suits the
  small logs appended here (``metrics.jsonl``)."""
  if is_remote(path):
    old = read_text(path) if exists(path) else ""
    epath.Path(path).write_text(old + text)
  else:
    with open(path, "a") as f:
      f.write(text)


def write_atomic(path: str | os.PathLike,
                 content: str | bytes | Callable[[BinaryIO], None]) -> str:
  """Writes ``content`` to ``path`` atomically; returns ``path``.

  Args:
    path: the file to (over)write; its folder must exist.
    content: text (UTF-8), bytes, or a function that writes to the binary
      file object it is given (e.g. ``lambda f: np.save(f, array)``).
  """
  path = os.fspath(path)
  if isinstance(content, str):
    content = content.encode("utf-8")
  write = ((lambda f: f.write(content)) if isinstance(content, bytes)
           else content)
  if is_remote(path):
    buffer = io.BytesIO()
    write(buffer)
    epath.Path(path).write_bytes(buffer.getvalue())
    return path
  tmp = f"{path}.tmp-{os.getpid()}"
  try:
    with open(tmp, "wb") as f:
      write(f)
    os.replace(tmp, path)
  finally:
    if os.path.exists(tmp):
      os.remove(tmp)
  return path
