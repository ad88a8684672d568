"""The printable village kit: rasterised at 300 dpi, every QR decoded and followed."""

import re
from dataclasses import dataclass
from urllib.parse import urlsplit

import pypdfium2 as pdfium
import pytest
import zxingcpp
from click.testing import CliRunner
from conftest import BANK, ID_NUMBER, PHONE, bearer
from PIL import Image

from server import create_app, rosters, villages
from server.cli import main
from server.db import connect, get_db
from village_kits import codes
from village_kits.roster import roster_xlsx

DPI = 300
SEEDED_NAME = "张三丰"
DEMO_VILLAGE = "360423101201"


@dataclass
class Page:
    image: Image.Image
    text: str
    barcodes: list


def rasterise(pdf: bytes) -> list[Page]:
    """Every page at 300 dpi, its text and every barcode zxing-cpp finds on it."""
    document = pdfium.PdfDocument(pdf)
    pages = []
    try:
        for page in document:
            image = page.render(scale=DPI / 72).to_pil()
            text = page.get_textpage().get_text_range()
            pages.append(Page(image, text, zxingcpp.read_barcodes(image)))
    finally:
        document.close()
    return pages


def qr_texts(pages: list[Page]) -> list[str]:
    return [barcode.text for page in pages for barcode in page.barcodes]


def check_every_qr(pages: list[Page]) -> None:
    for number, page in enumerate(pages, start=1):
        for barcode in page.barcodes:
            assert barcode.format == zxingcpp.BarcodeFormat.QRCode, (number, barcode.text)
            assert barcode.ec_level == "Q", (number, barcode.text)
            assert int(barcode.extra["Version"]) <= 3, (number, barcode.text)
            assert barcode.valid


def kinds(texts: list[str]) -> dict[str, list[str]]:
    """QR contents by kind: plates (/H/), tags (/T/) and enrolment (/E/)."""
    found: dict[str, list[str]] = {"H": [], "T": [], "E": []}
    for text in texts:
        match = re.fullmatch(r"HTTPS?://[A-Z0-9.:\-]+/([HTE])/([0-9A-Z\-]+)", text)
        assert match, text
        found[match.group(1)].append(match.group(2))
    return found


def build(client, world, village_code: str | None = None, tags: int = 12):
    response = client.post(
        f"/api/v1/villages/{village_code or world.village_a}/kits?tags={tags}",
        headers=bearer(world.tokens["admin"]),
    )
    assert response.status_code == 200, response.get_data(as_text=True)[:500]
    return response


def add_households(app, village_code: str, count: int) -> None:
    people = [
        {"head_name": f"王{n}", "phone": f"1390000{n:04d}", "door_number": f"{n}号"}
        for n in range(count)
    ]
    with app.app_context():
        rosters.import_roster(
            get_db(), roster_xlsx(people), "r.xlsx", villages.get_village(village_code), None
        )


def active_households(db, village_code: str) -> dict[str, int]:
    return {
        row["code"]: row["seq"]
        for row in db.query(
            """SELECT h.code, h.seq FROM households h JOIN villages v ON v.id = h.village_id
               WHERE v.code = ? AND h.status = 'active'""",
            [village_code],
        )
    }


def test_every_qr_on_the_kit_is_readable_small_and_resolves(app, client, db, world, tmp_path):
    add_households(app, world.village_a, 11)  # 12 plates: two sheets of ten
    expected = active_households(db, world.village_a)

    response = build(client, world, tags=12)

    assert response.mimetype == "application/pdf"
    pages = rasterise(response.data)
    check_every_qr(pages)
    found = kinds(qr_texts(pages))
    assert sorted(found["H"]) == sorted(expected)  # one plate per active household, no more
    assert len(found["E"]) == 1
    for code, seq in expected.items():
        [url] = [t for t in qr_texts(pages) if t.endswith(f"/H/{code}")]
        assert url == url.upper()
        path = urlsplit(url).path
        for variant in (path, path.lower(), "/h/" + code.lower(), "/H/" + code):
            page = client.get(variant)
            assert page.status_code == 200, variant
            html = page.get_data(as_text=True)
            assert f"第 {seq:04d} 户" in html and code in html and "长水村" in html
        assert any(f"第 {seq:04d} 户" in page.text and code[13:] in page.text for page in pages)
    assert len(found["T"]) == 12
    assert all(codes.is_tag(tag) for tag in found["T"])
    assert sorted(found["T"]) == [codes.make_tag(world.village_a, n) for n in range(1, 13)]
    for url in qr_texts(pages):
        if "/T/" in url:  # an unbound tag's page says how to bind it
            response = client.get(urlsplit(url).path)
            assert response.status_code == 200, url
            assert url.rsplit("/", 1)[1] in response.get_data(as_text=True)


def test_the_kit_is_in_chinese_and_holds_no_personal_data(client, world):
    pages = rasterise(build(client, world).data)
    text = "\n".join(page.text for page in pages)

    assert "村碳汇计量员使用说明" in text
    assert "长水村" in text and "武宁县" in text
    assert "第 0001 户" in text
    assert "\ufffd" not in text
    for secret in (SEEDED_NAME, "张*丰", PHONE, ID_NUMBER, BANK, BANK[-4:], PHONE[-4:]):
        assert secret not in text, secret
        assert not any(secret in qr for qr in qr_texts(pages)), secret


def test_a_page_image_for_the_reviewer_is_a4(client, world, tmp_path):
    pages = rasterise(build(client, world).data)
    path = tmp_path / "kit-page-2.png"

    pages[1].image.save(path)

    assert path.exists() and path.stat().st_size > 10_000
    width, height = Image.open(path).size
    assert abs(height / width - 297 / 210) < 0.002
    assert abs(width - 210 / 25.4 * DPI) <= 1  # 2480 px, give or take pdfium's rounding


def test_the_enrolment_qr_enrols_a_phone_once(client, db, world):
    pages = rasterise(build(client, world).data)
    [url] = [t for t in qr_texts(pages) if "/E/" in t]
    code = url.rsplit("/", 1)[1]
    assert re.fullmatch(r"[0-9A-Z]{12}", code)  # the QR holds the code without dashes
    dashed = "-".join(code[i : i + 4] for i in range(0, 12, 4))
    assert f"注册码：{dashed}" in pages[0].text

    landing = client.get(urlsplit(url).path)  # what a phone camera opens
    assert landing.status_code == 200 and code in landing.get_data(as_text=True)

    enrolled = client.post("/api/v1/devices/enrol", json={"code": code, "label": "kit phone"})
    again = client.post("/api/v1/devices/enrol", json={"code": dashed, "label": "second phone"})

    assert enrolled.status_code == 201, enrolled.get_json()
    assert enrolled.get_json()["village_code"] == world.village_a
    device = db["devices"].get(enrolled.get_json()["device_id"])
    assert device["user_id"] == world.measurer_id
    assert again.status_code == 401  # one-time


@pytest.mark.parametrize("form", ["dashed", "lower case"])
def test_the_printed_enrolment_code_works_as_typed(client, world, form):
    pages = rasterise(build(client, world, tags=0).data)
    dashed = re.search(r"注册码：([0-9A-Z\-]{14})", pages[0].text).group(1)
    typed = {"dashed": dashed, "lower case": dashed.lower()}

    response = client.post("/api/v1/devices/enrol", json={"code": typed[form], "label": "p"})

    assert response.status_code == 201, response.get_json()


def test_tag_numbers_continue_in_the_next_kit(client, db, world):
    first = kinds(qr_texts(rasterise(build(client, world, tags=5).data)))["T"]
    second = kinds(qr_texts(rasterise(build(client, world, tags=3).data)))["T"]

    assert sorted(first) == [codes.make_tag(world.village_a, n) for n in (1, 2, 3, 4, 5)]
    assert sorted(second) == [codes.make_tag(world.village_a, n) for n in (6, 7, 8)]
    assert not set(first) & set(second)
    assert [(b["first_number"], b["last_number"]) for b in db["tree_tag_batches"].rows] == [
        (1, 5),
        (6, 8),
    ]


def test_a_kit_without_tags_has_no_tag_sheet(client, world):
    pages = rasterise(build(client, world, tags=0).data)

    assert kinds(qr_texts(pages))["T"] == []
    assert len(pages) == 2  # instructions and one sheet of plates


def test_a_public_address_too_long_for_version_3_is_refused(app, instance, world):
    long_base = "https://sipang.forestry.example.gov.cn"
    assert len(codes.plate_url(long_base, world.household_a)) > 47
    long_app = create_app({"INSTANCE_PATH": str(instance), "PUBLIC_BASE_URL": long_base})
    database = connect(long_app.config["DATABASE"])
    tables = ("tree_tag_batches", "enrolment_codes", "audit_log")
    before = {table: database[table].count for table in tables}

    response = long_app.test_client().post(
        f"/api/v1/villages/{world.village_a}/kits?tags=40",
        headers=bearer(world.tokens["admin"]),
    )

    assert response.status_code == 422
    error = response.get_json()["error"]
    assert error["code"] == "address_too_long"
    assert "version" in error["message"]
    assert {table: database[table].count for table in tables} == before
    database.close()


def test_the_longest_address_that_fits_builds(app, instance, world):
    base = "HTTPS://SIPANG.GOV.CN"  # 21 characters: a plate URL of 46
    assert len(codes.plate_url(base, world.household_a)) <= 47
    short_app = create_app({"INSTANCE_PATH": str(instance), "PUBLIC_BASE_URL": base})

    response = short_app.test_client().post(
        f"/api/v1/villages/{world.village_a}/kits?tags=1", headers=bearer(world.tokens["admin"])
    )

    assert response.status_code == 200
    pages = rasterise(response.data)
    check_every_qr(pages)
    assert f"{base}/H/{world.household_a}" in qr_texts(pages)


def test_an_admin_downloads_the_kit_as_a_pdf_attachment(client, db, world):
    response = build(client, world, tags=1)

    assert response.headers["Content-Type"] == "application/pdf"
    assert response.headers["Content-Disposition"] == (
        f'attachment; filename="sipang-kit-{world.village_a}.pdf"'
    )
    assert response.data.startswith(b"%PDF-")
    entry = list(db.query("SELECT * FROM audit_log ORDER BY seq DESC LIMIT 1"))[0]
    assert entry["action"] == "kit.built" and entry["subject"] == f"village:{world.village_a}"


@pytest.mark.parametrize("role", ["bureau", "verifier", "finance", "enterprise", "measurer"])
def test_only_an_admin_builds_a_kit(client, db, world, role):
    before = db["enrolment_codes"].count

    response = client.post(
        f"/api/v1/villages/{world.village_a}/kits", headers=bearer(world.tokens[role])
    )

    assert response.status_code == 403
    assert db["enrolment_codes"].count == before


@pytest.mark.parametrize("tags", ["abc", "5000", "-1", "2001", "1.5"])
def test_a_bad_tag_count_is_422_and_changes_nothing(client, db, world, tags):
    before = (db["tree_tag_batches"].count, db["enrolment_codes"].count)

    response = client.post(
        f"/api/v1/villages/{world.village_a}/kits?tags={tags}",
        headers=bearer(world.tokens["admin"]),
    )

    assert response.status_code == 422
    assert response.get_json()["error"]["code"] == "validation_failed"
    assert (db["tree_tag_batches"].count, db["enrolment_codes"].count) == before


def test_an_unknown_village_has_no_kit(client, world):
    response = client.post(
        "/api/v1/villages/360423999999/kits", headers=bearer(world.tokens["admin"])
    )

    assert response.status_code == 404


# --- the demo county, through the command line ----------------------------------------------


def test_the_demo_village_kit_built_by_the_command(demo_instance, tmp_path):
    out = tmp_path / "kit.pdf"
    result = CliRunner().invoke(
        main,
        [
            "kit",
            "build",
            "--village",
            DEMO_VILLAGE,
            "--out",
            str(out),
            "--tags",
            "45",
            "--instance",
            str(demo_instance),
        ],
    )
    assert result.exit_code == 0, result.output
    assert f"Wrote {out}" in result.output

    pages = rasterise(out.read_bytes())

    check_every_qr(pages)
    found = kinds(qr_texts(pages))
    database = connect(demo_instance / "sipang.db")
    expected = active_households(database, DEMO_VILLAGE)
    database.close()
    assert 44 <= len(expected) <= 56
    assert sorted(found["H"]) == sorted(expected)
    assert sorted(found["T"]) == [codes.make_tag(DEMO_VILLAGE, n) for n in range(1, 46)]
    assert len(found["E"]) == 1
    assert len(pages) == 1 + -(-len(expected) // 10) + 2
    text = "\n".join(page.text for page in pages)
    assert "村碳汇计量员使用说明" in text and "长水村" in text and "第 0001 户" in text
    demo_app = create_app({"INSTANCE_PATH": str(demo_instance)})
    client = demo_app.test_client()
    for code, seq in expected.items():
        path = urlsplit(codes.plate_url("http://x", code)).path
        for variant in (path, path.lower()):
            response = client.get(variant)
            assert response.status_code == 200, variant
            assert f"第 {seq:04d} 户" in response.get_data(as_text=True)
    [code] = found["E"]
    enrolled = client.post("/api/v1/devices/enrol", json={"code": code, "label": "demo phone"})
    assert enrolled.status_code == 201
    assert enrolled.get_json()["village_code"] == DEMO_VILLAGE
    pages[1].image.save(tmp_path / "demo-plates.png")
    assert (tmp_path / "demo-plates.png").exists()
