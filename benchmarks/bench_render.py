"""Throughput of the person renderer (data_pipelines.render.core) here.

Renders batches of synthetic poses (standing/walking variations seen by four
Human3.6M-like cameras, random looks) at ``--out-size`` pixels and prints a
table of images per second, with and without 2x2 supersampling, next to two
references measured in the same run on the same batch and image size:

* ``plain``: a jitted jnp function writing the same uint8 ``[B, S, S, 3]``
  output from a cheap per-pixel formula (a floor on the cost of producing
  that many pixels);
* ``silhouette``: the renderer's own ray cast with nothing else (crop box,
  primitives, nearest-hit search; no shading, no room), at the same number
  of rays as the render it is compared with.

Ratios are render time / reference time. Wall-clock numbers depend on
whatever else runs on the machine; ``core-ms/img`` (process CPU time per
image, all threads) is steadier.

Usage: python benchmarks/bench_render.py [--batch 8 64] [--out-size 128]
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from data_pipelines.render import core as render  # noqa: E402
from data_pipelines.rig import appearance as app_lib  # noqa: E402

FOCAL = np.array([1145.0, 1144.0])
CENTER = np.array([512.0, 515.0])
_BONES = dict(hip=133.0, thigh=443.0, shin=454.0, spine=233.0, spine2=257.0,
              neck=121.0, head=115.0, sho=151.0, uarm=279.0, farm=252.0)


def _unit(v):
  return v / np.linalg.norm(v, axis=-1, keepdims=True)


def synthetic_scenes(n, seed=0):
  """``n`` camera-frame poses ``[n, 17, 3]`` and their rooms (batched Floor).

  Poses: limbs swung randomly about a standing pose, random heading, seen
  from one of four cameras 4.5-5.5 m away at 1.5 m height.
  """
  rng = np.random.default_rng(seed)
  joints, rotations, translations = [], [], []
  for _ in range(n):
    def d(v, s):
      return _unit(np.asarray(v, float) + s * rng.normal(size=3))
    j = np.zeros((17, 3))
    left = np.array([1.0, 0, 0])
    j[0] = (0, 0, 950)
    j[1], j[4] = j[0] - _BONES["hip"] * left, j[0] + _BONES["hip"] * left
    for hip, knee, ankle in ((1, 2, 3), (4, 5, 6)):
      j[knee] = j[hip] + _BONES["thigh"] * d((0, 0, -1), 0.35)
      j[ankle] = j[knee] + _BONES["shin"] * d((0, -0.1, -1), 0.3)
    j[7] = j[0] + _BONES["spine"] * d((0, 0, 1), 0.1)
    j[8] = j[7] + _BONES["spine2"] * d((0, 0, 1), 0.1)
    j[9] = j[8] + _BONES["neck"] * d((0, 0.1, 1), 0.1)
    j[10] = j[9] + _BONES["head"] * d((0, 0, 1), 0.1)
    for sign, (sho, elb, wri) in ((1, (11, 12, 13)), (-1, (14, 15, 16))):
      j[sho] = j[8] + sign * _BONES["sho"] * left
      j[elb] = j[sho] + _BONES["uarm"] * d((0.3 * sign, 0, -1), 0.8)
      j[wri] = j[elb] + _BONES["farm"] * d((0.2 * sign, 0.3, -1), 1.0)
    heading = rng.uniform(0, 2 * np.pi)
    fwd = np.array([np.cos(heading), np.sin(heading), 0])
    lft = np.array([-np.sin(heading), np.cos(heading), 0])
    world = j[:, :1] * lft + j[:, 1:2] * fwd + j[:, 2:3] * [0, 0, 1]
    azimuth = np.pi / 4 + np.pi / 2 * rng.integers(4)
    dist = rng.uniform(4500, 5500)
    cam = np.array([dist * np.cos(azimuth), dist * np.sin(azimuth), 1500.0])
    z = _unit(np.array([0.0, 0.0, 900.0]) - cam)
    x = _unit(np.cross(z, [0.0, 0.0, 1.0]))
    rot = np.stack([x, np.cross(z, x), z])
    joints.append(world @ rot.T - rot @ cam)
    rotations.append(rot)
    translations.append(-rot @ cam)
  floors = jax.vmap(render.floor_from_extrinsics)(
      jnp.asarray(np.stack(rotations), jnp.float32),
      jnp.asarray(np.stack(translations), jnp.float32))
  return np.stack(joints).astype(np.float32), floors


def make_plain_reference(out_size):
  """Jitted ``joints [B, 17, 3] -> uint8 [B, S, S, 3]`` (gradient + waves)."""

  @jax.jit
  def plain(joints_cam):
    grid = jnp.arange(out_size, dtype=jnp.float32) / out_size
    phase = joints_cam[:, 0, :, None, None] * 1e-3  # [B, 3, 1, 1]
    img = 0.5 + 0.25 * jnp.sin(6.0 * grid[:, None] + phase) * jnp.cos(
        9.0 * grid[None, :] - phase)
    img = jnp.moveaxis(img, 1, -1)
    return jnp.round(jnp.clip(img, 0, 1) * 255).astype(jnp.uint8)

  return plain


def make_silhouette_reference(rays_per_side):
  """Jitted cast-only render: hit mask ``[B, n, n]`` for n rays per side."""
  focal = jnp.asarray(FOCAL, jnp.float32)
  center = jnp.asarray(CENTER, jnp.float32)

  # pylint: disable=protected-access
  def one(joints_cam, appearance):
    box = render.crop_box(render.project(joints_cam, focal, center), 0.2)
    xs, ys = render._ray_grid(box, focal, center, rays_per_side, 1)
    prims = render.body_primitives(joints_cam, appearance)
    t, _ = render._cast_body_tiled(prims, xs[0], ys[0], box, focal, center,
                                   rays_per_side, render._TILE)
    return t < 1e30

  return jax.jit(jax.vmap(one))


def timed(fn, *args, repeats):
  """Best wall time and best process CPU time of ``fn(*args)`` (seconds)."""
  jax.block_until_ready(fn(*args))  # Compile and warm up.
  walls, cpus = [], []
  for _ in range(repeats):
    w0, c0 = time.perf_counter(), time.process_time()
    jax.block_until_ready(fn(*args))
    walls.append(time.perf_counter() - w0)
    cpus.append(time.process_time() - c0)
  return min(walls), min(cpus)


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--batch", type=int, nargs="+", default=[8, 64])
  parser.add_argument("--out-size", type=int, default=128)
  parser.add_argument("--supersample", type=int, nargs="+", default=[1, 2])
  parser.add_argument("--repeats", type=int, default=5)
  args = parser.parse_args(argv)
  size = args.out_size
  print(f"jax {jax.__version__} on {jax.devices()[0].device_kind}, "
        f"{os.cpu_count()} CPU cores, {size}x{size} crops")
  header = (f"{'batch':>5} {'ss':>3} {'img/s':>8} {'core-ms/img':>12} "
            f"{'plain img/s':>12} {'x plain':>8} {'silh img/s':>11} "
            f"{'x silh':>7}")
  print(header)
  print("-" * len(header))
  plain = make_plain_reference(size)
  for batch in args.batch:
    joints, floors = synthetic_scenes(batch)
    looks = jax.jit(jax.vmap(app_lib.sample_appearance))(
        jax.random.split(jax.random.PRNGKey(0), batch))
    plain_wall, _ = timed(plain, jnp.asarray(joints), repeats=args.repeats)
    for ss in args.supersample:
      def run(j, ss=ss):
        return render.render_batch(j, FOCAL, CENTER, looks, floors,
                                   out_size=size, supersample=ss).image
      wall, cpu = timed(run, joints, repeats=args.repeats)
      silhouette = make_silhouette_reference(size * ss)
      silh_wall, _ = timed(silhouette, jnp.asarray(joints), looks,
                           repeats=args.repeats)
      print(f"{batch:>5} {ss:>3} {batch / wall:>8.0f} "
            f"{1e3 * cpu / batch:>12.2f} {batch / plain_wall:>12.0f} "
            f"{wall / plain_wall:>8.1f} {batch / silh_wall:>11.0f} "
            f"{wall / silh_wall:>7.2f}")


if __name__ == "__main__":
  main()
