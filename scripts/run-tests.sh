#!/bin/bash
# Run Criterion test binaries: unit suites (before "--") in parallel jobs,
# integration suites (after "--") one test at a time. Fails if any fails.
set -uo pipefail
unit=() integ=() seen_sep=0
for a in "$@"; do
	if [ "$a" = "--" ]; then seen_sep=1; continue; fi
	if ((seen_sep)); then integ+=("$a"); else unit+=("$a"); fi
done
fail=0
run() {
	local bin=$1; shift
	echo "=== $bin"
	if ! "$bin" "$@"; then
		echo "FAILED: $bin"
		fail=1
	fi
}
for t in "${unit[@]}"; do run "$t" --jobs 2 ${CRITERION_ARGS:-}; done
for t in "${integ[@]}"; do run "$t" --jobs 1 ${CRITERION_ARGS:-}; done
exit $fail
