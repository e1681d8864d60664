"""Text between Teams and the widget: Teams HTML to plain text, visitor text to safe markdown."""

from __future__ import annotations

import re
from html.parser import HTMLParser

_BLOCK_TAGS = frozenset({"p", "div", "br", "li", "tr", "h1", "h2", "h3", "h4", "blockquote"})


class _TextOnly(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._href = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "br":
            self.parts.append("\n")
        elif tag == "li":
            self.parts.append("\n\u2022 ")
        elif tag == "a":
            self._href = dict(attrs).get("href") or ""

    def handle_endtag(self, tag: str) -> None:
        if tag == "a" and self._href:
            # Show where a link goes instead of hiding it behind its text.
            label = self.parts[-1] if self.parts else ""
            if self._href not in label:
                self.parts.append(f" ({self._href})")
            self._href = ""
        elif tag in _BLOCK_TAGS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        self.parts.append(data)


def plain_text(text: str, *, drop_mentions_of: str = "") -> str:
    """Teams message text (HTML, ``<at>`` mentions) as readable plain text.

    Mentions of the bot itself (``drop_mentions_of``) are removed; other mentions keep the name.
    """
    if drop_mentions_of:
        text = re.sub(
            rf"<at>\s*{re.escape(drop_mentions_of)}\s*</at>", "", text, flags=re.IGNORECASE
        )
    text = re.sub(r"</?at>", "", text, flags=re.IGNORECASE)
    parser = _TextOnly()
    parser.feed(text)
    parser.close()
    joined = "".join(parser.parts).replace("\xa0", " ")
    lines = [" ".join(line.split()) for line in joined.splitlines()]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


# Markdown that could style or disguise text: written as character references, which both
# Teams and the Playground render as the literal character.
_MARKDOWN = re.compile(r"[\\`*_~\[\]<>&|#]")
# Block syntax at the start of a line: lists ("- ", "+ ", "1. "), quotes, setext underlines.
_LINE_START = re.compile(r"^(\s*)([-+=>]|\d+[.)])")


def _entities(text: str) -> str:
    return "".join(f"&#{ord(ch)};" for ch in text)


def safe_markdown(text: str) -> str:
    """Visitor text as inert markdown: shown verbatim, links visible, line breaks kept."""
    lines = []
    for line in text.splitlines() or [""]:
        inline = _MARKDOWN.sub(lambda m: _entities(m.group()), line)
        lines.append(_LINE_START.sub(lambda m: m.group(1) + _entities(m.group(2)), inline))
    return "<br>".join(lines)


def relay_markdown(author: str, text: str) -> str:
    """A visitor message as posted in the thread."""
    return f"**{safe_markdown(author)}:** {safe_markdown(text)}"


# Teams refuses messages over ~28 KB; leave room for the activity envelope.
MAX_TEXT_BYTES = 24_000


def split_text(text: str, author: str, limit: int = MAX_TEXT_BYTES) -> list[str]:
    """Pieces of ``text`` whose relayed form fits ``limit`` bytes, cut at line or word breaks."""
    if len(relay_markdown(author, text).encode()) <= limit:
        return [text]
    pieces: list[str] = []
    rest = text
    while rest:
        # Escaping can grow text up to ~7x: start from a safe guess and shrink to fit.
        size = min(len(rest), max(1, limit // 8))
        while size < len(rest) and len(relay_markdown(author, rest[: size * 2]).encode()) <= limit:
            size *= 2
        size = min(size, len(rest))
        while len(relay_markdown(author, rest[:size]).encode()) > limit:
            size = max(1, size * 3 // 4)
        cut = size
        if size < len(rest):
            for sep in ("\n\n", "\n", " "):
                at = rest.rfind(sep, 0, size)
                if at > size // 2:
                    cut = at + len(sep)
                    break
        pieces.append(rest[:cut].rstrip())
        rest = rest[cut:].lstrip()
    return [p for p in pieces if p]
