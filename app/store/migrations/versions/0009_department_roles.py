"""department roles: least privilege for a department's workstations

Revision ID: 0009
Revises: 0008

Two tables name a department's points of care (`clarion_departments`) and the database
roles of its workstations (`clarion_db_roles`). On PostgreSQL:
- the adoption log also refuses TRUNCATE (0002's trigger covers UPDATE and DELETE only);
- an event inserted by a mapped role is stamped with that role's workstation, department
  and (where the role is a clinician's) clinician: the connection says who, not the client;
- `clarion_sees(patient_id)`, the test the row-level security policies apply (created by
  `clarion department init`, which needs a role-creating DBA; app/store/department.py);
- the summary's fold runs as the log's owner, so a workstation that may only insert events
  still keeps the summary.
Functions that run as their owner fix their search_path to this schema.
"""
import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "clarion_departments",
        sa.Column("department", sa.String(length=128), nullable=False),
        sa.Column("location", sa.String(length=128), nullable=False),
        sa.PrimaryKeyConstraint("department", "location"),
    )
    op.create_table(
        "clarion_db_roles",
        sa.Column("role_name", sa.String(length=63), nullable=False),
        sa.Column("department", sa.String(length=128), nullable=False),
        sa.Column("workstation", sa.String(length=128), nullable=False),
        sa.Column("clinician", sa.String(length=128), nullable=False),
        sa.PrimaryKeyConstraint("role_name"),
    )
    if op.get_bind().dialect.name != "postgresql":
        return
    schema = op.get_bind().exec_driver_sql("SELECT current_schema()").scalar()
    path = f'SET search_path = "{schema}", pg_temp'
    op.execute("CREATE TRIGGER alert_events_no_truncate BEFORE TRUNCATE ON alert_events "
               "FOR EACH STATEMENT EXECUTE FUNCTION alert_events_append_only()")
    op.execute(
        "CREATE FUNCTION alert_events_stamp() RETURNS trigger LANGUAGE plpgsql "
        f"SECURITY DEFINER {path} AS $$ DECLARE r clarion_db_roles%ROWTYPE; BEGIN "
        "SELECT * INTO r FROM clarion_db_roles WHERE role_name = session_user; "
        "IF FOUND THEN NEW.workstation := r.workstation; NEW.department := r.department; "
        "IF r.clinician <> '' THEN NEW.clinician := r.clinician; END IF; END IF; "
        "RETURN NEW; END $$")
    op.execute("CREATE TRIGGER alert_events_stamp BEFORE INSERT ON alert_events "
               "FOR EACH ROW EXECUTE FUNCTION alert_events_stamp()")
    op.execute(
        "CREATE FUNCTION clarion_role_department() RETURNS varchar LANGUAGE sql STABLE "
        f"SECURITY DEFINER {path} AS $$ SELECT department FROM clarion_db_roles "
        "WHERE role_name = session_user $$")
    op.execute(
        "CREATE FUNCTION clarion_sees(patient bigint) RETURNS boolean LANGUAGE sql STABLE "
        f"SECURITY DEFINER {path} AS $$ SELECT EXISTS (SELECT 1 FROM encounters e "
        "JOIN clarion_departments d ON d.location = split_part(e.location, '^', 1) "
        "WHERE e.patient_id = patient AND d.department = clarion_role_department()) $$")
    op.execute(f"ALTER FUNCTION alert_summary_fold() SECURITY DEFINER {path}")
    op.execute(f"ALTER FUNCTION alert_summary_number(text, text, text) {path}")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER FUNCTION alert_summary_fold() SECURITY INVOKER RESET search_path")
        op.execute("DROP FUNCTION clarion_sees(bigint)")
        op.execute("DROP FUNCTION clarion_role_department()")
        op.execute("DROP TRIGGER alert_events_stamp ON alert_events")
        op.execute("DROP FUNCTION alert_events_stamp()")
        op.execute("DROP TRIGGER alert_events_no_truncate ON alert_events")
    op.drop_table("clarion_db_roles")
    op.drop_table("clarion_departments")
