#!/bin/bash
# Run Criterion test binaries: unit suites (before "--") two jobs at a time,
# integration suites (after "--") one test at a time. Each suite writes its
# counts to a JSON report (Criterion --json); the last line is one summary
# over all suites, "N passed, N failed, N skipped". Exits non-zero if any
# test failed or any suite exited non-zero.
#   env: CRITERION_ARGS (extra arguments for every suite)
set -uo pipefail
unit=() integ=() seen_sep=0
for a in "$@"; do
	if [ "$a" = "--" ]; then seen_sep=1; continue; fi
	if ((seen_sep)); then integ+=("$a"); else unit+=("$a"); fi
done

report=$(mktemp -d "${TMPDIR:-/tmp}/qv-run-tests-XXXXXX")
trap 'rm -rf "$report"' EXIT
passed=0 failed=0 skipped=0 broken=()

# The value of "key": N in the top-level summary of a Criterion JSON report.
count() { sed -n "s/^  \"$1\": \([0-9]*\),\$/\1/p" "$2" | head -n1; }

run() {
	local bin=$1; shift
	local json=$report/$(basename "$bin").json p f e s
	rm -f "$json"
	echo "=== $bin"
	local t0=$EPOCHREALTIME
	"$bin" "$@" --json="$json"
	local rc=$?
	awk -v n="$(basename "$bin")" -v a="$t0" -v b="$EPOCHREALTIME" \
		'BEGIN { printf "=== %s: %.1f s\n", n, b - a }'
	p=$(count passed "$json" 2>/dev/null) f=$(count failed "$json" 2>/dev/null)
	e=$(count errored "$json" 2>/dev/null) s=$(count skipped "$json" 2>/dev/null)
	if [ -z "$p" ] || [ -z "$f" ]; then
		# The suite died before writing its report: count it as one failure.
		p=0 f=1 e=0 s=0
	elif ((rc != 0 && f + ${e:-0} == 0)); then
		f=1 # all tests passed but the binary failed (sanitizer, leak, crash at exit)
	fi
	passed=$((passed + p)) failed=$((failed + f + ${e:-0})) skipped=$((skipped + ${s:-0}))
	if ((rc != 0)); then
		echo "FAILED: $bin"
		broken+=("$bin")
	fi
}
for t in "${unit[@]}"; do run "$t" --jobs 2 ${CRITERION_ARGS:-}; done
for t in "${integ[@]}"; do run "$t" --jobs 1 ${CRITERION_ARGS:-}; done

echo
for b in "${broken[@]}"; do echo "failed suite: $b"; done
echo "$passed passed, $failed failed, $skipped skipped"
((${#broken[@]} == 0 && failed == 0))
