"""A video for Chromium's fake camera: printed QR codes cut from a real kit, one after another.

Chromium reads a Y4M file (`--use-file-for-fake-video-capture`) and loops it; each code is held
for a while on a grey "wall" so the scanner sees it the way a phone held to a door would.
"""

from pathlib import Path

import pypdfium2 as pdfium
import zxingcpp
from PIL import Image

WIDTH, HEIGHT, FPS = 640, 480, 10


def printed_codes(pdf: bytes, *, dpi: int = 200) -> dict[str, Image.Image]:
    """Every QR in a kit PDF, cut from its rasterised page with a quiet margin, by its text."""
    found = {}
    document = pdfium.PdfDocument(pdf)
    try:
        for page in document:
            image = page.render(scale=dpi / 72).to_pil().convert("L")
            for barcode in zxingcpp.read_barcodes(image):
                corners = barcode.position
                xs = [
                    corners.top_left.x,
                    corners.top_right.x,
                    corners.bottom_left.x,
                    corners.bottom_right.x,
                ]
                ys = [
                    corners.top_left.y,
                    corners.top_right.y,
                    corners.bottom_left.y,
                    corners.bottom_right.y,
                ]
                margin = (max(xs) - min(xs)) // 4
                box = (min(xs) - margin, min(ys) - margin, max(xs) + margin, max(ys) + margin)
                found[barcode.text] = image.crop(box)
    finally:
        document.close()
    return found


def _frame(code: Image.Image) -> bytes:
    """One 4:2:0 frame: the code centred, 300 px high, on mid grey."""
    wall = Image.new("L", (WIDTH, HEIGHT), 128)
    side = 300
    printed = code.resize((side * code.width // code.height, side), Image.Resampling.LANCZOS)
    wall.paste(printed, ((WIDTH - printed.width) // 2, (HEIGHT - printed.height) // 2))
    chroma = bytes([128]) * (WIDTH // 2 * HEIGHT // 2)  # grey: no colour
    return b"FRAME\n" + wall.tobytes() + chroma + chroma


def write_video(path: Path, codes: list[Image.Image], *, seconds_each: float = 1.5) -> Path:
    """A Y4M video showing `codes` in turn, each for `seconds_each` seconds."""
    frames_each = max(1, round(seconds_each * FPS))
    with path.open("wb") as out:
        out.write(f"YUV4MPEG2 W{WIDTH} H{HEIGHT} F{FPS}:1 Ip A1:1 C420jpeg\n".encode())
        for code in codes:
            frame = _frame(code)
            for _ in range(frames_each):
                out.write(frame)
    return path
