"""Tests for data_pipelines.motion.h36m_release on a small fake release tree.

The fixture writes, for subject S9, real CDF pose files (cdflib's writer),
real mp4 videos (PyAV, mpeg4) whose frames are dark with a bright disc at
every projected joint, and a MATLAB v7.3-like (HDF5) ground_truth_bb file.
Expected values come from the calibration JSON through numpy/scipy, not from
``data_pipelines.rig.cameras``. Skipped where the optional packages (av, cdflib,
h5py, pillow) are not installed.
"""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import warnings

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from data_pipelines.motion import h36m_release

# The reader's optional dependencies (the `data` extra, plus h5py).
import av
import cdflib
import h5py
import PIL  # noqa: F401  (crops are resized with pillow)
CDF = cdflib.cdfwrite.CDF

SUBJECT = "S9"
CAMERA_IDS = ("54138969", "55011271", "58860488", "60457274")
SEL = (0, 1, 2, 3, 6, 7, 8, 12, 13, 14, 15, 17, 18, 19, 25, 26, 27)
NUM_FRAMES = 6
DISC_RADIUS = 10
BACKGROUND, BRIGHT = 20, 250
# Pose file -> (action, subaction, video frames); "WalkDog"'s video is shorter
# than its poses, "Directions 1"'s longer.
FILES = {"Directions": ("directions", 1, NUM_FRAMES),
         "Directions 1": ("directions", 2, NUM_FRAMES + 1),
         "WalkDog": ("walkingdog", 1, NUM_FRAMES - 2)}
MASKED = "Directions 1"  # has a ground_truth_bb file for camera 1
MASK_PAD = (60, 40)  # mask box = joints' pixel box grown by this (x, y)


def _calibration():
  path = (pathlib.Path(h36m_release.__file__).parents[1] / "rig"
          / "h36m_cameras.json")
  raw = json.loads(path.read_text())
  cams = []
  for intr, extr in zip(raw["intrinsics"], raw["extrinsics"][SUBJECT]):
    w, x, y, z = extr["orientation_wxyz"]
    cams.append(dict(
        id=intr["id"], rot=Rotation.from_quat([x, y, z, w]).as_matrix(),
        centre=np.array(extr["translation_mm"], np.float64),
        f=np.array(intr["focal_length"]), c=np.array(intr["center"]),
        k=np.array(intr["radial_distortion"]),
        p=np.array(intr["tangential_distortion"]),
        res=(intr["res_w"], intr["res_h"])))
  return cams


CAMS = _calibration()


def _to_camera(world, cam):
  """x_cam = Q^T (x_world - C), Q the camera-to-world rotation."""
  return (world - cam["centre"]) @ cam["rot"]


def _project(points_cam, cam):
  """The Human3.6M toolkit's ProjectPointRadTan, numpy."""
  x = points_cam[..., 0] / points_cam[..., 2]
  y = points_cam[..., 1] / points_cam[..., 2]
  k, p = cam["k"], cam["p"]
  r2 = x * x + y * y
  d = 1 + k[0] * r2 + k[1] * r2 ** 2 + k[2] * r2 ** 3 + p[0] * y + p[1] * x
  xd, yd = x * d + p[1] * r2, y * d + p[0] * r2
  return np.stack([cam["f"][0] * xd + cam["c"][0],
                   cam["f"][1] * yd + cam["c"][1]], -1)


def _world_poses(num_frames, phase=0.0):
  """A standing person (~1.7 m) at the world origin, swaying: [T, 17, 3] mm."""
  body = np.array([
      [0, 0, 900], [-110, 0, 890], [-120, 10, 480], [-120, 0, 80],
      [110, 0, 890], [120, 10, 480], [120, 0, 80], [0, 0, 1130],
      [0, 0, 1380], [0, 60, 1500], [0, 0, 1690], [170, 0, 1370],
      [200, 0, 1100], [220, 30, 860], [-170, 0, 1370], [-200, 0, 1100],
      [-220, 30, 860]], np.float64)
  t = np.arange(num_frames)[:, None, None]
  sway = np.concatenate([80 * np.sin(0.7 * t + phase), 30 * np.cos(0.5 * t),
                         np.zeros_like(t, np.float64)], -1)
  return body[None] + sway


def _write_cdf(path, values, name="Pose"):
  cdf = CDF(str(path), cdf_spec={"Majority": "Row_major"}, delete=True)
  cdf.write_var({"Variable": name, "Data_Type": CDF.CDF_DOUBLE,
                 "Num_Elements": 1, "Rec_Vary": True,
                 "Dim_Sizes": list(values.shape[1:])}, var_data=values)
  cdf.close()


def _pose_cdf(path, world17):
  """32-joint rows: the 17 at their release indices, far-off junk elsewhere."""
  rows = np.full((world17.shape[0], 32, 3), 9000.0)
  rows[:, SEL] = world17
  _write_cdf(path, rows.reshape(1, -1, 96))


def _frame(uv, res):
  w, h = res
  img = np.full((h, w, 3), BACKGROUND, np.uint8)
  for u, v in uv:  # u, v continuous; pixel (c, r) is centred on (c+.5, r+.5)
    c0, r0 = int(u) - DISC_RADIUS - 1, int(v) - DISC_RADIUS - 1
    rr, cc = np.mgrid[r0:r0 + 2 * DISC_RADIUS + 3, c0:c0 + 2 * DISC_RADIUS + 3]
    disc = (cc + 0.5 - u) ** 2 + (rr + 0.5 - v) ** 2 <= DISC_RADIUS ** 2
    img[rr[disc], cc[disc]] = BRIGHT
  return img


def _write_video(path, frames):
  with av.open(str(path), "w") as container:
    stream = container.add_stream("mpeg4", rate=50)
    stream.height, stream.width = frames[0].shape[:2]
    stream.pix_fmt = "yuv420p"
    stream.bit_rate = 20_000_000
    for img in frames:
      for packet in stream.encode(av.VideoFrame.from_ndarray(img, "rgb24")):
        container.mux(packet)
    for packet in stream.encode():
      container.mux(packet)


def _write_masks(path, boxes, res):
  """A v7.3-like .mat: "Masks" [N, 1] references to column-major masks."""
  w, h = res
  with h5py.File(path, "w", userblock_size=512) as f:
    group = f.create_group("#refs#")
    refs = []
    for i, (x0, y0, x1, y1) in enumerate(boxes):
      mask = np.zeros((h, w), np.uint8)
      mask[y0:y1 + 1, x0:x1 + 1] = 1
      refs.append(group.create_dataset(f"m{i}", data=mask.T).ref)
    f.create_dataset("Masks", data=np.array(refs, h5py.ref_dtype)[:, None],
                     dtype=h5py.ref_dtype)


def _mask_boxes(uv):
  """Inclusive integer pixel boxes around each frame's joints, grown."""
  lo = np.floor(uv.min(1)).astype(int) - MASK_PAD
  hi = np.floor(uv.max(1)).astype(int) + MASK_PAD
  return np.concatenate([lo, hi], -1)


@pytest.fixture(scope="module")
def release(tmp_path_factory):
  root = tmp_path_factory.mktemp("h36m")
  pose_dir = root / SUBJECT / "MyPoseFeatures" / "D3_Positions"
  video_dir = root / SUBJECT / "Videos"
  bbox_dir = root / SUBJECT / "MySegmentsMat" / "ground_truth_bb"
  for d in (pose_dir, video_dir, bbox_dir):
    d.mkdir(parents=True)
  world = {}
  for i, (stem, (_, _, video_frames)) in enumerate(FILES.items()):
    world[stem] = _world_poses(NUM_FRAMES, phase=i)
    _pose_cdf(pose_dir / f"{stem}.cdf", world[stem])
    for cam in CAMS:
      uv = _project(_to_camera(world[stem], cam), cam)
      frames = [_frame(uv[min(t, NUM_FRAMES - 1)], cam["res"])
                for t in range(video_frames)]
      _write_video(video_dir / f"{stem}.{cam['id']}.mp4", frames)
      if stem == MASKED and cam["id"] == CAMERA_IDS[0]:
        _write_masks(bbox_dir / f"{stem}.{cam['id']}.mat", _mask_boxes(uv),
                     cam["res"])
  _pose_cdf(pose_dir / "_ALL 1.cdf", world["WalkDog"])  # skipped
  _pose_cdf(pose_dir / "Dancing.cdf", world["WalkDog"])  # unknown: skipped
  return root, world


def _find(root, **kwargs):
  with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    return h36m_release.find_sequences(root, **kwargs)


def _seq(root, stem, camera):
  action, subaction, _ = FILES[stem]
  return _find(root, actions=[action], cameras=[camera])[subaction - 1]


def _examples(seq, **kwargs):
  with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    return list(h36m_release.sequence_examples(seq, **kwargs))


def test_action_names_map_to_the_15_actions():
  cases = {"Directions": "directions", "Directions 1": "directions",
           "Discussion 2": "discussion", "Eating 2": "eating",
           "Greeting 1": "greeting", "Phoning": "phoning",
           "Photo": "takingphoto", "Photo 1": "takingphoto",
           "TakingPhoto 1": "takingphoto", "Posing": "posing",
           "Purchases 1": "purchases", "Sitting 2": "sitting",
           "SittingDown": "sittingdown", "Smoking": "smoking",
           "Waiting 1": "waiting", "WalkDog": "walkingdog",
           "WalkingDog 1": "walkingdog", "Walking": "walking",
           "WalkTogether 1": "walkingtogether",
           "WalkingTogether": "walkingtogether"}
  for stem, want in cases.items():
    assert h36m_release.action_from_filename(stem) == want, stem
  assert set(cases.values()) == set(h36m_release.ACTIONS)
  for stem in ("_ALL", "_ALL 1", "Dancing", ""):
    assert h36m_release.action_from_filename(stem) is None


def test_find_sequences_discovers_and_maps_names(release):
  root, _ = release
  with pytest.warns(UserWarning, match=r"_ALL 1\.cdf.*Dancing\.cdf|Dancing"
                    r"\.cdf.*_ALL 1\.cdf"):
    seqs = h36m_release.find_sequences(root)
  assert len(seqs) == len(FILES) * 4
  got = {(s.action, s.subaction, s.camera) for s in seqs}
  want = {(a, sub, c) for a, sub, _ in FILES.values() for c in (1, 2, 3, 4)}
  assert got == want
  for s in seqs:
    stem = os.path.basename(s.cdf_path)[:-4]
    assert FILES[stem][:2] == (s.action, s.subaction)
    assert s.subject == SUBJECT and s.camera_id == CAMERA_IDS[s.camera - 1]
    assert s.video_path == str(root / SUBJECT / "Videos" /
                               f"{stem}.{s.camera_id}.mp4")
    has_mask = stem == MASKED and s.camera == 1
    assert (s.bbox_path is not None) == has_mask
  assert [s.camera for s in seqs[:4]] == [1, 2, 3, 4]  # sorted
  only = _find(root, subjects=[SUBJECT], actions=["walkingdog"], cameras=(2,))
  assert [(s.action, s.camera, s.camera_id) for s in only] == [
      ("walkingdog", 2, CAMERA_IDS[1])]


def test_load_world_poses_selects_the_17_joints(release):
  root, world = release
  path = root / SUBJECT / "MyPoseFeatures" / "D3_Positions" / "WalkDog.cdf"
  poses = h36m_release.load_world_poses(path)
  assert poses.dtype == np.float32 and poses.shape == (NUM_FRAMES, 17, 3)
  np.testing.assert_allclose(poses, world["WalkDog"], atol=1e-3)


def test_examples_poses_crops_and_bright_joints(release):
  root, world = release
  for camera in (2, 4):
    seq = _seq(root, "Directions", camera)
    cam = CAMS[camera - 1]
    with pytest.warns(UserWarning, match="ground_truth_bb"):
      examples = list(h36m_release.sequence_examples(seq))
    assert [e["frame"] for e in examples] == list(range(NUM_FRAMES))
    cam_pts = _to_camera(world["Directions"], cam)
    uv = _project(cam_pts, cam)
    for e in examples:
      t = e["frame"]
      assert (e["subject"], e["action"], e["subaction"], e["camera"],
              e["camera_id"]) == (SUBJECT, "directions", 1, camera, cam["id"])
      assert e["image"].dtype == np.uint8 and e["image"].shape == (128, 128, 3)
      assert e["pose"].dtype == np.float32 and e["pose"].shape == (17, 3)
      np.testing.assert_allclose(e["pose"], cam_pts[t] - cam_pts[t, :1],
                                 atol=0.05)
      # Fallback box: the joints' box (render.crop_box), margin 0.2.
      lo, hi = uv[t].min(0), uv[t].max(0)
      size = (hi - lo).max() * 1.4
      x0 = (lo + hi) / 2 - size / 2
      np.testing.assert_allclose(e["pose_2d"], (uv[t] - x0) * 128 / size,
                                 atol=0.05)
      _assert_bright_joints(e)


def _assert_bright_joints(example):
  image, pose_2d = example["image"].astype(np.float64), example["pose_2d"]
  assert np.all(pose_2d >= 0) and np.all(pose_2d < 128)
  col, row = np.floor(pose_2d).astype(int).T
  assert np.all(image[row, col].mean(-1) > 150), image[row, col].mean(-1)
  assert np.median(image) < 60  # the rest is dark background


def test_frame_step_and_video_pose_length_mismatch(release):
  root, _ = release
  assert [e["frame"] for e in _examples(_seq(root, "Directions", 3),
                                        frame_step=4)] == [0, 4]
  # The video is 2 frames shorter than its poses: stops at the video's end.
  assert [e["frame"] for e in _examples(_seq(root, "WalkDog", 1),
                                        frame_step=1)] == [0, 1, 2, 3]
  # A video frame longer than its poses: stops at the poses' end.
  short = _examples(_seq(root, "Directions 1", 2), frame_step=2, crop_size=64)
  assert [e["frame"] for e in short] == [0, 2, 4]
  assert short[0]["image"].shape == (64, 64, 3)


def test_mask_boxes_set_the_crop(release):
  root, world = release
  seq = _seq(root, MASKED, 1)
  assert seq.bbox_path is not None
  with warnings.catch_warnings():
    warnings.simplefilter("error")  # no fallback warning
    examples = list(h36m_release.sequence_examples(seq, margin=0.1))
  cam = CAMS[0]
  uv = _project(_to_camera(world[MASKED], cam), cam)
  boxes = _mask_boxes(uv)
  assert [e["frame"] for e in examples] == list(range(NUM_FRAMES))
  for e in examples:
    x0, y0, x1, y1 = boxes[e["frame"]]
    lo, hi = np.array([x0, y0]), np.array([x1, y1]) + 1.0
    size = (hi - lo).max() * 1.2
    corner = (lo + hi) / 2 - size / 2
    np.testing.assert_allclose(
        e["pose_2d"], (uv[e["frame"]] - corner) * 128 / size, atol=0.05)
    _assert_bright_joints(e)


def test_unreadable_mask_file_falls_back_to_joints(release, tmp_path):
  root, world = release
  seq = _seq(root, MASKED, 1)
  bad = tmp_path / "broken.mat"
  bad.write_bytes(b"not an HDF5 file")
  seq = h36m_release.ReleaseSequence(**{**seq.__dict__, "bbox_path": str(bad)})
  with pytest.warns(UserWarning, match="broken.mat.*projected joints"):
    examples = list(h36m_release.sequence_examples(seq, frame_step=3))
  uv = _project(_to_camera(world[MASKED], CAMS[0]), CAMS[0])
  for e in examples:
    lo, hi = uv[e["frame"]].min(0), uv[e["frame"]].max(0)
    size = (hi - lo).max() * 1.4
    np.testing.assert_allclose(
        e["pose_2d"], (uv[e["frame"]] - (lo + hi) / 2 + size / 2) * 128 / size,
        atol=0.05)
    _assert_bright_joints(e)


def test_crop_pads_with_zeros_and_keeps_pixels():
  image = np.arange(16 * 16 * 3, dtype=np.uint8).reshape(16, 16, 3)
  np.testing.assert_array_equal(
      h36m_release.crop_and_resize(image, (0, 0, 16), 16), image)
  np.testing.assert_array_equal(
      h36m_release.crop_and_resize(image, (4, 2, 8), 8), image[2:10, 4:12])
  flat = np.full((20, 20, 3), 200, np.uint8)
  # Crop pixels of 5 x 5 frame pixels; the frame is crop pixels 4..7.
  out = h36m_release.crop_and_resize(flat, (-20, -20, 60), 12).astype(int)
  assert np.all(out[:3] == 0) and np.all(out[:, :3] == 0)
  assert np.all(out[9:] == 0) and np.all(out[:, 9:] == 0)
  assert np.all(np.abs(out[5:7, 5:7] - 200) <= 1)


def test_bad_directories_and_requests(release, tmp_path):
  root, _ = release
  with pytest.raises(FileNotFoundError, match=r"nowhere.*does not exist.*"
                     r"D3_Positions.*vision\.imar\.ro"):
    h36m_release.find_sequences(tmp_path / "nowhere")
  with pytest.raises(FileNotFoundError, match=r"no subject folders"):
    h36m_release.find_sequences(tmp_path)
  with pytest.raises(FileNotFoundError, match=r"S11.*does not exist.*Extract"):
    h36m_release.find_sequences(root, subjects=["S11"])
  with pytest.raises(ValueError, match=r"unknown subject.*'S2'.*S11"):
    h36m_release.find_sequences(root, subjects=["S2"])
  with pytest.raises(ValueError, match=r"unknown camera 5.*1: 54138969"):
    h36m_release.find_sequences(root, cameras=(1, 5))
  with pytest.raises(ValueError, match=r"unknown action.*dancing"):
    h36m_release.find_sequences(root, actions=["dancing"])
  (tmp_path / "S9").mkdir()
  with pytest.raises(FileNotFoundError, match=r"D3_Positions.*does not exist"):
    h36m_release.find_sequences(tmp_path)
  pose_dir = tmp_path / "S9" / "MyPoseFeatures" / "D3_Positions"
  pose_dir.mkdir(parents=True)
  shutil.copy(root / "S9" / "MyPoseFeatures" / "D3_Positions" / "WalkDog.cdf",
              pose_dir / "Walking 1.cdf")
  with pytest.raises(FileNotFoundError,
                     match=r"Walking 1\.54138969\.mp4.*missing.*Videos"):
    h36m_release.find_sequences(tmp_path)
  seq = _seq(root, "Directions", 1)
  gone = h36m_release.ReleaseSequence(
      **{**seq.__dict__, "video_path": str(tmp_path / "gone.mp4")})
  with pytest.raises(FileNotFoundError, match=r"gone\.mp4.*Videos"):
    h36m_release.sequence_examples(gone)
  with pytest.raises(ValueError, match="frame_step"):
    h36m_release.sequence_examples(seq, frame_step=0)
  with pytest.raises(ValueError, match="margin"):
    h36m_release.sequence_examples(seq, margin=-0.1)


def test_bad_pose_files(tmp_path):
  with pytest.raises(FileNotFoundError, match=r"absent\.cdf.*D3_Positions"):
    h36m_release.load_world_poses(tmp_path / "absent.cdf")
  garbage = tmp_path / "garbage.cdf"
  garbage.write_bytes(b"garbage" * 20)
  with pytest.raises(ValueError, match=r"garbage\.cdf.*not a readable CDF"):
    h36m_release.load_world_poses(garbage)
  _write_cdf(tmp_path / "other.cdf", np.zeros((1, 3, 96)), name="Angles")
  with pytest.raises(ValueError, match=r"other\.cdf.*no variable 'Pose'.*"
                     r"Angles"):
    h36m_release.load_world_poses(tmp_path / "other.cdf")
  _write_cdf(tmp_path / "d2.cdf", np.zeros((1, 3, 64)))
  with pytest.raises(ValueError, match=r"d2\.cdf.*\(1, 3, 64\).*96.*D2_Pos"):
    h36m_release.load_world_poses(tmp_path / "d2.cdf")
  values = np.ones((1, 4, 96))
  values[0, 2, 5] = np.nan
  _write_cdf(tmp_path / "nan.cdf", values)
  with pytest.raises(ValueError, match=r"nan\.cdf.*1 frame\(s\) with NaN.*"
                     r"\[2\]"):
    h36m_release.load_world_poses(tmp_path / "nan.cdf")
  assert cdflib.CDF(str(tmp_path / "nan.cdf")).varget("Pose").shape == (
      1, 4, 96)


def test_resized_video_is_refused(release, tmp_path):
  root, _ = release
  seq = _seq(root, "WalkDog", 1)
  small = tmp_path / "small.mp4"
  _write_video(small, [np.zeros((64, 64, 3), np.uint8)] * 2)
  seq = h36m_release.ReleaseSequence(**{**seq.__dict__,
                                        "video_path": str(small)})
  with pytest.raises(ValueError, match=r"small\.mp4.*64 x 64.*1000 x 1002"):
    _examples(seq)
