"""The rig that films a motion: cameras, bodies, kinematics, looks.

* ``cameras``: the Human3.6M cameras (the published calibration, shipped as
  ``h36m_cameras.json``), world -> camera, projection;
* ``body_model``: the kinematic body on the 17 joints that procedural motion
  moves (shapes, joint angles, limits, FK);
* ``kinematics``: Rodrigues, FK over Human3.6M's 32-joint tree, the 32 -> 17
  joint reduction;
* ``appearance``: how a rendered person and the room look (a pytree of
  colours and sizes; fixed looks per subject).

No TensorFlow here.
"""
