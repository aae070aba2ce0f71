"""Conformance checks with hl7apy: slow, thorough, for people (`clarion hl7 validate`)."""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass

from integrations.hl7.header import HeaderError, read_header


@dataclass(frozen=True, slots=True)
class Problem:
    """One conformance finding: severity ('error' or 'warning') and what is wrong."""

    severity: str
    text: str


def validate_message(raw: bytes) -> list[Problem]:
    """Every structure, cardinality, datatype, length and table problem hl7apy finds."""
    from hl7apy.consts import VALIDATION_LEVEL
    from hl7apy.exceptions import HL7apyException
    from hl7apy.parser import parse_message

    try:
        header = read_header(raw)
    except HeaderError as exc:
        return [Problem("error", f"no usable MSH: {exc}")]
    try:
        message = parse_message(header.text, validation_level=VALIDATION_LEVEL.TOLERANT,
                                find_groups=True)
    except (HL7apyException, ValueError, KeyError, IndexError) as exc:
        return [Problem("error", f"hl7apy cannot parse the message: {exc}")]
    fd, path = tempfile.mkstemp(prefix="clarion-validate-", suffix=".txt")
    os.close(fd)
    try:
        try:
            message.validate(report_file=path)
        except HL7apyException:
            pass  # the report file holds every finding, not just the first
        with open(path, encoding="utf-8") as report:
            lines = [line.strip() for line in report if line.strip()]
    finally:
        os.unlink(path)
    problems = []
    for line in lines:
        kind, _, text = line.partition(":")
        severity = "warning" if "warning" in kind.lower() else "error"
        problems.append(Problem(severity, text.strip() or line))
    return problems
