"""A reader's message built the slow, obvious way: the stdlib's EmailMessage.

The oracle test_message.py compares `MessageTemplate.render` with, and the naive
baseline bench/render.py times. Known CPython 3.11 flaws that `render` doesn't
share: a display name with commas that needs folding loses its quotes (gh-80222), so
a long 'Smith, John …' turns into several addresses; a name that looks like an
encoded word ('=?utf-8?b?…?=') is sent as is and decoded.
"""

from __future__ import annotations

import email.policy
import html as html_lib
from datetime import UTC, datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime
from zoneinfo import ZoneInfo

from dispatch.render.slots import GREETING, INTERESTS, TOKEN, splice
from dispatch.track.links import Links

XUCHANG = ZoneInfo("Asia/Shanghai")


def build_slow(
    *,
    subject: str,
    from_addr: str,
    html: str,
    text: str,
    reply_domain: str,
    base_url: str,
    to_name: str,
    to_addr: str,
    token: str,
    greeting: str,
    interests: str = "",
    date: datetime | None = None,
) -> bytes:
    """One reader's message through EmailMessage (policy SMTP); `date` as for
    `MessageTemplate.render` (default now, naive is UTC). The slots are filled in one
    pass (a value holding a marker stays as it is)."""
    if date is None:
        date = datetime.now(UTC)
    elif date.tzinfo is None:
        date = date.replace(tzinfo=UTC)
    links = Links(base_url, reply_domain, token)
    msg = EmailMessage(policy=email.policy.SMTP)
    msg["From"] = from_addr
    msg["To"] = Address(display_name=to_name, addr_spec=to_addr)
    msg["Subject"] = subject
    msg["Date"] = format_datetime(date.astimezone(XUCHANG))
    msg["Message-ID"] = links.message_id
    msg["Reply-To"] = links.reply_to
    msg["List-Unsubscribe"] = f"<{links.unsubscribe_mailto}>, <{links.unsubscribe()}>"
    msg["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    msg["Auto-Submitted"] = "auto-generated"
    msg["X-Auto-Response-Suppress"] = "OOF, AutoReply"
    as_text = {TOKEN: token, GREETING: greeting, INTERESTS: interests}
    as_html = {
        TOKEN: token,
        GREETING: html_lib.escape(greeting),
        INTERESTS: html_lib.escape(interests),
    }
    msg.set_content(splice(text).fill(as_text), cte="base64")
    msg.add_alternative(splice(html).fill(as_html), subtype="html", cte="base64")
    return msg.as_bytes()
