"""Figures as compact, deterministic SVG, and SVG as a ``data:`` URI for an ``<img>`` of the page.

Matplotlib's SVG is written for reading, not for size: it indents every element, names every group,
writes every element's style in full and keeps six decimals of every coordinate. :func:`compact_svg`
rewrites it without changing what it draws: no XML prolog, metadata or comments, no whitespace
between elements, no attribute-less groups, short ids (only those referenced), coordinates to
1/100 pt in short path data (H and V for level and plumb lines), each repeated style once as a
class in the style sheet, runs of elements that share a clip path or an inherited style under one
group, and embedded PNG images as palette images where they have at most 256 colours (lossless).
:func:`svg_data_uri` percent-encodes only the characters a URI inside a double-quoted HTML
attribute must not hold (attributes are single-quoted for it): far smaller than base64.

Everything here is a pure function of its input, so the page stays byte-identical across builds.
"""

from __future__ import annotations

import base64
import io
import re
from collections import Counter
from collections.abc import Iterator
from itertools import groupby
from typing import TYPE_CHECKING, Any

import matplotlib
import numpy as np
from matplotlib.figure import Figure
from PIL import Image

if TYPE_CHECKING:
    from matplotlib.typing import RcKeyType

__all__ = ["compact_svg", "figure_svg", "svg_data_uri"]

#: Style every figure is drawn and saved under; fixed so output depends only on the data.
RC: dict[RcKeyType, Any] = {
    "svg.hashsalt": "repro-report",  # matplotlib otherwise salts its element ids with a random UUID
    "svg.fonttype": "none",  # text stays text: smaller files, selectable labels
    "font.family": "sans-serif",
    "font.size": 9.0,
    "axes.titlesize": 9.0,
    "axes.labelsize": 9.0,
    "figure.titlesize": 10.0,
    "legend.fontsize": 8.0,
    "xtick.labelsize": 8.0,
    "ytick.labelsize": 8.0,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "path.simplify": True,
    "image.interpolation": "none",  # an image keeps its own pixels (drawn crisp), not a resampled copy
    "savefig.dpi": 100,  # the resolution of rasterized artists inside an SVG
}

_TOKEN = re.compile(r"(<[^>]*>)")  # matplotlib escapes < and > inside attribute values and text
_METADATA = re.compile(r"<metadata>.*?</metadata>", re.S)
_PNG = re.compile(r"data:image/png;base64,([A-Za-z0-9+/=\s]*)")
_ID = re.compile(r' id="([^"]*)"')
_REFERENCE = re.compile(r"#([^\s\"')]+)")
_REFERENCE_OR_ID = re.compile(r'(id="|#)([A-Za-z_][\w.\-]*)')
_NUMBER = re.compile(r"-?\d+\.\d{3,}")
_NO_ROTATION = re.compile(r' transform="rotate\(-?0 [^)]*\)"')
_GEOMETRY = re.compile(r' (d|x|y|width|height|transform)="([^"]*)"')
_TEXT_TAG = re.compile(r"<text [^>]*>")
_FONT = re.compile(r"font-family: ([^;\"]*)(?:; )?")
_NEWLINES = re.compile(r"\s*\n\s*")
_ATTRIBUTE = re.compile(r'(\s[\w:\-]+=)"([^"]*)"')
_STYLE = re.compile(r""" style=(?:'([^']*)'|"([^"]*)")""")
_CLASS = re.compile(r" class='([^']*)'")
_CLIP = re.compile(r" clip-path='([^']*)'")
#: Properties a <use> takes from a group around it just as from its own style: inherited ones that
#: no rule of the style sheet sets on every element (``*`` sets stroke-linejoin and stroke-linecap).
_INHERITED = {"fill", "fill-opacity", "fill-rule", "stroke", "stroke-width", "stroke-opacity", "stroke-dasharray",
              "stroke-dashoffset", "stroke-miterlimit"}  # fmt: skip
#: Characters a data: URI in a double-quoted HTML attribute must not hold as they are.
_URI_UNSAFE = re.compile(r'[%#"&\x00-\x1f\x7f-\U0010ffff]')


def figure_svg(figure: Figure) -> str:
    """The figure as compact SVG text (see :func:`compact_svg`)."""
    buffer = io.BytesIO()
    with matplotlib.rc_context(RC):
        figure.savefig(buffer, format="svg", metadata={"Date": None})
    return compact_svg(buffer.getvalue().decode("utf-8"))


def svg_data_uri(svg: str) -> str:
    """``data:image/svg+xml,...`` with only ``% # " &``, controls and non-ASCII percent-encoded."""
    return "data:image/svg+xml," + _URI_UNSAFE.sub(_percent, svg)


def _percent(match: re.Match[str]) -> str:
    return "".join(f"%{byte:02X}" for byte in match.group().encode("utf-8"))


def compact_svg(svg: str) -> str:
    """Matplotlib's SVG without what a browser does not need to draw it (see the module docstring)."""
    svg = _METADATA.sub("", svg[svg.index("<svg") :])
    svg = _PNG.sub(_palette_png, svg)
    tokens = _classes(_clean(svg))
    tokens = _group(tokens, "<path ", _CLIP)
    return "".join(_group(tokens, "<use ", _CLASS))


# -- pass 1: each element on its own ------------------------------------------------------------------------


def _clean(svg: str) -> list[str]:
    """Elements and text, rewritten one by one: attribute-less groups, comments and indentation dropped."""
    referenced = set(_REFERENCE.findall(svg))
    short: dict[str, str] = {}  # referenced ids, renamed in order of appearance: an id is private to its <img>
    for match in _ID.finditer(svg):
        if match.group(1) in referenced:
            short.setdefault(match.group(1), "i" + _name(len(short)))
    fonts = Counter(f for tag in _TEXT_TAG.findall(svg) for f in _FONT.findall(tag))
    common = fonts.most_common(1)[0][0] if fonts and "</style>" in svg else None

    out: list[str] = []
    kept_groups: list[bool] = []  # per open <g>: whether it is kept
    in_text = 0
    for token in _TOKEN.split(svg):
        if not token.startswith("<"):  # text: indentation between elements goes, a label's text stays
            if token and (not token.isspace() or (in_text and "\n" not in token)):
                out.append(token)
            continue
        if token.startswith("<!--"):
            continue
        token = _NEWLINES.sub(" ", token)
        token = _ID.sub(lambda m: m.group() if m.group(1) in referenced else "", token)
        token = _NO_ROTATION.sub("", token)
        token = _GEOMETRY.sub(_geometry, token)
        token = _REFERENCE_OR_ID.sub(lambda m: m.group(1) + short.get(m.group(2), m.group(2)), token)
        if common is not None and token.startswith("<text "):  # not a <tspan>: it inherits from its <text>
            token = _FONT.sub(lambda m: "" if m.group(1) == common else m.group(), token).replace(' style=""', "")
        token = _ATTRIBUTE.sub(_single_quoted, token).replace(" xlink:href=", " href=")
        if token in ("<g>", "<g/>"):  # a group without attributes: its children stand for it
            if token == "<g>":
                kept_groups.append(False)
            continue
        if token == "</g>":
            if kept_groups.pop():
                out.append(token)
            continue
        if token.startswith("<g") and not token.endswith("/>"):
            kept_groups.append(True)
        elif token.startswith("<text"):
            in_text += not token.endswith("/>")
        elif token == "</text>":
            in_text -= 1
        out.append(token)
    if common is not None:
        out.insert(out.index("</style>"), f"text{{font-family: {common}}}")
    return out


def _name(n: int) -> str:
    """0 -> a, 25 -> z, 26 -> A, 52 -> ba, ...: short names for ids and classes."""
    letters = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
    text = letters[n % 52]
    while n >= 52:
        n = n // 52 - 1
        text = letters[n % 52] + text
    return text


def _round(match: re.Match[str]) -> str:
    text = f"{float(match.group()):.2f}".rstrip("0").rstrip(".")
    return "0" if text == "-0" else text


def _geometry(match: re.Match[str]) -> str:
    """Coordinates to 1/100 pt, path data short; a transform only when it scales nothing (no matrix, no scale)."""
    name, value = match.groups()
    if name == "transform" and ("matrix" in value or "scale" in value):
        return match.group()
    value = _NUMBER.sub(_round, value)
    return f' {name}="{_path_data(value) if name == "d" else value}"'


_ARGUMENTS = {"M": 2, "L": 2, "Q": 4, "C": 6, "z": 0, "Z": 0}


def _path_data(d: str) -> str:
    """Matplotlib's absolute path data, short: H / V for level and plumb lines, no repeated commands or spaces."""
    words = d.split()
    out: list[str] = []
    last = ""  # the command written last: the next one may leave it implicit
    x = y = start_x = start_y = ""
    i = 0
    while i < len(words):
        command = words[i]
        n = _ARGUMENTS.get(command)
        if n is None or i + n >= len(words) + (n == 0):
            return d  # not matplotlib's form: leave it be
        numbers = words[i + 1 : i + 1 + n]
        i += 1 + n
        if command in "zZ":
            out.append("z")
            last, x, y = "z", start_x, start_y
            continue
        if command == "L" and numbers[1] == y:
            command, numbers = "H", numbers[:1]
        elif command == "L" and numbers[0] == x:
            command, numbers = "V", numbers[1:]
        if command == "M":
            start_x, start_y = numbers
        x, y = (x, numbers[0]) if command == "V" else (numbers[0], y) if command == "H" else numbers[-2:]
        implicit = command == last or (command == "L" and last == "M")
        out.append(("" if implicit else command) + _join(numbers, after_command=not implicit))
        last = "L" if implicit and command == "L" else command
    return "".join(out)


def _join(numbers: list[str], after_command: bool) -> str:
    """Numbers with a space between them, none before a minus sign or right after a command letter."""
    text = ""
    for k, number in enumerate(numbers):
        if (k > 0 or not after_command) and not number.startswith("-"):
            text += " "
        text += number
    return text


def _single_quoted(match: re.Match[str]) -> str:
    """An attribute in single quotes, which a data: URI in a double-quoted HTML attribute holds as they are."""
    return match.group() if "'" in match.group(2) else f"{match.group(1)}'{match.group(2)}'"


def _palette_png(match: re.Match[str]) -> str:
    """An embedded RGBA PNG re-encoded as a palette PNG when it has at most 256 colours (lossless)."""
    data = base64.b64decode("".join(match.group(1).split()))
    pixels = np.asarray(Image.open(io.BytesIO(data)).convert("RGBA"))  # (h, w, 4) uint8
    colours, index = np.unique(pixels.reshape(-1, 4), axis=0, return_inverse=True)
    if len(colours) <= 256:
        paletted = Image.fromarray(index.reshape(pixels.shape[:2]).astype(np.uint8), mode="P")
        paletted.putpalette(colours.ravel().tobytes(), rawmode="RGBA")
        buffer = io.BytesIO()
        paletted.save(buffer, format="png", optimize=True)
        if buffer.tell() < len(data):
            data = buffer.getvalue()
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


# -- pass 2 and 3: what elements share ---------------------------------------------------------------------


def _classes(tokens: list[str]) -> list[str]:
    """Every style that two elements share becomes a class, written once in the style sheet."""
    if "</style>" not in tokens:
        return tokens
    counts = Counter(m.group(1) or m.group(2) for t in tokens if t.startswith("<") for m in _STYLE.finditer(t))
    names: dict[str, str] = {}
    for style, count in counts.items():
        if count > 1:
            names[style] = _name(len(names))

    def swap(match: re.Match[str]) -> str:
        style = match.group(1) or match.group(2)
        return f" class='{names[style]}'" if style in names else match.group()

    out = [_STYLE.sub(swap, t) if t.startswith("<") and " class=" not in t else t for t in tokens]
    rules = "".join(f".{name}{{{style}}}" for style, name in names.items())
    out.insert(out.index("</style>"), rules)
    return out


def _group(tokens: list[str], tag: str, attribute: re.Pattern[str]) -> list[str]:
    """Runs of ``tag`` elements with one value of ``attribute`` take it from one group around them.

    For a clip path only elements without a transform (its coordinates are the element's own); for a
    class of a <use>, only a class of inherited properties (see ``_INHERITED``).
    """
    rules = _class_rules(tokens) if attribute is _CLASS else {}

    def key(token: str) -> str | None:
        if not (token.startswith(tag) and token.endswith("/>")) or " transform=" in token:
            return None
        match = attribute.search(token)
        if match is None or (attribute is _CLASS and not rules.get(match.group(1), set()) <= _INHERITED):
            return None
        return match.group(1)

    out: list[str] = []
    run: Iterator[str] | list[str]  # each group, then its tokens as a list
    for value, run in groupby(tokens, key):
        run = list(run)
        if value is None or len(run) < 2:
            out.extend(run)
            continue
        name = "clip-path" if attribute is _CLIP else "class"
        out.append(f"<g {name}='{value}'>")
        out.extend(attribute.sub("", t) for t in run)
        out.append("</g>")
    return out


def _class_rules(tokens: list[str]) -> dict[str, set[str]]:
    """Class name -> the properties its rule sets, from the style sheet ``_classes`` wrote."""
    sheet = tokens[tokens.index("</style>") - 1] if "</style>" in tokens else ""
    return {
        name: {part.split(":")[0].strip() for part in body.split(";") if part.strip()}
        for name, body in re.findall(r"\.(\w+)\{([^}]*)\}", sheet)
    }
