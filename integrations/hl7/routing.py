"""Who a message is about and where it is routed, read at receipt without parsing it.

The listener decides, before processing, whether a message belongs in the fast lane (a
patient open on this workstation, or an ADT for one of its locations). A full parse costs
milliseconds; this reads only PID-3 (falling back to PID-2, PID-4, as the parser does)
and PV1-3/7/17 by splitting the text, in tens of microseconds. It reads the same
components the parser reads (`integrations/hl7/parse.py`), so the identifiers agree.
"""

from __future__ import annotations

from dataclasses import dataclass

from integrations.hl7.header import Header


@dataclass(frozen=True, slots=True)
class Routing:
    """The first patient of a message and its visit's routing fields."""

    identifiers: tuple[tuple[str, str], ...]  # (CX.1 value, CX.4 authority), PID order
    location: str = ""  # PV1-3 as the parser gives it ("ER^1^2")
    providers: tuple[str, ...] = ()  # PV1-7 attending, PV1-17 admitting

    @property
    def unit(self) -> str:
        return self.location.split("^")[0]


def read_routing(header: Header) -> Routing:
    """The routing fields of the first PID (and its last PV1); empty if none."""
    field_sep = header.field_sep or "|"
    enc = header.encoding_chars or "^~\\&"
    comp, rep = enc[0], enc[1] if len(enc) > 1 else "~"
    sub = enc[3] if len(enc) > 3 else "&"
    identifiers: tuple[tuple[str, str], ...] = ()
    location = ""
    providers: tuple[str, ...] = ()
    seen_pid = False
    for segment in header.text.split("\r"):
        name = segment[:3]
        if name == "PID" and not seen_pid:
            seen_pid = True
            fields = segment.split(field_sep)
            for number in (3, 2, 4):
                identifiers = _identifiers(fields[number] if len(fields) > number else "",
                                           comp, rep, sub)
                if identifiers:
                    break
        elif name == "PV1" and seen_pid:
            fields = segment.split(field_sep) + [""] * 18  # PV1-17 at most
            location = "^".join(c.split(sub)[0] for c in fields[3].split(rep)[0].split(comp)[:4]
                                ).rstrip("^")
            providers = tuple(p for p in (_provider(fields[7], comp, rep, sub),
                                          _provider(fields[17], comp, rep, sub)) if p)
            # No break: a later PV1 of the same patient replaces it, as in the parser.
        elif name in ("PID", "MSH") and seen_pid:
            break  # the next patient of a batch or a merge: not the first one's
    return Routing(identifiers, location, providers)


def _identifiers(text: str, comp: str, rep: str, sub: str) -> tuple[tuple[str, str], ...]:
    found = []
    for cx in text.split(rep):
        parts = cx.split(comp)
        value = parts[0].strip()
        if not value:
            continue
        hd = parts[3].split(sub) if len(parts) > 3 else [""]
        authority = hd[0].strip() or (hd[1].strip() if len(hd) > 1 else "")
        found.append((value, authority))
    return tuple(found)


def _provider(text: str, comp: str, rep: str, sub: str) -> str:
    parts = [c.split(sub)[0] for c in text.split(rep)[0].split(comp)]
    return parts[0].strip() or (parts[1].strip() if len(parts) > 1 else "")
