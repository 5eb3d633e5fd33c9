#!/usr/bin/env python3
"""Asks a running heavy-api for every test vector and compares: prime counts and SHA-256 chain
digests must be identical on every architecture (x86_64 with or without SHA-NI, arm64 with or
without the ARMv8 SHA2 extension), so a Graviton image is checked with the same numbers as an x86
one.

    heavy-lab vectors http://127.0.0.1:8000 [--vectors tests/data/test-vectors.json] [--wait SECS]

For each `primes_below` entry N it requests /heavy/cpu-io-no-db/?prime_limit=N&hash_rounds=0&io_kb=0
and compares `primes_found`; for each `sha256_chain` entry R it requests prime_limit=0&hash_rounds=R
and compares `digest`. Prints one line per vector; exits 0 when all match, 1 on any mismatch or
error. scripts/verify-image.sh runs it against a container of a built image (--wait: until the
container answers /heavy/health/); scripts/check-deploy.sh against the local static binary.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from heavylab import paths

DEFAULT_VECTORS = paths.ROOT / "tests" / "data" / "test-vectors.json"


def query(base: str, prime_limit: int, hash_rounds: int, timeout: float) -> dict:
    url = (
        f"{base.rstrip('/')}/heavy/cpu-io-no-db/?prime_limit={prime_limit}&hash_rounds={hash_rounds}&io_kb=0"
    )
    with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 (http to our server)
        if resp.status != 200:
            raise RuntimeError(f"{url}: HTTP {resp.status}")
        return json.loads(resp.read())


def wait_healthy(base: str, secs: float) -> bool:
    deadline = time.monotonic() + secs
    while True:
        try:
            with urllib.request.urlopen(f"{base.rstrip('/')}/heavy/health/", timeout=2) as resp:  # noqa: S310
                if resp.status == 200:
                    return True
        except OSError:
            pass
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.5)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="heavy-lab vectors", description=__doc__.split("\n\n")[0])
    ap.add_argument("base_url", help="e.g. http://127.0.0.1:8000")
    ap.add_argument("--vectors", type=Path, default=DEFAULT_VECTORS)
    ap.add_argument(
        "--timeout",
        type=float,
        default=300.0,
        help="seconds per request (generous: an emulated arm64 image is slow)",
    )
    ap.add_argument(
        "--wait",
        type=float,
        default=0.0,
        metavar="SECS",
        help="first wait up to SECS for /heavy/health/ to answer 200 (a container starting)",
    )
    args = ap.parse_args(argv)
    if args.wait and not wait_healthy(args.base_url, args.wait):
        print(f"test vectors: {args.base_url}/heavy/health/ did not answer within {args.wait:g} s")
        return 1

    vectors = json.loads(args.vectors.read_text())
    cases = [("primes_found", int(n), 0, want) for n, want in vectors["primes_below"].items()]
    cases += [("digest", 0, int(r), want) for r, want in vectors["sha256_chain"].items()]
    failed = 0
    for key, limit, rounds, want in cases:
        try:
            got = query(args.base_url, limit, rounds, args.timeout).get(key)
        except (OSError, urllib.error.URLError, RuntimeError, ValueError) as exc:
            got = f"error: {exc}"
        ok = got == want
        failed += not ok
        print(
            f"  {'ok' if ok else 'MISMATCH'}: prime_limit={limit} hash_rounds={rounds}: "
            f"{key} = {got!r}" + ("" if ok else f", want {want!r}")
        )
    print(f"test vectors: {len(cases) - failed} of {len(cases)} match ({args.base_url})")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
