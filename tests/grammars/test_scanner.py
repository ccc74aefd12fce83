"""``FastParser.scanner``: the probe of many lines from one regex pass over their newline-joined block.

Its answers must be the probe's, line by line, wherever it answers at all: on the real-world access corpus, on
lines built to make a match run past a line's end, on random text, and on every grammar of the lowering tests.
Where it cannot be sure (an empty line, a lookaround that could see the next line) it says so (``None``).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from grammars import access, lowering, scanner
from grammars.prefix import PREFIX_PATTERN, PREFIX_SCAN_PATTERN, has_prefix
from tests.grammars.test_lowering import GRAMMARS

CORPUS = Path(__file__).resolve().parents[1] / "corpus" / "nginx-access"
EXCLUDE = r"\{|" + PREFIX_SCAN_PATTERN  # what RecordParser excludes: JSON lines and shipper prefixes
WANTED = ("status", "time")
BENCH = access.compile_log_format(
    '$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent '
    '"$http_referer" "$http_user_agent" rt=$request_time urt=$upstream_response_time'
)
FORMATS = [access.COMBINED, access.MAIN, access.COMBINED_PLUS, BENCH]


def _corpus_lines() -> list[str]:
    lines: list[str] = []
    for path in sorted(CORPUS.glob("*.log")):
        lines += [line for line in path.read_text(errors="surrogateescape").splitlines() if line.strip()]
    return lines


def _expected(fmt: access.AccessFormat, lines: list[str]) -> list[object]:
    assert fmt.fast is not None
    probe = fmt.fast.probe(WANTED)
    return [None if line.startswith("{") or has_prefix(line) else probe(line) for line in lines]


@pytest.mark.parametrize("fmt", FORMATS, ids=lambda f: f.name)
def test_the_scan_of_the_real_world_corpus_is_the_probe_of_each_line(fmt: access.AccessFormat) -> None:
    assert fmt.fast is not None
    scan = fmt.fast.scanner(WANTED, EXCLUDE)
    assert scan is not None
    lines = _corpus_lines()
    assert len(lines) > 1000
    answered = 0
    for at in range(0, len(lines), 500):  # blocks as a poll brings them
        block = lines[at : at + 500]
        got = scan("\n".join(block), len(block))
        if got is None:  # a match ran past a line end (an unclosed quote): the caller probes line by line
            continue
        assert got == _expected(fmt, block)
        answered += sum(row is not None for row in got)
    # combined_plus's untyped rest takes blanks, newlines too: its matches run on, it never answers for a block
    assert answered >= {"combined": 100, "main": 1000}.get(fmt.name, 0), answered


def test_a_match_that_would_run_into_the_next_line_gives_no_answer_for_the_block() -> None:
    scan = access.COMBINED.fast.scanner(WANTED, EXCLUDE)  # type: ignore[union-attr]
    assert scan is not None
    good = '10.0.0.1 - - [24/Nov/2026:06:00:00 +0000] "GET / HTTP/1.1" 200 5 "-" "curl/8"'
    # an unclosed quote: the quoted body may take the newline and finish on the next line
    broken = '10.0.0.2 - - [24/Nov/2026:06:00:00 +0000] "GET / HTTP/1.1" 200 5 "-" "curl'
    tail = '" 200 5 "-" "curl/8"'
    block = [good, broken, tail, good]
    got = scan("\n".join(block), len(block))
    assert got is None or got == _expected(access.COMBINED, block)
    assert scan("\n".join([good, good]), 2) == _expected(access.COMBINED, [good, good])


@pytest.mark.parametrize("block", ["", "\n", "a\n\nb", "\na", "a\n"])
def test_an_empty_line_gives_no_answer_for_the_block(block: str) -> None:
    scan = access.COMBINED.fast.scanner(WANTED, EXCLUDE)  # type: ignore[union-attr]
    assert scan is not None
    assert scan(block, block.count("\n") + 1) is None


def test_excluded_lines_answer_none() -> None:
    scan = access.COMBINED.fast.scanner(WANTED, EXCLUDE)  # type: ignore[union-attr]
    assert scan is not None
    good = '10.0.0.1 - - [24/Nov/2026:06:00:00 +0000] "GET / HTTP/1.1" 502 5 "-" "curl/8"'
    lines = [good, "web_1  | " + good, "2024-05-01T10:00:00.123Z " + good, good + "  \r", "{" + good]
    got = scan("\n".join(lines), len(lines))
    assert got is not None and got[0] is not None and got[0][0] == 502
    assert got == _expected(access.COMBINED, lines)
    assert got[1] is None and got[2] is None and got[4] is None and got[3] == got[0]


_ALPHABET = st.sampled_from(
    list('0123456789 -"[]/:+.,abcGET HTTP/1.1\\\t\r')
    + ["10.0.0.1", "24/Nov/2026:06:00:00 +0000", "200", "502", "-", '"-"', " : "]
)
_LINE = st.lists(_ALPHABET, min_size=1, max_size=30).map("".join).filter(lambda s: "\n" not in s and s != "")
_GOOD = st.builds(
    lambda status, size, agent: (
        f'10.0.0.1 - - [24/Nov/2026:06:00:00 +0000] "GET / HTTP/1.1" {status} {size} "-" "{agent}"'
    ),
    st.sampled_from(["200", "502", "-", "2000"]),
    st.sampled_from(["5", "-", "x"]),
    st.text(alphabet='ab "\\', max_size=6),
)


_NUMBER = st.sampled_from(
    ["0", "157", "0.056", "-", "1.5x", "1e5", "٣", "1.", ".5", "x", "1" * 4301, "1" * 641, "1" * 640, "", "00", "1.2.3"]
)
_UPSTREAM = st.lists(_NUMBER, min_size=1, max_size=3).flatmap(
    lambda items: st.lists(st.sampled_from([", ", " : ", ","]), min_size=len(items) - 1, max_size=len(items) - 1).map(
        lambda seps: items[0] + "".join(sep + item for sep, item in zip(seps, items[1:]))
    )
)
_BENCH_LINE = st.builds(
    lambda status, size, rt, urt: (
        f'10.0.0.1 - - [24/Nov/2026:06:00:00 +0000] "GET / HTTP/1.1" {status} {size} "-" "curl/8" rt={rt} urt={urt}'
    ),
    st.sampled_from(["200", "502", "-", "5" * 4301]),
    _NUMBER,
    _NUMBER,
    _UPSTREAM,
)


@settings(max_examples=500, deadline=None)
@given(st.lists(_BENCH_LINE, min_size=1, max_size=8))
def test_values_the_scan_does_not_convert_are_checked_by_their_guards(lines: list[str]) -> None:
    # body_bytes_sent, request_time, upstream_response_time: converted by the probe, guarded in the scan's regex
    scan = BENCH.fast.scanner(WANTED, EXCLUDE)  # type: ignore[union-attr]
    assert scan is not None
    got = scan("\n".join(lines), len(lines))
    assert got is not None
    # a guard may be stricter than its converter ("1e5" is a float, not an nginx time): then the line is the
    # full path's (None); never the other way round
    expected = _expected(BENCH, lines)
    assert all(row is None or row == want for row, want in zip(got, expected)), (got, expected)
    # (an int of more digits than int() always takes, 640, is the full path's too)
    plain = [line for line in lines if not any(odd in line for odd in ("1e5", "٣", "1.", ".5", "1" * 641))]
    assert scan("\n".join(plain), len(plain)) == _expected(BENCH, plain) if plain else True


def test_the_scan_reads_only_what_it_must() -> None:
    # status and time are wanted; the numbers after them are guarded, not captured and converted line by line
    scan = BENCH.fast.scanner(WANTED, EXCLUDE)  # type: ignore[union-attr]
    assert scan is not None
    assert scan.pattern.groups == 3  # status, time, the rest


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(_LINE, _GOOD), min_size=1, max_size=12))
def test_random_blocks_agree_with_the_probe_wherever_the_scan_answers(lines: list[str]) -> None:
    for fmt in (access.COMBINED, BENCH):
        scan = fmt.fast.scanner(WANTED, EXCLUDE)  # type: ignore[union-attr]
        assert scan is not None
        got = scan("\n".join(lines), len(lines))
        if got is not None:
            assert got == _expected(fmt, lines)


@pytest.mark.parametrize(("description", "factory", "lines"), GRAMMARS, ids=[g[0] for g in GRAMMARS])
def test_every_lowered_grammar_scans_as_it_probes_or_has_no_scanner(
    description: str, factory: object, lines: list[str]
) -> None:
    grammar = factory()  # type: ignore[operator]
    try:
        fast = lowering.FastParser(grammar)
    except lowering.LoweringError:
        pytest.skip("not lowered")
    wanted = fast.names
    if not wanted:
        pytest.skip("nothing named")
    scan = fast.scanner(wanted)
    if scan is None:
        return  # an optional group or a lookaround that may see the next line: the probe serves
    probe = fast.probe(wanted)
    one_line = [line for line in lines if line and "\n" not in line]
    for line in one_line:
        assert scan(line, 1) == [probe(line)], line
    if one_line:
        got = scan("\n".join(one_line), len(one_line))
        assert got is None or got == [probe(line) for line in one_line]


@pytest.mark.parametrize(
    ("regex", "sees"),
    [
        (r"a(?=\s)", True),  # \s takes the newline the line alone does not have
        (r"a(?=[^x])", True),
        (r"a(?=[^x\n])", False),
        (r"a(?=.)", False),  # . never takes a newline without DOTALL
        (r"a(?s:(?=.))", True),
        (r"(?s)a(?=.)", True),
        (r"a$", True),  # anchors differ between a line and a block
        (r"a\Z", True),
        (r"a\b", False),  # a newline is no word character, as the end of a line is none
        (r"(?!\d{4}-)a", False),
        (r"(?<![^\n])a", False),
        (r"(a)(?=\1)", True),  # a backreference could be anything
        (r"(?![\w.-]++ +\| )a", False),
    ],
)
def test_sees_newline(regex: str, sees: bool) -> None:
    assert scanner.sees_newline(regex) is sees


def test_prefix_pattern_stays_within_a_line() -> None:
    assert not scanner.sees_newline(f"(?!{PREFIX_PATTERN})x")
    assert not scanner.sees_newline(f"(?!{PREFIX_SCAN_PATTERN})x")


def _below_100(text: str) -> int:
    if int(text) > 99:
        raise ValueError("too big")
    return int(text)


def test_a_guard_is_checked_where_its_group_is_read_for_another_name() -> None:
    # one group, two names: "status" (wanted, converted by the scan) and "small" (not wanted, guarded: the scan
    # checks its guard instead of converting it); "500" fails the guard as it fails the converter
    import pyparsing as pp

    from grammars import values

    inner = values.typed("status", pp.Regex(r"\d+").leave_whitespace(), int)
    grammar = values.typed("small", inner, _below_100, r"\d{1,2}(?!\d)").leave_whitespace() + pp.Regex("[a-z]+")("word")
    fast = lowering.FastParser(grammar)
    assert len({group for name, group, _, _ in fast._slots if name in ("status", "small")}) == 1  # one group
    scan = fast.scanner(("status",))
    assert scan is not None
    probe = fast.probe(("status",))
    lines = ["5 ok", "500 big", "42 fine"]
    assert [probe(line) for line in lines] == [(5,), None, (42,)]
    assert scan("\n".join(lines), 3) == [(5,), None, (42,)]


def test_a_grammar_that_takes_an_empty_line_looks_for_empty_lines() -> None:
    # the row count proves one match per line only where no match can take an empty line
    import pyparsing as pp

    fast = lowering.FastParser(pp.Regex(r"\d*")("digits"))
    scan = fast.scanner(("digits",))
    assert scan is not None
    assert scan("1\n\n2", 3) is None
    assert scan("1\n2", 2) == [("1",), ("2",)]
    combined = access.COMBINED.fast.scanner(WANTED, EXCLUDE)  # type: ignore[union-attr]
    assert combined is not None
    good = '10.0.0.1 - - [24/Nov/2026:06:00:00 +0000] "GET / HTTP/1.1" 200 5 "-" "curl/8"'
    assert combined.rows(f"{good}\n\n{good}", 3) is None  # an empty line: two rows for three lines
    assert combined.rows(f"{good}\n{good}", 2) is not None
