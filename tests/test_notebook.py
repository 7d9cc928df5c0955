"""The Colab notebook runs top to bottom, headless, in its tiny mode."""

import os

import nbclient
import nbformat

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NOTEBOOK = os.path.join(REPO, "experiments", "notebooks",
                        "structnet_colab.ipynb")


def test_notebook_trains_evaluates_and_predicts_in_tiny_mode(tmp_path,
                                                             monkeypatch):
  monkeypatch.setenv("STRUCTNET_NOTEBOOK_MODE", "tiny")
  monkeypatch.setenv("STRUCTNET_NOTEBOOK_STEPS", "20")
  monkeypatch.setenv("STRUCTNET_NOTEBOOK_WORKDIR", str(tmp_path / "run"))
  monkeypatch.setenv("PYTHONPATH", REPO + os.pathsep +
                     os.environ.get("PYTHONPATH", ""))
  # One CPU device in the kernel, as on a user's machine (not conftest's 8).
  monkeypatch.setenv("XLA_FLAGS", " ".join(
      f for f in os.environ.get("XLA_FLAGS", "").split()
      if "xla_force_host_platform_device_count" not in f))
  nb = nbformat.read(NOTEBOOK, as_version=4)
  nbclient.NotebookClient(nb, timeout=600, kernel_name="python3",
                          resources={"metadata": {"path": REPO}}).execute()
  outputs = "".join(o.get("text", "") + str(o.get("data", {}).get(
      "text/markdown", "")) for c in nb.cells if c.cell_type == "code"
                    for o in c.get("outputs", []))
  assert "| StructNet-Avg(20) |" in outputs and "| NN-oracle |" in outputs
  assert "alignment (max-score pose within 30 mm)" in outputs
  for name in ("results.md", "figure3.png", "figure4d.png",
               "predictions/predictions.json", "predictions/test_0.png"):
    assert (tmp_path / "run" / name).exists(), name
