"""Appearance of a rendered person and of the room around them.

An ``Appearance`` is a pytree of small float32 arrays (a NamedTuple), so it can
be batched along a leading axis and passed through ``jax.jit`` / ``jax.vmap``
like any other array argument of the renderer (``data_pipelines.render.core``).

Colours are display RGB in ``[0, 1]`` (no gamma), shape ``[3]``. Lengths are
millimetres.
Nothing here depends on left/right: both arms, both legs, both hands and both
feet always get the same colours, so a rendered image carries no left/right
colour cue (the front/back cues are the face, the hair and the shirt front).

``sample_appearance(key)`` draws a random body and room. ``subject_appearance``
gives each named subject a fixed look: the body is seeded from the subject's
name (and a seed), the room only from the seed, so that, as in the real
Human3.6M capture, all subjects of one dataset version share one room.
"""

from __future__ import annotations

import zlib
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np


class Appearance(NamedTuple):
  """Look of one person and room. Leading batch axes are allowed on every leaf.

  Attributes:
    thickness: ``[]`` scale of limb and torso radii (1 = average build).
    skin: ``[3]`` skin colour (head, hands, and arms/legs below the clothes).
    hair: ``[3]`` hair colour.
    shirt: ``[3]`` shirt colour (torso and sleeves).
    shirt_front: ``[3]`` colour of the collar and chest logo, drawn only on
      the front of the shirt (a front/back cue).
    trousers: ``[3]`` trousers colour (hips and legs).
    shoes: ``[3]`` shoe colour.
    sleeve: ``[]`` fraction of the arm (shoulder to wrist) covered by the
      sleeve, in ``[0, 1]``; 0.3 is a T-shirt, 1 a long sleeve.
    trouser_length: ``[]`` fraction of the leg (hip to ankle) covered by the
      trousers, in ``[0, 1]``; 0.4 is shorts, 1 full-length trousers.
    hair_style: ``[]`` in ``[0, 1]``: 0 short hair (back of the head covered
      down to the ears), 1 long hair (down to the neck).
    floor_a: ``[3]`` first floor-tile colour.
    floor_b: ``[3]`` second floor-tile colour.
    floor_tile: ``[]`` floor-tile edge length, mm.
    wall: ``[3]`` wall colour.
    wall_trim: ``[3]`` colour of the wall's skirting band and panel seams.
    wall_panel: ``[]`` wall-panel width, mm.
    texture_seed: ``[]`` float seed of the procedural noise on floor and walls.
    texture_contrast: ``[]`` amplitude of that noise, in ``[0, 1]``.
    light_azimuth: ``[]`` key-light azimuth in the room frame, radians.
    light_elevation: ``[]`` key-light elevation above the floor, radians.
    ambient: ``[]`` ambient light level in ``[0, 1]``.
    noise_std: ``[]`` std of the Gaussian pixel noise added when the renderer
      is given a PRNG key (colour units, e.g. 0.02).
  """
  thickness: jax.Array
  skin: jax.Array
  hair: jax.Array
  shirt: jax.Array
  shirt_front: jax.Array
  trousers: jax.Array
  shoes: jax.Array
  sleeve: jax.Array
  trouser_length: jax.Array
  hair_style: jax.Array
  floor_a: jax.Array
  floor_b: jax.Array
  floor_tile: jax.Array
  wall: jax.Array
  wall_trim: jax.Array
  wall_panel: jax.Array
  texture_seed: jax.Array
  texture_contrast: jax.Array
  light_azimuth: jax.Array
  light_elevation: jax.Array
  ambient: jax.Array
  noise_std: jax.Array


# Shapes of the unbatched leaves, in field order.
_COLOUR_FIELDS = frozenset((
    "skin", "hair", "shirt", "shirt_front", "trousers", "shoes", "floor_a",
    "floor_b", "wall", "wall_trim"))

# Palettes (display RGB) the sampler interpolates between.
_SKIN_TONES = np.array([
    [0.98, 0.84, 0.74], [0.93, 0.74, 0.60], [0.80, 0.60, 0.45],
    [0.62, 0.43, 0.30], [0.45, 0.30, 0.20], [0.30, 0.20, 0.14]], np.float32)
_HAIR_COLOURS = np.array([
    [0.06, 0.05, 0.05], [0.20, 0.12, 0.07], [0.40, 0.26, 0.14],
    [0.75, 0.60, 0.35], [0.60, 0.58, 0.56], [0.45, 0.18, 0.08]], np.float32)
_TROUSER_COLOURS = np.array([
    [0.12, 0.16, 0.30], [0.20, 0.27, 0.45], [0.10, 0.10, 0.11],
    [0.55, 0.48, 0.34], [0.35, 0.35, 0.37], [0.25, 0.20, 0.15]], np.float32)
_SHOE_COLOURS = np.array([
    [0.08, 0.07, 0.07], [0.85, 0.85, 0.85], [0.30, 0.18, 0.10],
    [0.20, 0.22, 0.30]], np.float32)


def _hsv_to_rgb(h, s, v):
  """HSV in ``[0, 1]`` (scalars) to an RGB ``[3]`` array."""
  k = jnp.mod(jnp.array([5.0, 3.0, 1.0]) + h * 6.0, 6.0)
  return v - v * s * jnp.clip(jnp.minimum(k, 4.0 - k), 0.0, 1.0)


def _pick(key, palette, jitter=0.04):
  """A palette row (uniformly chosen) with a little per-channel jitter."""
  k1, k2 = jax.random.split(key)
  row = jnp.asarray(palette)[jax.random.randint(k1, (), 0, palette.shape[0])]
  return jnp.clip(row + jitter * jax.random.normal(k2, (3,)), 0.0, 1.0)


@jax.jit
def _sample_body(key) -> dict:
  ks = jax.random.split(key, 12)
  tone = jax.random.uniform(ks[0], (), minval=0.0,
                            maxval=_SKIN_TONES.shape[0] - 1.0)
  lo = jnp.floor(tone).astype(jnp.int32)
  frac = tone - lo
  skin_tones = jnp.asarray(_SKIN_TONES)
  skin = (1 - frac) * skin_tones[lo] + frac * skin_tones[jnp.minimum(
      lo + 1, _SKIN_TONES.shape[0] - 1)]
  shirt = _hsv_to_rgb(
      jax.random.uniform(ks[1]),
      jax.random.uniform(ks[2], minval=0.15, maxval=0.85),
      jax.random.uniform(ks[3], minval=0.25, maxval=0.95))
  # The collar/logo colour contrasts with the shirt: light on dark, dark on
  # light, in a random hue.
  shirt_lum = jnp.dot(shirt, jnp.array([0.3, 0.59, 0.11]))
  front = _hsv_to_rgb(
      jax.random.uniform(ks[4]), jax.random.uniform(ks[5], maxval=0.6),
      jnp.where(shirt_lum > 0.45, 0.12, 0.95))
  sleeve = jnp.where(jax.random.uniform(ks[6]) < 0.5,
                     jax.random.uniform(ks[7], minval=0.2, maxval=0.4),
                     jax.random.uniform(ks[7], minval=0.85, maxval=1.0))
  trouser_length = jnp.where(jax.random.uniform(ks[8]) < 0.2, 0.45, 1.0)
  # Keep hair and skin apart in brightness: the hair on the back of the head
  # is one of the renderer's front/back cues.
  hair = _pick(ks[10], _HAIR_COLOURS)
  lum = jnp.array([0.3, 0.59, 0.11])
  hair = jnp.where(jnp.abs(jnp.dot(hair - skin, lum)) < 0.2,
                   jnp.where(jnp.dot(skin, lum) > 0.45, 0.45 * hair,
                             jnp.minimum(hair + 0.45, 1.0)), hair)
  return dict(
      thickness=jax.random.uniform(ks[9], minval=0.85, maxval=1.2),
      skin=skin,
      hair=hair,
      shirt=shirt,
      shirt_front=front,
      trousers=_pick(ks[11], _TROUSER_COLOURS),
      shoes=_pick(jax.random.fold_in(ks[11], 1), _SHOE_COLOURS),
      sleeve=sleeve,
      trouser_length=trouser_length,
      hair_style=jax.random.uniform(jax.random.fold_in(ks[10], 1)),
  )


@jax.jit
def _sample_room(key) -> dict:
  ks = jax.random.split(key, 12)
  floor_hue = jax.random.uniform(ks[0])
  floor_a = _hsv_to_rgb(floor_hue, jax.random.uniform(ks[1], maxval=0.35),
                        jax.random.uniform(ks[2], minval=0.35, maxval=0.8))
  floor_b = jnp.clip(
      floor_a * jax.random.uniform(ks[3], minval=0.55, maxval=0.85), 0, 1)
  wall = _hsv_to_rgb(jax.random.uniform(ks[4]),
                     jax.random.uniform(ks[5], maxval=0.3),
                     jax.random.uniform(ks[6], minval=0.2, maxval=0.75))
  return dict(
      floor_a=floor_a,
      floor_b=floor_b,
      floor_tile=jax.random.uniform(ks[7], minval=300.0, maxval=900.0),
      wall=wall,
      wall_trim=jnp.clip(wall * 0.55 + 0.05, 0, 1),
      wall_panel=jax.random.uniform(ks[8], minval=600.0, maxval=1800.0),
      texture_seed=jax.random.uniform(ks[9], maxval=1000.0).round(),
      texture_contrast=jax.random.uniform(ks[10], minval=0.05, maxval=0.35),
      light_azimuth=jax.random.uniform(ks[11], maxval=2 * np.pi),
      light_elevation=jax.random.uniform(
          jax.random.fold_in(ks[11], 1), minval=0.6, maxval=1.3),
      ambient=jax.random.uniform(
          jax.random.fold_in(ks[11], 2), minval=0.3, maxval=0.45),
      noise_std=jax.random.uniform(
          jax.random.fold_in(ks[11], 3), minval=0.005, maxval=0.03),
  )


def _assemble(body: dict, room: dict) -> Appearance:
  fields = {**body, **room}
  return Appearance(**{
      k: jnp.asarray(fields[k], jnp.float32) for k in Appearance._fields})


def sample_appearance(key) -> Appearance:
  """A random person and room (pure, jittable; ``vmap`` over keys for a batch).

  Args:
    key: a ``jax.random`` PRNG key.

  Returns:
    An unbatched ``Appearance``.
  """
  kb, kr = jax.random.split(key)
  return _assemble(_sample_body(kb), _sample_room(kr))


def _name_seed(name: str) -> int:
  # crc32 rather than hash(): Python's str hash is salted per process.
  return zlib.crc32(name.encode("utf-8")) & 0x7FFFFFFF


def subject_appearance(subject_name: str, seed: int = 0) -> Appearance:
  """The fixed look of a named subject (e.g. ``"S9"``) in the room of ``seed``.

  The body (build, skin, hair, clothes) is a deterministic function of
  ``(subject_name, seed)``; the room (floor, walls, light) depends on ``seed``
  only, so all subjects rendered with one seed share one room.

  Args:
    subject_name: any non-empty string.
    seed: integer selecting a dataset version (room and looks).

  Returns:
    An unbatched ``Appearance``.

  Raises:
    ValueError: empty or non-string ``subject_name``.
  """
  if not isinstance(subject_name, str) or not subject_name:
    raise ValueError(
        f"subject_name must be a non-empty string such as 'S1', got "
        f"{subject_name!r}.")
  base = jax.random.PRNGKey(int(seed))
  body = _sample_body(jax.random.fold_in(base, _name_seed(subject_name)))
  room = _sample_room(jax.random.fold_in(base, 0x5EED))
  return _assemble(body, room)


def look_names(subject: str, looks_per_subject: int) -> tuple[str, ...]:
  """The L looks (``subject_appearance`` names) a subject owns: its own,
  ``subject``, then ``"{subject}~1"`` ... ``"{subject}~{L-1}"``."""
  return (subject,) + tuple(f"{subject}~{k}"
                            for k in range(1, int(looks_per_subject)))


def look_name(subject: str, action: str, subaction, looks_per_subject: int
              ) -> str:
  """The look (``subject_appearance`` name) one sequence is filmed in.

  With ``looks_per_subject = L > 1`` a subject owns L outfits and bodies
  (``look_names``); each sequence wears one of them, chosen by a hash of its
  key ``"{subject}/{action}/{subaction}"`` (so every camera and frame of it,
  and the TFDS dataset and the on-device source, agree). ``L = 1``: the
  subject's own look.
  """
  if looks_per_subject <= 1:
    return subject
  k = _name_seed(f"{subject}/{action}/{subaction}") % int(looks_per_subject)
  return look_names(subject, looks_per_subject)[k]


def sequence_look(seq, looks_per_subject: int, train_subjects) -> str:
  """The look of motion sequence ``seq`` (``.subject .action .subaction``):
  ``look_name`` with ``looks_per_subject`` for a training subject, its own
  look for any other (test subjects keep their one look)."""
  return look_name(seq.subject, seq.action, seq.subaction,
                   looks_per_subject if seq.subject in train_subjects else 1)


def check_appearance(appearance: Appearance, name: str = "appearance") -> int:
  """Checks leaf shapes; returns the number of leading batch axes (0 or more).

  Raises:
    ValueError: not an ``Appearance``, or leaves with inconsistent shapes.
  """
  if not isinstance(appearance, Appearance):
    raise ValueError(
        f"{name} must be a data_pipelines.rig.appearance.Appearance (build one "
        f"with sample_appearance or subject_appearance), got "
        f"{type(appearance)}.")
  batch = None
  for field in Appearance._fields:
    shape = tuple(np.shape(getattr(appearance, field)))
    tail = (3,) if field in _COLOUR_FIELDS else ()
    if len(shape) < len(tail) or shape[len(shape) - len(tail):] != tail:
      raise ValueError(
          f"{name}.{field} must have shape [..., {', '.join(map(str, tail))}]"
          f" (trailing), got {shape}.")
    lead = shape[:len(shape) - len(tail)]
    if batch is None:
      batch = lead
    elif lead != batch:
      raise ValueError(
          f"{name} leaves disagree on batch shape: {name}.{field} has leading "
          f"shape {lead}, {name}.thickness has {batch}. Stack whole "
          "Appearances (jax.tree.map(jnp.stack, ...)) or vmap "
          "sample_appearance over keys.")
  return len(batch)
