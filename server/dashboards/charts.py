"""Small SVG charts drawn on the server (no chart library): bars per day or per village."""

from markupsafe import Markup, escape

WIDTH, HEIGHT, PAD_LEFT, PAD_BOTTOM, PAD_TOP = 640, 200, 56, 28, 12
COLOURS = ("#1d6b3a", "#c98a00", "#a40000")


def _nice_max(value: float) -> float:
    """A round axis maximum at or above `value` (1, 2 or 5 × a power of ten)."""
    if value <= 0:
        return 1
    power = 1
    while power * 10 <= value:
        power *= 10
    for step in (1, 2, 5, 10):
        if step * power >= value:
            return step * power
    return 10 * power


def bars(
    labels: list[str],
    series: list[tuple[str, list[float]]],
    *,
    title: str,
    unit: str,
    label_every: int = 1,
    width: int = WIDTH,
) -> Markup:
    """Grouped bars: one group per label, one bar per series; accessible title and values."""
    top = _nice_max(max((v for _, values in series for v in values), default=0))
    plot_w, plot_h = width - PAD_LEFT - 8, HEIGHT - PAD_BOTTOM - PAD_TOP
    group_w = plot_w / max(len(labels), 1)
    bar_w = max(group_w * 0.8 / max(len(series), 1), 1)
    parts = [
        f'<svg class="chart" viewBox="0 0 {width} {HEIGHT}" role="img" '
        f'aria-label="{escape(title)}" xmlns="http://www.w3.org/2000/svg">',
        f"<title>{escape(title)}</title>",
    ]
    for step in range(5):
        value = top * step / 4
        y = PAD_TOP + plot_h - plot_h * step / 4
        parts.append(
            f'<line x1="{PAD_LEFT}" x2="{width - 8}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>'
            f'<text x="{PAD_LEFT - 4}" y="{y + 4:.1f}" class="axis" text-anchor="end">'
            f"{value:g}</text>"
        )
    for index, label in enumerate(labels):
        x0 = PAD_LEFT + index * group_w + group_w * 0.1
        for number, (name, values) in enumerate(series):
            value = values[index]
            h = plot_h * value / top
            x = x0 + number * bar_w
            parts.append(
                f'<rect x="{x:.1f}" y="{PAD_TOP + plot_h - h:.1f}" width="{bar_w:.1f}" '
                f'height="{h:.1f}" fill="{COLOURS[number % len(COLOURS)]}">'
                f"<title>{escape(label)} {escape(name)} {value:g} {escape(unit)}</title></rect>"
            )
        if index % label_every == 0:
            parts.append(
                f'<text x="{x0 + group_w * 0.4:.1f}" y="{HEIGHT - 10}" class="axis" '
                f'text-anchor="middle">{escape(label)}</text>'
            )
    parts.append(f'<text x="4" y="{PAD_TOP + 4}" class="axis">{escape(unit)}</text></svg>')
    legend = "".join(
        f'<span><i style="background:{COLOURS[n % len(COLOURS)]}"></i>{escape(name)}</span>'
        for n, (name, _) in enumerate(series)
    )
    # every text above went through escape()
    return Markup(f"<figure>{''.join(parts)}<figcaption>{legend}</figcaption></figure>")  # noqa: S704
