#!/usr/bin/env bash
# A department on a local PostgreSQL, for a newcomer to watch: one receiver (clarion
# listen), two workstations (clarion workstation, each on its own database role and
# point of care), three synthetic messages for a patient arriving in the ER. The ER's
# workstation prints the banners; the clinic's prints none. Then the adoption per
# workstation, and everything is removed again (schema and roles).
#
#   docs/department-demo.sh [postgresql+psycopg://postgres@127.0.0.1:5432/test]
#
# Needs a PostgreSQL URL of a role that may create roles (a local superuser), trust or
# password authentication for new roles on 127.0.0.1, and the port 2575 free.
set -euo pipefail
cd "$(dirname "$0")/.."
C="${CLARION:-.venv/bin/clarion}"
BASE="${1:-postgresql+psycopg://postgres@127.0.0.1:5432/test}"
SCHEMA=clarion_demo
DB="$BASE?options=-csearch_path%3D$SCHEMA"
WORK=$(mktemp -d)
PSQL_URL="${BASE/+psycopg/}"
export PGOPTIONS="--client-min-messages=warning"
psql "$PSQL_URL" -qc "DROP SCHEMA IF EXISTS $SCHEMA CASCADE; CREATE SCHEMA $SCHEMA"
cleanup() {
  kill $(jobs -p) 2>/dev/null || true
  wait 2>/dev/null || true
  psql "$PSQL_URL" -qc "DROP SCHEMA IF EXISTS $SCHEMA CASCADE" || true
  for role in demo_ws_er demo_ws_clinic demo_workstations; do
    psql "$PSQL_URL" -qc "DROP OWNED BY $role; DROP ROLE $role" 2>/dev/null || true
  done
  rm -rf "$WORK"
}
trap cleanup EXIT

printf '[database]\nurl = "%s"\n[department]\nrole = "receiver"\n[listener]\nport = 2575\n[paths]\ndata_dir = "%s/receiver"\n' \
  "$DB" "$WORK" > "$WORK/receiver.toml"
"$C" listen --config "$WORK/receiver.toml" 2>"$WORK/receiver.log" &
until grep -q "listening on" "$WORK/receiver.log"; do sleep 0.5; done

for unit in ER CLINIC; do
  role=demo_ws_$(echo $unit | tr A-Z a-z)
  "$C" department init --db "$DB" --department $unit --locations $unit --group demo_workstations
  "$C" department add-workstation $role --db "$DB" --department $unit \
    --workstation $unit-1 --group demo_workstations
  printf '[database]\nurl = "%s"\n[department]\nrole = "workstation"\n[workstation]\nname = "%s-1"\nlocations = ["%s"]\n[paths]\ndata_dir = "%s/%s"\n' \
    "${DB/\/\/postgres@/\/\/$role@}" $unit $unit "$WORK" $unit > "$WORK/$unit.toml"
  "$C" workstation --config "$WORK/$unit.toml" > "$WORK/$unit.out" 2>"$WORK/$unit.log" &
done
for unit in ER CLINIC; do
  until grep -q following "$WORK/$unit.out"; do sleep 0.5; done
done

T=20261201080000
printf 'MSH|^~\\&|ADT|H|C|W|%s||ADT^A08|H1|P|2.5\rPID|1||P1^^^H^MR||Demo^Ann||19600101|F||2029-7^Asian Indian^CDCREC\rPV1|1|O|ER\rDG1|1||R73.03^Prediabetes^I10||20240101\rDG1|2||Z83.3^Family history^I10||20240101\r' $T > "$WORK/1.hl7"
printf 'MSH|^~\\&|ADT|H|C|W|%s||ADT^A04|V1|P|2.5\rPID|1||P1^^^H^MR||Demo^Ann||19600101|F\rPV1|1|E|ER^1^1^H\r' $T > "$WORK/2.hl7"
printf 'MSH|^~\\&|LAB|H|C|W|%s||ORU^R01|R1|P|2.5\rPID|1||P1^^^H^MR||Demo^Ann||19600101|F\rOBR|1||O1|X|||%s\rOBX|1|NM|4548-4^HbA1c^LN||6.3|%%|||||F|||%s\r' $T $T $T > "$WORK/3.hl7"
"$C" send "$WORK/1.hl7" "$WORK/2.hl7" "$WORK/3.hl7" --to 127.0.0.1:2575
sleep 5
for unit in ER CLINIC; do echo "== workstation $unit-1"; cat "$WORK/$unit.out"; done
"$C" stats --by workstation --db "$DB" --since 1d
