"""An email notification block: Prefect's Apprise notification block with a ``mailto://`` URL.

Prefect ships no concrete SMTP notification block (``AppriseNotificationBlock`` is an interface:
it cannot be saved). This subclass adds nothing but a name: Apprise, inside Prefect, speaks
SMTP. The Prefect server loads it through the ``prefect.collections`` entry point of this
package when an automation sends to it, so keep this module's imports to prefect alone.
"""

from __future__ import annotations

from prefect.blocks.notifications import AppriseNotificationBlock


class EmailNotification(AppriseNotificationBlock):
    """Send notifications by email through an SMTP server (an Apprise ``mailto://`` URL with
    smtp=, from=, to= and mode=starttls|ssl|insecure; the password is part of the secret
    URL)."""

    _block_type_name = "Strongroom Email Notification"
    _block_type_slug = "strongroom-email-notification"
