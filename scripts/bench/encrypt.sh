#!/bin/bash
# Encrypted (qcow2 + LUKS, AES-256-XTS) vs plain qcow2 disk, sequential write
# and read inside the test guest, side by side in one VM and one run.
# The guest (TCG) is driven over its control channel (qv.ctl=1, see
# docs/test-guest.md): `blkwrite DEV 0 MIB SEED` (generate a pattern, write
# it, fsync, drop caches, read it back and md5 it) and `blkread DEV 0 MIB`
# (drop caches, read, md5), timed from the host around each command. Both
# disks pay the same guest-side work (pattern generation, md5 under TCG);
# what differs is QEMU's AES-XTS on every block. Rounds alternate the order.
# Prints medians, MB/s and the encrypted/plain time ratio.
#   usage: scripts/bench/encrypt.sh [MIB] [ROUNDS]   (env: O=build dir, QV_GUEST_DIR)
set -euo pipefail
cd "$(dirname "$0")/../.."
MIB=${1:-64}
N=${2:-5}
O=${O:-build}
GUEST=${QV_GUEST_DIR:-build/guest}
scripts/mkguest.sh "$GUEST" >&2
KERNEL=$(realpath "$GUEST/vmlinuz")
INITRD=$(realpath "$GUEST/initrd.img")
make -s O="$O" all

WORK=$(mktemp -d /tmp/qv-bench-enc-XXXXXX)
chmod 0711 "$WORK"   # QEMU runs as an unprivileged user and must reach run/
DPID=
SOCK=$WORK/run/qvisord.sock
QV="$O/qvisor --socket $SOCK"
cleanup() {
	if [ -n "$DPID" ]; then
		$QV stop --force encbench >/dev/null 2>&1 || true
		kill "$DPID" 2>/dev/null && wait "$DPID" 2>/dev/null || true
	fi
	rm -rf "$WORK"
}
trap cleanup EXIT

head -c 32 /dev/urandom >"$WORK/master.key"
chmod 600 "$WORK/master.key"
"$O/qvisord" --state-dir "$WORK/state" --run-dir "$WORK/run" --socket "$SOCK" \
	--no-kvm-probe --cache-dir "$WORK" --master-key-file "$WORK/master.key" \
	>"$WORK/qvisord.log" 2>&1 &
DPID=$!
for _ in $(seq 1 100); do $QV host info >/dev/null 2>&1 && break; sleep 0.1; done

SIZE=$((MIB * 2))M
$QV image create enc "$SIZE" --encrypt >/dev/null
$QV image create plain "$SIZE" --format qcow2 >/dev/null
POOL=$WORK/state/images
cat >"$WORK/spec.json" <<JSON
{"name":"encbench","accel":"tcg","memory":256,"kernel":"$KERNEL","initrd":"$INITRD",
 "cmdline":"console=ttyS0 panic=-1 qv.ctl=1",
 "disks":[{"path":"$POOL/enc.qcow2","format":"qcow2"},
          {"path":"$POOL/plain.qcow2","format":"qcow2"}]}
JSON
$QV define "$WORK/spec.json" >/dev/null
$QV start encbench >/dev/null
CONSOLE=$WORK/run/vms/encbench/serial.sock

python3 - "$CONSOLE" "$MIB" "$N" <<'PY'
import socket, sys, time, statistics
sock_path, mib, rounds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect(sock_path)
s.settimeout(1.0)
buf = b""
seq = [0]

def cmd(line, timeout=1200):
    global buf
    seq[0] += 1
    tag = "b%d" % seq[0]
    s.sendall(("%s %s\n" % (tag, line)).encode())
    t0 = time.monotonic()
    want = ("QVISOR-CTL %s " % tag).encode()
    while time.monotonic() - t0 < timeout:
        try:
            chunk = s.recv(65536)
        except socket.timeout:
            continue
        if not chunk:
            raise SystemExit("console closed")
        buf += chunk
        while b"\n" in buf:
            l, buf = buf.split(b"\n", 1)
            if want in l:
                dt = time.monotonic() - t0
                rest = l[l.index(want) + len(want):].decode(errors="replace").strip()
                if not rest.startswith("OK"):
                    raise SystemExit("%s: %s" % (line, rest))
                return dt, rest[3:]
    raise SystemExit("timeout: " + line)

# The guest boots: ping until it answers.
deadline = time.monotonic() + 600
while True:
    try:
        cmd("ping", timeout=5)
        break
    except SystemExit:
        if time.monotonic() > deadline:
            raise
disks = {"encrypted": "/dev/vda", "plain": "/dev/vdb"}
# Untimed: allocate the clusters on both disks.
for d in disks.values():
    cmd("blkwrite %s 0 %d warm" % (d, mib))
res = {(k, op): [] for k in disks for op in ("write", "read")}
sums = {}
for r in range(rounds):
    order = list(disks.items()) if r % 2 == 0 else list(reversed(disks.items()))
    for k, d in order:
        dt, v = cmd("blkwrite %s 0 %d round%d" % (d, mib, r))
        res[(k, "write")].append(dt)
        sums.setdefault(("w", r), set()).add(v)
    for k, d in order:
        dt, v = cmd("blkread %s 0 %d" % (d, mib))
        res[(k, "read")].append(dt)
for key, vals in sums.items():
    if len(vals) != 1:
        raise SystemExit("checksums differ between the disks: %s" % vals)
print("qvisor encrypted disk bench: %d MiB per op, %d rounds (TCG guest)" % (mib, rounds))
print("%-10s %-6s %8s %8s %10s" % ("disk", "op", "best s", "median s", "best MB/s"))
for op in ("write", "read"):
    for k in disks:
        b, m = min(res[(k, op)]), statistics.median(res[(k, op)])
        print("%-10s %-6s %8.2f %8.2f %10.1f" % (k, op, b, m, mib * 1.048576 / b))
# Per round the two disks ran back to back: the per-round ratio cancels most
# of the host's load swings; its median is the figure to quote.
for op in ("write", "read"):
    per = [e / p for e, p in zip(res[("encrypted", op)], res[("plain", op)])]
    print("ratio encrypted/plain %s time: median per round %.2f, best/best %.2f "
          "(per round %s)" % (op, statistics.median(per),
                              min(res[("encrypted", op)]) / min(res[("plain", op)]),
                              " ".join("%.2f" % x for x in per)))
PY
