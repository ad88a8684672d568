"""What a person reads on a page: visible text and labelling attributes, without the parts
that are codes or proper names (`<code>`, `translate="no"`), and the checks the Chinese UI
keeps: no English words, no ISO timestamps."""

import re
from html.parser import HTMLParser

SKIP_TAGS = {"script", "style", "code", "kbd", "samp", "template", "noscript"}
VOID_TAGS = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta",
             "source", "track", "wbr"}  # fmt: skip
READ_ATTRIBUTES = ("aria-label", "placeholder", "alt", "title")
# Codes, units, file formats and proper names a Chinese page may carry.
ALLOWED = {
    "Sipang", "CSV", "Excel", "PDF", "PNG", "JPEG", "QR", "GPS", "App", "ID", "CO", "CO2e",
    "WeChat", "Moments", "EVM", "Chart", "js", "Vyper", "CCER", "Verra", "VM", "VM0047", "LY", "GB",
    "IPCC", "HTTPS", "URL", "No", "SMS", "UTC", "kg", "cm", "mm", "km", "kb", "KB", "MB",
    "m2", "m3", "ha", "JSON", "zip",
    # identifier prefixes of DESIGN.md §3 and the methodology's version code (sipang-2026.1)
    "SP", "SPC", "sipang",
}  # fmt: skip
ENGLISH = re.compile(r"[A-Za-z][A-Za-z0-9]*[A-Za-z]")
ISO_TIME = re.compile(r"\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2})?")


class Reader(HTMLParser):
    """Collects the text a person reads."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[bool] = []  # per open element: is it skipped?
        self.parts: list[str] = []

    def _skipping(self) -> bool:
        return any(self.stack)

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        skipped = tag in SKIP_TAGS or attributes.get("translate") == "no"
        if not skipped and not self._skipping():
            self.parts.extend(attributes[a] for a in READ_ATTRIBUTES if attributes.get(a))
            if tag == "input" and attributes.get("type") in ("submit", "button"):
                self.parts.append(attributes.get("value") or "")
        if tag not in VOID_TAGS:
            self.stack.append(skipped)

    def handle_endtag(self, tag):
        if tag not in VOID_TAGS and self.stack:
            self.stack.pop()

    def handle_data(self, data):
        if not self._skipping():
            self.parts.append(data)


def readable_text(html: str) -> str:
    reader = Reader()
    reader.feed(html)
    return " ".join(" ".join(reader.parts).split())


def english_words(text: str) -> list[str]:
    return sorted({w for w in ENGLISH.findall(text) if w not in ALLOWED})


def iso_times(text: str) -> list[str]:
    return sorted(set(ISO_TIME.findall(text)))
