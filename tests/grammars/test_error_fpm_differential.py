"""The lowered regex and pyparsing agree: same Fields, or both decline (pyparsing then locates the error).

Generated NGINX error and PHP-FPM lines (built from the grammar's own pieces, with the characters
that make the context ambiguous: quotes, commas, ``, client: ``, parentheses, cuts) plus every line
of the corpus, through every grammar of error.py, fpm.py, slowlog.py and fpm_access.py.
"""

from __future__ import annotations

from pathlib import Path

import pyparsing as pp
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from grammars import error, fpm, fpm_access, lowering, slowlog
from grammars.prefix import strip_prefix
from grammars.result import ParseError

CORPUS = Path(__file__).parents[1] / "corpus"

GRAMMARS: dict[str, tuple[pp.ParserElement, lowering.FastParser]] = {
    "error": (error.ENTRY, error._FAST),
    "error_first": (error.ENTRY_FIRST, error._FAST_FIRST),
    "fpm": (fpm.LINE, fpm._FAST),
    "fpm_access": (fpm_access.LINE, fpm_access._FAST),
    "slowlog_header": (slowlog.HEADER, slowlog._HEADER_FAST),
    "slowlog_script": (slowlog.SCRIPT, slowlog._SCRIPT_FAST),
    "slowlog_frame": (slowlog.FRAME, slowlog._FRAME_FAST),
}


def assert_agree(name: str, line: str) -> None:
    grammar, fast = GRAMMARS[name]
    lowered = fast.parse(line)
    reference = lowering.parse_with(grammar, None, line)
    if lowered is None:
        assert isinstance(reference, ParseError), f"{name}: regex declined what pyparsing parsed: {line!r}"
    else:
        assert lowered == reference, f"{name}: {line!r}"
    if name == "error_first" and lowered is not None:
        # the fast path's grammar gives the full grammar's fields wherever it matches
        assert lowered == lowering.parse_with(error.ENTRY, None, line), f"first context != trailing: {line!r}"


# --- generated NGINX error lines -------------------------------------------------------------

TRICKY = st.sampled_from(
    [
        '"',
        ",",
        ", client: ",
        ", server: ",
        '", host: "',
        " while ",
        "(",
        ")",
        "(2: x)",
        ": ",
        " ",
        "\n",
        "\\",
        "*",
        "#",
        "[",
        "]",
        "\x00",
        "\udcff",
        "é",
        ", ref",
        ", ",
    ]
)
TEXT = st.lists(st.one_of(TRICKY, st.text(alphabet="abcXYZ019 /.:-_?=&", max_size=8)), max_size=12).map("".join)
LEVEL = st.sampled_from(["emerg", "alert", "crit", "error", "warn", "notice", "info", "debug", "fatal"])
STAMP = st.sampled_from(["2026/11/24 05:42:00", "2016/02/29 00:00:59", "2015/02/29 10:00:00", "2016/13/01 01:01:01"])
MESSAGE = st.one_of(
    TEXT,
    st.sampled_from(
        [
            "connect() to unix:/run/php/www.sock failed (2: No such file or directory) while connecting to upstream",
            "recv() failed (104: Connection reset by peer) while reading response header from upstream",
            "upstream prematurely closed connection while reading response header from upstream",
            "upstream timed out (110: Connection timed out) while reading response header from upstream",
            'FastCGI sent in stderr: "PHP message: a, client: 1.2.3.4, server: x" while reading upstream',
            'limiting requests, excess: 0.520 by zone "one"',
        ]
    ),
    st.tuples(st.just('FastCGI sent in stderr: "'), TEXT, st.just('" while reading upstream')).map("".join),
)
VALUE = st.one_of(TEXT, st.sampled_from(["GET / HTTP/1.1", "fastcgi://unix:/run/php/www.sock:", "", "-"]))
KEYS = ("client", "server", "login", "request", "subrequest", "upstream", "host", "referrer")


@st.composite
def context(draw: st.DrawFn) -> str:
    parts = []
    for key in KEYS:
        if key != "client" and not draw(st.booleans()):
            continue
        value = draw(VALUE)
        quoted = key not in ("client", "server") and draw(st.integers(0, 9)) > 0
        parts.append(f', {key}: "{value}"' if quoted else f", {key}: {value}")
    return "".join(parts)


@st.composite
def error_lines(draw: st.DrawFn) -> str:
    head = draw(
        st.one_of(
            st.builds(
                lambda t, lv, p, c: f"{t} [{lv}] {p}#0: {c}",
                STAMP,
                LEVEL,
                st.integers(0, 99999),
                st.sampled_from(["", "*1 ", "*", "*x "]),
            ),
            st.builds(lambda lv: f"nginx: [{lv}] ", LEVEL),
            st.builds(lambda lv: f"[{lv}]: ", LEVEL),
        )
    )
    line = head + draw(MESSAGE) + (draw(context()) if draw(st.booleans()) else "")
    line += draw(st.sampled_from(["", "", "\n"]))
    cut = draw(st.integers(0, 3))
    return line[: draw(st.integers(0, len(line)))] if cut == 0 else line


@settings(max_examples=800, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(error_lines())
@example('2026/11/24 05:42:00 [error] 1#0: *1 m, client: a, server: b, request: "x", host: "y"", client: c')
@example('2026/11/24 05:42:00 [error] 1#0: *1 m, client: a, server: b, request: "GET /x", ups')
def test_error_lines_agree(line: str) -> None:
    assert_agree("error", line)
    assert_agree("error_first", line)


# --- generated PHP-FPM lines -----------------------------------------------------------------

FPM_STAMP = st.sampled_from(
    [
        "[24-Nov-2026 05:42:00] ",
        "[24-Nov-2026 05:42:00.636653] ",
        "",
        "[30-Feb-2026 05:42:00] ",
        "[24-Foo-2026 05:42:00] ",
    ]
)
FPM_LEVEL = st.sampled_from(["WARNING: ", "NOTICE:  ", "ERROR: ", "[WARNING] ", "DEBUG: ", "INFO: "])
FPM_DEBUG = st.sampled_from(
    ["", "", "pid 1, fpm_children_make(), line 421: ", "fpm_children_bury(), line 252: ", "pid 1, x(), line : "]
)
FPM_BODY = st.one_of(
    TEXT,
    st.sampled_from(
        [
            "child 5, script '/x.php' (request: \"GET /x?a=1\") execution timed out (25.7 sec), terminating",
            "child 5, script '/x.php' executing too slow (1.2 sec), logging",
            "child 5 exited on signal 11 (SIGSEGV - core dumped) after 3.78 seconds from start",
            "child 5 exited with code 1 after 0.5 seconds from start",
            "child 5 exited on signal 64 () after 1 seconds from start",
            "child 5 started",
            'child 5 said into stderr: "a "b" c"',
            'child 5 said into stdout: "x", pipe is closed',
            "server reached pm.max_children setting (5), consider raising it",
            "unable to bind listening socket for address '/run/php/x.sock': Address already in use (98)",
            "unable to bind listening socket for address 127.0.0.1:9000: Address already in use (98)",
            "fpm is running, pid 42",
            "ready to handle connections",
            "Terminating ...",
            "exiting, bye-bye!",
        ]
    ),
)


@st.composite
def fpm_lines(draw: st.DrawFn) -> str:
    pool = draw(st.sampled_from(["", "[pool www] ", "[pool a]b] ", "[pool ] "]))
    line = draw(FPM_STAMP) + draw(FPM_LEVEL) + draw(FPM_DEBUG) + pool + draw(FPM_BODY)
    line += draw(TEXT.filter(lambda t: len(t) < 3))
    return line[: draw(st.integers(0, len(line)))] if draw(st.integers(0, 3)) == 0 else line


@settings(max_examples=800, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(fpm_lines())
def test_fpm_lines_agree(line: str) -> None:
    assert_agree("fpm", line)


@settings(max_examples=500, deadline=None)
@given(
    st.one_of(
        st.builds(
            "".join,
            st.lists(
                st.sampled_from(
                    [
                        "[0x00007f63028160f0] ",
                        "f() ",
                        "/x.php",
                        ":13",
                        "+++ dump failed",
                        "[11-Jul-2022 05:34:02]  [pool www] pid 1",
                        "script_filename = ",
                        " ",
                        ":",
                        "()",
                        "\n",
                    ]
                ),
                max_size=6,
            ),
        ),
        st.builds(lambda a, u, s: f'{a} - {u} 18/Jun/2022:07:32:15 +0000 "GET {s}" 200', TEXT, TEXT, TEXT),
    )
)
def test_small_grammars_agree(line: str) -> None:
    for name in GRAMMARS:
        assert_agree(name, line)


# --- every corpus line, through every grammar ---------------------------------------------------


def _corpus_lines() -> list[str]:
    """Raw lines, lines without their prefixes, and error entries joined with their continuation lines."""
    lines: list[str] = []
    for path in sorted(CORPUS.glob("nginx-error/*.log")) + sorted(CORPUS.glob("php-fpm/*.log")):
        entry = ""
        for raw in path.read_bytes().decode("utf-8", "surrogateescape").split("\n"):
            line = strip_prefix(raw)[1]
            lines += [raw, line]
            if error.is_entry_start(line) or not entry:
                lines.append(entry)
                entry = line
            else:
                entry += "\n" + line
        lines.append(entry)
    return sorted(set(lines))


CORPUS_LINES = _corpus_lines()


@pytest.mark.parametrize("name", sorted(GRAMMARS))
def test_corpus_lines_agree(name: str) -> None:
    for line in CORPUS_LINES:
        assert_agree(name, line)
    assert len(CORPUS_LINES) > 600
