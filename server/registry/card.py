"""The portrait share card (1080 × 1440, 3:4 as WeChat Moments shows it): the villages, up
to three photos of the bundle's trees, the tonnes, and a QR code to `/verify/<id>`."""

import io
import json
from typing import Any

from PIL import Image, ImageDraw, ImageOps
from sqlite_utils import Database

from server.photos import blob_paths
from server.registry import bundles
from server.registry.artwork import GOLD, GREEN, INK, _fit, _font, kept, qr_image, verify_url

WIDTH, HEIGHT = 1080, 1440
LEAF = (236, 244, 234)


def _photo(sha256: str, size: tuple[int, int]) -> Image.Image | None:
    path = blob_paths(sha256)[0]
    try:
        with Image.open(path) as original:
            picture = ImageOps.exif_transpose(original).convert("RGB")
    except (OSError, ValueError, Image.DecompressionBombError):
        return None
    return ImageOps.fit(picture, size)


def render_card(
    db: Database, cert: dict[str, Any], base_url: str, show_beneficiary: bool = False
) -> bytes:
    """The card as PNG; the beneficiary only when it may be shown (drawn once per
    certificate, variant and photos)."""
    photos = list(bundles.photos(db, cert["bundle_id"], limit=3))
    return kept(
        "card.png",
        [dict(cert), base_url, show_beneficiary, photos],
        lambda: _draw_card(cert, base_url, show_beneficiary, photos),
    )


def _draw_card(
    cert: dict[str, Any], base_url: str, show_beneficiary: bool, photos: list[str]
) -> bytes:
    doc = json.loads(cert["document"])
    image = Image.new("RGB", (WIDTH, HEIGHT), LEAF)
    draw = ImageDraw.Draw(image)
    draw.rectangle((0, 0, WIDTH, 250), fill=GREEN)
    draw.text(
        (WIDTH // 2, 95), "我为村庄的树木买了碳汇", font=_font(60, True), fill="white", anchor="mm"
    )
    draw.text(
        (WIDTH // 2, 180),
        "四旁树碳汇 · 农户分成次日到账",
        font=_font(34),
        fill=(220, 236, 220),
        anchor="mm",
    )
    villages = "、".join(v["name"] for v in doc["villages"]) or "四旁村庄"
    draw.text(
        (WIDTH // 2, 320),
        _fit(draw, villages, 52, WIDTH - 120),
        font=_font(52, True),
        fill=INK,
        anchor="mm",
    )
    tile = (320, 320) if photos else None
    if tile:
        gap = (WIDTH - len(photos) * tile[0]) // (len(photos) + 1)
        for index, sha256 in enumerate(photos):
            picture = _photo(sha256, tile)
            if picture is not None:
                image.paste(picture, (gap + index * (tile[0] + gap), 380))
    else:
        draw.text((WIDTH // 2, 540), "🌳", font=_font(120), fill=GREEN, anchor="mm")
    draw.text(
        (WIDTH // 2, 800), f"{doc['tonnes']} 吨", font=_font(150, True), fill=GREEN, anchor="mm"
    )
    draw.text((WIDTH // 2, 905), "二氧化碳当量 · 已注销", font=_font(40), fill=INK, anchor="mm")
    who = doc["beneficiary"] if show_beneficiary and doc["beneficiary"] else None
    line = f"{who} · {doc['retired_on']}" if who else doc["retired_on"]
    draw.text(
        (WIDTH // 2, 975), _fit(draw, line, 36, WIDTH - 120), font=_font(36), fill=GOLD, anchor="mm"
    )
    qr = qr_image(verify_url(base_url, cert["id"]), box=8).resize((300, 300), Image.NEAREST)
    image.paste(qr, (WIDTH // 2 - 150, 1030))
    draw.text(
        (WIDTH // 2, 1365),
        f"长按识别二维码验证 · 证书 {cert['id']}",
        font=_font(32),
        fill=INK,
        anchor="mm",
    )
    out = io.BytesIO()
    image.save(out, format="PNG", compress_level=1)
    return out.getvalue()
