"""Species and methodology versions, read-only, each number with its source."""

from flask import Blueprint

from server.access import allow
from server.carbon.method import available_versions, load_method
from server.workspace.common import page

bp = Blueprint("workspace_methods", __name__, url_prefix="/admin/methods")

ROUTE_NAMES = {
    "species_model": "树种生物量模型（国家或行业标准）",
    "volume_route": "材积法",
    "generic": "通用方程（按树种木材密度）",
    "excluded": "不计入碳汇",
}
GROUP_NAMES = {"conifer": "针叶", "broadleaf": "阔叶", "bamboo": "竹", "fruit": "果树"}


@bp.get("")
@allow("admin")
def methods():
    """Every methodology version with its hash, crediting constants and species."""
    versions = [load_method(version) for version in available_versions()]
    return page("methods.html", versions=versions, route_names=ROUTE_NAMES, group_names=GROUP_NAMES)
