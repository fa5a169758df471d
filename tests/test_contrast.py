"""Small text must be readable: every text colour the theme defines on every background
it defines, at WCAG AA (4.5:1), in light and in dark mode; and no template picks a
colour of its own outside the theme."""

from __future__ import annotations

import re

import pytest
from conftest import REPO

TEMPLATES = REPO / "src" / "dispatch" / "defaults" / "templates"
AA = 4.5

# Which of the theme's colours are text, which are what text sits on, which are neither.
LIGHT_TEXT = ("text", "muted", "faint", "link", "accent")
LIGHT_BACKGROUNDS = ("surface", "page", "note", "accent_soft", "ok_soft")
DARK_TEXT = ("dark_text", "dark_muted", "dark_link", "dark_accent")
DARK_BACKGROUNDS = ("dark_page", "dark_surface", "dark_note", "dark_border", "dark_ok_soft")
# Filled labels (the reader's own badges, 推荐, buttons): text on the accent.
FILLED = (("surface", "accent"), ("dark_page", "dark_accent"))
LINES = ("border", "outline", "ok")  # borders only, never under text


def theme() -> dict[str, str]:
    """The colours _theme.j2 sets: name → #rrggbb."""
    source = (TEMPLATES / "_theme.j2").read_text(encoding="utf-8")
    return {k: v.lower() for k, v in re.findall(r'"(\w+)":\s*"(#[0-9a-fA-F]{6})"', source)}


def luminance(colour: str) -> float:
    """Relative luminance (WCAG 2.x) of #rrggbb."""
    def channel(hex2: str) -> float:
        c = int(hex2, 16) / 255
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (channel(colour[i:i + 2]) for i in (1, 3, 5))
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast(a: str, b: str) -> float:
    hi, lo = sorted((luminance(a), luminance(b)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


def test_the_formula_against_known_pairs():
    assert contrast("#000000", "#ffffff") == pytest.approx(21.0)
    assert contrast("#777777", "#ffffff") == pytest.approx(4.48, abs=0.01)
    # The footer's old grey on the page's grey, as a newcomer found it: too faint.
    assert contrast("#8f959e", "#f2f3f5") == pytest.approx(2.72, abs=0.01)


def test_every_theme_colour_has_a_role():
    roles = {*LIGHT_TEXT, *LIGHT_BACKGROUNDS, *DARK_TEXT, *DARK_BACKGROUNDS, *LINES}
    assert set(theme()) == roles, "classify a new theme colour in this test"


@pytest.mark.parametrize(
    "fg, bg",
    [(f, b) for f in LIGHT_TEXT for b in LIGHT_BACKGROUNDS]
    + [(f, b) for f in DARK_TEXT for b in DARK_BACKGROUNDS]
    + list(FILLED),
)
def test_text_colours_reach_aa_on_every_background(fg, bg):
    colours = theme()
    ratio = contrast(colours[fg], colours[bg])
    assert ratio >= AA, f"{fg} {colours[fg]} on {bg} {colours[bg]}: {ratio:.2f}:1 < {AA}:1"


def test_templates_take_their_colours_from_the_theme():
    colour = re.compile(r"(?:color|background(?:-color)?|border[\w-]*)\s*:[^;}\"]*#[0-9a-fA-F]{3,6}\b")
    for path in sorted(TEMPLATES.glob("*.j2")):
        if path.name == "_theme.j2":
            continue
        found = colour.findall(path.read_text(encoding="utf-8"))
        assert not found, f"{path.name}: colours outside _theme.j2: {found}"
