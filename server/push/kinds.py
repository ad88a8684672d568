"""The kinds of notification: who gets each, its Chinese text, the screen it opens, and how
long and how urgently the push service should try to deliver it."""

from dataclasses import dataclass
from typing import Any

DAY = 86_400


@dataclass(frozen=True)
class Kind:
    name: str
    owner_type: str  # household, order, device or user (a verifier)
    title: str
    body: str  # str.format template over the notify() parameters
    url: str  # str.format template: the screen the notification opens
    ttl_seconds: int
    urgency: str  # RFC 8030: very-low, low, normal, high

    def payload(self, params: dict[str, Any]) -> dict[str, str]:
        """The message the phone shows: {title, body, url}, short and in Chinese."""
        return {
            "title": self.title.format(**params),
            "body": self.body.format(**params)[:120],
            "url": self.url.format(**params),
        }


KINDS: dict[str, Kind] = {
    kind.name: kind
    for kind in (
        Kind(
            "money_sent",
            "household",
            "碳汇收益已汇出",
            "¥{amount} 已汇往您登记的银行账户，请留意到账。",
            "/h/{household_code}",
            ttl_seconds=2 * DAY,
            urgency="normal",
        ),
        Kind(
            "certificate_ready",
            "order",
            "碳汇证书已生成",
            "您的 {tonnes} 吨碳汇证书 {certificate_id} 已生成，点此查看。",
            "/orders/{order_id}",
            ttl_seconds=7 * DAY,
            urgency="normal",
        ),
        Kind(
            "sample_assigned",
            "user",
            "新的核查样本",
            "{village} 的 {trees} 棵样本树已分配给您复测。",
            "/app/#/verify/{verification_id}",
            ttl_seconds=3 * DAY,
            urgency="normal",
        ),
        Kind(
            "record_flagged",
            "device",
            "记录需要复核",
            "第 {household_seq} 户的一棵{species}被标记：{reason}",
            "/app/#/household/{household_code}",
            ttl_seconds=3 * DAY,
            urgency="low",
        ),
    )
}

OWNER_KINDS: dict[str, list[str]] = {}
for _kind in KINDS.values():
    OWNER_KINDS.setdefault(_kind.owner_type, []).append(_kind.name)

# Plausibility flags (server/carbon/plausibility.py) in a few Chinese words for the phone.
FLAG_LABELS = {
    "dbh_shrinking": "胸径比上次小",
    "growth_above_ceiling": "生长超过树种上限",
    "possible_duplicate": "可能重复登记",
    "gps_outside_village": "位置不在本村",
    "photo_missing": "缺少照片",
    "clock_skew": "手机时间不准",
    "estimate_failed": "无法估算碳储量",
    "height_jump": "树高增长过快",
    "height_shrinking": "树高比上次低",
    "size_envelope": "胸径与树高不相称",
    "too_large_for_age": "树龄与胸径不符",
    "gps_missing": "缺少定位",
    "photo_reused": "照片与其他树重复",
    "late_reading": "测量日期过早",
}


def flag_label(code: str) -> str:
    return FLAG_LABELS.get(code, "需要复核")
