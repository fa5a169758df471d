"""One message's bytes for a set of value residues: the per-reader join.

A layout takes the segments of a whole message (static chunks and windows, as
`mime_body.Body.segments` makes them for given residues) and turns the per-reader
step into a few dozen Python operations, whatever the number of links:

- the distinct windows that hold only the token and fit one line are all encoded by
  one C call: their concatenation is token.join(seps), each window a multiple of 3
  bytes long (`mime_body`'s splicing invariant), so its base64 is the concatenation of
  theirs, cut apart again by `cut` (an itemgetter of slices);
- the other windows (greeting, interests) are encoded one by one;
- the message is one b"".join over an itemgetter (`pick`) that orders the header,
  the static chunks and the encoded windows: table = [header, *statics, *encoded].

Identical windows (the same bytes around the token in many links) are encoded once.
Static chunks are kept as the bodies made them, not joined into longer runs: the big
ones (the middles of static stretches) are then the same objects in every layout of
a template, and the bulk of a message exists at most once per alignment of each
stretch (three), however many layouts there are. A layout itself holds only its
windows and indexes, a few KiB.

Thread-safe: built once, then only read.
"""

from __future__ import annotations

from binascii import b2a_base64
from collections.abc import Callable, Sequence
from operator import itemgetter
from typing import cast

from dispatch.render.mime_body import B64_LINE_BYTES, MAX_BODY_LINE, TOKEN_VALUE, Window, wrap
from dispatch.track.tokens import TOKEN_LENGTH


def _window_size(w: Window) -> int:
    """Bytes a token-only window encodes (the token has a fixed length)."""
    return sum(len(c) for c in w[0::2] if isinstance(c, bytes)) + len(w[1::2]) * TOKEN_LENGTH


def _token_only(w: Window) -> bool:
    """Whether the window holds only the token and encodes to one line at most."""
    return all(x == TOKEN_VALUE for x in w[1::2]) and _window_size(w) <= B64_LINE_BYTES


class Layout:
    """A whole message for one combination of value lengths (mod 3)."""

    __slots__ = ("statics", "seps", "cut", "singles", "windows", "pick")

    def __init__(self, segments: Sequence[bytes | Window]) -> None:
        statics: dict[bytes, int] = {}
        windows: dict[Window, None] = {}
        order = [seg for seg in segments if seg]
        for seg in order:
            if isinstance(seg, bytes):
                statics.setdefault(seg, len(statics))
            else:
                windows[seg] = None

        joined = [w for w in windows if _token_only(w)]
        others = [w for w in windows if not _token_only(w)]
        seps: list[bytes] = [b""]
        slices = []
        offset = 0
        for w in joined:
            consts = [c for c in w[0::2] if isinstance(c, bytes)]
            seps[-1] += consts[0]
            seps.extend(consts[1:])
            size = _window_size(w) // 3 * 4
            slices.append(slice(offset, offset + size))
            offset += size
        self.seps: list[bytes] | None = seps if joined else None
        # itemgetter of one item returns the item, of several a tuple: keep a tuple
        self.cut: Callable[[bytes], tuple[bytes, ...]] = (
            itemgetter(*slices) if len(slices) > 1 else lambda data: (data,)
        )
        self.statics = list(statics)
        # The other windows: one value between two constants (most), or more.
        self.singles = [cast(tuple[bytes, int, bytes], w) for w in others if len(w) == 3]
        self.windows = [w for w in others if len(w) != 3]
        encoded_order = joined + self.singles + self.windows
        index = {w: 1 + len(statics) + i for i, w in enumerate(encoded_order)}
        self.pick = itemgetter(
            0, *(1 + statics[seg] if isinstance(seg, bytes) else index[seg] for seg in order)
        )

    def join(self, header: bytes, values: tuple[bytes, ...]) -> bytes:
        """The message: `header` (ending in the text part's head) then the bodies with
        `values` (indexed as in `mime_body`) in place."""
        if self.seps is None:
            encoded: list[bytes] = []
        else:
            token = values[TOKEN_VALUE]
            encoded = list(self.cut(b2a_base64(token.join(self.seps), newline=False)))
        for head, value, tail in self.singles:
            enc = b2a_base64(head + values[value] + tail, newline=False)
            encoded.append(enc if len(enc) <= MAX_BODY_LINE else wrap(enc))
        for w in self.windows:
            data = b"".join(values[x] if isinstance(x, int) else x for x in w)
            enc = b2a_base64(data, newline=False)
            encoded.append(enc if len(enc) <= MAX_BODY_LINE else wrap(enc))
        return b"".join(self.pick([header, *self.statics, *encoded]))
