"""S3 credentials block: one endpoint, region and key pair, nested in targets and bucket sources.

Our own small block rather than prefect-aws's ``AwsCredentials``/``MinIOCredentials``: those
would add aiobotocore (which pins botocore tightly, against the engine's boto3) and two credential
shapes for one backend, while the engine needs only these four values.
"""

from __future__ import annotations

from typing import Any

from prefect.blocks.core import Block
from pydantic import Field, SecretStr

# Flat keywords (as the platform file writes them) that fold into a nested S3Credentials.
FLAT_KEYS = ("endpoint_url", "region", "access_key_id", "secret_access_key")


class S3Credentials(Block):
    """Where and as whom to reach S3 or MinIO; empty fields fall back on the AWS chain."""

    _block_type_name = "Strongroom S3 Credentials"
    _block_type_slug = "strongroom-s3-credentials"

    endpoint_url: str | None = Field(
        default=None, description="S3 endpoint URL for MinIO or another S3-compatible "
        "service, e.g. http://minio:9000; empty: AWS")
    region: str | None = Field(default=None, description="S3 region, e.g. eu-west-1; empty: "
                               "the AWS default chain")
    access_key_id: SecretStr | None = Field(
        default=None, description="access key id; empty: the standard AWS credential chain "
        "(environment, profile, instance role)")
    secret_access_key: SecretStr | None = Field(
        default=None, description="secret access key belonging to the access key id")

    def engine_options(self) -> dict[str, str]:
        """The engine's S3 options (``endpoint``, ``region``, keys), secrets revealed in-process
        only."""
        opts: dict[str, str] = {}
        if self.endpoint_url:
            opts["endpoint"] = self.endpoint_url
        if self.region:
            opts["region"] = self.region
        for name in ("access_key_id", "secret_access_key"):
            value = getattr(self, name)
            if value is not None:
                opts[name] = value.get_secret_value()
        return opts

    def flat(self) -> dict[str, Any]:
        """The four values under their own names, secrets revealed (a source's settings)."""
        return {name: (value.get_secret_value() if isinstance(value, SecretStr) else value)
                for name in FLAT_KEYS for value in [getattr(self, name)]}


def fold_flat_keys(data: Any, field: str = "credentials") -> Any:
    """A model-validator helper: move flat ``endpoint_url``/``region``/keys keywords into the
    nested ``field`` (so ``RepositoryTarget(url=..., endpoint_url=...)`` keeps working)."""
    if not isinstance(data, dict) or not any(k in data for k in FLAT_KEYS):
        return data
    data = dict(data)
    flat = {k: data.pop(k) for k in FLAT_KEYS if k in data}
    if data.get(field) is not None:
        raise ValueError(f"give S3 settings either flat or in {field}, not both")
    if any(v is not None for v in flat.values()):
        data[field] = {k: v for k, v in flat.items() if v is not None}
    return data
