"""A reader for JAAS login configuration files (the syntax of Java's default ConfigFile).

::

    // comments: // to the end of the line, or /* ... */
    Server {
        org.apache.zookeeper.server.auth.DigestLoginModule required
        user_super="adminsecret"
        user_bob="bobsecret";
    };

A file holds sections (login contexts); a section holds login module entries, each
``<class> <flag> [<name>=<value> ...];``, the flag one of required, requisite, sufficient,
optional. Values are double-quoted strings (backslash escapes a character) or bare words.
Not supported: ``${property}`` expansion in values.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

FLAGS = ("required", "requisite", "sufficient", "optional")
USER_PREFIX = "user_"
_WORD_EXTRA = set("._$-*/:@+")


class JaasError(ValueError):
    """The file cannot be read as a JAAS configuration; the message says where."""


@dataclass(frozen=True)
class LoginModuleEntry:
    """One entry of a section: the login module class, its flag and its options."""

    module: str
    flag: str
    options: dict[str, str] = field(default_factory=dict)


def _tokens(text: str, source: str) -> list[tuple[str, str, int]]:
    """(kind, value, line) tokens: kind 'word', 'string' or the punctuation itself."""
    out: list[tuple[str, str, int]] = []
    i, n, line = 0, len(text), 1
    while i < n:
        c = text[i]
        if c == "\n":
            line += 1
            i += 1
        elif c.isspace():
            i += 1
        elif text.startswith("//", i):
            while i < n and text[i] != "\n":
                i += 1
        elif text.startswith("/*", i):
            end = text.find("*/", i + 2)
            if end < 0:
                raise JaasError(f"{source}:{line}: unterminated comment")
            line += text.count("\n", i, end)
            i = end + 2
        elif c in "{};=":
            out.append((c, c, line))
            i += 1
        elif c == '"':
            start_line = line
            value: list[str] = []
            i += 1
            while True:
                if i >= n:
                    raise JaasError(f"{source}:{start_line}: unterminated string")
                ch = text[i]
                if ch == "\\" and i + 1 < n:
                    nxt = text[i + 1]
                    value.append({"n": "\n", "t": "\t", "r": "\r"}.get(nxt, nxt))
                    i += 2
                    continue
                if ch == '"':
                    i += 1
                    break
                if ch == "\n":
                    line += 1
                value.append(ch)
                i += 1
            out.append(("string", "".join(value), start_line))
        elif c.isalnum() or c in _WORD_EXTRA:
            start = i
            while i < n and (text[i].isalnum() or text[i] in _WORD_EXTRA):
                i += 1
            out.append(("word", text[start:i], line))
        else:
            raise JaasError(f"{source}:{line}: unexpected character {c!r}")
    return out


def parse(text: str, source: str = "<jaas>") -> dict[str, list[LoginModuleEntry]]:
    """Every section of a JAAS configuration, by name. Raises JaasError."""
    toks = _tokens(text, source)
    pos = 0
    last_line = toks[-1][2] if toks else 1

    def take(*kinds: str) -> tuple[str, str, int]:
        nonlocal pos
        if pos >= len(toks):
            raise JaasError(f"{source}:{last_line}: unexpected end of file, expected {' or '.join(kinds)}")
        tok = toks[pos]
        if tok[0] not in kinds:
            raise JaasError(f"{source}:{tok[2]}: expected {' or '.join(kinds)}, got {tok[1]!r}")
        pos += 1
        return tok

    sections: dict[str, list[LoginModuleEntry]] = {}
    while pos < len(toks):
        _, name, line = take("word")
        if name in sections:
            raise JaasError(f"{source}:{line}: section {name!r} given twice")
        take("{")
        entries: list[LoginModuleEntry] = []
        while pos < len(toks) and toks[pos][0] != "}":
            _, module, _ = take("word")
            _, flag, fline = take("word")
            if flag.lower() not in FLAGS:
                raise JaasError(f"{source}:{fline}: login module flag {flag!r} is not one of {', '.join(FLAGS)}")
            options: dict[str, str] = {}
            while True:
                kind, key, _ = take("word", ";")
                if kind == ";":
                    break
                take("=")
                _, value, _ = take("word", "string")
                options[key] = value
            entries.append(LoginModuleEntry(module, flag.lower(), options))
        take("}")
        take(";")
        sections[name] = entries
    return sections


def load(path: str | Path) -> dict[str, list[LoginModuleEntry]]:
    """Parse the JAAS file at `path`; JaasError when it cannot be read or parsed."""
    try:
        text = Path(path).read_text("utf-8")
    except (OSError, UnicodeError) as e:
        raise JaasError(f"{path}: cannot read: {e}") from e
    return parse(text, str(path))


def digest_users(entries: list[LoginModuleEntry]) -> dict[str, str]:
    """The DIGEST-MD5 users of a section, as ZooKeeper's SaslServerCallbackHandler reads them:
    every option ``user_<name>="<password>"`` of every entry of the section."""
    users: dict[str, str] = {}
    for entry in entries:
        for key, value in entry.options.items():
            if key.startswith(USER_PREFIX):
                users[key[len(USER_PREFIX):]] = value
    return users
