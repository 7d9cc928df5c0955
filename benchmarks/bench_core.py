"""Core speed: a training step of StructNet, and candidate scoring.

  python benchmarks/bench_core.py [--batch 128] [--candidates 100000] [--avg 500]

Prints one table; every row is timed in this run next to its reference.
Both sides of every comparison build their network from one size
description (``NetSize``): Figure 1 at 112 px (``paper.py``) for the
headline rows and the default CPU network at 56 px (``default.py``) as a
second set, so the two cannot drift apart again.

  (a) one training step (forward, backward, parameter update) on the
      pose-regression cost (stage 1): PyTorch (CPU, the reference when torch
      is installed), and JAX with each conv lowering of ``models.Conv2D``:
      ``xla`` (``lax.conv_general_dilated``) compiled with the project's
      XLA:CPU options (``structnet_jax/xla_cpu.py``: YNNPACK fusions; the
      default), ``xla`` with XLA's default options, and ``im2col``
      (explicit patches + one matmul, the previous CPU default); the ratio
      column is against PyTorch, or against the XLA-default ``im2col`` step
      when torch is missing;
  (a') one stage-2 max-margin step (candidate selection over C=2000 poses,
      frozen convs) with AdamW (the default) and with the paper's 35-trial
      line search, against the project's stage-1 step of the same network;
  (b) scoring 128 images against 100k candidates with top-500 averaging,
      against a bare jnp.dot of the same shapes.
The PyTorch rows need torch (CPU build); without it they are skipped.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from experiments.configs import default as default_config  # noqa: E402
from experiments.configs import paper as paper_config  # noqa: E402
from structnet_jax import models  # noqa: E402
from structnet_jax import scoring  # noqa: E402
from structnet_jax import sharding  # noqa: E402
from structnet_jax import train  # noqa: E402
from structnet_jax import xla_cpu  # noqa: E402


@dataclasses.dataclass(frozen=True)
class NetSize:
  """The sizes both frameworks build: input side, convs, FC widths."""
  name: str
  image_size: int
  conv_features: tuple[int, ...]
  conv_kernel_sizes: tuple[int, ...]
  h1_width: int
  h2_width: int
  h3_width: int
  dropout_rate: float

  @classmethod
  def from_config(cls, name: str, config) -> "NetSize":
    m = config.model
    return cls(name, int(m.image_size), tuple(m.conv_features),
               tuple(m.conv_kernel_sizes), int(m.h1_width), int(m.h2_width),
               int(m.h3_width), float(m.dropout_rate))

  def config(self, base):
    """``base`` (a ConfigDict) with this network's sizes, and no detection
    head (PyTorch's twin is the regression network; the head is one Dense
    layer on h3, a small part of the step)."""
    c = base.copy_and_resolve_references()
    c.model.detection_grid = 0
    c.model.image_size = self.image_size
    c.model.conv_features = self.conv_features
    c.model.conv_kernel_sizes = self.conv_kernel_sizes
    c.model.h1_width, c.model.h2_width = self.h1_width, self.h2_width
    c.model.h3_width, c.model.dropout_rate = self.h3_width, self.dropout_rate
    return c

  def conv_maps(self) -> tuple[int, int]:
    """Sides of the conv2 and conv3 maps (VALID convs, 2x2 pools)."""
    side, sides = self.image_size, []
    for k in self.conv_kernel_sizes:
      side = (side - k + 1) // 2
      sides.append(side)
    return sides[-2], sides[-1]


SIZES = (NetSize.from_config("Figure 1, 112 px", paper_config.get_config()),
         NetSize.from_config("default CPU net, 56 px",
                             default_config.get_config()))


def timeit(fn, repeats: int, warmup: int = 1) -> float:
  """Median wall time (s) of ``fn()``, which must block until done."""
  for _ in range(warmup):
    fn()
  times = []
  for _ in range(repeats):
    t = time.perf_counter()
    fn()
    times.append(time.perf_counter() - t)
  return float(np.median(times))


def jax_stage1_step(size: NetSize, conv_impl: str, fused: bool, batch: int,
                    repeats: int) -> float:
  """Median seconds of one stage-1 step; ``fused``: the project's XLA:CPU
  options (``xla_cpu.network_jit``), else XLA's defaults."""
  config = size.config(default_config.get_config())
  config.model.conv_impl = conv_impl
  config.stage1.optimizer = "momentum"
  config.stage1.learning_rate = 1e-4
  model = models.StructNet.from_config(config.model)
  rng = np.random.default_rng(0)
  poses = rng.normal(scale=300, size=(1000, 17, 3)).astype(np.float32)
  state = train.init_train_state(model, config, jax.random.PRNGKey(0), poses)
  jit = xla_cpu.network_jit if fused else jax.jit
  step = jit(train.make_pretrain_step(model, config), donate_argnums=(0,))
  side = size.image_size
  data = {"image": jnp.asarray(rng.uniform(size=(batch, side, side, 3)),
                               jnp.float32),
          "pose": jnp.asarray(poses[:batch])}
  holder = [state]

  def run():
    holder[0], m = step(holder[0], data)
    jax.block_until_ready(m)

  return timeit(run, repeats)


def jax_stage2_step(batch: int, repeats: int, config=None) -> float:
  """Median seconds of one jitted stage-2 max-margin step (default config)."""
  config = default_config.get_config() if config is None else config
  model = models.StructNet.from_config(config.model)
  rng = np.random.default_rng(0)
  poses = rng.normal(scale=300, size=(config.data.pose_space_size, 17, 3)
                     ).astype(np.float32)
  key = jax.random.PRNGKey(0)
  state = train.start_max_margin(
      model, config, train.init_train_state(model, config, key, poses), key)
  mesh = sharding.make_mesh(jax.devices()[:1])
  step = train.jit_step(train.make_max_margin_step(model, config), mesh,
                        with_pose_space=True)
  size = config.model.image_size
  data = {"image": jnp.asarray(rng.uniform(size=(batch, size, size, 3)),
                               jnp.float32),
          "pose": jnp.asarray(poses[:batch])}
  space = sharding.replicate(poses, mesh)
  holder = [sharding.replicate(state, mesh)]

  def run():
    holder[0], m = step(holder[0], data, space)
    jax.block_until_ready(m)

  return timeit(run, repeats)


def torch_stage1_step(size: NetSize, batch: int, repeats: int,
                      threads: int) -> float | None:
  try:
    import torch  # pylint: disable=g-import-not-at-top
    from torch import nn  # pylint: disable=g-import-not-at-top
  except ImportError:
    return None
  torch.set_num_threads(threads)
  f1, f2, f3 = size.conv_features
  k1, k2, k3 = size.conv_kernel_sizes
  s2, s3 = size.conv_maps()

  class Net(nn.Module):
    """The same network as models.StructNet's regression path (stage 1)."""

    def __init__(self):
      super().__init__()
      self.c1 = nn.Conv2d(3, f1, k1)
      self.c2 = nn.Conv2d(f1, f2, k2)
      self.c3 = nn.Conv2d(f2, f3, k3)
      self.h1 = nn.Linear(s2 * s2 * f2, size.h1_width)
      self.h2 = nn.Linear(s3 * s3 * f3, size.h2_width)
      self.h3 = nn.Linear(size.h1_width + size.h2_width, size.h3_width)
      self.head = nn.Linear(size.h3_width, 51)
      self.drop = nn.Dropout(size.dropout_rate)
      self.pool = nn.MaxPool2d(2)

    def forward(self, x):
      a = torch.relu(self.pool(self.c1(x)))
      c2 = torch.relu(self.pool(self.c2(a)))
      c3 = self.pool(self.c3(c2))
      h1 = self.drop(torch.relu(self.h1(c2.flatten(1))))
      h2 = self.drop(torch.relu(self.h2(c3.flatten(1))))
      h3 = torch.relu(self.h3(torch.cat([h1, h2], 1)))
      return torch.tanh(self.head(h3))

  net = Net()
  opt = torch.optim.SGD(net.parameters(), lr=1e-4, momentum=0.9)
  x = torch.rand(batch, 3, size.image_size, size.image_size)
  y = torch.rand(batch, 51) * 2 - 1
  l2_layers = [net.h1, net.h2, net.h3, net.head]

  def run():
    opt.zero_grad()
    loss = ((net(x) - y) ** 2).sum(1).mean()
    loss = loss + 1e-4 * sum((l.weight ** 2).sum() for l in l2_layers)
    loss.backward()
    opt.step()

  return timeit(run, repeats)


def scoring_rows(batch: int, num_candidates: int, avg: int, dim: int,
                 repeats: int):
  rng = np.random.default_rng(0)
  emb = jnp.asarray(rng.uniform(size=(batch, dim)), jnp.float32)
  table = jnp.asarray(rng.uniform(size=(num_candidates, dim)), jnp.float32)
  cands = jnp.asarray(rng.normal(size=(num_candidates, 17, 3)), jnp.float32)

  @jax.jit
  def score_avg(emb, table, cands):
    scores = scoring.score_images(emb, table)
    return scoring.structnet_avg(scores, cands, avg), jnp.argmax(scores, -1)

  @jax.jit
  def bare_dot(emb, table):
    return jnp.dot(emb, table.T)

  t_score = timeit(lambda: jax.block_until_ready(score_avg(emb, table, cands)),
                   repeats)
  t_dot = timeit(lambda: jax.block_until_ready(bare_dot(emb, table)), repeats)
  return t_score, t_dot


def main():
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--batch", type=int, default=128)
  p.add_argument("--candidates", type=int, default=100_000)
  p.add_argument("--avg", type=int, default=500)
  p.add_argument("--repeats", type=int, default=5)
  p.add_argument("--skip-stage2", action="store_true")
  p.add_argument("--sizes", default="all", choices=("all", "figure1", "cpu"))
  args = p.parse_args()
  threads = os.cpu_count() or 1
  print(f"machine: {platform.machine()} {platform.processor() or ''} "
        f"{threads} cores; jax {jax.__version__} on {jax.devices()[0].platform}")
  sizes = {"all": SIZES, "figure1": SIZES[:1], "cpu": SIZES[1:]}[args.sizes]
  rows = []
  for size in sizes:
    tag = f"[{size.name}, batch {args.batch}]"
    t_torch = torch_stage1_step(size, args.batch, args.repeats, threads)
    t_fused = jax_stage1_step(size, "xla", True, args.batch, args.repeats)
    t_xla = jax_stage1_step(size, "xla", False, args.batch, args.repeats)
    t_im2col = jax_stage1_step(size, "im2col", False, args.batch,
                               args.repeats)
    ref = t_torch if t_torch is not None else t_im2col
    if t_torch is not None:
      rows.append((f"(a) {tag} train step, PyTorch CPU (reference)", t_torch,
                   1.0))
    rows.append((f"(a) {tag} train step, JAX xla + YNNPACK fusions (default)",
                 t_fused, t_fused / ref))
    rows.append((f"(a) {tag} train step, JAX xla, XLA default options",
                 t_xla, t_xla / ref))
    rows.append((f"(a) {tag} train step, JAX im2col, XLA default options"
                 + ("" if t_torch is not None else " (reference)"),
                 t_im2col, t_im2col / ref))
    if not args.skip_stage2:
      for optimizer in ("adamw", "line_search"):
        config = size.config(default_config.get_config())
        config.stage2.optimizer = optimizer
        t2 = jax_stage2_step(args.batch, max(2, args.repeats // 2), config)
        what = ("AdamW, the default" if optimizer == "adamw" else
                "the paper's line search, 35 trials")
        rows.append((f"(a') {tag} stage-2 step ({what}) vs stage-1 step", t2,
                     t2 / t_fused))
  t_score, t_dot = scoring_rows(args.batch, args.candidates, args.avg, 1024,
                                args.repeats)
  rows.append((f"(b) bare jnp.dot [{args.batch},1024]x[1024,{args.candidates}] "
               "(reference)", t_dot, 1.0))
  rows.append((f"(b) score + Max + Avg({args.avg}) over {args.candidates}",
               t_score, t_score / t_dot))
  width = max(len(r[0]) for r in rows)
  print(f"{'what':<{width}}  {'ms':>9}  {'x reference':>11}")
  for name, t, ratio in rows:
    ms = "n/a" if t is None else f"{t * 1e3:9.1f}"
    print(f"{name:<{width}}  {ms:>9}  {ratio:11.2f}")


if __name__ == "__main__":
  main()
