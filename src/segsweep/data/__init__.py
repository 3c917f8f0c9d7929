"""The TensorFlow-free data layer: find and check image/mask pairs, load them, split them.

- :mod:`segsweep.data.io` pairs ``DIR/images/*`` with ``DIR/masks/*`` by file stem, reads and
  checks every file, and loads a :class:`~segsweep.data.io.Dataset` of fixed-size arrays
  (decoding in ``io._read``, pairing in ``io._pairs``, resizing in ``io._prepare``).
- :mod:`segsweep.data.synth` writes the built-in phantom lesion set.
- :mod:`segsweep.data.split` splits a dataset into seeded, stratified (optionally grouped)
  training and validation indices.

Nothing here imports TensorFlow, so the CLI and ``doctor`` start fast.
"""
