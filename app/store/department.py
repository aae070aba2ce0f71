"""Least privilege for a department on PostgreSQL: what `clarion department init` and
`clarion department add-workstation` do (docs/department.md is the DBA's guide).

- One group role (default `clarion_workstation`, NOLOGIN) holds what every workstation may
  do: read the store's patient tables and the adoption summary, insert into the adoption
  log (and nothing else: no inbox of raw messages, no update, delete or truncate).
- Row-level security on every table with patient data: a workstation's role sees a
  patient only when an encounter of theirs is at one of its department's points of care
  (`clarion_sees`, migration 0009), and may log events only for those patients.
- One login role per workstation (or per clinician's certificate), a member of the group,
  mapped in `clarion_db_roles` to its department, workstation and clinician; the log's
  trigger records those names on every event the role inserts.
- The receiver connects as the store's owner (it migrates the store and writes
  everything); an owner is not subject to row-level security.

Every statement is printed with `--sql` instead of run, for a DBA to review; running them
again changes nothing that is already so.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from sqlalchemy import Connection, Engine, text

# table → the column naming its patient
PATIENT_TABLES = {"patients": "id", "patient_identifiers": "patient_id",
                  "encounters": "patient_id", "observations": "patient_id",
                  "diagnoses": "patient_id", "waveforms": "patient_id",
                  "patient_changes": "patient_id", "alert_events": "patient_id"}
READABLE = (*PATIENT_TABLES, "alert_summary", "alembic_version")
GROUP = "clarion_workstation"
POLICY = "clarion_department"
_ROLE = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


class DepartmentError(ValueError):
    """A department command that cannot be done as asked; the message says how to."""


def role_name(name: str) -> str:
    """`name` as a PostgreSQL role name (lower case letters, digits, underscores, at most
    63), quoted; anything else is refused with the rule."""
    if not _ROLE.match(name):
        raise DepartmentError(f"{name!r} is not a usable role name: lower-case letters, "
                              "digits and underscores, starting with a letter or "
                              "underscore, at most 63 characters")
    return f'"{name}"'


def _schema(conn: Connection) -> str:
    return str(conn.exec_driver_sql("SELECT current_schema()").scalar())


def init_statements(conn: Connection, group: str = GROUP) -> list[str]:
    """The group role, its grants and the row-level security policies."""
    role, schema = role_name(group), f'"{_schema(conn)}"'
    sequence = conn.exec_driver_sql("SELECT pg_get_serial_sequence('alert_events', 'id')").scalar()
    statements = [
        f"DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{group}') THEN "
        f"CREATE ROLE {role} NOLOGIN; END IF; END $$",
        f"GRANT USAGE ON SCHEMA {schema} TO {role}",
        f"REVOKE ALL ON ALL TABLES IN SCHEMA {schema} FROM {role}",
        f"GRANT SELECT ON {', '.join(READABLE)} TO {role}",
        f"GRANT INSERT ON alert_events TO {role}",
        f"GRANT USAGE ON SEQUENCE {sequence} TO {role}",
    ]
    for table, column in PATIENT_TABLES.items():
        statements += [f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY",
                       f"DROP POLICY IF EXISTS {POLICY} ON {table}",
                       f"CREATE POLICY {POLICY} ON {table} FOR SELECT TO {role} "
                       f"USING (clarion_sees({column}))"]
    statements += [
        f"DROP POLICY IF EXISTS {POLICY}_insert ON alert_events",
        f"CREATE POLICY {POLICY}_insert ON alert_events FOR INSERT TO {role} "
        "WITH CHECK (clarion_sees(patient_id))",
        "ALTER TABLE alert_summary ENABLE ROW LEVEL SECURITY",
        f"DROP POLICY IF EXISTS {POLICY} ON alert_summary",
        f"CREATE POLICY {POLICY} ON alert_summary FOR SELECT TO {role} "
        "USING (department = clarion_role_department())",
    ]
    return statements


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def department_statements(department: str, locations: Iterable[str]) -> list[str]:
    """The department's points of care (PV1-3.1), replacing any it had."""
    points = sorted({p.strip() for p in locations if p.strip()})
    if not department.strip() or not points:
        raise DepartmentError("a department needs a name and at least one point of care "
                              "(--department ED --locations ER,ER-OBS: PV1-3.1 codes)")
    return [f"DELETE FROM clarion_departments WHERE department = {_literal(department)}",
            "INSERT INTO clarion_departments (department, location) VALUES " + ", ".join(
                f"({_literal(department)}, {_literal(p)})" for p in points)]


def workstation_statements(conn: Connection, role: str, department: str, workstation: str,
                           clinician: str = "", group: str = GROUP) -> list[str]:
    """A login role for a workstation (or a clinician's certificate), in the group, mapped
    to its department and the names its events carry."""
    quoted, member_of = role_name(role), role_name(group)
    known = conn.execute(text("SELECT count(*) FROM clarion_departments WHERE department = "
                              ":d"), {"d": department}).scalar()
    if not known:
        raise DepartmentError(f"no department {department!r}: run `clarion department init "
                              f"--department {department} --locations ...` first")
    return [
        f"DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{role}') THEN "
        f"CREATE ROLE {quoted} LOGIN; END IF; END $$",
        f"GRANT {member_of} TO {quoted}",
        "INSERT INTO clarion_db_roles (role_name, department, workstation, clinician) "
        f"VALUES ({_literal(role)}, {_literal(department)}, {_literal(workstation)}, "
        f"{_literal(clinician)}) ON CONFLICT (role_name) DO UPDATE SET "
        "department = EXCLUDED.department, workstation = EXCLUDED.workstation, "
        "clinician = EXCLUDED.clinician",
    ]


def run(engine: Engine, build: object, *, execute: bool = True) -> list[str]:
    """The statements `build(conn)` gives, run in one transaction (or only returned)."""
    if engine.dialect.name != "postgresql":
        raise DepartmentError("a department's roles and row-level security need PostgreSQL "
                              "([database] url = \"postgresql+psycopg://...\"); a standalone "
                              "SQLite store has one user")
    with engine.begin() as conn:
        statements = build(conn)  # type: ignore[operator]
        if execute:
            for statement in statements:
                conn.exec_driver_sql(statement)
    return list(statements)
