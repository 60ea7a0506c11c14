"""The ``kgi`` command line.

Subcommands are plugins: each is a module registered under the ``kgi.commands`` entry-point group in
``pyproject.toml`` and exposing

    HELP: str                                  one line for ``kgi --help``
    add_arguments(parser: ArgumentParser)      its options
    run(args: Namespace) -> int                the work; returns the exit code

with its module docstring shown as the description (examples included). This keeps ``kgi`` free of Ray: the
commands that need Ray live in ``training/`` and ``deployments/`` and are only imported when invoked.
"""

from __future__ import annotations

import argparse
import ast
import importlib
import importlib.util
import sys
from importlib.metadata import entry_points


class CommandError(Exception):
    """A user-facing failure: printed as ``kgi <cmd>: error: <message>`` with exit code 2, no traceback."""


def _commands() -> dict[str, str]:
    return {ep.name: ep.value for ep in entry_points(group="kgi.commands")}


def build_parser(command: str | None) -> argparse.ArgumentParser:
    """The top-level parser; only ``command``'s module is imported (the others may need Ray or heavy deps)."""
    parser = argparse.ArgumentParser(
        prog="kgi", description="KGI virtual try-on: data, training, evaluation and serving.",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, module_name in sorted(_commands().items()):
        if name == command:
            module = importlib.import_module(module_name)
            cmd = sub.add_parser(name, help=module.HELP, description=module.__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
            module.add_arguments(cmd)
            cmd.set_defaults(run=module.run)
        else:
            sub.add_parser(name, help=_summary(module_name))
    return parser


def _summary(module_name: str) -> str:
    """First line of a command module's docstring, read without importing it (no Ray at ``kgi --help``)."""
    spec = importlib.util.find_spec(module_name)
    if spec is None or spec.origin is None:
        return ""

    with open(spec.origin, encoding="utf-8") as f:
        doc = ast.get_docstring(ast.parse(f.read())) or ""
    return doc.strip().splitlines()[0] if doc.strip() else ""


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    command = next((a for a in argv if not a.startswith("-")), None)
    parser = build_parser(command)
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    try:
        return int(args.run(args) or 0)
    except CommandError as exc:
        print(f"kgi {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"kgi {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    # Run as ``python -m kgi.cli``, this file is ``__main__``, and the commands raise ``kgi.cli.CommandError``, a
    # class of another module object than this one's: run that module's ``main``, whose ``except`` catches it.
    from kgi.cli import main as kgi_main

    sys.exit(kgi_main())
