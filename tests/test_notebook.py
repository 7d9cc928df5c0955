"""The Colab notebook runs top to bottom, headless, the way a user runs it.

The kernel is a fresh virtual environment outside the checkout, in which
structnet-jax is not importable: the notebook's own install cell installs it
from a ``file://`` git clone of this working tree (``SOURCE``), exactly as a
user's runtime installs it from a git URL. The fresh environment sees the
already-installed third-party packages (jax, flax, ...) through a ``.pth``
file, so the test needs no network, but never this checkout or its editable
install.
"""

import json
import os
import subprocess
import sys
import sysconfig

import nbclient
import nbformat
import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NOTEBOOK = os.path.join(REPO, "experiments", "notebooks",
                        "structnet_colab.ipynb")
_PROJECT_ENTRIES = ("structnet_jax", "structnet-jax", "data_pipelines",
                    "experiments", "__editable__")


def _git(*args, cwd):
  subprocess.run(["git", "-c", "user.name=test", "-c", "user.email=t@t",
                  *args], cwd=cwd, check=True, capture_output=True)


def _clone_of_working_tree(dest):
  """A git repository holding this working tree's files (committed or not)."""
  files = subprocess.run(
      ["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=REPO,
      check=True, capture_output=True).stdout.decode().split("\0")
  os.makedirs(dest)
  for rel in filter(None, files):
    src = os.path.join(REPO, rel)
    if not os.path.isfile(src):
      continue
    os.makedirs(os.path.join(dest, os.path.dirname(rel)), exist_ok=True)
    with open(src, "rb") as f_in, open(os.path.join(dest, rel), "wb") as f_out:
      f_out.write(f_in.read())
  _git("init", "-q", cwd=dest)
  _git("add", "-A", cwd=dest)
  _git("commit", "-q", "-m", "snapshot", cwd=dest)


def _fresh_venv(root):
  """A virtual environment whose python imports the installed third-party
  packages but not structnet-jax; returns its python."""
  subprocess.run([sys.executable, "-m", "venv", "--without-pip", root],
                 check=True)
  python = os.path.join(root, "bin", "python")
  site = subprocess.run(
      [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
      check=True, capture_output=True, text=True).stdout.strip()
  # Every installed distribution except this project, by symlink.
  deps = os.path.join(root, "shared_deps")
  os.makedirs(deps)
  outer = sysconfig.get_paths()["purelib"]
  for entry in os.listdir(outer):
    if entry.startswith(_PROJECT_ENTRIES) or entry.endswith(".pth"):
      continue
    os.symlink(os.path.join(outer, entry), os.path.join(deps, entry))
  with open(os.path.join(site, "shared_deps.pth"), "w") as f:
    f.write(deps + "\n")
  return python


@pytest.mark.end_to_end
def test_notebook_installs_from_a_git_url_then_trains_evaluates_predicts(
    tmp_path, monkeypatch):
  clone = tmp_path / "structnet-jax"
  _clone_of_working_tree(str(clone))
  python = _fresh_venv(str(tmp_path / "venv"))
  probe = subprocess.run(
      [python, "-c", "import importlib.util as u; "
       "print(u.find_spec('structnet_jax'), u.find_spec('jax') is not None)"],
      capture_output=True, text=True, check=True, cwd=tmp_path,
      env={**os.environ, "PYTHONPATH": ""})
  assert probe.stdout.split() == ["None", "True"], probe.stdout

  kernels = tmp_path / "jupyter" / "kernels" / "fresh"
  kernels.mkdir(parents=True)
  (kernels / "kernel.json").write_text(json.dumps({
      "argv": [python, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
      "display_name": "fresh venv", "language": "python"}))
  monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
  monkeypatch.setenv("PYTHONPATH", "")
  monkeypatch.setenv("PIP_NO_INDEX", "1")          # nothing from the network
  monkeypatch.setenv("PIP_NO_BUILD_ISOLATION", "0")  # build with the shared setuptools
  monkeypatch.setenv("STRUCTNET_NOTEBOOK_MODE", "tiny")
  monkeypatch.setenv("STRUCTNET_NOTEBOOK_STEPS", "20")
  monkeypatch.setenv("STRUCTNET_NOTEBOOK_SOURCE", clone.as_uri())
  monkeypatch.setenv("STRUCTNET_NOTEBOOK_WORKDIR", str(tmp_path / "run"))
  # One CPU device in the kernel, as on a user's machine (not conftest's 8).
  monkeypatch.setenv("XLA_FLAGS", " ".join(
      f for f in os.environ.get("XLA_FLAGS", "").split()
      if "xla_force_host_platform_device_count" not in f))
  nb = nbformat.read(NOTEBOOK, as_version=4)
  work = tmp_path / "cwd"
  work.mkdir()
  nbclient.NotebookClient(nb, timeout=600, kernel_name="fresh",
                          resources={"metadata": {"path": str(work)}}).execute()
  outputs = "".join(o.get("text", "") + str(o.get("data", {}).get(
      "text/markdown", "")) for c in nb.cells if c.cell_type == "code"
                    for o in c.get("outputs", []))
  installed = [line for line in outputs.splitlines()
               if line.startswith("structnet_jax at ")]
  assert installed and str(tmp_path / "venv") in installed[0], installed
  assert f"pip install git+{clone.as_uri()}" in outputs
  # The shipped model comes with the installed package (package_data).
  shipped = [l for l in outputs.splitlines() if l.startswith("shipped model:")]
  assert shipped and str(tmp_path / "venv") in shipped[0], shipped
  assert "MPJPE (mm) | StructNet-Max" in outputs
  assert "plan: stage 1: 20 steps x 32 images" in outputs, outputs[-3000:]
  # absl progress lines reach the notebook (logging at INFO).
  assert "[stage1] step" in outputs and "img/s" in outputs, outputs[-3000:]
  assert f"tensorboard --logdir {tmp_path / 'run' / 'tensorboard'}" in outputs
  assert "| StructNet-Avg(20) |" in outputs and "| NN-oracle |" in outputs
  assert "alignment (max-score pose within 30 mm)" in outputs
  for name in ("results.md", "figure3.png", "figure4d.png",
               "predictions/predictions.json", "predictions/test_0.png"):
    assert (tmp_path / "run" / name).exists(), name
