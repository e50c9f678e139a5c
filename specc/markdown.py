"""The one escaper for values in specc's Markdown outputs (PR comments: `specc report --format
markdown`, `specc diff --format markdown`).

A value that comes from a file specc did not write this run (a manifest's model or judge name,
a drop reason, an eval's labels and rule ids, a diff's rule ids) or from a spec is either a
code span (:func:`code`: identifiers, names) or escaped text (:func:`text`: prose). Either way
it can never become a link, an image or raw HTML in the rendered comment: a PR comment must
never fetch anything that specc did not put there.
"""

from __future__ import annotations

# every character with a meaning in CommonMark's or GitHub's inline syntax: emphasis, code, links
# and images, HTML and entities, tables, headings, strikethrough, autolinks (`:` of a scheme, `.`
# of www.), and @mentions (a PR comment must not notify anyone a value names)
_SPECIAL = frozenset("\\`*_[]<>|#~!()&:.@")


def text(value: object, *, breaks: str = " ") -> str:
    """Prose for a line or a table cell: each markup character backslash-escaped (so no
    emphasis, link, image, HTML tag, entity, autolink or mention can form), line breaks as
    ``breaks``."""
    s = str(value).replace("\r\n", "\n").replace("\r", "\n")
    esc = "".join("\\" + ch if ch in _SPECIAL else ch for ch in s)
    return esc.replace("\n", breaks)


def code(value: object) -> str:
    """A code span that survives a table cell: a fence longer than any run of backticks in the
    value, pipes escaped, no line breaks. Nothing inside a code span is markup."""
    s = str(value).replace("\r", " ").replace("\n", " ").replace("|", "\\|")
    run = longest = 0
    for ch in s:
        run = run + 1 if ch == "`" else 0
        longest = max(longest, run)
    fence = "`" * (longest + 1)
    pad = " " if s.startswith("`") or s.endswith("`") or not s.strip() else ""
    return f"{fence}{pad}{s}{pad}{fence}"
