"""The email bodies of one variant: HTML (CSS inlined) and plain text. Pure apart from
loading templates.

Rendered once per variant with `links` carrying slots.TOKEN and `greeting` set to
slots.GREETING; the per-reader step splices the real values in (see render.slots).
Both markers are plain ASCII, which Jinja's autoescape and premailer leave as they are;
render_bodies checks that they arrive intact (a template that transformed one, or
premailer losing one, is an error, not a reader seeing a marker).
"""

from __future__ import annotations

import logging
import os
import re

from jinja2 import Environment
from premailer import Premailer

from dispatch.render import slots
from dispatch.render.views import Digest
from dispatch.track.links import Links

HTML_TEMPLATE = "email.html.j2"
TEXT_TEMPLATE = "email.txt.j2"

_BLANK_RUNS = re.compile(r"\n{3,}")


def inline_css(html: str) -> str:
    """Move the <style> rules into style="" attributes, as mail clients need.

    - strip_important=False: premailer keeps media-query rules in <head> and marks each
      of their declarations !important so they beat the inlined styles; its default
      would strip those marks again, and the phone and dark-mode rules would lose.
    - <style data-premailer="ignore"> blocks (rules for particular clients, such as
      Outlook.com's [data-ogsc] dark mode) are left untouched (premailer only drops
      the attribute); Outlook's conditional comments are comments and stay as written.
    - allow_network=False: never fetch a stylesheet; the email must not link to one.
    - cssutils logs a warning for every mso-* property it doesn't know; quiet it.
    """
    inlined: str = Premailer(
        html,
        strip_important=False,
        keep_style_tags=False,
        remove_classes=False,
        allow_network=False,
        disable_link_rewrites=True,
        cssutils_logging_level=logging.CRITICAL,
    ).transform(pretty_print=False)
    return inlined


def tidy_text(text: str) -> str:
    """At most one blank line in a row, no trailing spaces, one final newline."""
    lines = [line.rstrip() for line in text.strip().splitlines()]
    return _BLANK_RUNS.sub("\n\n", "\n".join(lines)) + "\n"


def template_vars(
    digest: Digest,
    links: Links,
    subject: str,
    greeting: str = slots.GREETING,
    interests: str = slots.INTERESTS,
) -> dict[str, object]:
    """The variables email templates get (see docs/templates.md)."""
    return {
        "digest": digest,
        "issue": digest.issue,
        "links": links,
        "subject": subject,
        "greeting": greeting,
        "interests": interests,
    }


# What all markers start with: a template that changed one (`greeting | upper`, a
# truncated link) leaves this behind, and readers would see it instead of their values.
_STEM = re.compile(re.escape(os.path.commonprefix(list(slots.SLOTS))), re.IGNORECASE)


def check_slots(body: str, where: str) -> None:
    """The markers a body must carry, intact: raises ValueError naming the template."""
    intact = sum(body.count(slot) for slot in slots.SLOTS)
    if len(_STEM.findall(body)) != intact:
        raise ValueError(
            f"{where}: a per-reader marker was changed by the template; write the greeting "
            "only as {{ greeting }} and links only as {{ links.…() }} (docs/templates.md)"
        )
    if slots.TOKEN not in body:
        raise ValueError(f"{where}: has none of the reader's links (links.unsubscribe() at least)")


def _check_inlined(before: str, after: str) -> None:
    for slot in slots.SLOTS:
        if before.count(slot) != after.count(slot):
            raise ValueError(f"{HTML_TEMPLATE}: a per-reader marker was lost while inlining CSS")


def render_html(env: Environment, digest: Digest, links: Links, subject: str) -> str:
    raw = env.get_template(HTML_TEMPLATE).render(template_vars(digest, links, subject))
    check_slots(raw, HTML_TEMPLATE)
    html = inline_css(raw)
    _check_inlined(raw, html)
    return html


def render_text(env: Environment, digest: Digest, links: Links, subject: str) -> str:
    text = tidy_text(env.get_template(TEXT_TEMPLATE).render(template_vars(digest, links, subject)))
    check_slots(text, TEXT_TEMPLATE)
    return text


def render_bodies(env: Environment, digest: Digest, links: Links, subject: str) -> tuple[str, str]:
    """(HTML with inlined CSS, plain text) of one variant."""
    return render_html(env, digest, links, subject), render_text(env, digest, links, subject)
