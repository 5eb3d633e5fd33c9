"""The Dockerfile as the validators, the PID-1 check and the tests read it (with `dockerfile-parse`).

`read()` gives every stage's instructions in order (comments dropped, continuation lines joined)
and `final_stage()` what a container of the image runs: ENTRYPOINT and CMD (a list in exec form,
the raw string in shell form), USER, ENV, EXPOSE, HEALTHCHECK and its options, the base image.
"""

from __future__ import annotations

import io
import json
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

from dockerfile_parse import DockerfileParser


@dataclass
class Stage:
    base: str | None  # the FROM image, without --platform=... and AS NAME
    instructions: list[tuple[str, str]] = field(default_factory=list)  # (INSTRUCTION, value)


def read(source: Path | str) -> list[Stage]:
    """Every stage of a Dockerfile (a path, or its text), FROM first in each."""
    text = source.read_text() if isinstance(source, Path) else source
    parser = DockerfileParser(fileobj=io.BytesIO(text.encode()))
    stages: list[Stage] = []
    for item in parser.structure:
        instr, value = item["instruction"].upper(), _value(item["content"])
        if instr == "COMMENT":
            continue
        if instr == "FROM":
            words = [w for w in value.split() if not w.startswith("--")]
            stages.append(Stage(words[0] if words else None))
        if stages:
            stages[-1].instructions.append((instr, value))
    return stages


def _value(content: str) -> str:
    """An instruction's arguments as Docker runs them: continuation lines joined (their
    indentation and the comment lines inside them dropped), the instruction word removed."""
    parts = []
    for line in content.splitlines():
        line = line.strip()
        if line.startswith("#") and parts:
            continue
        parts.append(line[:-1].rstrip() if line.endswith("\\") else line)
    text = " ".join(p for p in parts if p)
    return text.split(None, 1)[1] if " " in text else ""


def exec_form(value: str):
    """A JSON array (exec form) as a list; shell form is returned as the raw string."""
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError:
        return value
    return parsed if isinstance(parsed, list) else value


def final_stage(stages: list[Stage]) -> dict:
    """What a container of the image runs: the last stage's ENTRYPOINT, CMD, USER, ENV, EXPOSE,
    HEALTHCHECK (and its --options), base image, and how many stages the build has."""
    out: dict = {
        "entrypoint": None,
        "cmd": None,
        "user": None,
        "env": {},
        "healthcheck": None,
        "healthcheck_options": {},
        "expose": [],
        "stages": len(stages),
        "from": stages[-1].base if stages else None,
    }
    for instr, value in stages[-1].instructions if stages else []:
        if instr in ("ENTRYPOINT", "CMD"):
            out[instr.lower()] = exec_form(value)
        elif instr == "USER":
            out["user"] = value
        elif instr == "EXPOSE":
            out["expose"] += value.split()
        elif instr == "ENV":
            out["env"].update(_env_pairs(value))
        elif instr == "HEALTHCHECK":
            match = re.match(r"((?:--[a-z-]+=\S+\s+)*)CMD\s+(.*)$", value)
            if match:
                out["healthcheck"] = exec_form(match.group(2))
                for opt in match.group(1).split():
                    key, _, val = opt[2:].partition("=")
                    out["healthcheck_options"][key] = val
            else:
                out["healthcheck"] = value
    return out


def _env_pairs(value: str) -> dict:
    words = shlex.split(value)
    if words and "=" not in words[0]:  # the old `ENV KEY value` form
        return {words[0]: " ".join(words[1:])}
    return dict(w.split("=", 1) for w in words)


def image(path: Path) -> dict:
    """final_stage(read(path))."""
    return final_stage(read(path))
