"""Tests of data_pipelines/checks.py: accepted values come back converted,
refused ones raise with the argument's name, the rule and the value."""

from __future__ import annotations

import numpy as np
import pytest

from data_pipelines import checks


def test_int_at_least():
  assert checks.int_at_least("n", 3, 1) == 3
  out = checks.int_at_least("n", np.int64(0), 0)
  assert out == 0 and type(out) is int
  for bad in (0, -1, 2.0, 2.5, True, "3", None, np.float32(4)):
    with pytest.raises(ValueError,
                       match=r"^n must be an integer >= 1 \(hint\), got "):
      checks.int_at_least("n", bad, 1, " (hint)")


def test_numbers():
  assert checks.finite("x", -2) == -2.0
  assert checks.number_at_least("x", np.float32(0.5), 0) == 0.5
  assert type(checks.number_at_least("x", 0, 0)) is float
  assert checks.positive_number("fps", np.int64(25)) == 25.0
  for bad in (np.nan, np.inf, -np.inf, "1", None, True, [1.0]):
    with pytest.raises(ValueError, match=r"^x must be a finite number, got "):
      checks.finite("x", bad)
    with pytest.raises(ValueError, match=r"^x must be a finite number >= 0"):
      checks.number_at_least("x", bad, 0)
  with pytest.raises(ValueError, match=r"^margin must be a finite number "
                     r">= 0 \(fraction\), got -0\.1\.$"):
    checks.number_at_least("margin", -0.1, 0, " (fraction)")
  for bad in (0, 0.0, -1.0, np.nan, np.inf):
    with pytest.raises(ValueError, match=r"^fps must be a finite positive "
                       r"number, got "):
      checks.positive_number("fps", bad)


def test_boolean_and_one_of():
  assert checks.boolean("flag", np.bool_(True)) is True
  assert checks.boolean("flag", False) is False
  for bad in (0, 1, "True", None):
    with pytest.raises(ValueError, match=r"^flag must be True or False, got "):
      checks.boolean("flag", bad)
  assert checks.one_of("mode", "a", ("a", "b")) == "a"
  with pytest.raises(ValueError,
                     match=r"^mode must be one of \('a', 'b'\), got 'c'\.$"):
    checks.one_of("mode", "c", ["a", "b"])


def test_existing_path(tmp_path):
  f = tmp_path / "a.npz"
  f.write_text("x")
  assert checks.existing_path("motion", f, "Pass one.") == str(f)
  assert checks.existing_path("folder", tmp_path, "Fix.", kind="dir") == str(
      tmp_path)
  missing = tmp_path / "nope.npz"
  with pytest.raises(FileNotFoundError,
                     match=r"^motion '.*nope\.npz' does not exist\. Pass one"):
    checks.existing_path("motion", missing, "Pass one.")
  # A missing path is a bad argument too: callers catching ValueError see it.
  with pytest.raises(ValueError, match="does not exist"):
    checks.existing_path("motion", missing, "Pass one.")
  with pytest.raises(checks.MissingPathError, match="does not exist"):
    checks.existing_path("file", tmp_path, "Pass a file.", kind="file")
  with pytest.raises(checks.MissingPathError, match="does not exist"):
    checks.existing_path("folder", f, "Pass a folder.", kind="dir")
  with pytest.raises(ValueError, match="kind must be one of"):
    checks.existing_path("x", f, "", kind="link")


def test_known_names():
  checks.known_names("option", ["a", "b"], ("a", "b", "c"))
  with pytest.raises(ValueError, match=r"^unknown option\(s\) \['bb'\] "
                     r"\(closest: \{'bb': \['b'\]\}\); the options are "
                     r"\['a', 'b'\]\.$"):
    checks.known_names("option", ["a", "bb"], ("a", "b"))
