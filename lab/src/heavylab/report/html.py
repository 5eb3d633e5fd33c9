"""comparison.html: the markdown report's content in one self-contained page (inline CSS and SVG;
no scripts, fonts or images from anywhere), rendered from templates/comparison.html.j2 by Jinja2
with autoescaping on. The charts are SVG strings made by heavylab.report.charts, which escapes
its own text; they are the only markup passed through unescaped."""

from __future__ import annotations

import re
from importlib import resources

import jinja2
from markupsafe import Markup, escape

from heavylab.analysis import fingerprint as fp
from heavylab.report import figures
from heavylab.report import markdown as md


def _inline(text: str) -> Markup:
    """A verdict line: escaped, then its **bold** and `code` made HTML."""
    safe = str(escape(text))
    safe = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", safe)
    safe = re.sub(r"`([^`]+)`", r"<code>\1</code>", safe)
    return Markup(safe)


def _env() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FunctionLoader(
            lambda name: (
                resources.files("heavylab.report").joinpath("templates", name).read_text(encoding="utf-8")
            )
        ),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["inline"] = _inline
    return env


def render_html(c) -> str:
    searches = md.capacity_searches(c)
    context = {
        "title": md.title(c),
        "capacity_mode": c.capacity_mode,
        "command": c.command,
        "warnings": c.warnings,
        "verdict": c.verdict,
        "pair_verdicts": [(s.label, c.pair_verdicts[s.label]) for s in c.sides[1:]]
        if len(c.sides) > 2
        else [],
        "baseline": c.baseline.label,
        "labels": c.labels,
        "colors": [figures._color(i) for i in range(len(c.sides))],
        "facts": md.facts_rows(c),
        "platforms": fp.platform_rows(c.sides),
        "searches": searches,
        "step_header": md.STEP_HEADER,
        "steps": [r for ss in searches for r in md.step_rows(ss)],
        "capacity_charts": [Markup(x) for x in figures.capacity_charts(c)],
        "series_charts": [Markup(x) for x in figures.series_charts(c)],
        "bar_charts": [Markup(x) for x in figures.bar_charts(c)],
        "utilization_charts": [Markup(x) for x in figures.utilization_charts(c)],
        "utilization_notes": md.utilization_notes(c)
        if any(r.section.startswith("Utilization") for r, _ in c.table)
        else [],
        "cloudwatch_charts": [Markup(x) for x in figures.cloudwatch_charts(c)],
        "transfer": md.transfer_lines(c),
        "pair_columns": md.pair_columns(c),
        "sections": md.table_sections(c),
        "stage_header": md.STAGE_HEADER,
        "stages": md.stage_rows(c),
        "footnote": md.FOOTNOTE,
    }
    return _env().get_template("comparison.html.j2").render(**context)
