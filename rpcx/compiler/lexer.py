"""The lexer: source text to tokens with 1-based ``line:col`` positions.

Comments (``//`` to end of line, ``/* ... */``) are skipped. Doc comments (``///`` not
followed by a fourth ``/``) are collected and attached to the next token as ``doc``; the
parser moves them onto the declaration, field, enum member or method that token starts.

The lexer never raises on bad input: problems become diagnostics and lexing goes on.
"""

from __future__ import annotations

import enum
import itertools

import attrs

from rpcx.compiler.diagnostics import Diagnostic, Span

__all__ = ["Tok", "Token", "tokenize"]


class Tok(enum.Enum):
    IDENT = "identifier"
    INT = "integer"
    FLOAT = "float"
    STRING = "string"
    DURATION = "duration"
    PUNCT = "punctuation"
    EOF = "end of file"


# Longest first, so "->" wins over "-".
_PUNCT = ("->", ";", ":", ",", ".", "=", "(", ")", "{", "}", "<", ">", "[", "]", "?", "@", "-")

_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0}

_HEX = frozenset("0123456789abcdefABCDEF")

_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", '"': '"', "'": "'", "0": "\0"}


@attrs.frozen
class Token:
    kind: Tok
    text: str
    """The exact source text of the token."""
    span: Span
    value: object = None
    """INT: int; FLOAT: float; STRING: the unescaped str; DURATION: seconds as float."""
    doc: str = ""
    """Doc comments (``///``) immediately before this token, joined by newlines."""

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
        return _short(repr(self.text))


def _short(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _is_ident_start(ch: str) -> bool:
    return ch == "_" or ("a" <= ch <= "z") or ("A" <= ch <= "Z")


def _is_ident_char(ch: str) -> bool:
    return _is_ident_start(ch) or ("0" <= ch <= "9")


def _is_digit(ch: str) -> bool:
    return "0" <= ch <= "9"


class _Lexer:
    def __init__(self, text: str, path: str) -> None:
        self.text = text
        self.path = path
        self.lines = text.split("\n")
        self.pos = 0
        self.line = 1
        self.col = 1
        self.tokens: list[Token] = []
        self.diagnostics: list[Diagnostic] = []
        self.docs: list[str] = []

    def peek(self, offset: int = 0) -> str:
        i = self.pos + offset
        return self.text[i] if i < len(self.text) else ""

    def advance(self, count: int = 1) -> None:
        for _ in range(count):
            if self.pos >= len(self.text):
                return
            if self.text[self.pos] == "\n":
                self.line += 1
                self.col = 1
            else:
                self.col += 1
            self.pos += 1

    def span(self, line: int, col: int) -> Span:
        return Span(self.path, line, col)

    def error(self, span: Span, message: str) -> None:
        source = self.lines[span.line - 1] if 0 < span.line <= len(self.lines) else ""
        self.diagnostics.append(Diagnostic(span, message, source.rstrip("\r")))

    def emit(self, kind: Tok, start: int, span: Span, value: object = None) -> None:
        doc = "\n".join(self.docs)
        self.docs = []
        self.tokens.append(Token(kind, self.text[start : self.pos], span, value, doc))

    def run(self) -> None:
        while self.pos < len(self.text):
            ch = self.peek()
            if ch in " \t\r\n\f\v\ufeff":
                self.advance()
            elif ch == "/" and self.peek(1) == "/":
                self.line_comment()
            elif ch == "/" and self.peek(1) == "*":
                self.block_comment()
            elif _is_ident_start(ch):
                self.ident()
            elif _is_digit(ch):
                self.number()
            elif ch == '"':
                self.string()
            else:
                self.punct()
        self.emit(Tok.EOF, self.pos, self.span(self.line, self.col))

    def line_comment(self) -> None:
        start = self.pos
        while self.pos < len(self.text) and self.peek() != "\n":
            self.advance()
        body = self.text[start : self.pos].rstrip("\r")
        if body.startswith("///") and not body.startswith("////"):
            body = body[3:]
            if body.startswith(" "):
                body = body[1:]
            self.docs.append(body)

    def block_comment(self) -> None:
        span = self.span(self.line, self.col)
        self.advance(2)
        while self.pos < len(self.text):
            if self.peek() == "*" and self.peek(1) == "/":
                self.advance(2)
                return
            self.advance()
        self.error(span, "unterminated block comment")

    def ident(self) -> None:
        start, span = self.pos, self.span(self.line, self.col)
        while _is_ident_char(self.peek()):
            self.advance()
        self.emit(Tok.IDENT, start, span)

    def number(self) -> None:
        start, span = self.pos, self.span(self.line, self.col)
        is_float = False
        while _is_digit(self.peek()):
            self.advance()
        if self.peek() == "." and _is_digit(self.peek(1)):
            is_float = True
            self.advance()
            while _is_digit(self.peek()):
                self.advance()
        if self.peek() in ("e", "E") and (
            _is_digit(self.peek(1)) or (self.peek(1) in "+-" and _is_digit(self.peek(2)))
        ):
            is_float = True
            self.advance(2)
            while _is_digit(self.peek()):
                self.advance()
        number_end = self.pos
        while _is_ident_char(self.peek()):
            self.advance()
        suffix = self.text[number_end : self.pos]
        text = self.text[start : self.pos]
        digits = self.text[start:number_end]
        if suffix:
            if suffix in _DURATION_UNITS and not is_float:
                self.emit(Tok.DURATION, start, span, int(digits) * _DURATION_UNITS[suffix])
                return
            self.error(span, f"invalid number {_short(repr(text))}")
            self.emit(Tok.INT, start, span, 0)
            return
        if is_float:
            self.emit(Tok.FLOAT, start, span, float(digits))
        else:
            self.emit(Tok.INT, start, span, int(digits))

    def string(self) -> None:
        start, span = self.pos, self.span(self.line, self.col)
        self.advance()
        out: list[str] = []
        while True:
            ch = self.peek()
            if ch in ("", "\n"):
                self.error(span, "unterminated string")
                self.emit(Tok.STRING, start, span, "".join(out))
                return
            if ch == '"':
                self.advance()
                self.emit(Tok.STRING, start, span, "".join(out))
                return
            if ch == "\\":
                self.escape(out)
            else:
                out.append(ch)
                self.advance()

    def escape(self, out: list[str]) -> None:
        span = self.span(self.line, self.col)
        nxt = self.peek(1)
        if nxt in _ESCAPES:
            out.append(_ESCAPES[nxt])
            self.advance(2)
            return
        width = {"x": 2, "u": 4, "U": 8}.get(nxt, 0) if nxt else 0
        if width:
            digits = self.text[self.pos + 2 : self.pos + 2 + width]
            if len(digits) == width and all(c in _HEX for c in digits):
                code = int(digits, 16)
                if code <= 0x10FFFF and not 0xD800 <= code <= 0xDFFF:
                    out.append(chr(code))
                    self.advance(2 + width)
                    return
            shown = "".join(itertools.takewhile(lambda c: c in _HEX, digits))
            self.error(span, f"invalid escape '\\{nxt}{shown}' in string")
            self.advance(2)
            return
        if nxt in ("", "\n"):
            # Let the string loop report it as unterminated.
            self.advance()
            return
        self.error(span, f"invalid escape '\\{nxt}' in string")
        self.advance(2)

    def punct(self) -> None:
        start, span = self.pos, self.span(self.line, self.col)
        for p in _PUNCT:
            if self.text.startswith(p, self.pos):
                self.advance(len(p))
                self.emit(Tok.PUNCT, start, span)
                return
        ch = self.peek()
        self.error(span, f"unexpected character {ch!r}")
        self.advance()


def tokenize(text: str, path: str = "<string>") -> tuple[list[Token], list[Diagnostic]]:
    """Split ``text`` into tokens (always ending with an EOF token) and diagnostics."""
    lexer = _Lexer(text, path)
    lexer.run()
    return lexer.tokens, lexer.diagnostics
