"""The data layer: find and check image/mask pairs, load them, split them, feed training.

- :mod:`segsweep.data.io` pairs ``DIR/images/*`` with ``DIR/masks/*`` by file stem, reads and
  checks every file, and loads a :class:`~segsweep.data.io.Dataset` of fixed-size arrays
  (decoding in ``io._read``, pairing in ``io._pairs``, resizing in ``io._prepare``).
- :mod:`segsweep.data.synth` writes the built-in phantom lesion set.
- :mod:`segsweep.data.split` splits a dataset into seeded, stratified (optionally grouped)
  training and validation indices; :mod:`segsweep.data.assign` fixes train/validation/test once
  per study.
- :mod:`segsweep.data.geometry` maps a prediction on the model's square back to an image's own
  size, for ``predict``, the champion and the test score alike.
- :mod:`segsweep.data.pipeline` feeds training batches with joint image/mask augmentation
  (Keras preprocessing layers), whole images or native-resolution patches.
- :mod:`segsweep.data.patches` samples those patches and predicts whole images, or images by
  overlapping windows (:func:`~segsweep.data.patches.predict_images`, the one prediction path).

May import: ``errors``, ``config``.

Only :mod:`~segsweep.data.pipeline` imports Keras; the rest stays free of it, so the CLI and
``doctor`` start fast.
"""
