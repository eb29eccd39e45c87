"""Person segmentation with torchvision's COCO Mask R-CNN (ResNet-50 FPN).

``variant="v1"`` is ``maskrcnn_resnet50_fpn`` (the original service's model),
``"v2"`` is ``maskrcnn_resnet50_fpn_v2`` (better masks, a little slower). The weights
file is found through :mod:`models` (``models/`` first, then torch.hub's cache); nothing is
ever downloaded here (``python -m models.download`` does that).

The soft mask is the original's: the per-pixel mask probabilities of every detected person
with score >= ``score_threshold`` (optionally only the ``max_people`` most confident),
summed and clipped to ``[0, 1]``. The network sees the image resized so that its shorter
side is ``inference_size`` (torchvision's own transform; masks are pasted back at the
input size), which is what sets the speed on a CPU.

``half=True`` (CUDA only) runs the backbone, ResNet-50 + FPN and most of the work, under
float16 autocast and hands its features on in float32: the region proposals, boxes and
masks stay float32, because box coordinates need it (float16 steps by 0.5 px between 512
and 1024). Plain autocast over the whole model would not do that: torchvision makes its
anchors in the features' dtype and decodes boxes in the regression's dtype.
"""
from __future__ import annotations

import logging
import threading
from pathlib import Path

import numpy as np

from core.errors import ParameterError
from core.people import People
from core.registry import ModelCache
from core.segmenters import Segmenter

log = logging.getLogger(__name__)

VARIANTS = {"v1": "MASKRCNN_V1", "v2": "MASKRCNN_V2"}
DEFAULT_INFERENCE_SIZE = 480
# torchvision's defaults are 800 / 1333: keep their ratio for the longer side's cap.
MAX_SIZE_RATIO = 1333 / 800
DEFAULT_PROPOSALS = 1000  # torchvision's rpn_post_nms_top_n_test

_MODELS = ModelCache()


def _record(variant: str):
    if variant not in VARIANTS:
        raise ValueError(f"Mask R-CNN variant must be one of {sorted(VARIANTS)}, got {variant!r}")
    from core import weights

    return getattr(weights, VARIANTS[variant])


def build_model(variant: str = "v1", num_classes: int = 91,
                inference_size: int = DEFAULT_INFERENCE_SIZE, score_threshold: float = 0.05,
                proposals: int = DEFAULT_PROPOSALS):
    """The torchvision architecture with no weights (nothing is downloaded), configured
    through the builder's own arguments.

    Args:
        variant: ``"v1"`` or ``"v2"``.
        num_classes: output classes (91 for COCO).
        inference_size: ``min_size`` of torchvision's transform: the shorter side the
            network sees; the longer side is capped at ``MAX_SIZE_RATIO`` times it.
        score_threshold: ``box_score_thresh``: weaker detections are dropped before the
            mask head (torchvision keeps everything above 0.05), which saves its cost.
        proposals: ``rpn_post_nms_top_n_test``, the proposals the heads examine.

    torchvision builds untrained models with ``BatchNorm2d`` where its COCO v1 model uses
    ``FrozenBatchNorm2d`` with eps 0; in eval mode they compute the same thing once eps is
    set to 0, which :func:`load_model` does for v1.
    """
    from torchvision.models.detection import maskrcnn_resnet50_fpn, maskrcnn_resnet50_fpn_v2

    builder = maskrcnn_resnet50_fpn if variant == "v1" else maskrcnn_resnet50_fpn_v2
    return builder(weights=None, weights_backbone=None, num_classes=num_classes,
                   min_size=inference_size, max_size=round(inference_size * MAX_SIZE_RATIO),
                   box_score_thresh=score_threshold, rpn_post_nms_top_n_test=proposals)


def load_model(variant: str, path, device, **config):
    """Build ``variant`` (``config``: :func:`build_model`'s arguments) and load the state
    dict at ``path`` (strict), in eval mode on ``device``.

    Accepts torchvision's files (with or without BatchNorm ``num_batches_tracked``
    counters) and ``{"state_dict" | "model": ...}`` wrappers.

    Raises:
        ValueError: the file does not fit the architecture.
    """
    import torch

    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(checkpoint, dict):
        for key in ("state_dict", "model"):
            if isinstance(checkpoint.get(key), dict):
                checkpoint = checkpoint[key]
                break
    state = {k.removeprefix("module."): v for k, v in checkpoint.items()}
    categories = _record(variant).meta["categories"]
    model = build_model(variant, num_classes=len(categories), **config)
    # Frozen BatchNorm saves no step counters; the BatchNorm2d of an untrained build has them.
    for name, buf in model.state_dict().items():
        if name.endswith("num_batches_tracked") and name not in state:
            state[name] = torch.zeros_like(buf)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise ValueError(f"{path} does not hold Mask R-CNN {variant} weights: "
                         f"{str(exc)[:1000]}") from None
    if variant == "v1":
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.eps = 0.0
    log.info("loaded Mask R-CNN %s weights from %s (%s)", variant, path, config)
    return model.eval().to(device)


def half_backbone(backbone, device_type: str = "cuda"):
    """Wrap a detection backbone so that it runs under float16 autocast on ``device_type``
    (``"cuda"``; ``"cpu"`` works too, slowly, which is how the tests check it) and returns
    its feature maps as float32.

    Args:
        backbone: torchvision's ``BackboneWithFPN`` (``model.backbone``), on its device.
    Returns:
        An ``nn.Module`` with the same ``out_channels``, whose ``forward(images)`` gives the
        backbone's ``OrderedDict`` of ``float32`` ``N x C x h x w`` maps.
    """
    from collections import OrderedDict

    import torch

    class HalfBackbone(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = backbone
            self.out_channels = backbone.out_channels

        def forward(self, images):
            with torch.autocast(device_type, dtype=torch.float16):
                features = self.inner(images)
            return OrderedDict((name, f.float()) for name, f in features.items())

    return HalfBackbone()


def get_model(variant: str, path, device, half: bool = False, **config):
    """The model for (variant, file, device, half, configuration), loaded once per process
    and shared, with a lock that serialises its calls (torch releases the GIL; one inference
    at a time keeps memory bounded)."""
    def load():
        model = load_model(variant, path, device, **config)
        if half:
            model.backbone = half_backbone(model.backbone, str(device).split(":")[0])
        return model, threading.Lock()

    key = (variant, str(Path(path).resolve()), str(device), bool(half),
           tuple(sorted(config.items())))
    return _MODELS.get(key, load)


clear_cache = _MODELS.clear


class MaskRCNNSegmenter(Segmenter):
    """COCO Mask R-CNN person masks.

    Options:
        variant: ``"v1"`` (default) or ``"v2"``.
        weights_path: the ``.pth`` file (default: the record's file in ``models_dir`` or
            torch.hub's cache).
        models_dir: the models folder (default ``$MODELS_DIR`` or ``models/``).
        device: ``"auto"`` (CUDA when available), ``"cpu"`` or ``"cuda"``.
        half: float16 backbone on CUDA (ignored on CPU; see the module docstring).
        score_threshold: minimum detection score of a person, in ``[0, 1]`` (0.6).
        inference_size: shorter side, in pixels, of the image the network sees (480;
            torchvision's own default is 800). Smaller is faster and coarser.
        max_people: keep only this many most confident people; None keeps all.
        proposals: region proposals the box and mask heads examine (torchvision's 1000).
            The heads' cost is proportional and does not shrink with ``inference_size``:
            v2's convolutional box head spends most of its CPU time there, so 300 is a
            sensible CPU setting for photos with a few people.
    Raises (constructor):
        ValueError: a bad option, or a weights file that does not fit.
        FileNotFoundError: no weights file.
    """

    name = "maskrcnn"
    licence = "torchvision weights (BSD-3-Clause code), trained on COCO: COCO's terms apply"

    @classmethod
    def is_available(cls, variant="v1", weights_path=None, models_dir=None,
                     device="auto") -> tuple[bool, str]:
        try:
            import torchvision  # noqa: F401
        except ImportError as exc:
            return False, f"torchvision is not installed ({exc})"
        try:
            record = _record(variant)
        except ValueError as exc:
            return False, str(exc)
        from core.weights import weights_availability
        path = Path(weights_path) if weights_path else record.find(models_dir)
        where = path if weights_path else f"{record.path(models_dir)} or torch.hub's cache"
        flag = "maskrcnn" if variant == "v1" else "maskrcnn_v2"
        ok, why = weights_availability(
            path, f"no Mask R-CNN {variant} weights ({record.filename}) at {where}; "
                  f"get them with 'python -m models.download --only {flag}'", device)
        return ok, (f"Mask R-CNN {variant}, {why}" if ok else why)

    def __init__(self, variant: str = "v1", weights_path=None, models_dir=None,
                 device="auto", half: bool = False, score_threshold: float = 0.6,
                 inference_size: int = DEFAULT_INFERENCE_SIZE, max_people: int | None = None,
                 proposals: int = DEFAULT_PROPOSALS):
        from core.weights import resolve_device

        record = _record(variant)
        if not 0.0 <= float(score_threshold) <= 1.0:
            raise ValueError(f"score_threshold must lie in [0, 1], got {score_threshold}")
        if not 32 <= int(inference_size) <= 4096:
            raise ValueError(f"inference_size must lie in [32, 4096], got {inference_size}")
        self.variant = variant
        self.score_threshold = float(score_threshold)
        self.inference_size = int(inference_size)
        self.max_people = self._check_max_people(max_people)
        if not 1 <= int(proposals) <= 10000:
            raise ValueError(f"proposals must lie in [1, 10000], got {proposals}")
        self.proposals = int(proposals)
        self.device = resolve_device(device)
        self.half = bool(half) and self.device.type == "cuda"
        path = Path(weights_path) if weights_path else record.find(models_dir)
        if path is None or not path.is_file():
            raise FileNotFoundError(f"no Mask R-CNN {variant} weights "
                                    f"({path or record.path(models_dir)})")
        self.weights_path = path
        self.person_label = record.meta["categories"].index("person")
        self.model, self._lock = get_model(variant, path, self.device, self.half,
                                           inference_size=self.inference_size,
                                           score_threshold=self.score_threshold,
                                           proposals=self.proposals)

    @staticmethod
    def _check_max_people(value):
        if value is None:
            return None
        if int(value) < 1:
            raise ParameterError(f"max_people must be a positive whole number, got {value}")
        return int(value)

    def detect(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Every person detection above the threshold, most confident first.

        Args:
            image: ``uint8`` RGB ``H x W x 3``.
        Returns:
            ``(scores, masks)``: ``float32`` ``N`` and ``float32`` ``N x H x W`` in ``[0, 1]``.
        Raises:
            ValueError: not an ``H x W x 3`` ``uint8`` image.
        """
        import torch

        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"image must be uint8 H x W x 3, got {image.dtype} {image.shape}")
        tensor = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)
        tensor = tensor.to(self.device, torch.float32).div_(255.0)
        with self._lock, torch.inference_mode():
            out = self.model([tensor])[0]
        keep = (out["labels"] == self.person_label) & (out["scores"] >= self.score_threshold)
        scores = out["scores"][keep]
        masks = out["masks"][keep, 0]
        order = torch.argsort(scores, descending=True)
        return (scores[order].float().cpu().numpy(),
                masks[order].float().cpu().numpy())

    def segment(self, image: np.ndarray, *, max_people: int | None = None) -> np.ndarray:
        """Soft mask of the people (see :meth:`core.segmenters.Segmenter.segment`).

        Args:
            image: ``uint8`` RGB ``H x W x 3``.
            max_people: keep only this many most confident people in this call (``None``:
                the configured ``max_people``).
        Returns:
            ``float32`` ``H x W`` in ``[0, 1]``; zeros when nobody is found.
        """
        return self.find_people(image, max_people=max_people).mask

    def find_people(self, image: np.ndarray, *, max_people: int | None = None) -> People:
        """Every person detection above the threshold as an instance (the original's soft
        mask is their summed probabilities, clipped to ``[0, 1]``)."""
        limit = self.max_people if max_people is None else self._check_max_people(max_people)
        scores, masks = self.detect(image)
        if limit is not None:
            scores, masks = scores[:limit], masks[:limit]
        log.debug("Mask R-CNN: %d people above %.2f", len(masks), self.score_threshold)
        if len(masks) == 0:
            return People(np.zeros(image.shape[:2], np.float32))
        return People.from_instances(masks, scores)

    def describe(self) -> dict:
        return {**super().describe(), "variant": self.variant, "weights": str(self.weights_path),
                "device": str(self.device), "half": self.half,
                "score_threshold": self.score_threshold,
                "inference_size": self.inference_size, "max_people": self.max_people,
                "proposals": self.proposals}
