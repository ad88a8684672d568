"""Why a tree is gone, as the measurer's phone records it with a dead or felled status (the
codes of pwa/js/screens.js), in the words pages show."""

STATUS_REASONS = {
    "pests": "病虫害",
    "drought": "干旱",
    "storm": "风雪、雷击",
    "building": "建房、修路",
    "harvest": "采伐利用",
    "fallen": "倒伏后清理",
    "other": "其他原因",
}


def reason_zh(code: str | None) -> str | None:
    """The reason in Chinese (an unknown code as it was sent), or None when none was given."""
    if not code:
        return None
    return STATUS_REASONS.get(code, code)
