"""The data side of structnet-jax, one folder a layer (WORKSPACE.md, Layout).

* ``motion/``: the one motion type (``motion.core.Motion``, ``load``) and the
  motion sources (procedural, Human3.6M exp-map, joint positions, release);
* ``rig/``: cameras, the kinematic body, FK, appearance;
* ``render/``: the JAX ray caster and motion -> examples through the cameras;
* ``sources/``: the source contract and registry (``sources.core``), the
  on-device render source, the blobs source, augmentation;
* ``tfds/``: the only TensorFlow code: the TFDS builder, the tf.data pipeline,
  the TFDS source;
* ``checks``, ``dataset_options``: argument checks and the dataset options,
  used across the layers.
"""
