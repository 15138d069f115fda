"""Neo4j temporal values, from the server's own facts to exact JSON and back to driver objects.

The export query (:data:`TEMPORAL_FACTS`) asks the server for plain integers and strings
(calendar fields, nanosecond of day, offset seconds, zone) instead of letting the driver
hydrate temporal values: the driver cannot represent years outside 1-9999, rounds offsets to
whole minutes and folds ``Z`` and ``UTC`` together, and ``epochSeconds`` of a zoned datetime
before 1970 is neither floor nor truncation when the nanoseconds are below a millisecond.

A value the driver could not send back exactly is refused here, at backup time
(:class:`UnrestorableValue`), never written into a snapshot that cannot be restored.
"""

from __future__ import annotations

import datetime as _dt
from typing import Any

from neo4j.time import Date, DateTime, Duration, Time

from strongroom.errors import SourceError

NS = 1_000_000_000
DAY_NS = 86_400 * NS
MIN_YEAR, MAX_YEAR = 1, 9999  # what neo4j.time (and so the driver) can represent
_EPOCH_ORDINAL = _dt.date(1970, 1, 1).toordinal()
_DAYS_PER_400_YEARS = 146_097
# UTC instants the driver can send: 0001-01-01T00:00:00Z .. 9999-12-31T23:59:59.999999999Z
MIN_EPOCH_S = (_dt.date(1, 1, 1).toordinal() - _EPOCH_ORDINAL) * 86_400
MAX_EPOCH_S = (_dt.date(9999, 12, 31).toordinal() - _EPOCH_ORDINAL + 1) * 86_400 - 1

# Cypher: facts about one temporal value ``{z}`` (nod = nanosecond of the day).
_NOD = "{z}.hour * 3600000000000 + {z}.minute * 60000000000 + {z}.second * 1000000000 " \
       "+ {z}.nanosecond"
TEMPORAL_FACTS = (
    "CASE WHEN {z} IS :: DATE THEN ['date', {z}.year, {z}.month, {z}.day] "
    "WHEN {z} IS :: LOCAL TIME THEN ['localtime', " + _NOD + "] "
    "WHEN {z} IS :: ZONED TIME THEN ['time', " + _NOD + ", {z}.offsetSeconds] "
    "WHEN {z} IS :: LOCAL DATETIME THEN ['localdatetime', {z}.year, {z}.month, {z}.day, "
    + _NOD + "] "
    "WHEN {z} IS :: ZONED DATETIME THEN ['datetime', {z}.year, {z}.month, {z}.day, "
    + _NOD + ", {z}.offsetSeconds, {z}.timezone] "
    "ELSE ['duration', {z}.months, {z}.days, {z}.seconds, {z}.nanosecondsOfSecond] END"
)


class UnrestorableValue(SourceError):
    """A property value the backup refuses because the restore could not write it back."""


def ordinal(year: int, month: int, day: int) -> int:
    """Proleptic Gregorian day number (``date.toordinal``) for any year, even outside 1-9999:
    the calendar repeats every 400 years."""
    cycles = (year - 1) // 400
    return _dt.date(year - 400 * cycles, month, day).toordinal() + cycles * _DAYS_PER_400_YEARS


def iso_date(year: int, month: int, day: int) -> str:
    sign = "-" if year < 0 else ("+" if year > 9999 else "")
    return f"{sign}{abs(year):04d}-{month:02d}-{day:02d}"


def _clock(nod: int) -> str:
    s, ns = divmod(nod, NS)
    text = f"{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}"
    return f"{text}.{ns:09d}".rstrip("0") if ns else text


def _check_year(year: int, what: str) -> None:
    if not MIN_YEAR <= year <= MAX_YEAR:
        raise UnrestorableValue(f"{what} is outside the years {MIN_YEAR:04d}-{MAX_YEAR} "
                                "that the Neo4j Python driver can write back")


def encode_fact(fact: list[Any]) -> dict[str, Any]:
    """One :data:`TEMPORAL_FACTS` row as the tagged JSON of :mod:`.codec` (same format as
    before, so older snapshots still verify); raises :class:`UnrestorableValue`."""
    tag = fact[0]
    if tag == "date":
        _, y, m, d = fact
        _check_year(y, f"date {iso_date(y, m, d)}")
        return {"$t": "date", "v": iso_date(y, m, d)}
    if tag == "localtime":
        return {"$t": "localtime", "ns": fact[1]}
    if tag == "time":
        return {"$t": "time", "ns": fact[1], "off": fact[2]}
    if tag == "localdatetime":
        _, y, m, d, nod = fact
        _check_year(y, f"local datetime {iso_date(y, m, d)}T{_clock(nod)}")
        return {"$t": "localdatetime", "d": iso_date(y, m, d), "ns": nod}
    if tag == "datetime":
        _, y, m, d, nod, off, tz = fact
        secs = (ordinal(y, m, d) - _EPOCH_ORDINAL) * 86_400 + nod // NS - off
        if not MIN_EPOCH_S <= secs <= MAX_EPOCH_S:
            raise UnrestorableValue(
                f"datetime {iso_date(y, m, d)}T{_clock(nod)}[{tz}] is outside the UTC years "
                f"{MIN_YEAR:04d}-{MAX_YEAR} that the Neo4j Python driver can write back")
        return {"$t": "datetime", "s": secs, "ns": nod % NS, "tz": tz}
    if tag == "duration":
        _, mo, d, s, ns = fact
        try:
            dur = Duration(months=mo, days=d, seconds=s, nanoseconds=ns)
        except ValueError:
            raise UnrestorableValue(
                f"duration of {mo} months, {d} days, {s}.{ns:09d} seconds is larger than the "
                "Neo4j Python driver can write back") from None
        # the driver's normal form (seconds and nanoseconds of one sign), as before
        return {"$t": "duration", "m": dur.months, "d": dur.days, "s": dur.seconds,
                "ns": dur.nanoseconds}
    raise UnrestorableValue(f"unknown temporal value {fact!r:.80}")


class _Zone(_dt.tzinfo):
    """A fixed offset, optionally carrying a zone id the driver sends to the server verbatim."""

    def __init__(self, offset_s: int, zone: str | None = None) -> None:
        self._offset = _dt.timedelta(seconds=offset_s)
        self.zone = zone

    def utcoffset(self, dt: Any) -> _dt.timedelta:
        return self._offset

    def dst(self, dt: Any) -> _dt.timedelta:
        return _dt.timedelta(0)

    def tzname(self, dt: Any) -> str:
        return self.zone or str(self._offset)


class _TimeOffset(_Zone):
    """The offset of a zoned time, seconds included (``+05:45:30``). ``neo4j.time.Time`` hashes
    itself (the driver's packer does, for every parameter) through ``utcoffset(None)`` and a
    whole-minutes check; the structure it sends asks ``utcoffset(time)`` and carries seconds.
    So only the question without a time gets the offset cut to whole minutes."""

    def utcoffset(self, dt: Any) -> _dt.timedelta:
        if dt is None:
            return _dt.timedelta(minutes=self._offset // _dt.timedelta(minutes=1))
        return self._offset


def _int(v: Any, lo: int, hi: int) -> int:
    if type(v) is not int or not lo <= v <= hi:
        raise ValueError(f"{v!r} is not an integer in {lo}..{hi}")
    return v


def decode_temporal(tag: str, v: dict[str, Any]) -> Any:
    """The driver object for one tagged temporal; ValueError/KeyError/TypeError if malformed
    or not writable. Zoned datetimes travel as UTC instant plus zone text (Bolt 5 ``i``
    structure): the server reads an offset text such as ``+05:45:30`` as that offset, which a
    driver offset (whole minutes only) cannot carry."""
    if tag == "date":
        return Date.from_iso_format(v["v"])
    if tag == "localtime":
        return Time.from_ticks(_int(v["ns"], 0, DAY_NS - 1))
    if tag == "time":
        return Time.from_ticks(_int(v["ns"], 0, DAY_NS - 1),
                               tz=_TimeOffset(_int(v["off"], -64_800, 64_800)))
    if tag == "localdatetime":
        return DateTime.combine(Date.from_iso_format(v["d"]),
                                Time.from_ticks(_int(v["ns"], 0, DAY_NS - 1)))
    if tag == "datetime":
        tz = v["tz"]
        if not isinstance(tz, str) or not tz:
            raise ValueError("zone is not a non-empty string")
        days, sod = divmod(_int(v["s"], MIN_EPOCH_S, MAX_EPOCH_S), 86_400)
        wall = DateTime.combine(Date.from_ordinal(_EPOCH_ORDINAL + days),
                                Time.from_ticks(sod * NS + _int(v["ns"], 0, NS - 1)))
        return wall.replace(tzinfo=_Zone(0, tz))
    if tag == "duration":
        return Duration(months=v["m"], days=v["d"], seconds=v["s"], nanoseconds=v["ns"])
    raise KeyError(tag)


TAGS = frozenset({"date", "localtime", "time", "localdatetime", "datetime", "duration"})

