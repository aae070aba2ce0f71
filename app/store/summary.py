"""The adoption log summarised per alert, kept by the database itself.

The adoption figures need one row per alert (when it was generated, shown, viewed,
finished, followed up; its outcome, latency and who saw it). Pivoting a year of events
(about a million rows for a department) to get them took seconds; `alert_summary` holds
that row already. A trigger on `alert_events` folds each new event into its alert's row
in the same transaction, whoever inserts it (a workstation, the receiver, a migration),
so the summary cannot fall behind the log or disagree with it; migration 0006 fills it
from the events already there.

Each column has one rule, a value taken from the event and how two values combine
(the earliest time, the largest value), rendered twice: as the trigger's upsert of one
event and as the backfill's GROUP BY over the whole log. The event names are the
adoption log's (`app.adoption.log.AlertEventType`; the store sits below it, and a test
checks the two agree).
"""

from __future__ import annotations

from dataclasses import dataclass

GENERATED, DISPLAYED, VIEWED = "generated", "displayed", "viewed"
SCREENING_COMPLETED, DISMISSED, SUPPRESSED = "screening_completed", "dismissed", "suppressed"
TERMINAL = ("acknowledged", DISMISSED, "snoozed", "expired")
DIMENSIONS = ("department", "workstation", "clinician", "model", "tier")


@dataclass(frozen=True, slots=True)
class Rule:
    column: str
    value: str  # SQL over the event row, with {row} for its alias and {ms} its time
    combine: str  # "min" or "max": which of two values the summary keeps


def _when(event: str, then: str) -> str:
    return f"CASE WHEN {{row}}.event = '{event}' THEN {then} END"


_TERMINAL_SQL = ", ".join(f"'{t}'" for t in TERMINAL)

RULES = (
    Rule("generated_ms", _when(GENERATED, "{ms}"), "min"),
    Rule("displayed_ms", _when(DISPLAYED, "{ms}"), "min"),
    Rule("viewed_ms", _when(VIEWED, "{ms}"), "min"),
    Rule("finished_ms", f"CASE WHEN {{row}}.event IN ({_TERMINAL_SQL}) THEN {{ms}} END", "min"),
    Rule("screened_ms", _when(SCREENING_COMPLETED, "{ms}"), "min"),
    # An alert that expired unseen says so in its outcome ("expired unseen").
    Rule("outcome", f"CASE WHEN {{row}}.event IN ({_TERMINAL_SQL}) THEN {{row}}.event || "
                    "CASE WHEN {row}.event = 'expired' AND {row}.reason != '' "
                    "THEN ' ' || {row}.reason ELSE '' END END", "max"),
    Rule("reason", _when(DISMISSED, "{row}.reason"), "max"),
    Rule("latency_ms", _when(DISPLAYED, "{latency}"), "max"),
    Rule("abnormal", _when(SCREENING_COMPLETED, "{abnormal}"), "max"),
    *(Rule(name, _when(GENERATED, f"{{row}}.{name}"), "max") for name in DIMENSIONS),
)

# Per dialect: an event's time as epoch milliseconds (the stored time is naive UTC), and
# the two numbers read from its JSON detail. SQLite's json_extract gives 1/0 for
# true/false; a detail that is not JSON gives NULL rather than failing the insert.
_DIALECT = {
    "sqlite": {
        "ms": "(julianday({row}.at) - 2440587.5) * 86400000.0",
        "latency": "CASE WHEN json_valid({row}.detail) THEN "
                   "CAST(json_extract({row}.detail, '$.latency_ms.total') AS REAL) END",
        "abnormal": "CASE WHEN json_valid({row}.detail) THEN "
                    "CAST(json_extract({row}.detail, '$.abnormal') AS REAL) END",
    },
    "postgresql": {
        "ms": "(extract(epoch FROM {row}.at) * 1000.0)::double precision",
        "latency": "alert_summary_number({row}.detail, 'latency_ms', 'total')",
        "abnormal": "alert_summary_number({row}.detail, 'abnormal', NULL)",
    },
}


def _value(rule: Rule, dialect: str, row: str) -> str:
    parts = _DIALECT[dialect]
    text = rule.value.replace("{ms}", parts["ms"]).replace("{latency}", parts["latency"])
    return text.replace("{abnormal}", parts["abnormal"]).replace("{row}", row)


def _keep(rule: Rule, old: str, new: str) -> str:
    """The one of two values the rule keeps, either possibly NULL (the same on both
    databases: SQLite's two-argument min/max and PostgreSQL's LEAST differ on NULL)."""
    op = "<" if rule.combine == "min" else ">"
    return f"CASE WHEN {old} IS NULL OR {new} {op} {old} THEN {new} ELSE {old} END"


def upsert(dialect: str, row: str = "NEW") -> str:
    """Fold one event (`row`, the trigger's NEW) into its alert's summary row."""
    columns = ", ".join(rule.column for rule in RULES)
    values = ", ".join(_value(rule, dialect, row) for rule in RULES)
    updates = ", ".join(
        f"{r.column} = {_keep(r, f'alert_summary.{r.column}', f'excluded.{r.column}')}"
        for r in RULES)
    return (f"INSERT INTO alert_summary (alert_id, {columns}) "
            f"SELECT {row}.alert_id, {values} WHERE {row}.event != '{SUPPRESSED}' "
            f"ON CONFLICT (alert_id) DO UPDATE SET {updates}")


def backfill(dialect: str) -> str:
    """Summarise every event already in the log (migration 0006)."""
    columns = ", ".join(rule.column for rule in RULES)
    values = ", ".join(f"{rule.combine}({_value(rule, dialect, 'e')})" for rule in RULES)
    return (f"INSERT INTO alert_summary (alert_id, {columns}) "
            f"SELECT e.alert_id, {values} FROM alert_events AS e "
            f"WHERE e.event != '{SUPPRESSED}' GROUP BY e.alert_id")


def create_trigger(dialect: str) -> list[str]:
    """The statements that keep the summary: a trigger after each insert into the log."""
    if dialect == "sqlite":
        return [f"CREATE TRIGGER alert_summary_fold AFTER INSERT ON alert_events "
                f"BEGIN {upsert(dialect)}; END"]
    # A detail that is not JSON gives NULL rather than failing the event's insert.
    return [
        "CREATE FUNCTION alert_summary_number(detail text, key1 text, key2 text) "
        "RETURNS double precision AS $$ BEGIN "
        "IF key2 IS NULL THEN RETURN CASE (detail::jsonb ->> key1) WHEN 'true' THEN 1.0 "
        "WHEN 'false' THEN 0.0 ELSE (detail::jsonb ->> key1)::double precision END; END IF; "
        "RETURN (detail::jsonb -> key1 ->> key2)::double precision; "
        "EXCEPTION WHEN others THEN RETURN NULL; END $$ LANGUAGE plpgsql IMMUTABLE",
        f"CREATE FUNCTION alert_summary_fold() RETURNS trigger AS $$ BEGIN "
        f"{upsert(dialect)}; RETURN NULL; END $$ LANGUAGE plpgsql",
        "CREATE TRIGGER alert_summary_fold AFTER INSERT ON alert_events "
        "FOR EACH ROW EXECUTE FUNCTION alert_summary_fold()",
    ]


def drop_trigger(dialect: str) -> list[str]:
    if dialect == "sqlite":
        return ["DROP TRIGGER alert_summary_fold"]
    return ["DROP TRIGGER alert_summary_fold ON alert_events",
            "DROP FUNCTION alert_summary_fold()",
            "DROP FUNCTION alert_summary_number(text, text, text)"]
