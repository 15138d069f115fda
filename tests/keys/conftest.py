"""Key-slot fixtures: a repository on each backend, a CLI runner, a SoftHSM2 token, a KMS key."""

from __future__ import annotations

import os
import secrets
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import boto3
import pytest

SOFTHSM_MODULE = "/usr/lib/softhsm/libsofthsm2.so"
PASSWORD = "correct horse battery staple"

Runner = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture(params=["local", "s3"])
def repo_env(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, str]:
    """Environment naming a fresh (uninitialised) repository on the local disk or on S3."""
    env = dict(os.environ, STRONGROOM_PASSWORD=PASSWORD)
    for name in list(env):
        if name.startswith(("STRONGROOM_PKCS11", "STRONGROOM_KMS", "STRONGROOM_ESCROW")):
            del env[name]
    if request.param == "local":
        env["STRONGROOM_REPOSITORY"] = str(tmp_path / "repo")
    else:
        endpoint = request.getfixturevalue("moto_endpoint")
        bucket = request.getfixturevalue("s3_bucket")
        env["AWS_ENDPOINT_URL"] = endpoint
        env["STRONGROOM_REPOSITORY"] = f"s3://{bucket}/repo-{secrets.token_hex(3)}"
    return env


@pytest.fixture
def local_env(tmp_path: Path) -> dict[str, str]:
    """A local repository only (for the fault tests, which need no second backend)."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("STRONGROOM_PKCS11", "STRONGROOM_KMS", "STRONGROOM_ESCROW"))}
    return dict(env, STRONGROOM_PASSWORD=PASSWORD, STRONGROOM_REPOSITORY=str(tmp_path / "repo"))


def make_runner(base: dict[str, str]) -> Runner:
    def run(*args: str, check: bool = True, env: dict[str, str] | None = None,
            unset: tuple[str, ...] = (), timeout: float = 300
            ) -> subprocess.CompletedProcess[str]:
        full = {**base, **(env or {})}
        for name in unset:
            full.pop(name, None)
        proc = subprocess.run(["strongroom", *args], env=full, capture_output=True, text=True,
                              timeout=timeout)
        if check and proc.returncode != 0:
            raise AssertionError(f"strongroom {' '.join(args)} -> {proc.returncode}\n"
                                 f"{proc.stdout}\n{proc.stderr}")
        return proc

    return run


@pytest.fixture
def cli(repo_env: dict[str, str]) -> Runner:
    """Run ``strongroom ARGS`` against the parametrised repository."""
    return make_runner(repo_env)


@pytest.fixture
def local_cli(local_env: dict[str, str]) -> Runner:
    return make_runner(local_env)


def one_line_error(proc: subprocess.CompletedProcess[str], code: int, *needles: str,
                   secrets_: tuple[str, ...] = ()) -> str:
    """Assert exit ``code`` and one ``error:`` line on stderr naming ``needles``, no secret."""
    assert proc.returncode == code, (proc.returncode, proc.stdout, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    assert "Traceback" not in proc.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    for secret in secrets_:
        assert secret not in proc.stderr and secret not in proc.stdout
    return lines[0]


def make_tree(root: Path) -> Path:
    """A small tree with a binary file, a text file and a nested directory."""
    (root / "d" / "e").mkdir(parents=True)
    (root / "big.bin").write_bytes(os.urandom(300_000))
    (root / "d" / "note.txt").write_text("keys live in many places\n")
    (root / "d" / "e" / "zero").write_bytes(b"\0" * 70_000)
    return root


def assert_restored(cli_run: Runner, src: Path, dest: Path, env: dict[str, str] | None = None,
                    unset: tuple[str, ...] = ()) -> None:
    """Restore the latest snapshot into ``dest`` and compare every file byte for byte."""
    cli_run("restore", "latest", "--target", str(dest), env=env, unset=unset)
    restored = dest / str(src).lstrip("/")
    files = sorted(p.relative_to(src) for p in src.rglob("*") if p.is_file())
    assert files
    for rel in files:
        assert (restored / rel).read_bytes() == (src / rel).read_bytes(), rel


@pytest.fixture
def softhsm(tmp_path: Path) -> Iterator[dict[str, str]]:
    """A fresh SoftHSM2 token in a temporary directory; yields the variables that open it."""
    if not Path(SOFTHSM_MODULE).exists():
        pytest.fail(f"SoftHSM2 is not installed ({SOFTHSM_MODULE} missing): apt-get install "
                    "softhsm2")
    base = tmp_path / "softhsm"
    (base / "tokens").mkdir(parents=True)
    conf = base / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {base / 'tokens'}\nobjectstore.backend = file\n"
                    "log.level = ERROR\n")
    label, pin = f"sr-{secrets.token_hex(3)}", secrets.token_hex(4)
    env = dict(os.environ, SOFTHSM2_CONF=str(conf))
    subprocess.run(["softhsm2-util", "--init-token", "--free", "--label", label, "--pin", pin,
                    "--so-pin", secrets.token_hex(4)], env=env, check=True,
                   capture_output=True, timeout=60)
    yield {"SOFTHSM2_CONF": str(conf), "STRONGROOM_PKCS11_MODULE": SOFTHSM_MODULE,
           "STRONGROOM_PKCS11_TOKEN": label, "STRONGROOM_PKCS11_KEY": "strongroom-wrap",
           "STRONGROOM_PKCS11_PIN": pin}


def kms_client(endpoint: str):  # noqa: ANN201 - boto3 client type
    return boto3.client("kms", endpoint_url=endpoint, region_name="us-east-1",
                        aws_access_key_id="test", aws_secret_access_key="test")


@pytest.fixture
def kms_key(moto_endpoint: str) -> dict[str, str]:
    """A fresh symmetric KMS key (and an alias) on the session's moto server."""
    client = kms_client(moto_endpoint)
    meta = client.create_key(Description="strongroom test")["KeyMetadata"]
    alias = f"alias/strongroom-{secrets.token_hex(3)}"
    client.create_alias(AliasName=alias, TargetKeyId=meta["KeyId"])
    return {"arn": meta["Arn"], "id": meta["KeyId"], "alias": alias, "endpoint": moto_endpoint}
