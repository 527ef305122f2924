"""Text from files, made safe to show: every message, log line, table cell and figure label goes through here.

A run dir, a checkpoint or a sweep someone else made can hold any text: a newline that starts a new line in a log
(and in a shell's ``.bashrc`` if the log is ever a link to it), terminal escape sequences, right-to-left override
characters that make a table read backwards, markdown or HTML that a viewer would run. The escaping is done where
text leaves nag (the message of a :class:`~nag.config.errors.UserInputError`, the log formatter, the table cell),
not where it is read, so a new call site cannot forget it.
"""

from __future__ import annotations

import re

#: The most characters of a file's text a message quotes.
QUOTE_LIMIT = 300


def printable(text: str, limit: int | None = None) -> str:
    """``text`` with every character that is not printable (controls, newlines, tabs, bidirectional overrides,
    zero-width and other format characters, separators other than the space) written as its Python escape
    (``\\n``, ``\\x1b``, ``\\u202e``), so the result is one line that shows what the text holds; cut to ``limit``
    characters with ``…`` when given. Idempotent: escaping twice changes nothing."""
    if not text.isprintable():
        text = "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)
    if limit is not None and len(text) > limit:
        text = text[: max(0, limit - 1)] + "…"
    return text


def quote(value: object, limit: int = QUOTE_LIMIT) -> str:
    """``repr``-like quoting of a value read from a file, for a message: escaped and at most ``limit`` characters."""
    text = value if isinstance(value, str) else repr(value)
    return "'" + printable(text, limit) + "'" if isinstance(value, str) else printable(text, limit)


def one_line(message: str, limit: int = 200) -> str:
    """A (possibly multi-line) message on one line, for tables and summaries: whitespace runs (newlines
    included) and characters that are not printable become one space, at most ``limit`` characters."""
    text = " ".join("".join(c if c.isprintable() else " " for c in message).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def first_line(error: BaseException, limit: int = 200) -> str:
    """The first line of an exception's message, for a message of nag's (empty if it has none)."""
    return one_line((str(error).strip().splitlines() or [""])[0], limit)


# What a markdown renderer would act on inside a table cell: a column break, code, a link or image ([..](..)), an
# HTML tag or autolink (<..>), and the backslash that escapes them. Emphasis (``*``, ``_``) only styles text.
_MARKDOWN = re.compile(r"([\\`\[\]|<>])")


def markdown_cell(value: object, limit: int = 200) -> str:
    """A value as one markdown table cell that renders as the text it is: one line with no control or direction
    characters, no link, image, HTML tag or column break (each such character backslash-escaped), at most
    ``limit`` characters."""
    return _MARKDOWN.sub(r"\\\1", one_line(str(value), limit))
