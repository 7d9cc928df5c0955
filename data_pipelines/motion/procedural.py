"""Procedural human motion: the offline default motion source.

A fresh machine has no motion capture, so this module makes plausible human
motion itself: parametric actions (walking loops, walking a curve, turning on
the spot, sitting down and standing up, reaching, waving, bending to pick
something up, phoning, pointing directions, squatting, idling) drive the
joint angles of the kinematic body of ``data_pipelines.rig.body_model``; forward
kinematics gives the 17 Human3.6M joints.

World frame: z up, millimetres, origin at the centre of the capture volume.
The root (pelvis) is placed so that the lowest ankle touches the floor z=0
(the ankle joint stands for the foot; there are no toe joints), and its
horizontal motion is integrated from the feet so that the supporting foot
does not slide. Each sequence starts at a uniformly random heading, starts and
ends in a neutral stance, and stays within ~2 m of the origin (walkers walk
loops), so cameras 4-5 m away always see the whole person.

  seqs = generate_motion(["S1", "S5"], ["walking", "waving"],
                         sequences_per_action=2, frames_per_sequence=200,
                         fps=50.0, seed=0)
  seqs[0].world_joints  # [200, 17, 3] mm, z-up
"""

from __future__ import annotations

import dataclasses
import zlib
from typing import Callable, Sequence

import numpy as np

from data_pipelines import checks
from data_pipelines.motion import core as motion_lib
from data_pipelines.rig import body_model
from data_pipelines.rig.body_model import ABD, FLEX, TWIST, JOINT

# How far (mm) from the origin the pelvis may roam, and the floor-contact
# softness used to decide which foot supports the body.
_ROOT_RADIUS_MM = 1600.0
_CONTACT_SOFTNESS_MM = 10.0
_RAMP_SECONDS = 1.0

HeadingFn = Callable[[np.ndarray, np.ndarray], np.ndarray]


@dataclasses.dataclass(frozen=True, eq=False, kw_only=True)
class ProceduralSequence(motion_lib.Motion):
  """One generated motion clip: a ``motion.Motion`` and how it was made.

  Generated on its subject's own body, so it is filmed without retargeting
  (``retarget`` False) and, its ankles standing on ``z = 0``, lifted by
  ``motion.ANKLE_HEIGHT_MM``.

  Attributes:
    subject: subject name, e.g. ``"S1"``.
    action: action name, one of ``ACTIONS``.
    subaction: 1-based index of the sequence within (subject, action).
    fps: frames per second.
    world_joints: ``[T, 17, 3]`` float64 mm, world frame (z up, origin at the
      capture-volume centre), joint order of ``structnet_jax.poses``.
    frame_indices: ``[T]`` the generated frame of each row (``0..T-1``, or
      every ``step``-th of them).
    body: the subject's ``BodyShape``.
    joint_angles: ``[T, 17, 3]`` radians (``body_model`` conventions; the
      pelvis twist slot includes the heading) such that
      ``forward_kinematics(joint_angles, rest_offsets(body), root_position)``
      reproduces ``world_joints``.
    root_position: ``[T, 3]`` mm, pelvis position in the world.
    heading: ``[T]`` radians, facing direction about z (0 = +x).
  """
  retarget: bool = False
  body: body_model.BodyShape
  joint_angles: np.ndarray
  root_position: np.ndarray
  heading: np.ndarray


# ---------------------------------------------------------------------------
# Smooth building blocks (numpy, time in seconds, angles in degrees).


def _smoothstep(x):
  """Quintic 0->1 ramp with zero first and second derivatives at the ends."""
  x = np.clip(x, 0.0, 1.0)
  return x * x * x * (x * (6.0 * x - 15.0) + 10.0)


def _bump(phase, centre, sharpness):
  """Periodic von Mises bump in [0, 1], peak 1 at ``centre``."""
  return np.exp(sharpness * (np.cos(phase - centre) - 1.0))


def _wander(t, rng, amplitude, freq_range=(0.08, 0.35), terms=3):
  """Smooth random drift: a sum of a few slow sinusoids, ~``amplitude`` peak."""
  out = np.zeros_like(t)
  for _ in range(terms):
    f = rng.uniform(*freq_range)
    out += np.sin(2 * np.pi * f * t + rng.uniform(0, 2 * np.pi))
  return amplitude * out / np.sqrt(terms)


def _smoothstep_integral(x):
  """Integral of ``_smoothstep`` from 0 to x (x clipped to [0, 1])."""
  x = np.clip(x, 0.0, 1.0)
  return x**6 - 3 * x**5 + 2.5 * x**4


def _smooth_positive(x, eps=0.1):
  """A smooth stand-in for max(x, 0) (no kink, so no acceleration spike)."""
  return 0.5 * (x + np.sqrt(x * x + eps * eps)) - 0.5 * eps


@dataclasses.dataclass(frozen=True)
class _Events:
  """Repeated smooth pulses.

  ``weight`` [T] in [0, 1]; ``index`` [T] is the event a frame belongs to (its
  pulse or the gap after it, so per-event targets indexed with it switch only
  while the weight is zero); ``progress`` [T] in [0, 1] is the share of its
  event's full pulse area passed so far (it rises while the weight is high).
  """
  weight: np.ndarray
  index: np.ndarray
  progress: np.ndarray
  count: int


def _pulse_train(t, starts, rises, holds, falls) -> _Events:
  """Pulses k = 0..n-1 that rise at ``starts[k]`` (all arrays [n], seconds)."""
  weight = np.zeros_like(t)
  index = np.zeros(t.shape, np.int64)
  progress = np.zeros_like(t)
  for k, (s, r, h, f) in enumerate(zip(starts, rises, holds, falls)):
    up = _smoothstep((t - s) / r)
    down = 1.0 - _smoothstep((t - s - r - h) / f)
    weight = np.maximum(weight, up * down)
    index[t >= s] = k
    tail = np.clip(t - s - r - h, 0.0, f)
    area = (r * _smoothstep_integral((t - s) / r)
            + np.clip(t - s - r, 0.0, h)
            + tail - f * _smoothstep_integral(tail / f))
    progress = np.where(index == k, area / (0.5 * r + h + 0.5 * f), progress)
  return _Events(weight, index, progress, len(starts))


def _events(t, rng, *, delay, rise, hold, fall, gap) -> _Events:
  """Schedules pulses (rise, hold, fall, then a gap) until the clip ends.

  Each of ``delay, rise, hold, fall, gap`` is a (low, high) range in seconds,
  drawn per event.
  """
  end = t[-1] if t.size else 0.0
  starts, rises, holds, falls = [], [], [], []
  start = rng.uniform(*delay)
  while start <= end or not starts:
    r, h, f, g = (rng.uniform(*x) for x in (rise, hold, fall, gap))
    starts.append(start), rises.append(r), holds.append(h), falls.append(f)
    start += r + h + f + g
  return _pulse_train(t, starts, rises, holds, falls)


def _neutral(rng) -> np.ndarray:
  """A relaxed standing pose, ``[17, 3]`` degrees, slightly varied per clip."""
  a = np.zeros((17, 3))
  a[JOINT["pelvis"], FLEX] = rng.uniform(0, 6)
  for s in ("left", "right"):
    a[JOINT[f"{s}_hip"]] = (a[0, FLEX] + rng.uniform(-1, 2), rng.uniform(0, 4),
                            rng.uniform(0, 6))
    a[JOINT[f"{s}_knee"], FLEX] = rng.uniform(2, 6)
    a[JOINT[f"{s}_shoulder"]] = (rng.uniform(0, 8), rng.uniform(5, 12),
                                 rng.uniform(-20, 0))
    a[JOINT[f"{s}_elbow"], FLEX] = rng.uniform(8, 20)
  a[JOINT["spine"], FLEX] = rng.uniform(0, 5)
  a[JOINT["thorax"], FLEX] = rng.uniform(-4, 3)
  a[JOINT["neck_nose"], FLEX] = rng.uniform(0, 10) - a[0, FLEX]
  return a


def _idle_overlay(a, t, rng, scale=1.0):
  """Adds weight shifting and looking around to ``a`` [T, 17, 3] (deg)."""
  period = rng.uniform(3.0, 7.0)
  shift = scale * rng.uniform(2.0, 4.0) * np.sin(
      2 * np.pi * t / period + rng.uniform(0, 2 * np.pi))
  # Both legs tilt the same way: the pelvis sways over the planted feet.
  a[:, JOINT["left_hip"], ABD] += shift
  a[:, JOINT["right_hip"], ABD] -= shift
  a[:, JOINT["pelvis"], ABD] += 0.5 * shift
  a[:, JOINT["spine"], ABD] -= 0.6 * shift
  # The unloaded knee relaxes (tilting to the left loads the right leg).
  relax = rng.uniform(3.0, 8.0) / max(abs(shift).max(), 1e-9)
  a[:, JOINT["left_knee"], FLEX] += relax * _smooth_positive(shift, 0.5)
  a[:, JOINT["right_knee"], FLEX] += relax * _smooth_positive(-shift, 0.5)
  a[:, JOINT["neck_nose"], TWIST] += scale * _wander(t, rng, 20.0)
  a[:, JOINT["neck_nose"], FLEX] += scale * _wander(t, rng, 5.0)
  a[:, JOINT["spine"], TWIST] += scale * _wander(t, rng, 4.0)
  return a


def _hold(neutral, t):
  return np.repeat(neutral[None], t.size, axis=0).copy()


def _static_heading(t, s):
  del s
  return np.zeros_like(t)


# ---------------------------------------------------------------------------
# Actions. Each maps (t [T] s, neutral [17, 3] deg, rng, the body's rest
# offsets [17, 3] mm) to joint angles [T, 17, 3] in degrees (heading
# excluded) and a HeadingFn: (t [T] s, walked distance [T] mm) -> heading
# change [T] rad.


def _swing_progress(u, ramp=0.4):
  """Fraction of its swing distance a foot has covered, ``u`` in [0, 1].

  The foot's speed follows a smooth trapezoid (quintic ramps over ``ramp`` of
  the swing at both ends), so it leaves and lands with zero speed and zero
  acceleration and peaks at only ``1 / (1 - ramp)`` times its mean speed.
  """
  u = np.clip(u, 0.0, 1.0)
  h = 1.0 / (1.0 - ramp)

  first = h * ramp * _smoothstep_integral(u / ramp)
  middle = h * (0.5 * ramp + (u - ramp))
  last = 1.0 - h * ramp * _smoothstep_integral((1.0 - u) / ramp)
  return np.where(u < ramp, first, np.where(u > 1.0 - ramp, last, middle))


def _leg_cycle(c, reach, stance, swing_knee, load_knee, thigh, shin):
  """Sagittal hip and knee flexion (deg) over the gait cycle of one leg.

  ``c`` [T] is the cycle fraction (0 = heel strike). During stance
  (``c < stance``) the ankle moves backward relative to the hip at constant
  speed, from ``+reach`` to ``-reach`` mm, so that with the two legs half a
  cycle apart both supporting feet move alike and the body glides forward at
  a steady speed without sliding feet; during swing the foot moves forward
  with a smooth speed profile (``_swing_progress``) and the knee flexes to
  lift it (peak early in the swing). The hip angle (thigh from the pelvis'
  vertical) is solved from the ankle position and the knee angle.
  """
  in_stance = c < stance
  us = c / stance
  uw = np.clip((c - stance) / (1.0 - stance), 0.0, 1.0)
  stride = 2.0 * reach / stance  # body travel per cycle, mm
  x = np.where(in_stance, reach * (1.0 - 2.0 * us),
               -reach + stride * (_swing_progress(uw) - (1.0 - stance) * uw))
  knee = np.where(in_stance, load_knee * np.sin(np.pi * us) ** 2,
                  swing_knee * np.sin(np.pi * (uw + 0.25 / np.pi * np.sin(
                      np.pi * uw))) ** 2)
  k = np.deg2rad(knee)
  # thigh * sin(h) + shin * sin(h - k) = x  =>  R sin(h - d) = x.
  r = np.hypot(thigh + shin * np.cos(k), shin * np.sin(k))
  d = np.arctan2(shin * np.sin(k), thigh + shin * np.cos(k))
  hip = np.rad2deg(d + np.arcsin(np.clip(x / r, -1.0, 1.0)))
  return hip, knee


def _gait(t, neutral, rng, offsets, *, amplitude=1.0):
  """Joint angles of a walking gait (the body walks along its own +x)."""
  a = _hold(neutral, t)
  thigh = np.linalg.norm(offsets[JOINT["left_knee"]])
  shin = np.linalg.norm(offsets[JOINT["left_ankle"]])
  leg = (thigh + shin) / 890.0  # relative to a 1.7 m adult
  period = rng.uniform(1.0, 1.2) * np.sqrt(leg)  # seconds per stride
  stance = rng.uniform(0.58, 0.62)
  stride = amplitude * rng.uniform(1.1, 1.4) * (thigh + shin)  # mm
  reach = 0.5 * stride * stance
  swing_knee = rng.uniform(50.0, 62.0)
  load_knee = rng.uniform(4.0, 10.0)
  lean = rng.uniform(2.0, 8.0)
  pelvis_turn = rng.uniform(3.0, 7.0)
  pelvis_drop = rng.uniform(2.0, 4.0)
  step_width = rng.uniform(1.0, 4.0)  # hip adduction (deg)
  style = rng.choice(["swing", "swing", "stiff", "busy_hand"])
  arm_amp = {"swing": rng.uniform(15, 30), "stiff": rng.uniform(4, 10),
             "busy_hand": rng.uniform(12, 25)}[style] * amplitude
  busy = rng.choice(["left", "right"])
  c_right = np.mod(t / period + rng.uniform(0, 1), 1.0)
  cycles = {"right": c_right, "left": np.mod(c_right + 0.5, 1.0)}
  ph = 2 * np.pi * c_right
  drop = pelvis_drop * np.sin(ph)  # the swing-side hip drops a little
  a[:, 0, FLEX] += lean * 0.5
  a[:, 0, ABD] += drop
  a[:, 0, TWIST] += pelvis_turn * np.cos(ph)  # leading hip forward
  a[:, JOINT["spine"], FLEX] += lean * 0.5
  a[:, JOINT["spine"], TWIST] -= 1.3 * pelvis_turn * np.cos(ph)
  a[:, JOINT["neck_nose"], TWIST] += 0.3 * pelvis_turn * np.cos(ph)
  a[:, JOINT["neck_nose"], FLEX] -= lean
  for side, c in cycles.items():
    sign = 1.0 if side == "left" else -1.0
    hip, knee = _leg_cycle(c, reach, stance, swing_knee, load_knee, thigh,
                           shin)
    pelvis_flex = a[:, 0, FLEX]
    a[:, JOINT[f"{side}_hip"], FLEX] = hip + pelvis_flex
    a[:, JOINT[f"{side}_hip"], ABD] = -sign * drop - step_width
    a[:, JOINT[f"{side}_hip"], TWIST] *= 0.5
    a[:, JOINT[f"{side}_knee"], FLEX] = knee
    if style == "busy_hand" and side == busy:
      a[:, JOINT[f"{side}_shoulder"], FLEX] += 10.0
      a[:, JOINT[f"{side}_elbow"], FLEX] += 75.0
      continue
    arm = -np.cos(2 * np.pi * c - 0.3)  # forward at the other heel strike
    a[:, JOINT[f"{side}_shoulder"], FLEX] += arm_amp * arm
    a[:, JOINT[f"{side}_elbow"], FLEX] += 0.6 * arm_amp * (0.5 + 0.5 * arm)
  return a


def _walking(t, neutral, rng, offsets):
  """Walks a loop: straight stretches and U-turns, back and forth."""
  a = _gait(t, neutral, rng, offsets)
  straight = rng.uniform(300.0, 1200.0)
  radius = rng.uniform(650.0, 900.0)
  sign = rng.choice([-1.0, 1.0])
  s0 = rng.uniform(0.0, 2 * straight + 2 * np.pi * radius)

  def heading(t, s):
    del t
    period = straight + np.pi * radius
    u = np.mod(s + s0, period)
    ramp = 600.0
    turning = (_smoothstep((u - straight + ramp / 2) / ramp)
               * (1.0 - _smoothstep((u - period + ramp / 2) / ramp)))
    turning += 1.0 - _smoothstep((u + ramp / 2) / ramp)  # wrap-around part
    curvature = sign * turning / radius
    ds = np.diff(s, prepend=s[:1])
    return np.cumsum(curvature * ds)

  return a, heading


def _walk_curve(t, neutral, rng, offsets):
  """Walks a closed wobbly loop (an ellipse-, triangle- or square-ish circle).

  The radius of curvature depends on the heading, rho(psi) = R (1 + w sin(m
  psi + phi)) with m >= 2, which has no first harmonic, so each lap closes on
  itself and long clips do not drift away.
  """
  a = _gait(t, neutral, rng, offsets, amplitude=rng.uniform(0.8, 1.0))
  radius = rng.uniform(700.0, 1300.0)
  sign = rng.choice([-1.0, 1.0])
  wobble = rng.uniform(0.0, 0.35)
  m = rng.integers(2, 5)
  ph = rng.uniform(0, 2 * np.pi)
  lean = sign * rng.uniform(2.0, 5.0)
  a[:, JOINT["spine"], ABD] += lean
  a[:, JOINT["neck_nose"], TWIST] += 2 * lean

  def heading(t, s):
    del t
    # Arc length walked as a function of the heading turned, inverted.
    most = s[-1] / (radius * (1 - wobble)) + 1.0
    turned = np.linspace(0.0, most, 1024 + int(512 * most / (2 * np.pi)))
    arc = radius * (turned - wobble / m * (np.cos(m * turned + ph)
                                           - np.cos(ph)))
    return sign * np.interp(s, arc, turned)

  return a, heading


def _turning(t, neutral, rng, offsets):
  """Turns on the spot, stepping, a few times in either direction."""
  del offsets  # unused
  a = _hold(neutral, t)
  starts, rises, holds, falls, turns = [], [], [], [], []
  start = rng.uniform(0.3, 0.8)
  while start <= t[-1] or not starts:
    turn = rng.choice([-1.0, 1.0]) * rng.uniform(60.0, 270.0)
    rate = rng.uniform(80.0, 140.0)  # deg/s while turning at full speed
    r, f = rng.uniform(0.25, 0.4, 2)
    h = max(0.1, abs(turn) / rate - 0.5 * (r + f))
    starts.append(start), rises.append(r), holds.append(h), falls.append(f)
    turns.append(turn)
    start += r + h + f + rng.uniform(0.4, 1.5)
  ev = _pulse_train(t, starts, rises, holds, falls)
  turns = np.array(turns)
  step_freq = rng.uniform(0.9, 1.2)
  phase_r = 2 * np.pi * step_freq * t + rng.uniform(0, 2 * np.pi)
  w = ev.weight
  for side, ph in (("right", phase_r), ("left", phase_r + np.pi)):
    lift = _bump(ph, 0.0, 2.5)
    a[:, JOINT[f"{side}_hip"], FLEX] += w * 22.0 * lift
    a[:, JOINT[f"{side}_knee"], FLEX] += w * 40.0 * lift
    a[:, JOINT[f"{side}_shoulder"], FLEX] += w * 8.0 * np.sin(ph + np.pi)
    a[:, JOINT[f"{side}_elbow"], FLEX] += w * 10.0
  direction = np.sign(turns[ev.index])
  a[:, JOINT["neck_nose"], TWIST] += w * 20.0 * direction
  a[:, JOINT["spine"], TWIST] += w * 6.0 * direction
  a = _idle_overlay(a, t, rng, scale=0.4)
  # Heading: each event turns by its angle, at a rate following its pulse.
  done = np.concatenate([[0.0], np.cumsum(turns)])
  yaw = np.deg2rad(done[ev.index] + turns[ev.index] * ev.progress)

  def heading(t, s):
    del t, s
    return yaw

  return a, heading


def _sitting(t, neutral, rng, offsets):
  """Sits down on an imaginary chair, sits a while, stands up again."""
  del offsets  # unused
  a = _hold(neutral, t)
  ev = _events(t, rng, delay=(0.3, 1.0), rise=(1.2, 2.0), hold=(1.5, 4.0),
               fall=(1.2, 2.0), gap=(0.8, 2.0))
  u = ev.weight
  lean = rng.uniform(25.0, 40.0) * np.sin(np.pi * u)
  recline = rng.uniform(-12.0, 5.0)
  pelvis = lean + u * recline
  spread = rng.uniform(3.0, 12.0)
  knee = rng.uniform(85.0, 105.0)
  a[:, 0, FLEX] += pelvis
  for side in ("left", "right"):
    a[:, JOINT[f"{side}_hip"], FLEX] += 90.0 * u + pelvis
    a[:, JOINT[f"{side}_hip"], ABD] += spread * u
    a[:, JOINT[f"{side}_knee"], FLEX] += knee * u
  a[:, JOINT["spine"], FLEX] += rng.uniform(0, 12) * u + 0.3 * lean
  a[:, JOINT["thorax"], FLEX] += rng.uniform(0, 10) * u
  a[:, JOINT["neck_nose"], FLEX] -= 0.6 * (pelvis + 0.3 * lean)
  arms = rng.choice(["thighs", "lap"])
  for side in ("left", "right"):
    if arms == "thighs":
      a[:, JOINT[f"{side}_shoulder"], FLEX] += u * rng.uniform(20, 35) + lean
      a[:, JOINT[f"{side}_elbow"], FLEX] += u * rng.uniform(25, 45)
    else:
      a[:, JOINT[f"{side}_shoulder"], FLEX] += u * rng.uniform(5, 15) + lean
      a[:, JOINT[f"{side}_shoulder"], TWIST] -= u * rng.uniform(20, 40)
      a[:, JOINT[f"{side}_elbow"], FLEX] += u * rng.uniform(60, 80)
  a[:, JOINT["neck_nose"], TWIST] += _wander(t, rng, 20.0) * u
  a[:, JOINT["spine"], TWIST] += _wander(t, rng, 5.0) * u
  return a, _static_heading


def _bending(t, neutral, rng, offsets):
  """Bends down to pick something up from the floor, and straightens up."""
  del offsets  # unused
  a = _hold(neutral, t)
  ev = _events(t, rng, delay=(0.3, 1.0), rise=(0.8, 1.4), hold=(0.3, 1.0),
               fall=(0.8, 1.4), gap=(0.5, 1.5))
  n = ev.count
  w = ev.weight
  pelvis = rng.uniform(50.0, 85.0, n)[ev.index] * w
  knee = rng.uniform(15.0, 70.0, n)[ev.index] * w
  spine = rng.uniform(10.0, 30.0, n)[ev.index] * w
  thorax = rng.uniform(5.0, 15.0, n)[ev.index] * w
  hands = rng.choice(["left", "right", "both"], n)[ev.index]
  a[:, 0, FLEX] += pelvis
  for side in ("left", "right"):
    a[:, JOINT[f"{side}_hip"], FLEX] += pelvis + 0.5 * knee
    a[:, JOINT[f"{side}_knee"], FLEX] += knee
  a[:, JOINT["spine"], FLEX] += spine
  a[:, JOINT["thorax"], FLEX] += thorax
  a[:, JOINT["neck_nose"], FLEX] += -20.0 * w
  trunk = pelvis + spine + thorax
  for side in ("left", "right"):
    reach = (hands == side) | (hands == "both")
    a[:, JOINT[f"{side}_shoulder"], FLEX] += np.where(reach, 1.0, 0.7) * trunk
    a[:, JOINT[f"{side}_elbow"], FLEX] += np.where(reach, 0.0, 20.0) * w
  return a, _static_heading


def _squatting(t, neutral, rng, offsets):
  """Squats down (arms forward for balance) and comes back up, repeatedly."""
  del offsets  # unused
  a = _hold(neutral, t)
  ev = _events(t, rng, delay=(0.3, 1.0), rise=(0.8, 1.5), hold=(0.2, 1.5),
               fall=(0.8, 1.5), gap=(0.4, 1.5))
  n, w = ev.count, ev.weight
  knee = rng.uniform(90.0, 130.0, n)[ev.index] * w
  pelvis = rng.uniform(20.0, 45.0, n)[ev.index] * w
  arms = rng.uniform(40.0, 90.0, n)[ev.index] * w
  a[:, 0, FLEX] += pelvis
  for side in ("left", "right"):
    a[:, JOINT[f"{side}_hip"], FLEX] += pelvis + 0.58 * knee
    a[:, JOINT[f"{side}_hip"], ABD] += 0.08 * knee
    a[:, JOINT[f"{side}_knee"], FLEX] += knee
    a[:, JOINT[f"{side}_shoulder"], FLEX] += arms
    a[:, JOINT[f"{side}_elbow"], FLEX] += 0.2 * arms
  a[:, JOINT["spine"], FLEX] += 0.2 * pelvis
  a[:, JOINT["neck_nose"], FLEX] -= 0.8 * pelvis
  return a, _static_heading


def _arm_events(t, rng, **timing):
  ev = _events(t, rng, **timing)
  dominant = rng.choice(["left", "right"])
  other = "right" if dominant == "left" else "left"
  sides = np.where(rng.uniform(size=ev.count) < 0.75, dominant, other)
  return ev, sides


def _reaching(t, neutral, rng, offsets):
  """Reaches out to a random target with one arm, and back, repeatedly."""
  del offsets  # unused
  a = _idle_overlay(_hold(neutral, t), t, rng, scale=0.5)
  ev, sides = _arm_events(t, rng, delay=(0.2, 0.8), rise=(0.8, 1.4),
                          hold=(0.3, 1.0), fall=(0.8, 1.4), gap=(0.2, 1.0))
  n, w = ev.count, ev.weight
  flex = rng.uniform(20.0, 150.0, n)
  abd = rng.uniform(-20.0, 70.0, n)
  twist = rng.uniform(-40.0, 30.0, n)
  elbow = rng.uniform(0.0, 35.0, n)
  low = (rng.uniform(size=n) < 0.4) & (flex < 80.0)  # low targets: bend
  bend = np.where(low, rng.uniform(15.0, 40.0, n), 0.0)
  turn = rng.uniform(-25.0, 25.0, n)
  side = sides[ev.index]
  k = ev.index
  for s in ("left", "right"):
    m = (side == s) * w
    sign = 1.0 if s == "left" else -1.0
    sh = JOINT[f"{s}_shoulder"]
    a[:, sh, FLEX] += m * (flex[k] + np.where(low[k], 0.8 * bend[k], 0.0)
                           - a[:, sh, FLEX])
    a[:, sh, ABD] += m * (abd[k] - a[:, sh, ABD])
    a[:, sh, TWIST] += m * (twist[k] - a[:, sh, TWIST])
    a[:, JOINT[f"{s}_elbow"], FLEX] += m * (elbow[k]
                                            - a[:, JOINT[f"{s}_elbow"], FLEX])
    a[:, JOINT["spine"], ABD] += m * sign * np.clip(abd[k] - 30.0, 0, None) * 0.2
  a[:, 0, FLEX] += w * bend[k]
  for s in ("left", "right"):
    a[:, JOINT[f"{s}_hip"], FLEX] += w * bend[k]
  a[:, JOINT["spine"], FLEX] += w * 0.5 * bend[k]
  a[:, JOINT["spine"], TWIST] += w * turn[k]
  a[:, JOINT["neck_nose"], TWIST] += w * 0.8 * turn[k]
  return a, _static_heading


def _waving(t, neutral, rng, offsets):
  """Waves one or both hands, high overhead or with the forearm up."""
  del offsets  # unused
  a = _idle_overlay(_hold(neutral, t), t, rng, scale=0.5)
  ev, sides = _arm_events(t, rng, delay=(0.2, 0.8), rise=(0.7, 1.1),
                          hold=(1.0, 3.5), fall=(0.7, 1.1), gap=(0.5, 2.0))
  n, w, k = ev.count, ev.weight, ev.index
  both = rng.uniform(size=n) < 0.3
  style = np.where(rng.uniform(size=n) < 0.5, 1.0, 0.0)  # 1 = overhead
  freq = rng.uniform(1.2, 2.2)
  osc = np.sin(2 * np.pi * freq * t + rng.uniform(0, 2 * np.pi))
  amp = rng.uniform(8.0, 18.0)
  for s in ("left", "right"):
    m = w * ((sides[k] == s) | both[k])
    hi, lo = style[k], 1.0 - style[k]
    sh, el = JOINT[f"{s}_shoulder"], JOINT[f"{s}_elbow"]
    target_flex = hi * (145.0 + 0.7 * amp * osc) + lo * 25.0
    target_abd = hi * (25.0 + amp * osc) + lo * 78.0
    target_twist = hi * 0.0 + lo * 75.0
    target_elbow = hi * (25.0 + 0.6 * amp * osc) + lo * (95.0 + 1.5 * amp * osc)
    a[:, sh, FLEX] += m * (target_flex - a[:, sh, FLEX])
    a[:, sh, ABD] += m * (target_abd - a[:, sh, ABD])
    a[:, sh, TWIST] += m * (target_twist - a[:, sh, TWIST])
    a[:, el, FLEX] += m * (target_elbow - a[:, el, FLEX])
  return a, _static_heading


def _phoning(t, neutral, rng, offsets):
  """Holds a phone to the ear, may swap hands; the free arm gestures."""
  del offsets  # unused
  a = _idle_overlay(_hold(neutral, t), t, rng, scale=0.8)
  ev, sides = _arm_events(t, rng, delay=(0.2, 0.8), rise=(0.9, 1.3),
                          hold=(4.0, 10.0), fall=(0.9, 1.3), gap=(0.5, 1.5))
  w, k = ev.weight, ev.index
  pose = np.array([rng.uniform(55, 70), rng.uniform(15, 30),
                   rng.uniform(-15, 0), rng.uniform(140, 150)])
  gesture = _smooth_positive(_wander(t, rng, 1.0, (0.15, 0.5)))
  for s in ("left", "right"):
    sign = 1.0 if s == "left" else -1.0
    m = w * (sides[k] == s)
    free = w * (sides[k] != s)
    sh, el = JOINT[f"{s}_shoulder"], JOINT[f"{s}_elbow"]
    for slot in (FLEX, ABD, TWIST):
      a[:, sh, slot] += m * (pose[slot] - a[:, sh, slot])
    a[:, el, FLEX] += m * (pose[3] - a[:, el, FLEX])
    a[:, sh, FLEX] += free * 35.0 * gesture
    a[:, el, FLEX] += free * 60.0 * gesture
    a[:, JOINT["neck_nose"], ABD] += m * sign * 10.0
  return a, _static_heading


def _pointing(t, neutral, rng, offsets):
  """Gives directions: points with a straight arm, turning the head to look."""
  del offsets  # unused
  a = _idle_overlay(_hold(neutral, t), t, rng, scale=0.6)
  ev, sides = _arm_events(t, rng, delay=(0.2, 0.8), rise=(0.7, 1.1),
                          hold=(0.8, 2.0), fall=(0.7, 1.1), gap=(0.3, 1.2))
  n, w, k = ev.count, ev.weight, ev.index
  flex = rng.uniform(60.0, 110.0, n)
  abd = rng.uniform(-10.0, 75.0, n)
  elbow = rng.uniform(0.0, 15.0, n)
  for s in ("left", "right"):
    sign = 1.0 if s == "left" else -1.0
    m = w * (sides[k] == s)
    sh, el = JOINT[f"{s}_shoulder"], JOINT[f"{s}_elbow"]
    a[:, sh, FLEX] += m * (flex[k] - a[:, sh, FLEX])
    a[:, sh, ABD] += m * (abd[k] - a[:, sh, ABD])
    a[:, sh, TWIST] += m * (0.0 - a[:, sh, TWIST])
    a[:, el, FLEX] += m * (elbow[k] - a[:, el, FLEX])
    look = sign * (0.6 * abd[k] - 5.0)
    a[:, JOINT["neck_nose"], TWIST] += m * np.clip(look, -60, 60)
    a[:, JOINT["spine"], TWIST] += m * 0.2 * look
    a[:, JOINT["neck_nose"], FLEX] += m * 0.3 * (90.0 - flex[k])
  return a, _static_heading


def _idle(t, neutral, rng, offsets):
  """Stands, shifting weight and looking around."""
  del offsets  # unused
  a = _idle_overlay(_hold(neutral, t), t, rng, scale=1.3)
  for s in ("left", "right"):
    a[:, JOINT[f"{s}_shoulder"], FLEX] += 10.0 * _smooth_positive(
        _wander(t, rng, 1.0))
    a[:, JOINT[f"{s}_elbow"], FLEX] += 25.0 * _smooth_positive(
        _wander(t, rng, 1.0))
  return a, _static_heading


ACTIONS: dict[str, Callable[..., tuple[np.ndarray, HeadingFn]]] = {
    "walking": _walking,
    "walk_curve": _walk_curve,
    "turning": _turning,
    "sitting": _sitting,
    "reaching": _reaching,
    "waving": _waving,
    "bending": _bending,
    "phoning": _phoning,
    "pointing": _pointing,
    "squatting": _squatting,
    "idle": _idle,
}
ACTION_NAMES: tuple[str, ...] = tuple(ACTIONS)


# ---------------------------------------------------------------------------
# Placement in the world.


def _rotate_z(points, yaw):
  """Rotates ``[T, ..., 3]`` points about z by ``yaw`` [T] radians."""
  c, s = np.cos(yaw), np.sin(yaw)
  shape = (-1,) + (1,) * (points.ndim - 2)
  c, s = c.reshape(shape), s.reshape(shape)
  x, y = points[..., 0], points[..., 1]
  return np.stack([c * x - s * y, s * x + c * y, points[..., 2]], axis=-1)


def _support_weights(local):
  """Which foot carries the body, ``[T, 2]`` (right, left), from ankle heights."""
  z = local[:, [JOINT["right_ankle"], JOINT["left_ankle"]], 2]
  e = np.exp(-(z - z.min(axis=1, keepdims=True)) / _CONTACT_SOFTNESS_MM)
  return e / e.sum(axis=1, keepdims=True)


def _root_path(oriented, weights):
  """Root xy ``[T, 2]`` that keeps the supporting foot still (mm, from 0)."""
  ankles = oriented[:, [JOINT["right_ankle"], JOINT["left_ankle"]], :2]
  vel = np.diff(ankles, axis=0)  # [T-1, 2, 2], relative to the root
  w = 0.5 * (weights[1:] + weights[:-1])
  step = -(w[..., None] * vel).sum(axis=1)
  return np.concatenate([np.zeros((1, 2)), np.cumsum(step, axis=0)])


def _walked_distance(local, weights):
  """Cumulative horizontal distance walked ``[T]`` mm (heading-independent)."""
  path = _root_path(local, weights)
  d = np.linalg.norm(np.diff(path, axis=0), axis=-1)
  return np.concatenate([[0.0], np.cumsum(d)])


def _check_args(subjects, actions, sequences_per_action, frames_per_sequence,
                fps, seed):
  if isinstance(subjects, str) or not subjects:
    raise ValueError(
        f"subjects must be a non-empty sequence of names such as ['S1', 'S5'], "
        f"got {subjects!r}.")
  for s in subjects:
    if not isinstance(s, str) or not s:
      raise ValueError(f"subject names must be non-empty strings, got {s!r}.")
  if actions is None:
    actions = ACTION_NAMES
  if isinstance(actions, str) or not actions:
    raise ValueError(
        f"actions must be None (all) or a non-empty sequence of names from "
        f"{ACTION_NAMES}, got {actions!r}.")
  unknown = [a for a in actions if a not in ACTIONS]
  if unknown:
    raise ValueError(
        f"unknown action(s) {unknown}; choose from {ACTION_NAMES}.")
  checks.int_at_least("sequences_per_action", sequences_per_action, 1)
  checks.int_at_least("frames_per_sequence", frames_per_sequence, 2)
  checks.int_at_least("seed", seed, 0)
  checks.positive_number("fps", fps, " (frames per second)")
  return list(actions)


def generate_motion(subjects: Sequence[str],
                    actions: Sequence[str] | None = None,
                    sequences_per_action: int = 2,
                    frames_per_sequence: int = 250,
                    fps: float = 50.0,
                    seed: int = 0,
                    body_seed: int = 0,
                    step: int = 1) -> list[ProceduralSequence]:
  """Generates procedural motion clips, deterministic given the seeds.

  Args:
    subjects: subject names; each gets ``subject_body(name, body_seed)``.
    actions: action names from ``ACTION_NAMES`` (None: all of them).
    sequences_per_action: clips per (subject, action); subactions 1..n.
    frames_per_sequence: frames T per clip (>= 2).
    fps: frame rate (Hz).
    seed: motion seed; each clip's randomness depends only on (seed, subject,
      action, subaction), not on which other clips are generated.
    body_seed: seed of the subjects' proportions (kept apart from ``seed`` so
      that a subject keeps its body across motion seeds).
    step: keep every ``step``-th generated frame (the clip is generated at
      ``fps`` first, so the kept frames do not depend on ``step``; the
      sequences' ``fps`` is ``fps / step``, their ``frame_indices`` the
      generated frames).

  Returns:
    ``len(subjects) * len(actions) * sequences_per_action`` sequences, ordered
    by subject, then action, then subaction.
  """
  actions = _check_args(subjects, actions, sequences_per_action,
                        frames_per_sequence, fps, seed)
  step = checks.int_at_least("step", step, 1, " (keep every step-th frame)")
  T = int(frames_per_sequence)
  t = np.arange(T) / float(fps)
  duration = (T - 1) / float(fps)
  ramp = min(_RAMP_SECONDS, duration / 4)
  envelope = (_smoothstep(t / max(ramp, 1e-9))
              * _smoothstep((duration - t) / max(ramp, 1e-9)))
  jobs, angle_list, offset_list = [], [], []
  for subject in subjects:
    body = body_model.subject_body(subject, body_seed)
    offsets = body_model.rest_offsets(body)
    for action in actions:
      for sub in range(1, int(sequences_per_action) + 1):
        rng = np.random.default_rng([
            int(seed), zlib.crc32(subject.encode("utf-8")),
            zlib.crc32(action.encode("utf-8")), sub])
        heading0 = rng.uniform(0.0, 2 * np.pi)
        place = rng.uniform(size=2)
        neutral = _neutral(rng)
        raw, heading_fn = ACTIONS[action](t, neutral, rng, offsets)
        deg = neutral + envelope[:, None, None] * (raw - neutral)
        rad = body_model.clip_to_limits(np.deg2rad(deg))
        jobs.append((subject, action, sub, body, heading0, place, heading_fn))
        angle_list.append(rad)
        offset_list.append(offsets)
  angles = np.stack(angle_list)  # [N, T, 17, 3]
  offsets = np.stack(offset_list)[:, None]  # [N, 1, 17, 3]
  local_all = body_model.forward_kinematics(angles, offsets).astype(np.float64)
  out = []
  for (subject, action, sub, body, heading0, place, heading_fn), rad, local in (
      zip(jobs, angles, local_all)):
    weights = _support_weights(local)
    walked = _walked_distance(local, weights)
    heading = heading0 + heading_fn(t, walked)
    oriented = _rotate_z(local, heading)
    root = np.zeros((T, 3))
    root[:, :2] = _root_path(oriented, weights)
    root[:, 2] = -oriented[:, [JOINT["right_ankle"], JOINT["left_ankle"]],
                           2].min(axis=1)
    # Centre the path's bounding box, then move it to a random spot that
    # keeps the whole path within _ROOT_RADIUS_MM of the origin.
    lo, hi = root[:, :2].min(axis=0), root[:, :2].max(axis=0)
    centre = 0.5 * (lo + hi)
    extent = np.linalg.norm(root[:, :2] - centre, axis=-1).max()
    free = max(0.0, _ROOT_RADIUS_MM - extent)
    r, phi = free * np.sqrt(place[0]), 2 * np.pi * place[1]
    root[:, :2] += np.array([r * np.cos(phi), r * np.sin(phi)]) - centre
    world = oriented + root[:, None, :]
    stored = rad.astype(np.float64).copy()
    stored[:, 0, TWIST] += heading
    kept = slice(None, None, step)
    out.append(ProceduralSequence(
        subject=subject, action=action, subaction=sub,
        fps=float(fps) / step,
        world_joints=world[kept], frame_indices=np.arange(T)[kept],
        body=body, joint_angles=stored[kept], root_position=root[kept],
        heading=np.asarray(heading, np.float64)[kept]))
  return out


# ---------------------------------------------------------------------------
# Pictures (matplotlib is optional and imported only here).


def plot_sequences(sequences: Sequence[ProceduralSequence], path: str,
                   frames_per_row: int = 6) -> None:
  """Writes a contact sheet PNG: one row per sequence, stick figures.

  Each row shows ``frames_per_row`` evenly spaced frames as side views in the
  person's own frame (facing right; so the action reads the same at every
  heading), then a front view of the middle frame and a top view of the
  pelvis path within the 2 m circle.
  """
  try:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
  except ImportError as e:
    raise ImportError(
        "plot_sequences needs matplotlib: pip install matplotlib") from e
  from structnet_jax import poses as poses_lib

  left = set(poses_lib.LEFT_JOINTS)
  cols = frames_per_row + 2
  fig, axes = plt.subplots(len(sequences), cols,
                           figsize=(1.6 * cols, 1.9 * len(sequences)),
                           squeeze=False)
  for row, seq in zip(axes, sequences):
    T = seq.num_frames
    idx = np.linspace(0, T - 1, frames_per_row).round().astype(int)
    views = []
    for i in idx:
      p = seq.world_joints[i] - np.array([*seq.root_position[i, :2], 0.0])
      views.append(_rotate_z(p[None], -seq.heading[i:i + 1])[0])
    mid = T // 2
    p = seq.world_joints[mid] - np.array([*seq.root_position[mid, :2], 0.0])
    front = _rotate_z(p[None], -seq.heading[mid:mid + 1])[0]
    panels = [(v[:, 0], v[:, 2], f"t={i / seq.fps:.1f}s") for v, i in
              zip(views, idx)]
    panels.append((-front[:, 1], front[:, 2], "front"))
    for ax, (u, z, title) in zip(row, panels):
      for p_, c in poses_lib.BONES:
        col = "tab:red" if c in left else "tab:blue"
        if c in (7, 8, 9, 10):
          col = "k"
        ax.plot([u[p_], u[c]], [z[p_], z[c]], color=col, lw=1.5)
      ax.axhline(0, color="0.6", lw=0.8)
      ax.set_xlim(-900, 900)
      ax.set_ylim(-50, 1950)
      ax.set_aspect("equal")
      ax.set_xticks([])
      ax.set_yticks([])
      ax.set_title(title, fontsize=7)
    ax = row[-1]
    xy = seq.root_position[:, :2]
    ax.add_patch(plt.Circle((0, 0), 2000, fill=False, color="0.7"))
    ax.plot(xy[:, 0], xy[:, 1], "k-", lw=0.8)
    ax.plot(seq.world_joints[:, 3, 0], seq.world_joints[:, 3, 1], "b.", ms=1)
    ax.plot(seq.world_joints[:, 6, 0], seq.world_joints[:, 6, 1], "r.", ms=1)
    ax.arrow(xy[0, 0], xy[0, 1], 300 * np.cos(seq.heading[0]),
             300 * np.sin(seq.heading[0]), width=40, color="g")
    ax.set_xlim(-2300, 2300)
    ax.set_ylim(-2300, 2300)
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title("top", fontsize=7)
    row[0].set_ylabel(f"{seq.subject} {seq.action}", fontsize=7)
  fig.tight_layout()
  fig.savefig(path, dpi=90)
  plt.close(fig)
