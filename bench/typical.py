"""How well /api/predict's "is it a digit at all?" flag separates digits from the rest.

The score (server/digits/typical.py) is the framed drawing's distance from the space of MNIST
digits; the threshold is the 99th percentile of the MNIST test set. This prints, for the
bundled digit space: the share flagged of the test set (framed as the drawing path frames
it), of test digits redrawn as 280x280 canvas PNGs, of hand-made digit strokes, and of the
things that are not digits: letters, boxes, hashes and scribbles at three pen widths, and
uniform noise. No server: the same functions the route calls.

    .venv/bin/python bench/typical.py [--mnist-dir DIR]
"""

from __future__ import annotations

import argparse
import io
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gradscope.engine.mnist import load_mnist
from gradscope.server.digits import preprocess as digits
from gradscope.server.digits import typical

NOT_DIGITS = {
    "X": [[(60, 60), (220, 220)], [(220, 60), (60, 220)]],
    "A": [[(60, 240), (140, 40), (220, 240)], [(95, 150), (185, 150)]],
    "H": [[(70, 40), (70, 240)], [(210, 40), (210, 240)], [(70, 140), (210, 140)]],
    "box": [[(60, 60), (220, 60), (220, 220), (60, 220), (60, 60)]],
    "hash": [
        [(100, 40), (100, 240)],
        [(180, 40), (180, 240)],
        [(40, 100), (240, 100)],
        [(40, 180), (240, 180)],
    ],
    "scribble": [[(40, 100), (240, 120), (50, 160), (230, 200), (60, 60), (200, 250)]],
    "spiral": [[(140 + r * np.cos(r / 12), 140 + r * np.sin(r / 12)) for r in range(0, 110, 4)]],
}
DIGITS = {
    "1": [[(140, 40), (140, 240)]],
    "7": [[(60, 50), (220, 50), (120, 240)]],
    "4": [[(180, 240), (180, 40), (60, 170), (220, 170)]],
    "0": [[(140, 40), (200, 80), (210, 160), (140, 240), (80, 200), (70, 100), (140, 40)]],
    "2": [[(70, 80), (140, 40), (210, 80), (70, 240), (220, 240)]],
}
WIDTHS = (12, 18, 26)


def drawn(strokes: list, width: int) -> np.ndarray:
    img = Image.new("L", (280, 280), 255)
    pen = ImageDraw.Draw(img)
    for s in strokes:
        pen.line([tuple(map(float, p)) for p in s], fill=0, width=width, joint="curve")
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return digits.preprocess(digits.decode_image(buf.getvalue()))


def canvas(digit: np.ndarray) -> np.ndarray:
    ink = np.round((1 - digit) * 255).astype(np.uint8)
    img = Image.fromarray(ink).resize((280, 280), Image.Resampling.BILINEAR)
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return digits.preprocess(digits.decode_image(buf.getvalue()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mnist-dir", type=Path, default=None)
    args = parser.parse_args()
    space = typical.load()
    x, _ = load_mnist("test", directory=args.mnist_dir, download=False)
    x = x.reshape(-1, 28, 28)
    flagged = lambda imgs: float(np.mean(space.scores(np.stack(imgs)) > space.threshold))  # noqa: E731
    print(f"threshold {space.threshold:.3f} ({len(space.components)} components)")
    print(f"MNIST test set, framed: {flagged(typical.framed(x)):.2%} flagged")
    picks = np.random.default_rng(7).choice(len(x), 1000, replace=False)
    print(f"1,000 test digits redrawn as canvas PNGs: {flagged([canvas(x[i]) for i in picks]):.2%}")
    for group, shapes in (("hand-drawn digits", DIGITS), ("not digits", NOT_DIGITS)):
        rows = {k: flagged([drawn(s, w) for w in WIDTHS]) for k, s in shapes.items()}
        print(f"{group} (pen widths {WIDTHS}):", ", ".join(f"{k} {v:.0%}" for k, v in rows.items()))
    noise = np.random.default_rng(0).random((1000, 28, 28))
    print(f"uniform noise (1,000 images, as given): {flagged(list(noise)):.2%}")


if __name__ == "__main__":
    main()
