"""What every command shares: options whose defaults are read from library signatures, number types,
and the printed fraction table.

Defaults are never written in a command: every option that a library function also takes reads its
default from that function's signature (:func:`lib_option`), and ``tests/test_cli.py`` checks it for
every command (:func:`calls` names the functions).
"""
from __future__ import annotations

import inspect

import click

from ..core.rule import parse_fraction
from ..errors import Mem2genError


def calls(*fns):
    """Mark a command's function with the library function(s) whose defaults its options take (a test checks)."""
    def mark(cmd):
        cmd.library = fns
        return cmd
    return mark


def lib_option(fn, param: str, *decls, **kw):
    """A click option whose default is ``fn``'s default for ``param`` (shown in --help)."""
    default = inspect.signature(fn).parameters[param].default
    check_default = default is not inspect.Parameter.empty
    return click.option(*decls, param, default=default if check_default else None,
                        show_default=check_default and default is not None, **kw)


class Numbers(click.ParamType):
    """Comma-separated numbers ('2,8,32'); a tuple default passes through."""

    def __init__(self, kind=int):
        self.kind, self.name = kind, f"{kind.__name__}s"

    def convert(self, value, param, ctx):
        if value is None or isinstance(value, tuple):
            return value
        try:
            out = tuple(self.kind(x) for x in str(value).split(",") if x.strip())
        except ValueError:
            self.fail(f"{value!r}: give comma-separated {self.kind.__name__}s, e.g. 2,8,32", param, ctx)
        if not out:
            self.fail("give at least one value", param, ctx)
        return out


class Words(click.ParamType):
    """Comma-separated names from ``choices`` ('spurious,mixture'); a tuple default passes through."""

    name = "names"

    def __init__(self, choices):
        self.choices = tuple(choices)

    def convert(self, value, param, ctx):
        if value is None or isinstance(value, tuple):
            return value
        out = tuple(x.strip() for x in str(value).split(",") if x.strip())
        bad = [x for x in out if x not in self.choices]
        if bad or not out:
            self.fail(f"{value!r}: give comma-separated names among {', '.join(self.choices)}", param, ctx)
        return out


class Ratio(click.ParamType):
    """A number written as 0.28 or 1/3."""

    name = "number"

    def convert(self, value, param, ctx):
        if value is None or isinstance(value, float):
            return value
        try:
            return parse_fraction(value)
        except Mem2genError as e:
            self.fail(str(e), param, ctx)


def print_table(res, boot) -> None:
    """A classification's counts, fractions and bootstrap intervals, one line per class."""
    click.echo(f"{'class':<12} {'count':>7} {'fraction':>9} {'boot mean':>10} {'boot std':>9}  95% interval")
    for name, c in zip(boot, res.counts):
        b = boot[name]
        click.echo(f"{name:<12} {c:>7d} {res.fractions[name]:>9.4f} {b['mean']:>10.4f} {b['std']:>9.4f}"
                   f"  [{b['ci95'][0]:.4f}, {b['ci95'][1]:.4f}]")
