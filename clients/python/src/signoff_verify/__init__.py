"""signoff-verify: verify signoff access tokens inside a Python service, revocations included,
and receive signoff's logout notifications.

The core needs only PyJWT; ``signoff_verify.django`` and ``signoff_verify.fastapi`` hold the
framework glue (install the ``django`` or ``fastapi`` extra).
"""

from ._feed import Frame, parse_frames
from .receive import Logout, LogoutTokenVerifier, ReceiveError, WebhookVerifier, verify_webhook
from .verifier import Verifier, VerifyError

__all__ = [
    "Frame",
    "Logout",
    "LogoutTokenVerifier",
    "ReceiveError",
    "Verifier",
    "VerifyError",
    "WebhookVerifier",
    "parse_frames",
    "verify_webhook",
]
