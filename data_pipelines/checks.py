"""Argument checks of the data pipelines' public entry points.

One place for the checks a public function of ``data_pipelines`` runs on its
arguments, so that the same bad input gets the same message everywhere::

  <name> must be <what><hint>, got <value>.

``name`` is what the caller calls the argument; a config check puts the
config in front (``"config 'procedural': frame_step"``). ``hint`` (optional,
with its leading space or punctuation) says what the value means or how to
fix it, e.g. ``" (keep every step-th frame)"``. Every check returns the
value as the type the caller works with (``int``, ``float``, ``bool``,
``str``), so a call both checks and converts:

  frame_step = checks.int_at_least("frame_step", frame_step, 1)

Private helpers trust their (checked) public callers and do not call these.
"""

from __future__ import annotations

import difflib
import numbers
import os
from typing import Any, Sequence

import numpy as np


class MissingPathError(FileNotFoundError, ValueError):
  """A file or folder that is not there.

  A ``FileNotFoundError``, and a ``ValueError`` too: a missing path is a bad
  argument, and callers (and tests) that catch bad arguments as
  ``ValueError`` catch it as well.
  """


def int_at_least(name: str, value: Any, minimum: int, hint: str = "") -> int:
  """``value`` as an ``int``, refusing non-integers (floats, bools) and values
  below ``minimum``.

  Raises:
    ValueError: ``"<name> must be an integer >= <minimum><hint>, got
      <value>."``
  """
  if (isinstance(value, bool) or not isinstance(value, numbers.Integral)
      or value < minimum):
    raise ValueError(
        f"{name} must be an integer >= {minimum}{hint}, got {value!r}.")
  return int(value)


def _real(value: Any) -> bool:
  """A real number (Python or numpy), not a bool, and finite."""
  return (isinstance(value, numbers.Real) and not isinstance(value, bool)
          and bool(abs(value) < float("inf")))  # False for NaN too


def finite(name: str, value: Any, hint: str = "") -> float:
  """``value`` as a ``float``: a finite real number.

  Raises:
    ValueError: ``"<name> must be a finite number<hint>, got <value>."``
      (also for NaN, infinity, bools and strings).
  """
  if not _real(value):
    raise ValueError(f"{name} must be a finite number{hint}, got {value!r}.")
  return float(value)


def number_at_least(name: str, value: Any, minimum: float,
                    hint: str = "") -> float:
  """``value`` as a ``float``: a finite real number ``>= minimum``.

  Raises:
    ValueError: ``"<name> must be a finite number >= <minimum><hint>, got
      <value>."`` (also for NaN, infinity, bools and strings).
  """
  if not (_real(value) and value >= minimum):
    raise ValueError(
        f"{name} must be a finite number >= {minimum}{hint}, got {value!r}.")
  return float(value)


def positive_number(name: str, value: Any, hint: str = "") -> float:
  """``value`` as a ``float``: a finite real number ``> 0``.

  Raises:
    ValueError: ``"<name> must be a finite positive number<hint>, got
      <value>."``
  """
  if not (_real(value) and value > 0):
    raise ValueError(
        f"{name} must be a finite positive number{hint}, got {value!r}.")
  return float(value)


def boolean(name: str, value: Any, hint: str = "") -> bool:
  """``value`` as a ``bool``; only ``True``/``False`` (Python or numpy), not
  ``0``/``1`` or strings.

  Raises:
    ValueError: ``"<name> must be True or False<hint>, got <value>."``
  """
  if not isinstance(value, (bool, np.bool_)):
    raise ValueError(f"{name} must be True or False{hint}, got {value!r}.")
  return bool(value)


def one_of(name: str, value: Any, choices: Sequence[Any],
           hint: str = "") -> Any:
  """``value`` when it is one of ``choices``.

  Raises:
    ValueError: ``"<name> must be one of <choices><hint>, got <value>."``
  """
  if value not in tuple(choices):
    raise ValueError(
        f"{name} must be one of {tuple(choices)}{hint}, got {value!r}.")
  return value


def known_names(what: str, names: Sequence[str],
                known: Sequence[str]) -> None:
  """Refuses names (e.g. of options) that are not in ``known``.

  Raises:
    ValueError: ``"unknown <what>(s) [<names>] (closest: {<name>: [<close
      known names>]}); the options are [<known>]."``
  """
  unknown = [n for n in names if n not in known]
  if unknown:
    hints = {n: difflib.get_close_matches(n, known, n=3) for n in unknown}
    raise ValueError(f"unknown {what}(s) {unknown} (closest: {hints}); the "
                     f"options are {list(known)}.")


def existing_path(name: str, path: str | os.PathLike, fix: str, *,
                  kind: str = "any") -> str:
  """``path`` as a ``str`` when there is a file or folder there.

  Args:
    name: what the path is, e.g. ``"motion path"``, ``"skeleton file"``.
    path: the path (not expanded: callers expand ``~`` first).
    fix: what to pass instead, a sentence (e.g. ``"Pass the .npz of ..."``).
    kind: ``"file"`` (a file is needed), ``"dir"`` (a folder) or ``"any"``.

  Raises:
    MissingPathError: ``"<name> '<path>' does not exist. <fix>"`` (a
      ``FileNotFoundError`` and a ``ValueError``).
  """
  tests = {"file": os.path.isfile, "dir": os.path.isdir,
           "any": os.path.exists}
  if kind not in tests:
    raise ValueError(f"kind must be one of {tuple(tests)}, got {kind!r}.")
  path = os.fspath(path)
  if not tests[kind](path):
    raise MissingPathError(f"{name} {path!r} does not exist. {fix}")
  return path
