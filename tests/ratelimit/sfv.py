"""A small RFC 8941 List parser, enough to check the RateLimit fields strictly.

Items may be strings, tokens or integers; parameters may be integers, strings, tokens
or booleans. Anything else, or any stray character, raises ValueError.
"""

from __future__ import annotations

import re

Bare = str | int | bool
Item = tuple[Bare, dict[str, Bare]]

_KEY = re.compile(r"[a-z*][a-z0-9_\-.*]*")
_TOKEN = re.compile(r"[A-Za-z*][A-Za-z0-9!#$%&'*+\-.^_`|~:/]*")
_INTEGER = re.compile(r"-?[0-9]{1,15}")


def parse_list(text: str) -> list[Item]:
    """Parse a Structured Field List; raise ValueError on anything malformed."""
    pos, members = _skip(text, 0, " "), []
    if pos == len(text):
        return []
    while True:
        item, pos = _item(text, pos)
        members.append(item)
        pos = _skip(text, pos, " \t")
        if pos == len(text):
            return members
        if text[pos] != ",":
            raise ValueError(f"expected ',' at {pos} in {text!r}")
        pos = _skip(text, pos + 1, " \t")
        if pos == len(text):
            raise ValueError(f"trailing comma in {text!r}")


def _skip(text: str, pos: int, chars: str) -> int:
    while pos < len(text) and text[pos] in chars:
        pos += 1
    return pos


def _item(text: str, pos: int) -> tuple[Item, int]:
    value, pos = _bare(text, pos)
    params: dict[str, Bare] = {}
    while pos < len(text) and text[pos] == ";":
        pos = _skip(text, pos + 1, " ")
        match = _KEY.match(text, pos)
        if not match:
            raise ValueError(f"bad parameter key at {pos} in {text!r}")
        key, pos = match.group(), match.end()
        if pos < len(text) and text[pos] == "=":
            params[key], pos = _bare(text, pos + 1)
        else:
            params[key] = True
    return (value, params), pos


def _bare(text: str, pos: int) -> tuple[Bare, int]:
    if pos >= len(text):
        raise ValueError(f"missing value in {text!r}")
    if text[pos] == '"':
        out, pos = [], pos + 1
        while pos < len(text):
            char = text[pos]
            if char == "\\":
                if pos + 1 >= len(text) or text[pos + 1] not in '"\\':
                    raise ValueError(f"bad escape in {text!r}")
                out.append(text[pos + 1])
                pos += 2
            elif char == '"':
                return "".join(out), pos + 1
            elif not 0x20 <= ord(char) <= 0x7E:
                raise ValueError(f"bad character in string in {text!r}")
            else:
                out.append(char)
                pos += 1
        raise ValueError(f"unterminated string in {text!r}")
    if text[pos] == "?":
        if text[pos + 1 : pos + 2] in ("0", "1"):
            return text[pos + 1] == "1", pos + 2
        raise ValueError(f"bad boolean in {text!r}")
    match = _INTEGER.match(text, pos)
    if match:
        if match.end() < len(text) and text[match.end()] == ".":
            raise ValueError(f"decimals are not expected in {text!r}")
        return int(match.group()), match.end()
    match = _TOKEN.match(text, pos)
    if match:
        return match.group(), match.end()
    raise ValueError(f"unparseable value at {pos} in {text!r}")
