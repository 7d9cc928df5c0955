"""Image synthesis: from joints to pictures of a person.

* ``core``: the JAX ray caster (body primitives from 17 joints, shading,
  crops around the person; one algorithm, kept whole);
* ``synthesize``: motion -> example dicts through the 4 cameras (filmed
  world joints, camera-frame poses, 2D joints, rendered crops).

No TensorFlow here.
"""
