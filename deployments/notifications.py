"""Notification channels of the platform file, saved as Prefect's own notification blocks.

``notifications:`` in the platform file::

    notifications:
      grace: 2h                  # delay alert: no backup within a schedule's period + grace
      backup_time_limit: 4h      # a backup running longer than this is late
      capacity_threshold: 0.7    # a target fuller than this is a maintenance alert
      channels:
        oncall: {webhook: https://alerts.example.com/hook, levels: [critical, warning]}
        team: {slack: "${SLACK_WEBHOOK_URL}"}
        ops-mail:
          email: {smtp_host: smtp.example.com, smtp_port: 587, from: backup@example.com,
                  to: [ops@example.com], username: backup, password_env: SMTP_PASSWORD}
          levels: [critical, warning, maintenance, info]

Each channel becomes a block named ``strongroom-alert-<channel>``: a generic webhook a
``CustomWebhookNotificationBlock`` (JSON POST of subject and body), Slack a ``SlackWebhook``,
email an ``EmailNotification`` (deployments/email_block.py: Prefect's Apprise block with a
``mailto://`` URL; Apprise speaks SMTP). Secrets (webhook URLs, generic and Slack, which
carry tokens; the SMTP password read from ``password_env`` at deploy time) live in the blocks'
secret fields only; the UI shows them masked.
"""

from __future__ import annotations

import os
from datetime import timedelta
from typing import Any, Literal
from urllib.parse import quote, urlencode

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from strongroom.errors import ConfigError

Level = Literal["critical", "warning", "info", "maintenance"]
LEVELS: tuple[str, ...] = ("critical", "warning", "info", "maintenance")
DEFAULT_LEVELS: list[str] = ["critical", "warning", "maintenance"]  # info: opt in
BLOCK_PREFIX = "strongroom-alert-"
WEBHOOK_URL_SECRET = "webhook_url"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class EmailChannel(_Model):
    smtp_host: str
    smtp_port: int = Field(default=587, ge=1, le=65535)
    from_: str = Field(alias="from")
    to: list[str]
    username: str | None = None
    password_env: str | None = None  # name of the environment variable holding the password
    secure: Literal["starttls", "ssl", "insecure"] = "starttls"

    @field_validator("to", mode="before")
    @classmethod
    def _to(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value


class ChannelConfig(_Model):
    webhook: str | None = None
    slack: str | None = None
    email: EmailChannel | None = None
    levels: list[Level] = Field(default_factory=lambda: list(DEFAULT_LEVELS))

    @model_validator(mode="after")
    def _one(self) -> ChannelConfig:
        given = [k for k in ("webhook", "slack", "email") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of webhook, slack or email")
        for key in ("webhook", "slack"):
            url = getattr(self, key)
            if url is not None and not url.startswith(("http://", "https://")):
                raise ValueError(f"{key} must be an http(s) URL")
        return self

    @property
    def kind(self) -> str:
        return next(k for k in ("webhook", "slack", "email") if getattr(self, k) is not None)


class NotificationsConfig(_Model):
    grace: str = "2h"
    backup_time_limit: str = "4h"
    capacity_threshold: float = Field(default=0.7, gt=0, le=1)
    drill_grace: str = "7d"
    channels: dict[str, ChannelConfig] = {}

    @field_validator("grace", "backup_time_limit", "drill_grace")
    @classmethod
    def _duration(cls, value: str) -> str:
        from deployments.config import parse_objective

        parse_objective(value)
        return value

    def duration(self, field: str) -> timedelta:
        from deployments.config import parse_objective

        return parse_objective(getattr(self, field))

    def channels_for(self, level: str) -> list[str]:
        """Channels that receive ``level``, in file order."""
        return [name for name, ch in self.channels.items() if level in ch.levels]


def block_name(channel: str) -> str:
    """The block document name of a channel (block names: lowercase, digits, dashes)."""
    return BLOCK_PREFIX + "".join(c if c.isalnum() else "-" for c in channel.lower())


def mailto_url(mail: EmailChannel) -> str:
    """The Apprise ``mailto://`` URL of an email channel; the password comes from the
    environment variable ``password_env`` (ConfigError when it is not set)."""
    auth = ""
    if mail.username:
        password = ""
        if mail.password_env:
            if mail.password_env not in os.environ:
                raise ConfigError(f"notifications: environment variable {mail.password_env} "
                                  "(the SMTP password) is not set")
            password = ":" + quote(os.environ[mail.password_env], safe="")
        auth = quote(mail.username, safe="") + password + "@"
    query = urlencode({"smtp": mail.smtp_host, "from": mail.from_, "to": ",".join(mail.to),
                       "mode": mail.secure})
    return f"mailto://{auth}{mail.smtp_host}:{mail.smtp_port}?{query}"


def channel_block(name: str, channel: ChannelConfig) -> Any:
    """The Prefect notification block of one channel (not saved)."""
    from prefect.blocks.notifications import CustomWebhookNotificationBlock, SlackWebhook

    from deployments.email_block import EmailNotification

    if channel.webhook is not None:
        # the URL is a secret (webhook URLs carry tokens): kept in the masked ``secrets`` and
        # substituted at send time, so the UI and the API show ``{{webhook_url}}`` only
        return CustomWebhookNotificationBlock(
            name=f"strongroom {name}", url="{{" + WEBHOOK_URL_SECRET + "}}",
            secrets={WEBHOOK_URL_SECRET: channel.webhook},
            json_data={"subject": "{{subject}}", "body": "{{body}}", "channel": "{{name}}"})
    if channel.slack is not None:
        return SlackWebhook(url=channel.slack)
    assert channel.email is not None
    return EmailNotification(url=mailto_url(channel.email))


def save_channels(config: NotificationsConfig) -> dict[str, Any]:
    """Save one block per channel (overwriting by name), delete the blocks of channels no
    longer in the file; channel -> block document id."""
    ids = {}
    for name, channel in config.channels.items():
        ids[name] = channel_block(name, channel).save(block_name(name), overwrite=True)
    delete_blocks_except({block_name(n) for n in config.channels})
    return ids


def delete_blocks_except(keep: set[str]) -> list[str]:
    """Delete every ``strongroom-alert-*`` block document not named in ``keep``."""
    from prefect.client.orchestration import get_client

    removed = []
    with get_client(sync_client=True) as client:
        docs, offset = [], 0
        while page := client.read_block_documents(offset=offset, limit=200,
                                                  include_secrets=False):
            docs += page
            offset += len(page)
        for doc in docs:
            if doc.name and doc.name.startswith(BLOCK_PREFIX) and doc.name not in keep:
                client.delete_block_document(doc.id)
                removed.append(doc.name)
    return removed
