#!/usr/bin/env python3
"""Checks a screenshot of a comparison report (a PNG from headless Chromium): the page is not
blank and every side's series colour is drawn in quantity, so a chart that renders nothing (an
SVG error, NaN coordinates, an empty series) fails.

    heavy-lab report-png SHOT.png [--sides N] [--min-pixels 400]

Standard library only: decodes 8-bit RGB/RGBA PNGs (what Chromium writes). Exit 0 when the page
passes, 1 when it does not, 2 for a file that is not such a PNG.
"""

from __future__ import annotations

import argparse
import struct
import sys
import zlib
from pathlib import Path

from heavylab.report.charts import SIDE_COLORS


def _rgb(color: str) -> tuple[int, int, int]:
    return int(color[1:3], 16), int(color[3:5], 16), int(color[5:7], 16)


# Each side's colour in the report's charts (heavylab.report.charts.SIDE_COLORS), by position.
COLORS = {f"side {i + 1} ({c})": _rgb(c) for i, c in enumerate(SIDE_COLORS)}


def decode_png(data: bytes) -> tuple[int, int, int, bytes]:
    """(width, height, bytes per pixel, raw unfiltered pixel rows)."""
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError("not a PNG file")
    pos, idat, width = 8, [], 0
    height = depth = ctype = interlace = 0
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8]
        body = data[pos + 8 : pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            width, height, depth, ctype, _, _, interlace = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat.append(body)
        elif kind == b"IEND":
            break
    if depth != 8 or ctype not in (2, 6) or interlace:
        raise ValueError(
            f"unsupported PNG (bit depth {depth}, colour type {ctype}, "
            f"interlace {interlace}): want 8-bit RGB or RGBA"
        )
    bpp = 3 if ctype == 2 else 4
    raw = zlib.decompress(b"".join(idat))
    stride = width * bpp
    out = bytearray(height * stride)
    prev = bytearray(stride)
    for y in range(height):
        f = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1 : (y + 1) * (stride + 1)])
        if f == 1:
            for i in range(bpp, stride):
                line[i] = (line[i] + line[i - bpp]) & 0xFF
        elif f == 2:
            for i in range(stride):
                line[i] = (line[i] + prev[i]) & 0xFF
        elif f == 3:
            for i in range(stride):
                left = line[i - bpp] if i >= bpp else 0
                line[i] = (line[i] + ((left + prev[i]) >> 1)) & 0xFF
        elif f == 4:
            for i in range(stride):
                a = line[i - bpp] if i >= bpp else 0
                b = prev[i]
                c = prev[i - bpp] if i >= bpp else 0
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                pred = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
                line[i] = (line[i] + pred) & 0xFF
        elif f != 0:
            raise ValueError(f"bad PNG filter {f} on row {y}")
        out[y * stride : (y + 1) * stride] = line
        prev = line
    return width, height, bpp, bytes(out)


def count_colors(path: Path, tolerance: int = 40, sides: int = 2) -> tuple[int, int, dict, int]:
    width, height, bpp, px = decode_png(path.read_bytes())
    colors = dict(list(COLORS.items())[:sides])
    counts = {name: 0 for name in colors}
    non_white = 0
    for i in range(0, len(px), bpp):
        r, g, b = px[i], px[i + 1], px[i + 2]
        if r < 245 or g < 245 or b < 245:
            non_white += 1
        for name, (cr, cg, cb) in colors.items():
            if abs(r - cr) <= tolerance and abs(g - cg) <= tolerance and abs(b - cb) <= tolerance:
                counts[name] += 1
    return width, height, counts, non_white


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("png", type=Path)
    ap.add_argument(
        "--min-pixels",
        type=int,
        default=400,
        help="pixels of each side's colour the page must show (default 400)",
    )
    ap.add_argument("--sides", type=int, default=2, help="how many sides the report compares (default 2)")
    a = ap.parse_args(argv)
    if not 2 <= a.sides <= len(COLORS):
        ap.error(f"--sides must be from 2 to {len(COLORS)}")
    try:
        width, height, counts, non_white = count_colors(a.png, sides=a.sides)
    except (OSError, ValueError, zlib.error) as err:
        print(f"heavy-lab report-png: error: {a.png}: {err}", file=sys.stderr)
        return 2
    print(
        f"{a.png}: {width}x{height}, {non_white} non-white pixels, "
        + ", ".join(f"{n}: {c} pixels" for n, c in counts.items())
    )
    bad = [n for n, c in counts.items() if c < a.min_pixels]
    if non_white < width * height // 100:
        print("heavy-lab report-png: the page is blank", file=sys.stderr)
        return 1
    if bad:
        print(
            f"heavy-lab report-png: too few pixels of {', '.join(bad)} (< {a.min_pixels}): a chart did not render",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
