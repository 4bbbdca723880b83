"""`hookd verify`: the spec's own signature example (its openssl line), Standard Webhooks
signatures made by the standardwebhooks library, and the exit statuses.
"""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from standardwebhooks.webhooks import Webhook

from tests.cli_runner import run_main
from tests.system.test_cli_listen import SECRET, SPEC_BODY, SPEC_DIGEST, SPEC_SECRET

SPEC_ARGS = ["verify", "--secret", SPEC_SECRET, "--signature", f"sha256={SPEC_DIGEST}"]


def test_the_specs_example_from_stdin() -> None:
    ran = run_main(SPEC_ARGS, stdin=SPEC_BODY)
    assert (ran.code, ran.out) == (0, "OK the signature matches the body\n")


def test_a_bare_hex_digest_and_a_file(short_dir: Path) -> None:
    body = short_dir / "body.json"
    body.write_bytes(SPEC_BODY)
    argv = ["verify", "--secret", SPEC_SECRET, "--signature", SPEC_DIGEST, str(body)]
    assert run_main(argv).code == 0


@pytest.mark.skipif(
    not (shutil.which("openssl") and shutil.which("hexdump") and shutil.which("bash")),
    reason="needs openssl, hexdump and bash, as the spec's example does",
)
def test_the_specs_openssl_pipeline() -> None:
    """The spec's line, piped into the installed command."""
    script = (
        "echo -n '{\"test\": true}' | "
        f"{sys.executable} -m hookd verify --secret 'sua_chave_secreta' --signature "
        '"sha256=$(echo -n \'{"test": true}\' | openssl dgst -sha256 -hmac '
        "'sua_chave_secreta' -binary | hexdump -ve '1/1 \"%.2x\"')\""
    )
    done = subprocess.run(
        ["bash", "-c", script],
        capture_output=True,
        check=False,
        env={**os.environ, "NO_COLOR": "1"},
    )
    assert (done.returncode, done.stdout) == (0, b"OK the signature matches the body\n")


def test_mismatch_is_1() -> None:
    ran = run_main(SPEC_ARGS, stdin=b'{"test": false}')
    assert (ran.code, ran.out) == (1, "BAD the signature does not match the body\n")
    other_secret = run_main(
        ["verify", "--secret", "outra", "--signature", f"sha256={SPEC_DIGEST}"], stdin=SPEC_BODY
    )
    assert other_secret.code == 1


def test_a_final_newline_is_pointed_out() -> None:
    ran = run_main(SPEC_ARGS, stdin=SPEC_BODY + b"\n")  # echo without -n
    assert ran.code == 1
    assert "it matches the body without its final newline" in ran.err


# Padded, and with the padding left out as the Standard Webhooks libraries allow.
@pytest.mark.parametrize("secret", [SECRET, SECRET.rstrip("=")])
def test_standard_webhooks_signature(secret: str) -> None:
    assert SECRET.endswith("=")
    stamp = 1_700_000_000
    body = b'{"event":"cliente.criado","timestamp":"2024-01-01T10:00:00Z","data":{}}'
    signature = Webhook(secret).sign("evt_1", datetime.fromtimestamp(stamp, UTC), body.decode())
    argv = ["verify", "--secret", secret, "--signature", signature]
    argv += ["--id", "evt_1", "--timestamp", str(stamp)]
    assert run_main(argv, stdin=body).code == 0
    assert run_main([*argv, "-"], stdin=body).code == 0
    assert run_main(argv, stdin=body.replace(b"{}", b"[]")).code == 1  # tampered body
    other_id = [a if a != "evt_1" else "evt_2" for a in argv]
    assert run_main(other_id, stdin=body).code == 1
    several = [
        a if a != signature else f"v1,{base64.b64encode(b'x').decode()} {signature}" for a in argv
    ]
    assert run_main(several, stdin=body).code == 0  # any of several may match


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--signature", "sha256=00"], "--secret"),  # no secret
        (["--secret", "s"], "--signature"),  # no signature
        (["--secret", SECRET, "--signature", "v1,AAAA"], "needs --id and --timestamp"),
        (
            ["--secret", "plain", "--signature", "v1,AAAA", "--id", "a", "--timestamp", "1"],
            "needs the whsec_... secret",
        ),
        (["--secret", "s", "--signature", "sha256=00", "/nonexistent/body"], "cannot read"),
    ],
)
def test_usage_errors_are_2(argv: list[str], message: str) -> None:
    ran = run_main(["verify", *argv], stdin=SPEC_BODY)
    assert ran.code == 2
    assert message in ran.err
