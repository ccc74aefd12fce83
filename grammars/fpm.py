"""PHP-FPM master log (``error_log`` in php-fpm.conf): one line into typed fields.

Shape (php-src ``sapi/fpm/fpm/zlog.c``)::

    [DD-Mon-YYYY HH:MM:SS[.uuuuuu]] LEVEL: [pid N, function(), line N: ]message

The timestamp is missing in ``.no-timestamp`` output (stderr, platform logs); syslog
output writes ``[LEVEL] `` and ``function(), line N: `` without the pid. Lines longer than
``log_limit`` end in ``...``. The messages that matter come from ``fpm_request.c``
(timed out / too slow), ``fpm_children.c`` (exited, started), ``fpm_process_ctl.c``
(max_children, seems busy), ``fpm_sockets.c`` (bind) and ``fpm_stdio.c`` (said into).
"""

from __future__ import annotations

from datetime import datetime
from functools import lru_cache
from typing import Final

import pyparsing as pp

from grammars import lowering, values
from grammars.error import split_request
from grammars.portable_regex import portable
from grammars.result import Fields, ParseError

_MONTHS: Final = {m: i for i, m in enumerate("Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split(), 1)}


@lru_cache(maxsize=4096)
def _fpm_time(text: str) -> datetime:
    """``24-Nov-2026 05:42:00[.636653]`` → naive datetime (cached per distinct string)."""
    try:
        micro = int(text[21:27]) if len(text) > 20 else 0
        return datetime(
            int(text[7:11]), _MONTHS[text[3:6]], int(text[0:2]),
            int(text[12:14]), int(text[15:17]), int(text[18:20]), micro,
        )  # fmt: skip
    except (KeyError, ValueError) as exc:
        raise ValueError(f"impossible time {text!r}: {exc}") from None


def _lit(text: str) -> pp.Suppress:
    return pp.Suppress(pp.Literal(text))


def _int(name: str) -> pp.ParserElement:
    return values.typed(name, pp.Regex(r"\d+").set_name(name), int)


def _float(name: str) -> pp.ParserElement:
    return values.typed(name, pp.Regex(r"\d+(?:\.\d+)?").set_name(name), float)


_END = pp.StringEnd()


def _kind(kinds: dict[str, str], expr: pp.ParserElement) -> pp.ParserElement:
    """``expr``, whose matched text says the message kind: its first characters, looked up in ``kinds``
    (all keys one length). One group per grammar alternative, not one per kind: a faster record.
    """
    size = len(next(iter(kinds)))
    assert all(len(key) == size for key in kinds)

    def kind_of(text: str) -> str:
        return kinds[text[:size]]

    if len(kinds) == 1:
        values.set_inline(kind_of, repr(next(iter(kinds.values()))))
    else:
        values.set_inline(kind_of, f"{{kinds}}[{{v}}[:{size}]]", kinds=kinds)
    return values.typed("kind", expr, kind_of)


def _signal_name(text: str) -> str | None:
    return text or None  # fpm_signal_names has no name for some signals: "(...)" is then empty


values.set_inline(_signal_name, "({v} or None)")

# time ::= "[" DD "-" Mon "-" YYYY " " HH ":" MM ":" SS ["." micro] "] "
# [24-Nov-2026 05:42:00.636653]
TIME = (
    _lit("[")
    + values.typed("time", pp.Regex(r"\d\d-[A-Z][a-z]{2}-\d{4} \d\d:\d\d:\d\d(?:\.\d{6})?"), _fpm_time)
    + _lit("] ")
).set_name("fpm time")

# level ::= (LEVEL ":" | "[" LEVEL "]") " "+
# WARNING:
_LEVEL_NAME = pp.Regex(r"(?:ALERT|ERROR|WARNING|NOTICE|DEBUG|SYSTEM)").set_name("level")
LEVEL = (
    (_LEVEL_NAME("level") + _lit(":") | _lit("[") + _LEVEL_NAME("level") + _lit("]")) + pp.Suppress(pp.Regex(" +"))
).set_name("fpm level")

# debug ::= ["pid " N ", "] function "(), line " N ": "
# pid 15649, fpm_request_check_timed_out(), line 272:
DEBUG = (
    pp.Opt(_lit("pid ") + _int("pid") + _lit(", "))
    + pp.Regex(r"\w+\(\)")("function")
    + _lit(", line ")
    + _int("source_line")
    + _lit(": ")
).set_name("debug prefix")

# pool ::= "[pool " name "] "
# [pool www]
POOL = (_lit("[pool ") + pp.Regex(r"[^\]]+")("pool") + _lit("] ")).set_name("pool")

# child ::= "child " N
# child 11830
CHILD = (_lit("child ") + _int("child_pid")).set_name("child")

# request ::= ", script '" S "'" [" (request: \"" R "\")"] " " phrase " (" D " sec), " ("terminating" | "logging")
# , script '/var/www/x.php' (request: "GET /x.php?a=1") execution timed out (25.755070 sec), terminating
SCRIPT = (
    _lit(", script '")
    + pp.Regex(r"[^']*+")("script")
    + _lit("'")
    + pp.Opt(_lit(' (request: "') + pp.Regex(portable(r'(?:[^"]++|"(?!\) ))*+'))("request") + _lit('")'))
    + _kind(
        {" execution ": "timed_out", " executing ": "too_slow"},
        pp.Regex(r" (?:execution timed out|executing too slow) \("),
    )
    + _float("duration_s")
    + pp.Suppress(pp.Regex(r" sec\), (?:terminating|logging)"))
    + _END
).set_name("slow request")

# exited ::= " exited " ("on signal " N " (" SIGNAME [" - core dumped"] ")" | "with code " N)
#            " after " D " seconds from start"
#  exited on signal 11 (SIGSEGV - core dumped) after 3.78 seconds from start
EXITED = (
    _kind(
        {" exited on s": "exited_signal", " exited with": "exited_code"},
        pp.Regex(" exited (?:on signal|with code) "),
    )
    + (
        _int("signal")
        + _lit(" (")
        + values.typed("signal_name", pp.Regex(r"[A-Z0-9+]*"), _signal_name)
        + pp.Opt(values.typed("core_dumped", pp.Regex(" - core dumped"), bool))
        + _lit(")")
        | _int("exit_code")
    )
    + _lit(" after ")
    + _float("after_s")
    + _lit(" seconds from start")
    + _END
).set_name("exited")

# said ::= " said into " ("stderr" | "stdout") ": \"" output ["\""] [", pipe is closed"]
#  said into stderr: "NOTICE: PHP message: PHP Warning:  ..."
SAID = (
    _kind({" said into ": "said"}, pp.Regex(" said into "))
    + pp.Regex(r"stderr|stdout")("stream")
    + _lit(': "')
    + pp.Regex(portable(r'(?:[^"]++|"(?!(?:, pipe is closed)?\Z))*+'))("output")
    + pp.Opt(_lit('"'))
    + pp.Opt(_lit(", pipe is closed"))
    + _END
).set_name("said")

# max_children ::= "server reached " ["pm."] "max_children setting (" N "), consider raising it"
# server reached pm.max_children setting (5), consider raising it
MAX_CHILDREN = (
    _kind({"server reach": "max_children"}, pp.Regex(r"server reached (?:pm\.)?max_children setting \("))
    + _int("max_children")
    + _lit("), consider raising it")
    + _END
).set_name("max_children")

# bind ::= "unable to bind listening socket for address " ("'" A "'" | A) ": " reason
# unable to bind listening socket for address '/run/php/x.sock': Address already in use (98)
BIND = (
    _kind({"unable to bi": "bind_failed"}, pp.Regex("unable to bind listening socket for address "))
    + values.typed("address", pp.Regex(portable(r"'[^']*+'|(?:[^:']++|:(?! ))++")), lambda text: text.strip("'"))
    + pp.Suppress(pp.Regex(": .*"))
    + _END
).set_name("bind failed")

# running ::= "fpm is running, pid " N
# fpm is running, pid 8206
RUNNING = (_kind({"fpm is runni": "running"}, pp.Regex("fpm is running, pid ")) + _int("pid") + _END).set_name(
    "running"
)

# started ::= " started"
#  started
STARTED = (_kind({" started": "child_started"}, pp.Regex(" started")) + _END).set_name("started")

# lifecycle ::= "seems busy (" text | "ready to handle connections" | "Terminating ..." | "exiting, bye-bye!"
#             | "reloading: " text
# ready to handle connections
LIFECYCLE = (
    _kind(
        {"seems": "seems_busy", "ready": "ready", "Termi": "terminating", "exiti": "exiting", "reloa": "reloading"},
        pp.Regex(r"seems busy \(.*|ready to handle connections|Terminating \.\.\.|exiting, bye-bye!|reloading: .*"),
    )  # fmt: skip
    + _END
).set_name("lifecycle")

# rest ::= { char }   (any other message)
# child 155 stopped for tracing
REST = (pp.Suppress(pp.Regex(r".*")) + _END).set_name("other message")

# message ::= [pool] (child (script | exited | said | started | rest) | max_children | bind | running
#             | lifecycle | rest)
# [pool www] child 11830 exited on signal 15 (SIGTERM) after 146.629210 seconds from start
MESSAGE = (
    pp.FollowedBy(pp.Regex(r".*")("message"))
    + pp.Opt(POOL)
    + (CHILD + (SCRIPT | EXITED | SAID | STARTED | REST) | MAX_CHILDREN | BIND | RUNNING | LIFECYCLE | REST)
).set_name("fpm message")

# line ::= [time] level [debug] message
# [13-Jan-2017 22:46:23] WARNING: [pool www] child 11830 exited on signal 15 (SIGTERM) after 146.6 seconds from start
LINE: Final = (pp.Opt(TIME) + LEVEL + pp.Opt(DEBUG) + MESSAGE).leave_whitespace().set_name("php-fpm line")

_FAST: Final = lowering.FastParser(LINE)
_PARSE: Final = _FAST.with_fallback(lambda line: lowering.parse_with(LINE, None, line))


def _finish(fields: Fields) -> Fields:
    """Kind, request split, the running pid, the ``log_limit`` cut flag."""
    kind = fields["kind"]
    if kind is None:
        kind = fields["kind"] = "other"
    if fields["request"] is not None:
        fields["method"], fields["uri"], _ = split_request(fields["request"])
    else:
        fields["method"] = fields["uri"] = None
    if fields["signal"] is not None:
        fields["core_dumped"] = fields["core_dumped"] is not None
    output = fields["output"]
    fields["truncated"] = (fields["message"].endswith("...") and kind != "terminating") or (
        output is not None and output.endswith("...")
    )
    return fields


def parse_fpm_line(line: str) -> Fields | ParseError:
    """Parse one PHP-FPM master-log line into the fields of ``docs/contracts.md``. Never raises."""
    if line.endswith("\n"):
        line = line.rstrip("\r\n")
    fields: Fields | ParseError = _PARSE(line)
    return fields if isinstance(fields, ParseError) else _finish(fields)
