"""Draw the small figures of the sample issues (plain Python, no imaging library).

Run once: ``python tools/make_sample_images.py``; the PNGs are committed.
"""

import math
import struct
import zlib
from pathlib import Path

OUT = Path(__file__).resolve().parent.parent / "issues" / "img"


def png(path: Path, pixels: list[list[tuple[int, int, int]]]) -> None:
    h, w = len(pixels), len(pixels[0])
    raw = b"".join(b"\0" + bytes(c for px in row for c in px) for row in pixels)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    data = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
    data += chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")
    path.write_bytes(data)


def canvas(w, h, bg=(255, 255, 255)):
    return [[bg] * w for _ in range(h)]


def rect(c, x0, y0, x1, y1, col):
    for y in range(max(0, y0), min(len(c), y1)):
        row = c[y]
        for x in range(max(0, x0), min(len(row), x1)):
            row[x] = col


def line(c, pts, col, thick=2):
    for (x0, y0), (x1, y1) in zip(pts, pts[1:], strict=False):
        n = int(max(abs(x1 - x0), abs(y1 - y0))) + 1
        for i in range(n):
            x = x0 + (x1 - x0) * i / n
            y = y0 + (y1 - y0) * i / n
            left, top = int(x) - thick // 2, int(y) - thick // 2
            rect(c, left, top, left + thick, top + thick, col)


def axes(c, w, h):
    grey = (120, 128, 140)
    line(c, [(40, 20), (40, h - 30), (w - 20, h - 30)], grey, 2)
    for i in range(1, 5):
        y = 20 + (h - 50) * i // 5
        rect(c, 41, y, w - 20, y + 1, (232, 235, 240))


def scaling():
    w, h = 480, 260
    c = canvas(w, h)
    axes(c, w, h)
    up = [(40 + x, h - 30 - 180 * (1 - math.exp(-x / 140))) for x in range(0, 420, 6)]
    flat = [(40 + x, h - 30 - 120 * (1 - math.exp(-x / 90)) + (x / 420) ** 2 * 40) for x in range(0, 420, 6)]
    line(c, up, (26, 95, 180), 3)
    line(c, flat, (214, 96, 36), 3)
    png(OUT / "scaling-curves.png", c)


def tiles():
    w, h = 480, 240
    c = canvas(w, h, (246, 247, 249))
    palette = [(90, 140, 80), (200, 170, 90), (70, 120, 170), (160, 90, 70), (120, 160, 170), (190, 200, 120)]
    for gy in range(4):
        for gx in range(8):
            col = palette[(gx * 3 + gy * 5) % len(palette)]
            x, y = 12 + gx * 58, 12 + gy * 56
            rect(c, x, y, x + 50, y + 48, col)
            rect(c, x + 8, y + 30, x + 42, y + 40, tuple(min(255, v + 50) for v in col))
    png(OUT / "pass-tiles.png", c)


def bars():
    w, h = 480, 240
    c = canvas(w, h)
    axes(c, w, h)
    values = [0.82, 0.88, 0.91, 0.95, 0.99]
    for i, v in enumerate(values):
        x = 70 + i * 80
        col = (26, 95, 180) if i == len(values) - 1 else (160, 172, 188)
        rect(c, x, int(h - 30 - (v - 0.7) / 0.3 * 190), x + 50, h - 31, col)
    png(OUT / "patchcore-bars.png", c)


def blocks():
    w, h = 480, 200
    c = canvas(w, h, (250, 250, 252))
    for i in range(6):
        x = 20 + i * 76
        col = (26, 95, 180) if i % 2 else (214, 96, 36)
        rect(c, x, 60, x + 60, 140, col)
        if i < 5:
            line(c, [(x + 60, 100), (x + 76, 100)], (90, 90, 90), 2)
    png(OUT / "mobilevit-blocks.png", c)


if __name__ == "__main__":
    OUT.mkdir(parents=True, exist_ok=True)
    scaling()
    tiles()
    bars()
    blocks()
