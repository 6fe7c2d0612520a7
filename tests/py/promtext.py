"""Parse and check the Prometheus text exposition format (0.0.4).

    import promtext
    samples = promtext.parse(text)   # {(name, frozenset(labels)): value}

parse() raises ValueError naming the line for anything the format does
not allow: a sample before its family's # TYPE, a TYPE other than
counter/gauge/histogram/summary/untyped, a counter not named *_total, a
bad metric or label name, an unescaped quote, a value that is not a
float, a duplicate sample, a missing final newline.  Used by the tests
that scrape nader's coordinator with real HTTP.
"""
import re

NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*$")
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"')
TYPES = {"counter", "gauge", "histogram", "summary", "untyped"}


def _value(text, where):
    if text in ("NaN", "+Inf", "-Inf"):
        return float(text.replace("Inf", "inf"))
    try:
        return float(text)
    except ValueError:
        raise ValueError("%s: value %r is not a number" % (where, text))


def _labels(text, where):
    out, pos = {}, 0
    while pos < len(text):
        m = LABEL.match(text, pos)
        if not m:
            raise ValueError("%s: bad labels %r" % (where, text))
        key = m.group(1)
        if key in out:
            raise ValueError("%s: label %s twice" % (where, key))
        out[key] = (m.group(2).replace("\\n", "\n").replace('\\"', '"')
                    .replace("\\\\", "\\"))
        pos = m.end()
        if pos < len(text):
            if text[pos] != ",":
                raise ValueError("%s: expected ',' in %r" % (where, text))
            pos += 1
    return out


def parse(text):
    if not text.endswith("\n"):
        raise ValueError("the exposition does not end with a newline")
    types, helps, samples = {}, set(), {}
    for n, line in enumerate(text.split("\n")[:-1], 1):
        where = "line %d" % n
        if line.startswith("# HELP "):
            name = line[7:].split(" ", 1)[0]
            if not NAME.match(name) or name in helps:
                raise ValueError("%s: bad or repeated HELP %s" % (where, name))
            helps.add(name)
            continue
        if line.startswith("# TYPE "):
            parts = line[7:].split(" ")
            if len(parts) != 2 or parts[1] not in TYPES:
                raise ValueError("%s: bad TYPE line" % where)
            if parts[0] in types:
                raise ValueError("%s: TYPE %s twice" % (where, parts[0]))
            if parts[1] == "counter" and not parts[0].endswith("_total"):
                raise ValueError("%s: counter %s not named *_total"
                                 % (where, parts[0]))
            types[parts[0]] = parts[1]
            continue
        if line.startswith("#") or not line:
            continue
        m = re.match(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)( \d+)?$",
                     line)
        if not m:
            raise ValueError("%s: not a sample: %r" % (where, line))
        name = m.group(1)
        if name not in types:
            raise ValueError("%s: sample of %s before its TYPE"
                             % (where, name))
        labels = _labels(m.group(3) or "", where)
        key = (name, frozenset(labels.items()))
        if key in samples:
            raise ValueError("%s: duplicate sample %s" % (where, line))
        samples[key] = _value(m.group(4), where)
    missing = set(types) - helps
    if missing:
        raise ValueError("families without HELP: %s" % sorted(missing))
    return samples


def get(samples, name, **labels):
    """The value of one sample, or KeyError."""
    return samples[(name, frozenset(labels.items()))]
