"""The verification report (A4 PDF, Chinese): sample, seed, every tree's result, outcome.

Its sha256 is stored with the verification (`report_sha256`); the chain outbox of the
ledger issue anchors it and fills `report_anchor_tx`.
"""

from datetime import datetime
from typing import Any

from fpdf import FPDF
from sqlite_utils import Database

from server import units
from server.registry.ratio import REJECT_RATIO
from server.registry.sampling import DBH_TOLERANCE_CM, HEIGHT_TOLERANCE_M, OUTCOMES
from village_kits.kit import SIMPLIFIED_CHINESE, _font_path

STATUS_ZH = {"passed": "通过", "partial": "部分通过（按比例核减）", "failed": "未通过（不予签发）"}


def sample_results(db: Database, verification_id: int) -> list[dict[str, Any]]:
    """Each sampled tree: claimed and re-measured DBH, height and species, the outcome, and
    whether it was within tolerance."""
    rows = db.query(
        """SELECT vs.tree_id, h.code AS household_code, t.species_id AS claimed_species,
                  m.dbh_mm AS claimed_mm, m.height_cm AS claimed_height_cm,
                  r.dbh_mm AS measured_mm, r.height_cm AS measured_height_cm,
                  r.outcome, r.id IS NOT NULL AS remeasured,
                  r.species_id AS measured_species, r.within_tolerance, r.reason,
                  r.measured_at
           FROM verification_samples vs JOIN trees t ON t.id = vs.tree_id
           JOIN households h ON h.id = t.household_id
           JOIN measurements m ON m.id = vs.claimed_measurement_id
           LEFT JOIN remeasurements r
             ON r.verification_id = vs.verification_id AND r.tree_id = vs.tree_id
           WHERE vs.verification_id = ? ORDER BY h.code, vs.tree_id""",
        [verification_id],
    )
    return [dict(row) for row in rows]


def _sizes(dbh_mm: int | None, height_cm: int | None) -> str:
    if dbh_mm is None:
        return "—"
    height = "—" if height_cm is None else f"{height_cm / 100:.1f}"
    return f"{dbh_mm / 10:.1f} / {height}"


def _pdf() -> FPDF:
    pdf = FPDF(format="A4", unit="mm")
    # One face only: parsing and subsetting a CJK face is most of a PDF's cost.
    pdf.add_font("cjk", "", _font_path(""), collection_font_number=SIMPLIFIED_CHINESE)
    pdf.set_auto_page_break(True, margin=15)
    pdf.set_creator("Sipang")
    return pdf


def render(verification: dict[str, Any], results: list[dict[str, Any]], verifier: str) -> bytes:
    """The report as PDF bytes (its creation date is the decision time, so it is stable)."""
    pdf = _pdf()
    pdf.set_title(f"四旁 核查报告 {verification['id']}")
    decided = datetime.fromisoformat(verification["decided_at"].replace("Z", "+00:00"))
    pdf.set_creation_date(decided)
    pdf.add_page()
    pdf.set_font("cjk", "", 18)
    pdf.cell(0, 12, "四旁树碳汇 · 抽样核查报告", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("cjk", "", 10.5)
    lines = [
        f"核查编号：{verification['id']}    碳汇计算：{verification['calculation_id']}",
        f"村：{verification['village_name']}（{verification['village_code']}）",
        f"计量期：{units.day(verification['period_start'])} 至 "
        f"{units.day(verification['period_end'])}    "
        f"方法学：{verification['method_version']}",
        f"抽样：{verification['population']} 棵中随机抽取 {verification['sample_size']} 棵"
        f"（≥5%，至少 30 棵），随机种子 {verification['seed']}",
        f"复测胸径和树高；容差：胸径 ±{DBH_TOLERANCE_CM:g} 厘米、树高 ±{HEIGHT_TOLERANCE_M:g} 米"
        "或该树半年的申报生长量（取大者）",
        "签发量 = 申报生长量 × 核实/申报生长量之比的单侧 95% 置信下限（比率估计）；"
        f"比值低于 {REJECT_RATIO:g} 则不予签发，须全面复测",
        f"核查员：{verifier}    指派：{units.when(verification['assigned_at'])}    "
        f"结论：{units.when(verification['decided_at'])}（北京时间）",
    ]
    for line in lines:
        pdf.multi_cell(0, 6, line, new_x="LMARGIN", new_y="NEXT")
    pdf.ln(3)
    pdf.set_font("cjk", "", 13)
    scale = verification["scale_ppm"] / 10_000
    pdf.multi_cell(
        0,
        9,
        f"结论：{STATUS_ZH[verification['status']]}    容差内 {verification['passed_trees']} 棵，"
        f"超出 {verification['failed_trees']} 棵；核实/申报比值 "
        f"{(verification.get('ratio_ppm') or 0) / 10_000:.2f}%，置信下限 "
        f"{(verification.get('lower_bound_ppm') or 0) / 10_000:.2f}%，可签发比例 {scale:.2f}%",
        new_x="LMARGIN",
        new_y="NEXT",
    )
    if verification.get("decision_note"):
        pdf.set_font("cjk", "", 10)
        pdf.multi_cell(
            0, 6, f"说明：{verification['decision_note']}", new_x="LMARGIN", new_y="NEXT"
        )
    pdf.ln(2)
    widths = (62, 42, 26, 26, 34)
    pdf.set_font("cjk", "", 9)
    for width, title in zip(
        widths, ("树木编号", "农户码", "申报 cm/m", "复测 cm/m", "结果"), strict=True
    ):
        pdf.cell(width, 7, title, border="B")
    pdf.ln()
    pdf.set_font("cjk", "", 8.5)
    for row in results:
        verdict = "容差内" if row["within_tolerance"] else "超出容差"
        labels = {"dbh": "胸径", "height": "树高", "species": "树种"} | OUTCOMES
        if row["reason"]:
            verdict += "（" + "、".join(labels[r] for r in row["reason"].split(",")) + "）"
        cells = (
            row["tree_id"],
            row["household_code"],
            _sizes(row["claimed_mm"], row["claimed_height_cm"]),
            _sizes(row["measured_mm"], row["measured_height_cm"]),
            verdict,
        )
        for width, text in zip(widths, cells, strict=True):
            pdf.cell(width, 6, text)
        pdf.ln()
    pdf.ln(4)
    pdf.set_font("cjk", "", 9)
    pdf.multi_cell(
        0,
        5,
        "本报告的 SHA-256 哈希记录在四旁登记簿中，并将锚定到账本；任何改动都会使哈希不符。"
        "抽样可用随机种子复现：random.Random(种子).sample(排序后的树木编号, 抽样数)。",
    )
    return bytes(pdf.output())
