"""Recursive-descent parser: tokens to a :mod:`rpcx.compiler.syntax` tree.

On a syntax error the parser records a diagnostic saying what it expected, then recovers:
inside a declaration body it skips to the next ``;`` (or to the body's ``}``), at the top
level to the next ``;``, balanced ``}`` or declaration keyword. So every error in a file is
reported, not only the first, and the parser never raises on bad input.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from rpcx.compiler import syntax as syn
from rpcx.compiler.diagnostics import Diagnostic, Span
from rpcx.compiler.lexer import RawToken, Tok, describe, span_of, tokenize_raw

_IDENT, _PUNCT, _INT, _FLOAT, _STRING = Tok.IDENT, Tok.PUNCT, Tok.INT, Tok.FLOAT, Tok.STRING
_EOF = Tok.EOF
_new_span = _new = tuple.__new__

_T = TypeVar("_T")

__all__ = ["parse"]

_DECL_KEYWORDS = frozenset({"enum", "struct", "union", "error", "service"})
_TOP_KEYWORDS = _DECL_KEYWORDS | {"package", "import"}
_MAX_DEPTH = 32
_VALUE_PUNCT = frozenset({"-", "[", "{"})
"""The punctuation a value can start with."""
_QUIET_TOKENS = 1
"""After a syntax error, an error at the very token where parsing resumes is not reported
(that token could not start anything either): one mistake gives one message, and a run of
junk such as ``;;;;`` cannot cost a diagnostic (and an exception) per token."""
"""Nesting limit for types and values, so hostile input cannot exhaust the stack."""


class _Sync(Exception):
    """Raised after a syntax error has been recorded: unwind to a recovery point."""


class _Parser:
    def __init__(self, tokens: list[RawToken], path: str, lines: list[str]) -> None:
        # Padded with copies of the EOF token so that peek(offset) needs no bounds check.
        self.toks = tokens + [tokens[-1]] * 4
        self.eof = len(tokens) - 1
        self.path = path
        self.lines = lines
        self.i = 0
        self.diagnostics: list[Diagnostic] = []
        self.messages: dict[tuple[str, str], str] = {}
        """``expected ..., found ...`` messages for punctuation, made once each."""
        self.quiet_until = -1
        """Syntax errors at tokens before this index are not reported: they follow another
        error too closely to say anything new (the parser is still resynchronising)."""

    # -- token helpers ---------------------------------------------------------------------

    def peek(self, offset: int = 0) -> RawToken:
        return self.toks[self.i + offset]  # offset is at most 3: see the padding

    def next(self) -> RawToken:
        tok = self.toks[self.i]
        if self.i < self.eof:
            self.i += 1
        return tok

    def at_eof(self) -> bool:
        return self.i >= self.eof

    def error(self, span: Span, message: str) -> None:
        lines, line = self.lines, span[1]
        source = lines[line - 1] if 0 < line <= len(lines) else ""
        self.diagnostics.append(_new_span(Diagnostic, (span, message, source.rstrip("\r"))))

    def fail(self, expected: str, tok: RawToken | None = None) -> _Sync:
        self.expected(expected, tok)
        return _Sync()

    def expected(self, expected: str, tok: RawToken | None = None) -> None:
        """Record ``expected EXPECTED, found TOKEN`` (unless quiet), without raising."""
        if self.i >= self.quiet_until:
            if tok is None:
                tok = self.toks[self.i]
            # error() inline; punctuation (at most two characters) describes itself as
            # its repr, as Token.describe() would say.
            lines, line = self.lines, tok[3]
            source = lines[line - 1] if 0 < line <= len(lines) else ""
            message = self.messages.get((expected, tok[1])) if tok[0] is _PUNCT else None
            if message is None:
                message = self.expected_message(expected, tok)
            self.diagnostics.append(_new(Diagnostic, (
                _new(Span, (tok[2], line, tok[4])), message,
                source.rstrip("\r") if source and source[-1] == "\r" else source)))

    def expected_message(self, expected: str, tok: RawToken) -> str:
        """``expected EXPECTED, found TOKEN``; remembered for punctuation (punctuation, at
        most two characters, describes itself as its repr, as Token.describe() says)."""
        if tok[0] is _PUNCT:
            message = self.messages[(expected, tok[1])] = f"expected {expected}, found {tok[1]!r}"
            return message
        return f"expected {expected}, found {describe(tok)}"

    @property
    def quiet(self) -> bool:
        return self.i < self.quiet_until

    def recovered(self) -> None:
        """Called where parsing resumes after a syntax error."""
        self.quiet_until = self.i + _QUIET_TOKENS

    def accept_punct(self, text: str) -> RawToken | None:
        # Only a PUNCT token can have punctuation as its text (identifiers start with a
        # letter, numbers with a digit, strings with a quote, EOF is empty), so comparing
        # the text is enough.
        tok = self.toks[self.i]
        if tok[1] == text:
            self.i += 1
            return tok
        return None

    def expect_punct(self, text: str, context: str = "") -> RawToken:
        tok = self.toks[self.i]
        if tok[1] == text:  # see accept_punct
            self.i += 1
            return tok
        raise self.fail(f"{text!r}" + (f" {context}" if context else ""))

    def expect_name(self, what: str) -> syn.Name:
        tok = self.toks[self.i]
        if tok[0] is not _IDENT:
            raise self.fail(what)
        self.i += 1  # an IDENT is never the EOF token
        return _new(syn.Name, (tok[1], _new_span(Span, (tok[2], tok[3], tok[4]))))

    def qualified_name(self, what: str) -> tuple[syn.Name, ...]:
        first = self.expect_name(what)
        toks = self.toks
        if toks[self.i][1] != ".":
            return (first,)
        parts = [first]
        while toks[self.i][1] == "." and toks[self.i + 1][0] is _IDENT:
            self.i += 1
            parts.append(self.expect_name(what))
        return tuple(parts)

    def docs_since(self, start: int) -> str:
        toks = self.toks
        found = ""
        more: list[str] | None = None
        for k in range(start, self.i + 1):  # a loop, not a comprehension: no extra frame
            doc = toks[k][6]  # Token.doc
            if doc:
                if not found:
                    found = doc
                elif more is None:
                    more = [found, doc]
                else:
                    more.append(doc)
        return found if more is None else "\n".join(more)

    def at_decl_start(self) -> bool:
        """A declaration keyword followed by a name and ``{``: a new top-level declaration."""
        toks, i = self.toks, self.i
        return (
            toks[i][1] in _DECL_KEYWORDS  # only an IDENT can have such a text
            and toks[i + 1][0] is _IDENT
            and toks[i + 2][1] == "{"
        )

    # -- recovery --------------------------------------------------------------------------

    def sync_member(self) -> None:
        """Skip to just after the next ``;`` or to the ``}`` that closes the current body."""
        # Indexes the token list and compares texts (punctuation and keyword texts are
        # unique to their kinds), one step per token without a method call.
        toks, i, eof, keywords = self.toks, self.i, self.eof, _DECL_KEYWORDS
        depth = 0
        while i < eof:
            text = toks[i][1]
            if depth == 0:
                if text in keywords and toks[i + 1][0] is _IDENT and toks[i + 2][1] == "{":
                    break  # at_decl_start
                if text == "}":
                    break
                if text == ";":
                    i += 1
                    break
                if text == "{":
                    depth = 1
            elif text == "{":
                depth += 1
            elif text == "}":
                depth -= 1
            i += 1
        self.i = i

    def sync_top_fast(self) -> None:
        """Skip to the next token that can start a top-level item."""
        toks, i, eof = self.toks, self.i, self.eof
        while i < eof:
            tok = toks[i]
            if tok[0] is Tok.IDENT and tok[1] in _TOP_KEYWORDS:
                break
            if tok[1] == "@" and tok[0] is Tok.PUNCT and toks[i + 1][0] is Tok.IDENT:
                break
            i += 1
        self.i = i

    def sync_top(self) -> None:
        toks, i, eof = self.toks, self.i, self.eof
        if i < self.quiet_until:
            # Resynchronising again right after an error: skip to something that is
            # certainly a new top-level item.
            while i < eof:
                text = toks[i][1]
                if text == "package" or text == "import" or (
                    text in _DECL_KEYWORDS and toks[i + 1][0] is _IDENT
                    and toks[i + 2][1] == "{"
                ):
                    break
                i += 1
            self.i = i
            return
        depth = 0
        while i < eof:
            text = toks[i][1]  # keywords and punctuation: the text decides the kind
            if depth == 0 and (text in _TOP_KEYWORDS or (
                text == "@" and toks[i + 1][0] is _IDENT
            )):
                break
            i += 1
            if text == "{":
                depth += 1
            elif text == "}":
                depth = max(depth - 1, 0)
                if depth == 0:
                    break
            elif text == ";" and depth == 0:
                break
        self.i = i

    # -- file ------------------------------------------------------------------------------

    def parse_file(self) -> syn.FileNode:
        package: syn.Package | None = None
        imports: list[syn.Import] = []
        decls: list[syn.Decl] = []
        seen_other = False
        toks = self.toks
        while self.i < self.eof:  # not at_eof()
            start = self.i
            tok = toks[start]
            text = tok[1]
            if text not in _TOP_KEYWORDS and not (text == "@" and toks[start + 1][0] is _IDENT):
                # Not the start of anything: one error for the whole run of such tokens.
                seen_other = True
                self.expected("a declaration (enum, struct, union, error or service)")
                self.next()
                self.sync_top_fast()
                self.recovered()
                continue
            try:
                found = self.annotations_or_none() if text == "@" else ()
                if found is None:
                    i = self.i
                    if not (i >= self.quiet_until and toks[i][1] == "@"
                            and toks[i + 1][0] is _IDENT):
                        self.sync_top()  # (which would stop at once at such an '@')
                    self.quiet_until = self.i + _QUIET_TOKENS  # recovered()
                    if self.i == start:
                        self.next()
                    continue
                annotations = found
                tok = toks[self.i]
                text = tok[1]  # (only an identifier can have a keyword as its text)
                if text in _DECL_KEYWORDS:
                    seen_other = True
                    decls.append(self.decl(start, annotations))
                    if self.i == start:
                        self.next()  # (cannot happen: the keyword was consumed)
                    continue
                if tok[0] is _IDENT and (tok[1] == "package" or tok[1] == "import"):
                    for ann in annotations:
                        self.error(ann.span, f"annotations cannot be applied to {tok[1]!r}")
                if tok[0] is _IDENT and tok[1] == "package":
                    pkg = self.package()
                    if package is not None:
                        self.error(pkg.span, "duplicate 'package' declaration")
                    else:
                        if seen_other:
                            self.error(pkg.span, "'package' must be the first declaration")
                        package = pkg
                elif tok[0] is _IDENT and tok[1] == "import":
                    seen_other = True
                    imports.append(self.import_())
                elif tok[0] is Tok.IDENT and tok[1] in _DECL_KEYWORDS:
                    seen_other = True
                    decls.append(self.decl(start, annotations))
                else:
                    seen_other = True
                    raise self.fail("a declaration (enum, struct, union, error or service)")
            except _Sync:
                self.sync_top()
                self.recovered()
            if self.i == start:
                self.next()  # always make progress
        if package is None:
            self.error(Span(self.path, 1, 1), "missing 'package' declaration")
        return _new(syn.FileNode, (self.path, package, tuple(imports), tuple(decls)))

    def package(self) -> syn.Package:
        kw = self.next()
        name = self.qualified_name("a package name")
        self.expect_punct(";", "after package name")
        return _new(syn.Package, (name, span_of(kw)))

    def import_(self) -> syn.Import:
        kw = self.next()
        tok = self.peek()
        if tok[0] is not Tok.STRING:
            raise self.fail("a file name string after 'import'")
        self.next()
        self.expect_punct(";", "after import")
        assert isinstance(tok[5], str)
        return _new(syn.Import, (tok[5], span_of(tok), span_of(kw)))

    # -- annotations -----------------------------------------------------------------------

    def annotations(self) -> tuple[syn.Annotation, ...]:
        if self.toks[self.i][1] != "@":
            return ()
        found = self.annotations_or_none()
        if found is None:
            raise _Sync()
        return found

    def annotations_or_none(self) -> tuple[syn.Annotation, ...] | None:
        """:meth:`annotations`, but None instead of raising :class:`_Sync` when an argument
        list opens with a token that cannot start a value (the error is recorded, and the
        parser stays at that token, as when :meth:`value` raises there): a run of junk such
        as ``@a(@a(@a(`` then costs no exception per item."""
        # A local token index and tuple indexing; self.i is brought up to date before any
        # call that reads it (errors are reported at self.i).
        toks = self.toks
        i = self.i
        if toks[i][1] != "@":
            return ()
        out: list[syn.Annotation] = []
        while toks[i][1] == "@":
            at = toks[i]
            tok = toks[i + 1]  # expect_name, inline
            if tok[0] is not _IDENT:
                self.i = i + 1
                raise self.fail("an annotation name after '@'")
            i += 2
            name_tok = tok  # its syn.Name is made below, once the annotation is complete
            args: list[syn.Value] = []
            has_parens = False
            if toks[i][1] == "(":
                i += 1
                has_parens = True
                tok = toks[i]
                if tok[1] != ")":
                    kind = tok[0]
                    self.i = i
                    if (kind is _PUNCT and tok[1] not in _VALUE_PUNCT) or kind is _EOF:
                        # What value(0) would report and raise. This is the path of a run
                        # of junk such as @a(@a(: expected("a value") inline.
                        if i >= self.quiet_until:
                            line, lines = tok[3], self.lines
                            source = lines[line - 1] if 0 < line <= len(lines) else ""
                            message = (self.messages.get(("a value", tok[1]))
                                       if kind is _PUNCT else None)
                            if message is None:
                                message = self.expected_message("a value", tok)
                            self.diagnostics.append(_new(Diagnostic, (
                                _new(Span, (tok[2], line, tok[4])), message,
                                source.rstrip("\r") if source and source[-1] == "\r"
                                else source)))
                        return None
                    args.append(self.value(0))
                    while toks[self.i][1] == ",":
                        self.i += 1
                        args.append(self.value(0))
                    i = self.i
                if toks[i][1] != ")":
                    self.i = i
                    raise self.fail("')' to close annotation arguments")
                i += 1
            name = _new(syn.Name, (name_tok[1], _new(Span, (name_tok[2], name_tok[3],
                                                            name_tok[4]))))
            out.append(_new(syn.Annotation, (name, tuple(args), has_parens,
                                             _new(Span, (at[2], at[3], at[4])))))
        self.i = i
        return tuple(out)

    # -- declarations ----------------------------------------------------------------------

    def decl(self, start: int, annotations: tuple[syn.Annotation, ...]) -> syn.Decl:
        toks = self.toks
        i = self.i
        kw = toks[i]
        tok = toks[i + 1]
        if tok[0] is not _IDENT:
            self.i = i + 1  # past the keyword, not the EOF token
            raise self.fail(f"a name after {kw[1]!r}")
        i += 2
        self.i = i
        name = _new(syn.Name, (tok[1], _new_span(Span, (tok[2], tok[3], tok[4]))))
        if i - start == 2 and not (kw[6] or tok[6] or toks[i][6]):
            doc = ""  # what docs_since(start) finds in these three tokens
        else:
            doc = self.docs_since(start)
        first = toks[start]
        span = _new_span(Span, (first[2], first[3], first[4]))
        if toks[i][1] != "{":
            raise self.fail(f"'{{' to open {kw[1]} {name.text!r}")
        self.i += 1
        if kw[1] == "enum":
            members, reserved = self.enum_body()
            return _new(syn.EnumDecl, (name, members, reserved, annotations, doc, span))
        if kw[1] == "service":
            methods = self.service_body()
            return _new(syn.ServiceDecl, (name, methods, annotations, doc, span))
        fields, reserved = self.struct_body()
        return _new(syn.StructDecl, (kw[1], name, fields, reserved, annotations, doc, span))

    def close_body(self) -> None:
        tok = self.toks[self.i]
        if tok[1] == "}":  # only a PUNCT token has this text; never the EOF token
            self.i += 1
        else:
            self.error(span_of(tok), f"expected '}}', found {describe(tok)}")

    def body_done(self) -> bool:
        toks, i = self.toks, self.i
        tok = toks[i]
        return (i >= self.eof or tok[1] == "}" or (
            tok[1] in _DECL_KEYWORDS and toks[i + 1][0] is _IDENT
            and toks[i + 2][1] == "{"))

    def body_items(
        self, item: Callable[[int, tuple[syn.Annotation, ...]], _T],
    ) -> tuple[tuple[_T, ...], tuple[syn.ReservedRange, ...]]:
        """The members of a ``{ ... }`` body (fields or enum members, and ``reserved``
        lines), recovering after each bad one; ``item(start, annotations)`` parses one."""
        items: list[_T] = []
        reserved: list[syn.ReservedRange] = []
        while not self.body_done():
            start = self.i
            if start < self.quiet_until and self.toks[start][1] == ";":
                self.i += 1  # a stray ';' just after an error
                self.recovered()
                continue
            try:
                annotations = self.annotations() if self.toks[start][1] == "@" else ()
                if self.toks[self.i][1] == "reserved":
                    reserved.extend(self.reserved(annotations))
                else:
                    items.append(item(start, annotations))
            except _Sync:
                self.sync_member()
                self.recovered()
            if self.i == start:
                self.next()
        self.close_body()
        return tuple(items), tuple(reserved)

    def struct_body(self) -> tuple[tuple[syn.Field, ...], tuple[syn.ReservedRange, ...]]:
        """:meth:`body_items` with fields as the items, the loop written out (a struct body
        is the commonest body, and a field the commonest item)."""
        toks = self.toks
        items: list[syn.Field] = []
        reserved: list[syn.ReservedRange] = []
        field = self.field
        while True:
            start = self.i
            tok = toks[start]
            text = tok[1]
            if start >= self.eof or text == "}" or (  # body_done()
                text in _DECL_KEYWORDS and toks[start + 1][0] is _IDENT
                and toks[start + 2][1] == "{"
            ):
                break
            if start < self.quiet_until and text == ";":
                self.i += 1  # a stray ';' just after an error
                self.recovered()
                continue
            try:
                annotations = self.annotations() if text == "@" else ()
                if toks[self.i][1] == "reserved":
                    reserved.extend(self.reserved(annotations))
                else:
                    item = field(start, annotations, "field")
                    if toks[self.i][1] != ";":
                        raise self.fail("';' after field")
                    self.i += 1
                    items.append(item)
            except _Sync:
                self.sync_member()
                self.recovered()
            if self.i == start:
                self.next()
        self.close_body()
        return tuple(items), tuple(reserved)

    def reserved(self, annotations: tuple[syn.Annotation, ...]) -> list[syn.ReservedRange]:
        for ann in annotations:
            self.error(ann.span, "annotations cannot be applied to 'reserved'")
        self.next()
        out = [self.reserved_range()]
        while self.accept_punct(","):
            out.append(self.reserved_range())
        self.expect_punct(";", "after reserved")
        return out

    def reserved_range(self) -> syn.ReservedRange:
        low, span = self.integer("an integer after 'reserved'")
        high = low
        if self.peek()[0] is _IDENT and self.peek()[1] == "to":
            self.next()
            high, _ = self.integer("an integer after 'to'")
        return _new(syn.ReservedRange, (low, high, span))

    def integer(self, what: str) -> tuple[int, Span]:
        """An integer with an optional leading ``-``."""
        tok = num = self.toks[self.i]
        sign = 1
        if tok[1] == "-":
            self.i += 1
            sign = -1
            num = self.toks[self.i]
        if num[0] is not _INT:
            raise self.fail(what, num)
        value = num[5]
        if value is None:
            raise _Sync()  # too long: the lexer has reported it
        self.i += 1
        assert isinstance(value, int)
        return (value if sign == 1 else -value), _new_span(Span, (tok[2], tok[3], tok[4]))

    def field(
        self, start: int, annotations: tuple[syn.Annotation, ...], what: str
    ) -> syn.Field:
        # The commonest shapes (a plain integer tag, a one-word type, no docs) are parsed
        # inline with a local index; anything else goes through the general methods, with
        # self.i brought up to date first (errors are reported at self.i).
        toks = self.toks
        i = self.i
        tok = toks[i]
        if tok[0] is _INT and tok[5] is not None:
            tag = tok[5]
            tag_span = _new_span(Span, (tok[2], tok[3], tok[4]))
            span = tag_span if i == start else None  # the field's span is its first token's
            i += 1
            assert isinstance(tag, int)
        else:
            span = None
            tag, tag_span = self.integer(f"a {what} tag (an integer)")
            i = self.i
        if toks[i][1] != ":":
            self.i = i
            raise self.fail(f"':' after {what} tag")
        tok = toks[i + 1]
        if tok[0] is not _IDENT:
            self.i = i + 1
            raise self.fail(f"a {what} name")
        i += 2
        name = _new(syn.Name, (tok[1], _new_span(Span, (tok[2], tok[3], tok[4]))))
        if i - start == 3 and not (toks[start][6] or toks[start + 1][6] or tok[6]
                                   or toks[i][6]):
            doc = ""  # what docs_since(start) finds in these four tokens
        else:
            self.i = i
            doc = self.docs_since(start)
        if toks[i][1] != ":":
            self.i = i
            raise self.fail(f"':' after {what} name")
        i += 1
        tok = toks[i]
        after = toks[i + 1][1]
        if tok[0] is _IDENT and after != "<" and after != "." and tok[1] != "stream":
            # type_(0) for a one-word type: no arguments, not qualified.
            type_span = _new_span(Span, (tok[2], tok[3], tok[4]))
            type_name = (_new(syn.Name, (tok[1], type_span)),)
            if after == "?":
                i += 2
                type_ = _new(syn.TypeNode, (type_name, (), True, type_span))
            else:
                i += 1
                type_ = _new(syn.TypeNode, (type_name, (), False, type_span))
        else:
            self.i = i
            type_ = self.type_(0)
            i = self.i
        default: syn.Value | None = None
        if toks[i][1] == "=":
            tok = toks[i + 1]
            kind = tok[0]
            if kind is _IDENT and toks[i + 2][1] != "." and tok[1] not in _WORD_LITERALS:
                # value(0) for a one-word name (an enum member), inline
                value_span = _new_span(Span, (tok[2], tok[3], tok[4]))
                default = _new(syn.NameValue, ((_new(syn.Name, (tok[1], value_span)),),
                                               value_span))
                self.i = i = i + 2
            elif kind is _STRING or (kind is _INT and tok[5] is not None):
                # value(0) for a string or a plain integer, inline
                literal_kind = "string" if kind is _STRING else "int"
                default = _new(syn.Literal, (literal_kind, tok[5], tok[1],
                                             _new_span(Span, (tok[2], tok[3], tok[4]))))
                self.i = i = i + 2
            else:
                self.i = i + 1
                default = self.value(0)
                i = self.i
        else:
            self.i = i
        if span is None:
            first = toks[start]
            span = _new_span(Span, (first[2], first[3], first[4]))
        return _new(syn.Field, (tag, tag_span, name, type_, default, annotations, doc, span))

    def enum_body(self) -> tuple[tuple[syn.EnumMember, ...], tuple[syn.ReservedRange, ...]]:
        def one(start: int, annotations: tuple[syn.Annotation, ...]) -> syn.EnumMember:
            name = self.expect_name("an enum member name")
            doc = self.docs_since(start)
            self.expect_punct("=", "after enum member name")
            value, value_span = self.integer("an integer value for the enum member")
            self.expect_punct(";", "after enum member")
            return _new(syn.EnumMember, (name, value, value_span, annotations, doc,
                                  span_of(self.toks[start])))

        return self.body_items(one)

    def service_body(self) -> tuple[syn.Method, ...]:
        toks = self.toks
        methods: list[syn.Method] = []
        method = self.method
        while True:
            start = self.i
            text = toks[start][1]
            if start >= self.eof or text == "}" or (  # body_done()
                text in _DECL_KEYWORDS and toks[start + 1][0] is _IDENT
                and toks[start + 2][1] == "{"
            ):
                break
            if start < self.quiet_until and text == ";":
                self.i += 1  # a stray ';' just after an error
                self.recovered()
                continue
            try:
                methods.append(method(start))
            except _Sync:
                self.sync_member()
                self.recovered()
            if self.i == start:
                self.next()
        self.close_body()
        return tuple(methods)

    def method(self, start: int) -> syn.Method:
        # Punctuation and keyword texts belong to one token kind each, so comparing a
        # token's text says what is_punct()/is_word() would.
        toks = self.toks
        annotations = self.annotations() if toks[self.i][1] == "@" else ()
        oneway_span = None
        i = self.i
        tok = toks[i]
        if tok[1] == "oneway" and toks[i + 1][0] is _IDENT:
            oneway_span = _new_span(Span, (tok[2], tok[3], tok[4]))
            i += 1
            tok = toks[i]
        if tok[0] is not _IDENT:
            self.i = i
            raise self.fail("a method name")
        i += 1
        self.i = i
        name = _new(syn.Name, (tok[1], _new_span(Span, (tok[2], tok[3], tok[4]))))
        # Without annotations, docs_since(start) looks at just these two tokens.
        doc = "" if i - start == 1 and not (tok[6] or toks[i][6]) else self.docs_since(start)
        if toks[i][1] != "(":
            raise self.fail("'(' after method name")
        self.i = i + 1
        params: list[syn.Field] = []
        field = self.field
        while toks[self.i][1] != ")":
            params.append(field(self.i, self.annotations() if toks[self.i][1] == "@" else (),
                                "parameter"))
            if toks[self.i][1] != ",":
                break
            self.i += 1
        if toks[self.i][1] != ")":
            raise self.fail("')' after parameters")
        self.i += 1
        result = None
        if toks[self.i][1] == "->":
            i = self.i + 1
            tok = toks[i]
            after = toks[i + 1][1]
            if tok[0] is _IDENT and after != "<" and after != "." and tok[1] != "stream":
                # type_(0) for a one-word type, inline (as in field())
                type_span = _new_span(Span, (tok[2], tok[3], tok[4]))
                type_name = (_new(syn.Name, (tok[1], type_span)),)
                optional = after == "?"
                result = _new(syn.TypeNode, (type_name, (), optional, type_span))
                self.i = i + 2 if optional else i + 1
            else:
                self.i = i
                result = self.type_(0)
        throws: list[syn.TypeNode] = []
        throws_span = None
        tok = toks[self.i]
        if tok[1] == "throws":
            self.i += 1
            throws_span = _new_span(Span, (tok[2], tok[3], tok[4]))
            throws.append(self.type_(0))
            while toks[self.i][1] == ",":
                self.i += 1
                throws.append(self.type_(0))
        if toks[self.i][1] != ";":
            raise self.fail("';' after method")
        self.i += 1
        first = toks[start]
        return _new(syn.Method, (
            name,
            tuple(params),
            result,
            tuple(throws),
            oneway_span is not None,
            oneway_span,
            throws_span,
            annotations,
            doc,
            _new_span(Span, (first[2], first[3], first[4])),
        ))

    # -- types and values ------------------------------------------------------------------

    def type_(self, depth: int) -> syn.TypeNode:
        toks = self.toks
        tok = toks[self.i]
        if tok[0] is not _IDENT:
            raise self.fail("a type")
        span = _new_span(Span, (tok[2], tok[3], tok[4]))
        if depth > _MAX_DEPTH:
            self.error(span, "type nested too deeply")
            raise _Sync()
        text = tok[1]
        if text == "stream" and toks[self.i + 1][0] is _IDENT:
            # ``stream T``: a method's streamed parameter or result (the checker says
            # where it may appear); a type named ``stream`` is never followed by a name.
            self.i += 1
            inner = self.type_(depth + 1)
            return _new(syn.TypeNode, ((_new(syn.Name, (text, span)),), (inner,), False, span))
        if (text == "list" or text == "map") and toks[self.i + 1][1] == "<":
            name: tuple[syn.Name, ...] = (_new(syn.Name, (text, span)),)
            self.i += 2
            first = self.type_(depth + 1)
            if text == "map":
                self.expect_punct(",", "between map key and value types")
                args: tuple[syn.TypeNode, ...] = (first, self.type_(depth + 1))
            else:
                args = (first,)
            if toks[self.i][1] != ">":
                raise self.fail(f"'>' to close {text!r} type")
            self.i += 1
        else:
            args = ()
            if toks[self.i + 1][1] == ".":
                name = self.qualified_name("a type")
            else:
                self.i += 1
                name = (_new(syn.Name, (text, span)),)
        if toks[self.i][1] == "?":
            self.i += 1
            return _new(syn.TypeNode, (name, args, True, span))
        return _new(syn.TypeNode, (name, args, False, span))

    def value(self, depth: int) -> syn.Value:
        toks = self.toks
        tok = toks[self.i]
        kind = tok[0]
        if depth > _MAX_DEPTH:
            self.error(span_of(tok), "value nested too deeply")
            raise _Sync()
        if kind is _PUNCT:
            text = tok[1]
            if text == "-":
                num = toks[self.i + 1]
                if num[0] is _INT or num[0] is _FLOAT:
                    if num[5] is None:
                        raise _Sync()  # a number too long to convert: the lexer reported it
                    self.i += 2
                    assert isinstance(num[5], int | float)
                    return _new(syn.Literal, ("int" if num[0] is _INT else "float", -num[5],
                                       "-" + num[1], span_of(tok)))
                raise self.fail("a number after '-'", num)
            if text == "[":
                self.i += 1
                items: list[syn.Value] = []
                while toks[self.i][1] != "]":
                    items.append(self.value(depth + 1))
                    if toks[self.i][1] != ",":
                        break
                    self.i += 1
                self.expect_punct("]", "to close list")
                return _new(syn.ListValue, (tuple(items), span_of(tok)))
            if text == "{":
                self.i += 1
                entries: list[tuple[syn.Value, syn.Value]] = []
                while toks[self.i][1] != "}":
                    key = self.value(depth + 1)
                    self.expect_punct(":", "after map key")
                    entries.append((key, self.value(depth + 1)))
                    if toks[self.i][1] != ",":
                        break
                    self.i += 1
                self.expect_punct("}", "to close map")
                return _new(syn.MapValue, (tuple(entries), span_of(tok)))
            raise self.fail("a value")
        if kind is _IDENT:
            text = tok[1]
            if text == "true" or text == "false":
                self.i += 1
                return _new(syn.Literal, ("bool", text == "true", text, span_of(tok)))
            if text == "null":
                self.i += 1
                return _new(syn.Literal, ("null", None, text, span_of(tok)))
            return _new(syn.NameValue, (self.qualified_name("a value"), span_of(tok)))
        if kind is _INT or kind is _FLOAT or kind is _STRING:
            if tok[5] is None and kind is _INT:
                raise _Sync()  # a number too long to convert: the lexer has reported it
            self.i += 1
            literal_kind = "int" if kind is _INT else "float" if kind is _FLOAT else "string"
            return _new(syn.Literal, (literal_kind, tok[5], tok[1], span_of(tok)))
        if kind is Tok.DURATION:
            self.i += 1
            assert isinstance(tok[5], float)
            return _new(syn.DurationValue, (tok[5], tok[1], span_of(tok)))
        raise self.fail("a value")


_WORD_LITERALS = frozenset({"true", "false", "null"})
"""The identifiers value() reads as literals, not names."""


def parse(text: str, path: str = "<string>") -> tuple[syn.FileNode, list[Diagnostic]]:
    """Parse one file. Never raises on bad input; problems come back as diagnostics."""
    tree, diagnostics, _ = parse_with_lines(text, path)
    return tree, diagnostics


def parse_with_lines(
    text: str, path: str = "<string>"
) -> tuple[syn.FileNode, list[Diagnostic], list[str]]:
    """:func:`parse`, and also ``text.split("\\n")`` (split once for the lexer, the parser
    and the checker: a hostile file can have a million lines)."""
    lines = text.split("\n")
    tokens, diagnostics = tokenize_raw(text, path, lines)
    parser = _Parser(tokens, path, lines)
    tree = parser.parse_file()
    diagnostics += parser.diagnostics
    return tree, diagnostics, lines
