"""One motion type for every motion source, and one ``load`` for them all.

Every motion source of the data pipelines gives ``Motion`` s: who moves
(``subject``), what (``action``, ``subaction``), at which rate (``fps``), where
the 17 joints are (``world_joints [T, 17, 3]`` mm, z-up world, joint order of
``structnet_jax.poses``) and how the Human3.6M rig films them
(``retarget``, ``lift_mm``, ``rig_subject``):

=====================  ===========  ==========  ==================  =========
source                 loader       retarget    lift_mm             rig
=====================  ===========  ==========  ==================  =========
``"procedural"``       procedural   False (on   ``ANKLE_HEIGHT_MM`` subject
                                    its body)   (ankles on z = 0)
exp-map file / folder  h36m         True (one   ``ANKLE_HEIGHT_MM`` subject
                                    skeleton)
positions ``.npz``     positions    False (as   0 (soles on z = 0)  given
                                    given)
=====================  ===========  ==========  ==================  =========

``load`` takes any of them (and the official release, whose videos are
``h36m_release.ReleaseSequence`` s: a ``Take`` with its files, not joints
to render) and returns a list. ``render.synthesize`` and ``sources.device``
film a ``Motion`` by reading these fields; nothing is inferred from its class.

  seqs = load("procedural", subjects=["S1"], actions=["walking"], step=5)
  seqs = load("../shared/data/h36m_expmap_25fps.npz", subjects=["S9"])
  seqs[0].key, seqs[0].world_joints.shape  # "S9/directions/1", (T, 17, 3)
"""

from __future__ import annotations

import dataclasses
import os
from typing import Sequence

import numpy as np

# Height of the ankle joint above the floor (the sole), mm: motion whose
# ankles stand on ``z = 0`` is lifted by it before filming; matches the
# renderer's ``floor_under_pose`` clearance.
ANKLE_HEIGHT_MM = 70.0
# Camera numbers of the Human3.6M rig (1-based, the calibration's order).
CAMERAS: tuple[int, ...] = (1, 2, 3, 4)
PROCEDURAL = "procedural"
KINDS: tuple[str, ...] = ("procedural", "h36m_motion", "positions",
                          "h36m_release")


@dataclasses.dataclass(frozen=True, eq=False)
class Take:
  """Who did what: the name of one recorded (or generated) sequence.

  Attributes:
    subject: e.g. ``"S1"`` (positions files: any name, e.g. ``"P03"``).
    action: e.g. ``"walking"``.
    subaction: the take's number within (subject, action), 1-based for
      Human3.6M and procedural motion.
  """
  subject: str
  action: str
  subaction: int

  @property
  def key(self) -> str:
    """``"{subject}/{action}/{subaction}"``, e.g. ``"S1/walking/1"``."""
    return f"{self.subject}/{self.action}/{self.subaction}"


@dataclasses.dataclass(frozen=True, eq=False)
class Motion(Take):
  """One motion sequence as 17 world joints, and how it is filmed.

  Attributes:
    subject, action, subaction: see ``Take``.
    fps: frames per second of ``world_joints``.
    world_joints: ``[T, 17, 3]`` mm (float32 or float64 as loaded), world
      frame with z up, joint order of ``structnet_jax.poses``.
    frame_indices: ``[T]`` int, the source row of each frame (reported as
      the examples' ``"frame"``); default ``0..T-1``.
    retarget: rescale the bones to the subject's seeded body before filming
      (``synthesize.retarget_joints``): True for motion on a shared
      skeleton (exponential maps), False for motion on its subject's body
      already (procedural) or joint positions rendered as given.
    lift_mm: height added to the joints before filming, mm:
      ``ANKLE_HEIGHT_MM`` for motion whose ankles stand on ``z = 0``, 0 for
      positions whose floor is under the soles.
    rig_subject: the Human3.6M subject whose calibrated cameras film it;
      default ``subject``.
  """
  fps: float
  world_joints: np.ndarray
  frame_indices: np.ndarray | None = None
  retarget: bool = True
  lift_mm: float = ANKLE_HEIGHT_MM
  rig_subject: str | None = None

  def __post_init__(self):
    if self.frame_indices is None:
      object.__setattr__(self, "frame_indices", np.arange(self.num_frames))
    if self.rig_subject is None:
      object.__setattr__(self, "rig_subject", str(self.subject))

  @property
  def num_frames(self) -> int:
    return int(self.world_joints.shape[0])


def is_procedural(source) -> bool:
  """Whether a motion spec names procedural motion (``"procedural"``)."""
  return isinstance(source, str) and source == PROCEDURAL


def kind_of(source: str | os.PathLike) -> str:
  """The kind (``KINDS``) of a motion spec: ``"procedural"``, else
  ``"positions"`` for an ``.npz`` of ``[T, 17, 3]`` joints
  (``position_motion.holds_positions``), else ``"h36m_motion"``
  (exponential maps). The release is never guessed: pass its kind."""
  if is_procedural(source):
    return PROCEDURAL
  # pylint: disable-next=g-import-not-at-top
  from data_pipelines.motion import positions as position_motion
  path = os.path.expanduser(os.fspath(source))
  return "positions" if position_motion.holds_positions(path) else (
      "h36m_motion")


def load(source: str | os.PathLike = PROCEDURAL,
         options: "dataset_options.DatasetOptions | None" = None, *,
         kind: str | None = None,
         subjects: Sequence[str] | None = None,
         step: int = 1,
         skeleton_path: str | os.PathLike | None = None) -> list:
  """Loads (or generates) motion of any source as a list of ``Motion`` s.

  Args:
    source: ``"procedural"``, or the path of a Human3.6M exponential-map
      ``.npz`` / text folder, a joint-positions ``.npz`` or (with
      ``kind="h36m_release"``) the official release's folder.
    options: the ``dataset_options.DatasetOptions`` (checked by the caller;
      default: the defaults) whose motion fields it reads: ``actions`` (None:
      all); procedural ``sequences_per_action``, ``frames_per_sequence``,
      ``fps``, ``seed``, ``body_seed``; positions ``placement``,
      ``random_yaw``, ``seed`` (of the yaws), ``rig_subject`` and
      ``cameras`` (which must see every frame); the release's videos of
      ``cameras``.
    kind: one of ``KINDS``; default ``kind_of(source)``.
    subjects: the subjects to load; None: every subject of the file
      (procedural: the options' train and test subjects).
    step: keep every ``step``-th frame (``frame_indices`` keep the source
      rows; ``fps`` is divided by ``step``). Not applied to the release,
      whose videos are sub-sampled when decoded.
    skeleton_path: exponential maps: ``h36m_skeleton32.json`` (default
      beside the motion).

  Returns:
    ``[Motion, ...]`` in the loader's order (procedural: subject, action,
    subaction; files: sorted by key); the release: ``[ReleaseSequence,
    ...]``, one per (take, camera) video.

  Raises:
    FileNotFoundError / ValueError: from the loader (a missing file, bad
      options, unknown subjects or actions).
  """
  # pylint: disable=g-import-not-at-top
  from data_pipelines import dataset_options
  o = dataset_options.DatasetOptions() if options is None else options
  kind = kind_of(source) if kind is None else kind
  actions = None if o.actions is None else list(o.actions)
  if kind == "procedural":
    from data_pipelines.motion import procedural as procedural_motion
    if subjects is None:
      subjects = tuple(o.train_subjects) + tuple(o.test_subjects or ())
    return procedural_motion.generate_motion(
        list(subjects), actions, sequences_per_action=o.sequences_per_action,
        frames_per_sequence=o.frames_per_sequence, fps=o.fps, seed=o.seed,
        body_seed=o.body_seed, step=step)
  path = os.fspath(source)
  subjects = None if subjects is None else list(subjects)
  if kind == "h36m_motion":
    from data_pipelines.motion import h36m as h36m_motion
    seqs = h36m_motion.load_expmap_motion(path, skeleton_path,
                                          subjects=subjects, step=step)
    return list(h36m_motion.select_actions(seqs, actions, path).values())
  if kind == "positions":
    from data_pipelines.motion import positions as position_motion
    return list(position_motion.load_position_motion(
        path, subjects=subjects, actions=actions, step=step,
        placement=o.placement, random_yaw=o.random_yaw, seed=o.seed,
        cameras=o.cameras, rig_subject=o.rig_subject).values())
  if kind == "h36m_release":
    from data_pipelines.motion import h36m_release
    return h36m_release.find_sequences(path, subjects=subjects,
                                       actions=actions, cameras=o.cameras)
  raise ValueError(f"kind must be one of {KINDS} or None, got {kind!r}.")
