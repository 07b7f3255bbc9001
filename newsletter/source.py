"""Load a YAML file safely into plain values plus the line and column of every value.

We compose the node graph ourselves instead of calling ``yaml.safe_load`` so that:
duplicate keys are reported (PyYAML keeps the last one silently), only the standard
scalar tags are accepted, alias expansion has a budget (no "billion laughs"), nesting
has a limit, and every problem carries ``FILE:LINE:COL``, with a hint for common slips.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import yaml
from yaml.constructor import ConstructorError, SafeConstructor

from newsletter.errors import Location, NewsletterError, Problem

Path_ = tuple[str | int, ...]

_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_TAG = "tag:yaml.org,2002:"
_SCALAR_TAGS = {_TAG + t for t in ("str", "int", "float", "bool", "null", "timestamp")}
# More values than any issue needs; an alias bomb hits this long before memory runs out.
MAX_VALUES = 100_000
# An issue nests about 6 deep. libyaml's composer recurses in C: 50,000 levels crash the
# process, 500 give a RecursionError, so nesting is measured on the events first.
MAX_DEPTH = 50
_OPEN = (yaml.SequenceStartEvent, yaml.MappingStartEvent)
_CLOSE = (yaml.SequenceEndEvent, yaml.MappingEndEvent)
# Characters YAML refuses (C0 and C1 controls) or reads as line breaks (NEL, U+2028,
# U+2029). They are moved to private-use code points while composing, so that lines
# count as editors count them, and put back in the values, where the checker refuses
# them with the field's name instead of a bare "unacceptable character".
_RAW_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u2028\u2029]")
_MASK = 0xF0000
_UNMASK = {_MASK + c: c for c in [*range(0x20), *range(0x7F, 0xA0), 0x2028, 0x2029]}


class Source:
    """A loaded YAML file: its data, and where each key and value stands in it."""

    def __init__(self, file: str, data: Any = None):
        self.file = file
        self.data = data
        self.values: dict[Path_, Location] = {}
        self.keys: dict[Path_, Location] = {}
        self.texts: dict[Path_, str] = {}  # numbers as written (034, 0x22), for the checker
        self.problems: list[Problem] = []

    def where(self, path: Path_) -> Location:
        """The location of the value at ``path``, or of its nearest located parent."""
        while path not in self.values and path:
            path = path[:-1]
        return self.values.get(path, Location(self.file))

    def key_where(self, path: Path_) -> Location:
        """The location of the key that names ``path`` (its value's, for list items)."""
        return self.keys.get(path) or self.where(path)


def unreadable(error: OSError, display: str) -> NewsletterError:
    """A file that cannot be opened, said as a plain sentence."""
    if isinstance(error, FileNotFoundError):
        return NewsletterError(f"{display}: no such file")
    if isinstance(error, IsADirectoryError):
        return NewsletterError(f"{display}: is a folder, not a file")
    return NewsletterError(f"{display}: cannot read ({error.strerror})")


def read_text(path: Path, display: str) -> str:
    """Read a UTF-8 file (a BOM is allowed), or raise a plain-sentence error."""
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise unreadable(e, display) from None
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        before = raw.removeprefix(b"\xef\xbb\xbf")[: e.start].decode("utf-8").split("\n")  # offsets skip the BOM
        raise NewsletterError(f"is not UTF-8 text (invalid byte at offset {e.start}); save it as UTF-8",
                              Location(display, len(before), len(before[-1]) + 1)) from None


def load_yaml(path: Path, display: str | None = None, what: str = "file") -> Source:
    """Load ``path`` as one YAML mapping. Raises NewsletterError for unusable files."""
    display = display or str(path)
    text = read_text(path, display)
    masked = _RAW_CONTROL.search(text) is not None
    if masked:
        text = _RAW_CONTROL.sub(lambda m: chr(_MASK + ord(m[0])), text)
    try:
        _check_depth(text, display)
        root = yaml.compose(text, Loader=_Loader)
    except yaml.MarkedYAMLError as e:
        raise _syntax_error(e, text, display) from None
    except yaml.reader.ReaderError as e:  # a character no mask covers (U+FFFE)
        before = text.encode("utf-8")[: e.position].decode("utf-8", "replace")
        where = Location(display, before.count("\n") + 1, len(before) - before.rfind("\n"))
        raise NewsletterError(f"invalid YAML: the character U+{e.character:04X} is not allowed; remove it",
                              where) from None
    except yaml.YAMLError as e:
        raise NewsletterError(f"{display}: invalid YAML: {e}") from None
    if root is None:
        raise NewsletterError(f"the {what} is empty", Location(display, 1, 1))
    if not isinstance(root, yaml.MappingNode):
        m = root.start_mark
        raise NewsletterError(
            f"the {what} must be a mapping of keys to values (key: value), not a {_kind(root)}",
            Location(display, m.line + 1, m.column + 1),
        )
    source = Source(display, None)
    source.data = _Builder(source, masked).build(root, ())
    return source


def _kind(node: yaml.Node) -> str:
    if isinstance(node, yaml.SequenceNode):
        return "list"
    return "single value"


def _check_depth(text: str, display: str) -> None:
    """Refuse nesting past MAX_DEPTH, found on the parser's events (a loop, no recursion)."""
    depth = 0
    for event in yaml.parse(text, Loader=_Loader):
        if isinstance(event, _OPEN):
            depth += 1
            if depth > MAX_DEPTH:
                m = event.start_mark
                raise NewsletterError(f"the file nests too deeply (more than {MAX_DEPTH} levels)",
                                      Location(display, m.line + 1, m.column + 1))
        elif isinstance(event, _CLOSE):
            depth -= 1


_KEY_LINE = re.compile(r"(\s*(?:-\s+)*)([^\s#:'\"-][^#]*?):(?:\s+(\S.*?))?\s*$")


def _syntax_error(e: yaml.MarkedYAMLError, text: str, display: str) -> NewsletterError:
    """PyYAML's complaint, at the line to fix, with a hint for the slips authors make."""
    mark = e.problem_mark or e.context_mark
    line, col, message = mark.line, mark.column, f"invalid YAML: {e.problem or e.context}"
    lines = text.splitlines()
    if e.problem and e.problem.startswith("mapping values are not allowed") and line < len(lines):
        # `title: Scaling: a study`: the second ': ' would start a mapping inside the value.
        m = _KEY_LINE.fullmatch(lines[line])
        if m and m[3] and ": " in m[3]:
            value = m[3]
            quoted = f'"{value}"' if '"' not in value and "\\" not in value else "'" + value.replace("'", "''") + "'"
            col = m.start(3)
            message = f"invalid YAML: quote a value that contains ': ' (like {m[2]}: {quoted})"
    elif e.problem == "could not find expected ':'" and e.context_mark:
        # A line of text indented too little reads as a new key; PyYAML notices a line late.
        line, col = e.context_mark.line, e.context_mark.column
        above = next((m for m in map(_KEY_LINE.fullmatch, reversed(lines[:line])) if m), None)
        message = "invalid YAML: this line is indented too little to continue the text above it"
        if above:
            message += f"; indent it past '{above[2]}:' (column {above.end(1) + 1}), or quote the whole value"
    elif e.problem in ("did not find expected key", "did not find expected '-' indicator"):
        message = (f"invalid YAML: this line's indentation (column {col + 1}) lines up with nothing above "
                   "it; indent a line of text like the text it continues, and a key like its neighbours")
    return NewsletterError(message, Location(display, line + 1, col + 1))


class _Builder:
    """Turns a node graph into plain values, recording marks and problems."""

    def __init__(self, source: Source, masked: bool = False):
        self.source = source
        self.masked = masked
        self.count = 0
        self.stack: list[yaml.Node] = []
        self.constructor = SafeConstructor()

    def at(self, node: yaml.Node) -> Location:
        m = node.start_mark
        return Location(self.source.file, m.line + 1, m.column + 1)

    def build(self, node: yaml.Node, path: Path_) -> Any:
        self.count += 1
        if self.count > MAX_VALUES:
            raise NewsletterError(
                f"more than {MAX_VALUES} values (are aliases expanding without end?)",
                self.at(node),
            )
        if any(node is n for n in self.stack):
            raise NewsletterError("an alias refers to a value that contains it", self.at(node))
        self.source.values[path] = self.at(node)
        if isinstance(node, yaml.ScalarNode):
            return self.scalar(node, path)
        if node.tag not in (_TAG + "seq", _TAG + "map"):
            return self.refuse(node)
        if len(self.stack) >= MAX_DEPTH:  # aliases can nest what the events did not
            raise NewsletterError(f"the file nests too deeply (more than {MAX_DEPTH} levels)", self.at(node))
        self.stack.append(node)
        try:
            if isinstance(node, yaml.SequenceNode):
                return [self.build(item, path + (i,)) for i, item in enumerate(node.value)]
            return self.mapping(node, path)
        finally:
            self.stack.pop()

    def mapping(self, node: yaml.MappingNode, path: Path_) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                self.source.problems.append(Problem(self.at(key_node), "a key must be a plain name"))
                continue
            key = key_node.value.translate(_UNMASK) if self.masked else key_node.value
            if _RAW_CONTROL.search(key):  # it would be echoed in messages, to a terminal
                code = f"U+{ord(_RAW_CONTROL.search(key)[0]):04X}"
                self.source.problems.append(Problem(self.at(key_node), f"a key holds a control character ({code})"))
                continue
            if key in out:
                first = self.source.keys[path + (key,)]
                self.source.problems.append(
                    Problem(self.at(key_node), f"duplicate key '{key}' (first given on line {first.line})")
                )
                continue
            self.source.keys[path + (key,)] = self.at(key_node)
            out[key] = self.build(value_node, path + (key,))
        return out

    def refuse(self, node: yaml.Node) -> Invalid:
        """Only plain YAML is accepted: no tags that would construct objects."""
        shown = node.tag.replace(_TAG, "!!")
        self.source.problems.append(Problem(self.at(node), f"the tag {shown} is not allowed"))
        return Invalid(shown)

    def scalar(self, node: yaml.ScalarNode, path: Path_) -> Any:
        if node.tag not in _SCALAR_TAGS:
            return self.refuse(node)
        if node.tag in (_TAG + "int", _TAG + "float"):
            self.source.texts[path] = node.value
        elif self.masked and node.tag == _TAG + "str":
            return node.value.translate(_UNMASK)
        try:
            value = self.constructor.construct_object(node)
        except (ValueError, ConstructorError):
            if node.tag == _TAG + "timestamp":
                self.source.problems.append(Problem(self.at(node), f"'{node.value}' is not a real date"))
                return Invalid(node.value)
            raise
        return value


def intended_number(text: str) -> int | None:
    """The whole number an author most likely meant by ``text`` (034 -> 34, 0x22 -> 34,
    1_000 -> 1000, +5 -> 5, 34.0 -> 34), or None."""
    digits = text.replace("_", "")
    sign = -1 if digits.startswith("-") else 1
    digits = digits.lstrip("+-")
    try:
        if re.fullmatch(r"0[xX][0-9a-fA-F]+|0[oO][0-7]+|0[bB][01]+", digits):
            return sign * int(digits, 0)
        if digits.isdigit():
            return sign * int(digits)  # 034: the author meant decimal, whatever YAML 1.1 says
        number = float(digits)
        return sign * int(number) if number.is_integer() else None
    except (ValueError, OverflowError):
        return None


class Invalid(str):
    """A scalar whose problem is already reported; later checks skip it quietly."""


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that a reader sees the old file or the new one, whole."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
