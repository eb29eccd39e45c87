"""The FBA Matting network (Forte and Pitié, "F, B, Alpha Matting", arXiv 2003.07711).

Our own implementation, written to load the authors' published ``FBA.pth`` with
``strict=True``: :class:`FBANet`'s ``state_dict()`` has exactly the names and shapes listed
in ``fba_manifest.json`` beside this file (197 float32 tensors, 34.7 M parameters).

- Encoder: ResNet-50 (bottlenecks 3-4-6-3) with weight-standardised convolutions and
  GroupNorm(32) everywhere (the names still say ``bn``); ``conv1`` takes 11 channels
  (ImageNet-normalised RGB, 6 trimap distance maps, the two-channel trimap). layer3 and
  layer4 are dilated instead of strided, so the deepest features are at 1/8 resolution.
- Decoder: pyramid pooling (1, 2, 3, 6) over layer4, three upsampling stages that
  concatenate layer1, the conv1 activation and finally the raw image and trimap, and a
  plain (not standardised) head that predicts 7 channels: alpha, F, B.
- One F/B/alpha fusion step (paper, eq. 6-7, lambda = 0.1) refines the three.

Weight standardisation is applied once, to the stored weights, by :func:`load_fba` (the
published file holds unstandardised weights); the convolutions themselves are then plain,
so inference costs nothing extra.
"""
from __future__ import annotations

import logging
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

log = logging.getLogger(__name__)

MANIFEST_PATH = Path(__file__).with_name("fba_manifest.json")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
GROUPS = 32
WS_EPS = 1e-5
FUSION_LAMBDA = 0.1


class WSConv2d(nn.Conv2d):
    """A convolution whose weights are meant to be weight-standardised.

    The forward pass is an ordinary convolution; call :meth:`standardise_` once after
    loading unstandardised weights (as :func:`load_fba` does).
    """

    @torch.no_grad()
    def standardise_(self, eps: float = WS_EPS) -> None:
        """Normalise each output channel's weights over (in, kh, kw) to zero mean and unit
        (biased) variance, in place: ``w <- (w - mean) / sqrt(var + eps)``."""
        flat = self.weight.reshape(self.weight.shape[0], -1)
        mean = flat.mean(dim=1, keepdim=True)
        var = flat.var(dim=1, unbiased=False, keepdim=True)
        self.weight.copy_(((flat - mean) / torch.sqrt(var + eps)).reshape_as(self.weight))


def _gn(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(GROUPS, channels)


class Bottleneck(nn.Module):
    """ResNet bottleneck (1x1 -> 3x3 -> 1x1, x4 expansion) with the stride on the 3x3 conv."""

    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1, dilation: int = 1,
                 downsample: nn.Module | None = None):
        super().__init__()
        out = planes * self.expansion
        self.conv1 = WSConv2d(inplanes, planes, 1, bias=False)
        self.bn1 = _gn(planes)
        self.conv2 = WSConv2d(planes, planes, 3, stride=stride, padding=dilation,
                              dilation=dilation, bias=False)
        self.bn2 = _gn(planes)
        self.conv3 = WSConv2d(planes, out, 1, bias=False)
        self.bn3 = _gn(out)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


def _make_layer(inplanes: int, planes: int, blocks: int, stride: int,
                first_dilation: int, dilation: int) -> nn.Sequential:
    """``blocks`` bottlenecks; only the first may stride (and has the 1x1 downsample)."""
    out = planes * Bottleneck.expansion
    downsample = nn.Sequential(WSConv2d(inplanes, out, 1, stride=stride, bias=False), _gn(out))
    layers = [Bottleneck(inplanes, planes, stride, first_dilation, downsample)]
    layers += [Bottleneck(out, planes, 1, dilation) for _ in range(1, blocks)]
    return nn.Sequential(*layers)


class FBAEncoder(nn.Module):
    """Dilated ResNet-50 GN+WS, output stride 8, 11 input channels.

    ``forward(x)`` returns the feature list ``[x, conv1 activation (1/2, 64 ch),
    layer1 (1/4, 256), layer2 (1/8, 512), layer3 (1/8, 1024), layer4 (1/8, 2048)]``.
    (The authors' max-pool also returns indices, unused by the decoder; we skip them.)
    """

    def __init__(self, in_channels: int = 11):
        super().__init__()
        self.conv1 = WSConv2d(in_channels, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = _gn(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        self.layer1 = _make_layer(64, 64, 3, stride=1, first_dilation=1, dilation=1)
        self.layer2 = _make_layer(256, 128, 4, stride=2, first_dilation=1, dilation=1)
        # Dilated instead of strided: the strided 3x3 gets half the layer's dilation.
        self.layer3 = _make_layer(512, 256, 6, stride=1, first_dilation=1, dilation=2)
        self.layer4 = _make_layer(1024, 512, 3, stride=1, first_dilation=2, dilation=4)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        feats = [x]
        x = self.relu(self.bn1(self.conv1(x)))
        feats.append(x)
        x = self.maxpool(x)
        for layer in (self.layer1, self.layer2, self.layer3, self.layer4):
            x = layer(x)
            feats.append(x)
        return feats


def _ws_block(cin: int, cout: int, kernel: int) -> list[nn.Module]:
    return [WSConv2d(cin, cout, kernel, padding=kernel // 2, bias=True), _gn(cout),
            nn.LeakyReLU()]


def _up2(x: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)


def fba_fusion(alpha: torch.Tensor, image: torch.Tensor, fg: torch.Tensor, bg: torch.Tensor,
               lam: float = FUSION_LAMBDA) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One F, B, alpha fusion step (paper, eq. 6-7).

    Args:
        alpha: ``N x 1 x H x W`` in ``[0, 1]``; image, fg, bg: ``N x 3 x H x W`` in ``[0, 1]``.
    Returns:
        ``(alpha', F', B')``, all clamped to ``[0, 1]``. As in the authors' code, B' is
        computed from the updated, not yet clamped, F'.
    """
    fg = alpha * image + (1 - alpha ** 2) * fg - alpha * (1 - alpha) * bg
    bg = (1 - alpha) * image + (2 * alpha - alpha ** 2) * bg - alpha * (1 - alpha) * fg
    fg = fg.clamp(0, 1)
    bg = bg.clamp(0, 1)
    diff = fg - bg
    alpha = (alpha * lam + ((image - bg) * diff).sum(1, keepdim=True)) / (
        (diff * diff).sum(1, keepdim=True) + lam)
    return alpha.clamp(0, 1), fg, bg


class FBADecoder(nn.Module):
    """Pyramid pooling + upsampling decoder; returns the fused 7 channels (alpha, F, B).

    The convolutions run in the features' dtype; the output head's result and the fusion
    step are float32 whatever that is (see :meth:`forward`).
    """

    pool_scales = (1, 2, 3, 6)

    def __init__(self):
        super().__init__()
        self.ppm = nn.ModuleList(
            nn.Sequential(nn.AdaptiveAvgPool2d(scale), *_ws_block(2048, 256, 1))
            for scale in self.pool_scales)
        self.conv_up1 = nn.Sequential(*_ws_block(2048 + 256 * len(self.pool_scales), 256, 3),
                                      *_ws_block(256, 256, 3))
        self.conv_up2 = nn.Sequential(*_ws_block(256 + 256, 256, 3))
        self.conv_up3 = nn.Sequential(*_ws_block(256 + 64, 64, 3))
        self.conv_up4 = nn.Sequential(
            nn.Conv2d(64 + 3 + 3 + 2, 32, 3, padding=1), nn.LeakyReLU(),
            nn.Conv2d(32, 16, 3, padding=1), nn.LeakyReLU(),
            nn.Conv2d(16, 7, 1))

    def forward(self, feats: list[torch.Tensor], image: torch.Tensor,
                trimap2: torch.Tensor) -> torch.Tensor:
        """Args: ``feats`` from :class:`FBAEncoder`; ``image`` ``N x 3 x H x W`` RGB in
        ``[0, 1]`` and ``trimap2`` ``N x 2 x H x W``, any float dtype (float32 keeps the
        fusion exact). Returns ``float32`` ``N x 7 x H x W``.

        In half precision the fusion would round its inputs and then magnify the rounding:
        alpha' divides by ``|F' - B'|^2 + 0.1``, up to 10 times. So the head's output is
        cast to float32 and fused with the image as given, not a half copy of it.
        """
        deepest = feats[-1]
        size = deepest.shape[2:]
        pyramid = [deepest] + [
            F.interpolate(branch(deepest), size, mode="bilinear", align_corners=False)
            for branch in self.ppm]
        x = self.conv_up1(torch.cat(pyramid, 1))
        x = self.conv_up2(torch.cat((_up2(x), feats[2]), 1))
        x = self.conv_up3(torch.cat((_up2(x), feats[1]), 1))
        x = torch.cat((_up2(x), feats[0][:, :3], image.to(x.dtype), trimap2.to(x.dtype)), 1)
        out = self.conv_up4(x).float()
        alpha = out[:, :1].clamp(0, 1)
        fg = torch.sigmoid(out[:, 1:4])
        bg = torch.sigmoid(out[:, 4:7])
        return torch.cat(fba_fusion(alpha, image.float(), fg, bg), 1)


class FBANet(nn.Module):
    """The whole network: ``forward(image, trimap2, trimap_enc) -> N x 7 x H x W``.

    Args (all ``N x C x H x W`` float tensors on the network's device, H and W multiples
    of 8; give them in float32: the network casts them to its own dtype):
        image: RGB in ``[0, 1]`` (3 channels).
        trimap2: two-channel trimap, channel 0 = sure background, 1 = sure foreground.
        trimap_enc: the 6 distance-transform maps of :func:`core.matters.fba.encode_trimap`.
    Returns:
        ``float32``: alpha (channel 0), foreground (1-3) and background (4-6), each in
        ``[0, 1]``.

    Half precision: after ``.half()`` the encoder and decoder compute in float16, and the
    output head's result and the F, B, alpha fusion in float32 (:class:`FBADecoder`).
    """

    def __init__(self):
        super().__init__()
        self.encoder = FBAEncoder(in_channels=3 + 6 + 2)
        self.decoder = FBADecoder()
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1),
                             persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1),
                             persistent=False)

    def forward(self, image: torch.Tensor, trimap2: torch.Tensor,
                trimap_enc: torch.Tensor) -> torch.Tensor:
        if image.shape[-2] % 8 or image.shape[-1] % 8:
            raise ValueError(f"FBA needs H and W divisible by 8, got {tuple(image.shape[-2:])}")
        dtype = self.encoder.conv1.weight.dtype
        normalised = (image.to(dtype) - self.mean) / self.std
        feats = self.encoder(torch.cat((normalised, trimap_enc.to(dtype), trimap2.to(dtype)), 1))
        return self.decoder(feats, image, trimap2)

    def standardise_weights_(self) -> int:
        """Weight-standardise every :class:`WSConv2d` in place; returns how many."""
        convs = [m for m in self.modules() if isinstance(m, WSConv2d)]
        for conv in convs:
            conv.standardise_()
        return len(convs)


def extract_state_dict(checkpoint) -> dict[str, torch.Tensor]:
    """The tensors of a checkpoint saved as a plain state dict, as ``{"state_dict": ...}``
    (or ``{"model": ...}``), possibly with DataParallel's ``module.`` prefixes.

    Raises:
        ValueError: the object holds no state dict.
    """
    if isinstance(checkpoint, dict):
        for key in ("state_dict", "model"):
            if key in checkpoint and isinstance(checkpoint[key], dict):
                checkpoint = checkpoint[key]
                break
    if not isinstance(checkpoint, dict) or not checkpoint or not all(
            isinstance(v, torch.Tensor) for v in checkpoint.values()):
        raise ValueError("checkpoint is not a state dict of tensors (nor {'state_dict': ...})")
    return {k.removeprefix("module."): v for k, v in checkpoint.items()}


def load_fba(path, device="cpu") -> FBANet:
    """Load FBA weights into a new :class:`FBANet`, standardise them and switch to eval.

    Args:
        path: a ``.pth`` file (plain state dict, ``{"state_dict": ...}`` or with ``module.``
            prefixes), e.g. the authors' ``FBA.pth``.
        device: a ``torch.device`` or its name.
    Returns:
        The network in eval mode on ``device``, float32.
    Raises:
        FileNotFoundError: no such file.
        ValueError: not a state dict, or names / shapes that do not match FBA (the message
            lists the first differences).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"FBA weights not found: {path}")
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    state = extract_state_dict(checkpoint)
    net = FBANet()
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise ValueError(f"{path} does not hold FBA Matting weights: {str(exc)[:1000]}") from None
    count = net.standardise_weights_()
    log.info("loaded FBA weights from %s (%d tensors, %d convolutions standardised)",
             path, len(state), count)
    return net.eval().to(device)
