"""Motion sources: the one motion type and where motion comes from.

* ``core``: ``Take`` / ``Motion`` (world joints ``[T, 17, 3]`` mm, z up, and
  how the rig films them) and ``load(source, kind=None, ...)``, which loads
  any of the sources below as a list of ``Motion``;
* ``procedural``: procedural actions on the kinematic body (``rig.body_model``);
* ``h36m``: Human3.6M exponential-map motion (FK over the 32-joint tree);
* ``positions``: any 17-joint position sequences (``.npz``), placed in the
  capture volume;
* ``h36m_release``: the official Human3.6M release (CDF poses, videos, boxes);
* ``npz_files``: opens motion / cache ``.npz`` archives with clear errors.

No TensorFlow here (``data_pipelines.tfds`` is the only package that uses it).
"""
