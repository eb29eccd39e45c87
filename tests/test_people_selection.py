"""People as instances and ``people=``: every form, in the engine and through the services.

The group photo (``tests/data/group_at_frame_edge.jpg``, from ../shared/cases) holds three
people side by side; the left one is cut by the frame's edge.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import requests

from core.errors import ParameterError
from core.images import decode_image, read_image_file
from core.people import People, Selection, parse_selection

GROUP = Path(__file__).resolve().parent / "data" / "group_at_frame_edge.jpg"
TIMEOUT = 120


def two_people(shape=(100, 200)):
    """A big disc on the left, a small one on the right, soft edges."""
    yy, xx = np.mgrid[:shape[0], :shape[1]]
    big = np.clip(30 - np.hypot(yy - 50, xx - 50), 0, 1)
    small = np.clip(15 - np.hypot(yy - 50, xx - 150), 0, 1)
    return np.maximum(big, small).astype(np.float32)


@pytest.mark.parametrize("text, expected", [
    (None, Selection()), ("all", Selection()), ("largest", Selection("largest", count=1)),
    ("2", Selection("largest", count=2)), ("index:0,2", Selection("index", indices=(0, 2))),
    ("at:10,20", Selection("at", point=(10, 20))), (" ALL ", Selection()),
])
def test_selection_forms(text, expected):
    assert parse_selection(text) == expected
    assert parse_selection(expected.as_param()) == expected


@pytest.mark.parametrize("text", ["everyone", "0", "-1", "index:", "index:a", "at:1", "1,2"])
def test_bad_selections_name_the_forms(text):
    with pytest.raises(ParameterError, match="index:I,J"):
        parse_selection(text)


def test_people_from_a_mask_and_each_selection():
    mask = two_people()
    found = People.from_mask(mask)
    assert [p.area for p in found.people] == sorted((p.area for p in found.people), reverse=True)
    assert len(found.people) == 2 and found.people[0].box[0] < 50 < found.people[1].box[0] + 100

    def kept(text):
        chosen, people = found.select(parse_selection(text))
        left, right = chosen[:, :100].max(), chosen[:, 100:].max()
        return (left > 0.5, right > 0.5), [p.selected for p in people]

    assert kept("all") == ((True, True), [True, True])
    assert kept("largest") == ((True, False), [True, False])
    assert kept("index:1") == ((False, True), [False, True])
    assert kept("at:150,50") == ((False, True), [False, True])
    assert kept("at:150,34") == ((False, True), [False, True])   # just off her edge: nearest
    with pytest.raises(ParameterError, match="nobody at 100,95"):
        found.select(parse_selection("at:100,95"))
    with pytest.raises(ParameterError, match="only 2 people"):
        found.select(parse_selection("index:2"))
    with pytest.raises(ParameterError, match="outside"):
        found.select(parse_selection("at:500,5"))


def test_soft_edges_stay_with_their_person():
    mask = two_people()
    chosen, _ = People.from_mask(mask).select(parse_selection("largest"))
    ring = (mask > 0.05) & (mask < 0.5)
    assert np.array_equal(chosen[ring][:, None].ravel() > 0, (np.mgrid[:100, :200][1] < 100)[ring])


def test_instances_from_a_backend():
    masks = np.stack([two_people() * (np.arange(200) < 100), two_people() * (np.arange(200) >= 100)])
    found = People.from_instances(masks.astype(np.float32), [0.9, 0.8])
    assert [round(p.score, 1) for p in found.people] == [0.9, 0.8]
    chosen, _ = found.select(parse_selection("index:1"))
    assert chosen[:, :100].max() == 0 and chosen[:, 100:].max() == 1


@pytest.fixture(scope="module")
def group_bytes():
    return GROUP.read_bytes()


def matte(services, data, **fields):
    return requests.post(services.matting + "/matte", files={"image": ("g.jpg", data)},
                         data={"output": "alpha", **fields}, timeout=TIMEOUT)


def person_shown(alpha, box) -> float:
    x0, y0, x1, y1 = box
    return float((alpha[y0:y1, x0:x1] > 127).mean())


def test_every_form_through_the_services(services, group_bytes):
    everyone = matte(services, group_bytes)
    assert everyone.status_code == 200, everyone.text
    people = json.loads(everyone.headers["X-People"])
    assert len(people) >= 3 and all(p["selected"] for p in people)
    boxes = [p["box"] for p in people]
    alpha_all = decode_image(everyone.content)[:, :, 0]
    shown_all = [person_shown(alpha_all, box) for box in boxes]

    def shown(**fields):
        r = matte(services, group_bytes, **fields)
        assert r.status_code == 200, r.text
        flags = [p["selected"] for p in json.loads(r.headers["X-People"])]
        alpha = decode_image(r.content)[:, :, 0]
        return flags, [person_shown(alpha, box) > 0.5 * s for box, s in zip(boxes, shown_all)]

    n = len(people)
    assert shown(people="largest") == ([True] + [False] * (n - 1), [True] + [False] * (n - 1))
    assert shown(people="2") == ([True, True] + [False] * (n - 2),) * 2
    flags, visible = shown(people="index:1,2")
    assert flags == visible == [False, True, True] + [False] * (n - 3)
    x0, y0, x1, y1 = boxes[2]
    flags, visible = shown(people=f"at:{(x0 + x1) // 2},{(y0 + y1) // 2}")
    assert flags == visible == [False, False, True] + [False] * (n - 3)
    for bad, code in (("index:9", "invalid_parameter"), ("at:400,3", "no_person_there"),
                      ("someone", "invalid_parameter")):
        r = matte(services, group_bytes, people=bad)
        assert r.status_code == 400 and r.json()["code"] == code, r.text


def test_cli_and_video_take_people(tmp_path, services):
    import subprocess
    import sys

    out = tmp_path / "largest.png"
    proc = subprocess.run([sys.executable, "inference.py", "--image_path", str(GROUP),
                           "--output_path", str(out), "--output-type", "alpha",
                           "--people", "largest", "--server", services.matting],
                          cwd=GROUP.parents[2], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "3 people found" in proc.stderr or "people found" in proc.stderr
    alpha = read_image_file(out)[:, :, 0]
    assert alpha[:, 480:830].max() == 255 and alpha[:, :300].max() < 128
    bad = subprocess.run([sys.executable, "inference.py", "--image_path", str(GROUP),
                          "--output_path", str(tmp_path / "x.png"), "--people", "who",
                          "--local"], cwd=GROUP.parents[2], capture_output=True, text=True,
                         timeout=300)
    assert bad.returncode == 2 and "index:I,J" in bad.stderr
