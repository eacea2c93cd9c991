"""Reading and writing topologies as JSON (the format is described in docs/topology-format.md)."""
from __future__ import annotations

import difflib
import json
import re
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any, Union

from .errors import TopologyError
from .model import Topology

FORMAT = "mscomm-topology"
VERSION = 1


TOP_KEYS = ("format", "version", "name", "description", "compute", "switches", "links")
COMPUTE_KEYS = ("name", "host")
SWITCH_KEYS = ("name", "kind")
LINK_KEYS = ("src", "dst", "bw", "duplex")


def unknown_key_message(where: str, key: Any, valid) -> str:
    """``where: unknown key 'duplx' (did you mean 'duplex'?; valid keys: ...)``."""
    near = difflib.get_close_matches(str(key), list(valid), n=1, cutoff=0.5)
    hint = f"did you mean {near[0]!r}? " if near else ""
    return f"{where}: unknown key {key!r} ({hint}valid keys: {', '.join(valid)})"


def check_keys(obj: dict, valid, where: str, error=TopologyError) -> None:
    """Raise ``error`` naming the first key of ``obj`` not in ``valid`` and the nearest valid
    one."""
    for key in obj:
        if key not in valid:
            raise error(unknown_key_message(where, key, valid))


_NUMBER = re.compile(r"[+-]?(\d{1,60}(\.\d{0,60})?|\.\d{1,60})([eE][+-]?\d{1,3})?(/\d{1,60})?")


def exact_fraction(value: Any) -> Fraction:
    """An exact rational from an int, Decimal, float or string ("12.5", "25/2").

    Refuses (ValueError) text that is not a plain number of bounded size, so input such as
    "1e999999999" cannot make Fraction build a billion-digit integer.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float, Decimal, str)):
        raise ValueError(f"{value!r} is not a number")
    text = str(value).strip() if not isinstance(value, int) else None
    if text is not None and not _NUMBER.fullmatch(text):
        raise ValueError(f"{value!r} is not a number of reasonable size")
    return Fraction(value if isinstance(value, int) else text)


def parse_bandwidth(value: Any, where: str) -> Fraction:
    """Parse a bandwidth given as an integer, a decimal number or a string such as "25/2".

    Parameters
    ----------
    value : int, Decimal, float or str
        JSON value. Floats are read through their decimal text, so 12.5 and 0.1 are exact.
    where : str
        What the value belongs to, for the error message.

    Raises
    ------
    TopologyError
        If the value is not a number.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float, Decimal, str)):
        raise TopologyError(f"{where}: bandwidth must be a number or a string like '25/2', "
                            f"got {value!r}")
    try:
        return exact_fraction(value)
    except (ValueError, ZeroDivisionError):
        raise TopologyError(f"{where}: bandwidth {value!r} is not a number") from None


def format_bandwidth(bw: Fraction) -> Union[int, str]:
    """JSON value for a bandwidth: an integer when whole, else the exact fraction as a string."""
    return bw.numerator if bw.denominator == 1 else str(bw)


def from_dict(obj: Any) -> Topology:
    """Build a :class:`Topology` from the JSON object of docs/topology-format.md.

    Raises
    ------
    TopologyError
        Naming the field, node or link at fault.
    """
    if not isinstance(obj, dict):
        raise TopologyError(f"a topology must be a JSON object, got {type(obj).__name__}")
    if obj.get("format", FORMAT) != FORMAT:
        raise TopologyError(f"'format' must be {FORMAT!r}, got {obj.get('format')!r}")
    if obj.get("version", VERSION) != VERSION:
        raise TopologyError(f"unsupported topology version {obj.get('version')!r} "
                            f"(this reader knows version {VERSION})")
    check_keys(obj, TOP_KEYS, "topology")
    for key in ("name", "compute", "links"):
        if key not in obj:
            raise TopologyError(f"topology is missing the field {key!r}")
    compute, hosts = [], {}
    for entry in _list(obj, "compute"):
        name = _name(entry, "compute")
        if isinstance(entry, dict):
            check_keys(entry, COMPUTE_KEYS, f"compute node {name!r}")
        compute.append(name)
        if isinstance(entry, dict) and "host" in entry:
            if isinstance(entry["host"], bool) or not isinstance(entry["host"], int):
                raise TopologyError(f"compute node {name!r}: 'host' must be an integer")
            hosts[name] = entry["host"]
    switches, kinds = [], {}
    for entry in _list(obj, "switches", required=False):
        name = _name(entry, "switches")
        if isinstance(entry, dict):
            check_keys(entry, SWITCH_KEYS, f"switch {name!r}")
        switches.append(name)
        if isinstance(entry, dict) and "kind" in entry:
            kinds[name] = str(entry["kind"])
    links: dict[tuple[str, str], Fraction] = {}
    for i, entry in enumerate(_list(obj, "links")):
        if not isinstance(entry, dict) or not {"src", "dst", "bw"} <= entry.keys():
            raise TopologyError(f"links[{i}]: must be an object with 'src', 'dst' and 'bw', "
                                f"got {entry!r}")
        src, dst = entry["src"], entry["dst"]
        check_keys(entry, LINK_KEYS, f"links[{i}] ({src!r} -> {dst!r})")
        bw = parse_bandwidth(entry["bw"], f"link {src!r} -> {dst!r}")
        duplex = entry.get("duplex", True)
        if not isinstance(duplex, bool):
            raise TopologyError(f"link {src!r} -> {dst!r}: 'duplex' must be true or false")
        for arc in ((src, dst), (dst, src)) if duplex else ((src, dst),):
            links[arc] = links.get(arc, Fraction(0)) + bw
    return Topology(name=str(obj["name"]), compute=tuple(compute), switches=tuple(switches),
                    links=links, hosts=hosts, kinds=kinds,
                    description=str(obj.get("description", "")))


def to_dict(topo: Topology) -> dict:
    """The JSON object for ``topo``; pairs of opposite links of equal bandwidth become one
    duplex entry."""
    links = []
    for (u, v), bw in topo.links.items():
        if topo.links.get((v, u)) == bw:
            if (v, u) < (u, v):
                continue
            links.append({"src": u, "dst": v, "bw": format_bandwidth(bw)})
        else:
            links.append({"src": u, "dst": v, "bw": format_bandwidth(bw), "duplex": False})
    compute = [{"name": c, "host": topo.hosts[c]} if c in topo.hosts else c
               for c in topo.compute]
    switches = [{"name": w, "kind": topo.kinds[w]} if w in topo.kinds else w
                for w in topo.switches]
    out = {"format": FORMAT, "version": VERSION, "name": topo.name}
    if topo.description:
        out["description"] = topo.description
    out.update(compute=compute, switches=switches, links=links)
    return out


def loads(text: str) -> Topology:
    """Parse a topology from JSON text; malformed JSON raises :class:`TopologyError`."""
    try:
        obj = json.loads(text, parse_float=Decimal)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError is a ValueError
        raise TopologyError(f"malformed topology JSON: {exc}") from None
    try:
        return from_dict(obj)
    except TopologyError:
        raise
    except (TypeError, AttributeError, KeyError, IndexError, ValueError) as exc:
        raise TopologyError(f"malformed topology: {type(exc).__name__}: {exc}") from None


def load(path: Union[str, Path]) -> Topology:
    """Read a topology JSON file."""
    try:
        text = Path(path).read_bytes().decode("utf-8")
    except OSError as exc:
        raise TopologyError(f"cannot read topology file {str(path)!r}: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise TopologyError(f"topology file {str(path)!r} is not UTF-8 text: {exc}") from None
    try:
        return loads(text)
    except TopologyError as exc:
        raise TopologyError(f"{path}: {exc}") from None


def dumps(topo: Topology) -> str:
    """JSON text for a topology (one link per line, so diffs stay readable)."""
    obj = to_dict(topo)
    head = {k: v for k, v in obj.items() if k not in ("compute", "switches", "links")}
    lines = [json.dumps(head)[:-1] + ","]
    for key in ("compute", "switches", "links"):
        items = ",\n    ".join(json.dumps(x) for x in obj[key])
        lines.append(f'  "{key}": [\n    {items}\n  ]' if items else f'  "{key}": []')
    return lines[0] + "\n" + ",\n".join(lines[1:]) + "\n}\n"


def save(topo: Topology, path: Union[str, Path]) -> None:
    """Write a topology JSON file."""
    Path(path).write_text(dumps(topo))


def _list(obj: dict, key: str, required: bool = True) -> list:
    value = obj.get(key, None if required else [])
    if not isinstance(value, list):
        raise TopologyError(f"topology field {key!r} must be a list, got {type(value).__name__}")
    return value


def _name(entry: Any, key: str) -> str:
    name = entry.get("name") if isinstance(entry, dict) else entry
    if not isinstance(name, str) or not name:
        raise TopologyError(f"{key}: each entry must be a name or an object with a 'name', "
                            f"got {entry!r}")
    return name
