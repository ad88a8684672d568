"""Round trips on the production server (`sipang serve`: gunicorn, keep-alive), in a real
Chromium: the app's sync reuses one connection (no new connection per request, no
`Connection: close`), its push batches grow on a quick link and the village's changes come
with the last push's answer (no pull), while every record still arrives exactly once."""

from pathlib import Path

from server.db import connect
from tests.helpers_pwa import enrolled, phone
from tests.server_process import ServerProcess

SYNC_PATHS = ("/api/v1/sync/", "/api/v1/blobs/")


def test_a_sync_round_reuses_its_connection_and_grows_its_batches(
    app,
    world,
    browser,
):
    with ServerProcess(Path(app.config["INSTANCE_PATH"])) as server:
        context = phone(browser)
        page = enrolled(context, server.url, app, world)
        context.set_offline(True)
        # 60 trees registered and measured on the phone: 120 operations (their changes stay
        # under the 500 a push answer carries).
        tree_ids = page.evaluate(
            """async (household) => {
                const outbox = await import('/app/js/outbox.js');
                const { uuidv7 } = await import('/app/js/dom.js');
                const ids = [];
                for (let i = 0; i < 60; i++) {
                    const id = uuidv7();
                    ids.push(id);
                    await outbox.recordOperations([
                        { kind: 'tree.register', recordId: id, payload: {
                            household_code: household, species_id: 'cunninghamia_lanceolata',
                            position: 'road' } },
                        { kind: 'tree.measure', recordId: id, baseVersion: 1, payload: {
                            measurement_id: uuidv7(), stems_mm: [150 + (i % 50)],
                            height_cm: 900 } },
                    ]);
                }
                return ids;
            }""",
            world.household_a,
        )
        # What Chromium's network stack saw: each sync answer, its connection, and whether
        # that connection was a reused one.
        answers = []
        cdp = context.new_cdp_session(page)
        cdp.on(
            "Network.responseReceived",
            lambda event: (
                answers.append(event["response"])
                if any(path in event["response"]["url"] for path in SYNC_PATHS)
                else None
            ),
        )
        cdp.send("Network.enable")
        # One sync round, as the scheduler runs it, measured alone: the app's own scheduler
        # (kicked by "online") is told to do nothing meanwhile.
        page.evaluate("window.sipang.scheduler.run = async () => false")
        context.set_offline(False)
        result = page.evaluate(
            "import('/app/js/sync.js').then((sync) => sync.syncOnce())"
        )  # the whole round, awaited
        assert (result["pending"], result["rejected"]) == (0, 0)
        batch_size = page.evaluate(
            "import('/app/js/outbox.js').then((o) => o.getMeta('batch_size'))"
        )
        context.close()

    pushes = [a for a in answers if a["url"].endswith("/api/v1/sync/push")]
    # Fixed batches of 25 would take 5 pushes; batches that grow take fewer round trips.
    assert 1 < len(pushes) < 120 / 25, [a["url"] for a in answers]
    assert batch_size > 8 * 1024  # grown after quick answers, kept for the next round
    seen = [(a["url"], a["connectionId"], a["connectionReused"]) for a in answers]
    assert len(answers) >= 2, seen
    # The village's changes came with the last push's answer: no pull round trip.
    assert [a["url"] for a in answers if "/sync/pull" in a["url"]] == []
    # The round's requests share one connection: none opened a new one.
    assert len({a["connectionId"] for a in answers}) == 1, seen
    assert all(a["connectionReused"] for a in answers[1:]), seen
    closing = [
        a["url"]
        for a in answers
        for name, value in a["headers"].items()
        if name.lower() == "connection" and value.lower() == "close"
    ]
    assert closing == []

    with connect(app.config["DATABASE"]) as db:
        marks = ",".join("?" * len(tree_ids))
        stored = db.execute(
            f"SELECT count(*) FROM trees WHERE id IN ({marks})",  # noqa: S608 — placeholders only
            tree_ids,
        ).fetchone()[0]
        measured = db.execute(
            f"SELECT count(*) FROM measurements WHERE tree_id IN ({marks})",  # noqa: S608
            tree_ids,
        ).fetchone()[0]
    assert (stored, measured) == (60, 60)  # each exactly once
