"""`hookd verify`: check a webhook signature by hand.

Rules:
- The body is the exact bytes of FILE, or of standard input for `-` (the default).
- A signature starting `v1,` is a Standard Webhooks one (`webhook-signature`): it needs
  `--id` and `--timestamp` (the `webhook-id` and `webhook-timestamp` headers) and a
  `whsec_` secret. Anything else is the spec's `X-Webhook-Signature` (`sha256=<hex>`).
- Exit 0 when the signature matches, 1 when it does not, 2 when the command line is
  incomplete. A body that matches once its final newline is dropped is pointed out: the
  usual mistake is `echo` instead of `echo -n`, or an editor adding a newline.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from hookd.cli.client import UsageError
from hookd.cli.commands import Context, read_source
from hookd.cli.output import Styled
from hookd.domain import signing


def register(commands: Any) -> None:
    """Add `verify`."""
    verify = commands.add_parser(
        "verify",
        help="check a webhook signature against a body",
        description="Exit 0 when the signature matches the body, 1 when it does not.",
    )
    verify.add_argument("file", metavar="FILE|-", nargs="?", default="-", help="the body")
    verify.add_argument("--secret", required=True, help="the endpoint's secret")
    verify.add_argument(
        "--signature", required=True, help="X-Webhook-Signature (sha256=...) or webhook-signature"
    )
    verify.add_argument("--id", help="webhook-id, for a Standard Webhooks signature (v1,...)")
    verify.add_argument("--timestamp", help="webhook-timestamp, for a Standard Webhooks signature")
    verify.set_defaults(handler=_verify)


def _verify(context: Context) -> int:
    args = context.args
    matches = _checker(args)  # usage errors before reading anything
    body = read_source("FILE", args.file)
    screen = context.screen
    if matches(body):
        screen.line(Styled("OK", "green"), "the signature matches the body")
        return 0
    screen.line(Styled("BAD", "red"), "the signature does not match the body")
    if body.endswith(b"\n") and matches(body.rstrip(b"\r\n")):
        screen.note(
            "it matches the body without its final newline: verify the exact bytes "
            "received (echo -n, not echo)"
        )
    return 1


def _checker(args: argparse.Namespace) -> Callable[[bytes], bool]:
    signature: str = args.signature
    if not signature.lstrip().startswith("v1,"):
        return lambda body: signing.verify_spec(args.secret, body, signature)
    if not args.id or not args.timestamp:
        raise UsageError("a Standard Webhooks signature (v1,...) needs --id and --timestamp")
    if signing.standard_key(args.secret) is None:
        raise UsageError("a Standard Webhooks signature (v1,...) needs the whsec_... secret")
    return lambda body: signing.verify_standard(
        args.secret, args.id, args.timestamp, body, signature
    )
