"""The platform under each side: what its server's GET /heavy/info/ returned before (and after) the
run, or — for a server the runner started on this machine without it — the local host; what the
sides share (image, CPU model, server flags) worded as facts; and each side's start-up from the
ECS task metadata (image pull, container start, start to ready).

meta.json keeps the server's answers as server_info_before / server_info_after whoever started the
server; local_server_fingerprint (host CPU, binary hash) only when the runner started it. So a side
"has /heavy/info/" exactly when server_info_* holds a document, never judged by local_server."""

from __future__ import annotations

import re
from datetime import datetime

from heavylab.analysis.runs import Side

FINGERPRINT_KEYS = [  # (shown as, key names to look for in the flattened fingerprint)
    ("CPU model", ("cpu_model", "model_name", "cpu_model_name", "processor")),
    ("architecture", ("architecture", "arch", "machine")),
    ("logical CPUs", ("logical_cpus", "cpus_visible", "cpus", "cpu_count", "nproc")),
    ("usable CPUs (affinity)", ("affinity_cpus", "usable_cpus", "cpus_usable", "cpus_allowed", "affinity")),
    ("CPU quota", ("cpu_quota", "cgroup_cpu_quota", "cpu_max", "quota")),
    ("memory limit", ("memory_limit_bytes", "memory_limit", "mem_limit")),
    ("kernel", ("kernel", "kernel_release", "release")),
    ("SHA extensions", ("sha_extensions", "sha_ni")),
    ("hypervisor", ("hypervisor", "dmi_product_name", "product_name")),
    ("machine (DMI)", ("machine",)),
    ("EC2 instance type", ("instance_type",)),
    ("burstable (CPU credits)", ("burstable",)),
    ("ECS", ("ecs",)),
    ("launch type", ("launch_type", "launchtype")),
    ("availability zone", ("availability_zone", "availabilityzone", "az")),
    ("task size", ("task_size",)),
    ("platform version", ("platform_version", "platformversion")),
    ("image digest", ("image_digest", "imagedigest", "image_id", "imageid", "binary_sha256")),
    ("image", ("image", "image_name")),
    ("ECS cluster", ("cluster",)),
    ("task definition", ("task_definition",)),
    ("server version", ("version", "server_version", "build_version")),
    ("workers x threads", ("workers_x_threads",)),
]
STARTUP_ROWS = ("image pull (s)", "container start (s)", "start to ready (s)")
# In GET /heavy/info/'s "platform", null means "none" (no quota, no limit), not "unknown".
INFO_NULL_MEANS = {"cpu_quota": "none", "memory_limit_bytes": "none", "ecs": "not on ECS"}
SOURCE_INFO = "GET /heavy/info/"
SOURCE_LOCAL = "the local host (server started by the runner)"


def _key(k) -> str:
    # CamelCase (ECS metadata) and snake_case alike: PullStartedAt -> pull_started_at.
    k = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", str(k))
    return re.sub(r"[^a-z0-9]+", "_", k.lower()).strip("_")


def flatten(obj, prefix: str = "", out: dict | None = None) -> dict:
    out = {} if out is None else out
    if isinstance(obj, dict):
        for k, v in obj.items():
            key = _key(k)
            if isinstance(v, (dict, list)):
                flatten(v, key, out)
            elif v is not None and v != "":
                out.setdefault(key, v)
    elif isinstance(obj, list):
        for v in obj:
            flatten(v, prefix, out)
    return out


def _fmt_bytes(v) -> str:
    if not isinstance(v, (int, float)) or isinstance(v, bool):
        return str(v)
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if v >= size:
            return f"{v // size:.0f} {unit}" if v % size == 0 else f"{v / size:.2f} {unit}"
    return f"{v:.0f} B"


def info_view(info: dict) -> dict:
    """GET /heavy/info/ ({"server": {...}, "platform": {...}}) made readable before flattening:
    nulls that mean "none", bytes in GiB, yes/no, the ECS task size and definition in one value."""
    plat = dict(info.get("platform") or {})
    server = dict(info.get("server") or {})
    for key, text in INFO_NULL_MEANS.items():
        if key in plat and plat[key] is None:
            plat[key] = text
    quota = plat.get("cpu_quota")
    if isinstance(quota, (int, float)) and not isinstance(quota, bool):
        plat["cpu_quota"] = f"{quota:g} CPUs"
    if isinstance(plat.get("memory_limit_bytes"), (int, float)):
        plat["memory_limit_bytes"] = _fmt_bytes(plat["memory_limit_bytes"])
    for key in ("sha_extensions", "burstable"):
        if isinstance(plat.get(key), bool):
            plat[key] = "yes" if plat[key] else "no"
    ecs = plat.get("ecs")
    if isinstance(ecs, dict):
        ecs = dict(ecs)
        if ecs.get("task_cpu") is not None or ecs.get("task_memory_mib") is not None:
            ecs["task_size"] = f"{ecs.get('task_cpu', '?')} CPU units, {ecs.get('task_memory_mib', '?')} MiB"
        if ecs.get("family"):
            ecs["task_definition"] = f"{ecs['family']}:{ecs.get('revision', '?')}"
        plat["ecs"] = ecs
    if server.get("workers") is not None:
        server["workers_x_threads"] = f"{server['workers']} x {server.get('threads', '?')}"
    return {"platform": plat, "server": server}


def info_of(meta: dict) -> dict | None:
    """The server's own GET /heavy/info/ answer recorded in meta.json, whoever started the server."""
    for key in ("server_info_before", "server_info_after"):
        info = meta.get(key)
        if isinstance(info, dict) and isinstance(info.get("platform"), dict):
            return info
    return None


def raw_info(meta: dict) -> dict | None:
    """Any JSON the server answered at /heavy/info/ (another server's own shape included); None
    when it answered nothing or something that was not JSON (meta.json keeps it as "unparsed")."""
    for key in ("server_info_before", "server_info_after"):
        info = meta.get(key)
        if isinstance(info, dict) and info and set(info) != {"unparsed"}:
            return info
    return None


def fingerprint(side: Side) -> dict:
    """What is known of the platform that served a side: {shown name: value}."""
    m = side.meta
    local = m.get("local_server_fingerprint") if m.get("local_server") else None
    info = info_of(m)
    if info is not None:
        source, origin = info_view(info), SOURCE_INFO
        # A local server has no image: its binary's hash stands in for the digest.
        if isinstance(local, dict) and local.get("binary_sha256") and not flatten(source).get("image_digest"):
            source["local"] = {"binary_sha256": local["binary_sha256"]}
    else:
        source, origin = raw_info(m), SOURCE_INFO
        if source is None:
            source, origin = local, SOURCE_LOCAL
    if not isinstance(source, dict) or not source:
        return {}
    flat = flatten(source)
    out = {"source": origin}
    for shown, keys in FINGERPRINT_KEYS:
        for k in keys:
            if k in flat:
                out[shown] = str(flat[k])
                break
    out.update({k: v for k, v in startup(side).items() if v is not None})
    return out


def _when(v) -> datetime | None:
    if not isinstance(v, str) or not v:
        return None
    text = re.sub(r"(\.\d{6})\d+", r"\1", v.strip()).replace("Z", "+00:00")
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None


def _secs(a: datetime | None, b: datetime | None) -> str | None:
    if a is None or b is None:
        return None
    return f"{(b - a).total_seconds():.1f}"


def startup(side: Side) -> dict:
    """Start-up seconds from the ECS task metadata in /heavy/info/'s ecs section (task-level
    PullStartedAt/PullStoppedAt, the container's CreatedAt/StartedAt) and the server's own
    ready_at when it reports one: {row: seconds as text, or None when not known}."""
    info = info_of(side.meta) or {}
    ecs = (info.get("platform") or {}).get("ecs")
    out: dict = dict.fromkeys(STARTUP_ROWS)
    if not isinstance(ecs, dict):
        return out
    e = {_key(k): v for k, v in ecs.items()}
    container = e.get("container") if isinstance(e.get("container"), dict) else {}
    c = {_key(k): v for k, v in container.items()}
    pull_start, pull_stop = _when(e.get("pull_started_at")), _when(e.get("pull_stopped_at"))
    created = _when(c.get("created_at") or e.get("container_created_at") or e.get("created_at"))
    started = _when(c.get("started_at") or e.get("container_started_at") or e.get("started_at"))
    server = {_key(k): v for k, v in (info.get("server") or {}).items()}
    ready = _when(server.get("ready_at") or e.get("ready_at"))
    out["image pull (s)"] = _secs(pull_start, pull_stop)
    out["container start (s)"] = _secs(created or pull_stop, started)
    out["start to ready (s)"] = _secs(started, ready)
    return out


def fingerprint_changes(side: Side) -> list[str]:
    """What changed in a run's platform between the fingerprint before and the one after (a task
    replaced, a different host behind the same URL)."""
    out = []
    for r in side.runs:
        before, after = r.meta.get("server_info_before"), r.meta.get("server_info_after")
        if not (isinstance(before, dict) and isinstance(after, dict)):
            continue
        if "platform" not in before or "platform" not in after:
            continue
        fb, fa = flatten(info_view(before)), flatten(info_view(after))
        keys = ("cpu_model", "task_arn", "availability_zone", "image_digest", "kernel", "hypervisor")
        changed = [k for k in keys if fb.get(k) != fa.get(k)]
        if changed:
            out.append(
                f"{side.label}: run {r.path.name}: the platform changed during the run "
                f"({', '.join(f'{k} {fb.get(k)!r} -> {fa.get(k)!r}' for k in changed)}): "
                "another task or host answered after the run than before it."
            )
    return out


def platform_rows(sides: list[Side]) -> list[tuple[str, list[str], str]]:
    """The fingerprints side by side: (what, [value per side], "same" / "differs" / "")."""
    fps = [fingerprint(s) for s in sides]
    out = []
    for shown in ["source"] + [k for k, _ in FINGERPRINT_KEYS] + list(STARTUP_ROWS):
        if not any(shown in f for f in fps):
            continue
        vals = [f.get(shown, "n/a") for f in fps]
        if shown == "source" or shown in STARTUP_ROWS or "n/a" in vals:
            mark = ""
        else:
            mark = "same" if len(set(vals)) == 1 else "differs"
        out.append((shown, vals, mark))
    return out


def _same(fa: dict, fb: dict, key: str) -> bool | None:
    if key not in fa or key not in fb:
        return None
    return fa[key] == fb[key]


def pair_flags(a: Side, b: Side) -> dict:
    """What two sides are known to share: {"same_image": bool|None, "same_cpu": bool|None}."""
    fa, fb = fingerprint(a), fingerprint(b)
    return {"same_image": _same(fa, fb, "image digest"), "same_cpu": _same(fa, fb, "CPU model")}


def _why_no_digest(side: Side) -> str:
    """Why a side's image is unknown, worded from what its meta.json really holds."""
    if raw_info(side.meta) is not None:
        where = "its GET /heavy/info/ names no image digest (not on ECS)"
        if not side.meta.get("local_server"):
            where += " and its server was started outside the runner, so its binary is not known"
        return f"{side.label}: {where}"
    if side.meta.get("local_server"):
        return f"{side.label}: the runner recorded no binary hash"
    return f"{side.label}: its server answered no GET /heavy/info/ and was not started by the runner"


def platform_sentences(sides: list[Side]) -> list[str]:
    """What the sides' metadata share, worded as facts."""
    fps = [fingerprint(s) for s in sides]
    every = "both sides" if len(sides) == 2 else f"all {len(sides)} sides"
    notes = []
    digests = [f.get("image digest") for f in fps]
    if None not in digests and len(set(digests)) == 1:
        notes.append(
            f"Same image on {every} ({digests[0][:19]}…): a difference is the platform's, not the code's."
        )
    elif None not in digests:
        listed = ", ".join(f"{s.label}: {d[:19]}…" for s, d in zip(sides, digests, strict=True))
        notes.append(
            f"**Different images** ({listed}): a difference may come from the code as much as from the platform."
        )
    else:
        unknown = "; ".join(_why_no_digest(s) for s, d in zip(sides, digests, strict=True) if d is None)
        notes.append(f"Whether {every} ran the same image is unknown ({unknown}).")
    models = [f.get("CPU model") for f in fps]
    if None not in models and len(set(models)) == 1:
        notes.append(f"Same CPU model on {every} ({models[0]}).")
    elif None not in models:
        notes.append(
            "**Different CPU models**: "
            + ", ".join(f"{s.label} {m}" for s, m in zip(sides, models, strict=True))
            + "."
        )
    else:
        notes.append("The CPU models are unknown for at least one side.")
    if all(s.meta.get("local_server") for s in sides):
        flags = [s.meta.get("server_args") or "" for s in sides]
        if len(set(flags)) > 1:
            notes.append(
                "**Different server flags**: "
                + ", ".join(
                    f"{s.label} `{f or '(defaults: 4x2)'}`" for s, f in zip(sides, flags, strict=True)
                )
                + "."
            )
    ups = [(s.label, {k: v for k, v in startup(s).items() if v is not None}) for s in sides]
    if any(up for _, up in ups):
        parts = [
            f"{label}: "
            + (", ".join(f"{k.replace(' (s)', '')} {v} s" for k, v in up.items()) if up else "n/a")
            for label, up in ups
        ]
        notes.append(
            "Start-up from the ECS task metadata (part of how fast a platform scales out): "
            + "; ".join(parts)
            + "."
        )
    urls = {s.meta.get("base_url") for s in sides}
    if len(urls) == 1 and not any(s.meta.get("local_server") for s in sides):
        notes.append(f"{'Both' if len(sides) == 2 else 'All'} sides tested the same URL ({urls.pop()}).")
    return notes
