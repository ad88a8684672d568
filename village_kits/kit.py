"""The printable village kit (A4 PDF): door plates, tree tags, the measurer's enrolment code
and a one-page instruction sheet in Chinese. No personal data is printed anywhere.

QR codes are drawn as vector squares, so they stay sharp at 300 dpi and beyond; every label
has cut marks at its corners.
"""

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from fpdf import FPDF
from fpdf.enums import WrapMode

from village_kits.qr import qr_matrix

FONT_DIRS = ("/usr/share/fonts/opentype/noto", "/usr/share/fonts/truetype/noto")
FONT_FILES = {"": "NotoSansCJK-Regular.ttc", "B": "NotoSansCJK-Bold.ttc"}
SIMPLIFIED_CHINESE = 2  # the SC face in the Noto CJK collection
PAGE_W, PAGE_H, MARGIN = 210, 297, 12
CUT_MARK = 3  # mm


@dataclass(frozen=True)
class Plate:
    seq: int
    code: str
    url: str


@dataclass(frozen=True)
class Tag:
    tag: str
    url: str


@dataclass(frozen=True)
class Enrolment:
    measurer: str
    code: str
    url: str
    expires_at: str  # as the kit prints it, e.g. 2026年12月8日 14:05（北京时间）


@dataclass(frozen=True)
class VillageKit:
    county_name: str
    village_name: str
    village_code: str
    plates: list[Plate]
    tags: list[Tag]
    enrolment: Enrolment | None
    made_at: datetime  # in the county's time zone: the kit prints its calendar day


def _font_path(style: str) -> str:
    for folder in FONT_DIRS:
        path = Path(folder) / FONT_FILES[style]
        if path.exists():
            return str(path)
    raise FileNotFoundError("the Noto CJK font is missing: install Debian's fonts-noto-cjk")


class _Kit(FPDF):
    def __init__(self) -> None:
        super().__init__(format="A4", unit="mm")
        self.set_auto_page_break(False)
        for style in FONT_FILES:
            self.add_font(
                "cjk", style, _font_path(style), collection_font_number=SIMPLIFIED_CHINESE
            )
        self.set_title("四旁 Sipang 村级工具包")
        self.set_creator("Sipang")

    def text_at(
        self,
        x: float,
        y: float,
        w: float,
        text: str,
        size: float,
        style: str = "",
        align: str = "C",
    ) -> None:
        self.set_font("cjk", style, size)
        self.set_xy(x, y)
        self.cell(w, size * 0.45, text, align=align)

    def qr(self, content: str, x: float, y: float, size: float) -> None:
        matrix = qr_matrix(content)
        module = size / len(matrix)
        self.set_fill_color(0, 0, 0)
        for row, cells in enumerate(matrix):
            column = 0
            while column < len(cells):  # one rectangle per run of dark modules
                if not cells[column]:
                    column += 1
                    continue
                start = column
                while column < len(cells) and cells[column]:
                    column += 1
                self.rect(
                    x + start * module,
                    y + row * module,
                    (column - start) * module,
                    module,
                    style="F",
                )

    def cut_marks(self, x: float, y: float, w: float, h: float) -> None:
        self.set_draw_color(120, 120, 120)
        self.set_line_width(0.15)
        for cx, dx in ((x, -1), (x + w, 1)):
            for cy, dy in ((y, -1), (y + h, 1)):
                self.line(cx + dx * 1, cy, cx + dx * (1 + CUT_MARK), cy)
                self.line(cx, cy + dy * 1, cx, cy + dy * (1 + CUT_MARK))


def _grid(columns: int, rows: int, width: float, height: float):
    gap_x = (PAGE_W - 2 * MARGIN - columns * width) / max(columns - 1, 1)
    gap_y = (PAGE_H - 2 * MARGIN - 14 - rows * height) / max(rows - 1, 1)
    for row in range(rows):
        for column in range(columns):
            yield MARGIN + column * (width + gap_x), MARGIN + 14 + row * (height + gap_y)


def _page_heading(pdf: _Kit, kit: VillageKit, title: str) -> None:
    pdf.add_page()
    pdf.text_at(
        MARGIN,
        MARGIN,
        PAGE_W - 2 * MARGIN,
        f"{kit.county_name} {kit.village_name}（{kit.village_code}） · {title}",
        11,
        "B",
        "L",
    )


PLATE_W, PLATE_H, PLATE_QR = 88, 50, 30


def _plates(pdf: _Kit, kit: VillageKit) -> None:
    per_page = 2 * 5
    for start in range(0, len(kit.plates), per_page):
        _page_heading(pdf, kit, "门牌（一户一码），沿角线裁开，贴于门旁避雨处")
        for plate, (x, y) in zip(
            kit.plates[start : start + per_page], _grid(2, 5, PLATE_W, PLATE_H), strict=False
        ):
            pdf.cut_marks(x, y, PLATE_W, PLATE_H)
            pdf.set_draw_color(29, 107, 58)
            pdf.set_line_width(0.6)
            pdf.rect(x, y, PLATE_W, PLATE_H)
            pdf.qr(plate.url, x + 3, y + (PLATE_H - PLATE_QR) / 2, PLATE_QR)
            text_x, text_w = x + PLATE_QR + 6, PLATE_W - PLATE_QR - 9
            pdf.text_at(text_x, y + 5, text_w, "四旁碳汇 · 一户一码", 9, "", "L")
            pdf.text_at(text_x, y + 12, text_w, kit.village_name, 14, "B", "L")
            pdf.text_at(text_x, y + 21, text_w, f"第 {plate.seq:04d} 户", 14, "B", "L")
            village, seq, check = plate.code.split("-")
            pdf.text_at(text_x, y + 31, text_w, village, 10, "", "L")
            pdf.text_at(text_x, y + 37, text_w, f"{seq}-{check}", 18, "B", "L")


TAG_W, TAG_H, TAG_QR = 44, 24, 18


def _tags(pdf: _Kit, kit: VillageKit) -> None:
    per_page = 4 * 10
    for start in range(0, len(kit.tags), per_page):
        _page_heading(pdf, kit, "树牌：登记新树时扫码绑定，挂于树干1.3米以上")
        for tag, (x, y) in zip(
            kit.tags[start : start + per_page], _grid(4, 10, TAG_W, TAG_H), strict=False
        ):
            pdf.cut_marks(x, y, TAG_W, TAG_H)
            pdf.qr(tag.url, x + 1, y + (TAG_H - TAG_QR) / 2, TAG_QR)
            number = tag.tag.split("-", 1)[1]
            pdf.text_at(x + TAG_QR + 2, y + 7, TAG_W - TAG_QR - 3, "树牌", 7, "", "L")
            pdf.text_at(x + TAG_QR + 2, y + 12, TAG_W - TAG_QR - 3, number, 11, "B", "L")


INSTRUCTIONS = (
    "1．用手机自带浏览器（不要用微信内置浏览器）打开本页二维码，按提示注册手机。注册码只能用一次，过期请向乡镇索取新工具包。",
    "2．点击“添加到主屏幕”，以后没有信号也能打开。",
    "3．到农户门前，扫描门牌二维码，进入该户页面。扫不出时，手动输入门牌上的编码。",
    "4．登记新树：选树种和位置（宅旁、村旁、路旁、水旁），在离地1.3米处量胸径（厘米），测树高（米），拍一张整株照片。多干树逐干量胸径。挂上树牌并扫码绑定。",
    "5．每年复测同一棵树：扫树牌或在列表中选它。树死了或被砍了，如实标记。",
    "6．所有记录先存在手机里，屏幕上方显示“待上传”条数；有信号时自动上传，不会丢失、不会重复。",
    "7．数字明显不对时（如胸径变小、长得过快），手机会提示，请当场复核；核查员会抽样复测。",
    "8．门牌丢失或损坏，请报村委会补发新门牌，旧门牌随即作废。",
)


def _instructions(pdf: _Kit, kit: VillageKit) -> None:
    made = kit.made_at
    pdf.add_page()
    pdf.text_at(MARGIN, MARGIN, PAGE_W - 2 * MARGIN, "村碳汇计量员使用说明", 20, "B")
    pdf.text_at(
        MARGIN,
        MARGIN + 12,
        PAGE_W - 2 * MARGIN,
        f"{kit.county_name} {kit.village_name}（{kit.village_code}）",
        12,
    )
    y = MARGIN + 24
    if kit.enrolment:
        size = 50
        pdf.cut_marks(MARGIN, y, size + 4, size + 4)
        pdf.qr(kit.enrolment.url, MARGIN + 2, y + 2, size)
        left = MARGIN + size + 10
        width = PAGE_W - MARGIN - left
        pdf.text_at(left, y + 4, width, "手机注册二维码（一次有效）", 13, "B", "L")
        pdf.text_at(left, y + 14, width, f"计量员：{kit.enrolment.measurer}", 11, "", "L")
        pdf.text_at(left, y + 22, width, f"注册码：{kit.enrolment.code}", 13, "B", "L")
        pdf.text_at(left, y + 31, width, f"有效期至：{kit.enrolment.expires_at}", 10, "", "L")
        pdf.text_at(left, y + 39, width, "用后即失效，请勿拍照外传。", 10, "", "L")
        y += size + 14
    pdf.set_font("cjk", "", 12)
    for line in INSTRUCTIONS:
        pdf.set_xy(MARGIN, y)
        pdf.multi_cell(PAGE_W - 2 * MARGIN, 7, line, align="L", wrapmode=WrapMode.CHAR)
        y = pdf.get_y() + 3
    pdf.text_at(
        MARGIN,
        PAGE_H - MARGIN - 6,
        PAGE_W - 2 * MARGIN,
        f"本工具包由四旁 Sipang 生成 · {made.year}年{made.month}月{made.day}日 · "
        "门牌与树牌不含任何个人信息",
        9,
    )


def build_kit(kit: VillageKit) -> bytes:
    """The kit as PDF bytes: instructions and enrolment first, then plates, then tags."""
    pdf = _Kit()
    _instructions(pdf, kit)
    _plates(pdf, kit)
    _tags(pdf, kit)
    return bytes(pdf.output())
