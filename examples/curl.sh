#!/usr/bin/env bash
# curl.sh - modeld's business predictions (issue 11) with curl and jq: the same steps as
# examples/python/client.py and examples/js/client.mjs, each printing one JSON line.
#
#   export MODELD_URL=http://127.0.0.1:8080 MODELD_KEY=mdk_...      # a write key (admin for all)
#   examples/curl.sh single batch bulk                               # the default steps
#   MODELD_CALLBACK_URL=http://127.0.0.1:9000/hook examples/curl.sh bulk
#   MODELD_ADMIN_KEY=mdk_... RETRAIN_CSV=tests/fixtures/predict/retrain/churn.csv examples/curl.sh schedule retrain
#
# Environment: MODELD_URL, MODELD_KEY, MODELD_ADMIN_KEY (admin steps; default MODELD_KEY),
# MODEL (default churn), CSV (default examples/data/churn.csv), MODELD_CALLBACK_URL, CRON
# (default "0 3 * * *"), KEEP_SCHEDULE=1, RETRAIN_CSV. Exit status 1 when a step got an error.
set -euo pipefail

URL=${MODELD_URL:-http://127.0.0.1:8080}
KEY=${MODELD_KEY:?set MODELD_KEY}
ADMIN=${MODELD_ADMIN_KEY:-$KEY}
MODEL=${MODEL:-churn}
CSV=${CSV:-$(dirname "$0")/data/churn.csv}
CRON=${CRON:-0 3 * * *}
CB=${MODELD_CALLBACK_URL:-}
rc=0
exec 3>&1 # the steps' own stdout, also from inside $(...)

# call KEY METHOD PATH [curl args...]: the body on stdout; on a non-2xx answer one JSON line
# {step, ok: false, status, code, field, message} on the script's stdout (fd 3) and status 1.
call() {
  local key=$1 method=$2 path=$3
  shift 3
  local out status
  out=$(curl -sS -w '\n%{http_code}' -X "$method" -H "Authorization: Bearer $key" "$@" "$URL$path")
  status=${out##*$'\n'}
  out=${out%$'\n'*}
  if [ "${status:0:1}" != 2 ]; then
    jq -c --arg step "$STEP" --argjson status "$status" \
      '{step: $step, ok: false, status: $status, code: .error.code, field: .error.field, message: .error.message}' \
      <<<"${out:-null}" >&3
    return 1
  fi
  printf '%s' "$out"
}

# One churn row (examples/data/churn.csv's first) as a prediction request.
ROW='{"female": 1, "senior_citizen": 1, "partner": 1, "dependents": 0, "tenure": 1, "phone_service": 0,
  "multiple_lines": "No phone service", "internet_service": "DSL", "online_security": "No",
  "online_backup": "Yes", "device_protection": "No", "tech_support": "No", "streaming_tv": "No",
  "streaming_movies": "No", "contract": "Month-to-month", "paperless_billing": 1,
  "payment_method": "Electronic check", "monthly_charges": 20.0, "total_charges": 20.0}'

step_single() {   # POST /api/{model} {features}
  local a
  a=$(call "$KEY" POST "/api/$MODEL" -H 'Content-Type: application/json' -d "{\"features\": $ROW}") || return 1
  jq -c '{step: "single", ok: true, prediction, prediction_id, version, reasons: .explanation.reasons}' <<<"$a"
}

step_batch() {    # POST /api/{model}/batch {items}: the row, and the same with a bad tenure
  local a
  a=$(call "$KEY" POST "/api/$MODEL/batch" -H 'Content-Type: application/json' \
    -d "{\"items\": [$ROW, $(jq -c '.tenure = "twelve"' <<<"$ROW"), $ROW]}") || return 1
  jq -c '{step: "batch", ok: true, count, failed, first: .predictions[0].prediction}' <<<"$a"
}

step_bulk() {     # POST /api/{model}/bulk (multipart file + callback_url), wait, read the CSV result
  local a id j st res
  a=$(call "$KEY" POST "/api/$MODEL/bulk" -F "file=@$CSV;type=text/csv" ${CB:+-F "callback_url=$CB"}) || return 1
  id=$(jq -r .job_id <<<"$a")
  while :; do
    j=$(call "$KEY" GET "/api/v1/jobs/$id") || return 1
    st=$(jq -r .status <<<"$j")
    case $st in SUCCESS | FAILURE | CANCELLED) break ;; esac
    sleep 0.2
  done
  if [ "$st" != SUCCESS ]; then
    jq -c --arg id "$id" '{step: "bulk", ok: true, job_id: $id, status, error}' <<<"$j"
    return 0
  fi
  res=$(call "$KEY" GET "/api/v1/jobs/$id/result") || return 1
  # The result CSV: row, the prediction's columns, error_code, error_field, error (last three).
  printf '%s\n' "$res" | jq -R -s -c --arg id "$id" '
    def cells: [scan("(?:^|,)(\"(?:[^\"]|\"\")*\"|[^,]*)") | .[0] | sub("^\"(?<x>.*)\"$"; "\(.x)") | gsub("\"\""; "\"")];
    (split("\n") | map(select(length > 0))) as $l | ($l[0] | cells) as $h |
    [$l[1:][] | cells | . as $c | [range(0; $h | length)] | map({key: $h[.], value: $c[.]}) | from_entries] as $rows |
    {step: "bulk", ok: true, job_id: $id, status: "SUCCESS", rows: ($rows | length),
     errors: [$rows[] | select(.error_code != "") | {row: (.row | tonumber), field: .error_field, error}]}'
}

dataset() {       # POST /api/admin/datasets (raw CSV body) -> its id on stdout
  local a
  a=$(call "$ADMIN" POST "/api/admin/datasets?name=$(basename "$1")" -H 'Content-Type: text/csv' \
    --data-binary "@$1") || return 1
  jq -r '.dataset_id // .id' <<<"$a"
}

step_schedule() { # a dataset, POST /api/admin/schedule, GET /api/admin/schedules, DELETE
  local ds sc sid listed del=null
  ds=$(dataset "$CSV") || return 1
  sc=$(call "$ADMIN" POST /api/admin/schedule -H 'Content-Type: application/json' \
    -d "$(jq -nc --arg m "$MODEL" --arg c "$CRON" --arg i "$ds" --arg cb "$CB" \
      '{model: $m, cron: $c, input: $i} + (if $cb == "" then {} else {callback_url: $cb} end)')") || return 1
  sid=$(jq -r .schedule_id <<<"$sc")
  listed=$(call "$ADMIN" GET /api/admin/schedules | jq --arg s "$sid" 'any(.schedules[]; .schedule_id == $s)') || return 1
  if [ -z "${KEEP_SCHEDULE:-}" ]; then
    del=$(call "$ADMIN" DELETE "/api/admin/schedules/$sid" | jq .deleted) || return 1
  fi
  jq -c --arg ds "$ds" --argjson listed "$listed" --argjson del "$del" \
    '{step: "schedule", ok: true, dataset_id: $ds, schedule_id, next_run, listed: $listed}
     + (if $del == null then {} else {deleted: $del} end)' <<<"$sc"
}

step_retrain() {  # a dataset with the label column, POST /api/admin/retrain, wait, the versions
  local ds a id j st m
  : "${RETRAIN_CSV:?retrain: set RETRAIN_CSV (a CSV of the schema columns and the label column)}"
  ds=$(dataset "$RETRAIN_CSV") || return 1
  a=$(call "$ADMIN" POST /api/admin/retrain -H 'Content-Type: application/json' \
    -d "$(jq -nc --arg m "$MODEL" --arg d "$ds" '{model: $m, data: $d}')") || return 1
  id=$(jq -r .job_id <<<"$a")
  while :; do
    j=$(call "$ADMIN" GET "/api/v1/jobs/$id") || return 1
    st=$(jq -r .status <<<"$j")
    case $st in SUCCESS | FAILURE | CANCELLED) break ;; esac
    sleep 0.5
  done
  m=$(call "$ADMIN" GET "/api/models/$MODEL") || return 1
  jq -c --arg ds "$ds" --arg id "$id" --argjson j "$j" \
    '{step: "retrain", ok: true, dataset_id: $ds, job_id: $id, status: $j.status, error: $j.error,
      active_version: .model.active_version, versions: .model.versions}' <<<"$m"
}

[ $# -gt 0 ] || set -- single batch bulk
for STEP in "$@"; do
  case $STEP in
    single | batch | bulk | schedule | retrain) "step_$STEP" || rc=1 ;;
    *) echo "unknown step $STEP (single batch bulk schedule retrain)" >&2; exit 2 ;;
  esac
done
exit $rc
