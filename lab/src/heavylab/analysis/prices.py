"""Prices: the one table of AWS on-demand prices the instrument uses, and the `--price` specs.

Cost per million requests = price per hour / (throughput x 3600) x 1,000,000, plus the data
transfer of a million requests: the bytes per request (heavylab.analysis.resources) priced by
TRANSFER_PRICES under TransferAssumptions (ALB processed bytes, a cross-AZ share, egress only
when asked).

Specs (`heavy-lab run --price`, `heavy-lab compare --price LABEL=SPEC`):

    ec2:c7g.large                   an instance type from the table (region us-east-1)
    ec2:m6i.large@us-west-2x3       ... in another region, 3 instances
    fargate-arm64:cpu=2,mem=4       Fargate rates from the table (x86: fargate-x86), task size in
                                    vCPU and GB (cpu >= 64 is read as CPU units, mem >= 128 as MiB),
                                    tasks=N for several tasks, region=R for another region
    0.0971/h, 0.0971, $0.0971/hour  an explicit hourly price; append x3 for 3 of them
    fargate:vcpu=R,gb=R,cpu=N,mem=N explicit Fargate rates per vCPU-hour and per GB-hour

The table is what the docs' recipes name (docs/COMPARISON.md: "the prices"); `heavy-lab compare
--prices` prints it. Prices change: check them (the `aws pricing get-products` commands in
docs/COMPARISON.md) before a decision rests on them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Optional

Number = Optional[float]

# AWS on-demand list prices, Linux, shared tenancy, USD per hour. Source: AWS's published price
# pages (aws.amazon.com/ec2/pricing/on-demand/ and aws.amazon.com/fargate/pricing/). m6i.large,
# m7g.large and the Fargate rates are docs/COMPARISON.md's, taken on PRICES_TAKEN (the Fargate
# us-east-1 rates agree with third-party summaries of the same page in 2026); the other types were
# added on 2026-12-05 from the same pages' list prices as the author knew them. None were
# re-checked against the live Price List API from the machine this was written on (it has no
# network): check with `aws pricing get-products` (docs/COMPARISON.md) and move PRICES_TAKEN when
# you update the table. us-west-2 lists the same prices as us-east-1 for every type here.
PRICES_TAKEN = "2026-11-29"
PRICES_SOURCE = "AWS on-demand list prices (EC2 and Fargate pricing pages), Linux"

_EC2_US = {
    # type: (price per hour, vCPUs, GiB, architecture)
    "c6i.large": (0.085, 2, 4, "x86_64"),
    "c6i.xlarge": (0.17, 4, 8, "x86_64"),
    "c7g.large": (0.0725, 2, 4, "arm64"),
    "c7g.xlarge": (0.145, 4, 8, "arm64"),
    "m6i.large": (0.096, 2, 8, "x86_64"),
    "m6i.xlarge": (0.192, 4, 16, "x86_64"),
    "m7g.large": (0.0816, 2, 8, "arm64"),
    "m7g.xlarge": (0.1632, 4, 16, "arm64"),
    "t3.medium": (0.0416, 2, 4, "x86_64"),
    "t3.large": (0.0832, 2, 8, "x86_64"),
    "t4g.medium": (0.0336, 2, 4, "arm64"),
    "t4g.large": (0.0672, 2, 8, "arm64"),
}
_FARGATE_US = {
    # architecture: (per vCPU-hour, per GB-hour)
    "x86_64": (0.04048, 0.004445),
    "arm64": (0.03238, 0.00356),
}
PRICES: dict[str, dict] = {
    "us-east-1": {"ec2": _EC2_US, "fargate": _FARGATE_US},
    "us-west-2": {"ec2": _EC2_US, "fargate": _FARGATE_US},
}
DEFAULT_REGION = "us-east-1"
_ARCH = {"x86": "x86_64", "x86_64": "x86_64", "amd64": "x86_64", "arm": "arm64", "arm64": "arm64"}


# Data transfer, USD (issue 24 item 5), us-east-1 list prices as the author knew them on
# TRANSFER_TAKEN, not re-checked from this machine (no network): check them on
# aws.amazon.com/elasticloadbalancing/pricing/ and aws.amazon.com/ec2/pricing/on-demand/ (data
# transfer) before a decision rests on them. A GB is 2^30 bytes, as AWS bills it.
# - ALB: 0.008 per LCU-hour; its processed-bytes dimension is 1 GB per LCU-hour for EC2 instance
#   and IP targets (Fargate's awsvpc tasks are IP targets; 0.4 GB for Lambda). Only that dimension
#   is priced (a heavy request moves few bytes; new connections, active connections and rule
#   evaluations are assumed not to be the largest dimension), and not the ALB's fixed hourly
#   charge, which every side behind an ALB pays alike.
# - inter-AZ: 0.01 per GB in each direction (the sender's AZ charges out, the receiver's in).
# - internet egress: 0.09 per GB, the first tier (up to 10 TB a month, after the free 100 GB).
TRANSFER_TAKEN = "2026-12-05"
TRANSFER_PRICES = {
    "alb_lcu_hour": 0.008,
    "alb_gb_per_lcu_hour": 1.0,
    "inter_az_per_gb_each_way": 0.01,
    "egress_per_gb_first_tier": 0.09,
}
GB = float(1 << 30)


@dataclass
class TransferAssumptions:
    """Where a run's bytes would be billed on AWS. The default: the load generator in the same
    VPC as the target, through an ALB (every byte in and out is ALB-processed; AWS does not bill
    the ALB's traffic to targets in other zones as inter-AZ), no internet egress. --cross-az
    prices a share as inter-AZ (no ALB, or an NLB with cross-zone on), --egress the answers as
    internet egress."""

    alb: bool = True
    cross_az_share: float = 0.0
    egress: bool = False

    def sentences(self) -> list[str]:
        t = TRANSFER_PRICES
        out = []
        if self.alb:
            per_gb = t["alb_lcu_hour"] / t["alb_gb_per_lcu_hour"]
            out.append(
                f"ALB processed bytes (requests and answers): {t['alb_lcu_hour']:g} per LCU-hour at "
                f"{t['alb_gb_per_lcu_hour']:g} GB per LCU-hour (EC2 and IP targets) = {per_gb:g} per GB; "
                "only the processed-bytes dimension, not the ALB's fixed hourly charge"
            )
        if self.cross_az_share:
            out.append(
                f"inter-AZ: {self.cross_az_share:.0%} of the bytes cross zones, "
                f"{t['inter_az_per_gb_each_way']:g} per GB in each direction (paid on both sides)"
            )
        out.append(
            f"internet egress of the answers at {t['egress_per_gb_first_tier']:g} per GB (first tier)"
            if self.egress
            else "no internet egress (the generator is in the same VPC; --egress to add it)"
        )
        return out


def transfer_per_million(bytes_total: Number, bytes_out: Number, a: TransferAssumptions) -> Number:
    """Data-transfer cost of a million requests of bytes_total each (bytes_out of them answers)."""
    if bytes_total is None:
        return None
    t = TRANSFER_PRICES
    gb = bytes_total * 1e6 / GB
    cost = 0.0
    if a.alb:
        cost += gb * t["alb_lcu_hour"] / t["alb_gb_per_lcu_hour"]
    cost += gb * a.cross_az_share * 2 * t["inter_az_per_gb_each_way"]
    if a.egress:
        out = bytes_out if bytes_out is not None else bytes_total
        cost += out * 1e6 / GB * t["egress_per_gb_first_tier"]
    return cost


@dataclass
class Price:
    hourly: float
    description: str


def cost_per_million(hourly: Number, throughput_rps: Number) -> Number:
    """Price of a million requests served at the given throughput."""
    if hourly is None or not throughput_rps:
        return None
    return hourly / (throughput_rps * 3600.0) * 1e6


def _region(name: str | None, spec: str) -> dict:
    region = name or DEFAULT_REGION
    if region not in PRICES:
        raise ValueError(f"no prices for region {region!r} in {spec!r} (known: {', '.join(PRICES)})")
    return PRICES[region]


def _fields(body: str, spec: str) -> dict[str, str]:
    out = {}
    for part in body.split(","):
        if not part:
            continue
        if "=" not in part:
            raise ValueError(f"bad price part {part!r} in {spec!r} (want key=value)")
        key, value = part.split("=", 1)
        out[key] = re.sub(r"/(h|hr|hour)$", "", value)
    return out


def _fargate(body: str, spec: str, arch: str | None) -> Price:
    raw = _fields(body, spec)
    region = raw.pop("region", None)
    aliases = {"vcpu_rate": "vcpu", "gb_rate": "gb", "vcpus": "cpu", "memory": "mem", "count": "tasks"}
    for alias, key in aliases.items():
        if alias in raw and key not in raw:
            raw[key] = raw.pop(alias)
    unknown = set(raw) - {"vcpu", "gb", "cpu", "mem", "tasks"}
    if unknown:
        raise ValueError(f"unknown Fargate price keys {sorted(unknown)} in {spec!r}")
    fields: dict[str, float] = {}
    for key, value in raw.items():
        try:
            fields[key] = float(value)
        except ValueError:
            raise ValueError(f"bad number {value!r} for {key} in {spec!r}") from None
    source = "given rates"
    if arch is not None and ("vcpu" in fields or "gb" in fields):
        raise ValueError(f"{spec!r}: fargate-{arch} takes its rates from the table; give cpu= and mem= only")
    if arch is not None or ("vcpu" not in fields and "gb" not in fields):
        arch = arch or "x86_64"
        fields["vcpu"], fields["gb"] = _region(region, spec)["fargate"][arch]
        source = f"{region or DEFAULT_REGION} {arch} list price of {PRICES_TAKEN}"
    missing = [k for k in ("vcpu", "gb", "cpu", "mem") if k not in fields]
    if missing:
        raise ValueError(f"Fargate price {spec!r} lacks {', '.join(missing)}")
    if min(fields.values()) < 0:
        raise ValueError(f"negative number in {spec!r}")
    cpu = fields["cpu"] / 1024 if fields["cpu"] >= 64 else fields["cpu"]
    mem = fields["mem"] / 1024 if fields["mem"] >= 128 else fields["mem"]
    tasks = fields.get("tasks", 1.0)
    hourly = (fields["vcpu"] * cpu + fields["gb"] * mem) * tasks
    desc = (
        f"Fargate {cpu:g} vCPU x {fields['vcpu']:g}/vCPU-h + {mem:g} GB x {fields['gb']:g}/GB-h"
        + (f", {tasks:g} tasks" if tasks != 1 else "")
        + f" = {hourly:.5f}/h"
        + (f" ({source})" if source != "given rates" else "")
    )
    return Price(hourly, desc)


def _ec2(body: str, spec: str) -> Price:
    m = re.fullmatch(r"([a-z0-9]+\.[a-z0-9]+)(?:@([a-z]+-[a-z]+-[0-9]+))?(?:[x*]([0-9]+))?", body)
    if not m:
        raise ValueError(
            f"bad EC2 price {spec!r}: use ec2:c7g.large, ec2:m6i.large@us-west-2 or ec2:m6i.largex3"
        )
    itype, region, count = m.group(1), m.group(2), int(m.group(3) or 1)
    table = _region(region, spec)["ec2"]
    if itype not in table:
        raise ValueError(
            f"{itype!r} is not in the price table ({', '.join(sorted(table))}); give its hourly price, e.g. 0.0971/h"
        )
    each, vcpus, gib, arch = table[itype]
    hourly = each * count
    desc = (
        f"EC2 {itype} ({vcpus} vCPU, {gib} GiB, {arch}) {each:g}/h"
        + (f" x {count} = {hourly:.5f}/h" if count != 1 else "")
        + f" ({region or DEFAULT_REGION} list price of {PRICES_TAKEN})"
    )
    return Price(hourly, desc)


def parse_price(spec: str) -> Price:
    """A price specification (see the module docstring) as an hourly price with its description."""
    low = spec.strip().lower().replace("$", "").replace(" ", "")
    kind, _, body = low.partition(":")
    if body and kind.startswith("fargate"):
        arch_name = kind[len("fargate") :].lstrip("-")
        if arch_name and arch_name not in _ARCH:
            raise ValueError(f"unknown Fargate architecture {arch_name!r} in {spec!r} (x86 or arm64)")
        return _fargate(body, spec, _ARCH[arch_name] if arch_name else None)
    if body and kind == "ec2" and not re.match(r"[0-9.]", body):
        return _ec2(body, spec)
    m = re.fullmatch(r"(?:[a-z0-9_.-]+:)?([0-9]*\.?[0-9]+)(?:/(?:h|hr|hour))?(?:[x*]([0-9]+))?", low)
    if not m:
        raise ValueError(
            f"bad price {spec!r}: use ec2:c7g.large, fargate-arm64:cpu=2,mem=4, 0.0971/h "
            "or fargate:vcpu=0.04048,gb=0.004445,cpu=2,mem=4"
        )
    count = int(m.group(2)) if m.group(2) else 1
    hourly = float(m.group(1)) * count
    desc = (
        f"{float(m.group(1)):g}/h"
        + (f" x {count}" if count != 1 else "")
        + (f" = {hourly:.5f}/h" if count != 1 else "")
    )
    return Price(hourly, desc)


def price_table_markdown(region: str = DEFAULT_REGION) -> str:
    """The table as docs/COMPARISON.md shows it (and `heavy-lab compare --prices` prints it)."""
    t = PRICES[region]
    lines = [
        f"Prices in {region}: {PRICES_SOURCE}, taken {PRICES_TAKEN}.",
        "",
        "| platform | what you pay for | per hour | `--price` |",
        "| --- | --- | ---: | --- |",
    ]
    for itype, (each, vcpus, gib, arch) in sorted(t["ec2"].items()):
        lines.append(f"| EC2 {arch} | `{itype}` ({vcpus} vCPU, {gib} GiB) | {each:g} | `ec2:{itype}` |")
    for arch, (vcpu, gb) in t["fargate"].items():
        short = "x86" if arch == "x86_64" else "arm64"
        task = vcpu * 2 + gb * 4
        lines.append(
            f"| Fargate {arch} | {vcpu:g} per vCPU-hour, {gb:g} per GB-hour | {task:.4f} for 2 vCPU + 4 GB "
            f"| `fargate-{short}:cpu=2,mem=4` |"
        )
    t = TRANSFER_PRICES
    lines += [
        "",
        f"Data transfer in {DEFAULT_REGION}, taken {TRANSFER_TAKEN} (a GB is 2^30 bytes):",
        "",
        "| what | price | when the report counts it |",
        "| --- | ---: | --- |",
        f"| ALB LCU-hour (processed bytes: {t['alb_gb_per_lcu_hour']:g} GB per LCU-hour, EC2/IP targets) "
        f"| {t['alb_lcu_hour']:g} | every byte in and out (default) |",
        f"| inter-AZ, per GB each direction | {t['inter_az_per_gb_each_way']:g} | the cross-AZ share "
        "(`--cross-az`, default 0: behind an ALB cross-zone traffic to targets is not billed) |",
        f"| internet egress, per GB (first tier) | {t['egress_per_gb_first_tier']:g} | the answers' bytes, "
        "with `--egress` |",
    ]
    return "\n".join(lines)
