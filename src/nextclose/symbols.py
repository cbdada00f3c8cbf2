"""Index codes: the one rule for ``data.symbol``, shared by the params check and the sources."""

from __future__ import annotations

import re

from nextclose.errors import UserError


class SymbolError(UserError, ValueError):
    """``data.symbol`` is not a Shanghai or Shenzhen index code; the message shows good spellings."""


def parse_symbol(symbol: str | int) -> tuple[str, str]:
    """``(exchange, code)`` of an index symbol, e.g. ``("sh", "000300")``.

    Accepts ``000300``, ``000300.XSHG``, ``000300.SH``, ``sh000300`` and ``sh.000300`` (any
    case). A bare code is a Shanghai index when it starts with 000 and a Shenzhen one when it
    starts with 399; Shanghai index codes are 000xxx and Shenzhen ones 399xxx. An int is read
    as its digits, so 399001 works while 192 (PyYAML's reading of an unquoted 000300, an
    octal number) is refused rather than taken for another index.
    """
    text = str(symbol).strip()
    match = (
        re.fullmatch(r"(?i)(sh|sz)\.?(\d{6})", text)
        or re.fullmatch(r"(?i)(\d{6})\.(xshg|xshe|sh|sz)", text)
        or re.fullmatch(r"(\d{6})", text)
    )
    if match is None:
        raise SymbolError(
            f"data.symbol {symbol!r}: not an index code; write e.g. 000300 (the CSI 300), "
            f"000300.XSHG, sh000300 or sh.000300"
        )
    groups = match.groups()
    exchange: str | None
    if len(groups) == 1:
        code, exchange = groups[0], {"000": "sh", "399": "sz"}.get(groups[0][:3])
    elif groups[0].isdigit():
        suffixes = {"xshg": "sh", "sh": "sh", "xshe": "sz", "sz": "sz"}
        code, exchange = groups[0], suffixes[groups[1].lower()]
    else:
        exchange, code = groups[0].lower(), groups[1]
    expected = {"sh": "000", "sz": "399"}
    if exchange is None or not code.startswith(expected[exchange]):
        raise SymbolError(
            f"data.symbol {symbol!r}: not a Shanghai (000xxx) or Shenzhen (399xxx) index code; "
            f"e.g. 000300 is the CSI 300, 000001 the SSE Composite, 399001 the SZSE Component"
        )
    return exchange, code


# The indices whose point-in-time constituents index-constitution ships (its name for each), by
# code: the CSI indices have a Shanghai code (000300) and a Shenzhen one (399300).
CONSTITUENT_INDICES = {"000300": "csi300", "399300": "csi300", "000905": "csi500", "399905": "csi500"}
INDEX_NAMES = {"csi300": "CSI 300", "csi500": "CSI 500"}


def constituent_index(symbol: str | int) -> str:
    """index-constitution's name of the index ``symbol`` (e.g. ``"csi300"`` for 000300), or
    :class:`SymbolError` naming the indices whose members are known."""
    _, code = parse_symbol(symbol)
    if code not in CONSTITUENT_INDICES:
        known = ", ".join(f"{code} ({INDEX_NAMES[name]})" for code, name in CONSTITUENT_INDICES.items()
                          if code.startswith("000"))
        raise SymbolError(
            f"data.symbol {symbol!r}: no point-in-time membership for this index; the constituent sources "
            f"know {known}"
        )
    return CONSTITUENT_INDICES[code]
