"""``ZoneHold``, the pure core of the service's ``timezone = "auto"`` (#18): no broker, no clock."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, timedelta, timezone
from pathlib import Path

import pytest

from processor.runners.zone_hold import LEARN_TRIES, ZoneHold

NEW_YORK = timezone(timedelta(hours=-5))
UTC = UTC


@dataclass(frozen=True)
class Step:
    """One thing the driver does: ``admit`` a record (stream, offset, host, needs an offset) or ``observe`` an
    access line of a host (its offset, or None)."""

    kind: str  # admit | observe
    host: str
    stream: str = ""
    offset: int = 0
    needs_zone: bool = True
    zone: timezone | None = None


def admit(stream: str, offset: int, host: str, needs_zone: bool = True) -> Step:
    return Step("admit", host, stream, offset, needs_zone)


def observe(host: str, zone: timezone | None = NEW_YORK) -> Step:
    return Step("observe", host, zone=zone)


@dataclass(frozen=True)
class Case:
    name: str
    steps: list[Step]
    fed: list[str]  # "stream@offset" in the order the driver feeds them
    held: dict[str, int] = field(default_factory=dict)  # held_offsets() at the end
    zones: dict[str, timezone] = field(default_factory=dict)


def run(case: Case) -> tuple[ZoneHold[str, str], list[str]]:
    hold: ZoneHold[str, str] = ZoneHold(UTC, hold_ms=1000)
    fed: list[str] = []
    for step in case.steps:
        if step.kind == "observe":
            for _, records in hold.observe(step.host, step.zone):
                fed += records
        elif hold.admit(step.stream, step.offset, step.host, step.needs_zone, f"{step.stream}@{step.offset}", 0):
            fed.append(f"{step.stream}@{step.offset}")
    return hold, fed


CASES = [
    # the reason for all this: a host's error line came before its first access line; it waits, then goes
    Case("error before access", [admit("err", 0, "ny"), observe("ny")], ["err@0"], zones={"ny": NEW_YORK}),
    # learned first: nothing waits
    Case("access before error", [observe("ny"), admit("err", 0, "ny")], ["err@0"]),
    # one stream keeps its order: a known host's record behind a held one waits too (the watermark and the
    # multi-line assembler see the partition as it was written)
    Case(
        "a blocked stream keeps its order",
        [observe("ldn", UTC), admit("err", 0, "ny"), admit("err", 1, "ldn"), admit("err", 2, "ny")],
        [],
        held={"err": 0},
    ),
    Case(
        "released in order once learned",
        [observe("ldn", UTC), admit("err", 0, "ny"), admit("err", 1, "ldn"), admit("err", 2, "ny"), observe("ny")],
        ["err@0", "err@1", "err@2"],
    ),
    # another partition is not blocked by this one
    Case(
        "other streams flow",
        [admit("err", 0, "ny"), observe("ldn", UTC), admit("fpm", 5, "ldn")],
        ["fpm@5"],
        held={"err": 0},
    ),
    # a record that needs no offset (an access line on a mixed stream, an envelope dead letter) passes when the
    # stream is not blocked, and waits its turn when it is
    Case(
        "no offset needed",
        [admit("mix", 0, "ny", needs_zone=False), admit("mix", 1, "ny"), admit("mix", 2, "ny", needs_zone=False)],
        ["mix@0"],
        held={"mix": 1},
    ),
    # a release stops at the next record whose host is still unknown
    Case(
        "two unknown hosts in one stream",
        [admit("err", 0, "a"), admit("err", 1, "b"), admit("err", 2, "a"), observe("a")],
        ["err@0"],
        held={"err": 1},
    ),
    # lines that teach nothing (no offset in their time) use up tries, as replay reads a file's first 20 lines
    Case(
        "tries run out: the fallback",
        [admit("err", 0, "ny"), *[observe("ny", None)] * LEARN_TRIES],
        ["err@0"],
        zones={"ny": UTC},
    ),
    Case(
        "tries left: still waiting",
        [admit("err", 0, "ny"), *[observe("ny", None)] * (LEARN_TRIES - 1)],
        [],
        held={"err": 0},
    ),
    # an offset, once known, is the host's: a later line with another never re-reads anything
    Case("first offset stays", [observe("ny"), observe("ny", UTC)], [], zones={"ny": NEW_YORK}),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_zone_hold(case: Case) -> None:
    hold, fed = run(case)
    assert fed == case.fed
    assert hold.held_offsets() == case.held
    assert hold.size == sum(1 for s in case.steps if s.kind == "admit") - len(case.fed)
    for host, zone in case.zones.items():
        assert hold.zones[host] == zone


def test_fallback_waits_for_the_access_partitions_and_the_hold_time() -> None:
    hold: ZoneHold[str, str] = ZoneHold(UTC, hold_ms=1000)
    assert not hold.admit("err", 0, "ny", True, "e0", now_ms=10_000)
    # a catch-up: the access partition is not read to its end, however long it takes
    assert hold.expire(99_000, settled=set(), room=100) == ([], [])
    # read to its end, but not for the hold time yet
    assert hold.expire(10_500, settled={"err"}, room=100) == ([], [])
    assert hold.expire(11_000, settled={"err"}, room=100) == (["ny"], [("err", ["e0"])])
    assert hold.zones["ny"] == UTC and hold.fallen_back == 1 and hold.size == 0


def test_more_held_than_room_releases_the_longest_waiting_host() -> None:
    hold: ZoneHold[str, str] = ZoneHold(UTC, hold_ms=60_000)
    hold.admit("err", 0, "old", True, "e0", now_ms=1)
    hold.admit("fpm", 0, "new", True, "f0", now_ms=2)
    hold.admit("fpm", 1, "new", True, "f1", now_ms=3)
    assert hold.waiting() == ["old", "new"]
    fallen, released = hold.expire(4, settled=set(), room=2)
    assert (fallen, released) == (["old"], [("err", ["e0"])])
    fallen, released = hold.expire(4, settled=set(), room=0)
    assert (fallen, released) == (["new"], [("fpm", ["f0", "f1"])])
    assert hold.size == 0 and hold.held_offsets() == {}


def test_release_all_and_drop() -> None:
    hold: ZoneHold[str, str] = ZoneHold(UTC, hold_ms=0)
    hold.admit("err", 3, "a", True, "e3", 0)
    hold.admit("err", 4, "b", True, "e4", 0)
    assert hold.drop() == 2 and hold.held_offsets() == {} and hold.waiting() == []
    hold.admit("err", 3, "a", True, "e3", 0)  # read again after a rebuild
    hold.admit("err", 4, "b", True, "e4", 0)
    assert hold.release_all() == (["a", "b"], [("err", ["e3", "e4"])])
    assert hold.size == 0 and hold.zones == {"a": UTC, "b": UTC}


def test_the_service_config_takes_auto(tmp_path: Path) -> None:
    from processor.core.errors import UserConfigError
    from processor.runners.service_config import load_config

    path = tmp_path / "badgateway.toml"
    path.write_text('[[inputs]]\ntopic = "t"\n\n[diagnosis]\ntimezone = "auto"\n')
    assert load_config(str(path), environ={}).diagnosis.timezone == "auto"
    path.write_text('[kafka]\nrepartition = true\n\n[[inputs]]\ntopic = "t"\n\n[diagnosis]\ntimezone = "auto"\n')
    with pytest.raises(UserConfigError, match="repartition"):
        load_config(str(path), environ={})
