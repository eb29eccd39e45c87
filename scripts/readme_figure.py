"""Tile the demo's outputs into the README picture: python scripts/readme_figure.py
(run bash scripts/demo.sh first). Writes docs/img/demo.jpg."""
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent


def checkerboard(size, cell=16):
    yy, xx = np.mgrid[:size[1], :size[0]]
    board = np.where((yy // cell + xx // cell) % 2, 200, 255).astype(np.uint8)
    return Image.fromarray(np.dstack([board] * 3))


def main():
    out = ROOT / "output"
    tiles = [Image.open(ROOT / "samples" / "astronaut.jpg").convert("RGB"),
             Image.open(out / "astronaut_green.jpg").convert("RGB"),
             Image.open(out / "astronaut_rocket.jpg").convert("RGB")]
    cut = Image.open(out / "astronaut_cutout.png")
    board = checkerboard(cut.size)
    board.paste(cut, mask=cut.split()[3])
    tiles.append(board)
    side = 256
    sheet = Image.new("RGB", (side * len(tiles), side), "white")
    for i, tile in enumerate(tiles):
        sheet.paste(tile.resize((side, side), Image.LANCZOS), (i * side, 0))
    target = ROOT / "docs" / "img" / "demo.jpg"
    sheet.save(target, quality=88)
    print(f"wrote {target}")


if __name__ == "__main__":
    main()
