#!/bin/bash
# Bench: the consolidation policies on the PlanetLab days against CloudSim
# 3.0.3's figures (../shared/policy/README.md), qvisor's policy on held-out
# synthetic days, simulator speed, and decision-round time at scale.
#   scripts/bench/policy.sh [DATA_DIR] [--quick]
# DATA_DIR holds planetlab/<day>/ (default: $QV_POLICY_DATA, else
# ../shared/policy next to the tree, or ../../shared/policy from a
# worktree). --quick skips the 10,000-host round.
# Env: O=build dir (default build).
set -euo pipefail
cd "$(dirname "$0")/../.."
O=${O:-build}
DATA=${1:-${QV_POLICY_DATA:-../shared/policy}}
[ -d "$DATA" ] || [ -n "${1:-}" ] || DATA=../../shared/policy  # from a worktree
QUICK=${2:-}
[ -d "$DATA/planetlab" ] || { echo "no $DATA/planetlab (give DATA_DIR)" >&2; exit 2; }
make -s O="$O" "$O/qvisor" "$O/lib/libqv-sched.a" "$O/lib/libqv-common.a"
Q="$O/qvisor"
tmp=$(mktemp -d /tmp/qv-bench-policy.XXXXXX)
trap 'rm -rf "$tmp"' EXIT

POLICIES="npa dvfs thr-mmt:1.0 thr-mmt:0.8 iqr-mmt:1.5 mad-mmt:2.5 lrr-mmt:1.2 lr-mmt:1.2 qvisor"
run() { # day-dir policy[:param] -> one JSON line
	local p=${2%%:*} x=
	[[ $2 == *:* ]] && x="--param ${2#*:}"
	"$Q" sim --trace "$1" --policy "$p" $x --json | python3 -c 'import json,sys; print(json.dumps(json.load(sys.stdin)))'
}

echo "== Validation: every policy x day, both metric forms, against CloudSim 3.0.3 (sorted order)"
for day in $(ls "$DATA/planetlab"); do
	for p in $POLICIES; do
		printf '%s\t' "$day"
		run "$DATA/planetlab/$day" "$p"
	done
done >"$tmp/runs.tsv"
python3 - "$tmp/runs.tsv" <<'PY'
import json, sys
# CloudSim 3.0.3 reruns, sorted order: energy, migrations, SLAV %, SLATAH %, PDM %, shutdowns
ref = {
 ('20110303','LR-MMT-1.2'): (163.48,27859,0.00464,5.86,0.08,5053),
 ('20110303','IQR-MMT-1.5'): (189.98,26282,0.00301,4.82,0.06,5868),
 ('20110303','THR-MMT-0.8'): (192.62,26711,0.00318,4.91,0.06,5885),
 ('20110322','LR-MMT-1.2'): (177.48,32038,0.00464,6.13,0.08,5506),
 ('20110322','IQR-MMT-1.5'): (200.87,29058,0.00294,5.02,0.06,6067),
 ('20110322','THR-MMT-0.8'): (201.70,28902,0.00306,5.03,0.06,5950),
 ('20110403','LR-MMT-1.2'): (219.70,37972,0.00457,5.94,0.08,6550),
 ('20110403','IQR-MMT-1.5'): (257.96,35514,0.00294,4.82,0.06,7589),
 ('20110403','THR-MMT-0.8'): (258.56,35488,0.00300,4.87,0.06,7450),
}
# indicative (unsorted order): energy, migrations, SLAV %, SLATAH %
ind = {
 ('20110303','DVFS'): (764.96,0,0,0), ('20110303','MAD-MMT-2.5'): (189.79,27781,0.00357,5.09),
 ('20110303','THR-MMT-1.0'): (168.71,47987,0.02915,15.68),
 ('20110322','DVFS'): (956.81,0,0,0), ('20110322','MAD-MMT-2.5'): (188.80,27644,0.00287,5.08),
 ('20110322','THR-MMT-1.0'): (171.08,49098,0.02276,13.93),
 ('20110403','DVFS'): (1057.93,0,0,0), ('20110403','MAD-MMT-2.5'): (262.13,37205,0.00346,5.06),
 ('20110403','THR-MMT-1.0'): (226.33,68294,0.03262,16.98),
}
rows = [l.split('\t', 1) for l in open(sys.argv[1])]
print("| day | policy | energy kWh | migrations | SLAV % | SLATAH % | PDM % | ESV e-3 | paper SLATAH % | paper PDM % | paper ESV e-3 | shutdowns | vs lower bound | CloudSim (energy, migr., SLAV, SLATAH, PDM) | gap |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
best = {}
for day, js in rows:
    j = json.loads(js); p = j['policy']
    e, m = j['energy_kwh'], j['migrations']
    slav, sl, pdm = 100*j['slav'], 100*j['slatah'], 100*j['pdm']
    cs, gap = '', ''
    if (day, p) in ref:
        r = ref[(day, p)]
        cs = 'ref %.2f, %d, %.5f, %.2f, %.2f' % r[:5]
        ok = abs(e-r[0])/r[0] <= .03 and abs(m-r[1])/r[1] <= .1 and abs(round(sl,2)-r[3])/r[3] <= .1 and abs(round(pdm,2)-r[4])/r[4] <= .1
        gap = 'E %+.2f%% M %+.2f%% %s' % (100*(e-r[0])/r[0], 100*(m-r[1])/r[1], 'PASS' if ok else 'FAIL')
    elif (day, p) in ind:
        r = ind[(day, p)]
        cs = 'indicative %.2f, %d, %.5f, %.2f' % r
        gap = 'E %+.1f%%' % (100*(e-r[0])/r[0]) + (' M %+.1f%%' % (100*(m-r[1])/r[1]) if r[1] else '')
    lb = '%.2fx' % (e / j['lower_bound_kwh']) if j['lower_bound_kwh'] > 0 else ''
    print('| %s | %s | %.2f | %d | %.5f | %.2f | %.3f | %.3f | %.2f | %.3f | %.3f | %d | %s | %s | %s |' % (
        day, p, e, m, slav, sl, pdm, 1000*j['esv'], 100*j['paper_slatah'], 100*j['paper_pdm'],
        1000*j['paper_esv'], j['host_shutdowns'], lb, cs, gap))
    best.setdefault(day, {})[p] = j
print()
print("qvisor against the aim (half IQR-MMT-1.5's ESV at no more energy than LR-MMT-1.2):")
for day, d in sorted(best.items()):
    q, iqr, lr = d['qvisor'], d['IQR-MMT-1.5'], d['LR-MMT-1.2']
    print("  %s: ESV %.3f vs IQR %.3f (%.2fx lower; aim %.3f) - migrations %d vs %d - energy %.2f vs LR %.2f (%+.1f%%) - lower bound %.2f kWh (qvisor %.2fx, LR %.2fx, IQR %.2fx)" % (
        day, 1000*q['esv'], 1000*iqr['esv'], iqr['esv']/q['esv'], 500*iqr['esv'], q['migrations'], iqr['migrations'],
        q['energy_kwh'], lr['energy_kwh'], 100*(q['energy_kwh']-lr['energy_kwh'])/lr['energy_kwh'],
        q['lower_bound_kwh'], q['energy_kwh']/q['lower_bound_kwh'], lr['energy_kwh']/lr['lower_bound_kwh'],
        iqr['energy_kwh']/iqr['lower_bound_kwh']))
PY

echo
echo "== Held-out days: synthetic days never used to choose qvisor's parameters"
# Each synthetic day: 1200 VMs drawn (with replacement) from all provided
# days, each trace rotated by a random number of samples, plus 5 % noise.
python3 - "$DATA/planetlab" "$tmp/syn" <<'PY'
import os, random, sys
src, out = sys.argv[1], sys.argv[2]
files = [os.path.join(src, d, f) for d in sorted(os.listdir(src)) for f in sorted(os.listdir(os.path.join(src, d)))]
for s in (1, 2, 3):
    rnd = random.Random(1000 + s)
    d = os.path.join(out, 'synthetic-%d' % s); os.makedirs(d)
    for i in range(1200):
        v = [int(x) for x in open(rnd.choice(files))]
        k = rnd.randrange(288); v = v[k:] + v[:k]
        v = [max(0, min(99, x + int(round(rnd.gauss(0, 0.05 * max(x, 1)))))) for x in v]
        open(os.path.join(d, 'vm%04d' % i), 'w').write(''.join('%d\n' % x for x in v))
PY
for d in "$tmp"/syn/*; do
	for p in iqr-mmt:1.5 lr-mmt:1.2 qvisor; do
		printf '%s\t' "$(basename "$d")"
		run "$d" "$p"
	done
done >"$tmp/syn.tsv"
python3 - "$tmp/syn.tsv" <<'PY'
import json, sys
d = {}
for l in open(sys.argv[1]):
    day, js = l.split('\t', 1); j = json.loads(js); d.setdefault(day, {})[j['policy']] = j
for day in sorted(d):
    q, i, l = d[day]['qvisor'], d[day]['IQR-MMT-1.5'], d[day]['LR-MMT-1.2']
    print("  %s: qvisor ESV %.3f e-3 vs IQR %.3f (%.2fx lower), migrations %d vs %d, energy %.2f vs LR %.2f kWh (%+.1f%%), %s" % (
        day, 1000*q['esv'], 1000*i['esv'], i['esv']/q['esv'], q['migrations'], i['migrations'],
        q['energy_kwh'], l['energy_kwh'], 100*(q['energy_kwh']-l['energy_kwh'])/l['energy_kwh'],
        'beats IQR' if q['esv'] < i['esv'] and q['migrations'] < i['migrations'] else 'DOES NOT beat IQR'))
PY

echo
echo "== Simulator speed: one day (LR-MMT-1.2, 800 hosts), peer = CloudSim 3.0.3 ~30 s per run on this machine class (README)"
day=$(ls "$DATA/planetlab" | head -1)
for p in lr-mmt iqr-mmt qvisor; do
	/usr/bin/time -f "%U %S %e" -o "$tmp/t" "$Q" sim --trace "$DATA/planetlab/$day" --policy $p >/dev/null
	read -r u s e <"$tmp/t"
	python3 -c "import sys; u,s,e=map(float,sys.argv[1:4]); c=u+s; print('  %-8s %s: %.2f s CPU, %.2f s wall; CloudSim 30 s / ours = %.0fx (CPU)' % (sys.argv[4], sys.argv[5], c, e, 30/max(c,1e-3)))" "$u" "$s" "$e" "$p" "$day"
done

echo
echo "== Decision round (CPU time of qv_pol_round on a synthetic datacenter)"
cc -O2 -std=gnu11 -D_GNU_SOURCE -I. -o "$tmp/policy_round" scripts/bench/policy_round.c \
	"$O/lib/libqv-sched.a" "$O/lib/libqv-common.a" $(pkg-config --libs json-c) -lm
"$tmp/policy_round" 1000 20000 thr-mmt iqr-mmt mad-mmt lr-mmt lrr-mmt qvisor
[ "$QUICK" = --quick ] || "$tmp/policy_round" 10000 200000 qvisor thr-mmt lr-mmt iqr-mmt mad-mmt lrr-mmt
