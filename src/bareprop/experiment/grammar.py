"""The ``--arch`` grammar: any Sequential in one command-line string, parsed without eval.

    conv(32,3,padding=1) relu maxpool(2) flatten linear(128) relu dropout(0.5) linear(10)

One whitespace-separated call per layer:

    arch  := call+
    call  := NAME [ "(" [ arg ("," arg)* [","] ] ")" ]
    arg   := [ NAME "=" ] value
    value := NUMBER | True | False | None | true | false | WORD | 'text' | "text" | "(" NUMBER "," NUMBER ")"

A tokenizer and a recursive-descent parser written here: the string is data, never
code (no eval, no ast.literal_eval). Every error is one ConfigError line with the
character position (from 0) and the layer number (from 1).

Not here: what the names mean (arch.py, from the layer catalog).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from ..errors import ConfigError

# -- tokens ---------------------------------------------------------------------------

_TOKEN = re.compile(r"""
    (?P<space>\s+)
  | (?P<number>[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<string>'[^']*'|"[^"]*")
  | (?P<punct>[(),=])
""", re.VERBOSE)
#: Python's spellings, and JSON's lower-case booleans (``bidirectional=true``)
_WORDS = {"True": True, "False": False, "None": None, "true": True, "false": False}


@dataclass(frozen=True)
class Token:
    kind: str        # number, name, string, punct, end
    text: str
    pos: int         # character offset in the arch string


def tokenize(text: str) -> list[Token]:
    """The tokens of ``text``, whitespace dropped, ending with an ``end`` token."""
    tokens, pos = [], 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            ch = text[pos]
            what = ("an unterminated string" if ch in "'\"" else f"unexpected character {ch!r}")
            raise ConfigError(f"--arch: {what} at character {pos}")
        if m.lastgroup != "space":
            tokens.append(Token(m.lastgroup, m.group(), pos))
        pos = m.end()
    tokens.append(Token("end", "", len(text)))
    return tokens


# -- parse ----------------------------------------------------------------------------

@dataclass(frozen=True)
class Call:
    """One layer as written: ``name(args, key=value)``, with where it stands."""

    name: str
    index: int                   # 1-based layer number
    start: int                   # character span in the arch string
    end: int
    args: tuple = ()             # ((value, pos), ...)
    kwargs: dict = field(default_factory=dict)   # key -> (value, pos of "key=")
    text: str = ""               # the call as typed, e.g. "conv(32,3,padding=1)"

    def where(self, pos: int | None = None) -> str:
        return f"at character {self.start if pos is None else pos} (layer {self.index})"


class _Parser:
    def __init__(self, text: str):
        self.text, self.tokens, self.i = text, tokenize(text), 0

    @property
    def tok(self) -> Token:
        return self.tokens[self.i]

    def take(self) -> Token:
        t = self.tokens[self.i]
        self.i += t.kind != "end"           # the end token is never passed
        return t

    def fail(self, t: Token, wanted: str, layer: int) -> ConfigError:
        got = "the end of the string" if t.kind == "end" else repr(t.text)
        return ConfigError(f"--arch: expected {wanted}, got {got} at character {t.pos} "
                           f"(layer {layer})")

    def calls(self) -> list[Call]:
        calls = []
        while self.tok.kind != "end":
            calls.append(self.call(len(calls) + 1))
        return calls

    def call(self, index: int) -> Call:
        t = self.take()
        if t.kind != "name":
            raise self.fail(t, "a layer name such as conv, linear or relu", index)
        args, kwargs = [], {}
        if self.tok.text == "(":
            self.take()
            while self.tok.text != ")":
                key = None
                if self.tok.kind == "name" and self.tokens[self.i + 1].text == "=":
                    key = self.take()
                    self.take()
                    if key.text in kwargs:
                        raise ConfigError(f"--arch: {t.text} got {key.text}= twice at "
                                          f"character {key.pos} (layer {index})")
                elif kwargs:
                    raise ConfigError(f"--arch: a positional argument after keyword arguments "
                                      f"at character {self.tok.pos} (layer {index})")
                pos = self.tok.pos if key is None else key.pos    # where the argument starts
                value = self.value(index)
                if key is None:
                    args.append((value, pos))
                else:
                    kwargs[key.text] = (value, pos)
                if self.tok.text == ",":
                    self.take()
                elif self.tok.text != ")":
                    raise self.fail(self.tok, "',' or ')'", index)
            self.take()
        end = self.tokens[self.i - 1]
        stop = end.pos + len(end.text)
        return Call(t.text, index, t.pos, stop, tuple(args), kwargs, self.text[t.pos:stop])

    def value(self, index: int):
        t = self.take()
        if t.kind == "number":
            return _number(t)
        if t.kind == "string":
            return t.text[1:-1]
        if t.kind == "name":
            return _WORDS.get(t.text, t.text)
        if t.text == "(":                                   # a pair: (3, 5)
            first = self.take()
            comma = self.take()
            second = self.take()
            close = self.take()
            if not (first.kind == second.kind == "number" and comma.text == ","
                    and close.text == ")"):
                raise ConfigError(f"--arch: a pair is two numbers such as (3,5), at character "
                                  f"{t.pos} (layer {index})")
            return (_number(first), _number(second))
        raise self.fail(t, "a value (a number, True/False, a word or a pair)", index)


def _number(tok):
    """The value of a number token; ConfigError (with its position) for one Python cannot
    hold (an integer of more than 4,300 digits)."""
    text = tok.text
    try:
        return float(text) if any(c in text for c in ".eE") else int(text)
    except ValueError:
        raise ConfigError(f"--arch: the number at character {tok.pos} is too long "
                          f"({len(text)} characters)") from None


def parse(text: str) -> list[Call]:
    """The calls of an arch string; ConfigError (one line, with the position) if malformed."""
    if not isinstance(text, str) or not text.strip():
        raise ConfigError("--arch is empty: give layers such as "
                          "'conv(32,3) relu maxpool(2) flatten linear(10)'")
    return _Parser(text).calls()
