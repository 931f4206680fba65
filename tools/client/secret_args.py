"""Secrets on the command line, without putting them in /proc.

A flag such as ``--key KEY`` is visible to every local user (``ps``, /proc/PID/cmdline)
for as long as the command runs. Each secret flag therefore has two quieter twins: a file
(``--key-file FILE``, first line, trailing newline dropped) and an environment variable
(``$EVHUB_KEY``; /proc/PID/environ is readable by the owner only). The plain flag keeps
working, and its help says it is visible. Order: flag, then file, then environment.

    secret_args.add(p, "--key", "EVHUB_KEY", "the station's key")
    ...
    secret_args.resolve(args, "--key", "EVHUB_KEY")   # sets args.key; ValueError if the file is bad
"""

import os


def _dest(flag):
    return flag.lstrip("-").replace("-", "_")


def add(parser, flag, env, what, metavar=None, extra_help=""):
    parser.add_argument(
        flag,
        metavar=metavar,
        dest=_dest(flag),
        help="%s%s (visible to other local users in `ps`: prefer %s-file or $%s)" % (what, extra_help, flag, env),
    )
    parser.add_argument(
        flag + "-file", metavar="FILE", dest=_dest(flag) + "_file", help="read %s from FILE (its first line)" % what
    )


def read_secret_file(path, flag):
    try:
        with open(path, encoding="utf-8") as f:
            line = f.readline()
    except OSError as exc:
        raise ValueError("cannot read %s-file %s: %s" % (flag, path, exc.strerror or exc)) from None
    except UnicodeDecodeError:
        raise ValueError("%s-file %s is not UTF-8 text" % (flag, path)) from None
    value = line.rstrip("\r\n")
    if not value:
        raise ValueError("%s-file %s is empty" % (flag, path))
    return value


def resolve(args, flag, env):
    """Fill args.<flag> from the flag, its -file, or $env (in that order); returns the value or None."""
    dest = _dest(flag)
    value = getattr(args, dest, None)
    path = getattr(args, dest + "_file", None)
    if value is None and path:
        value = read_secret_file(path, flag)
    if value is None:
        value = os.environ.get(env) or None
    setattr(args, dest, value)
    return value
