"""Orders: reserve (idempotent on the buyer's `request_id`, expiring) → payment confirmed →
retire for the beneficiary → certificate. Individuals' tonnes retire on payment; an
enterprise account holds them and retires later, in parts, with beneficiary and reason.

Every step is one BEGIN IMMEDIATE transaction, so buyers racing for the last tonne queue
and exactly one gets it. Tonnes always leave a bundle in the fixed public order.
"""

import hashlib
import json
import secrets
from datetime import datetime, timedelta
from typing import Any

from flask import current_app
from sqlite_utils import Database

from server import audit, events, pii
from server.clock import iso, iso_after, now_iso
from server.db import first, insert, transaction
from server.errors import ApiError
from server.payouts import accruals
from server.registry import bundles, certificates, serials
from server.sms import normalize_phone


def request_hash(data: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


def get_order(db: Database, public_id: str) -> dict[str, Any] | None:
    if not 20 <= len(public_id) <= 64:
        return None
    return first(db, "SELECT * FROM orders WHERE public_id = ?", [public_id])


def release_expired(db: Database) -> int:
    """Give the tonnes of expired reservations back to their bundles; returns how many
    orders expired. Runs inside every order transaction, so no clock job is needed."""
    expired = [
        r[0]
        for r in db.execute(
            "SELECT id FROM orders WHERE status = 'reserved' AND expires_at <= ?", [now_iso()]
        )
    ]
    for order_id in expired:
        db.execute(
            """UPDATE tonnes SET status = 'available', order_id = NULL
               WHERE order_id = ? AND status = 'reserved'""",
            [order_id],
        )
        db.execute("UPDATE orders SET status = 'expired' WHERE id = ?", [order_id])
        audit.record(db, "order.expired", f"order:{order_id}", actor="system")
    return len(expired)


def release_expired_now(db: Database) -> None:
    """Release expired reservations in a transaction of their own, so the release stands
    even when the request that noticed them is then refused; then publish
    `reservations.expired` (the payments close the providers' trades)."""
    if first(
        db,
        "SELECT 1 FROM orders WHERE status = 'reserved' AND expires_at <= ? LIMIT 1",
        [now_iso()],
    ):
        with transaction(db):
            release_expired(db)
        events.publish(db, "reservations.expired")


def reserve(
    db: Database, data: dict[str, Any], user: dict[str, Any] | None
) -> tuple[dict[str, Any], bool]:
    """Reserve tonnes of a bundle; the same request again returns the same order.

    Returns (order, created)."""
    digest = request_hash(data)
    kind = "enterprise" if user is not None and user["role"] == "enterprise" else "individual"
    release_expired_now(db)
    with transaction(db):
        release_expired(db)
        existing = first(db, "SELECT * FROM orders WHERE request_id = ?", [data["request_id"]])
        if existing is not None:
            if existing["request_sha256"] != digest:
                raise ApiError(
                    409, "request_id_reused", "This request_id was used for a different order."
                )
            return existing, False
        bundle = bundles.get_bundle(db, data["bundle_id"])
        if bundle is None or not bundles.sellable(bundle):
            raise ApiError(404, "not_found", "No such bundle on sale.")
        tonnes = data["tonnes"]
        chosen = serials.next_for_sale(db, bundle["id"], tonnes)
        if len(chosen) < tonnes:
            raise ApiError(
                409,
                "sold_out",
                f"Only {len(chosen)} tonnes are left in this bundle.",
                {"available": len(chosen)},
            )
        amount = bundle["price_fen"] * tonnes
        public_id = secrets.token_urlsafe(18)
        phone = normalize_phone(data["phone"]) if data.get("phone") else None
        order = {
            "public_id": public_id,
            "buyer_phone": pii.encrypt(phone, f"order:{public_id}:phone") if phone else None,
            "buyer_phone_index": pii.blind_index(phone, "buyer_phone") if phone else None,
            "show_beneficiary": 1 if data.get("show_beneficiary") else 0,
            "request_id": data["request_id"],
            "request_sha256": digest,
            "bundle_id": bundle["id"],
            "tonnes": tonnes,
            "buyer_kind": kind,
            "buyer_user_id": user["id"] if user is not None else None,
            "beneficiary": data.get("beneficiary"),
            "reason": data.get("reason"),
            "price_fen": bundle["price_fen"],
            "amount_fen": amount,
            "commission_bp": bundle[
                "individual_commission_bp" if kind == "individual" else "commission_bp"
            ],
            "farmers_fen": bundles.farmers_fen(amount, bundle, kind),
            "expires_at": iso_after(seconds=current_app.config["ORDER_RESERVATION_SECONDS"]),
            "created_at": now_iso(),
        }
        order["id"] = insert(db, "orders", order)
        serials.set_status(db, chosen, "reserved", order_id=order["id"])
        audit.record(
            db,
            "order.reserved",
            f"order:{order['id']}",
            {"bundle": bundle["id"], "tonnes": tonnes, "kind": kind},
        )
    return first(db, "SELECT * FROM orders WHERE id = ?", [order["id"]]), True


def confirm_payment(
    db: Database, order: dict[str, Any], method: str, reference: str, actor: str
) -> dict[str, Any]:
    """Record the payment of a reserved order; individuals' tonnes retire at once."""
    release_expired_now(db)
    with transaction(db):
        release_expired(db)
        order = first(db, "SELECT * FROM orders WHERE id = ?", [order["id"]])
        if order["paid_at"] is not None:
            if (order["payment_method"], order["payment_reference"]) == (method, reference):
                return order
            raise ApiError(409, "already_paid", "This order is already paid.")
        if order["status"] == "expired":
            raise ApiError(409, "reservation_expired", "The reservation expired; order again.")
        if first(
            db,
            "SELECT 1 FROM orders WHERE payment_method = ? AND payment_reference = ?",
            [method, reference],
        ):
            raise ApiError(409, "reference_used", "This payment reference paid another order.")
        reserved = [
            r[0]
            for r in db.execute(
                "SELECT serial FROM tonnes WHERE order_id = ? ORDER BY vintage, seq",
                [order["id"]],
            )
        ]
        now = now_iso()
        individual = order["buyer_kind"] == "individual"
        db.execute(
            """UPDATE orders SET paid_at = ?, payment_method = ?, payment_reference = ?,
                      confirmed_by = ?, status = ? WHERE id = ?""",
            [now, method, reference, actor, "retired" if individual else "held", order["id"]],
        )
        audit.record(
            db,
            "order.paid",
            f"order:{order['id']}",
            {"method": method, "amount_fen": order["amount_fen"]},
            actor=actor,
        )
        if individual:
            cert = certificates.create(
                db, order, reserved, beneficiary=order["beneficiary"], reason=order["reason"]
            )
            audit.record(
                db,
                "certificate.issued",
                f"certificate:{cert['id']}",
                {"order": order["id"]},
                actor=actor,
            )
        else:
            serials.set_status(db, reserved, "held")
        accruals.accrue_order(db, order["id"])
        _announce_sale(db, order)
        accruals.announce_accrued(db, order["id"])
    return first(db, "SELECT * FROM orders WHERE id = ?", [order["id"]])


def _announce_sale(db: Database, order: dict[str, Any]) -> None:
    """Tell the county's dashboards a sale was paid (sent once the payment commits)."""
    bundle = first(db, "SELECT county_id FROM bundles WHERE id = ?", [order["bundle_id"]])
    events.announce(
        "registry.sale",
        {
            "bundle": order["bundle_id"],
            "tonnes": order["tonnes"],
            "amount_fen": order["amount_fen"],
            "farmers_fen": order["farmers_fen"],
            "buyer_kind": order["buyer_kind"],
        },
        bundle["county_id"],
        db=db,
    )


def retire_held(
    db: Database, order: dict[str, Any], data: dict[str, Any]
) -> tuple[dict[str, Any], bool]:
    """An enterprise retires tonnes it holds (all, or `tonnes` of them in public order)
    for a beneficiary and reason; the same `request_id` again returns the same certificate."""
    with transaction(db):
        done = first(db, "SELECT * FROM certificates WHERE request_id = ?", [data["request_id"]])
        if done is not None:
            if done["order_id"] != order["id"]:
                raise ApiError(409, "request_id_reused", "This request_id retired another order.")
            return done, False
        held = [
            r[0]
            for r in db.execute(
                """SELECT serial FROM tonnes WHERE order_id = ? AND status = 'held'
                   ORDER BY vintage, seq""",
                [order["id"]],
            )
        ]
        count = data.get("tonnes", len(held))
        if not held or count > len(held):
            raise ApiError(
                409,
                "not_held",
                f"The order holds {len(held)} tonnes to retire.",
                {"held": len(held)},
            )
        cert = certificates.create(
            db,
            order,
            held[:count],
            beneficiary=data["beneficiary"],
            reason=data["reason"],
            request_id=data["request_id"],
            case_number=data.get("case_number"),
        )
        cert = first(db, "SELECT * FROM certificates WHERE id = ?", [cert["id"]])
        if count == len(held):
            db.execute("UPDATE orders SET status = 'retired' WHERE id = ?", [order["id"]])
        audit.record(db, "certificate.issued", f"certificate:{cert['id']}", {"order": order["id"]})
    return cert, True


def transfer_code(order: dict[str, Any]) -> str:
    """What a buyer writes on a bank or digital-RMB transfer: `SP` + the order number."""
    return f"SP{order['id']:07d}"


def choose_transfer(db: Database, order: dict[str, Any], method: str) -> dict[str, Any]:
    """The buyer pays by bank or digital-RMB transfer: the reservation lasts long enough
    to make one (ORDER_BANK_RESERVATION_SECONDS from the order's creation)."""
    release_expired_now(db)
    with transaction(db):
        order = first(db, "SELECT * FROM orders WHERE id = ?", [order["id"]])
        if order["status"] != "reserved":
            raise ApiError(409, "not_reserved", "订单不在待付款状态。")
        created = datetime.fromisoformat(order["created_at"].replace("Z", "+00:00"))
        until = iso(
            created + timedelta(seconds=current_app.config["ORDER_BANK_RESERVATION_SECONDS"])
        )
        db.execute(
            "UPDATE orders SET pay_method = ?, expires_at = max(expires_at, ?) WHERE id = ?",
            [method, until, order["id"]],
        )
        audit.record(db, "order.transfer_chosen", f"order:{order['id']}", {"method": method})
    return first(db, "SELECT * FROM orders WHERE id = ?", [order["id"]])


def order_view(db: Database, order: dict[str, Any]) -> dict[str, Any]:
    """An order as its buyer sees it (through the order link)."""
    certs = db.query(
        "SELECT id, tonnes, sha256 FROM certificates WHERE order_id = ? ORDER BY id",
        [order["id"]],
    )
    counted = dict(
        db.execute(
            "SELECT status, count(*) FROM tonnes WHERE order_id = ? GROUP BY status",
            [order["id"]],
        ).fetchall()
    )
    keys = (
        "public_id",
        "request_id",
        "bundle_id",
        "tonnes",
        "buyer_kind",
        "beneficiary",
        "reason",
        "price_fen",
        "amount_fen",
        "farmers_fen",
        "status",
        "expires_at",
        "paid_at",
        "payment_method",
        "pay_method",
    )
    return {key: order[key] for key in keys} | {
        "transfer_code": transfer_code(order),
        "held": counted.get("held", 0),
        "certificates": list(certs),
    }
