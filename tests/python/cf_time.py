#!/usr/bin/python3
"""Cross-checks gridstore's time arithmetic against cftime (Debian's python3-cftime).

Usage:
  cf_time.py check ROWS.json    every row {calendar, units, value, iso, rounded} that
                                gridstore wrote must agree with cftime: date2num(iso) ==
                                value (within half a second when `rounded`: value has a
                                fraction of a second) and num2date(value), rounded to the
                                second, == iso.
  cf_time.py make OUT.json SEED COUNT
                                writes COUNT rows per (calendar, units) pair computed by
                                cftime from pseudo-random instants, and one per day around
                                the end of February of the edge years, for gridstore to check
                                (the other direction). The pairs are the UNITS x CALENDARS
                                of the Rust side, passed in OUT.json's sibling request file
                                OUT.json.request ({"calendars": [...], "units": [...],
                                "years": [edge years]}).

Years use astronomical numbering (year 0 exists), so cftime runs with has_year_zero=True
(its default for the standard calendar has no year 0). "Agree" means to the second: values
may differ by float rounding only (under a millisecond), which a wrong leap rule, a wrong
month length or a misplaced 1582 switch (a day or more) cannot hide in.
"""
import datetime
import json
import random
import re
import sys
import warnings

import cftime

# cftime warns that year 0 in the standard calendar is outside CF; it is deliberate here.
warnings.filterwarnings("ignore", category=cftime.CFWarning)

ISO = re.compile(r"^(-?\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)Z$")
TOLERANCE_SECONDS = 1e-3


def unit_seconds(units, cal):
    """The length of one unit, as cftime reads the units string."""
    one, zero = (cftime.num2date(v, units, calendar=cal, has_year_zero=True) for v in (1, 0))
    return (one - zero).total_seconds()


def parse_iso(text, calendar):
    m = ISO.match(text)
    if not m:
        raise ValueError(f"{text!r} is not the ISO form gridstore writes")
    y, mo, d, h, mi, s = (int(g) for g in m.groups())
    return cftime.datetime(y, mo, d, h, mi, s, calendar=calendar, has_year_zero=True)


def fields(dt):
    return (dt.year, dt.month, dt.day, dt.hour, dt.minute, dt.second)


def to_second(dt):
    """num2date's result rounded to the nearest second (ties never occur in the rows)."""
    if dt.microsecond >= 500000:
        dt = dt + datetime.timedelta(seconds=1)
    return dt.replace(microsecond=0)


def iso(dt):
    y = f"-{-dt.year:04d}" if dt.year < 0 else f"{dt.year:04d}"
    return f"{y}-{dt.month:02d}-{dt.day:02d}T{dt.hour:02d}:{dt.minute:02d}:{dt.second:02d}Z"


def check(path):
    with open(path) as f:
        rows = json.load(f)["rows"]
    bad = []
    for row in rows:
        cal, units, value, text = row["calendar"], row["units"], row["value"], row["iso"]
        when = parse_iso(text, cal)
        num = cftime.date2num(when, units, calendar=cal, has_year_zero=True)
        back = to_second(cftime.num2date(value, units, calendar=cal, has_year_zero=True))
        # A "rounded" row's value lies up to half a second from its instant.
        allowed = TOLERANCE_SECONDS + (0.5 if row.get("rounded") else 0.0)
        off = abs(num - value) * unit_seconds(units, cal)
        if off > allowed or fields(back) != fields(when):
            bad.append(f"{cal} {units!r}: {text} -> gridstore {value!r}, cftime {num!r}; "
                       f"{value!r} -> cftime {iso(back)}")
    for line in bad[:20]:
        print(line)
    print(f"{len(rows) - len(bad)} of {len(rows)} rows agree with cftime {cftime.__version__}")
    return 1 if bad or not rows else 0


def random_instant(rng, cal, first, last, years):
    """Half uniform over the whole range, half within a day or two of an edge year's days."""
    if rng.random() < 0.5:
        return first + datetime.timedelta(seconds=rng.randrange(int((last - first).total_seconds())))
    y = rng.choice(years) + rng.choice((-1, 0, 1))
    y = max(first.year + 1, min(last.year - 1, y))
    try:
        base = cftime.datetime(y, rng.randint(1, 12), rng.randint(1, 28), calendar=cal,
                               has_year_zero=True)
    except ValueError:  # 1582-10-05..14 do not exist in the standard calendar
        base = cftime.datetime(1582, 10, 15, calendar=cal, has_year_zero=True)
    return base + datetime.timedelta(seconds=rng.randrange(-3 * 86400, 3 * 86400))


def edge_instants(rng, cal, years):
    """Every day from 20 February to 10 March of each edge year and its neighbours (and of
    October 1582), at a random time of day: the days a wrong leap rule gets wrong."""
    starts = [(y + d, 2) for y in years for d in (-1, 0, 1) if y + d < 9999] + [(1582, 10)]
    out = []
    for year, month in starts:
        first = cftime.datetime(year, month, 1, calendar=cal, has_year_zero=True)
        for day in range(19, 39):
            out.append(first + datetime.timedelta(days=day, seconds=rng.randrange(86400)))
    return out


def make(path, seed, count):
    with open(path + ".request") as f:
        request = json.load(f)
    rng = random.Random(seed)
    rows = []
    for cal in request["calendars"]:
        first = cftime.datetime(-9999, 1, 1, calendar=cal, has_year_zero=True)
        last = cftime.datetime(9999, 12, 28, calendar=cal, has_year_zero=True)
        for units in request["units"]:
            per_unit = unit_seconds(units, cal)
            instants = [random_instant(rng, cal, first, last, request["years"])
                        for _ in range(count)]
            for when in instants + edge_instants(rng, cal, request["years"]):
                # Whole units half the time, whole seconds (a fraction of a unit) otherwise.
                if rng.random() < 0.5:
                    ref = cftime.num2date(0, units, calendar=cal, has_year_zero=True)
                    whole = (when - ref).total_seconds() // per_unit
                    when = ref + datetime.timedelta(seconds=whole * per_unit)
                value = float(cftime.date2num(when, units, calendar=cal, has_year_zero=True))
                back = to_second(cftime.num2date(value, units, calendar=cal, has_year_zero=True))
                rows.append({"calendar": cal, "units": units, "value": value, "iso": iso(back)})
    with open(path, "w") as f:
        json.dump({"rows": rows}, f)
    print(f"wrote {len(rows)} rows")
    return 0


def main(argv):
    if len(argv) == 3 and argv[1] == "check":
        return check(argv[2])
    if len(argv) == 5 and argv[1] == "make":
        return make(argv[2], int(argv[3]), int(argv[4]))
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
