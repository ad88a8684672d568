"""A bureau sees its own county: the registry totals are no exception."""

from conftest import bearer


def test_a_bureau_sees_the_registry_totals_of_its_own_county_only(app, client, db, world):
    from server import users
    from tests import registry_world as rw

    with app.app_context():
        bundle, _, _ = rw.stocked_bundle(db, world.user_ids["verifier"])  # county 360423
        other = users.create_user(
            db,
            username="bureau.other",
            display_name="修水县农业农村局",
            role="bureau",
            password="correct horse battery staple 9",
            county_code="360424",
        )
        token = users.issue_token(db, other["id"], "test")

    own = client.get("/api/v1/registry/totals", headers=bearer(world.tokens["bureau"])).json
    theirs = client.get("/api/v1/registry/totals", headers=bearer(token)).json

    assert {row["bundle_id"] for row in own["totals"]} == {bundle["id"]}
    assert theirs["totals"] == []
    admin = client.get("/api/v1/registry/totals", headers=bearer(world.tokens["admin"])).json
    assert {row["bundle_id"] for row in admin["totals"]} == {bundle["id"]}
