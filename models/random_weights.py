"""Weight files of random numbers in the published files' formats.

For the tests, the GPU check (``scripts/gpu_check.py``) and anything else that must run the
model backends where the real files cannot be downloaded. A file made here goes through
the same lookup, strict loader and network as the published one and costs the same to run;
only its outputs mean nothing. Nothing is downloaded. Needs torch (and torchvision for
Mask R-CNN).

- :func:`fba_state_dict` / :func:`save_fba`: FBA Matting, by the fixed recipe that the
  numerical reference ``tests/data/fba_reference_random_weights.npz`` was computed with.
- :func:`maskrcnn_state_dict` / :func:`save_maskrcnn`: torchvision's Mask R-CNN, its
  default initialisation with the "person" logit biased up so that the network does
  detect people and the mask path runs.
"""
from __future__ import annotations

import json
from pathlib import Path

FBA_SEED = 1679
MASKRCNN_SEED = 0
MASKRCNN_PERSON_BIAS = 12.0


def fba_state_dict() -> dict:
    """FBA's 197 tensors (``float32``, the manifest's names and shapes, in its order) by the
    recipe of ``../shared/fba/README.md``: one ``torch.Generator`` seeded with
    :data:`FBA_SEED`; the last conv's bias 0.5 and weight ``0.01 * N(0, 1)``; other biases
    ``0.1 * N``; other 1-D tensors (GroupNorm scales) ``1 + 0.1 * N``; the rest ``0.05 * N``.
    """
    import torch

    from core.matters.fba_net import MANIFEST_PATH

    keys = json.loads(MANIFEST_PATH.read_text())["keys"]
    g = torch.Generator().manual_seed(FBA_SEED)
    state = {}
    for key in keys:
        name, shape = key["name"], key["shape"]
        if name == "decoder.conv_up4.4.bias":
            tensor = torch.full(shape, 0.5)
        elif name == "decoder.conv_up4.4.weight":
            tensor = 0.01 * torch.randn(shape, generator=g)
        elif name.endswith(".bias"):
            tensor = 0.1 * torch.randn(shape, generator=g)
        elif len(shape) == 1:
            tensor = 1 + 0.1 * torch.randn(shape, generator=g)
        else:
            tensor = 0.05 * torch.randn(shape, generator=g)
        state[name] = tensor
    return state


def save_fba(path) -> Path:
    """Write :func:`fba_state_dict` to ``path`` (a plain state dict, like ``FBA.pth``)."""
    import torch

    path = Path(path)
    torch.save(fba_state_dict(), path)
    return path


def maskrcnn_state_dict(variant: str = "v1", seed: int = MASKRCNN_SEED,
                        person_bias: float = MASKRCNN_PERSON_BIAS) -> dict:
    """torchvision's untrained Mask R-CNN ``variant`` (``"v1"`` / ``"v2"``), built after
    ``torch.manual_seed(seed)`` (the global generator's state is restored afterwards), with
    the box classifier's "person" bias set to ``person_bias``. For v1 the BatchNorm step
    counters are dropped, as in torchvision's published file (FrozenBatchNorm2d).

    Raises:
        ValueError: unknown variant.
    """
    import torch

    from core import weights
    from core.segmenters.maskrcnn import build_model

    if variant not in ("v1", "v2"):
        raise ValueError(f"Mask R-CNN variant must be 'v1' or 'v2', got {variant!r}")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        state = build_model(variant).state_dict()
    if variant == "v1":
        state = {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}
    person = weights.MASKRCNN_V1.meta["categories"].index("person")
    state["roi_heads.box_predictor.cls_score.bias"][person] = person_bias
    return state


def save_maskrcnn(variant: str, path) -> Path:
    """Write :func:`maskrcnn_state_dict` for ``variant`` to ``path``."""
    import torch

    path = Path(path)
    torch.save(maskrcnn_state_dict(variant), path)
    return path
