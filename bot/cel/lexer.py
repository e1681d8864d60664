"""CEL's tokens, read as the ``cel`` extension reads them (a number may start with ``0``).

The grammar is CEL's (https://github.com/google/cel-spec/blob/master/doc/langdef.md).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

KEYWORDS = frozenset({"true", "false", "null", "in"})


class CelSyntaxError(ValueError):
    """The text is not a CEL expression."""


_SPACE = frozenset(" \t\n\r\f")
_DIGITS = "0123456789"
_DIGITS_SET = frozenset(_DIGITS)
_IDENT = re.compile(r"[_a-zA-Z][_a-zA-Z0-9]*")
_FLOAT = re.compile(r"[0-9]*\.[0-9]+(?:[eE][+-]?[0-9]+)?|[0-9]+[eE][+-]?[0-9]+")
_INT = re.compile(r"0x[0-9a-fA-F]+[uU]?|[0-9]+[uU]?")
_STRING_START = re.compile(r"([bB]?)([rR]?)(\"\"\"|'''|\"|')")
_PUNCT = ("==", "!=", "<=", ">=", "&&", "||", *"<>!+-*/%?:.,()[]{}")
_ESCAPES = {
    "a": "\a",
    "b": "\b",
    "f": "\f",
    "n": "\n",
    "r": "\r",
    "t": "\t",
    "v": "\v",
    "\\": "\\",
    "'": "'",
    '"': '"',
    "`": "`",
    "?": "?",
}
INT64 = 2**63
_UINT64 = 2**64


@dataclass(frozen=True, slots=True)
class Token:
    """One token: its kind, its value and where it stands in the text."""

    kind: str  # int, uint, float, string, bytes, ident, a keyword or punctuation, eof
    value: Any
    start: int
    end: int


def _where(text: str, at: int) -> str:
    line = text.count("\n", 0, at) + 1
    column = at - (text.rfind("\n", 0, at) + 1) + 1
    return f"{line}:{column}"


def syntax_error(text: str, at: int, message: str) -> CelSyntaxError:
    """The error for a problem at ``at``, with its line and column."""
    return CelSyntaxError(f"syntax error at {_where(text, at)}: {message}")


def tokens(text: str) -> list[Token]:
    """The text's tokens, ending with ``eof``; CelSyntaxError where there is none."""
    out: list[Token] = []
    at, end = 0, len(text)
    while True:
        while at < end and text[at] in _SPACE:
            at += 1
        if text.startswith("//", at):
            newline = text.find("\n", at)
            at = end if newline < 0 else newline
            continue
        if at >= end:
            out.append(Token("eof", None, end, end))
            return out
        char = text[at]
        string = _STRING_START.match(text, at) if char in "bBrR\"'" else None
        if string is not None:
            token = _string(text, at, string)
        elif char in _DIGITS or (char == "." and text[at + 1 : at + 2] in _DIGITS_SET):
            token = _number(text, at)
        elif (ident := _IDENT.match(text, at)) is not None:
            word = ident.group()
            token = Token(word if word in KEYWORDS else "ident", word, at, ident.end())
        else:
            punct = next((p for p in _PUNCT if text.startswith(p, at)), None)
            if punct is None:
                raise syntax_error(text, at, f"unexpected character {char!r}")
            token = Token(punct, punct, at, at + len(punct))
        out.append(token)
        at = token.end


def _number(text: str, at: int) -> Token:
    # The longest match wins, as in CEL's lexer: "1.5" is a double, "0x1F" an int.
    candidates = [m for m in (_FLOAT.match(text, at), _INT.match(text, at)) if m is not None]
    found = max(candidates, key=lambda m: m.end())
    word = found.group()
    if found.re is _FLOAT:
        value = float(word)
        if value == float("inf"):
            raise syntax_error(text, at, f"number {word} is out of range")
        return Token("float", value, at, found.end())
    unsigned = word[-1] in "uU"
    digits = word[:-1] if unsigned else word
    number = int(digits, 16) if digits.startswith("0x") else int(digits)
    if number >= (_UINT64 if unsigned else INT64 + 1):  # 2**63 only after a minus sign
        raise syntax_error(text, at, f"number {word} is out of range")
    return Token("uint" if unsigned else "int", number, at, found.end())


def _string(text: str, at: int, start: re.Match[str]) -> Token:
    is_bytes, raw, quote = bool(start.group(1)), bool(start.group(2)), start.group(3)
    triple = len(quote) == 3
    pos, end = start.end(), len(text)
    parts: list[str | bytes] = []
    while True:
        if pos >= end:
            raise syntax_error(text, at, "the string is not closed")
        if text.startswith(quote, pos):
            pos += len(quote)
            break
        char = text[pos]
        if not triple and char in "\r\n":
            raise syntax_error(text, pos, "a line break inside a quoted string (use ''' or \"\"\")")
        if char == "\\" and not raw:
            piece, pos = _escape(text, pos, is_bytes)
            parts.append(piece)
            continue
        parts.append(char)
        pos += 1
    if is_bytes:
        value: Any = b"".join(p if isinstance(p, bytes) else p.encode() for p in parts)
        return Token("bytes", value, at, pos)
    return Token("string", "".join(str(p) for p in parts), at, pos)


def _escape(text: str, pos: int, is_bytes: bool) -> tuple[str | bytes, int]:
    kind = text[pos + 1 : pos + 2]
    if kind in _ESCAPES:
        return _ESCAPES[kind], pos + 2
    if kind in ("x", "X", "u", "U") or kind.isdigit():
        size = {"x": 2, "X": 2, "u": 4, "U": 8}.get(kind, 3)
        digits = text[pos + 2 : pos + 2 + size] if not kind.isdigit() else text[pos + 1 : pos + 4]
        octal = kind.isdigit()
        valid = re.fullmatch(r"[0-3][0-7]{2}" if octal else rf"[0-9a-fA-F]{{{size}}}", digits)
        if valid and not (is_bytes and kind in ("u", "U")):
            code = int(digits, 8 if octal else 16)
            after = pos + (4 if octal else 2 + size)
            if is_bytes:
                return bytes([code]), after
            if code > 0x10FFFF or 0xD800 <= code <= 0xDFFF:
                raise syntax_error(text, pos, f"\\{kind}{digits} is not a Unicode character")
            return chr(code), after
    raise syntax_error(text, pos, f"invalid escape \\{kind}")
