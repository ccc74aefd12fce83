"""NGINX error log: one entry (possibly several physical lines) into typed fields.

Shape (``ngx_log_error_core`` + ``ngx_http_log_error``)::

    YYYY/MM/DD HH:MM:SS [level] pid#tid: *cid message[ (errno: strerror)][ while action]
        [, client: X][, server: X][, request: "X"][, subrequest: "X"][, upstream: "X"]
        [, host: "X"][, referrer: "X"]

The context is the *trailing* run of those fields: the message itself may contain
``, client: `` (FastCGI stderr, user names), so the message stops only at a ``, client: ``
after which a whole valid context runs to the end. Values are written raw by nginx (no
escaping), so a quoted value ends at a ``"`` followed by a later key or the end. Lines
are cut at 2048 bytes: a value may be unterminated, a key cut half-way.
"""

from __future__ import annotations

import re
from datetime import datetime
from functools import lru_cache
from typing import Any, Final

import pyparsing as pp

from grammars import lowering, values
from grammars.portable_regex import portable
from grammars.result import Fields, ParseError

# NGX_MAX_ERROR_STR is 2048: a cut entry is 2047 bytes before its line feed.
CUT_BYTES: Final = 2047

_KEYS: Final = ("client", "server", "login", "request", "subrequest", "upstream", "host", "referrer")


def _quoted(key: str) -> str:
    """Raw body of the quoted value of ``key``: it ends at a quote before a later key, or at the end."""
    later = "|".join(_KEYS[_KEYS.index(key) + 1 :])
    nxt = rf"\Z|, (?:{later}): " if later else r"\Z"
    return portable(rf'(?:[^",]++|,(?! client: )|"(?!{nxt}))*+')


def _cut_key() -> str:
    """Any non-empty prefix of ``, key: "`` for the keys after client (cut by the 2048 limit), as a trie."""
    trie: dict[str, Any] = {}
    for key in _KEYS[1:]:
        node = trie
        for char in f', {key}: "':
            node = node.setdefault(char, {})

    def emit(node: dict[str, Any]) -> str:
        alternatives = [re.escape(char) + (f"(?:{emit(child)})?" if child else "") for char, child in node.items()]
        return alternatives[0] if len(alternatives) == 1 else "(?:" + "|".join(alternatives) + ")"

    return emit(trie)


_UNQUOTED: Final = r"[^,]*+"
_MAIL_UPSTREAM: Final = r'[^,"]*+'
_QUOTED: Final = {key: _quoted(key) for key in _KEYS if key not in ("client", "server")}
_CUT_KEY: Final = _cut_key()


def _unclosed(text: str) -> bool:
    return not text


def _cut_key_seen(text: str) -> bool:
    return True


values.set_inline(_unclosed, "({v} == '')")
values.set_inline(_cut_key_seen, "True")

# close ::= '"' | end   (no closing quote: the value was cut at 2048 bytes)
_CLOSE: Final = values.typed("truncated", pp.Regex(r'"|\Z').set_name("closing quote"), _unclosed)


def _lit(text: str) -> pp.Suppress:
    return pp.Suppress(pp.Literal(text))


def _value(key: str) -> pp.ParserElement:
    """A quoted context value without its quotes (an unterminated one, cut at 2048 bytes, runs to the end)."""
    return _lit('"') + pp.Regex(_QUOTED[key])(key).set_name(f"quoted {key}") + _CLOSE


@lru_cache(maxsize=4096)
def _error_time(text: str) -> datetime:
    """``2016/10/25 14:49:34`` → naive datetime; cached because neighbours share a second."""
    try:
        return datetime(
            int(text[0:4]), int(text[5:7]), int(text[8:10]), int(text[11:13]), int(text[14:16]), int(text[17:19])
        )
    except ValueError as exc:
        raise ValueError(f"impossible time {text!r}: {exc}") from None


# time ::= YYYY "/" MM "/" DD " " HH ":" MM ":" SS   (server-local, no offset)
# 2016/10/25 14:49:34
TIME = values.typed("time", pp.Regex(r"\d{4}/\d\d/\d\d \d\d:\d\d:\d\d").set_name("error time"), _error_time)

_LEVELS: Final = "emerg|alert|crit|error|warn|notice|info|debug"


def _console_level(text: str) -> str:
    return text.removeprefix("nginx: ").strip("[]: ")


# level ::= "emerg" | "alert" | "crit" | "error" | "warn" | "notice" | "info" | "debug"
# error
LEVEL = pp.Regex(f"(?:{_LEVELS})")("level").set_name("level")

# origin ::= pid "#" tid ": " ["*" cid " "]
# 54053#0: *1
ORIGIN = (
    values.typed("pid", pp.Regex(r"\d+"), int)
    + _lit("#")
    + values.typed("tid", pp.Regex(r"\d+"), int)
    + _lit(": ")
    + pp.Opt(_lit("*") + values.typed("cid", pp.Regex(r"\d+"), int) + _lit(" "))
).set_name("origin")

# console ::= "nginx: [" level "] " | "[" level "]: "   (stderr of the binary; the old form has no "nginx: ")
# nginx: [emerg]
CONSOLE = values.typed(
    "level", pp.Regex(rf"nginx: \[(?:{_LEVELS})\] |\[(?:{_LEVELS})\]: ").set_name("console level"), _console_level
)

# head ::= time " [" level "] " origin | console
# 2016/10/25 14:49:34 [error] 54053#0: *1
HEAD = (TIME + _lit(" [") + LEVEL + _lit("] ") + ORIGIN | CONSOLE).set_name("head")

# message ::= { char } up to the last ", client: "   (values cannot hold ", client: ", so only the last can
#             start a context that runs to the end)
# connect() to unix:/run/php/www.sock failed (2: No such file or directory) while connecting to upstream
MESSAGE = pp.Regex(portable(r"(?:[^,]++|,(?! client: )|, client: (?=(?:[^,]++|,(?! client: ))*+, client: ))*+"))(
    "message"
).set_name("message")

# first ::= { char } up to the first ", client: "   (the fast path: when a context runs from there to the end,
#           it is also the last one, because no context value can hold ", client: ")
# recv() failed (104: Connection reset by peer) while reading response header from upstream
FIRST_MESSAGE = pp.Regex(portable(r"(?:[^,]++|,(?! client: ))*+"))("message").set_name("message up to the first client")

# whole ::= { char }   (the trailing ", client: " does not start a valid context: all of it is message)
# user "x" was not found, client: 1.2.3.4, bogus: 1
WHOLE = pp.Regex(r"[\s\S]*+")("message").set_name("message without context")

# request_line ::= '"' method " " uri " " protocol '"'   (read ahead: the common shape; other requests
#                  are split by split_request)
# "GET /index.php?id=1 HTTP/1.1"
REQUEST_LINE = (
    _lit('"')
    + pp.Regex(r"[A-Z][A-Z_-]*+")("method")
    + _lit(" ")
    + pp.Regex(r'[^ "]++')("uri")
    + _lit(" ")
    + pp.Regex(portable(r"HTTP/\d(?:\.\d)?+"))("protocol")
    + pp.Regex(r'"(?=, [a-z]++: |\Z)')
).set_name("request line")

# context ::= ", client: " X [", server: " X] [", login: " Q] [", request: " Q] [", subrequest: " Q]
#             [", upstream: " (Q | X)] [", host: " Q] [", referrer: " Q] [cut key]
# , client: 127.0.0.1, server: localhost, request: "GET / HTTP/1.1", host: "localhost"
CONTEXT = (
    _lit(", client: ")
    + pp.Regex(_UNQUOTED)("client")
    + pp.Opt(_lit(", server: ") + pp.Regex(_UNQUOTED)("server"))
    + pp.Opt(_lit(', login: "') + pp.Suppress(pp.Regex(_QUOTED["login"])) + _CLOSE)
    + pp.Opt(_lit(", request: ") + pp.FollowedBy(pp.Opt(REQUEST_LINE)) + _value("request"))
    + pp.Opt(_lit(", subrequest: ") + _value("subrequest"))
    + pp.Opt(_lit(", upstream: ") + (_value("upstream") | pp.Regex(_MAIL_UPSTREAM)("upstream")))
    + pp.Opt(_lit(", host: ") + _value("host"))
    + pp.Opt(_lit(", referrer: ") + _value("referrer"))
    + pp.Opt(values.typed("truncated", pp.Regex(_CUT_KEY).set_name("cut key"), _cut_key_seen))
).set_name("context")

# entry ::= head (message [context] | whole) end
# 2014/07/15 16:42:19 [error] 4262#0: *417 recv() failed (104: Connection reset by peer) while ...
ENTRY: Final = (
    (HEAD + (MESSAGE + pp.Opt(CONTEXT) + pp.StringEnd() | WHOLE + pp.StringEnd()))
    .leave_whitespace()
    .set_name("nginx error entry")
)

# entry_first ::= head first [context] end   (same fields as entry wherever it matches)
# 2020/11/13 22:18:02 [error] 15276#15276: *1 recv() failed (104: Connection reset by peer) while ...
ENTRY_FIRST: Final = (HEAD + FIRST_MESSAGE + pp.Opt(CONTEXT) + pp.StringEnd()).leave_whitespace()

_FAST: Final = lowering.FastParser(ENTRY)
_FAST_FIRST: Final = lowering.FastParser(ENTRY_FIRST.set_name("nginx error entry, first context"))
_PARSE: Final = _FAST_FIRST.with_fallback(_FAST.with_fallback(lambda text: lowering.parse_with(ENTRY, None, text)))

# The message's own parts, read with string methods and two anchored regexes (then cached per message):
# message ::= [syscall [" to " target " failed"]] text [" (" errno ": " strerror ")"] [" while " action]
# connect() to unix:/run/php/www.sock failed (2: No such file or directory) while connecting to upstream
_SYSCALL = re.compile(r"([A-Za-z_]\w*\(\))(?: to (\S+) failed)?")
# the last " (N: " wins: the greedy lead backs off to it from the end, one step per character, so one
# linear pass (matching each " (" in turn and running to the end from each was quadratic)
_ERRNO = re.compile(r"[^\n]* \((\d+): ([^\n]*)\)\Z")
# protocol_mismatch: what NGINX read from the upstream is not the protocol it speaks to it (FastCGI framing, or
# no HTTP status line for proxy_pass); invalid_header: a FastCGI/HTTP response header NGINX refuses (nginx
# src/http/modules/ngx_http_fastcgi_module.c, ngx_http_proxy_module.c; 1.21.1+ quote the bad line)
_KIND = re.compile(
    r"(?:(?P<connect_failed>connect\(\) )|(?P<recv_failed>recv\(\) failed)"
    r"|(?P<premature_close>upstream prematurely closed )|(?P<too_big_header>upstream sent too big header)"
    r"|(?P<protocol_mismatch>upstream sent (?:unsupported FastCGI|invalid FastCGI|unexpected FastCGI"
    r"|no valid HTTP/1\.0 header))"
    r"|(?P<invalid_header>upstream sent (?:invalid header|invalid status|duplicate header line"
    r'|invalid "Content-Length"|invalid "Transfer-Encoding"|"Content-Length" and "Transfer-Encoding"))'
    r"|(?P<upstream_timed_out>upstream timed out)|(?P<no_live_upstreams>no live upstreams)"
    r"|(?P<fastcgi_stderr>FastCGI sent in stderr: )|(?P<limiting_requests>limiting requests))"
)
_ENTRY_START = re.compile(r"\d{4}/\d\d/\d\d \d\d:\d\d:\d\d \[|nginx: \[|\[[a-z]+\]: ")
_HTTP_METHOD = re.compile(r"[A-Z][A-Z_-]*+ ")


def is_entry_start(line: str) -> bool:
    """True when ``line`` starts a new entry (continuation lines of FastCGI stderr do not)."""
    return _ENTRY_START.match(line) is not None


def split_request(request: str | None) -> tuple[str | None, str | None, str | None]:
    """``"GET /x?q HTTP/1.1"`` → (method, uri, protocol); anything unparsable → Nones."""
    if not request or _HTTP_METHOD.match(request) is None:
        return None, None, None
    method, _, rest = request.partition(" ")
    uri, sep, protocol = rest.rpartition(" ")
    if sep and protocol.startswith("HTTP/"):
        return method, uri, protocol
    return method, rest, None


def message_parts(message: str) -> Fields:
    """``connect() to X failed (2: ENOENT) while connecting`` → syscall, connect_target, errno, strerror,
    action and kind. A new dict each call; parsing uses ``_message_parts``, the cached one, because the
    messages behind 502s repeat word for word (``recv() failed (104: …) while reading …``).

    The action is the last `` while …`` with no quote or line break after it (FastCGI text is quoted);
    the errno is the last `` (N: …)`` right before it. A fixed number of string methods and anchored
    regexes, each one linear pass: this runs per line, and a hostile entry may be megabytes long.
    """
    head, action = message, None
    where = message.rfind(" while ")
    if where >= 0:
        tail = message[where + 7 :]
        if '"' not in tail and "\n" not in tail:
            head, action = message[:where], tail
    errno: int | None = None
    strerror: str | None = None
    # the strerror holds no line break, so only the head's last physical line can carry the errno
    if head.endswith(")") and (found := _ERRNO.match(head, head.rfind("\n") + 1)) is not None:
        errno, strerror = int(found[1]), found[2]
    syscall = target = None
    if (call := _SYSCALL.match(message)) is not None:
        syscall = call[1]
        target = call[2] if syscall == "connect()" else None
    kind = _KIND.match(message)
    return {
        "syscall": syscall, "connect_target": target, "errno": errno, "strerror": strerror, "action": action,
        "kind": (kind.lastgroup if kind is not None else None) or "other",
    }  # fmt: skip


_message_parts: Final = lru_cache(maxsize=8192)(message_parts)


def _finish(fields: Fields, text: str) -> Fields:
    """Derive the message parts, the request split, the kind and the truncation flag."""
    fields.update(_message_parts(fields["message"]))  # read only: update copies the values
    if fields["method"] is None and fields["request"] is not None:
        fields["method"], fields["uri"], fields["protocol"] = split_request(fields["request"])
    # the grammar flags a cut key or an unclosed last value; a 2047-byte entry was cut anywhere
    if not fields["truncated"]:
        fields["truncated"] = len(text) * 4 >= CUT_BYTES and len(text.encode("utf-8", "surrogateescape")) >= CUT_BYTES
    return fields


def parse_error_entry(text: str) -> Fields | ParseError:
    """Parse one error-log entry (``\\n``-joined when FastCGI stderr spans lines). Never raises."""
    if text.endswith("\n"):
        text = text.rstrip("\r\n")
    fields: Fields | ParseError = _PARSE(text)
    return fields if isinstance(fields, ParseError) else _finish(fields, text)
