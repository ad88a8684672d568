"""The public methodology page: what a Sipang tonne is and the rules that make one, in the
words the certificate, bundle and verify pages link to."""

from flask import Blueprint, render_template

from server.access import PUBLIC, allow
from server.carbon import rules
from server.carbon.method import load_method
from server.registry import ratio

bp = Blueprint("methodology", __name__)


@bp.get("/methodology")
@allow(PUBLIC)
def methodology():
    """The crediting rules in plain Chinese, with the current parameter set's species."""
    method = load_method()
    return render_template(
        "carbon/methodology.html",
        method=method,
        species=sorted(method.species.values(), key=lambda s: s["route"] == "excluded"),
        rules=rules,
        reject_ratio=ratio.REJECT_RATIO,
    )
