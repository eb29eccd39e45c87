"""Person segmentation with rembg's downloadable ONNX person models, run by onnxruntime.

Models (records in :mod:`core.weights`; ``python -m models.download --only NAME`` fetches
and verifies a file, nothing is ever downloaded here):

- ``u2net_human_seg`` (default): U^2-Net (Qin et al., "U2-Net: Going deeper with nested
  U-structure for salient object detection", Pattern Recognition 106, 2020) trained for
  people; 320 x 320 input, ~176 MB, Apache-2.0.
- ``birefnet-portrait``: BiRefNet (Zheng et al., "Bilateral Reference for High-Resolution
  Dichotomous Image Segmentation", CAAI Artificial Intelligence Research, 2024), portrait
  weights; 1024 x 1024 input, ~973 MB, MIT. Seconds per photo on a CPU.

The steps are rembg's (github.com/danielgatis/rembg: ``BaseSession.normalize`` in
``sessions/base.py``, ``predict`` in ``sessions/u2net_human_seg.py`` and
``sessions/birefnet_general.py``); the numbers each model needs are in its record's
``meta`` (``input_size``, ``mean``, ``std``, ``sigmoid``, ``min_max``):

1. the RGB image resized to ``S x S`` with PIL's LANCZOS (its aspect ratio is not kept);
2. divided by its own maximum value (at least 1e-6), not by 255;
3. ``(x - mean) / std`` per channel (ImageNet's), as ``1 x 3 x S x S`` ``float32``;
4. channel 0 of the first output; through a sigmoid where the network gives logits
   (BiRefNet; U^2-Net ends in one);
5. stretched to ``[0, 1]`` (``(p - min) / (max - min)``) and resized back to ``H x W``
   with LANCZOS.

Two departures from rembg, both deliberate: the mask stays ``float32`` (rembg rounds it
down to 8 bits before resizing back), clipped to ``[0, 1]`` after the resize (LANCZOS
overshoots); and where the model's probability reaches ``empty_below`` nowhere, the mask
is all zeros, as every segmenter here answers "nobody", where rembg's stretch would turn
the faintest response into 1 (``empty_below=0`` does exactly as rembg).

These models give one mask for everyone: they do not tell people apart, so ``max_people``
is refused (:class:`~core.errors.ParameterError`) and :meth:`find_people` gives the mask's
connected regions (the base class's default).
"""
from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

import numpy as np
from PIL import Image

from core.errors import ConfigError, ParameterError
from core.registry import ModelCache
from core.segmenters import Segmenter

log = logging.getLogger(__name__)

INSTALL_HINT = "pip install -e .[onnx]"
RESIZE_FILTERS = {"lanczos": Image.Resampling.LANCZOS}
_SESSIONS = ModelCache()
clear_cache = _SESSIONS.clear


def model_record(model: str):
    """The :class:`core.weights.WeightsRecord` of ``model``.

    Raises:
        ConfigError: not one of :data:`core.weights.ONNX_PERSON` (the message lists them).
    """
    from core import weights

    if model not in weights.ONNX_PERSON:
        raise ConfigError(f"onnx model must be one of {sorted(weights.ONNX_PERSON)}, "
                          f"got {model!r}")
    return weights.ONNX_PERSON[model]


def onnxruntime_available() -> tuple[bool, str]:
    """Whether onnxruntime imports, and its version or how to install it."""
    try:
        import onnxruntime
    except ImportError as exc:
        return False, f"onnxruntime is not installed ({exc}); install it with '{INSTALL_HINT}'"
    return True, f"onnxruntime {onnxruntime.__version__}"


def execution_providers(device="auto") -> list:
    """onnxruntime's execution providers for ``device``: ``"auto"`` (CUDA when this
    onnxruntime has its CUDA provider, then the CPU), ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.

    Raises:
        ConfigError: an unknown device, or CUDA asked for where onnxruntime has none (the
            ``onnxruntime`` wheel is CPU-only; ``onnxruntime-gpu`` has CUDA).
    """
    import onnxruntime as ort

    kind, index = parse_device(device)
    cuda = "CUDAExecutionProvider" in ort.get_available_providers()
    if kind == "auto":
        return (["CUDAExecutionProvider"] if cuda else []) + ["CPUExecutionProvider"]
    if kind == "cpu":
        return ["CPUExecutionProvider"]
    if not cuda:
        raise ConfigError(f"device {device!r} asked for, but this onnxruntime has no CUDA "
                          f"provider (it has {ort.get_available_providers()}; CUDA needs the "
                          "onnxruntime-gpu wheel)")
    return [("CUDAExecutionProvider", {"device_id": index}), "CPUExecutionProvider"]


def parse_device(device) -> tuple[str, int]:
    """``("auto" | "cpu" | "cuda", index)`` for a device name.

    Raises:
        ConfigError: not ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.
    """
    kind, colon, index = str(device or "auto").lower().partition(":")
    if kind not in ("auto", "cpu", "cuda") or (colon and (kind != "cuda" or not index.isdigit())):
        raise ConfigError(f"unknown device {device!r}; use auto, cpu or cuda")
    return kind, int(index or 0)


def check_signature(inputs, outputs, record) -> None:
    """Check that a model's inputs and outputs (onnxruntime ``NodeArg`` lists) are what
    ``record``'s preprocessing feeds and reads: one ``float`` input ``N x 3 x S x S`` (``S``
    the record's ``input_size``; symbolic sizes pass) and a first output of rank 4.

    Raises:
        ValueError: they are not (the message says what the model has).
    """
    size = record.meta["input_size"]
    if len(inputs) != 1:
        raise ValueError(f"the model takes {len(inputs)} inputs; {record.name} takes one image")
    shape = list(inputs[0].shape)
    fits = (len(shape) == 4 and shape[1] == 3
            and all(dim == size or not isinstance(dim, int) for dim in shape[2:]))
    if not fits or inputs[0].type != "tensor(float)":
        raise ValueError(f"the model's input {inputs[0].name!r} is {inputs[0].type} {shape}; "
                         f"{record.name} takes float N x 3 x {size} x {size}")
    if not outputs or len(outputs[0].shape) != 4:
        got = list(outputs[0].shape) if outputs else "nothing"
        raise ValueError(f"the model's first output is {got}; {record.name} gives "
                         "N x 1 x S x S")


def load_session(path, record, providers, threads: int = 0):
    """An onnxruntime session of the model at ``path``, checked against ``record``.

    Args:
        providers: :func:`execution_providers`' list.
        threads: onnxruntime's intra-op threads; 0: its default (the physical cores).
    Raises:
        ValueError: the file does not load, or does not take ``record``'s input.
    """
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = int(threads)
    try:
        session = ort.InferenceSession(str(path), sess_options=options, providers=providers)
    except Exception as exc:  # noqa: BLE001 - onnxruntime's own exception classes
        raise ValueError(f"{path} does not load as an ONNX model: {str(exc)[:500]}") from None
    try:
        check_signature(session.get_inputs(), session.get_outputs(), record)
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None
    log.info("loaded %s from %s (providers %s, %s threads)", record.name, path,
             session.get_providers(), threads or "default")
    return session


def get_session(path, record, providers, threads: int = 0):
    """The session for (file, providers, threads), loaded once per process and shared,
    with a lock that serialises its calls (one inference at a time keeps memory bounded)."""
    key = (str(Path(path).resolve()), record.name, repr(providers), int(threads))
    return _SESSIONS.get(key, lambda: (load_session(path, record, providers, threads),
                                       threading.Lock()))


def preprocess(image: np.ndarray, meta: dict) -> np.ndarray:
    """rembg's ``BaseSession.normalize``: the network's input for ``image``.

    Args:
        image: ``uint8`` RGB ``H x W x 3``.
        meta: the record's preprocessing (``input_size``, ``resize``, ``mean``, ``std``).
    Returns:
        ``float32`` ``1 x 3 x S x S``: LANCZOS-resized to ``S x S``, divided by its
        maximum, then ``(x - mean) / std`` per channel.
    """
    size = int(meta["input_size"])
    resized = np.asarray(Image.fromarray(image).resize((size, size),
                                                       RESIZE_FILTERS[meta["resize"]]))
    scaled = resized / max(float(resized.max()), 1e-6)
    normalised = (scaled - np.asarray(meta["mean"])) / np.asarray(meta["std"])
    return normalised.transpose(2, 0, 1)[None].astype(np.float32)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def postprocess(output: np.ndarray, meta: dict, shape: tuple[int, int],
                empty_below: float = 0.5) -> np.ndarray:
    """rembg's ``predict`` after the network: the mask at the image's size.

    Args:
        output: the network's first output, ``N x C x S x S`` (channel 0 of image 0 is read).
        meta: the record's ``sigmoid``, ``min_max`` and ``resize``.
        shape: ``(H, W)`` of the image.
        empty_below: all zeros when the probability (after the sigmoid, before the stretch)
            is below this everywhere; 0: stretch always, as rembg.
    Returns:
        ``float32`` ``H x W`` in ``[0, 1]``.
    """
    prob = np.asarray(output, np.float64)[0, 0]
    if meta["sigmoid"]:
        prob = _sigmoid(prob)
    height, width = shape
    high, low = float(prob.max()), float(prob.min())
    if high < empty_below:
        return np.zeros((height, width), np.float32)
    if meta["min_max"] and high > low:
        prob = (prob - low) / (high - low)
    small = Image.fromarray(prob.astype(np.float32))  # mode "F": float, not 8 bits
    mask = np.asarray(small.resize((width, height), RESIZE_FILTERS[meta["resize"]]))
    return np.clip(mask, 0.0, 1.0).astype(np.float32)


def _default_threads() -> int:
    """``$OMP_NUM_THREADS`` (the services' ``COMPUTE_THREADS`` sets it in each worker),
    else 0: onnxruntime's default."""
    try:
        return max(0, int(os.environ.get("OMP_NUM_THREADS", "0")))
    except ValueError:
        return 0


class OnnxPersonSegmenter(Segmenter):
    """One soft mask of the people from a rembg ONNX person model (see the module
    docstring for the models, the steps and their sources).

    Options:
        model: ``"u2net_human_seg"`` (default) or ``"birefnet-portrait"``.
        models_dir: the models folder (default ``$MODELS_DIR`` or ``models/``); rembg's own
            folder (``$U2NET_HOME`` or ``~/.u2net``) is looked in after it.
        device: ``"auto"`` (CUDA when onnxruntime has it), ``"cpu"``, ``"cuda"``, ``"cuda:N"``.
        threads: onnxruntime's threads per inference; ``None``: ``$OMP_NUM_THREADS`` when
            set (the services set it per worker), else onnxruntime's default.
        empty_below: in ``[0, 1]``; where the model's probability reaches this nowhere,
            nobody is there and the mask is all zeros (0.5; 0: rembg's behaviour).
    Raises (constructor):
        ConfigError: an unknown model or device.
        ValueError: a bad option, or a model file that does not load or fit.
        FileNotFoundError: no model file.
    """

    name = "onnx"
    licence = ("per model: u2net_human_seg Apache-2.0, birefnet-portrait MIT "
               "(core.weights records)")

    @classmethod
    def is_available(cls, model: str = "u2net_human_seg", models_dir=None,
                     device="auto") -> tuple[bool, str]:
        """Whether ``model``'s file and onnxruntime are here.

        Raises:
            ConfigError: an unknown model or device name (a setting's mistake, not a
                missing part).
        """
        from core.weights import rembg_home

        record = model_record(model)
        parse_device(device)
        ok, why = onnxruntime_available()
        if not ok:
            return False, why
        path = record.find(models_dir)
        if path is None:
            return False, (f"no {record.name} model ({record.filename}, ~{record.size_mb:.0f} "
                           f"MB) at {record.path(models_dir)} or in rembg's folder "
                           f"{rembg_home()}; get it with "
                           f"'python -m models.download --only {record.name}'")
        try:
            providers = execution_providers(device)
        except ConfigError as exc:
            return False, str(exc)
        first = providers[0] if isinstance(providers[0], str) else providers[0][0]
        return True, f"{record.name} from {path}, {first}, {why}"

    def __init__(self, model: str = "u2net_human_seg", models_dir=None, device="auto",
                 threads: int | None = None, empty_below: float = 0.5):
        self.record = model_record(model)
        if not 0.0 <= float(empty_below) <= 1.0:
            raise ValueError(f"empty_below must lie in [0, 1], got {empty_below}")
        if threads is not None and int(threads) < 0:
            raise ValueError(f"threads must be 0 (onnxruntime's default) or more, got {threads}")
        self.model = model
        self.licence = self.record.licence
        self.empty_below = float(empty_below)
        self.threads = _default_threads() if threads is None else int(threads)
        path = self.record.find(models_dir)
        if path is None:
            raise FileNotFoundError(f"no {model} model ({self.record.path(models_dir)}); "
                                    f"'python -m models.download --only {model}' gets it")
        self.weights_path = path
        self.providers = execution_providers(device)
        self.session, self._lock = get_session(path, self.record, self.providers, self.threads)
        self._input = self.session.get_inputs()[0].name
        self._output = self.session.get_outputs()[0].name

    def segment(self, image: np.ndarray, *, max_people: int | None = None) -> np.ndarray:
        """Soft mask of the people (see :meth:`core.segmenters.Segmenter.segment`).

        Args:
            image: ``uint8`` RGB ``H x W x 3``.
            max_people: must be ``None``: these models do not tell people apart.
        Returns:
            ``float32`` ``H x W`` in ``[0, 1]``; zeros when the model finds nobody (see
            ``empty_below``).
        Raises:
            ParameterError: ``max_people`` given.
            ValueError: not a ``uint8`` ``H x W x 3`` image.
        """
        if max_people is not None:
            raise ParameterError("max_people needs people told apart: the onnx backend's "
                                 "models give one mask for everyone; use maskrcnn, or "
                                 "mediapipe in mode 'accurate'")
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"image must be uint8 H x W x 3, got {image.dtype} {image.shape}")
        batch = preprocess(np.ascontiguousarray(image), self.record.meta)
        with self._lock:
            output = self.session.run([self._output], {self._input: batch})[0]
        return postprocess(output, self.record.meta, image.shape[:2], self.empty_below)

    def describe(self) -> dict:
        return {**super().describe(), "model": self.model, "weights": str(self.weights_path),
                "providers": self.session.get_providers(), "threads": self.threads,
                "input_size": self.record.meta["input_size"], "empty_below": self.empty_below}
