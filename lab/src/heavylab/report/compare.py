"""`heavy-lab compare`: one report over two or more run folders — a column per platform, the
ranking by capacity and by cost at capacity, every difference judged against the noise of both
sides — and the API the platform lab calls.

    heavy-lab compare ec2-x86=results/ec2 fargate-arm=results/fargate-arm [more ...]
        [--price ec2-x86=ec2:m6i.large --price fargate-arm=fargate-arm64:cpu=2,mem=4]
        [--out DIR] [--force] [--min-effect 0.05]
    heavy-lab compare RUN_A RUN_B [--label-a NAME --label-b NAME --price-a SPEC --price-b SPEC]

Each RUN is a run folder (summary.json, meta.json, samples.csv.gz, capacity.json for a capacity
run) or a folder of run folders: one platform's runs, alternated with the others'. LABEL=PATH
names a side; a plain path takes meta.json's label (else the folder's name). Prices: `--price
LABEL=SPEC` (specs and the price table: heavylab.analysis.prices; `--prices` prints the table),
else what `heavy-lab run --price` stored in meta.json.

How sides are judged. The FIRST side is the baseline: each other side's column "X/baseline" and
its "beyond noise" mark judge X against the baseline, with the noise of both (the rule of every
row: ranges apart and medians more than --min-effect apart, heavylab.analysis.stats). The
rankings (capacity, cost at capacity; without capacity runs: p95 latency and cost per million)
order all sides; a side shares the rank of the one above it unless they differ beyond noise. Why a
side is slower is named against the BEST-ranked side (throttling, waiting for a core, steal,
slower CPU: heavylab.analysis.verdicts); by capacity, for a side ranked worse beyond noise only. Two sides give the report of two sides: A and B.

API (for the platform lab and other callers):

    from heavylab.report.compare import compare_many
    result = compare_many([("dedicated", "runs/ded"), ("quota", "runs/quota"), (None, "runs/x")],
                          out=Path("report"), prices={"quota": "fargate-x86:cpu=0.5,mem=1"})
    result.ranking            # [Place(label, rank, value, text, vs_best, vs_previous)], capacity
                              # ranking when every side is a capacity run, else p95 latency
    result.ranking_cost       # by cost at capacity (or per million at the load tested)
    result.causes["quota"]    # ["throttling", "waiting for a core"]: why it is slower than the best
    result.differs("a", "b")  # beyond noise? (capacity, or p95 latency; any row label: row=...)
    result.verdict            # the verdict lines, as in comparison.md
    result.md_path, result.html_path  # and OUT/comparison.json: result.to_dict()

Options of compare_many: prices {label or position: spec}, transfer (a
heavylab.analysis.prices.TransferAssumptions: ALB processed bytes, the cross-AZ share, egress;
the CLI's --no-alb, --cross-az, --egress), force (compare different workloads, with a
warning), min_effect (0.05), noise (the ±10 % assumed for a run without samples), command (the
command line written in the report). Errors are ValueError with the reason (a bad folder, no valid
run, different workloads without force, a bad price).
"""

from __future__ import annotations

import argparse
import json
import re
import shlex
import sys
from dataclasses import dataclass, field
from pathlib import Path

from heavylab.analysis import capacity as capsearch
from heavylab.analysis import fingerprint as fp
from heavylab.analysis import resources, series, table
from heavylab.analysis.fmt import fmt_num  # noqa: F401  (the tests' and callers' formatter)
from heavylab.analysis.prices import (  # noqa: F401
    Price,
    TransferAssumptions,
    cost_per_million,
    parse_price,
    price_table_markdown,
)
from heavylab.analysis.runs import (  # noqa: F401
    Side,
    exclusion_reason,
    load_run,
    load_side,
    split_at_limit,
    workload_differences,
)
from heavylab.analysis.stats import DEFAULT_MIN_EFFECT, DEFAULT_NOISE, differs
from heavylab.analysis.verdicts import (
    Place,
    named_causes,
    rank,
    ranking_sentence,
    split_measured,
    spread_note,
    verdicts,
)

PROG = "heavy-lab compare"


@dataclass
class Comparison:
    """The result of one comparison of N sides (see the module docstring)."""

    sides: list[Side]
    min_effect: float
    table: list  # [(Row, [Stat per side])]
    capacity_mode: bool
    pairs: dict = field(default_factory=dict)  # label -> pair rows of (baseline, label)
    ranking: list[Place] = field(default_factory=list)
    ranking_cost: list[Place] = field(default_factory=list)
    ranking_by: str = ""  # "capacity" or "p95 latency"
    causes: dict = field(default_factory=dict)  # label -> [cause] against the best side
    split_measured: dict = field(default_factory=dict)  # label -> both carry the CPU split
    verdict: list[str] = field(default_factory=list)
    pair_verdicts: dict = field(default_factory=dict)  # label -> verdict lines against the baseline
    warnings: list[str] = field(default_factory=list)
    command: str = ""
    stages: dict = field(default_factory=dict)  # label -> per-stage rows
    md_path: Path | None = None
    html_path: Path | None = None
    transfer: TransferAssumptions = field(default_factory=TransferAssumptions)
    cloudwatch: list[str] = field(default_factory=list)  # CloudWatch's disagreements, in words

    @property
    def labels(self) -> list[str]:
        return [s.label for s in self.sides]

    @property
    def baseline(self) -> Side:
        return self.sides[0]

    @property
    def rows(self) -> list[dict]:
        """Two sides: the pair rows of B against A (the report of two sides)."""
        return self.pairs[self.sides[1].label]

    def to_dict(self) -> dict:
        """What comparison.json holds: the rankings, the causes, the verdict, each side's capacity."""
        from dataclasses import asdict

        return {
            "labels": self.labels,
            "baseline": self.baseline.label,
            "capacity_mode": self.capacity_mode,
            "ranking_by": self.ranking_by,
            "ranking": [asdict(p) for p in self.ranking],
            "ranking_cost": [asdict(p) for p in self.ranking_cost],
            "causes": self.causes,
            "verdict": self.verdict,
            "pair_verdicts": self.pair_verdicts,
            "warnings": self.warnings,
            "capacity": {
                s.label: {
                    "capacity_rps": (s.merged.capacity or {}).get("capacity_rps"),
                    "statement": capsearch.statement(s.merged.capacity or {}),
                }
                for s in self.sides
                if s.is_capacity
            },
            "transfer": {
                "assumptions": self.transfer.sentences(),
                "sides": {
                    s.label: (
                        {
                            "bytes_per_request": s.merged.transfer.bytes_per_request,
                            "source": s.merged.transfer.source,
                            "per_million": s.merged.transfer.per_million,
                        }
                        if s.merged.transfer is not None
                        else None
                    )
                    for s in self.sides
                },
            },
            "cloudwatch_findings": self.cloudwatch,
            "min_effect": self.min_effect,
            "command": self.command,
        }

    def side(self, label: str) -> Side:
        for s in self.sides:
            if s.label == label:
                return s
        raise KeyError(f"no side labelled {label!r} (sides: {', '.join(self.labels)})")

    def stats(self, row_label: str) -> list:
        for row, stats in self.table:
            if row.label == row_label:
                return stats
        raise KeyError(f"no row {row_label!r}")

    def differs(self, a: str, b: str, row: str | None = None) -> bool:
        """Whether sides a and b differ beyond noise in a row (default: capacity for capacity
        runs, else p95 latency), by the report's one rule."""
        row = row or (table.CAPACITY if self.capacity_mode else "p95")
        stats = self.stats(row)
        i, j = self.labels.index(a), self.labels.index(b)
        return differs(stats[i], stats[j], self.min_effect)


def _labels(sides: list[Side], given: list[str | None]) -> None:
    for side, label in zip(sides, given, strict=True):
        side.label = label or str(side.meta.get("label") or side.path.name)
    names = [s.label for s in sides]
    for i, side in enumerate(sides):
        if names.count(side.label) > 1:
            side.label = f"{names[i]} {chr(65 + i)} ({side.path.name})"


def _price(spec: str | None, side: Side) -> Price | None:
    spec = spec or side.meta.get("price")
    if not spec:
        return None
    try:
        return parse_price(str(spec))
    except ValueError as err:
        raise ValueError(f"--price {side.label}: {err}") from None


def _rankings(c: Comparison) -> None:
    labels = c.labels
    if c.capacity_mode:
        c.ranking_by = "capacity"
        c.ranking = rank(labels, c.stats(table.CAPACITY), "rate", False, c.min_effect)
        cost_row = table.COST_AT_CAPACITY
    else:
        c.ranking_by = "p95 latency"
        c.ranking = rank(labels, c.stats("p95"), "ms", True, c.min_effect) if _has(c, "p95") else []
        cost_row = table.COST
    c.ranking_cost = rank(labels, c.stats(cost_row), "money", True, c.min_effect) if _has(c, cost_row) else []


def _has(c: Comparison, row_label: str) -> bool:
    return any(r.label == row_label for r, _ in c.table)


def _causes(c: Comparison) -> None:
    """Each side's named causes against the best-ranked side (beyond noise, in its direction).
    In a capacity comparison none for a side whose capacity is within noise of the best: there
    is nothing to explain (by latency, a side may be slower at p50 while its p95 ranks level)."""
    if not c.ranking:
        return
    best = c.labels.index(c.ranking[0].label)
    worse = {p.label for p in c.ranking if p.vs_best == "beyond noise" or not c.capacity_mode}
    for j, label in enumerate(c.labels):
        if j == best:
            c.causes[label] = []
            continue
        rows = table.pair_rows(c.table, best, j, not c.capacity_mode, c.min_effect)
        c.causes[label] = named_causes(rows, slower_is_b=True) if label in worse else []
        c.split_measured[label] = split_measured(rows)


def _verdict(c: Comparison) -> None:
    base = c.baseline
    for other in c.sides[1:]:
        c.pair_verdicts[other.label] = verdicts(
            base, other, c.pairs[other.label], with_platform=len(c.sides) == 2
        )
    if len(c.sides) == 2:
        c.verdict = c.pair_verdicts[c.sides[1].label]
        return
    unit = " req/s" if c.capacity_mode else " ms"
    lines = [ranking_sentence(f"Ranking by {c.ranking_by}", c.ranking, unit)]
    what = (
        "cost per million requests at capacity"
        if c.capacity_mode
        else "cost per million requests at the load tested"
    )
    if c.ranking_cost:
        lines.append(ranking_sentence(f"Ranking by {what}", c.ranking_cost, ""))
    else:
        lines.append(f"Ranking by {what}: give each side a price (--price LABEL=SPEC).")
    best = c.ranking[0].label if c.ranking else None
    for place in c.ranking[1:]:
        if place.vs_best != "beyond noise":
            continue
        named = c.causes.get(place.label) or []
        if named:
            why = f"the server's CPU split names {', '.join(named)}."
        elif c.split_measured.get(place.label):
            why = (
                "no cause in the CPU split (cpu_thread, cpu_wait, throttled, steal) differs beyond noise "
                "in its direction: look at the queue, I/O (fsync) and the network."
            )
        else:
            why = "the runs carry no CPU split (Server-Timing cpu_thread, cpu_wait, throttled, steal) to say why."
        lines.append(f"**{place.label} against {best}**: {c.ranking_by} worse beyond noise; {why}")
    c.verdict = [x for x in lines if x] + fp.platform_sentences(c.sides) + [spread_note(c.sides)]


def _cloudwatch(c: Comparison) -> None:
    """CloudWatch's disagreements with k6 and the server, after the verdict's own lines."""
    c.cloudwatch = [x for s in c.sides for x in resources.cloudwatch_findings(s)]
    if c.cloudwatch:
        at = len(c.verdict) - 1 if c.verdict and c.verdict[-1].startswith("Spread:") else len(c.verdict)
        c.verdict[at:at] = c.cloudwatch
        if len(c.sides) == 2:
            c.pair_verdicts[c.sides[1].label] = c.verdict


def compare_many(
    sides: list[tuple[str | None, str | Path]],
    out: Path | str | None = None,
    *,
    prices: dict[str | int, str] | None = None,
    force: bool = False,
    min_effect: float = DEFAULT_MIN_EFFECT,
    noise: float = DEFAULT_NOISE,
    command: str | None = None,
    write: bool = True,
    transfer: TransferAssumptions | None = None,
) -> Comparison:
    """Loads the sides, judges them, writes OUT/comparison.md and OUT/comparison.html (OUT
    defaults to the first side's parent / compare-A-vs-B-...). See the module docstring."""
    from heavylab.report.html import render_html
    from heavylab.report.markdown import render_markdown

    if len(sides) < 2:
        raise ValueError("compare needs two or more run folders")
    loaded = [load_side(path) for _, path in sides]
    _labels(loaded, [label for label, _ in sides])
    prices = dict(prices or {})
    named = {k for k in prices if not isinstance(k, int)}
    unknown = named - {s.label for s in loaded} - {label for label, _ in sides if label}
    if unknown:
        raise ValueError(
            f"--price for unknown side(s) {', '.join(sorted(unknown))} (sides: {', '.join(s.label for s in loaded)})"
        )
    for i, (side, (given, _)) in enumerate(zip(loaded, sides, strict=True)):
        spec = prices.get(i) or prices.get(side.label) or (prices.get(given) if given else None)
        side.price = _price(spec, side)
        for r in side.runs + [side.merged]:
            r.label, r.price = side.label, side.price
    transfer = transfer or TransferAssumptions()
    for side in loaded:
        resources.attach_transfer(side, transfer)
    warnings = []
    base = loaded[0]
    for other in loaded[1:]:
        diff = workload_differences(base.merged, other.merged)
        if diff:
            who = "the two sides" if len(loaded) == 2 else f"{base.label} and {other.label}"
            text = f"{who} differ in " + "; ".join(diff)
            if not force:
                raise ValueError(f"{text}. Compare like with like, or pass --force to compare anyway")
            warnings.append(
                text
                + " (compared anyway: --force); differences may come from the workload, not the platform."
            )
    for side in loaded:
        warnings += [f"{side.label}: excluded run {name}: {why}." for name, why in side.excluded]
        warnings += fp.fingerprint_changes(side)
        burst = resources.burstable_warning(side)
        if burst:
            warnings.append(burst)
    cap = table.capacity_mode(loaded)
    if cap and not split_at_limit(loaded):
        warnings.append(
            "The CPU split is read at each side's step at capacity, not at its limit: not every run "
            "has its limit step (a search that never broke, or one recorded without its step folders)."
        )
    c = Comparison(
        sides=loaded, min_effect=min_effect, table=table.side_stats(loaded, noise), capacity_mode=cap
    )
    c.warnings = warnings
    c.transfer = transfer
    for j, other in enumerate(loaded[1:], 1):
        c.pairs[other.label] = table.pair_rows(c.table, 0, j, not cap, min_effect)
    _rankings(c)
    _causes(c)
    _verdict(c)
    _cloudwatch(c)
    c.stages = {s.label: series.stage_table(s) for s in loaded}
    c.command = command or f"{PROG} " + " ".join(
        shlex.quote(f"{label}={path}" if label else str(path)) for label, path in sides
    )
    if write:
        if out:
            out_dir = Path(out)
        else:
            safe = re.sub(r"[^A-Za-z0-9._-]+", "_", "compare-" + "-vs-".join(c.labels))
            out_dir = base.path.parent / safe
        out_dir.mkdir(parents=True, exist_ok=True)
        c.md_path, c.html_path = out_dir / "comparison.md", out_dir / "comparison.html"
        c.md_path.write_text(render_markdown(c), encoding="utf-8")
        c.html_path.write_text(render_html(c), encoding="utf-8")
        (out_dir / "comparison.json").write_text(json.dumps(c.to_dict(), indent=2) + "\n", encoding="utf-8")
    return c


def compare(
    run_a: str,
    run_b: str,
    label_a: str | None = None,
    label_b: str | None = None,
    price_a: str | None = None,
    price_b: str | None = None,
    out: str | None = None,
    force: bool = False,
    min_effect: float = DEFAULT_MIN_EFFECT,
    noise: float = DEFAULT_NOISE,
    command: str | None = None,
) -> tuple[Path, Path, list[dict]]:
    """Two sides (the former API): (comparison.md, comparison.html, B's rows against A)."""
    c = _two(run_a, run_b, label_a, label_b, price_a, price_b, out, force, min_effect, noise, command)
    assert c.md_path and c.html_path
    return c.md_path, c.html_path, c.rows


def _two(
    run_a, run_b, label_a, label_b, price_a, price_b, out, force, min_effect, noise, command, transfer=None
) -> Comparison:
    """--price-a/--price-b name a side by position (its label is only known once it is loaded)."""
    prices: dict = {}
    for i, (spec, flag) in enumerate(((price_a, "--price-a"), (price_b, "--price-b"))):
        if spec:
            try:
                parse_price(spec)
            except ValueError as err:
                raise ValueError(f"{flag}: {err}") from None
            prices[i] = spec
    sides = [(label_a, run_a), (label_b, run_b)]
    return compare_many(
        sides,
        out,
        prices=prices,
        force=force,
        min_effect=min_effect,
        noise=noise,
        command=command,
        transfer=transfer,
    )


def _side_arg(text: str) -> tuple[str | None, str]:
    """LABEL=PATH or PATH (a path that exists wins over a label containing '=')."""
    if "=" in text and not Path(text).exists():
        label, path = text.split("=", 1)
        if label and path:
            return label, path
    return None, text


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog=PROG,
        description="One report over two or more k6 run folders: a column per platform, rankings, "
        "differences judged against both sides' noise.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n\n", 2)[2].split("\nAPI (")[0] if __doc__ else None,
    )
    ap.add_argument("runs", metavar="[LABEL=]RUN", nargs="*", help="run folders, the first is the baseline")
    ap.add_argument(
        "--price", action="append", default=[], metavar="LABEL=SPEC", help="a side's price (repeat)"
    )
    ap.add_argument("--label-a", help="name of the first side (two-side form)")
    ap.add_argument("--label-b", help="name of the second side (two-side form)")
    ap.add_argument("--price-a", help="the first side's price, e.g. ec2:m6i.large or 0.0971/h")
    ap.add_argument("--price-b", help="the second side's price, e.g. fargate-x86:cpu=2,mem=4")
    ap.add_argument("--out", help="output folder (default: the first run's parent/compare-A-vs-B)")
    ap.add_argument("--force", action="store_true", help="compare even when the workloads differ")
    ap.add_argument(
        "--min-effect",
        type=float,
        default=DEFAULT_MIN_EFFECT,
        help="smallest relative difference reported as a finding (default 0.05)",
    )
    ap.add_argument(
        "--cross-az",
        type=float,
        default=0.0,
        metavar="SHARE",
        help="share of the bytes billed as inter-AZ (0 to 1; default 0: behind an ALB, its traffic to targets "
        "in other zones is not billed as inter-AZ; use it without an ALB or with a cross-zone NLB)",
    )
    ap.add_argument(
        "--no-alb", action="store_true", help="the target is not behind an ALB: no processed-bytes charge"
    )
    ap.add_argument(
        "--egress", action="store_true", help="price the answers' bytes as internet egress (first tier)"
    )
    ap.add_argument("--prices", action="store_true", help="print the price table and exit")
    args = ap.parse_args(argv)
    if args.prices:
        print(price_table_markdown())
        return 0
    if len(args.runs) < 2:
        ap.error("give two or more run folders ([LABEL=]RUN ...)")
    if not 0 <= args.min_effect < 1:
        ap.error("--min-effect must be from 0 to 1")
    if not 0 <= args.cross_az <= 1:
        ap.error("--cross-az must be from 0 to 1")
    transfer = TransferAssumptions(alb=not args.no_alb, cross_az_share=args.cross_az, egress=args.egress)
    given = argv if argv is not None else sys.argv[1:]
    command = f"{PROG} " + " ".join(shlex.quote(str(x)) for x in given)
    sides = [_side_arg(x) for x in args.runs]
    try:
        if args.label_a or args.label_b or args.price_a or args.price_b:
            if len(sides) != 2:
                raise ValueError(
                    "--label-a/-b and --price-a/-b are for two sides; use LABEL=RUN and --price LABEL=SPEC"
                )
            c = _two(
                sides[0][1],
                sides[1][1],
                args.label_a or sides[0][0],
                args.label_b or sides[1][0],
                args.price_a,
                args.price_b,
                args.out,
                args.force,
                args.min_effect,
                DEFAULT_NOISE,
                command,
                transfer,
            )
        else:
            prices = {}
            for item in args.price:
                label, sep, spec = item.partition("=")
                if not sep or not label or not spec:
                    raise ValueError(f"--price {item!r}: want LABEL=SPEC, e.g. ec2=ec2:m6i.large")
                prices[label] = spec
            c = compare_many(
                sides,
                args.out,
                prices=prices,
                force=args.force,
                min_effect=args.min_effect,
                command=command,
                transfer=transfer,
            )
    except (ValueError, OSError, json.JSONDecodeError) as err:
        print(f"{PROG}: error: {err}", file=sys.stderr)
        return 2
    print(f"wrote {c.md_path}")
    print(f"wrote {c.html_path}")
    print(c.verdict[0].lstrip("- ").replace("**", "") if c.verdict else "")
    return 0


if __name__ == "__main__":
    sys.exit(main())
