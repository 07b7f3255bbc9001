"""Load a YAML file safely into plain values plus the line and column of every value.

We compose the node graph ourselves instead of calling ``yaml.safe_load`` so that:
duplicate keys are reported (PyYAML keeps the last one silently), only the standard
scalar tags are accepted, alias expansion has a budget (no "billion laughs"), and
every problem carries ``FILE:LINE:COL``.
"""

from __future__ import annotations

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


class Source:
    """A loaded YAML file: its data, and where each key and value stands in it."""

    def __init__(self, file: str, data: Any = None):
        self.file = file
        self.data = data
        self.values: dict[Path_, Location] = {}
        self.keys: dict[Path_, Location] = {}
        self.problems: list[Problem] = []

    def where(self, path: Path_) -> Location:
        """The location of the value at ``path``, or of its nearest located parent."""
        while path not in self.values and path:
            path = path[:-1]
        return self.values.get(path, Location(self.file))

    def key_where(self, path: Path_) -> Location:
        """The location of the key that names ``path`` (its value's, for list items)."""
        return self.keys.get(path) or self.where(path)


def read_text(path: Path, display: str) -> str:
    """Read a UTF-8 file (a BOM is allowed), or raise a plain-sentence error."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise NewsletterError(f"{display}: no such file") from None
    except IsADirectoryError:
        raise NewsletterError(f"{display}: is a folder, not a file") from None
    except OSError as e:
        raise NewsletterError(f"{display}: cannot read ({e.strerror})") from None
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise NewsletterError(
            f"{display}: is not UTF-8 text (invalid byte at offset {e.start}); save it as UTF-8"
        ) from None


def load_yaml(path: Path, display: str | None = None, what: str = "file") -> Source:
    """Load ``path`` as one YAML mapping. Raises NewsletterError for unusable files."""
    display = display or str(path)
    text = read_text(path, display)
    try:
        root = yaml.compose(text, Loader=_Loader)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        where = Location(display, mark.line + 1, mark.column + 1) if mark else Location(display)
        raise NewsletterError(f"invalid YAML: {e.problem or e.context}", where) from None
    except yaml.YAMLError as e:
        raise NewsletterError(f"{display}: invalid YAML: {e}") from None
    if root is None:
        raise NewsletterError(f"{display}: the {what} is empty")
    if not isinstance(root, yaml.MappingNode):
        raise NewsletterError(
            f"{display}: the {what} must be a mapping of keys to values (key: value), "
            f"not a {_kind(root)}"
        )
    source = Source(display, None)
    source.data = _Builder(source).build(root, ())
    return source


def _kind(node: yaml.Node) -> str:
    if isinstance(node, yaml.SequenceNode):
        return "list"
    return "single value"


class _Builder:
    """Turns a node graph into plain values, recording marks and problems."""

    def __init__(self, source: Source):
        self.source = source
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
            return self.scalar(node)
        if node.tag not in (_TAG + "seq", _TAG + "map"):
            return self.refuse(node)
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
            key = key_node.value
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

    def scalar(self, node: yaml.ScalarNode) -> Any:
        if node.tag not in _SCALAR_TAGS:
            return self.refuse(node)
        try:
            value = self.constructor.construct_object(node)
        except (ValueError, ConstructorError):
            if node.tag == _TAG + "timestamp":
                self.source.problems.append(Problem(self.at(node), f"'{node.value}' is not a real date"))
                return Invalid(node.value)
            raise
        return value


class Invalid(str):
    """A scalar whose problem is already reported; later checks skip it quietly."""
