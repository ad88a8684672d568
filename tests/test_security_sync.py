"""Sync under attack and at scale: an op_id replayed with other content is a conflict
(the first kept, the device recorded), and a phone pulling from scratch gets each record
once even when its changes straddle pull pages."""

from collections import Counter

from test_sync import new_id, op, pull_all, push, register

from server import households, trees, villages
from server.db import get_db, transaction


def test_an_op_id_replayed_with_other_content_is_a_conflict_and_the_first_is_kept(
    client, world, db
):
    tree_id = new_id()
    first = register(1, tree_id, world.household_a)
    assert push(client, world, [first]).get_json()["results"][0]["status"] == "applied"
    forged = {**first, "payload": {**first["payload"], "position": "road"}}

    answer = push(client, world, [forged]).get_json()["results"][0]

    assert (answer["status"], answer["code"]) == ("rejected", "conflict")
    assert "first is kept" in answer["reason"]
    assert db["trees"].get(tree_id)["position"] == "house"
    [flagged] = db.query("SELECT * FROM sync_replay_conflicts")
    assert (flagged["op_id"], flagged["device_id"]) == (first["op_id"], world.device_id)
    assert flagged["kept_sha256"] != flagged["refused_sha256"]
    # the same content again is still a plain duplicate
    again = push(client, world, [first]).get_json()["results"][0]
    assert again["status"] == "duplicate"
    assert db["sync_replay_conflicts"].count == 1


def test_a_replayed_op_id_from_another_sequence_is_a_conflict_too(client, world, db):
    tree_id = new_id()
    first = register(1, tree_id, world.household_a)
    push(client, world, [first])
    moved = op(2, "tree.status", tree_id, {"status": "dead"}, op_id=first["op_id"])
    answer = push(client, world, [moved]).get_json()["results"][0]
    assert answer["code"] == "conflict"
    assert db["trees"].get(tree_id)["status"] != "dead"


def test_a_tree_whose_changes_straddle_pull_pages_is_sent_once(app, client, world, db):
    with app.app_context():
        database = get_db()
        village = villages.get_village(world.village_a)
        household = households.get_household(world.household_a)
        ids = [new_id() for _ in range(300)]
        with transaction(database):
            for tree_id in ids:  # 300 registrations ...
                trees.register_tree(
                    database,
                    household,
                    tree_id=tree_id,
                    species_id="cunninghamia_lanceolata",
                    position="road",
                )
            for n in range(60):  # ... pushing these trees' next changes onto a later page
                households.create_household(database, village, head_name=f"户主{n}")
            for tree_id in ids[:250]:
                trees.set_status(database, tree_id, "dead", "2026-10-01T08:00:00.000Z")

    pages, _ = pull_all(client, world)

    assert len(pages) >= 2
    sent = Counter(t["id"] for page in pages for t in page["trees"])
    assert set(sent) >= set(ids)
    assert max(sent.values()) == 1, [i for i, n in sent.items() if n > 1][:3]
    states = {t["id"]: t["status"] for page in pages for t in page["trees"]}
    assert all(states[i] == "dead" for i in ids[:250])  # the newest state arrived
