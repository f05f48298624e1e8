# Sourced by .ci/run and scripts/test: one line per part of a run, so that the end of a CI log
# says what ran, what was skipped and why, and what failed.
#
#   report PART STATUS DETAIL     STATUS: ran | FAILED | skipped | MISSING
#
# Each line is printed and, when PREEMPT_SUMMARY names a file, appended to it (tab-separated).
report() {
  local part="$1" status="$2" detail="${3:-}"
  printf '%-28s %-8s %s\n' "$part" "$status" "$detail"
  if [ -n "${PREEMPT_SUMMARY:-}" ]; then
    printf '%s\t%s\t%s\n' "$part" "$status" "$detail" >>"$PREEMPT_SUMMARY"
  fi
}

# The closing line of a pytest log ("339 passed, 1 skipped in 301.2s") and its distinct skip
# reasons, as one detail string.
pytest_detail() {
  local log="$1" last reasons
  last="$(grep -E '^(=+ )?[0-9]+ (passed|failed|error)' "$log" | tail -1 | sed -E 's/^=+ | =+$//g')"
  reasons="$(sed -nE 's/^SKIPPED \[[0-9]+\] [^:]+:[0-9]+: //p' "$log" | sort | uniq -c \
    | sed -E 's/^ *([0-9]+) /\1x /' | paste -sd ';' -)"
  echo "${last:-no pytest summary line}${reasons:+ | skipped: $reasons}"
}
