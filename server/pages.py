"""Server-rendered pages: the home page with the villages, sign-in and sign-out forms, and
where a tree tag's or an enrolment QR's link lands (the door plate is `server.plate`)."""

from flask import Blueprint, current_app, g, redirect, render_template, request, send_from_directory

from server import auth, villages
from server.access import PUBLIC, SIGNED_IN, allow
from server.db import first, get_db
from server.errors import ApiError
from server.workspace.nav import home_for
from village_kits import codes

bp = Blueprint("pages", __name__)


@bp.get("/")
@allow(PUBLIC)
def home():
    """The home page: what Sipang is and the villages taking part."""
    return render_template("home.html", villages=villages.list_villages(), user=g.user)


@bp.get("/login")
@allow(PUBLIC)
def login_form():
    """The sign-in form."""
    return render_template("login.html", error=None)


@bp.post("/login")
@auth.limit_by_address
@auth.limit_by_username
@allow(PUBLIC)
def login_submit():
    """Sign in from the form."""
    try:
        user = auth.check_credentials(
            request.form.get("username", "")[:64], request.form.get("password", "")[:200]
        )
    except ApiError as error:
        return render_template("login.html", error=error.message), error.status
    auth.start_session(user)
    return redirect(home_for(user))


@bp.post("/logout")
@allow(SIGNED_IN)
def logout_submit():
    """Sign out from the form."""
    auth.end_session()
    return redirect("/")


@bp.get("/t/<tag>")
@bp.get("/T/<tag>")
@allow(PUBLIC)
def tree_tag(tag: str):
    """A tree tag: the household page of the tree it is bound to, or how to bind it."""
    tag = tag.strip().upper()
    if not codes.is_tag(tag):
        return render_template(
            "message.html",
            title="这个树牌无效",
            text="树牌编码有误或已损坏，请核对树牌上的编号。",
            user=g.user,
        ), 404
    bound = first(
        get_db(),
        """SELECT h.code FROM trees t JOIN households h
                               ON h.id = t.household_id WHERE t.tag = ?""",
        [tag],
    )
    if bound:
        return redirect(f"/h/{bound['code']}")
    return render_template(
        "message.html",
        title=f"树牌 {tag}",
        text="这个树牌还没有绑定树木。计量员登记新树时，用四旁计量 App 扫描此树牌即可绑定。",
        user=g.user,
    )


@bp.get("/e/<code>")
@bp.get("/E/<code>")
@allow(PUBLIC)
def enrolment(code: str):
    """The enrolment QR's landing page: what to do with the one-time code."""
    return render_template(
        "message.html",
        title="注册计量员手机",
        text=f"一次性注册码：{code[:40]}。请用手机自带浏览器打开四旁计量 App，"
        "在“注册手机”中输入或扫描此码。注册码只能用一次，过期请向乡镇"
        "索取新的工具包。",
        user=g.user,
    )


@bp.get("/static/<path:filename>")
@allow(PUBLIC)
def static(filename: str):
    """Stylesheets and images for the server-rendered pages."""
    return send_from_directory(current_app.root_path + "/static", filename, max_age=3600)
