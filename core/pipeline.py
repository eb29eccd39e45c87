"""The pipeline, defined once: segment -> trimap -> matte -> render.

::

    image ──► PersonSource.segment ──► Segmentation(mask, trimap, people)
                 (in process: LocalPersonSource;      │
                  over HTTP: the segmentation         ▼
                  service's client)          matte_with_trimap ──► MatteResult ──► render

:class:`Pipeline` wires a *person source* (who is where: the soft mask, the trimap built
from it, the people found) to a matting backend. Every entry point calls it: the matting
service (with the segmentation service as its person source), the command line (remote or
``--local``), the video loop (with a :class:`~core.temporal.VideoState`), the notebook,
the evaluation and the benchmarks. :func:`render` turns a :class:`MatteResult` into the
image the user asked for.
"""
from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from core.compositing import composite, cutout, make_background
from core.errors import ParameterError
from core.images import alpha_to_uint16, to_float, to_uint8
from core.people import EVERYONE, Person, Selection
from core.temporal import TemporalSmoother, VideoState
from core.trimap import (
    BACKGROUND,
    FOREGROUND,
    TrimapParams,
    has_person,
    impose_sure_regions,
    mask_to_trimap,
)

OUTPUT_TYPES = ("composite", "cutout", "alpha", "foreground", "trimap")
@dataclass
class Segmentation:
    """Who is where in one image: what a :class:`PersonSource` returns.

    Attributes:
        trimap: ``uint8`` ``H x W`` (0 / 128 / 255).
        mask: ``float32`` ``H x W`` in ``[0, 1]``, the soft mask the trimap was built from
            (a prior for matting); ``None`` for a trimap the user gave.
        people: the people found, largest first, each with whether it is shown (``people=``).
        timings: milliseconds per stage (in process: ``segmentation``, ``trimap``; over HTTP:
            ``segmentation``, the service's own time, and ``transport``).
    """

    trimap: np.ndarray
    mask: np.ndarray | None = None
    people: list[Person] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def person_found(self) -> bool:
        return has_person(self.trimap)


class PersonSource(Protocol):
    """Finds the people of an image and builds its trimap."""

    name: str

    def segment(self, image: np.ndarray, *, encoded: bytes | None = None,
                trimap: Mapping[str, Any] | None = None, max_people: int | None = None,
                people: Selection = EVERYONE, state: VideoState | None = None) -> Segmentation:
        """Args:
            image: ``uint8`` RGB ``H x W x 3``.
            encoded: the file ``image`` was decoded from, when at hand (a remote source
                forwards it instead of re-encoding).
            trimap: trimap fields set for this call (:meth:`TrimapParams.parse`); they
                override the source's configured ones field by field.
            max_people: look for at most this many people (the most prominent).
            people: which of the people found the trimap keeps (:mod:`core.people`); all are
                reported either way, each with its ``selected`` flag.
            state: per-video state (:class:`~core.temporal.VideoState`), or ``None``.
        """
        ...

    def describe(self) -> dict:
        ...


class LocalPersonSource:
    """A segmenter in this process, and the trimap built from its mask.

    Args:
        segmenter: a :class:`core.segmenters.Segmenter`.
        trimap: configured trimap fields (e.g. a service's ``TRIMAP_*`` settings); requests
            override them field by field (:meth:`TrimapParams.resolve`).
    Raises:
        ParameterError: an unknown trimap field or a value out of range.
    """

    def __init__(self, segmenter, trimap: Mapping[str, Any] | None = None):
        self.segmenter = segmenter
        self.name = segmenter.name
        self.trimap_config = dict(trimap or {})
        self.trimap_params = TrimapParams.resolve(self.trimap_config)

    def params_for(self, overrides: Mapping[str, Any] | None) -> TrimapParams:
        """The trimap parameters of one call: the configured ones, then ``overrides``."""
        if not overrides:
            return self.trimap_params
        return TrimapParams.resolve(self.trimap_config, overrides)

    def segment(self, image: np.ndarray, *, encoded: bytes | None = None,
                trimap: Mapping[str, Any] | None = None, max_people: int | None = None,
                people: Selection = EVERYONE, state: VideoState | None = None) -> Segmentation:
        """See :meth:`PersonSource.segment`.

        Raises:
            ParameterError: bad trimap fields, or ``max_people`` with a backend that cannot
                tell people apart.
        """
        params = self.params_for(trimap)
        started = time.perf_counter()
        # A segmenter that follows people gets the video's state (its tracks live there).
        follow = {"state": state} if state is not None and self.segmenter.follows_people else {}
        found = self.segmenter.find_people(image, max_people=max_people, **follow)
        mask, found = found.select(people)
        if state is not None:
            state.observe(image)
            mask = state.smooth_mask(mask)
        segmented = time.perf_counter()
        trimap_u8 = mask_to_trimap(mask, params)
        done = time.perf_counter()
        # A shown person with no sure foreground is matted away (a faint blob): not reported.
        sure = trimap_u8 == FOREGROUND
        found = [p for p in found
                 if not p.selected or sure[p.box[1]:p.box[3], p.box[0]:p.box[2]].any()]
        return Segmentation(trimap_u8, mask, found,
                            {"segmentation": (segmented - started) * 1e3,
                             "trimap": (done - segmented) * 1e3})

    def describe(self) -> dict:
        return {**self.segmenter.describe(), "trimap": self.trimap_params.__dict__}


@dataclass(kw_only=True)
class MatteResult(Segmentation):
    """Everything one image's matting produced: its :class:`Segmentation` (trimap, mask,
    people, timings) and (float32 arrays in [0, 1]):

    Attributes:
        image: ``H x W x 3``, the input as float.
        alpha: ``H x W``, exactly 0 / 1 on the trimap's sure regions.
        foreground: ``H x W x 3`` colours (the image where alpha is 1).
    """

    image: np.ndarray
    alpha: np.ndarray
    foreground: np.ndarray


def matte_with_trimap(image: np.ndarray, trimap: np.ndarray, matter,
                      mask: np.ndarray | None = None) -> MatteResult:
    """Alpha and foreground for ``image`` given its ``trimap``.

    Args:
        image: ``uint8`` RGB ``H x W x 3``.
        trimap: ``uint8`` ``H x W`` (0 / 128 / 255).
        matter: a :class:`core.matters.Matter`.
        mask: the segmenter's soft mask (``float32`` ``H x W``), a prior inside the band.
    Returns:
        :class:`MatteResult`; with no sure foreground in the trimap nothing is solved: alpha
        is 0 and the foreground is the image.
    Raises:
        ParameterError (``invalid_trimap``): the trimap's size differs from the image's.
    """
    if image.shape[:2] != trimap.shape:
        raise ParameterError(f"trimap is {trimap.shape[1]}x{trimap.shape[0]} but the image is "
                             f"{image.shape[1]}x{image.shape[0]}", code="invalid_trimap")
    image_f = to_float(image)
    if not has_person(trimap):
        return MatteResult(trimap, mask, image=image_f, alpha=np.zeros(trimap.shape, np.float32),
                           foreground=image_f)
    alpha, foreground = matter.matte(image_f, trimap, mask)
    # Sure regions are sure, whatever a backend's numerics say: the one place this is done.
    alpha = impose_sure_regions(alpha.astype(np.float32, copy=False), trimap)
    return MatteResult(trimap, mask, image=image_f, alpha=alpha,
                       foreground=foreground.astype(np.float32, copy=False))


class Pipeline:
    """Segment -> trimap -> matte, for photos and (with a :class:`VideoState`) videos.

    Args:
        source: a :class:`PersonSource` (:class:`LocalPersonSource`, or the segmentation
            service's client).
        matter: a :class:`core.matters.Matter`.
    """

    def __init__(self, source: PersonSource, matter):
        self.source, self.matter = source, matter

    @classmethod
    def in_process(cls, segmenter="auto", matter="auto", *,
                   trimap: Mapping[str, Any] | None = None,
                   segmenter_options: Mapping[str, Mapping[str, Any]] | None = None,
                   matter_options: Mapping[str, Mapping[str, Any]] | None = None) -> "Pipeline":
        """Both stages in this process; backends given as instances or registry names.

        Args:
            segmenter, matter: backend instances, registry names or ``"auto"``.
            trimap: configured trimap fields (see :class:`LocalPersonSource`).
            segmenter_options, matter_options: keyword options keyed by backend name, e.g.
                ``{"mediapipe": {"mode": "fast"}}`` (applied to whichever is built).
        Raises:
            ConfigError: an unknown backend or option; BackendUnavailable: it cannot run here.
        """
        from core.matters import Matter, create_matter
        from core.segmenters import Segmenter, create_segmenter

        if not isinstance(segmenter, Segmenter):
            segmenter = create_segmenter(segmenter, segmenter_options)
        if not isinstance(matter, Matter):
            matter = create_matter(matter, matter_options)
        return cls(LocalPersonSource(segmenter, trimap), matter)

    @staticmethod
    def new_video(smoothing: bool = True, smoother: TemporalSmoother | None = None) -> VideoState:
        """State for one video: pass it to :meth:`run` with each of its frames, in order."""
        return VideoState((smoother or TemporalSmoother()) if smoothing else None)

    def run(self, image: np.ndarray, *, trimap: np.ndarray | None = None,
            encoded: bytes | None = None, trimap_options: Mapping[str, Any] | None = None,
            max_people: int | None = None, people: Selection = EVERYONE,
            state: VideoState | None = None) -> MatteResult:
        """The people of ``image``, matted: :meth:`segment`, then :meth:`matte`.

        Args:
            image: ``uint8`` RGB ``H x W x 3``.
            trimap: the user's own trimap (``uint8`` ``H x W``); skips segmentation.
            encoded, trimap_options, max_people, people, state: see
                :meth:`PersonSource.segment`.
        Returns:
            :class:`MatteResult` with the stages' milliseconds in ``timings``.
        Raises:
            UserError subclasses for what the caller got wrong; anything else is a bug or
            an outage (e.g. the segmentation service is down).
        """
        segmentation = self.segment(image, trimap=trimap, encoded=encoded,
                                    trimap_options=trimap_options, max_people=max_people,
                                    people=people, state=state)
        return self.matte(image, segmentation, state=state)

    def segment(self, image: np.ndarray, *, trimap: np.ndarray | None = None,
                encoded: bytes | None = None, trimap_options: Mapping[str, Any] | None = None,
                max_people: int | None = None, people: Selection = EVERYONE,
                state: VideoState | None = None) -> Segmentation:
        """The first half of :meth:`run`: who is where (the user's ``trimap`` as is, else
        the person source's :class:`Segmentation`). A video loop may run it for the next
        frame while :meth:`matte` works on this one (each half keeps its own part of
        ``state``); frames must pass each half in order."""
        if trimap is not None:
            return Segmentation(trimap)
        return self.source.segment(image, encoded=encoded, trimap=trimap_options,
                                   max_people=max_people, people=people, state=state)

    def matte(self, image: np.ndarray, segmentation: Segmentation, *,
              state: VideoState | None = None) -> MatteResult:
        """The second half of :meth:`run`: ``image`` matted with ``segmentation``'s trimap
        (its soft mask as the prior), alpha smoothed with the video's ``state``."""
        started = time.perf_counter()
        result = matte_with_trimap(image, segmentation.trimap, self.matter, segmentation.mask)
        if state is not None:
            result.alpha = state.smooth_alpha(result.alpha)
        result.people = segmentation.people
        result.timings = {**segmentation.timings, "matting": (time.perf_counter() - started) * 1e3}
        return result

    def describe(self) -> dict:
        return {"person_source": self.source.describe(), "matter": self.matter.describe()}


def render(result: MatteResult, output_type: str = "composite", background="#00ff00",
           fit: str = "cover", alpha_bits: int = 8,
           unchanged_without_people: bool = True) -> np.ndarray:
    """Turn a :class:`MatteResult` into the image the user asked for.

    Args:
        output_type: one of :data:`OUTPUT_TYPES`. ``composite`` over ``background``
            (a spec or array, see :func:`core.compositing.make_background`; ``transparent``
            gives the cutout); ``cutout`` RGBA; ``alpha`` grey; ``foreground`` RGB colours
            over black where alpha is 0; ``trimap``.
        alpha_bits: 8 or 16 for ``alpha`` (16 keeps the matte lossless enough to compare).
        unchanged_without_people: a composite of a photo without people is the photo
            unchanged (the original's rule); ``False`` (video) shows the background.
    Returns:
        ``uint8`` (or ``uint16`` alpha) array: ``H x W``, ``H x W x 3`` or ``H x W x 4``.
    Raises:
        ParameterError: an unknown output type, background, fit or ``alpha_bits``.
    """
    if output_type not in OUTPUT_TYPES:
        raise ParameterError(f"output must be one of {list(OUTPUT_TYPES)}, got {output_type!r}")
    if alpha_bits not in (8, 16):
        raise ParameterError(f"alpha_bits must be 8 or 16, got {alpha_bits}")
    if output_type == "composite":
        bg = make_background(background, result.image, fit)
        if bg is None:
            return cutout(result.foreground, result.alpha)
        if unchanged_without_people and not result.person_found:
            return to_uint8(result.image)
        return composite(result.foreground, result.alpha, bg)
    if output_type == "cutout":
        return cutout(result.foreground, result.alpha)
    if output_type == "alpha":
        return alpha_to_uint16(result.alpha) if alpha_bits == 16 else to_uint8(result.alpha)
    if output_type == "foreground":
        return to_uint8(result.foreground * (result.alpha[:, :, None] > 0))
    return result.trimap


def empty_trimap(shape: tuple[int, int]) -> np.ndarray:
    """An all-background trimap (nobody there) of ``shape = (height, width)``."""
    return np.full(shape, BACKGROUND, np.uint8)
