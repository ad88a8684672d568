"""The finance screen (server-rendered, Chinese): T+1 batches, each household's bank details
(decrypted only here, each view audited), transfer references and bank return files."""

import csv
import io

from flask import Blueprint, Response, current_app, g, redirect, render_template, request

from server import units
from server.access import allow
from server.db import first, get_db
from server.errors import ApiError
from server.payouts import returns, settlement

bp = Blueprint("payouts", __name__, url_prefix="/finance")


def _actor() -> str:
    return f"user:{g.user['id']}"


def _batch(batch_id: int) -> dict:
    found = (
        first(get_db(), "SELECT * FROM settlement_batches WHERE id = ?", [batch_id])
        if 0 < batch_id < 2**63
        else None
    )
    if found is None:
        raise ApiError(404, "not_found", "没有这个结算批次。")
    return found


@bp.get("/settlements")
@allow("finance")
def batches():
    """T+1 settlement batches, newest first, with what is owed and not yet in a batch."""
    db = get_db()
    rows = list(
        db.query(
            """SELECT b.*, sum(s.status = 'paid') AS paid, sum(s.status = 'failed') AS failed,
                      sum(s.status = 'pending') AS pending,
                      coalesce(sum(CASE WHEN s.status = 'paid' THEN s.amount_fen END), 0)
                          AS paid_fen
               FROM settlement_batches b LEFT JOIN settlements s ON s.batch_id = b.id
               GROUP BY b.id ORDER BY b.settle_on DESC LIMIT 60"""
        )
    )
    owed = first(
        db,
        "SELECT count(*) AS households, coalesce(sum(owed_fen - pending_fen), 0) AS fen "
        "FROM household_payouts WHERE owed_fen - pending_fen > 0",
    )
    return render_template(
        "payouts/batches.html",
        batches=rows,
        owed=owed,
        today=units.today(),
        minimum=current_app.config["PAYOUT_MIN_TRANSFER_FEN"],
        user=g.user,
    )


@bp.post("/settlements")
@allow("finance")
def create_batch():
    """Make (or open) the T+1 batch of a day."""
    settle_on = request.form.get("settle_on", "").strip() or units.today()
    if settle_on > units.today() and settle_on[:1].isdigit():
        raise ApiError(
            422, "validation_failed", "不能结算今天（北京时间）以后的日期：那天的销售还没结束。"
        )
    try:
        batch, _ = settlement.create_batch(
            get_db(), settle_on, current_app.config["PAYOUT_MIN_TRANSFER_FEN"], _actor()
        )
    except ValueError as error:
        raise ApiError(422, "validation_failed", "日期格式应为 YYYY-MM-DD。") from error
    return redirect(f"/finance/settlements/{batch['id']}", code=303)


def _batch_page(batch: dict, result: dict | None = None, error: str | None = None, status=200):
    rows = settlement.batch_rows(get_db(), batch["id"], _actor())
    files = list(
        get_db().query(
            """SELECT DISTINCT f.* FROM bank_return_files f JOIN settlements s
               ON s.return_file_id = f.id WHERE s.batch_id = ? ORDER BY f.id""",
            [batch["id"]],
        )
    )
    page = render_template(
        "payouts/batch.html",
        batch=batch,
        rows=rows,
        files=files,
        result=result,
        error=error,
        user=g.user,
    )
    # clear bank details: kept by no browser cache or proxy
    return page, status, {"Cache-Control": "private, no-store"}


@bp.get("/settlements/<int:batch_id>")
@allow("finance")
def batch(batch_id: int):
    """One batch: each household's amount and bank details, and its transfer's state."""
    return _batch_page(_batch(batch_id))


@bp.post("/transfers/<int:settlement_id>")
@allow("finance")
def record(settlement_id: int):
    """Record one transfer: paid with the bank's reference, or failed with a reason."""
    db = get_db()
    found = settlement.get_settlement(db, settlement_id)
    if found is None:
        raise ApiError(404, "not_found", "没有这笔转账。")
    outcome = request.form.get("outcome", "paid")
    text = request.form.get("reference", "").strip()[:64]
    try:
        if outcome == "failed":
            settlement.record_failure(db, settlement_id, text or "转账失败", _actor())
        elif outcome == "paid" and len(text) >= 4:
            settlement.record_transfer(db, settlement_id, text, _actor())
        else:
            raise ApiError(422, "validation_failed", "请填写银行转账流水号（至少 4 位）。")
    except ApiError as problem:
        return _batch_page(_batch(found["batch_id"]), error=problem.message, status=problem.status)
    return redirect(f"/finance/settlements/{found['batch_id']}#s{settlement_id}", code=303)


@bp.post("/settlements/<int:batch_id>/returns")
@allow("finance", max_body_setting="MAX_RETURN_FILE_BYTES")
def upload_return(batch_id: int):
    """Apply the bank's return file (CSV or XLSX); the same file again changes nothing."""
    found = _batch(batch_id)
    upload = request.files.get("file")
    if upload is None or not upload.filename:
        return _batch_page(found, error="请选择银行回单文件。", status=422)
    try:
        result = returns.apply_file(get_db(), upload.filename, upload.read(), _actor())
    except ApiError as problem:
        return _batch_page(found, error=problem.message, status=problem.status)
    return _batch_page(found, result=result)


def _cell(text: str | None) -> str:
    """Text a spreadsheet will not run as a formula."""
    text = text or ""
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


@bp.get("/settlements/<int:batch_id>/transfers.csv")
@allow("finance")
def transfers_csv(batch_id: int):
    """The batch's waiting transfers as a bank bulk-transfer file (UTF-8 CSV with BOM):
    number, household, name, account, amount; decrypted and audited like the page."""
    found = _batch(batch_id)
    rows = settlement.batch_rows(
        get_db(), found["id"], _actor(), action="pii.bank_details_exported"
    )
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["明细编号", "户号", "户主姓名", "银行卡号", "金额", "附言"])
    for row in rows:
        if row["status"] != "pending" or row["unreadable"]:
            continue  # an unreadable account is shown on the page, never sent to the bank
        fen = row["amount_fen"]
        writer.writerow(
            [
                row["id"],
                row["code"],
                _cell(row["head_name"]),
                row["bank_account"] or "",
                units.yuan_plain(fen),
                f"四旁碳汇分成 {found['settle_on']}",
            ]
        )
    name = f"sipang-transfers-{found['settle_on']}.csv"
    return Response(
        "\ufeff" + out.getvalue(),
        mimetype="text/csv",
        headers={
            "Content-Disposition": f'attachment; filename="{name}"',
            "Cache-Control": "no-store",
        },
    )
