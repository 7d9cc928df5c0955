"""What a run trains and evaluates on: the source contract and the sources.

* ``core``: the ``Source`` protocol, ``from_config(config)`` and the registry
  ``SOURCES`` (``blobs`` / ``tfds`` / ``render``), the protocol subjects,
  ``POSE_SPACE_FILENAME``;
* ``device``: ``RenderSource``, people rendered and augmented in JAX on the
  device at every step (``data.source=render``);
* ``blobs``: ``BlobSource``, generated image-pose pairs (``data.source=blobs``);
* ``augment``: JAX random crop, PCA colour noise and colour jitter.

The ``tfds`` source (``TfdsSource``) lives in ``data_pipelines.tfds.source``
with the rest of the TensorFlow code; ``core`` imports it only when asked
for. No TensorFlow is imported by this package.
"""
