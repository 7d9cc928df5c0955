"""The TensorFlow side: the only package that imports TensorFlow / TFDS.

* ``builder``: the TFDS dataset ``structnet_h36m`` (procedural /
  h36m_motion / positions / h36m_release), its resumable render cache, the
  pose space and RGB statistics stored with it;
* ``input_pipeline``: the tf.data train / eval pipelines, the step-indexed
  ``batch_fn``, device placement (TensorFlow imported on first use);
* ``source``: ``TfdsSource``, the source over a built dataset
  (``data.source=tfds``).
"""
