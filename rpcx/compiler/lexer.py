"""The lexer: source text to tokens with 1-based ``line:col`` positions.

Comments (``//`` to end of line, ``/* ... */``) are skipped. Doc comments (``///`` not
followed by a fourth ``/``) are collected and attached to the next token as ``doc``; the
parser moves them onto the declaration, field, enum member or method that token starts.

The lexer never raises on bad input: problems become diagnostics and lexing goes on. It
runs in time linear in the input: every token, comment and run of bad characters is
matched by one regular expression, and nothing is ever rescanned. A number literal longer
than :data:`MAX_NUMBER_LENGTH` characters is reported without being converted (Python
refuses to convert integers of more than 4,300 digits, and no literal that long can fit
any IDL type).
"""

from __future__ import annotations

import enum
import math
import re
from typing import NamedTuple

from rpcx.compiler.diagnostics import Diagnostic, Span

__all__ = ["MAX_NUMBER_LENGTH", "RawToken", "Tok", "Token", "describe", "span_of", "tokenize",
           "tokenize_raw"]

MAX_NUMBER_LENGTH = 1000
"""Longest number literal (digits, point, exponent and unit) the lexer converts."""


class Tok(enum.Enum):
    IDENT = "identifier"
    INT = "integer"
    FLOAT = "float"
    STRING = "string"
    DURATION = "duration"
    PUNCT = "punctuation"
    EOF = "end of file"


_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0}

_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", '"': '"', "'": "'", "0": "\0"}
_HEX_WIDTH = {"x": 2, "u": 4, "U": 8}

_MASTER = re.compile(
    r"(?P<ws>[ \t\r\n\f\v\ufeff]++)"
    r"|(?P<run>[;:,.=(){}<>\[\]?@]{2,}+)"
    r'|(?P<ustr>"(?P<ubody>[^"\\\n]*+)(?=\n))\n[ \t]*+'
    r"|(?:(?P<punct>->|[;:,.=(){}<>\[\]?@-])"
    r"(?:(?P<pword>[A-Za-z_][A-Za-z0-9_]*+)(?P<pwpunct>->|[;:,.=(){}<>\[\]?@-])?+)?+"
    r"|(?P<ident>[A-Za-z_][A-Za-z0-9_]*+)(?P<ipunct>->|[;:,.=(){}<>\[\]?@-])?+"
    r"|(?P<int>[0-9]{1,18}+(?![0-9A-Za-z_.]))(?P<npunct>->|[;:,.=(){}<>\[\]?@-])?+"
    r"|(?P<number>(?P<digits>[0-9]++(?P<frac>\.[0-9]++)?+(?P<exp>[eE][+-]?+[0-9]++)?+)"
    r"(?P<suffix>[A-Za-z0-9_]*+))"
    r'|(?P<string>"(?P<body>(?:[^"\\\n]++|\\[^\n])*+)(?P<close>"|\\?+)))[ \t]*+'
    r"|(?P<line>//[^\n]*+)"
    r"|(?P<block>/\*(?:[^*]++|\*(?!/))*+(?P<closed>\*/)?+)"
    r'|(?P<bad>[^ \t\r\n\f\v\ufeffA-Za-z_0-9"/;:,.=(){}<>\[\]?@\-]++|/)'
)
"""One alternative per kind of lexeme; together they match any character, so scanning
never stops, and none of them backtracks (possessive quantifiers), so it is linear. A
token takes the spaces and tabs after it along (outside its group), which halves the
number of matches on ordinary text. A run of one-character punctuation (``;;;;``, ``}}}}``,
``((((``) is matched at once and split with a comprehension. A string without escapes that
is left unterminated at the end of its line (``ustr``) takes that newline and the next
line's indentation along (one match instead of two, for text made of such lines). A plain
integer of at most 18 digits (what ``number`` would match with no fraction, exponent or
suffix) is converted on the spot. An identifier or such an integer directly followed by
punctuation (``a:``, ``m(``, ``int;``, ``1:``) is matched with it, as two tokens
(``ipunct``, ``npunct``), and so is punctuation directly followed by an identifier and
maybe more punctuation (``<int>``, ``(a,``, ``@a(``: ``pword``, ``pwpunct``): one match
instead of two or three."""

_G = {name: index for name, index in _MASTER.groupindex.items()}
_WS_G, _PUNCT_G, _IDENT_G, _NUMBER_G = _G["ws"], _G["punct"], _G["ident"], _G["number"]
_RUN_G, _INT_G = _G["run"], _G["int"]
_STRING_G, _LINE_G, _BLOCK_G = _G["string"], _G["line"], _G["block"]
_BODY_G, _CLOSE_G = _G["body"], _G["close"]
_USTR_G, _UBODY_G = _G["ustr"], _G["ubody"]
_IPUNCT_G, _NPUNCT_G = _G["ipunct"], _G["npunct"]
_PWORD_G, _PWPUNCT_G = _G["pword"], _G["pwpunct"]
_HEX_DIGITS = re.compile(r"[0-9a-fA-F]*")


class Token(NamedTuple):
    """One token; a tuple, so that making a million of them stays cheap."""

    kind: Tok
    text: str
    """The exact source text of the token."""
    path: str
    line: int
    col: int
    value: object = None
    """INT: int (None for a literal too long to convert); FLOAT: float; STRING: the
    unescaped str; DURATION: seconds as float."""
    doc: str = ""
    """Doc comments (``///``) immediately before this token, joined by newlines."""

    @property
    def span(self) -> Span:
        return _new_span(Span, (self[2], self[3], self[4]))

    def is_punct(self, text: str) -> bool:
        return self.kind is Tok.PUNCT and self.text == text

    def is_word(self, text: str) -> bool:
        return self.kind is Tok.IDENT and self.text == text

    def describe(self) -> str:
        """How the token is named in an ``expected ..., found ...`` message."""
        if self.kind is Tok.EOF:
            return "end of file"
        if self.kind is Tok.STRING:
            return "string " + _short(self.text)
        return _short(repr(self.text[:50]))


_new_token = _new_span = tuple.__new__

RawToken = tuple[Tok, str, str, int, int, object, str]
"""The fields of a :class:`Token` in a plain tuple."""


def _short(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


class _Lexer:
    def __init__(self, text: str, path: str, lines: list[str] | None = None) -> None:
        self.text = text
        self.path = path
        self.lines = text.split("\n") if lines is None else lines
        self.line = 1
        self.line_start = 0
        """Index of the first character of the current line."""
        self.tokens: list[RawToken] = []
        self.diagnostics: list[Diagnostic] = []

    def error(self, pos: int, message: str) -> None:
        line = self.line
        source = self.lines[line - 1] if 0 < line <= len(self.lines) else ""
        span = _new_span(Span, (self.path, line, pos - self.line_start + 1))
        self.diagnostics.append(_new_span(Diagnostic, (span, message, source.rstrip("\r"))))

    def run(self) -> None:
        text, path = self.text, self.path
        tokens = self.tokens
        append = tokens.append
        docs: list[str] = []
        punct, ident = Tok.PUNCT, Tok.IDENT
        punct_g, ident_g, ws_g, line_g, run_g = _PUNCT_G, _IDENT_G, _WS_G, _LINE_G, _RUN_G
        int_g, int_kind = _INT_G, Tok.INT
        string_g, body_g, close_g, string_kind = _STRING_G, _BODY_G, _CLOSE_G, Tok.STRING
        ustr_g, ubody_g = _USTR_G, _UBODY_G
        lines, report = self.lines, self.diagnostics.append
        new = _new_token
        count_nl, rfind = text.count, text.rfind
        line, base = 1, -1
        """``base`` is the index of the newline before the current line (-1 on the first
        line): the column of a token at ``start`` is ``start - base``."""
        ipunct_g, npunct_g, pword_g, pwpunct_g = _IPUNCT_G, _NPUNCT_G, _PWORD_G, _PWPUNCT_G
        for m in _MASTER.finditer(text):
            group = m.lastindex  # (ipunct or npunct when the pair matched)
            # The commonest kinds first, each with its own branch (a match subscript is
            # cheaper than m.group()).
            if group == ipunct_g:
                start = m.start()
                word = m[ident_g]
                col = start - base
                if docs:
                    append((ident, word, path, line, col, None, "\n".join(docs)))
                    docs = []
                else:
                    append((ident, word, path, line, col, None, ""))
                append((punct, m[ipunct_g], path, line, col + len(word), None, ""))
                continue
            if group in (pwpunct_g, pword_g):
                start = m.start()
                first = m[punct_g]
                word = m[pword_g]
                col = start - base
                if docs:
                    append((punct, first, path, line, col, None, "\n".join(docs)))
                    docs = []
                else:
                    append((punct, first, path, line, col, None, ""))
                col += len(first)
                append((ident, word, path, line, col, None, ""))
                if group == pwpunct_g:
                    append((punct, m[pwpunct_g], path, line, col + len(word), None,
                                       ""))
                continue
            if group == ident_g:
                if docs:
                    append((ident, m[ident_g], path, line, m.start() - base, None,
                                       "\n".join(docs)))
                    docs = []
                else:
                    append((ident, m[ident_g], path, line, m.start() - base, None,
                                       ""))
                continue
            if group == punct_g:
                if docs:
                    append((punct, m[punct_g], path, line, m.start() - base, None,
                                       "\n".join(docs)))
                    docs = []
                else:
                    append((punct, m[punct_g], path, line, m.start() - base, None,
                                       ""))
                continue
            if group == ws_g:
                start, end = m.span()
                count = count_nl("\n", start, end)
                if count:
                    line += count
                    base = rfind("\n", start, end)
                continue
            if group == ustr_g:
                # Unterminated at the end of its line: what the string branch below and
                # then the whitespace branch would do for the string and the newline.
                start = m.start()
                source = lines[line - 1]
                report(new(Diagnostic, (
                    new(Span, (path, line, start - base)), "unterminated string",
                    source.rstrip("\r") if source and source[-1] == "\r" else source)))
                text_ = m[ustr_g]
                if docs:
                    append((string_kind, text_, path, line, start - base,
                                       m[ubody_g], "\n".join(docs)))
                    docs = []
                else:
                    append((string_kind, text_, path, line, start - base,
                                       m[ubody_g], ""))
                line += 1
                base = start + len(text_)
                continue
            if group == npunct_g:
                start = m.start()
                digits = m[int_g]
                col = start - base
                if docs:
                    append((int_kind, digits, path, line, col, int(digits),
                                       "\n".join(docs)))
                    docs = []
                else:
                    append((int_kind, digits, path, line, col, int(digits), ""))
                append((punct, m[npunct_g], path, line, col + len(digits), None,
                                   ""))
                continue
            if group == int_g:
                digits = m[int_g]
                if docs:
                    append((int_kind, digits, path, line, m.start() - base,
                                       int(digits), "\n".join(docs)))
                    docs = []
                else:
                    append((int_kind, digits, path, line, m.start() - base,
                                       int(digits), ""))
                continue
            if group == run_g:
                col = m.start() - base
                run = m[run_g]
                first = 0
                if docs:
                    append((punct, run[0], path, line, col, None, "\n".join(docs)))
                    docs = []
                    first = 1
                if len(run) == 2:  # the commonest run: no comprehension
                    if not first:
                        append((punct, run[0], path, line, col, None, ""))
                    append((punct, run[1], path, line, col + 1, None, ""))
                    continue
                tokens.extend([(punct, ch, path, line, col + k, None, "")
                               for k, ch in enumerate(run[first:], first)])
                continue
            if group == string_g:
                # Inline for a string without escapes; an unterminated one (which every
                # line of a hostile file can be) is reported here too, cheaply.
                start = m.start()
                body = m[body_g]
                if "\\" in body:
                    self.line, self.line_start = line, base + 1
                    body = self.string(m)
                elif m[close_g] != '"':
                    source = lines[line - 1]
                    report(new(Diagnostic, (
                        new(Span, (path, line, start - base)), "unterminated string",
                        source.rstrip("\r") if source and source[-1] == "\r" else source)))
                if docs:
                    append((string_kind, m[string_g], path, line, start - base,
                                       body, "\n".join(docs)))
                    docs = []
                else:
                    append((string_kind, m[string_g], path, line, start - base,
                                       body, ""))
                continue
            if group == line_g:
                if text.startswith("///", m.start()) and not text.startswith("////", m.start()):
                    body = m.group()[3:].rstrip("\r")
                    docs.append(body[1:] if body.startswith(" ") else body)
                continue
            start = m.start()
            self.line, self.line_start = line, base + 1
            if group == _BLOCK_G:
                if m.group("closed") is None:
                    self.error(start, "unterminated block comment")
                end = m.end()
                count = count_nl("\n", start, end)
                if count:
                    line += count
                    base = rfind("\n", start, end)
                continue
            if group == _NUMBER_G:
                kind, value = self.number(m)
            else:
                bad = m.group()
                self.error(start, f"unexpected character {bad!r}" if len(bad) == 1 else
                           f"unexpected characters {_short(repr(bad[:50]))}")
                continue
            doc = ""
            if docs:
                doc = "\n".join(docs)
                docs = []
            append((kind, m.group(group), path, line, start - base, value, doc))
        doc = "\n".join(docs)
        self.line, self.line_start = line, base + 1
        append((Tok.EOF, "", path, line, len(text) - base, None, doc))

    def number(self, m: re.Match[str]) -> tuple[Tok, object]:
        start, end = m.span(_NUMBER_G)
        digits, suffix = m.group("digits"), m.group("suffix")
        is_float = m.group("frac") is not None or m.group("exp") is not None
        if end - start > MAX_NUMBER_LENGTH:
            what = "number" if is_float or suffix else "integer"
            self.error(start, f"{what} literal too long ({end - start} characters, at most"
                       f" {MAX_NUMBER_LENGTH})")
            return Tok.INT, None  # the parser skips the item without another message
        if suffix:
            if suffix in _DURATION_UNITS and not is_float:
                try:
                    seconds = int(digits) * _DURATION_UNITS[suffix]
                except OverflowError:  # more than ~309 digits: too large for a float
                    seconds = math.inf
                if math.isfinite(seconds):
                    return Tok.DURATION, seconds
                self.error(start, f"duration {m.group(_NUMBER_G)} is out of range")
            else:
                self.error(start, f"invalid number {_short(repr(m.group(_NUMBER_G)))}")
            return Tok.INT, 0
        if is_float:
            return Tok.FLOAT, float(digits)
        return Tok.INT, int(digits)

    def string(self, m: re.Match[str]) -> str:
        body = m.group("body")
        value = self.unescape(body, m.start("body")) if "\\" in body else body
        if m.group("close") != '"':
            self.error(m.start(), "unterminated string")
        return value

    def unescape(self, body: str, offset: int) -> str:
        """``body`` (a string's text between its quotes) with escapes decoded; bad ones are
        reported at their backslash (``offset`` is where ``body`` starts in the text)."""
        out: list[str] = []
        i, n = 0, len(body)
        while True:
            j = body.find("\\", i)
            if j < 0:
                out.append(body[i:])
                return "".join(out)
            out.append(body[i:j])
            nxt = body[j + 1] if j + 1 < n else ""
            if nxt in _ESCAPES and nxt:
                out.append(_ESCAPES[nxt])
                i = j + 2
                continue
            width = _HEX_WIDTH.get(nxt, 0)
            if width:
                m = _HEX_DIGITS.match(body, j + 2, j + 2 + width)
                assert m is not None
                digits = m.group()
                if len(digits) == width:
                    code = int(digits, 16)
                    if code <= 0x10FFFF and not 0xD800 <= code <= 0xDFFF:
                        out.append(chr(code))
                        i = j + 2 + width
                        continue
                self.error(offset + j, f"invalid escape '\\{nxt}{digits}' in string")
            else:
                self.error(offset + j, f"invalid escape '\\{nxt}' in string")
            i = j + 2


def tokenize(
    text: str, path: str = "<string>", lines: list[str] | None = None
) -> tuple[list[Token], list[Diagnostic]]:
    """Split ``text`` into tokens (always ending with an EOF token) and diagnostics.
    ``lines`` is ``text.split("\\n")`` when the caller already has it."""
    tokens, diagnostics = tokenize_raw(text, path, lines)
    return [_new_token(Token, t) for t in tokens], diagnostics


def tokenize_raw(
    text: str, path: str = "<string>", lines: list[str] | None = None
) -> tuple[list[RawToken], list[Diagnostic]]:
    """:func:`tokenize` with each token as a plain tuple of the :class:`Token` fields (what
    the parser reads: a plain tuple is built in half the time of a named one)."""
    lexer = _Lexer(text, path, lines)
    lexer.run()
    return lexer.tokens, lexer.diagnostics


def describe(tok: RawToken) -> str:
    """:meth:`Token.describe` of a raw token."""
    return _new_token(Token, tok).describe()


def span_of(tok: RawToken) -> Span:
    """:attr:`Token.span` of a raw token."""
    return _new_span(Span, (tok[2], tok[3], tok[4]))
