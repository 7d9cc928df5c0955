"""Expected errors on the command line: one clear line, not a traceback.

A bad input (a misspelt config field, a value out of range, a missing file)
raises ``ValueError`` / ``FileNotFoundError`` with a message that names the
problem and the fix. The command-line entry points (``experiments.main``,
``experiments.predict``, ``experiments.sweep``) print that message alone and
exit with status 1; ``--traceback`` shows where it was raised.

  if __name__ == "__main__":
    app.run(cli.one_line_errors(main), flags_parser=cli.parse_flags)

``parse_flags`` does the same for an override that names no config field
(``--config.train.bach_size=3``), which fails while the flags are parsed,
before ``main`` runs.
"""

from __future__ import annotations

import functools
import sys
from typing import Callable

from absl import app
from absl import flags

EXPECTED_ERRORS = (ValueError, FileNotFoundError, NotADirectoryError,
                   FloatingPointError)

_TRACEBACK = flags.DEFINE_bool(
    "traceback", False, "On an expected error (bad config value, missing "
    "file, ...), print the full traceback instead of the one-line message.")


def one_line_errors(main: Callable) -> Callable:
  """``main(argv)`` printing expected errors as ``error: <message>`` on
  stderr and exiting with status 1 (all others propagate unchanged)."""

  @functools.wraps(main)
  def wrapped(argv):
    try:
      return main(argv)
    except EXPECTED_ERRORS as e:
      if _TRACEBACK.value:
        raise
      sys.stderr.write(f"error: {e}\n(--traceback shows where it was "
                       "raised)\n")
      sys.exit(1)

  return wrapped


def parse_flags(argv: list[str]) -> list[str]:
  """absl's flag parsing, with a bad ``--config.*`` override (a field the
  config does not have, a value of the wrong type) reported in one line
  and exit status 1 instead of a chain of tracebacks."""
  try:
    return app.parse_flags_with_usage(argv)
  except (AttributeError, KeyError, TypeError, ValueError) as e:
    if any(a in ("--traceback", "--traceback=true") for a in argv):
      raise
    # ml_collections' message for a misspelt field is the repr of a repr:
    # "'\\'bach_size\\'\\nDid you mean ...'"; keep its words.
    message = " ".join(str(e).replace("\\n", " ").replace("'", "")
                       .replace("\\", "").split())
    what = ("no such config field: " if isinstance(e, (AttributeError,
                                                       KeyError)) else "")
    sys.stderr.write(
        f"error: bad command-line flag: {what}{message} (every config field "
        "is declared in experiments/configs/default.py)\n(--traceback shows "
        "where it was raised)\n")
    sys.exit(1)
