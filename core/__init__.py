"""The computer-vision core: plain functions on numpy arrays, free of HTTP.

Array conventions (checked and converted in :mod:`core.images` only):

- image: ``uint8`` RGB, ``H x W x 3``, at the edges; ``float32`` in ``[0, 1]`` inside.
- soft mask / alpha: ``float32`` ``H x W`` in ``[0, 1]``.
- trimap: ``uint8`` ``H x W`` with 0 = sure background, 128 = unknown, 255 = sure
  foreground (see :mod:`core.trimap` for the two-channel FBA form).

Pipeline: ``segmenters`` (image -> soft person mask) -> ``trimap`` (mask -> trimap)
-> ``matters`` (image + trimap -> alpha, foreground) -> ``compositing``.
"""
