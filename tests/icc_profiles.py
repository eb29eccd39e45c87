"""ICC profiles built here for the colour tests: Adobe RGB (1998), Display P3 and a CMYK
print profile, written byte by byte from the ICC.1 specification (v2 matrix/TRC display
profiles; a ``lut16Type`` A2B0 table for CMYK). Pillow's ImageCms only creates sRGB, Lab
and XYZ profiles, and the machine has no ICC files, so the tests make their own.

Each builder returns the profile's bytes, to embed with ``Image.save(..., icc_profile=)``
or open with ``ImageCms.ImageCmsProfile(io.BytesIO(data))``.
"""
from __future__ import annotations

import struct

import numpy as np

D50 = np.array([0.9642, 1.0, 0.8249])
D65_XY = (0.3127, 0.3290)
# Bradford chromatic adaptation, as ICC v2 display profiles use to reach the D50 PCS.
_BRADFORD = np.array([[0.8951, 0.2664, -0.1614],
                      [-0.7502, 1.7135, 0.0367],
                      [0.0389, -0.0685, 1.0296]])


def _xyz(x: float, y: float) -> np.ndarray:
    return np.array([x / y, 1.0, (1 - x - y) / y])


def rgb_to_xyz_d50(primaries, white=D65_XY) -> np.ndarray:
    """3 x 3 matrix from linear RGB to D50 XYZ for the given xy primaries and white."""
    cols = np.stack([_xyz(*p) for p in primaries], axis=1)
    w = _xyz(*white)
    m = cols * np.linalg.solve(cols, w)
    src, dst = _BRADFORD @ w, _BRADFORD @ D50
    adapt = np.linalg.inv(_BRADFORD) @ np.diag(dst / src) @ _BRADFORD
    return adapt @ m


def _s15(v: float) -> bytes:
    return struct.pack(">i", int(round(v * 65536)))


def _xyz_tag(xyz) -> bytes:
    return b"XYZ \0\0\0\0" + b"".join(_s15(v) for v in xyz)


def _desc_tag(text: str) -> bytes:
    ascii_ = text.encode("ascii") + b"\0"
    return (b"desc\0\0\0\0" + struct.pack(">I", len(ascii_)) + ascii_
            + struct.pack(">II", 0, 0) + struct.pack(">HB", 0, 0) + b"\0" * 67)


def _text_tag(text: str) -> bytes:
    return b"text\0\0\0\0" + text.encode("ascii") + b"\0"


def _gamma_curve(gamma: float) -> bytes:
    return b"curv\0\0\0\0" + struct.pack(">IH", 1, int(round(gamma * 256))) + b"\0\0"


def _srgb_curve(n: int = 1024) -> bytes:
    v = np.linspace(0, 1, n)
    lin = np.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4)
    table = np.round(lin * 65535).astype(">u2").tobytes()
    return b"curv\0\0\0\0" + struct.pack(">I", n) + table


def _profile(device_class: bytes, colour_space: bytes, pcs: bytes, tags) -> bytes:
    """Assemble header, tag table and tag data (each tag 4-byte aligned)."""
    table, data = [], b""
    offset = 128 + 4 + 12 * len(tags)
    for sig, body in tags:
        table.append(struct.pack(">4sII", sig, offset + len(data), len(body)))
        data += body + b"\0" * (-len(body) % 4)
    size = offset + len(data)
    header = (struct.pack(">I", size) + b"\0\0\0\0" + struct.pack(">I", 0x02100000)
              + device_class + colour_space + pcs + b"\0" * 12 + b"acsp" + b"\0" * 24
              + struct.pack(">I", 0) + b"".join(_s15(v) for v in D50) + b"\0" * 4
              + b"\0" * 16 + b"\0" * 28)
    assert len(header) == 128
    return header + struct.pack(">I", len(tags)) + b"".join(table) + data


def rgb_profile(name: str, primaries, trc: bytes) -> bytes:
    m = rgb_to_xyz_d50(primaries)
    return _profile(b"mntr", b"RGB ", b"XYZ ", [
        (b"desc", _desc_tag(name)), (b"cprt", _text_tag("No copyright, test profile")),
        (b"wtpt", _xyz_tag(D50)),
        (b"rXYZ", _xyz_tag(m[:, 0])), (b"gXYZ", _xyz_tag(m[:, 1])), (b"bXYZ", _xyz_tag(m[:, 2])),
        (b"rTRC", trc), (b"gTRC", trc), (b"bTRC", trc)])


SRGB_PRIMARIES = [(0.64, 0.33), (0.30, 0.60), (0.15, 0.06)]
ADOBE_PRIMARIES = [(0.64, 0.33), (0.21, 0.71), (0.15, 0.06)]
P3_PRIMARIES = [(0.680, 0.320), (0.265, 0.690), (0.150, 0.060)]


def adobe_rgb() -> bytes:
    """Adobe RGB (1998): wide green primary, gamma 563/256."""
    return rgb_profile("Adobe RGB (1998) compatible, test", ADOBE_PRIMARIES, _gamma_curve(563 / 256))


def display_p3() -> bytes:
    """Display P3: DCI-P3 primaries, D65 white, the sRGB tone curve (what phones write)."""
    return rgb_profile("Display P3 compatible, test", P3_PRIMARIES, _srgb_curve())


def _lab(xyz_d50: np.ndarray) -> np.ndarray:
    t = xyz_d50 / D50
    f = np.where(t > (6 / 29) ** 3, np.cbrt(t), t / (3 * (6 / 29) ** 2) + 4 / 29)
    return np.stack([116 * f[..., 1] - 16, 500 * (f[..., 0] - f[..., 1]),
                     200 * (f[..., 1] - f[..., 2])], axis=-1)


def cmyk_print(grid: int = 9) -> bytes:
    """A CMYK output profile (A2B0 only: CMYK -> Lab) for a press with dot gain on a warm
    paper: coverage ``1 - (1 - v) ** 1.3`` per ink, the paper at 96/95/90 % of white, the
    inks multiplied as sRGB colours. Enough to tell a colour-managed decode (which uses it)
    from a naive one (``R = (255 - C)(255 - K) / 255``)."""
    axis = np.linspace(0, 1, grid)
    c, m, y, k = np.meshgrid(axis, axis, axis, axis, indexing="ij")  # first channel slowest

    def cover(v):
        return 1 - (1 - v) ** 1.3

    paper = np.array([0.96, 0.95, 0.90])
    rgb = np.stack([(1 - cover(c)), (1 - cover(m)), (1 - cover(y))], axis=-1)
    rgb = rgb * (1 - cover(k))[..., None] * paper
    lin = np.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4)
    lab = _lab(lin @ rgb_to_xyz_d50(SRGB_PRIMARIES).T).reshape(-1, 3)
    # lut16 legacy Lab encoding: L 0..100 -> 0..0xFF00, a/b -128..127.996 -> 0..0xFFFF.
    enc = np.stack([lab[:, 0] / 100 * 0xFF00, (lab[:, 1] + 128) * 256, (lab[:, 2] + 128) * 256], axis=1)
    clut = np.clip(np.round(enc), 0, 65535).astype(">u2").tobytes()
    identity = np.array([0, 65535], ">u2").tobytes()
    body = (b"mft2\0\0\0\0" + struct.pack(">BBBB", 4, 3, grid, 0)
            + b"".join(_s15(v) for v in np.eye(3).ravel()) + struct.pack(">HH", 2, 2)
            + identity * 4 + clut + identity * 3)
    return _profile(b"prtr", b"CMYK", b"Lab ", [
        (b"desc", _desc_tag("CMYK press with dot gain, test")),
        (b"cprt", _text_tag("No copyright, test profile")), (b"wtpt", _xyz_tag(D50)),
        (b"A2B0", body)])


def grey_gamma(gamma: float = 1.8) -> bytes:
    """A grey display profile with a plain gamma (old Mac scans used 1.8)."""
    return _profile(b"mntr", b"GRAY", b"XYZ ", [
        (b"desc", _desc_tag(f"Grey gamma {gamma}, test")),
        (b"cprt", _text_tag("No copyright, test profile")), (b"wtpt", _xyz_tag(D50)),
        (b"kTRC", _gamma_curve(gamma))])
