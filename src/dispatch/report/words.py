"""The words staff read for feedback kinds and feedback channels, and the words they may
type for them (`dispatch feedback list --kind`)."""

from __future__ import annotations

from collections.abc import Iterable

from dispatch.industries import SEPARATORS as LIST_SEPARATORS

# The stored kind → what staff read (and type).
KIND_WORDS: dict[str, str] = {
    "useful": "有用",
    "not_useful": "没用",
    "comment": "留言",
    "reply": "回复",
    "auto_reply": "自动回复",
    "bounce": "退信",
}
# Other words staff may type for a set of kinds.
KIND_GROUPS: dict[str, tuple[str, ...]] = {
    "投票": ("useful", "not_useful"),
    "votes": ("useful", "not_useful"),
    "退回": ("bounce",),
    "留言和回复": ("comment", "reply"),
}
WEB = "网页"  # feedback left on a reader page


def kind_word(kind: str) -> str:
    return KIND_WORDS.get(kind, kind)


def channel_word(channel: str) -> str:
    """邮件 / 企业微信 as the reader lists write them (dispatch.readers), 网页 for a page."""
    if channel == "web":
        return WEB
    from dispatch.readers import channel_words

    return channel_words((channel,)) or channel


def parse_kinds(text: str) -> tuple[str, ...]:
    """'留言、回复' or 'reply' or '投票' → stored kinds, in KIND_WORDS' order.
    Raises ValueError naming each word that is no kind."""
    words = LIST_SEPARATORS.split(text)
    by_word = {**{w: (k,) for k, w in KIND_WORDS.items()}, **{k: (k,) for k in KIND_WORDS},
               **KIND_GROUPS}
    wanted: set[str] = set()
    unknown: list[str] = []
    for word in (w.strip() for w in words):
        if not word:
            continue
        kinds = by_word.get(word) or by_word.get(word.lower())
        if kinds is None:
            unknown.append(word)
        else:
            wanted.update(kinds)
    if unknown:
        raise ValueError(
            "、".join(f"“{w}”" for w in unknown)
            + f"不是反馈类别；可选：{'、'.join(KIND_WORDS.values())}、投票"
        )
    if not wanted:
        raise ValueError(f"没有给出反馈类别；可选：{'、'.join(KIND_WORDS.values())}、投票")
    return ordered(wanted)


def ordered(kinds: Iterable[str]) -> tuple[str, ...]:
    chosen = set(kinds)
    return tuple(k for k in KIND_WORDS if k in chosen)
