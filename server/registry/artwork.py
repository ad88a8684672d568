"""The certificate a buyer shares: PNG (Pillow) and PDF (fpdf2), Chinese text in Noto CJK,
with a QR code to `/verify/<certificate id>`.

Each picture is drawn once per certificate and variant and kept in the instance folder
(`rendered/`, shared by every server process): a buyer's second look, the share, a court's
download cost a file read instead of ~50 ms (PNG) or ~600 ms (PDF) of CPU."""

import contextlib
import hashlib
import io
import json
import os
import threading
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import Any

import qrcode
from flask import current_app, has_app_context
from fpdf import FPDF
from PIL import Image, ImageDraw, ImageFont
from qrcode.constants import ERROR_CORRECT_M

from server import units
from server.registry.serials import ranges
from village_kits.kit import SIMPLIFIED_CHINESE, _font_path

GREEN, GOLD, INK, PAPER = (29, 107, 58), (176, 141, 62), (34, 34, 34), (251, 249, 240)
WIDTH, HEIGHT = 1600, 1130


@lru_cache(maxsize=32)
def _font(size: int, bold: bool = False) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(_font_path("B" if bold else ""), size, index=SIMPLIFIED_CHINESE)


def verify_url(base_url: str, cert_id: str) -> str:
    return f"{base_url.rstrip('/')}/verify/{cert_id}"


# One mask pattern for every code: any of the eight reads the same; choosing the best scores
# all eight in pure Python (~6 of a certificate's ~33 ms of CPU) for a code printed large.
MASK_PATTERN = 2


def qr_image(url: str, box: int = 8) -> Image.Image:
    """A QR code of `url` (error correction M, the 4-module quiet zone), `box` pixels a
    module: the modules laid out as one pixel each and scaled up, not drawn one by one."""
    code = qrcode.QRCode(error_correction=ERROR_CORRECT_M, border=4, mask_pattern=MASK_PATTERN)
    code.add_data(url)
    code.make(fit=True)
    modules = code.get_matrix()
    size = len(modules)
    pixels = bytes(0 if dark else 255 for row in modules for dark in row)
    small = Image.frombytes("L", (size, size), pixels)
    return small.resize((size * box, size * box), Image.NEAREST).convert("RGB")


def lines(cert: dict[str, Any], show_beneficiary: bool = True) -> dict[str, str]:
    """The certificate's text, shared by the PNG, the PDF and the page (the beneficiary
    replaced by 受益人未公开 when it may not be shown)."""
    doc = json.loads(cert["document"])
    if not show_beneficiary and doc["beneficiary"]:
        doc["beneficiary"] = "受益人未公开"
    villages = "、".join(v["name"] for v in doc["villages"]) or "—"
    serials, bundle = doc["serials"], doc["bundle"]
    span = (
        serials[0] if len(serials) == 1 else f"{'，'.join(ranges(serials))}（共 {len(serials)} 个）"
    )
    return {
        "tonnes": f"{doc['tonnes']} 吨二氧化碳当量",
        "beneficiary": doc["beneficiary"] or "一位匿名的支持者",
        "reason": doc["reason"] or "自愿抵消碳排放",
        "case_number": doc.get("case_number") or "",
        "bundle": f"{bundle['name']}（碳汇包 {bundle['number']} 第 {bundle['version']} 版）",
        "villages": villages,
        "vintages": "、".join(str(v) for v in doc["vintages"]),
        "serials": span,
        "date": units.day(doc["retired_on"]),
        "money": f"{units.yuan(doc['amount_fen'])}，其中农户所得 {units.yuan(doc['farmers_fen'])}",
    }


ROW_LABELS = ("用途", "碳汇包", "来源村庄", "年份", "序列号", "注销日期", "金额")
ROW_KEYS = ("reason", "bundle", "villages", "vintages", "serials", "date", "money")
# A court's retirement shows its case number (案号) as its own line, under the reason.
CASE_ROW = ("案号", "case_number")


def rows(text: dict[str, str]) -> list[tuple[str, str]]:
    """The certificate's (label, key) lines: the case number's only when it has one."""
    pairs = list(zip(ROW_LABELS, ROW_KEYS, strict=True))
    return pairs[:1] + [CASE_ROW] + pairs[1:] if text.get("case_number") else pairs


def _row_y(index: int, count: int) -> int:
    return 640 + (50 if count <= 7 else 44) * index


@lru_cache(maxsize=2)
def _background(with_case: bool = False) -> Image.Image:
    """Everything every certificate shares: frame, titles, labels (drawn once)."""
    image = Image.new("RGB", (WIDTH, HEIGHT), PAPER)
    draw = ImageDraw.Draw(image)
    draw.rectangle((24, 24, WIDTH - 24, HEIGHT - 24), outline=GREEN, width=10)
    draw.rectangle((48, 48, WIDTH - 48, HEIGHT - 48), outline=GOLD, width=3)
    for x in (70, WIDTH - 70):  # leaf-like corner marks
        for y in (70, HEIGHT - 70):
            draw.ellipse((x - 14, y - 14, x + 14, y + 14), fill=GREEN)
    middle = WIDTH // 2
    draw.text(
        (middle, 130), "四旁树碳汇 · 碳抵消证书", font=_font(64, True), fill=GREEN, anchor="mm"
    )
    draw.text(
        (middle, 200),
        "SIPANG VILLAGE TREE CARBON · RETIREMENT CERTIFICATE",
        font=_font(24),
        fill=GOLD,
        anchor="mm",
    )
    draw.text((middle, 290), "谨此证明", font=_font(34), fill=INK, anchor="mm")
    draw.text(
        (middle, 450),
        "通过购买并注销村庄四旁树的碳汇，抵消了",
        font=_font(34),
        fill=INK,
        anchor="mm",
    )
    labels = rows({"case_number": "x"} if with_case else {})
    for index, (label, _) in enumerate(labels):
        draw.text((140, _row_y(index, len(labels))), label, font=_font(28, True), fill=GREEN)
    draw.text((WIDTH - 140 - 140, 940), "扫码验证真伪", font=_font(26), fill=INK, anchor="mm")
    return image


RENDER_VERSION = 2  # raise when a drawing changes: pictures kept from before are not used


def kept(kind: str, inputs: list[Any], render: Callable[[], bytes]) -> bytes:
    """The picture `render` makes from `inputs`, drawn once and kept in `rendered/` of the
    instance folder (outside an app, drawn each time). Any change to an input (the
    certificate row, the address, the variant) names another file."""
    if not has_app_context():
        return render()
    key = json.dumps([RENDER_VERSION, kind, *inputs], sort_keys=True, default=str)
    name = f"{hashlib.sha256(key.encode()).hexdigest()}.{kind.rsplit('.', 1)[-1]}"
    folder = Path(current_app.instance_path) / "rendered"
    with contextlib.suppress(FileNotFoundError):
        return (folder / name).read_bytes()
    data = render()
    folder.mkdir(mode=0o700, exist_ok=True)
    partial = folder / f".{name}.{os.getpid()}.{threading.get_ident()}"
    partial.write_bytes(data)
    os.replace(partial, folder / name)  # whole or absent, whichever process wrote it
    return data


def render_png(cert: dict[str, Any], base_url: str, show_beneficiary: bool = True) -> bytes:
    """A 1600 × 1130 certificate image (drawn once per certificate and variant)."""
    return kept(
        "certificate.png",
        [dict(cert), base_url, show_beneficiary],
        lambda: _draw_png(cert, base_url, show_beneficiary),
    )


def _draw_png(cert: dict[str, Any], base_url: str, show_beneficiary: bool) -> bytes:
    text = lines(cert, show_beneficiary)
    image = _background(bool(text["case_number"])).copy()
    draw = ImageDraw.Draw(image)
    draw.text((WIDTH // 2, 370), text["beneficiary"], font=_font(60, True), fill=INK, anchor="mm")
    _paste_line(image, (WIDTH // 2, 540), text["tonnes"], (80, True, GREEN), "mm")
    shown = rows(text)
    for index, (_, key) in enumerate(shown):
        y = _row_y(index, len(shown))
        _paste_line(image, (300, y), _fit(draw, text[key], 29, 840), (29, False, INK))
    qr = qr_image(verify_url(base_url, cert["id"]), box=7).resize((280, 280), Image.NEAREST)
    image.paste(qr, (WIDTH - 140 - 280, 640))
    draw.text((140, HEIGHT - 135), f"证书编号 {cert['id']}", font=_font(30, True), fill=INK)
    draw.text((140, HEIGHT - 92), f"SHA-256 {cert['sha256']}", font=_font(20), fill=(90, 90, 90))
    # paper, the inks and their anti-aliasing fit one 64-colour palette, made once: a third
    # of the bytes to compress, and the QR's black and white stay exact
    out = io.BytesIO()
    image.quantize(palette=_palette(), dither=Image.Dither.NONE).save(
        out, format="PNG", compress_level=1
    )
    return out.getvalue()


def _paste_line(
    image: Image.Image, xy: tuple[int, int], value: str, style: tuple, anchor: str = "la"
) -> None:
    """Draw one line on plain paper as `draw.text` would, from the line drawn once: most of a
    certificate's lines (tonnes, reason, bundle, villages, vintages, date, money) repeat
    from one certificate to the next."""
    tile, (left, top) = _line_tile(value, *style, anchor)
    image.paste(tile, (xy[0] + left, xy[1] + top))


@lru_cache(maxsize=512)
def _line_tile(
    value: str, size: int, bold: bool, ink: tuple, anchor: str
) -> tuple[Image.Image, tuple[int, int]]:
    """A line drawn on paper, and where its box sits from the anchor point."""
    font = _font(size, bold)
    left, top, right, bottom = font.getbbox(value, anchor=anchor)
    tile = Image.new("RGB", (max(1, right - left), max(1, bottom - top)), PAPER)
    ImageDraw.Draw(tile).text((-left, -top), value, font=font, fill=ink, anchor=anchor)
    return tile, (left, top)


@lru_cache(maxsize=1)
def _palette() -> Image.Image:
    """A palette for every certificate: the background, each ink's text and a QR code."""
    sample = _background(True).copy()
    draw = ImageDraw.Draw(sample)
    for index, ink in enumerate((INK, GREEN, GOLD, (90, 90, 90))):
        sample_text = "碳汇证书 SPC-2026 王小红"
        draw.text((300, 640 + 60 * index), sample_text, font=_font(40, True), fill=ink)
    sample.paste(qr_image("https://SP.EXAMPLE.CN/verify/SPC-2026-000001", box=7), (1100, 640))
    return sample.quantize(colors=64, method=Image.Quantize.FASTOCTREE, dither=Image.Dither.NONE)


def _fit(draw: ImageDraw.ImageDraw, value: str, size: int, width: int) -> str:
    if draw.textlength(value, font=_font(size)) <= width:
        return value
    while value and draw.textlength(value + "…", font=_font(size)) > width:
        value = value[:-1]
    return value + "…"


def render_pdf(cert: dict[str, Any], base_url: str, show_beneficiary: bool = True) -> bytes:
    """The certificate on an A4 landscape page (made once per certificate and variant)."""
    return kept(
        "certificate.pdf",
        [dict(cert), base_url, show_beneficiary],
        lambda: _draw_pdf(cert, base_url, show_beneficiary),
    )


def _draw_pdf(cert: dict[str, Any], base_url: str, show_beneficiary: bool) -> bytes:
    text = lines(cert, show_beneficiary)
    pdf = FPDF(orientation="L", format="A4", unit="mm")
    # One face only: parsing and subsetting a CJK face is most of a PDF's cost.
    pdf.add_font("cjk", "", _font_path(""), collection_font_number=SIMPLIFIED_CHINESE)
    pdf.set_auto_page_break(False)
    pdf.set_title(f"四旁 碳抵消证书 {cert['id']}")
    pdf.set_creator("Sipang")
    pdf.add_page()
    pdf.set_draw_color(*GREEN)
    pdf.set_line_width(2)
    pdf.rect(8, 8, 281, 194)
    pdf.set_draw_color(*GOLD)
    pdf.set_line_width(0.6)
    pdf.rect(13, 13, 271, 184)

    def centred(y: float, value: str, size: float, style: str = "", color=INK) -> None:
        pdf.set_text_color(*color)
        pdf.set_font("cjk", "", size)
        pdf.set_xy(15, y)
        pdf.cell(267, size * 0.5, value, align="C")

    centred(24, "四旁树碳汇 · 碳抵消证书", 26, "B", GREEN)
    centred(36, "SIPANG VILLAGE TREE CARBON · RETIREMENT CERTIFICATE", 10, "", GOLD)
    centred(50, "谨此证明", 14)
    centred(60, text["beneficiary"], 24, "B")
    centred(76, "通过购买并注销村庄四旁树的碳汇，抵消了", 14)
    centred(88, text["tonnes"], 30, "B", GREEN)
    y = 110
    shown = rows(text)
    step = 8.5 if len(shown) <= 7 else 7.8
    for label, value in ((label, text[key]) for label, key in shown):
        pdf.set_xy(28, y)
        pdf.set_font("cjk", "", 11)
        pdf.set_text_color(*GREEN)
        pdf.cell(24, 6, label)
        pdf.set_font("cjk", "", 11)
        pdf.set_text_color(*INK)
        pdf.cell(160, 6, value[:70])
        y += step
    pdf.image(qr_image(verify_url(base_url, cert["id"])), x=222, y=108, w=48, h=48)
    pdf.set_font("cjk", "", 10)
    pdf.set_xy(222, 157)
    pdf.cell(48, 5, "扫码验证真伪", align="C")
    pdf.set_xy(28, 176)
    pdf.set_font("cjk", "", 11)
    pdf.cell(100, 6, f"证书编号 {cert['id']}")
    pdf.set_xy(28, 183)
    pdf.set_font("cjk", "", 8)
    pdf.set_text_color(90, 90, 90)
    pdf.cell(240, 5, f"SHA-256 {cert['sha256']}")
    return bytes(pdf.output())
