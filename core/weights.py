"""Weight files the optional model backends use, described as data (as torchvision's
``Weights`` records are).

Users put the files in the repository's ``models/`` folder (``*.pth`` is git-ignored; see
``models/README.md``) or fetch them with ``python -m models.download``. Each file is
described by a :class:`WeightsRecord`:

- :data:`FBA`: ``FBA.pth``, FBA Matting by its authors (non-commercial licence).
- ``MASKRCNN_V1`` / ``MASKRCNN_V2``: torchvision's COCO Mask R-CNN ResNet-50 FPN weights
  (the original model and the improved "v2"). Their file names, URLs and sizes are read
  from torchvision's own ``Weights`` enums when first accessed, so importing this package
  needs neither torch nor torchvision.
- :data:`U2NET_HUMAN_SEG` / :data:`BIREFNET_PORTRAIT`: rembg's ONNX person models for the
  ``onnx`` segmentation backend, with rembg's MD5s and each model's preprocessing in
  ``meta`` (:data:`ONNX_PERSON` holds both). Not downloaded unless asked for.

The folder is ``$MODELS_DIR`` when set, else the repository's ``models/``.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from core.errors import ConfigError

log = logging.getLogger(__name__)

DEFAULT_MODELS_DIR = Path(__file__).resolve().parents[1] / "models"
FBA_LICENCE = ("non-commercial use only: trained on the Adobe Deep Image Matting dataset, "
               "covered by its licence agreement")
TORCHVISION_LICENCE = ("torchvision pretrained weights (BSD-3-Clause code); trained on COCO "
                       "2017, whose terms of use also apply")
REMBG_RELEASE = "https://github.com/danielgatis/rembg/releases/download/v0.0.0/"


def models_dir(override=None) -> Path:
    """The folder weight files live in: ``override``, else ``$MODELS_DIR``, else ``models/``."""
    if override:
        return Path(override).expanduser()
    env = os.environ.get("MODELS_DIR")
    return Path(env).expanduser() if env else DEFAULT_MODELS_DIR


def rembg_home() -> Path:
    """rembg's model folder, where ``rembg`` downloads to: ``$U2NET_HOME``, else
    ``$XDG_DATA_HOME/.u2net``, else ``~/.u2net`` (as rembg's ``BaseSession.u2net_home``)."""
    home = os.environ.get("U2NET_HOME") or os.path.join(os.environ.get("XDG_DATA_HOME", "~"),
                                                        ".u2net")
    return Path(home).expanduser()


def torch_hub_checkpoints() -> Path | None:
    """torch.hub's download cache (``$TORCH_HOME/hub/checkpoints``), or None without torch."""
    try:
        import torch
    except ImportError:
        return None
    return Path(torch.hub.get_dir()) / "checkpoints"


@dataclass(frozen=True)
class WeightsRecord:
    """One weights file: where it comes from, what it is, and where we look for it.

    Attributes:
        name: short name, as used by ``python -m models.download --only NAME``.
        filename: the file's name in the models folder (and in torch.hub's cache).
        url: where to download it (for FBA, the authors' Google Drive link).
        sha256: full SHA-256 of the file, or None when its publisher gives none (torchvision
            files carry a hash prefix in their name, checked on download instead).
        size_mb: approximate size in MB (10^6 bytes).
        licence: the terms, in a sentence.
        description: what the model does.
        torchvision: also look in torch.hub's cache, where torchvision downloads to.
        md5: full MD5 of the file, where that is what its publisher gives (rembg), else None.
        rembg: also look in rembg's model folder (:func:`rembg_home`), where rembg keeps
            the same file under the same name.
        meta: extra facts (for torchvision weights, their ``meta``: categories...; for ONNX
            person models, their preprocessing: see :data:`U2NET_HUMAN_SEG`).
    """

    name: str
    filename: str
    url: str
    sha256: str | None
    size_mb: float
    licence: str
    description: str
    torchvision: bool = False
    md5: str | None = None
    rembg: bool = False
    meta: dict = field(default_factory=dict, compare=False, hash=False, repr=False)

    def path(self, models_dir_override=None) -> Path:
        """Where the file goes in the models folder (it may not exist)."""
        return models_dir(models_dir_override) / self.filename

    def find(self, models_dir=None) -> Path | None:
        """The first existing copy: the models folder, then (torchvision weights) torch.hub's
        cache or (rembg's models) rembg's folder. Returns None when there is none."""
        candidates = [self.path(models_dir)]
        if self.torchvision:
            hub = torch_hub_checkpoints()
            if hub is not None:
                candidates.append(hub / self.filename)
        if self.rembg:
            candidates.append(rembg_home() / self.filename)
        for candidate in candidates:
            if candidate.is_file():
                return candidate
        return None

    def describe(self) -> str:
        return f"{self.name}: {self.filename} (~{self.size_mb:.0f} MB), {self.licence}"


FBA = WeightsRecord(
    name="fba",
    filename="FBA.pth",
    url="https://drive.google.com/file/d/1T_oiKDE_biWf2kqexMEN7ObWqtXAzbB1/view?usp=sharing",
    sha256=None,  # the authors publish none; download.py prints the file's for pinning
    size_mb=139,
    licence=FBA_LICENCE,
    description="FBA Matting (Forte and Pitie 2020), ResNet-50 GN+WS, trained on Adobe "
                "Composition-1K: alpha, foreground and background from image + trimap",
)
FBA_DRIVE_ID = "1T_oiKDE_biWf2kqexMEN7ObWqtXAzbB1"

# rembg's ONNX person models (https://github.com/danielgatis/rembg, MIT). URLs, MD5s and
# preprocessing as in rembg's rembg/sessions/u2net_human_seg.py, birefnet_general.py and
# birefnet_portrait.py, and BaseSession.normalize in sessions/base.py: the image resized
# to input_size x input_size with PIL's LANCZOS, divided by its own maximum (not by 255),
# then (x - mean) / std per RGB channel, as 1 x 3 x S x S float32 for the first input;
# the mask is channel 0 of the first output, through a sigmoid where the network gives
# logits, stretched to [0, 1] (min-max) and resized back with LANCZOS.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
U2NET_HUMAN_SEG = WeightsRecord(
    name="u2net_human_seg",
    filename="u2net_human_seg.onnx",
    url=REMBG_RELEASE + "u2net_human_seg.onnx",
    sha256=None,  # rembg publishes an MD5; download.py prints the SHA-256 for pinning
    md5="c09ddc2e0104f800e3e1bb4652583d1f",
    size_mb=176,
    licence="Apache-2.0 (U-2-Net code and weights by Xuebin Qin et al.; trained on the "
            "Supervisely Person dataset, whose terms may also apply); rembg's export (MIT)",
    description="U^2-Net (Qin et al. 2020, Pattern Recognition) trained for human "
                "segmentation, as rembg's u2net_human_seg: one soft mask of all people",
    rembg=True,
    meta={"input_size": 320, "resize": "lanczos", "scale": "max", "mean": IMAGENET_MEAN,
          "std": IMAGENET_STD, "sigmoid": False,  # the network ends in a sigmoid
          "min_max": True, "architecture": "U2-Net",
          "source": "https://github.com/xuebinqin/U-2-Net",
          "rembg_session": "rembg/sessions/u2net_human_seg.py"},
)
BIREFNET_PORTRAIT = WeightsRecord(
    name="birefnet-portrait",
    filename="birefnet-portrait.onnx",
    url=REMBG_RELEASE + "BiRefNet-portrait-epoch_150.onnx",
    sha256=None,  # as above
    md5="c3a64a6abf20250d090cd055f12a3b67",
    size_mb=973,
    licence="MIT (BiRefNet code and weights by Peng Zheng et al.); rembg's export (MIT)",
    description="BiRefNet (Zheng et al. 2024, CAAI Artificial Intelligence Research) "
                "portrait weights, epoch 150, as rembg's birefnet-portrait: one soft mask "
                "of the people; slow on a CPU (1024 x 1024 input)",
    rembg=True,
    meta={"input_size": 1024, "resize": "lanczos", "scale": "max", "mean": IMAGENET_MEAN,
          "std": IMAGENET_STD, "sigmoid": True,  # the network gives logits
          "min_max": True, "architecture": "BiRefNet",
          "source": "https://github.com/ZhengPeng7/BiRefNet",
          "rembg_session": "rembg/sessions/birefnet_portrait.py (birefnet_general.py)"},
)
ONNX_PERSON = {r.name: r for r in (U2NET_HUMAN_SEG, BIREFNET_PORTRAIT)}

# name -> (torchvision builder, weights enum class name, enum member)
_TORCHVISION = {
    "MASKRCNN_V1": ("maskrcnn", "maskrcnn_resnet50_fpn", "MaskRCNN_ResNet50_FPN_Weights",
                    "COCO_V1", "Mask R-CNN ResNet-50 FPN (the original, v1), COCO"),
    "MASKRCNN_V2": ("maskrcnn_v2", "maskrcnn_resnet50_fpn_v2",
                    "MaskRCNN_ResNet50_FPN_V2_Weights", "COCO_V1",
                    "Mask R-CNN ResNet-50 FPN v2 (improved recipe), COCO"),
}
_cache: dict[str, WeightsRecord] = {}


def torchvision_weights(record_name: str):
    """The torchvision ``Weights`` enum member behind ``MASKRCNN_V1`` / ``MASKRCNN_V2``."""
    from torchvision.models import detection

    _, _, enum_name, member, _ = _TORCHVISION[record_name]
    return getattr(getattr(detection, enum_name), member)


def _torchvision_record(record_name: str) -> WeightsRecord:
    name, builder, _, _, description = _TORCHVISION[record_name]
    weights = torchvision_weights(record_name)
    return WeightsRecord(
        name=name,
        filename=weights.url.rsplit("/", 1)[-1],
        url=weights.url,
        sha256=None,
        size_mb=float(weights.meta.get("_file_size", 0.0)),
        licence=TORCHVISION_LICENCE,
        description=f"{description} (torchvision.models.detection.{builder})",
        torchvision=True,
        meta=dict(weights.meta, builder=builder, weights=str(weights)),
    )


def __getattr__(attr: str):
    """``MASKRCNN_V1`` / ``MASKRCNN_V2``, built from torchvision on first access."""
    if attr in _TORCHVISION:
        if attr not in _cache:
            _cache[attr] = _torchvision_record(attr)
        return _cache[attr]
    raise AttributeError(f"module {__name__!r} has no attribute {attr!r}")


def record(name: str) -> WeightsRecord:
    """A record by its short name (:data:`RECORD_NAMES`: ``fba``, ``maskrcnn``,
    ``maskrcnn_v2``, ``u2net_human_seg``, ``birefnet-portrait``).

    Raises:
        KeyError: unknown name (the message lists the known ones).
    """
    if name == FBA.name:
        return FBA
    if name in ONNX_PERSON:
        return ONNX_PERSON[name]
    for attr, spec in _TORCHVISION.items():
        if spec[0] == name:
            return __getattr__(attr)
    raise KeyError(f"unknown weights {name!r}; known: {RECORD_NAMES}")


RECORD_NAMES = (FBA.name, *(spec[0] for spec in _TORCHVISION.values()), *ONNX_PERSON)


def resolve_device(device="auto"):
    """``"auto"`` -> CUDA when available else CPU; ``"cpu"``, ``"cuda"``, ``"cuda:N"`` as is.

    Returns:
        ``torch.device``.
    Raises:
        ConfigError: an unknown name, or CUDA asked for where there is none.
    """
    import torch

    name = str(device or "auto").lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"unknown device {device!r}; use auto, cpu or cuda") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {device!r} asked for, but CUDA is not available here")
    if dev.type not in ("cpu", "cuda"):
        raise ConfigError(f"unsupported device {device!r}; use auto, cpu or cuda")
    return dev


def weights_availability(path, missing: str, device="auto") -> tuple[bool, str]:
    """What a backend's ``is_available`` answers: ``(False, missing)`` when ``path`` is not
    a file, ``(False, why)`` for an unusable ``device``, else ``(True, "weights PATH, DEVICE")``."""
    if path is None or not Path(path).is_file():
        return False, missing
    try:
        dev = resolve_device(device)
    except ConfigError as exc:
        return False, str(exc)
    return True, f"weights {path}, {dev}"
