"""Every option of every `evhub` subcommand says what it is for in --help (issue 17 item 4)."""

import argparse

from tools.cli import build_parser


def _walk(parser, path):
    """(command path, parser) for `parser` and every subparser below it."""
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _walk(sub, path + [name])


def test_every_option_and_argument_of_every_subcommand_has_help_text():
    missing = []
    for path, parser in _walk(build_parser(), ["evhub"]):
        for action in parser._actions:
            if (
                isinstance(action, (argparse._HelpAction, argparse._SubParsersAction))
                or action.help == argparse.SUPPRESS
            ):
                continue
            if not (action.help or "").strip():
                missing.append("%s %s" % (" ".join(path), "/".join(action.option_strings) or action.dest))
    assert not missing, "options without help:\n" + "\n".join(missing)


def test_numeric_limits_are_stated_in_help():
    subs = dict((" ".join(p), parser) for p, parser in _walk(build_parser(), ["evhub"]))
    add = subs["evhub stations add"].format_help()
    assert "1..8" in add and "1000" in add and "-90..90" in add
    assert "1..2000" in subs["evhub sim"].format_help()
