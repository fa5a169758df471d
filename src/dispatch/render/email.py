"""The email bodies of one variant: HTML (CSS inlined) and plain text. Pure apart from
loading templates.

Rendered once per selection with `links` carrying slots.TOKEN and `greeting` set to
slots.GREETING; the per-reader step splices the real values in (see render.slots).
Badges that may be the reader's own are written in both forms (render.marks) and
chosen per set of industries with `finish`, before the splicing. All markers are plain
ASCII, which Jinja's autoescape and premailer leave as they are; they are checked to
arrive intact (a template that transformed one, or premailer losing one, is an error,
not a reader seeing a marker).
"""

from __future__ import annotations

import logging
import os
import re

from jinja2 import Environment
from premailer import Premailer

from dispatch.render import marks, slots
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
        # Both forms of each badge, chosen per reader's industries by `finish`.
        "own": marks.Own(None),
    }


# What all markers start with: a template that changed one (`greeting | upper`, a
# truncated link) leaves this behind, and readers would see it instead of their values.
_STEM = re.compile(re.escape(os.path.commonprefix(list(slots.SLOTS))), re.IGNORECASE)


def check_slots(body: str, where: str) -> None:
    """The markers a body must carry, intact: raises ValueError naming the template."""
    marks.check(body, where)
    intact = sum(body.count(slot) for slot in slots.SLOTS) + marks.count(body)
    if len(_STEM.findall(body)) != intact:
        raise ValueError(
            f"{where}: a per-reader marker was changed by the template; write the greeting "
            "only as {{ greeting }} and links only as {{ links.…() }} (docs/templates.md)"
        )
    if slots.TOKEN not in body:
        raise ValueError(f"{where}: has none of the reader's links (links.unsubscribe() at least)")


def _check_inlined(before: str, after: str) -> None:
    for marker in (*slots.SLOTS, *marks.MARKERS):
        if before.count(marker) != after.count(marker):
            raise ValueError(f"{HTML_TEMPLATE}: a per-reader marker was lost while inlining CSS")


def render_html(env: Environment, digest: Digest, links: Links, subject: str) -> str:
    """The HTML of a selection, CSS inlined, badges still in both forms."""
    raw = env.get_template(HTML_TEMPLATE).render(template_vars(digest, links, subject))
    check_slots(raw, HTML_TEMPLATE)
    html = inline_css(raw)
    _check_inlined(raw, html)
    return html


def render_text(env: Environment, digest: Digest, links: Links, subject: str) -> str:
    """The plain text of a selection, badges still in both forms."""
    text = tidy_text(env.get_template(TEXT_TEMPLATE).render(template_vars(digest, links, subject)))
    check_slots(text, TEXT_TEMPLATE)
    return text


def finish(body: str, own: frozenset[str], where: str) -> str:
    """A body from render_html / render_text with the badges of `own` marked: only the
    per-reader slots left."""
    done = marks.resolve(body, own)
    check_slots(done, where)
    return done


def render_bodies(env: Environment, digest: Digest, links: Links, subject: str) -> tuple[str, str]:
    """(HTML with inlined CSS, plain text) of one variant, the digest's own badges marked."""
    html = finish(render_html(env, digest, links, subject), digest.own, HTML_TEMPLATE)
    text = finish(render_text(env, digest, links, subject), digest.own, TEXT_TEMPLATE)
    return html, text
