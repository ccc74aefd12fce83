"""Which log a line comes from: ``nginx_access``, ``nginx_error``, ``php_fpm``,
``php_fpm_slowlog`` or ``php_fpm_access``.

Shipper prefixes are removed first. The cheap shape checks come first; the access formats
(the caller's own, then ``combined`` and ``main``) are tried last because they parse.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from itertools import islice
from typing import Final

from grammars import access
from grammars.access import AccessFormat
from grammars.error import is_entry_start
from grammars.prefix import strip_prefix
from grammars.result import ParseError

Detection = tuple[str, AccessFormat | None]

# how many non-blank lines detect_lines looks at
SAMPLE_LINES: Final = 50

_LEVELS: Final = "ALERT|ERROR|WARNING|NOTICE|DEBUG|SYSTEM"
_SLOWLOG = re.compile(
    r"\[\d\d-[A-Z][a-z]{2}-\d{4} \d\d:\d\d:\d\d(?:\.\d{6})?\]  \[pool |script_filename = |\[0x[0-9a-fA-F]+\] "
)
_FPM = re.compile(
    rf"(?:\[\d\d-[A-Z][a-z]{{2}}-\d{{4}} \d\d:\d\d:\d\d(?:\.\d+)?\] )?(?:(?:{_LEVELS}):|\[(?:{_LEVELS})\]) "
)
_FPM_ACCESS = re.compile(r'\S+ - \S* \d\d/[A-Z][a-z]{2}/\d{4}:\d\d:\d\d:\d\d [+-]\d{4} "[A-Z]+ [^"]*" \d{3}\Z')
_BUILT_IN: Final = (access.COMBINED, access.MAIN, access.COMBINED_PLUS)


def detect_line(line: str, formats: Sequence[AccessFormat] = (), quick: bool = False) -> Detection | None:
    """The log type of one line (and the access format that parsed it), or None.

    ``quick``: an access format's lowered regex alone answers (the differential tests hold it to pyparsing's
    answer): for every line of a stream, where running pyparsing on each line nothing matches costs ~30 µs."""
    _, line = strip_prefix(line.rstrip("\r\n"))
    if not line.strip():
        return None
    if is_entry_start(line):
        return "nginx_error", None
    if _SLOWLOG.match(line):
        return "php_fpm_slowlog", None
    if _FPM.match(line):
        return "php_fpm", None
    if _FPM_ACCESS.match(line):
        return "php_fpm_access", None
    for fmt in (*formats, *_BUILT_IN):
        if _matches(fmt, line, quick):
            return "nginx_access", fmt
    if line.startswith("{") and _json_access(line):
        return "nginx_access", None
    return None


def _json_access(line: str) -> bool:
    """A JSON access line no configured format reads: keys named like nginx variables, with a status, a time and
    a request (goaccess#2338's `{"@timestamp":…,"request":"POST /x HTTP/1.1","status":"200",…}`)."""
    fields = access.parse_json_access(line)
    return (
        not isinstance(fields, ParseError)
        and isinstance(fields.get("status"), int)
        and fields.get("time") is not None
        and (fields.get("request") or fields.get("uri")) is not None
    )


# Detection tries every access format on lines that may be none of them: the full pyparsing grammar (which
# only runs where the lowered regex declines) is kept for lines short enough to be worth it.
_FALLBACK_MAX_CHARS: Final = 8192


def _matches(fmt: AccessFormat, line: str, quick: bool = False) -> bool:
    if fmt.fast is not None and fmt.fast.parse(line) is not None:
        return True
    if fmt.fast is not None and (quick or len(line) > _FALLBACK_MAX_CHARS):
        return False
    return not isinstance(fmt.parse(line), ParseError)


def detect_lines(lines: Iterable[str], formats: Sequence[AccessFormat] = ()) -> Detection | None:
    """The type most of the first ``SAMPLE_LINES`` non-blank lines have, or None.

    Lines nothing recognises (FastCGI continuation lines, stack traces) do not vote.
    """
    votes: Counter[tuple[str, int]] = Counter()
    found: dict[tuple[str, int], Detection] = {}
    sample = islice((line for line in lines if line.strip()), SAMPLE_LINES)
    for line in sample:
        detection = detect_line(line, formats)
        if detection is None:
            continue
        key = (detection[0], id(detection[1]))
        votes[key] += 1
        found.setdefault(key, detection)
    if not votes:
        return None
    return found[votes.most_common(1)[0][0]]
