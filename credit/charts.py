"""The wallet page's chart: spend per day by shop, as a server-rendered SVG.

No JavaScript and no chart library: a stacked bar per day (one colour per shop),
horizontal grid lines with amounts, a date every fortnight. The SVG is an image
with a <title> and a <desc> (the text summary); the page also offers the same
numbers as a table, so nothing is only in the picture.

Colours are the Okabe-Ito palette, told apart by people with colour blindness;
spending without a shop is grey.
"""

from __future__ import annotations

import datetime as dt
import functools
from dataclasses import dataclass
from decimal import Decimal
from html import escape  # Django's escape() is this, made lazy-aware and marked safe

from babel.numbers import format_compact_currency
from django.utils.formats import date_format
from django.utils.safestring import SafeString, mark_safe
from django.utils.translation import get_language
from django.utils.translation import gettext as _
from djmoney.money import get_current_locale

from credit.selectors import DailySpend

PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#7A6500")
OTHER_COLOUR = "#6F4E7C"
NO_SHOP_COLOUR = "#8C959F"

WIDTH, HEIGHT = 900, 280
LEFT, RIGHT, TOP, BOTTOM = 72, 28, 12, 36  # room for the amounts and the dates
GRID_LINES = 4
LABEL_EVERY_DAYS = 14


def series_colours(spend: DailySpend) -> dict[str, str]:
    """The colour of each series, shared by the bars and the page's legend."""
    colours: dict[str, str] = {}
    shops = iter(PALETTE)
    for series in spend.series:
        if series.key == "no-shop":
            colours[series.key] = NO_SHOP_COLOUR
        elif series.key == "other":
            colours[series.key] = OTHER_COLOUR
        else:
            colours[series.key] = next(shops, OTHER_COLOUR)
    return colours


def _nice_ceiling(value: Decimal) -> Decimal:
    """The smallest 1, 2, 2.5 or 5 x 10^n at or above ``value`` (the top of the axis)."""
    if value <= 0:
        return Decimal(1)
    exponent = value.adjusted()
    for step in (Decimal(1), Decimal(2), Decimal("2.5"), Decimal(5), Decimal(10)):
        candidate = step.scaleb(exponent)
        if candidate >= value:
            return candidate
    return Decimal(10).scaleb(exponent)  # pragma: no cover - 10 x 10^n always fits


def _axis_label(amount: Decimal, currency: str) -> str:
    """Short amounts for the axis, in the reader's language: €50, CZK2K, 2 tis. Kč."""
    return format_compact_currency(amount, currency, locale=get_current_locale(), fraction_digits=2)


@dataclass(frozen=True)
class Bar:
    day: dt.date
    key: str
    amount: Decimal
    x: float
    y: float
    width: float
    height: float


def _bars(spend: DailySpend, top: Decimal) -> list[Bar]:
    plot_width = WIDTH - LEFT - RIGHT
    plot_height = HEIGHT - TOP - BOTTOM
    slot = plot_width / max(len(spend.days), 1)
    width = max(slot * 0.78, 1.0)
    bars = []
    for index, day in enumerate(spend.days):
        x = LEFT + index * slot + (slot - width) / 2
        base = float(HEIGHT - BOTTOM)
        for series in spend.series:
            amount = spend.amount(day, series.key)
            # A day whose refunds exceed its payments nets below zero: nothing to stack.
            if amount <= 0:
                continue
            height = float(amount / top) * plot_height
            base -= height
            bars.append(Bar(day, series.key, amount, x, base, width, height))
    return bars


@functools.lru_cache(maxsize=4096)
def _day_label(language: str | None, day: dt.date) -> str:
    return date_format(day, "DATE_FORMAT")


def day_labels(spend: DailySpend) -> dict[dt.date, str]:
    """Each day with spending as the active language writes a date (for tooltips and the
    table). Django's date formatting is slow, and every wallet page shows the same days:
    each is written once per language."""
    language = get_language()
    return {day: _day_label(language, day) for day in spend.days_with_spend}


def spend_table_rows(spend: DailySpend, labels: dict[dt.date, str]) -> SafeString:
    """The table's body: a row per day with spending, an amount per series and the day's
    total (the chart's numbers for those who do not see it). Written here rather than by
    template loops: it has up to 90 rows of nine cells."""
    text = spend.money_text()
    keys = [series.key for series in spend.series]
    rows = []
    for day in spend.days_with_spend:
        cells = "".join(
            f'<td class="text-end text-nowrap">{escape(text(spend.amount(day, key)))}</td>'
            for key in keys
        )
        rows.append(
            f'<tr><th scope="row" class="fw-normal text-nowrap">{escape(labels[day])}</th>'
            f'{cells}<td class="text-end text-nowrap fw-semibold">'
            f"{escape(text(spend.day_total(day)))}</td></tr>"
        )
    return mark_safe("\n".join(rows))  # noqa: S308 - every interpolated text is escaped


def spend_chart_svg(
    spend: DailySpend,
    *,
    title: str,
    summary: str,
    names: dict[str, str],
    labels: dict[dt.date, str] | None = None,
) -> SafeString:
    """The stacked bar chart as inline SVG (safe to put in a template as it is).

    ``title`` and ``summary`` become the image's accessible name and description;
    ``names`` maps each series key to the shop name shown in a bar's tooltip, ``labels``
    each day to its written date (day_labels).
    """
    labels = day_labels(spend) if labels is None else labels
    text = spend.money_text()
    highest = max((spend.day_total(day) for day in spend.days), default=Decimal(0))
    top = _nice_ceiling(highest)
    colours = series_colours(spend)
    plot_height = HEIGHT - TOP - BOTTOM
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" '
        'class="spend-chart" role="img" width="100%" preserveAspectRatio="xMidYMid meet" '
        'aria-labelledby="spend-chart-title spend-chart-desc" '
        'font-family="system-ui, sans-serif" font-size="12">',
        f'<title id="spend-chart-title">{escape(title)}</title>',
        f'<desc id="spend-chart-desc">{escape(summary)}</desc>',
        '<g class="grid" aria-hidden="true">',
    ]
    for line in range(GRID_LINES + 1):
        value = top * line / GRID_LINES
        y = HEIGHT - BOTTOM - plot_height * line / GRID_LINES
        parts.append(
            f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" '
            f'stroke="{"#6c757d" if line == 0 else "#dee2e6"}" stroke-width="1"/>'
            f'<text x="{LEFT - 8}" y="{y + 4:.1f}" text-anchor="end" fill="#495057">'
            f"{escape(_axis_label(value, spend.currency))}</text>"
        )
    slot = (WIDTH - LEFT - RIGHT) / max(len(spend.days), 1)
    for index, day in enumerate(spend.days):
        if (len(spend.days) - 1 - index) % LABEL_EVERY_DAYS == 0:
            x = LEFT + index * slot + slot / 2
            parts.append(
                f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{HEIGHT - BOTTOM}" '
                f'y2="{HEIGHT - BOTTOM + 4}" stroke="#6c757d"/>'
                f'<text x="{x:.1f}" y="{HEIGHT - BOTTOM + 18}" text-anchor="middle" '
                f'fill="#495057">{escape(date_format(day, "j M"))}</text>'
            )
    parts.append("</g>")
    parts.append('<g class="bars">')
    # Translated once; each day's label and each amount written once per bar at most.
    tooltip_text = _("%(day)s · %(shop)s: %(amount)s")
    for bar in _bars(spend, top):
        day_label = labels.get(bar.day)
        if day_label is None:
            day_label = labels[bar.day] = _day_label(get_language(), bar.day)
        tooltip = tooltip_text % {
            "day": day_label,
            "shop": names.get(bar.key, bar.key),
            "amount": text(bar.amount),
        }
        parts.append(
            f'<rect x="{bar.x:.2f}" y="{bar.y:.2f}" width="{bar.width:.2f}" '
            f'height="{bar.height:.2f}" fill="{colours[bar.key]}" '
            f'data-day="{bar.day.isoformat()}" data-series="{escape(bar.key)}" '
            f'data-amount="{bar.amount}"><title>{escape(tooltip)}</title></rect>'
        )
    parts.append("</g></svg>")
    return mark_safe("".join(parts))  # noqa: S308 - every interpolated text is escaped above


def spend_summary(spend: DailySpend) -> str:
    """The chart in one or two sentences (its description, also shown on the page)."""
    days = spend.days_with_spend
    if not days:
        return _("Nothing was spent from this credit in the last %(count)d days.") % {
            "count": len(spend.days)
        }
    highest = max(days, key=spend.day_total)
    text = _(
        "In the last %(count)d days %(total)s was spent from this credit, on %(active)d "
        "of those days. The most in one day was %(highest)s on %(day)s."
    ) % {
        "count": len(spend.days),
        "total": spend.money(spend.total),
        "active": len(days),
        "highest": spend.money(spend.day_total(highest)),
        "day": date_format(highest, "DATE_FORMAT"),
    }
    shops = [series for series in spend.series if series.key.startswith("shop-")]
    if len(shops) > 1:
        biggest = max(shops, key=lambda series: series.total)
        text += " " + _("%(shop)s spent the most: %(amount)s.") % {
            "shop": biggest.name,
            "amount": spend.money(biggest.total),
        }
    return text
