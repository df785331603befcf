#!/usr/bin/env python3
"""How tests/data/trim.json was generated:

    python3 tests/data/trim.py > tests/data/trim.json

An implementation of the trimming of Go's build farm written from Go's documented
semantics, independent of gobuildkey: it imports nothing from the crate, only Python's
standard library (hmac and hashlib for the keys, the strict UTF-8 decoder for validity).

- Masters (genbuilderkey, the coordinator) and key files (the buildlet) are trimmed with
  Go's bytes.TrimSpace / strings.TrimSpace: an ASCII fast path, then
  TrimFunc(s, unicode.IsSpace), which decodes runes with utf8.DecodeRune from the left and
  utf8.DecodeLastRune from the right. An invalid byte decodes as (RuneError, 1), and
  RuneError (U+FFFD) is no space, so invalid UTF-8 stops the trimming at its end.
- unicode.IsSpace is true for '\\t', '\\n', '\\v', '\\f', '\\r', ' ', U+0085, U+00A0 (Go's
  Latin-1 special case) and, above Latin-1, for the White_Space code points of Unicode's
  PropList.txt: U+1680, U+2000..U+200A, U+2028, U+2029, U+202F, U+205F, U+3000. Python's
  str.isspace is NOT that set (it adds U+001C..U+001F), so the set is listed here.
- Header values reach Go's coordinator through net/http, whose textproto reader removes
  spaces and tabs at both ends of a value, nothing else.

Output, a JSON object:
- "white_space": the code points Go's unicode.IsSpace is true for.
- "masters": {name, raw (hex of the file's bytes), trimmed (hex) or error ("empty",
  "too_short": under 16 bytes after trimming, gobuildkey's minimum), principal,
  hmac_sha256, hmac_md5 (the keys under the trimmed master)}.
- "key_files": {name, raw (hex), key (the trimmed key) or null when what remains is not
  64 or 32 lowercase hex digits, gobuildkey's key format}.
- "headers": {name, raw (hex of an X-Go-Builder-Key value), key or null}, by the header
  rule.
- "mixed": {raw, trimmed, header} (hex): pseudo-random (fixed seed) mixes of spaces,
  other characters and invalid or partial UTF-8, trimmed by both rules.
"""

import hashlib
import hmac
import json
import random
import re

WHITE_SPACE = [
    0x09, 0x0A, 0x0B, 0x0C, 0x0D, 0x20, 0x85, 0xA0,
    0x1680,
    0x2000, 0x2001, 0x2002, 0x2003, 0x2004, 0x2005, 0x2006, 0x2007, 0x2008, 0x2009, 0x200A,
    0x2028, 0x2029, 0x202F, 0x205F,
    0x3000,
]
assert len(WHITE_SPACE) == 25

RUNE_ERROR = 0xFFFD
RUNE_SELF = 0x80
UTF_MAX = 4
ASCII_SPACE = b"\t\n\v\f\r "


def is_space(r):
    """Go's unicode.IsSpace."""
    return r in WHITE_SPACE


def decode_rune(b):
    """Go's utf8.DecodeRune: (rune, width); (RuneError, 1) for invalid UTF-8."""
    if not b:
        return RUNE_ERROR, 0
    c = b[0]
    if c < RUNE_SELF:
        return c, 1
    if 0xC2 <= c <= 0xDF:
        n = 2
    elif 0xE0 <= c <= 0xEF:
        n = 3
    elif 0xF0 <= c <= 0xF4:
        n = 4
    else:
        return RUNE_ERROR, 1
    if len(b) < n:
        return RUNE_ERROR, 1
    try:
        # Strict: refuses bad continuations, overlong forms, surrogates, > U+10FFFF.
        text = b[:n].decode("utf-8")
    except UnicodeDecodeError:
        return RUNE_ERROR, 1
    assert len(text) == 1
    return ord(text), n


def rune_start(c):
    return c & 0xC0 != 0x80


def decode_last_rune(b):
    """Go's utf8.DecodeLastRune: back up to UTFMax bytes to a possible start byte, decode
    forward from it, and accept the rune only if it ends exactly at the end."""
    end = len(b)
    if end == 0:
        return RUNE_ERROR, 0
    start = end - 1
    if b[start] < RUNE_SELF:
        return b[start], 1
    lim = max(end - UTF_MAX, 0)
    start -= 1
    while start >= lim:
        if rune_start(b[start]):
            break
        start -= 1
    if start < 0:
        start = 0
    r, size = decode_rune(b[start:end])
    if start + size != end:
        return RUNE_ERROR, 1
    return r, size


def index_func(s, f, truth):
    start = 0
    while start < len(s):
        r, wid = s[start], 1
        if r >= RUNE_SELF:
            r, wid = decode_rune(s[start:])
        if f(r) == truth:
            return start
        start += wid
    return -1


def last_index_func(s, f, truth):
    i = len(s)
    while i > 0:
        r, size = s[i - 1], 1
        if r >= RUNE_SELF:
            r, size = decode_last_rune(s[:i])
        i -= size
        if f(r) == truth:
            return i
    return -1


def trim_left_func(s, f):
    i = index_func(s, f, False)
    return b"" if i == -1 else s[i:]


def trim_right_func(s, f):
    i = last_index_func(s, f, False)
    if i >= 0 and s[i] >= RUNE_SELF:
        _, wid = decode_rune(s[i:])
        i += wid
    else:
        i += 1
    return s[:i]


def trim_func(s, f):
    return trim_right_func(trim_left_func(s, f), f)


def trim_space(s):
    """Go's bytes.TrimSpace: the ASCII fast path, then TrimFunc(s, unicode.IsSpace) on what
    remains as soon as a non-ASCII byte is met."""
    start = 0
    while start < len(s):
        c = s[start]
        if c >= RUNE_SELF:
            return trim_func(s[start:], is_space)
        if c not in ASCII_SPACE:
            break
        start += 1
    stop = len(s)
    while stop > start:
        c = s[stop - 1]
        if c >= RUNE_SELF:
            return trim_func(s[start:stop], is_space)
        if c not in ASCII_SPACE:
            break
        stop -= 1
    return s[start:stop]


def trim_header(s):
    """What net/http leaves of a header value: spaces and tabs gone at both ends."""
    return s.strip(b" \t")


def key_or_none(text):
    """gobuildkey's key format: 64 or 32 lowercase hex digits."""
    if re.fullmatch(rb"[0-9a-f]{64}|[0-9a-f]{32}", text):
        return text.decode("ascii")
    return None


def enc(cp):
    return chr(cp).encode("utf-8")


def name_of(cp):
    return "U+%04X" % cp


# Self-checks: on valid UTF-8, Go's TrimSpace is str.strip of the White_Space set, and the
# fast path changes nothing.
_ws = "".join(map(chr, WHITE_SPACE))
for _cp in range(0x110000):
    if 0xD800 <= _cp <= 0xDFFF:
        continue
    _t = ("%sa%s" % (chr(_cp), chr(_cp))).encode("utf-8")
    assert trim_space(_t) == _t.decode("utf-8").strip(_ws).encode("utf-8")
    assert trim_space(_t) == trim_func(_t, is_space)
    assert (trim_space(enc(_cp)) == b"") == (_cp in WHITE_SPACE)
assert all(chr(c).isspace() for c in WHITE_SPACE)
assert [c for c in range(0x110000) if chr(c).isspace() and c not in WHITE_SPACE] == [
    0x1C, 0x1D, 0x1E, 0x1F]

PRINCIPAL = "host-linux-arm-aws"
# The master of the command-line tests (the shape `gobuildkey init` writes), and one with
# spaces inside, which stay.
MASTER = b"f23ffcafa5d6010469d9b02cbe015c52768bd735acc996245b0084127335ec80"
INNER = "the farm\u3000master\u00a0of 2026".encode("utf-8")

# Characters that are no space for Go (some are for other libraries).
NOT_SPACES = [0x00, 0x08, 0x0E, 0x1C, 0x1D, 0x1E, 0x1F, 0x7F, 0x180E, 0x200B, 0x200C,
              0x200D, 0x2060, 0xFEFF, 0xFFFD, 0x3164]
# Invalid UTF-8: no space, whatever it resembles.
INVALID = [
    ("0xFF", b"\xff"),
    ("lone continuation 0x80", b"\x80"),
    ("lone lead byte 0xC2", b"\xc2"),
    ("truncated U+3000", b"\xe3\x80"),
    ("truncated 4-byte", b"\xf0\x9f\x98"),
    ("overlong U+0020", b"\xc0\xa0"),
    ("overlong U+00A0", b"\xe0\x82\xa0"),
    ("surrogate U+D800", b"\xed\xa0\x80"),
    ("beyond U+10FFFF", b"\xf4\x90\x80\x80"),
    ("U+3000 and a stray continuation", b"\xe3\x80\x80\x80"),
    ("lone 0x85 (U+0085 is C2 85)", b"\x85"),
    ("lone 0xA0 (U+00A0 is C2 A0)", b"\xa0"),
]


def master_case(name, raw):
    trimmed = trim_space(raw)
    case = {"name": name, "raw": raw.hex()}
    if not trimmed:
        case["error"] = "empty"
    elif len(trimmed) < 16:
        case["error"] = "too_short"
    else:
        case["trimmed"] = trimmed.hex()
        case["principal"] = PRINCIPAL
        case["hmac_sha256"] = hmac.new(trimmed, PRINCIPAL.encode(), hashlib.sha256).hexdigest()
        case["hmac_md5"] = hmac.new(trimmed, PRINCIPAL.encode(), hashlib.md5).hexdigest()
    return case


def masters():
    cases = []
    for cp in WHITE_SPACE:
        s, n = enc(cp), name_of(cp)
        cases.append(master_case(n + " before", s + MASTER))
        cases.append(master_case(n + " after", MASTER + s))
        cases.append(master_case(n + " twice around, then a newline", s + s + INNER + s + s + b"\n"))
        cases.append(master_case(n + " before 0xFF", s + b"\xff" + s + MASTER + s))
        cases.append(master_case(n + " after a lone continuation", s + MASTER + s + b"\x80" + s))
        if len(s) > 1:
            cut = s[:-1]
            cases.append(master_case(n + " cut short, at both ends", s + cut + MASTER + cut + s))
    for cp in NOT_SPACES:
        s, n = enc(cp), name_of(cp)
        cases.append(master_case(n + " around (no space)", b" " + s + MASTER + s + b"\n"))
        cases.append(master_case(n + " inside spaces (no space)", "\u3000".encode() + s + INNER + s + "\u00a0".encode()))
    for n, bad in INVALID:
        cases.append(master_case(n + " at the start", "\u2028 ".encode() + bad + MASTER + b" \n"))
        cases.append(master_case(n + " at the end", "\t\u00a0".encode() + MASTER + bad + "\u205f\n".encode()))
    every = b"".join(enc(cp) for cp in WHITE_SPACE)
    cases.append(master_case("every space", every))
    cases.append(master_case("nothing", b""))
    cases.append(master_case("every space around 0xFF", every + b"\xff" + every))
    cases.append(master_case("every space around 15 bytes", every + b"fifteen bytes!!" + every))
    cases.append(master_case("every space around the master", every + MASTER + every))
    return cases


def key_files():
    master = trim_space(MASTER)
    sha = hmac.new(master, PRINCIPAL.encode(), hashlib.sha256).hexdigest().encode()
    md5 = hmac.new(master, PRINCIPAL.encode(), hashlib.md5).hexdigest().encode()
    cases = []

    def add(name, raw):
        cases.append({"name": name, "raw": raw.hex(), "key": key_or_none(trim_space(raw))})

    for i, cp in enumerate(WHITE_SPACE):
        s, n = enc(cp), name_of(cp)
        key = sha if i % 2 == 0 else md5
        add(n + " around", s + key + s + b"\n")
        add(n + " before 0xFF", s + b"\xff" + key)
        add(n + " then a truncated U+3000", key + s + b"\xe3\x80")
    for cp in NOT_SPACES:
        s, n = enc(cp), name_of(cp)
        add(n + " before (no space)", s + sha)
        add(n + " after (no space)", md5 + s + b"\n")
    for n, bad in INVALID:
        add(n + " at the end", sha + bad)
    add("a newline", sha + b"\n")
    add("nothing", b"")
    add("every space", b"".join(enc(cp) for cp in WHITE_SPACE))
    add("upper case", sha.upper())
    return cases


def headers():
    master = trim_space(MASTER)
    sha = hmac.new(master, PRINCIPAL.encode(), hashlib.sha256).hexdigest().encode()
    cases = []

    def add(name, raw):
        cases.append({"name": name, "raw": raw.hex(), "key": key_or_none(trim_header(raw))})

    add("as sent", sha)
    add("a space before, a tab after", b" " + sha + b"\t")
    add("spaces and tabs around", b"\t \t" + sha + b"  \t ")
    for cp in WHITE_SPACE:
        if cp in (0x20, 0x09):
            continue
        add(name_of(cp) + " after", sha + enc(cp))
        add(name_of(cp) + " before, inside a space", b" " + enc(cp) + sha)
    add("0xFF after", sha + b"\xff")
    return cases


def mixed():
    rng = random.Random(13)
    pieces = [enc(cp) for cp in WHITE_SPACE] * 2
    pieces += [enc(cp) for cp in NOT_SPACES] + [bad for _, bad in INVALID]
    pieces += [b"a", b"k", "\u00e9".encode(), b"\xe3", b"\x80", b"\xc2", b"\xe2"]
    cases = []
    for _ in range(600):
        raw = b"".join(rng.choice(pieces) for _ in range(rng.randrange(0, 7)))
        assert trim_space(raw) == trim_func(raw, is_space)
        cases.append({"raw": raw.hex(), "trimmed": trim_space(raw).hex(), "header": trim_header(raw).hex()})
    return cases


def main():
    out = {
        "white_space": WHITE_SPACE,
        "masters": masters(),
        "key_files": key_files(),
        "headers": headers(),
        "mixed": mixed(),
    }
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
