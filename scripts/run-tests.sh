#!/bin/bash
# Run Criterion test binaries: unit suites (before "--") two jobs at a time,
# then integration suites (after "--"), each one test at a time. Integration
# suites run in QV_TEST_LANES lanes (default 2): the suites listed in SOLO
# (their assertions or the conditions they force depend on the host not
# being busy: migration convergence, latency percentiles, the nested lab VM,
# connect deadlines) run alone; the others run two at once, each with its
# output held back and printed whole when it ends, so the log reads as if
# they had run one after another. Each suite writes its counts to a JSON
# report (Criterion --json); the last line is one summary over all suites,
# "N passed, N failed, N skipped". Exits non-zero if any test failed or any
# suite exited non-zero.
#   env: CRITERION_ARGS (extra arguments for every suite)
#        QV_TEST_LANES  (1: every integration suite alone, in order)
set -uo pipefail
SOLO=" test_migrate test_migrate_p2p test_migrate_postcopy test_migrate_storage test_migrate_tls
 test_migrate_connect test_drill test_labvm test_isolation_flood test_batch test_boot test_balloon
 test_daemon test_cluster_balance "
unit=() integ=() seen_sep=0
for a in "$@"; do
	if [ "$a" = "--" ]; then seen_sep=1; continue; fi
	if ((seen_sep)); then integ+=("$a"); else unit+=("$a"); fi
done
lanes=${QV_TEST_LANES:-2}

report=$(mktemp -d "${TMPDIR:-/tmp}/qv-run-tests-XXXXXX")
trap 'rm -rf "$report"' EXIT
passed=0 failed=0 skipped=0 broken=()

# The value of "key": N in the top-level summary of a Criterion JSON report.
count() { sed -n "s/^  \"$1\": \([0-9]*\),\$/\1/p" "$2" | head -n1; }

# Run one suite; its exit status goes to $report/NAME.rc.
exec_suite() {
	local bin=$1; shift
	local name json
	name=$(basename "$bin") json=$report/$name.json
	rm -f "$json"
	echo "=== $bin"
	local t0=$EPOCHREALTIME
	"$bin" "$@" --json="$json"
	echo $? >"$report/$name.rc"
	awk -v n="$name" -v a="$t0" -v b="$EPOCHREALTIME" \
		'BEGIN { printf "=== %s: %.1f s\n", n, b - a }'
}

# Add a finished suite's counts to the totals.
tally() {
	local bin=$1 name p f e s rc json
	name=$(basename "$bin") json=$report/$name.json
	rc=$(cat "$report/$name.rc" 2>/dev/null || echo 1)
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

for t in "${unit[@]}"; do exec_suite "$t" --jobs 2 ${CRITERION_ARGS:-}; tally "$t"; done

solo=() pooled=()
for t in "${integ[@]}"; do
	if ((lanes > 1)) && [[ "$SOLO" != *" $(basename "$t") "* ]]; then pooled+=("$t"); else solo+=("$t"); fi
done
for t in "${solo[@]}"; do exec_suite "$t" --jobs 1 ${CRITERION_ARGS:-}; tally "$t"; done

# The pooled suites, `lanes` at a time; each one's output is printed when it ends.
declare -A running=()
flush_one() {
	local pid
	wait -n -p pid "${!running[@]}" 2>/dev/null || true
	[ -n "${pid:-}" ] || return 0
	local t=${running[$pid]}
	unset "running[$pid]"
	cat "$report/$(basename "$t").out"
	tally "$t"
}
for t in "${pooled[@]}"; do
	while ((${#running[@]} >= lanes)); do flush_one; done
	exec_suite "$t" --jobs 1 ${CRITERION_ARGS:-} >"$report/$(basename "$t").out" 2>&1 &
	running[$!]=$t
done
while ((${#running[@]} > 0)); do flush_one; done

echo
for b in "${broken[@]}"; do echo "failed suite: $b"; done
echo "$passed passed, $failed failed, $skipped skipped"
((${#broken[@]} == 0 && failed == 0))
