"""A certificate's repeated lines are drawn once and pasted (server/registry/artwork.py):
the pasted line is the very pixels `draw.text` makes in its place."""

import pytest
from PIL import Image, ImageDraw

from server.registry import artwork


@pytest.mark.parametrize(
    ("value", "style", "anchor"),
    [
        ("12 吨二氧化碳当量", (80, True, artwork.GREEN), "mm"),
        ("自愿抵消碳排放", (29, False, artwork.INK), "la"),
        ("¥1,200.00，其中农户所得 ¥780.00", (29, False, artwork.INK), "la"),
        ("SP-360423-0001-2025-000017", (29, False, artwork.INK), "la"),
    ],
)
def test_a_pasted_line_is_the_line_drawn_in_place(value, style, anchor):
    size, bold, ink = style
    drawn = Image.new("RGB", (1200, 300), artwork.PAPER)
    ImageDraw.Draw(drawn).text(
        (600, 150), value, font=artwork._font(size, bold), fill=ink, anchor=anchor
    )
    pasted = Image.new("RGB", (1200, 300), artwork.PAPER)

    artwork._paste_line(pasted, (600, 150), value, style, anchor)
    artwork._paste_line(pasted, (600, 150), value, style, anchor)  # the second from the cache

    assert pasted.tobytes() == drawn.tobytes()
