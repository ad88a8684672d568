"""Documents people print read in Beijing time: the verification report and the village
kit (no `…Z` timestamps, no "(UTC)")."""

import re

import pypdfium2 as pdfium

from server import units
from tests import registry_world as rw
from tests.conftest import bearer

ISO = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}|\(UTC\)|\d{2}:\d{2}:\d{2}Z")


def pdf_text(data: bytes) -> str:
    document = pdfium.PdfDocument(data)
    return "".join(page.get_textpage().get_text_range() for page in document)


def test_the_verification_report_shows_beijing_times(app, client, db, world):
    with app.app_context():
        grown = rw.grow_village(db, world.village_b, trees_per_household=3)
        found = rw.verify(db, grown["calculation_id"], world.user_ids["verifier"])
    response = client.get(
        f"/api/v1/verifications/{found['id']}/report.pdf", headers=bearer(world.tokens["admin"])
    )
    text = pdf_text(response.data)
    assert f"指派：{units.when(found['assigned_at'])}" in text
    assert f"结论：{units.when(found['decided_at'])}（北京时间）" in text
    assert "计量期：2026年1月1日 至 2026年12月31日" in text
    assert ISO.findall(text) == []


def test_the_village_kit_shows_the_code_expiry_in_beijing_time(client, db, world):
    response = client.post(
        f"/api/v1/villages/{world.village_a}/kits",
        json={"tags": 0},
        headers=bearer(world.tokens["admin"]),
    )
    assert response.status_code == 200, response.get_data(as_text=True)[:300]
    text = pdf_text(response.data)
    expires = db.execute(
        "SELECT expires_at FROM enrolment_codes ORDER BY id DESC LIMIT 1"
    ).fetchone()[0]
    assert f"有效期至：{units.when(expires)}（北京时间）" in text
    assert ISO.findall(text) == []
