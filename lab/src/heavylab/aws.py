"""The one place the instrument makes AWS clients.

Every AWS call of the instrument (`heavy-lab remote`'s ECS and S3 calls; later CloudWatch's
GetMetricData) gets its clients from `clients(region, ...)`, so the region rule, the retry
policy and the timeouts are decided once:

- region: the given one, else boto3's usual chain (AWS_REGION / AWS_DEFAULT_REGION, the profile's
  config); none at all is an error naming --region;
- retries: botocore's "standard" mode, 8 attempts (throttling and 5xx answers are retried with
  backoff; RunTask's placement failures are answers, not errors, and are not retried here);
- timeouts: 10 s to connect, 60 s to read, so no call can hang a run.

Tests build the same clients and wrap them in botocore's Stubber (lab/tests/test_remote.py):
nothing in the instrument reaches AWS without credentials the operator configured.
"""

from __future__ import annotations

from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, NoRegionError

__all__ = ["AwsError", "clients", "describe_error", "BotoCoreError", "ClientError"]

CONFIG = Config(
    retries={"total_max_attempts": 8, "mode": "standard"},
    connect_timeout=10,
    read_timeout=60,
)
# S3 only: presigned URLs signed with SigV4 and the bucket in the host name, valid in every region.
PER_SERVICE = {"s3": Config(signature_version="s3v4", s3={"addressing_style": "virtual"})}


class AwsError(Exception):
    """An AWS set-up problem the operator must fix (no region, no credentials)."""


def clients(region: str | None, *services: str, session: boto3.Session | None = None) -> dict[str, Any]:
    """{service: client} for `services` ("ecs", "s3", "cloudwatch", ...) in `region` (None: the
    configured default), all from one session, with the instrument's retry and timeout policy."""
    sess = session or boto3.Session(region_name=region or None)
    try:
        made = {
            name: sess.client(name, config=CONFIG.merge(PER_SERVICE[name]) if name in PER_SERVICE else CONFIG)
            for name in services
        }
    except NoRegionError as err:
        raise AwsError(
            "no AWS region: give --region (or set AWS_REGION / configure a default region)"
        ) from err
    return made


def describe_error(err: Exception) -> str:
    """A one-line reason for a failed call: AWS's error code and message when AWS answered."""
    if isinstance(err, ClientError):
        e = err.response.get("Error", {})
        op = getattr(err, "operation_name", "") or "call"
        return f"{op}: {e.get('Code', 'error')}: {e.get('Message', '')}".rstrip(": ")
    return str(err) or type(err).__name__
