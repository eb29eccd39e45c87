"""Fetch and verify the optional model weights into ``models/``.

    python -m models.download                      # the default set: fba, maskrcnn, maskrcnn_v2
    python -m models.download --only fba           # just FBA.pth
    python -m models.download --only u2net_human_seg   # a rembg ONNX model (or birefnet-portrait)
    python -m models.download --all                # the default set and both ONNX models
    python -m models.download --models-dir /data/models --only maskrcnn

- Mask R-CNN (v1, v2): through torchvision (``torch.hub.load_state_dict_from_url``) into
  the models folder, with torchvision's hash check (the file name carries a SHA-256
  prefix); then loaded strictly into the architecture.
- FBA.pth: from its authors' Google Drive link; checked by size and by loading it as a
  state dict with exactly the names and shapes of FBA (``core/matters/fba_manifest.json``).
  It is for NON-COMMERCIAL use only (see the message printed before downloading).
- rembg's ONNX person models (``u2net_human_seg`` ~176 MB, ``birefnet-portrait`` ~973 MB),
  for the ``onnx`` segmentation backend: from rembg's GitHub release; checked against
  rembg's published MD5, then loaded with onnxruntime, whose one input must be
  ``N x 3 x S x S`` (``S`` the record's input size). Only with ``--only`` or ``--all``:
  nothing needs them, and they are large.

Files already present are verified, not downloaded again (``--force`` re-downloads).
Without internet the command fails within about ``--connect-timeout`` seconds (10) with a
message saying what to download by hand and where to put it; it never hangs.

Exit status: 0 all good, 1 a file failed verification, 3 a download failed (network).
"""
from __future__ import annotations

import argparse
import hashlib
import html
import http.cookiejar
import json
import re
import socket
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from core import weights

DRIVE_URL = "https://drive.google.com/uc?export=download&id={id}"
USER_AGENT = "bgremoval-models-download/1.0"
FBA_MIN_MB, FBA_MAX_MB = 130, 150  # the published file is ~139 MB
READ_TIMEOUT = 60
DEFAULT_NAMES = tuple(n for n in weights.RECORD_NAMES if n not in weights.ONNX_PERSON)
EXIT_OK, EXIT_INVALID, EXIT_NETWORK = 0, 1, 3
FBA_NOTICE = """\
FBA Matting weights (FBA.pth, ~139 MB) by Marco Forte and Francois Pitie.
LICENCE: trained on the Adobe Deep Image Matting dataset, these weights are covered by the
Adobe Deep Image Matting Dataset License Agreement: they may be used and distributed for
NON-COMMERCIAL purposes only. Do not use them in a commercial product or service; the
embedded closed-form matting backend has no such restriction.
Source: https://github.com/MarcoForte/FBA_Matting"""


class NetworkError(RuntimeError):
    """A download could not be made (no internet, timeout, server error)."""


class VerificationError(RuntimeError):
    """A file is not what it should be (size, hash, contents)."""


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _manual_hint(record, target: Path) -> str:
    return (f"Download it by hand from {record.url}\n"
            f"and save it as {target} (then run this command again to verify it).")


def _open(opener, url: str, connect_timeout: float):
    """Open ``url``; the socket timeout bounds the connection and every read."""
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    try:
        return opener.open(request, timeout=connect_timeout)
    except urllib.error.HTTPError as exc:
        raise NetworkError(f"{url}: HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise NetworkError(f"cannot reach {urllib.parse.urlsplit(url).netloc}: {reason}") from None


def _stream_to(response, part: Path) -> int:
    """Copy the body to ``part``; each read is bounded by the socket's timeout."""
    total = int(response.headers.get("Content-Length") or 0)
    done, last = 0, 0.0
    with open(part, "wb") as fh:
        while True:
            try:
                chunk = response.read(1 << 20)
            except OSError as exc:
                raise NetworkError(f"download interrupted: {exc}") from None
            if not chunk:
                break
            fh.write(chunk)
            done += len(chunk)
            if time.monotonic() - last > 2:
                last = time.monotonic()
                share = f" of {total / 1e6:.0f}" if total else ""
                say(f"  {done / 1e6:.0f}{share} MB")
    return done


def _save(response, part: Path, target: Path) -> None:
    """The body into ``part``, then renamed to ``target`` (nothing half-written is left)."""
    try:
        _stream_to(response, part)
    except BaseException:
        part.unlink(missing_ok=True)
        raise
    part.replace(target)


def download_file(url: str, target: Path, connect_timeout: float) -> None:
    """Download ``url`` (redirects followed, as GitHub's release links need) to ``target``
    via ``target.part``.

    Raises:
        NetworkError: no connection, a timeout, an HTTP error, or a page instead of a file.
    """
    response = _open(urllib.request.build_opener(), url, connect_timeout)
    with response:
        if "text/html" in response.headers.get("Content-Type", ""):
            raise NetworkError(f"{url} answered with a page, not the file (link moved?)")
        _save(response, target.with_name(target.name + ".part"), target)


def _drive_confirm_url(page: str) -> str | None:
    """The real download link on Google Drive's "can't scan this file" page."""
    form = re.search(r'<form[^>]*action="([^"]+)"[^>]*>(.*?)</form>', page, re.DOTALL)
    if form:
        action = html.unescape(form.group(1))
        fields = dict(re.findall(r'<input[^>]*type="hidden"[^>]*name="([^"]+)"[^>]*'
                                 r'value="([^"]*)"', form.group(2)))
        if fields:
            return action + "?" + urllib.parse.urlencode(fields)
    link = re.search(r'href="(/uc\?export=download[^"]+confirm=[^"]+)"', page)
    if link:
        return "https://drive.google.com" + html.unescape(link.group(1))
    return None


def download_google_drive(file_id: str, target: Path, connect_timeout: float,
                          url: str | None = None) -> None:
    """Download a public Google Drive file (or ``url``) to ``target`` via ``target.part``.

    Raises:
        NetworkError: no connection, a timeout, an HTTP error, or a page instead of a file.
    """
    opener = urllib.request.build_opener(
        urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
    url = url or DRIVE_URL.format(id=file_id)
    part = target.with_name(target.name + ".part")
    for _ in range(3):  # the file, or a confirmation page leading to it
        response = _open(opener, url, connect_timeout)
        with response:
            if "text/html" not in response.headers.get("Content-Type", ""):
                _save(response, part, target)
                return
            page = response.read(1 << 20).decode("utf-8", "replace")
        url = _drive_confirm_url(page)
        if url is None:
            raise NetworkError("Google Drive answered with a page, not the file (quota "
                               "exceeded or link changed?)")
    raise NetworkError("Google Drive kept answering with pages, not the file")


def sha256_of(path: Path) -> str:
    return digests_of(path)["sha256"]


def digests_of(path: Path, names=("sha256",)) -> dict[str, str]:
    """``{name: hex digest}`` of the file for each hashlib algorithm in ``names``, in one read."""
    digests = {name: hashlib.new(name, usedforsecurity=False) for name in names}
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            for digest in digests.values():
                digest.update(block)
    return {name: digest.hexdigest() for name, digest in digests.items()}


def verify_onnx(record, path: Path) -> str:
    """Check a rembg ONNX person model: its MD5 (rembg's published one) and SHA-256 where
    the record has them, then that onnxruntime loads it and that it takes one float input
    ``N x 3 x S x S`` (``S``: the record's ``input_size``), as the ``onnx`` backend feeds it.

    Returns:
        A one-line summary including the file's SHA-256.
    Raises:
        VerificationError: a checksum differs, or the model does not load or fit.
    """
    digests = digests_of(path, ("md5", "sha256"))
    for name in ("md5", "sha256"):
        expected = getattr(record, name)
        if expected and digests[name] != expected.lower():
            raise VerificationError(f"{path}: {name.upper()} {digests[name]} is not the "
                                    f"published {expected} (corrupt or partial download, or "
                                    "a different file: run again with --force)")
    checked = " and ".join(n.upper() for n in ("md5", "sha256") if getattr(record, n))
    summary = f"{path}: {checked or 'no published checksum'} ok"
    from core.segmenters.onnx_person import load_session, onnxruntime_available

    ok, why = onnxruntime_available()
    if not ok:
        return f"{summary}; loading not checked: {why}; sha256 {digests['sha256']}"
    try:
        session = load_session(path, record, ["CPUExecutionProvider"])
    except ValueError as exc:
        raise VerificationError(str(exc)) from None
    shape = list(session.get_inputs()[0].shape)
    return f"{summary}, loads with onnxruntime, input {shape}; sha256 {digests['sha256']}"


def verify_fba(path: Path) -> str:
    """Check ``FBA.pth``: size, then names and shapes against the manifest.

    Returns:
        A one-line summary including the file's SHA-256.
    Raises:
        VerificationError: wrong size or contents.
    """
    size_mb = path.stat().st_size / 1e6
    if not FBA_MIN_MB <= size_mb <= FBA_MAX_MB:
        raise VerificationError(f"{path} is {size_mb:.1f} MB; FBA.pth is about 139 MB "
                                f"(an HTML page or a partial download?)")
    import torch

    from core.matters.fba_net import MANIFEST_PATH, extract_state_dict

    try:
        state = extract_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    except Exception as exc:  # noqa: BLE001 - any unpickling failure means a bad file
        raise VerificationError(f"{path} does not load as a PyTorch state dict: {exc}") from None
    expected = [(k["name"], tuple(k["shape"]))
                for k in json.loads(MANIFEST_PATH.read_text())["keys"]]
    got = [(name, tuple(t.shape)) for name, t in state.items()]
    if sorted(got) != sorted(expected):
        missing = sorted(set(expected) - set(got))[:3]
        extra = sorted(set(got) - set(expected))[:3]
        raise VerificationError(f"{path} is not FBA Matting's checkpoint: missing {missing}, "
                                f"unexpected {extra}")
    return f"{path}: {len(state)} tensors as in the manifest, sha256 {sha256_of(path)}"


def verify_torchvision(record, path: Path) -> str:
    """Check a torchvision file's hash prefix and that it loads into its architecture."""
    match = re.search(r"-([a-f0-9]+)\.", path.name)
    digest = sha256_of(path)
    if match and not digest.startswith(match.group(1)):
        raise VerificationError(f"{path}: SHA-256 {digest[:12]}... does not start with "
                                f"{match.group(1)} (corrupt or partial download)")
    from core.segmenters.maskrcnn import load_model

    variant = "v1" if record.name == "maskrcnn" else "v2"
    try:
        load_model(variant, path, "cpu")
    except ValueError as exc:
        raise VerificationError(str(exc)) from None
    return f"{path}: hash prefix ok, loads into Mask R-CNN {variant}"


def probe(url: str, connect_timeout: float) -> None:
    """Fail fast when ``url``'s host cannot be reached (urllib honours proxy settings)."""
    request = urllib.request.Request(url, method="HEAD", headers={"User-Agent": USER_AGENT})
    try:
        urllib.request.urlopen(request, timeout=connect_timeout).close()
    except urllib.error.HTTPError:
        return  # the server answered: the network works
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise NetworkError(f"cannot reach {urllib.parse.urlsplit(url).netloc}: {reason}") from None


def fetch_torchvision(record, folder: Path, connect_timeout: float) -> None:
    import torch

    probe(record.url, connect_timeout)
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(max(connect_timeout, READ_TIMEOUT))  # torch.hub sets none
    try:
        torch.hub.load_state_dict_from_url(record.url, model_dir=str(folder),
                                           map_location="cpu", progress=True,
                                           check_hash=True, weights_only=True)
    except RuntimeError as exc:  # torch.hub's hash mismatch
        raise VerificationError(str(exc)) from None
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        raise NetworkError(f"download of {record.url} failed: {exc}") from None
    finally:
        socket.setdefaulttimeout(previous)


def get(name: str, folder: Path, force: bool, connect_timeout: float,
        fba_url: str | None = None) -> None:
    """Download (unless present) and verify one record's file into ``folder``."""
    record = weights.record(name)
    target = folder / record.filename
    say(f"== {record.name}: {record.description}")
    if record.name == "fba":
        say(FBA_NOTICE)
    elif record.name in weights.ONNX_PERSON:
        say(f"licence: {record.licence}; from {record.meta['source']} through rembg")
    if target.is_file() and not force:
        say(f"{target} is already there; verifying it")
    else:
        say(f"downloading {record.filename} (~{record.size_mb:.0f} MB) to {folder}")
        try:
            if record.name == "fba":
                download_google_drive(weights.FBA_DRIVE_ID, target, connect_timeout, fba_url)
            elif record.name in weights.ONNX_PERSON:
                download_file(record.url, target, connect_timeout)
            else:
                if force and target.is_file():
                    target.unlink()
                fetch_torchvision(record, folder, connect_timeout)
        except NetworkError as exc:
            hint = _manual_hint(record, target)
            raise NetworkError(f"{exc}\nOffline, or has the link moved? {hint}") from None
    if record.name == "fba":
        summary = verify_fba(target)
    elif record.name in weights.ONNX_PERSON:
        summary = verify_onnx(record, target)
    else:
        summary = verify_torchvision(record, target)
    say(f"ok: {summary}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m models.download",
        description="Download and verify the optional model weights into models/.")
    parser.add_argument("--only", choices=weights.RECORD_NAMES, action="append",
                        help="just this file (repeatable); default: "
                             f"{', '.join(DEFAULT_NAMES)}")
    parser.add_argument("--all", action="store_true",
                        help="every file, the ONNX person models "
                             f"({', '.join(weights.ONNX_PERSON)}) too")
    parser.add_argument("--models-dir", type=Path, default=None,
                        help="where to put them (default: $MODELS_DIR or models/)")
    parser.add_argument("--force", action="store_true", help="download again even if present")
    parser.add_argument("--connect-timeout", type=float, default=10.0,
                        help="seconds to wait for a server before giving up (default 10)")
    parser.add_argument("--fba-url", default=None,
                        help="download FBA.pth from this URL (a mirror) instead of Google Drive")
    args = parser.parse_args(argv)
    if args.connect_timeout <= 0:
        parser.error("--connect-timeout must be positive")
    if args.all and args.only:
        parser.error("--all and --only do not go together")
    folder = weights.models_dir(args.models_dir)
    folder.mkdir(parents=True, exist_ok=True)
    status = EXIT_OK
    for name in args.only or (weights.RECORD_NAMES if args.all else DEFAULT_NAMES):
        try:
            get(name, folder, args.force, args.connect_timeout, args.fba_url)
        except NetworkError as exc:
            say(f"error: {exc}")
            status = max(status, EXIT_NETWORK)
        except VerificationError as exc:
            say(f"error: verification failed: {exc}")
            status = max(status, EXIT_INVALID)
    return status


if __name__ == "__main__":
    sys.exit(main())
