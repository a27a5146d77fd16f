#!/bin/bash
# Backup benchmark (docs/benchmarks.md): a running test guest with a 1 GiB
# qcow2 disk full of random data, a real qvisord.
#   - full backup (qvisor backup create --full) vs `qemu-img convert` of the
#     same disk to raw (the peer: what a script without bitmaps would do);
#   - the guest then rewrites 1 % of the disk (10 x 1 MiB spread over it,
#     through its control channel); incremental backup vs the full backup;
#   - five such rounds, then restore of full + 5 incrementals into the pool
#     vs `cp` of the full backup's image.
# Every timed operation runs after `sync` and after the page cache of the
# files it reads was dropped (the VM's disk image; the backup store for
# the restore; the full backup's file for cp) and ends with its data on
# disk (qvisor fsyncs; the peers' output gets `sync FILE`). Only those
# files are dropped, not the whole cache: a global drop_caches also evicts
# the qvisor/qemu-img/cp executables and their libraries, and reloading
# ~20 shared libraries from a busy disk (0.1-0.3 s here) would be timed as
# part of every operation, a fixed cost of the benchmark, not of a backup.
#   scripts/bench/backup.sh [BUILD_DIR] [BENCH_DIR]
set -euo pipefail
src_dir=$(cd "$(dirname "$0")/../.." && pwd)
O=$(realpath -m "${1:-$src_dir/build}")
B=$(realpath -m "${2:-/var/tmp/qv-bench-backup}")
guest=${QV_GUEST_DIR:-$O/guest}
size_mib=1024
rm -rf "$B" && mkdir -p "$B/bin"
cp "$O/qvisord" "$O/qvisor" "$B/bin/" # a rebuild during the run does not disturb it
Q="$B/bin/qvisor --socket $B/q.sock"
dpid=
cleanup() {
	$Q stop bench --force >/dev/null 2>&1 || true
	[ -n "$dpid" ] && kill "$dpid" 2>/dev/null && wait "$dpid" 2>/dev/null || true
	rm -rf "$B"
}
trap cleanup EXIT

# drop FILE|DIR...: write back, then evict those files' pages (GNU dd:
# iflag=nocache count=0 drops a whole file's cache).
drop() {
	local f
	sync
	while IFS= read -r -d '' f; do
		dd if="$f" iflag=nocache count=0 status=none 2>/dev/null || true
	done < <(find "$@" -type f -print0)
}
now() { date +%s.%N; }
# seconds of "$@" until OUT (a file or directory) is on disk:
# `sync OUT` fsyncs just that file (a global sync would also flush what other
# users of a shared machine wrote). qvisor fsyncs its own output already.
# DROP (files read) OUT (output) CMD...
timeit() { local in=$1 out=$2 t0 t1; shift 2; drop "$in"; t0=$(now); "$@" >/dev/null; sync "$out"; t1=$(now); echo "$t1 - $t0" | bc -l; }

"$B/bin/qvisord" --state-dir "$B/st" --run-dir "$B/run" --socket "$B/q.sock" --no-kvm-probe \
	--guest-dir "$guest" >"$B/qvisord.log" 2>&1 &
dpid=$!
for _ in $(seq 100); do [ -S "$B/q.sock" ] && $Q host info >/dev/null 2>&1 && break; sleep 0.1; done

echo "preparing a ${size_mib} MiB disk of random data..."
head -c "${size_mib}M" /dev/urandom >"$B/rand.raw"
qemu-img convert -f raw -O qcow2 "$B/rand.raw" "$B/st/images/bench.qcow2"
rm -f "$B/rand.raw"
cat >"$B/spec.json" <<EOF
{"name":"bench","memory":256,"vcpus":1,"accel":"tcg","kernel":"$guest/vmlinuz",
 "initrd":"$guest/initrd.img","cmdline":"console=ttyS0 panic=-1 qv.ctl=1",
 "disks":[{"path":"$B/st/images/bench.qcow2","format":"qcow2"}]}
EOF
$Q define "$B/spec.json" >/dev/null
$Q start bench >/dev/null
sock=$($Q --json rpc vm.console '{"name":"bench"}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["path"])')

# ctl CMD...: run control-channel commands in the guest, in order.
ctl() {
	python3 - "$sock" "$@" <<'PY'
import socket, sys, time
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])
buf = b""
def ask(i, cmd):
    global buf
    s.sendall(f"{i} {cmd}\n".encode())
    want = f"QVISOR-CTL {i} ".encode()
    while True:
        while b"\n" in buf:
            line, buf = buf.split(b"\n", 1)
            if line.startswith(want):
                if b" OK" not in line: sys.exit("guest: " + line.decode())
                return
        buf += s.recv(65536)
deadline = time.time() + 300
s.settimeout(2)
for k in range(1000):  # wait for the guest (a ping sent while it boots is lost)
    try:
        ask(9000 + k, "ping"); break
    except socket.timeout:
        if time.time() > deadline: raise
s.settimeout(300)
for n, cmd in enumerate(sys.argv[2:]):
    ask(n + 1, cmd)
PY
}
ctl "ping"

# 1 % of the disk: 10 x 1 MiB at spread offsets, different each round.
churn() {
	local r=$1 cmds=()
	for i in $(seq 0 9); do cmds+=("blkwrite /dev/vda $((i * 100 + r * 7 + 3)) 1 r$r-$i"); done
	ctl "${cmds[@]}" "sync"
}

img=$B/st/images/bench.qcow2
t_full=$(timeit "$img" "$B/st/backups" $Q backup create bench --full)
t_conv=$(timeit "$img" "$B/convert.raw" qemu-img convert -U -f qcow2 -O raw "$B/st/images/bench.qcow2" "$B/convert.raw")
rm -f "$B/convert.raw"
incs=()
for r in 1 2 3 4 5; do
	churn "$r"
	incs+=("$(timeit "$img" "$B/st/backups" $Q backup create bench)")
done
last=$($Q --json backup list bench | python3 -c 'import json,sys; print(json.load(sys.stdin)["backups"][-1]["id"])')
kinds=$($Q --json backup list bench | python3 -c 'import json,sys; print(" ".join(b["kind"][0] for b in json.load(sys.stdin)["backups"]))')
full_id=$($Q --json backup list bench | python3 -c 'import json,sys; print(json.load(sys.stdin)["backups"][0]["id"])')
t_restore=$(timeit "$B/st/backups" "$B/st/images" $Q backup restore "$last" --to restored)
t_cp=$(timeit "$B/st/backups/$full_id/disk0.raw" "$B/cp.raw" cp "$B/st/backups/$full_id/disk0.raw" "$B/cp.raw")
inc_bytes=$($Q --json backup info "$last" | python3 -c 'import json,sys; print(json.load(sys.stdin)["size"])')

inc_med=$(printf '%s\n' "${incs[@]}" | sort -g | sed -n 3p)
printf '\nbackup benchmark: %d MiB qcow2 disk (random data), 1 %% changed per round, chain: %s\n' "$size_mib" "$kinds"
printf '%-44s %8.2f s\n' "full backup (qvisor backup create --full)" "$t_full"
printf '%-44s %8.2f s\n' "peer: qemu-img convert -U of the disk" "$t_conv"
printf '%-44s %8.2f s  (runs: %s)\n' "incremental, 1 % changed (median of 5)" "$inc_med" "$(printf '%.2f ' "${incs[@]}")"
printf '%-44s %8d bytes\n' "size of one incremental" "$inc_bytes"
printf '%-44s %8.2f s\n' "restore full + 5 incrementals" "$t_restore"
printf '%-44s %8.2f s\n' "peer: cp of the full backup image" "$t_cp"
echo "qvisord's timing of each backup (ms: query, attach, transaction, copy, detach, publish):"
grep -o 'backup [^ ]* ([a-z]*) complete.*' "$B/qvisord.log" | sed 's/^/  /' || true
printf 'ratio incremental / full:     %.3f (goal <= 0.05)\n' "$(echo "$inc_med / $t_full" | bc -l)"
printf 'ratio incremental / convert:  %.3f\n' "$(echo "$inc_med / $t_conv" | bc -l)"
printf 'ratio full / convert:         %.2f\n' "$(echo "$t_full / $t_conv" | bc -l)"
printf 'ratio restore / cp:           %.2f\n' "$(echo "$t_restore / $t_cp" | bc -l)"
