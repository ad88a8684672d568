"""The admin's workspace through the real app: home, villages, households, phones, flags,
calculations, verification, issuance and bundles, each write checked in the database."""

import json

import pytest

from server import households
from server.db import first
from tests import registry_world as rw
from tests.conftest import STAFF_ROLES
from tests.workspace_helpers import post_form, sign_in_form

HOMES = {
    "admin": ("/admin", "平台管理员"),
    "bureau": ("/bureau", "县农业农村局"),
    "finance": ("/finance", "财务"),
    "verifier": ("/verifier", "核查员"),
    "enterprise": ("/enterprise", "企业买家"),
}


@pytest.mark.parametrize("role", STAFF_ROLES)
def test_each_role_lands_on_its_home_with_its_navigation(client, role):
    response = sign_in_form(client, role)

    home, name = HOMES[role]
    assert response.status_code == 302
    assert response.headers["Location"] == home
    page = client.get(home).get_data(as_text=True)
    assert f"· {name}</span>" in page  # the role's Chinese name in the header
    assert 'aria-label="工作台导航"' in page
    assert 'aria-current="page"' in page
    assert "待办" in page
    assert client.get("/work").headers["Location"] == home


def test_the_admin_home_counts_what_waits(client, db):
    sign_in_form(client, "admin")
    page = client.get("/admin").get_data(as_text=True)
    open_flags = db.execute("SELECT count(*) FROM flags WHERE decision IS NULL").fetchone()[0]
    assert open_flags > 0
    assert f"<strong>{open_flags}</strong>条存疑记录待复核" in page
    assert "<strong>1</strong>个核算期待抽样指派核查员" in page


def test_admin_adds_a_county_and_a_village_with_its_map_point(client, db):
    sign_in_form(client, "admin")
    post_form(client, "/admin/villages", "/admin/counties", {"code": "330327", "name": "苍南县"})
    page = post_form(
        client,
        "/admin/villages",
        "/admin/villages",
        {"code": "330327100201", "name": "新村", "latitude": "27.5", "longitude": "120.4"},
    ).get_data(as_text=True)

    assert "已添加新村。" in page
    row = first(db, "SELECT * FROM villages WHERE code = '330327100201'")
    assert (row["name"], row["latitude"], row["longitude"]) == ("新村", 27.5, 120.4)
    bad = post_form(client, "/admin/villages", "/admin/villages", {"code": "12", "name": "x"})
    assert "请填写 12 位村级代码和村名。" in bad.get_data(as_text=True)


def test_admin_finds_corrects_and_marks_a_household_moved(app, client, db, world):
    sign_in_form(client, "admin")
    found = client.get(f"/admin/households?q={world.household_a[-7:]}").get_data(as_text=True)
    assert world.household_a in found
    assert "张*丰" in found and "张三丰" not in found  # masked, never decrypted

    url = f"/admin/households/{world.household_a}"
    page = post_form(client, url, url, {"phone": "13800001111"}).get_data(as_text=True)
    assert "已保存修改。" in page
    row = first(db, "SELECT * FROM households WHERE code = ?", [world.household_a])
    with app.app_context():
        assert households.reveal(db, row, "phone", "test") == "13800001111"
    audit = first(db, "SELECT * FROM audit_log WHERE action = 'household.updated'")
    assert json.loads(audit["detail"]) == {"fields": ["phone"]}  # which field, not its value
    refused = post_form(client, url, url, {"bank_account": "1234"}).get_data(as_text=True)
    assert "请检查：银行卡号" in refused

    post_form(client, url, f"{url}/left", {"reason": "全家迁往县城"})
    assert first(db, "SELECT status FROM households WHERE id = ?", [row["id"]]) == {
        "status": "inactive"
    }
    assert "已迁出" in client.get(url).get_data(as_text=True)


def test_admin_issues_an_enrolment_code_and_revokes_a_phone(client, db, world):
    sign_in_form(client, "admin")
    page = post_form(
        client, "/admin/phones", "/admin/phones/codes", {"measurer_id": world.measurer_id}
    ).get_data(as_text=True)
    assert "一次性注册码" in page
    assert db.execute("SELECT count(*) FROM enrolment_codes").fetchone()[0] == 2

    page = post_form(
        client, "/admin/phones", f"/admin/phones/{world.device_id}/revoke", {}
    ).get_data(as_text=True)
    assert "已停用这部手机。" in page
    assert first(db, "SELECT revoked_at FROM devices WHERE id = ?", [world.device_id])["revoked_at"]


def test_admin_reviews_a_flag_with_its_photo_history_and_map_point(client, db, world):
    sign_in_form(client, "admin")
    page = client.get("/admin/flags").get_data(as_text=True)
    assert f'action="/admin/flags/{world.flag_id}"' in page
    assert "这棵树的测量记录" in page and "这条记录没有定位" in page  # the seed has no GPS
    photo = client.get("/admin/photos/" + "ab" * 32 + ".jpg")
    assert photo.status_code == 200 and photo.mimetype == "image/svg+xml"  # not uploaded yet

    page = post_form(
        client,
        "/admin/flags",
        f"/admin/flags/{world.flag_id}",
        {"decision": "rejected", "note": "照片缺失，重新测量"},
    ).get_data(as_text=True)
    assert "已驳回这条记录。" in page
    row = first(db, "SELECT * FROM flags WHERE id = ?", [world.flag_id])
    assert (row["decision"], row["review_note"]) == ("rejected", "照片缺失，重新测量")
    again = post_form(
        client, "/admin/flags", f"/admin/flags/{world.flag_id}", {"decision": "accepted"}
    )
    assert "已经" in again.get_data(as_text=True) or "复核" in again.get_data(as_text=True)


def verified_period(app, db, world) -> dict:
    """A grown village whose period passed verification and waits for issuance."""
    with app.app_context():
        grown = rw.grow_village(db, world.village_b, households_count=2, trees_per_household=20)
        return rw.verify(db, grown["calculation_id"], world.user_ids["verifier"])


def test_admin_calculates_assigns_creates_issues_and_publishes(app, client, db, world):
    found = verified_period(app, db, world)
    sign_in_form(client, "admin")

    page = post_form(
        client,
        "/admin/verification",
        f"/admin/calculations/{world.calculation_id}/verification",
        {"verifier_id": world.user_ids["verifier"]},
    ).get_data(as_text=True)
    assert "已抽取样本并指派核查员。" in page
    assert first(db, "SELECT * FROM verifications WHERE calculation_id = ?", [world.calculation_id])

    created = post_form(
        client,
        "/admin/bundles/new",
        "/admin/bundles",
        {
            "county": "360423",
            "name": "西山村四旁碳汇",
            "vintage_from": "2026",
            "vintage_to": "2026",
            "methods": rw.load_method().version,
            "min_households": "2",
            "max_household_share_pct": "80",
            "price_yuan": "120",
            "households_pct": "65",
            "collective_pct": "20",
            "maintenance_pct": "15",
        },
        follow=False,
    )
    assert created.status_code == 303
    bundle = first(db, "SELECT * FROM bundles WHERE name = '西山村四旁碳汇'")
    assert created.headers["Location"] == f"/admin/bundles/{bundle['id']}"
    assert (bundle["status"], bundle["price_fen"], bundle["min_households"]) == ("draft", 12000, 2)
    assert "还不能发布：至少需要 2 户，现有 0 户。" in client.get(
        created.headers["Location"]
    ).get_data(as_text=True)

    page = post_form(
        client,
        "/admin/issuance",
        f"/admin/verifications/{found['id']}/issuance",
        {"bundle_id": bundle["id"]},
    ).get_data(as_text=True)
    assert "已签发进入西山村四旁碳汇。" in page
    issued = first(db, "SELECT * FROM issuances WHERE verification_id = ?", [found["id"]])
    assert issued["bundle_id"] == bundle["id"] and issued["tonnes"] > 0

    url = f"/admin/bundles/{bundle['id']}"
    page = post_form(client, url, f"{url}/publish", {}).get_data(as_text=True)
    assert "已发布，开始出售。" in page
    assert first(db, "SELECT status FROM bundles WHERE id = ?", [bundle["id"]]) == {
        "status": "on_sale"
    }

    versioned = post_form(client, url, f"{url}/versions", {"price_yuan": "150"}, follow=False)
    newer = first(db, "SELECT * FROM bundles WHERE previous_id = ?", [bundle["id"]])
    assert versioned.headers["Location"] == f"/admin/bundles/{newer['id']}"
    assert (newer["version"], newer["price_fen"], newer["name"]) == (2, 15000, "西山村四旁碳汇")


def test_bundle_rules_that_do_not_hold_are_refused_in_chinese(client, db):
    sign_in_form(client, "admin")
    page = post_form(
        client,
        "/admin/bundles/new",
        "/admin/bundles",
        {
            "county": "360423",
            "name": "错误的包",
            "vintage_from": "2026",
            "vintage_to": "2026",
            "methods": rw.load_method().version,
            "households_pct": "60",
            "collective_pct": "20",
            "maintenance_pct": "15",
        },
    ).get_data(as_text=True)
    assert "请检查：农户分成" in page
    assert db.execute("SELECT count(*) FROM bundles").fetchone()[0] == 0


def test_the_methodology_page_lists_species_with_their_sources(client):
    sign_in_form(client, "admin")
    page = client.get("/admin/methods").get_data(as_text=True)
    assert "杉木" in page and "LY/T 2264-2014" in page
    assert "内容哈希" in page


def test_a_roster_import_report_is_chinese(client, db, world):
    import io

    from tests.language import english_words, readable_text

    sign_in_form(client, "admin")
    page_url = f"/admin/villages/{world.village_a}"
    token = client.get(page_url).get_data(as_text=True).split('name="csrf_token" value="')[1]
    roster = "户主姓名,联系电话,身份证号\n王五,139,\n,13900001111,\n".encode()
    response = client.post(
        f"{page_url}/roster",
        data={"csrf_token": token.split('"')[0], "file": (io.BytesIO(roster), "roster.csv")},
    )
    page = response.get_data(as_text=True)
    assert response.status_code == 422
    assert "<td>联系电话</td><td>不是 11 位手机号码</td>" in page
    assert "<td>户主姓名</td><td>缺少户主姓名</td>" in page
    assert english_words(readable_text(page)) == []


def test_admin_calculates_a_period_from_the_page(client, db, world):
    sign_in_form(client, "admin")
    before = db.execute("SELECT count(*) FROM credit_calculations").fetchone()[0]
    page = post_form(
        client,
        "/admin/calculations",
        "/admin/calculations",
        {"village": world.village_a, "period_start": "2026-01-01", "period_end": "2026-12-31"},
    ).get_data(as_text=True)
    assert "已完成长水村的碳汇核算。" in page
    row = first(db, "SELECT * FROM credit_calculations ORDER BY id DESC LIMIT 1")
    assert (row["period_start"], row["period_end"], row["created_by"]) == (
        "2026-01-01",
        "2026-12-31",
        world.user_ids["admin"],
    )
    assert db.execute("SELECT count(*) FROM credit_calculations").fetchone()[0] == before + 1
    assert "2026年1月1日 至 2026年12月31日" in page
    refused = post_form(
        client, "/admin/calculations", "/admin/calculations", {"village": world.village_a}
    ).get_data(as_text=True)
    assert "请选择村庄并填写核算期起止日期。" in refused


def test_a_flag_shows_the_trees_uploaded_photo(app, client, db, world):
    with app.app_context():
        photo = rw.tree_photo(world.village_a)
    sign_in_form(client, "admin")
    response = client.get(f"/admin/photos/{photo}.jpg")
    assert response.status_code == 200 and response.mimetype == "image/jpeg"
    assert b"VillagePhone" not in response.data  # re-encoded without its metadata


def test_admin_places_a_village_on_the_bureaus_map(app, client, db, world):
    sign_in_form(client, "admin")
    url = f"/admin/villages/{world.village_b}"
    refused = post_form(client, url, f"{url}/location", {"latitude": "95", "longitude": "115"})
    assert "请填写纬度" in refused.get_data(as_text=True)
    page = post_form(client, url, f"{url}/location", {"latitude": "29.3", "longitude": "115.2"})
    assert "已更新地图位置。" in page.get_data(as_text=True)
    assert first(
        db, "SELECT latitude, longitude FROM villages WHERE code = ?", [world.village_b]
    ) == {
        "latitude": 29.3,
        "longitude": 115.2,
    }
    bureau = app.test_client()
    sign_in_form(bureau, "bureau")
    the_map = bureau.get("/bureau/map").get_data(as_text=True)
    assert f'<a href="/bureau/villages/{world.village_b}"' in the_map
    assert "没有坐标的村" not in the_map
