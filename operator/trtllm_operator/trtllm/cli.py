"""The shape of a command-line table, and a checker that parses an argv the way argparse/click would.

A :class:`Command` lists every option of one TensorRT-LLM tool (or subcommand) with its type and
choices; :func:`check_argv` says what the real parser would reject in an argv (unknown option,
value not among the choices, not an int, missing value, missing required option, unknown
subcommand), with the parser's own wording where it matters to a user. :func:`to_argparse` turns a
table into an ``argparse`` parser, so the stand-ins accept exactly the table.

Pure: no I/O, no imports beyond the standard library.
"""

from __future__ import annotations

import argparse
import re
import sys
import typing
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

Kind = Literal["str", "int", "float", "switch", "choice"]


@dataclass(frozen=True)
class Source:
    """Where a table was transcribed from."""

    path: str
    commit: str
    version: str  # the release line, and how the commit was placed on it

    def cite(self) -> str:
        return f"NVIDIA/TensorRT-LLM {self.path} @ {self.commit[:12]} ({self.version})"


@dataclass(frozen=True)
class Opt:
    """One option: ``names[0]`` is the canonical spelling, the rest are aliases."""

    names: tuple[str, ...]
    kind: Kind = "str"
    choices: tuple[str, ...] = ()
    default: str | int | float | bool | None = None
    required: bool = False
    nargs: Literal["+", "?", 2] | None = None
    const: str | None = None  # the value of a bare ``nargs="?"`` flag

    @property
    def name(self) -> str:
        return self.names[0]


@dataclass(frozen=True)
class Command:
    """A tool or subcommand: its options, positional arguments and subcommands."""

    prog: str
    source: Source
    options: tuple[Opt, ...]
    positionals: tuple[str, ...] = ()
    subcommands: tuple[Command, ...] = ()
    subcommand_required: bool = True
    style: Literal["argparse", "click"] = "argparse"
    notes: tuple[str, ...] = field(default=())

    def option(self, flag: str) -> Opt | None:
        for opt in self.options:
            if flag in opt.names:
                return opt
        return None

    def sub(self, name: str) -> Command | None:
        return next((s for s in self.subcommands if s.prog.rsplit(" ", 1)[-1] == name), None)

    @property
    def sub_names(self) -> list[str]:
        return [s.prog.rsplit(" ", 1)[-1] for s in self.subcommands]


def opt(*names: str, kind: Kind = "str", **kw: object) -> Opt:
    """Shorthand: ``opt("--tp_size", kind="int", default=1)``."""
    return Opt(names=names, kind=kind, **kw)  # type: ignore[arg-type]


def switch(*names: str) -> Opt:
    return Opt(names=names, kind="switch", default=False)


def choice(name: str, choices: Sequence[str], default: str | None = None, *aliases: str) -> Opt:
    return Opt(names=(name, *aliases), kind="choice", choices=tuple(choices), default=default)


def _value_problem(o: Opt, value: str, prog: str) -> str | None:
    if o.kind == "choice" and value not in o.choices:
        listed = ", ".join(repr(c) for c in o.choices)
        return f"{prog}: argument {o.name}: invalid choice: {value!r} (choose from {listed})"
    if o.kind == "int":
        try:
            int(value)
        except ValueError:
            return f"{prog}: argument {o.name}: invalid int value: {value!r}"
    if o.kind == "float":
        try:
            float(value)
        except ValueError:
            return f"{prog}: argument {o.name}: invalid float value: {value!r}"
    return None


def _take_values(o: Opt, tokens: list[str], i: int, inline: str | None) -> tuple[list[str], int]:
    if inline is not None:
        return [inline], i
    if o.nargs == "?":  # argparse: the next token is the value unless it looks like an option
        if i < len(tokens) and not (tokens[i].startswith("-") and not _is_number(tokens[i])):
            return [tokens[i]], i + 1
        return [], i  # a bare flag: the const, which argparse does not check against the choices
    if o.nargs == "+":
        values = []
        while i < len(tokens) and not tokens[i].startswith("-"):
            values.append(tokens[i])
            i += 1
        return values, i
    count = 2 if o.nargs == 2 else 1
    values = [t for t in tokens[i : i + count] if not t.startswith("--")]
    return values, i + len(values)


def check_argv(cmd: Command, argv: Sequence[str]) -> list[str]:
    """What the real parser of ``cmd`` rejects in ``argv`` (the arguments after the program name)."""
    tokens = list(argv)
    problems: list[str] = []
    seen: set[str] = set()
    positionals: list[str] = []
    i = 0
    while i < len(tokens):
        token = tokens[i]
        i += 1
        if token.startswith("-") and len(token) > 1 and not _is_number(token):
            flag, eq, inline = token.partition("=")
            o = cmd.option(flag)
            if o is None:
                problems.append(f"{cmd.prog}: unrecognized arguments: {token}")
                continue
            seen.add(o.name)
            if o.kind == "switch":
                if eq:
                    problems.append(f"{cmd.prog}: argument {o.name}: ignored explicit argument {inline!r}")
                continue
            values, i = _take_values(o, tokens, i, inline if eq else None)
            want = {"?": 0, 2: 2}.get(o.nargs or "", 1)
            if len(values) < want:
                expected = "2 arguments" if want == 2 else "one argument"
                problems.append(f"{cmd.prog}: argument {o.name}: expected {expected}")
                continue
            problems += [p for v in values if (p := _value_problem(o, v, cmd.prog))]
            continue
        if cmd.subcommands and len(positionals) == len(cmd.positionals):
            sub = cmd.sub(token)
            if sub is None:
                names = ", ".join(repr(n) for n in cmd.sub_names)
                if cmd.style == "click":
                    problems.append(f"{cmd.prog}: Error: No such command '{token}'. (choose from {names})")
                else:
                    problems.append(
                        f"{cmd.prog}: argument command: invalid choice: {token!r} (choose from {names})"
                    )
                return problems
            problems += _missing(cmd, seen, positionals)
            return problems + check_argv(sub, tokens[i:])
        positionals.append(token)
    problems += _missing(cmd, seen, positionals)
    if cmd.subcommands and cmd.subcommand_required:
        problems.append(f"{cmd.prog}: Missing command (choose from {', '.join(cmd.sub_names)})")
    if len(positionals) > len(cmd.positionals):
        problems.append(
            f"{cmd.prog}: unrecognized arguments: {' '.join(positionals[len(cmd.positionals) :])}"
        )
    return problems


def _is_number(token: str) -> bool:
    try:
        float(token)
    except ValueError:
        return False
    return True


def _missing(cmd: Command, seen: set[str], positionals: list[str]) -> list[str]:
    out = [
        f"{cmd.prog}: the following arguments are required: {o.name}"
        for o in cmd.options
        if o.required and o.name not in seen
    ]
    if len(positionals) < len(cmd.positionals):
        out.append(f"{cmd.prog}: missing argument {cmd.positionals[len(positionals)].upper()}")
    return out


def _add(parser: argparse.ArgumentParser, o: Opt) -> None:
    dest = o.name.lstrip("-").replace("-", "_")
    if o.kind == "switch":
        parser.add_argument(*o.names, dest=dest, action="store_true")
        return
    kwargs: dict[str, object] = {"dest": dest, "default": o.default, "required": o.required}
    if o.kind == "choice":
        kwargs["choices"] = list(o.choices)
    elif o.kind in ("int", "float"):
        kwargs["type"] = int if o.kind == "int" else float
    if o.nargs is not None:
        kwargs["nargs"] = o.nargs
    if o.const is not None:
        kwargs["const"] = o.const
    parser.add_argument(*o.names, **kwargs)  # type: ignore[arg-type]


class ClickStyleParser(argparse.ArgumentParser):
    """argparse with click's error wording, for tables of click CLIs: exit 2 and ``Error: No such option``.

    click says ``No such option: --x`` (argparse: ``unrecognized arguments``), ``No such command 'x'.``
    (argparse: ``invalid choice`` for the subcommand), ``Missing option '--x'.`` and ``Invalid value for
    '--x': ...``; the wording is click 8's, the exit status the same (2) either way.
    """

    def error(self, message: str) -> typing.NoReturn:
        self.print_usage(sys.stderr)
        self.exit(2, f"Try '{self.prog} --help' for help.\n\nError: {click_message(message)}\n")


def click_message(message: str) -> str:
    """An argparse error message in click's words (unchanged where click has none of its own)."""
    if m := re.match(r"unrecognized arguments: (\S+)", message):
        return f"No such option: {m.group(1)}"
    if m := re.match(r"argument (?:command|subcommand): invalid choice: '([^']*)'", message):
        return f"No such command '{m.group(1)}'."
    if m := re.match(r"the following arguments are required: (--\S+?)(?:,|$)", message):
        return f"Missing option '{m.group(1)}'."
    if m := re.match(r"the following arguments are required: (command|subcommand)", message):
        return "Missing command."
    if m := re.match(r"argument (\S+): invalid choice: ('[^']*') \(choose from (.*)\)", message):
        return f"Invalid value for '{m.group(1)}': {m.group(2)} is not one of {m.group(3)}."
    if m := re.match(r"argument (\S+): invalid (int|float) value: ('[^']*')", message):
        kind = "integer" if m.group(2) == "int" else "float"
        return f"Invalid value for '{m.group(1)}': {m.group(3)} is not a valid {kind}."
    if m := re.match(r"argument (\S+): expected one argument", message):
        return f"Option '{m.group(1)}' requires an argument."
    return message


def to_argparse(cmd: Command, description: str | None = None) -> argparse.ArgumentParser:
    """An argparse parser accepting exactly ``cmd`` (subcommands land in ``args.command``).

    A click table (``style="click"``) gets :class:`ClickStyleParser`, so errors read like click's.
    """
    cls = ClickStyleParser if cmd.style == "click" else argparse.ArgumentParser
    parser = cls(prog=cmd.prog, allow_abbrev=False, description=description)
    _fill(parser, cmd, 0)
    return parser


def _fill(parser: argparse.ArgumentParser, cmd: Command, depth: int) -> None:
    for o in cmd.options:
        _add(parser, o)
    for name in cmd.positionals:
        parser.add_argument(name)
    if cmd.subcommands:
        dest = "command" if depth == 0 else "subcommand"
        subs = parser.add_subparsers(dest=dest, required=cmd.subcommand_required)
        for sub in cmd.subcommands:
            _fill(subs.add_parser(sub.prog.rsplit(" ", 1)[-1], allow_abbrev=False), sub, depth + 1)
