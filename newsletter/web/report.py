"""The stats report as one HTML file: numbers and tables from ``mailing.stats``, charts
drawn by matplotlib as SVG and embedded as ``data:`` images, the page from the layout
``stats.html.j2``. Nothing in it loads from anywhere: it reads the same from disk,
offline, or behind ``serve``'s ``/stats`` (whose CSP allows ``data:`` images).

matplotlib is imported only here, and only for a report (about 0.7 s of CPU). Its text stays
text in the SVG (``svg.fonttype: none``): the browser draws titles in any script with
the reader's fonts, where DejaVu, matplotlib's own, has no CJK.
"""

from __future__ import annotations

import base64
import datetime as dt
import io
import threading
import warnings
from typing import Any, NamedTuple

import jinja2

from newsletter.authoring.workspace import layouts_source
from newsletter.config import Settings
from newsletter.mailing.stats import IssueStats, Overview, by_period, period_for

LAYOUT = "stats.html.j2"
TOP_LINKS = 15  # bars in "clicks per item"; the table below it lists every link
_MUTED, _RED, _ORANGE = "#56606e", "#c0392b", "#b7600b"
# Text stays text, ids are the same from run to run, the family falls back to the reader's.
_STYLE = {"svg.fonttype": "none", "svg.hashsalt": "newsletter-stats", "font.family": ["DejaVu Sans", "sans-serif"],
          "axes.edgecolor": "#c3cad3"}
_DRAWING = threading.Lock()


class Chart(NamedTuple):
    """A chart for the layout: its image as a data: URI, and what it shows in words."""

    id: str
    title: str
    alt: str
    uri: str


def render_report(settings: Settings, data: IssueStats | Overview, issue_href: str | None = None,
                  overview_href: str | None = None) -> str:
    """The report's HTML. ``issue_href`` (like ``/stats/{issue}``) links each issue of
    the overview to its own report, ``overview_href`` an issue's report back; without
    them (a file) issues are plain numbers."""
    accent = settings.brand.accent
    context: dict[str, Any] = {"name": settings.name, "lang": settings.lang, "accent": accent,
                               "generated": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
                               "issue_href": issue_href, "overview_href": overview_href, "charts": []}
    import matplotlib

    # Text is measured with DejaVu, which lacks CJK: the browser draws it (see above), so
    # matplotlib's "Glyph missing" warnings say nothing about the report. rcParams are
    # global: serve's threads draw one report at a time.
    with _DRAWING, matplotlib.rc_context(_STYLE), warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Glyph .* missing")
        if isinstance(data, IssueStats):
            context.update(kind="issue", stats=data)
            if data.links:
                context["charts"].append(clicks_chart(data, accent))
        else:
            period = period_for(data.growth)
            context.update(kind="overview", stats=data, period=period, periods=by_period(data.growth, period))
            if data.growth:
                context["charts"].append(growth_chart(data, period, accent))
            if data.issues:
                context["charts"].append(trend_chart(data, accent))
            if data.latest is not None and data.latest.links:
                context["charts"].append(clicks_chart(data.latest, accent, f"issue {data.latest.issue}, the latest"))
    return _environment(settings).get_template(LAYOUT).render(context)


def _environment(settings: Settings) -> jinja2.Environment:
    """The workspace's layouts first, then the tool's own: a workspace made before the
    report existed still gets one."""
    loader = jinja2.ChoiceLoader([jinja2.FileSystemLoader(settings.layouts), jinja2.FileSystemLoader(layouts_source())])
    env = jinja2.Environment(loader=loader, autoescape=True, undefined=jinja2.StrictUndefined,
                             trim_blocks=True, lstrip_blocks=True)
    env.filters["n"] = "{:,}".format
    env.globals["share"] = share
    return env


def share(part: int, whole: int) -> str:
    """``part`` as a percentage of ``whole``, with a second decimal under 1% (unsubscribes)."""
    if not whole:
        return "–"
    value = 100 * part / whole
    return f"{value:.2f}%" if 0 < value < 1 else f"{value:.1f}%"


def growth_chart(data: Overview, period: str, accent: str) -> Chart:
    """Subscribers over time: the count after each day with a change, and above it who
    joined and who left per ``period``."""
    days = data.growth
    when = [dt.date.fromisoformat(d.date) for d in days]
    figure, (moves, total) = _figure(2, height=4.6, ratios=(1, 2.2))
    total.step(when, [d.subscribed for d in days], where="post", color=accent, linewidth=2)
    total.fill_between(when, [d.subscribed for d in days], step="post", color=accent, alpha=0.12)
    total.set_ylabel("subscribed")
    total.set_ylim(bottom=0)
    groups = by_period(days, period)
    starts = [dt.date.fromisoformat(g.date) for g in groups]
    width = 5 if period == "week" else 22
    moves.bar(starts, [g.joined for g in groups], width=width, align="edge", color=accent, label="joined")
    moves.bar(starts, [-g.unsubscribed for g in groups], width=width, align="edge", color=_ORANGE,
              label="unsubscribed")
    moves.bar(starts, [-g.bounced for g in groups], bottom=[-g.unsubscribed for g in groups], width=width,
              align="edge", color=_RED, label="bounced")
    moves.axhline(0, color=_MUTED, linewidth=0.8)
    moves.set_ylabel(f"per {period}")
    _legend_above(moves)
    moves.sharex(total)
    moves.tick_params(labelbottom=False)
    figure.autofmt_xdate()
    last = days[-1]
    alt = (f"Subscribers over time, from {days[0].date} to {last.date}: {last.subscribed:,} subscribed at the end;"
           f" {sum(d.joined for d in days):,} joined, {sum(d.unsubscribed for d in days):,} unsubscribed and"
           f" {sum(d.bounced for d in days):,} bounced in all.")
    return Chart("growth", "Subscribers over time", alt, _svg(figure))


def trend_chart(data: Overview, accent: str) -> Chart:
    """Per issue, as shares of its delivered messages: readers who clicked (above), and
    unsubscribes and bounces (below, on their own scale: they are a hundred times rarer)."""
    rows = data.issues
    figure, (clicked, lost) = _figure(2, height=4.4, ratios=(1.3, 1))
    x = [str(row.issue) for row in rows]

    def share(n: int, row) -> float:
        return 100 * n / row.delivered if row.delivered else 0.0

    readers = [share(r.readers, r) for r in rows]
    unsubscribed, bounced = [share(r.unsubscribes, r) for r in rows], [share(r.bounced, r) for r in rows]
    clicked.plot(x, readers, marker="o", color=accent, label="readers who clicked")
    lost.plot(x, unsubscribed, marker="s", color=_ORANGE, label="unsubscribed")
    lost.plot(x, bounced, marker="^", color=_RED, label="bounced")
    for ax, values in ((clicked, readers), (lost, unsubscribed + bounced)):
        ax.set_ylabel("% of delivered")
        ax.set_ylim(0, max(0.1, *values) * 1.2)  # room above the highest point
        _legend_above(ax)
    clicked.tick_params(labelbottom=False)
    lost.sharex(clicked)
    lost.set_xlabel("issue")
    if len(x) > 24:  # every issue's number would overlap
        lost.set_xticks(x[::max(1, len(x) // 12)])
    alt = "Per issue, in % of delivered: " + "; ".join(
        f"#{r.issue}: {share(r.readers, r):.1f}% clicked, {share(r.unsubscribes, r):.2f}% unsubscribed,"
        f" {share(r.bounced, r):.2f}% bounced" for r in rows[-12:])
    return Chart("trend", "Per-issue trend", alt, _svg(figure))


def _legend_above(ax) -> None:
    """The legend in a row above the axes, where it hides no data."""
    ax.legend(loc="lower left", bbox_to_anchor=(0, 1.0), ncol=3, frameon=False, fontsize=9, borderaxespad=0.2)


def clicks_chart(data: IssueStats, accent: str, which: str = "") -> Chart:
    """Clicks per item, top first: counted clicks, and beside them those filtered as
    scanners. ``which`` names the issue in the title (the overview shows the latest)."""
    links = data.links[:TOP_LINKS]
    figure, (axes,) = _figure(1, height=0.9 + 0.32 * len(links))
    y = list(range(len(links)))
    axes.barh(y, [link.counted for link in links], color=accent, label="counted", height=0.62)
    axes.barh(y, [link.scanner for link in links], left=[link.counted for link in links], color="#c3cad3",
              label="scanners (not counted)", height=0.62)
    axes.set_yticks(y, [_label(link.title or link.url) for link in links])
    axes.invert_yaxis()
    axes.set_xlabel("clicks")
    _legend_above(axes)
    for n, link in enumerate(links):
        axes.annotate(f"{link.counted:,}", (link.counted + link.scanner, n), xytext=(4, 0),
                      textcoords="offset points", va="center", fontsize=9, color=_MUTED)
    alt = f"Clicks per item of issue {data.issue}, top first: " + "; ".join(
        f"{link.title or link.url}: {link.counted}" for link in links)
    top = f"top {len(links)}" if len(data.links) > TOP_LINKS else ""
    notes = ", ".join(note for note in (which, top) if note)
    return Chart("clicks", "Clicks per item" + (f" ({notes})" if notes else ""), alt, _svg(figure))


def _label(text: str, most: int = 48) -> str:
    """A bar's label: one short line, and a ``$`` that matplotlib would read as math."""
    text = " ".join(text.split())
    text = text if len(text) <= most else text[:most - 1] + "…"
    return text.replace("$", r"\$")


def _figure(rows: int, height: float, ratios: tuple[float, ...] | None = None):
    from matplotlib.figure import Figure  # no pyplot: no GUI backend, no global state

    figure = Figure(figsize=(8.4, height), layout="constrained")
    axes = figure.subplots(rows, 1, squeeze=False, gridspec_kw={"height_ratios": ratios} if ratios else None)
    for ax in axes[:, 0]:
        ax.spines[["top", "right"]].set_visible(False)
        ax.grid(axis="both", color="#e2e6eb", linewidth=0.8)
        ax.set_axisbelow(True)
        ax.tick_params(colors=_MUTED, labelsize=9)
    return figure, tuple(axes[:, 0])


def _svg(figure) -> str:
    """The figure as an SVG data: URI; the same data gives the same bytes."""
    out = io.BytesIO()
    figure.savefig(out, format="svg", metadata={"Date": None, "Creator": None})
    return "data:image/svg+xml;base64," + base64.b64encode(out.getvalue()).decode("ascii")
