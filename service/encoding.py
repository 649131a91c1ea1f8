"""Pictures going out: PNG bytes and the labelled grid of synthesised faces."""

from __future__ import annotations

import io
import math

from PIL import Image, ImageDraw, ImageFont

#: Grid tiles are enlarged (nearest neighbour) to at least this many pixels, so 48x48 faces stay visible.
GRID_MIN_TILE = 96
_LABEL_HEIGHT = 16
_GAP = 4


def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def labelled_grid(tiles: list[tuple[str, Image.Image]]) -> Image.Image:
    """One row of equally sized tiles, each with its label underneath, on a white background."""
    if not tiles:
        raise ValueError("a grid needs at least one tile")
    size = tiles[0][1].width
    factor = max(1, math.ceil(GRID_MIN_TILE / size))
    side = size * factor
    width = len(tiles) * side + (len(tiles) + 1) * _GAP
    height = side + _LABEL_HEIGHT + 2 * _GAP
    grid = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(grid)
    font = ImageFont.load_default()
    for i, (label, tile) in enumerate(tiles):
        left = _GAP + i * (side + _GAP)
        grid.paste(tile.convert("RGB").resize((side, side), Image.Resampling.NEAREST), (left, _GAP))
        text_width = draw.textlength(label, font=font)
        draw.text((left + (side - text_width) / 2, _GAP + side + 2), label, fill=(0, 0, 0), font=font)
    return grid
