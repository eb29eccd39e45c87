"""FBA Matting backend: image + trimap -> alpha and predicted foreground colours.

Needs the authors' ``FBA.pth`` (non-commercial licence; see ``models/README.md``) in
``models/`` or at ``weights_path``. The pipeline is the authors' reference one, step for
step (:func:`fba_predict`), so the published weights give the published results:

1. image and two-channel trimap are resized to the next multiple of 8 with Lanczos-4;
2. the resized trimap is encoded as 6 Gaussian maps of its distance transforms
   (:func:`encode_trimap`) and the image ImageNet-normalised (inside the network);
3. the 7 output channels (alpha, F, B) are resized back with bilinear interpolation (the
   authors' ``cv2.resize(out, (w, h), cv2.INTER_LANCZOS4)`` passes the flag where OpenCV
   expects ``dst``, so their resize back is OpenCV's default, bilinear; the numerical
   reference confirms it);
4. alpha is set to 0 / 1 on the sure regions, F to the image where alpha is 1 and B to
   the image where alpha is 0.

Large images: an image whose longer side exceeds ``max_size`` is matted at that size
(image area-downscaled; a pixel stays sure in the small trimap only if every pixel it
covers was sure), alpha / F / B are upsampled bilinearly to full size, and the full-size
trimap's sure regions are imposed exactly. Fine hair loses some detail that way. The
default, ``"auto"``, is :data:`DEFAULT_MAX_SIZE` for the device: 1280 on CPU (FBA costs
1.2 TFLOP at 1280x720, over 10 s on two cores, and 2.7 TFLOP at 1920x1080; see
``models/README.md``), 2048 on CUDA (the authors quote 11 GB of GPU memory
around 2000 px). ``None`` or 0 always runs at full size.
"""
from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np

from core.matters import Matter
from core.registry import ModelCache
from core.trimap import (
    BACKGROUND,
    FOREGROUND,
    UNKNOWN,
    from_two_channel,
    impose_sure_regions,
    to_two_channel,
)

log = logging.getLogger(__name__)

DEFAULT_MAX_SIZE = {"cpu": 1280, "cuda": 2048}
TRIMAP_SCALE = 320  # the ``L`` of the distance encoding: sigmas 0.02 L, 0.08 L, 0.16 L
SIGMAS = tuple(f * TRIMAP_SCALE for f in (0.02, 0.08, 0.16))

_NETS = ModelCache()


def encode_trimap(trimap2: np.ndarray) -> np.ndarray:
    """FBA's trimap distance encoding.

    For each channel k (0 = background, 1 = foreground): d = Euclidean distance to the
    nearest pixel of that region, then exp(-d^2 / (2 s^2)) for the three sigmas.

    Args:
        trimap2: ``float`` ``H x W x 2``, nominally 0 / 1; after a Lanczos resize it rings
            a little outside ``[0, 1]``. As in the reference, ``(1 - t) * 255`` is truncated
            to an integer and wrapped to ``uint8`` (so an overshoot above 1 reads as "not in
            the region"); this is what the published network was run with.
    Returns:
        ``float32`` ``6 x H x W`` in ``(0, 1]``, ordered k0 s1, k0 s2, k0 s3, k1 s1, k1 s2, k1 s3.
    """
    if trimap2.ndim != 3 or trimap2.shape[2] != 2:
        raise ValueError(f"two-channel trimap must be H x W x 2, got shape {trimap2.shape}")
    maps = []
    for k in range(2):
        outside = ((1.0 - trimap2[:, :, k].astype(np.float64)) * 255.0).astype(np.int32)
        dist = cv2.distanceTransform(outside.astype(np.uint8), cv2.DIST_L2, 0)
        d2 = -(dist.astype(np.float64) ** 2)
        maps += [np.exp(d2 / (2.0 * s * s)) for s in SIGMAS]
    return np.stack(maps).astype(np.float32)


def resize_to_multiple_of_8(x: np.ndarray) -> np.ndarray:
    """Lanczos-4 resize of ``H x W (x C)`` to the next multiple of 8 in each dimension."""
    h, w = x.shape[:2]
    h8, w8 = -(-h // 8) * 8, -(-w // 8) * 8
    if (h8, w8) == (h, w):
        return x
    return cv2.resize(x, (w8, h8), interpolation=cv2.INTER_LANCZOS4)


def _resize_channels(x: np.ndarray, size: tuple[int, int], interpolation) -> np.ndarray:
    """cv2.resize for any number of channels (OpenCV caps some paths at 4)."""
    w, h = size
    if x.ndim == 2 or x.shape[2] <= 4:
        return cv2.resize(x, (w, h), interpolation=interpolation)
    return np.dstack([cv2.resize(x[:, :, i:i + 4], (w, h), interpolation=interpolation)
                      for i in range(0, x.shape[2], 4)])


def run_network(net, image8: np.ndarray, trimap8: np.ndarray, trimap_enc: np.ndarray,
                device=None) -> np.ndarray:
    """Run :class:`~core.matters.fba_net.FBANet` on prepared inputs.

    The inputs go to ``device`` in float32 whatever the network's dtype: a half network
    casts them itself and fuses alpha, F and B with the float32 image.

    Args:
        image8: ``float`` ``H x W x 3`` in ``[0, 1]``; trimap8: ``H x W x 2``; trimap_enc:
            ``6 x H x W``; H and W multiples of 8.
        device: where ``net`` lives (default: its parameters' device).
    Returns:
        ``float32`` ``7 x H x W`` (a numpy array in host memory): alpha, F (3), B (3).
    """
    import torch

    if device is None:
        device = next(net.parameters()).device

    def tensor(a, chw):
        a = np.ascontiguousarray(a.transpose(2, 0, 1) if chw else a, dtype=np.float32)
        return torch.from_numpy(a)[None].to(device)

    with torch.inference_mode():
        out = net(tensor(image8, True), tensor(trimap8, True), tensor(trimap_enc, False))
    return out[0].float().cpu().numpy()


def fba_predict(net, image: np.ndarray, trimap2: np.ndarray, device=None
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The authors' reference pipeline at the image's own size (see the module docstring).

    Args:
        net: a loaded :class:`~core.matters.fba_net.FBANet` (eval mode; float32, or
            ``.half()`` on CUDA).
        image: ``float`` RGB ``H x W x 3`` in ``[0, 1]``.
        trimap2: ``float`` ``H x W x 2``, channel 0 = sure background, 1 = sure foreground
            (0 / 1 values).
    Returns:
        ``(alpha, fg, bg)``: ``float32`` ``H x W``, ``H x W x 3``, ``H x W x 3`` in ``[0, 1]``.
    """
    h, w = image.shape[:2]
    image8 = resize_to_multiple_of_8(image)
    trimap8 = resize_to_multiple_of_8(trimap2)
    out = run_network(net, image8, trimap8, encode_trimap(trimap8), device)
    out = _resize_channels(out.transpose(1, 2, 0), (w, h), cv2.INTER_LINEAR)
    alpha = impose_sure_regions(np.clip(out[:, :, 0], 0, 1), from_two_channel(trimap2))
    fg = np.clip(out[:, :, 1:4], 0, 1)
    bg = np.clip(out[:, :, 4:7], 0, 1)
    fg[alpha == 1] = image[alpha == 1]
    bg[alpha == 0] = image[alpha == 0]
    return alpha.astype(np.float32), fg.astype(np.float32), bg.astype(np.float32)


def _shrink_trimap(trimap: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Area-downscale a uint8 trimap; a pixel stays sure only if all it covers was sure."""
    two = cv2.resize(to_two_channel(trimap), size, interpolation=cv2.INTER_AREA)
    small = np.full(two.shape[:2], UNKNOWN, dtype=np.uint8)
    small[two[:, :, 0] >= 0.999] = BACKGROUND
    small[two[:, :, 1] >= 0.999] = FOREGROUND
    return small


def resolve_weights(weights_path=None, models_dir=None) -> Path | None:
    """The FBA weights file to use: ``weights_path`` if given, else the record's file."""
    if weights_path:
        return Path(weights_path)
    from core.weights import FBA
    return FBA.find(models_dir)


def get_net(path: Path, device: str, half: bool = False):
    """The network for ``path`` on ``device``, loaded once per process and then shared."""
    from core.matters.fba_net import load_fba

    def load():
        net = load_fba(path, device)
        return net.half() if half else net

    return _NETS.get((str(Path(path).resolve()), str(device), bool(half)), load)


clear_cache = _NETS.clear


class FBAMatter(Matter):
    """FBA Matting (Forte and Pitié 2020): alpha plus its own foreground colours.

    Options:
        weights_path: the ``.pth`` file (default: ``FBA.pth`` in the models folder).
        models_dir: the models folder (default: ``$MODELS_DIR`` or the repo's ``models/``).
        device: ``"auto"`` (CUDA when available), ``"cpu"`` or ``"cuda"``.
        half: half precision on CUDA (ignored on CPU).
        max_size: longest side to run the network at; larger images are matted at this size
            and upsampled (see the module docstring). ``"auto"`` (default):
            :data:`DEFAULT_MAX_SIZE` for the device; ``None`` or 0: always full size.
    Raises (constructor):
        FileNotFoundError, ValueError: missing or wrong weights file (see :func:`load_fba`).
    """

    name = "fba"
    licence = "FBA.pth: non-commercial use only (Adobe Deep Image Matting data); code MIT"

    @classmethod
    def is_available(cls, weights_path=None, models_dir=None,
                     device="auto") -> tuple[bool, str]:
        try:
            import torch  # noqa: F401
        except ImportError:
            return False, "PyTorch is not installed (pip install -r requirements-matting.txt)"
        from core.weights import FBA, weights_availability
        path = resolve_weights(weights_path, models_dir)
        where = path if weights_path else FBA.path(models_dir)
        return weights_availability(path, f"no FBA weights at {where}; get {FBA.filename} with "
                                    f"'python -m models.download --only fba' ({FBA.licence})",
                                    device)

    def __init__(self, weights_path=None, models_dir=None, device="auto", half=False,
                 max_size: int | str | None = "auto"):
        from core.weights import FBA, resolve_device

        path = resolve_weights(weights_path, models_dir)
        if path is None:
            raise FileNotFoundError(f"no FBA weights at {FBA.path(models_dir)}")
        self.device = resolve_device(device)
        self.half = bool(half) and self.device.type == "cuda"
        if max_size == "auto":
            max_size = DEFAULT_MAX_SIZE[self.device.type]
        try:
            max_size = int(max_size or 0)
        except (TypeError, ValueError):
            raise ValueError(f"max_size must be 'auto', a number of pixels or 0/None, "
                             f"got {max_size!r}") from None
        if max_size < 0 or 0 < max_size < 16:
            raise ValueError(f"max_size must be 0 (no cap) or at least 16, got {max_size}")
        self.max_size = max_size or None
        self.weights_path = path
        self.net = get_net(path, str(self.device), self.half)

    def predict(self, image: np.ndarray, trimap: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Alpha, foreground and background, honouring ``max_size``.

        Args:
            image: ``float32`` RGB ``H x W x 3`` in ``[0, 1]``.
            trimap: ``uint8`` ``H x W`` (0 / 128 / 255).
        Returns:
            ``(alpha, fg, bg)``: ``float32`` ``H x W``, ``H x W x 3``, ``H x W x 3`` in
            ``[0, 1]``; alpha exactly 0 / 1 on the sure regions.
        Raises:
            ValueError: wrong shapes.
        """
        if image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"image must be H x W x 3, got shape {image.shape}")
        if trimap.shape != image.shape[:2]:
            raise ValueError(f"trimap shape {trimap.shape} does not match image "
                             f"{image.shape[:2]}")
        image = image.astype(np.float32, copy=False)
        h, w = trimap.shape
        scale = 1.0
        if self.max_size and max(h, w) > self.max_size:
            scale = self.max_size / max(h, w)
        if scale == 1.0:
            return fba_predict(self.net, image, to_two_channel(trimap), self.device)
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        log.debug("FBA: %dx%d above max_size %d, running at %dx%d", w, h, self.max_size, *size)
        small_image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
        small_trimap = _shrink_trimap(trimap, size)
        alpha, fg, bg = fba_predict(self.net, small_image, to_two_channel(small_trimap),
                                    self.device)
        alpha = np.clip(cv2.resize(alpha, (w, h), interpolation=cv2.INTER_LINEAR), 0, 1)
        fg = np.clip(cv2.resize(fg, (w, h), interpolation=cv2.INTER_LINEAR), 0, 1)
        bg = np.clip(cv2.resize(bg, (w, h), interpolation=cv2.INTER_LINEAR), 0, 1)
        impose_sure_regions(alpha, trimap)
        fg[alpha == 1] = image[alpha == 1]
        bg[alpha == 0] = image[alpha == 0]
        return alpha, fg, bg

    def matte(self, image: np.ndarray, trimap: np.ndarray,
              prior: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """See :meth:`core.matters.Matter.matte`; the foreground is FBA's own prediction
        (``F'`` after the fusion step), equal to the image where alpha is 1. ``prior`` is
        not used: FBA reads the person from the image and trimap itself."""
        alpha, fg, _ = self.predict(image, trimap)
        return alpha, fg

    def describe(self) -> dict:
        return {**super().describe(), "weights": str(self.weights_path),
                "device": str(self.device), "half": self.half, "max_size": self.max_size}
