"""Scoring against a candidate table sharded over devices (1M candidates).

  python benchmarks/bench_sharded_scoring.py [--candidates 1000000] \
      [--images 128] [--dim 1024] [--devices 8] [--avg 500] [--top-k 10]

Splits an ``[N, D]`` pose-embedding table and its ``[N, 17, 3]`` poses over
``--devices`` devices (host devices on a CPU: the script asks XLA for them
before JAX starts) and times, in the same run:

  reference: the bare per-shard product, each device ``[B, D] x [D, N/d]``
             (``shard_map``, scores left sharded: no top-k, no merge);
  sharded:   ``sharded_scoring.sharded_top``: per-shard scores, local top-A,
             the exact global merge, Max and Avg(A) (``psum`` of each
             device's share of the top A);

and prints the memory each device holds (its table and pose shards) and the
compiled program's temporary memory per device, against what one replicated
table would take on every device.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time


def _parse():
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--candidates", type=int, default=1_000_000)
  p.add_argument("--images", type=int, default=128)
  p.add_argument("--dim", type=int, default=1024)
  p.add_argument("--devices", type=int, default=8)
  p.add_argument("--avg", type=int, default=500)
  p.add_argument("--top-k", type=int, default=10)
  p.add_argument("--repeats", type=int, default=5)
  return p.parse_args()


def main():
  args = _parse()
  flags = os.environ.get("XLA_FLAGS", "")
  if "xla_force_host_platform_device_count" not in flags:
    os.environ["XLA_FLAGS"] = (
        flags + f" --xla_force_host_platform_device_count={args.devices}")
  sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(
      __file__))))
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  from jax.sharding import PartitionSpec as P  # pylint: disable=g-import-not-at-top
  from structnet_jax import sharded_scoring  # pylint: disable=g-import-not-at-top
  from structnet_jax import sharding  # pylint: disable=g-import-not-at-top

  if jax.device_count() < args.devices:
    raise SystemExit(f"only {jax.device_count()} devices; XLA_FLAGS already "
                     "sets a smaller xla_force_host_platform_device_count.")
  mesh = sharding.make_mesh(jax.devices()[:args.devices])
  n, d, b = args.candidates, args.dim, args.images
  print(f"machine: {platform.machine()}  {os.cpu_count()} cores; jax "
        f"{jax.__version__} on {jax.devices()[0].platform}, "
        f"{args.devices} devices; N={n:,} candidates, D={d}, B={b} images, "
        f"Avg({args.avg}), top-{args.top_k}")

  rng = np.random.default_rng(0)
  # Filled shard by shard: the host never holds two copies of the table.
  rows = sharding.data_sharding(mesh)
  pad = (-n) % args.devices
  per = (n + pad) // args.devices
  table = jax.make_array_from_callback(
      (n + pad, d), rows, lambda idx: rng.standard_normal(
          (per, d), dtype=np.float32))
  poses = jax.make_array_from_callback(
      (n + pad, 17, 3), rows, lambda idx: (300 * rng.standard_normal(
          (per, 17, 3))).astype(np.float32))
  sharded = sharded_scoring.ShardedCandidates(table, poses, n,
                                              sharding.DATA_AXIS)
  emb = jax.device_put(rng.standard_normal((b, d), dtype=np.float32),
                       sharding.replicated(mesh))

  bare = jax.jit(jax.shard_map(lambda e, t: e @ t.T, mesh=mesh,
                               in_specs=(P(), P(sharding.DATA_AXIS)),
                               out_specs=P(None, sharding.DATA_AXIS)))
  depth = max(args.avg, args.top_k)
  top = jax.jit(lambda e, t, p: sharded_scoring.sharded_top(
      e, sharded_scoring.ShardedCandidates(t, p, n, sharding.DATA_AXIS),
      mesh, (args.avg,), depth))

  def timeit(fn):
    jax.block_until_ready(fn())
    times = []
    for _ in range(args.repeats):
      t = time.perf_counter()
      jax.block_until_ready(fn())
      times.append(time.perf_counter() - t)
    return float(np.median(times))

  t_bare = timeit(lambda: bare(emb, table))
  t_top = timeit(lambda: top(emb, table, poses))
  mib = 2.0**20
  shard_bytes = (table.addressable_shards[0].data.nbytes +
                 poses.addressable_shards[0].data.nbytes)
  temp = top.lower(emb, table, poses).compile().memory_analysis()
  temp_mib = (temp.temp_size_in_bytes / mib / args.devices if temp else
              float("nan"))
  rows_out = [
      ("bare per-shard jnp.dot, scores left sharded (reference)",
       t_bare * 1e3, 1.0),
      (f"sharded score + exact merge + Max + Avg({args.avg}) + top-"
       f"{args.top_k}", t_top * 1e3, t_top / t_bare),
  ]
  print(f"{'what':<72}{'ms':>10}{'x reference':>13}")
  for name, ms, ratio in rows_out:
    print(f"{name:<72}{ms:>10.1f}{ratio:>13.2f}")
  print(f"per device: table + poses shard {shard_bytes / mib:.0f} MiB; "
        f"temporaries of the sharded program ~{temp_mib:.0f} MiB (the "
        f"program's total over {args.devices} devices / {args.devices}); "
        f"a replicated table + poses would be "
        f"{(n * d + n * 51) * 4 / mib:.0f} MiB on every device")


if __name__ == "__main__":
  main()
