#!/bin/bash
# Bench: the cluster control plane's load on etcd (docs/cluster.md,
# "Scale"). A real 3-member etcd on 127.0.0.1 (private ports and data
# dirs), N fake hosts talking to it through the v3 JSON gateway as
# qvisord would: a lease (TTL) kept alive every KEEPALIVE s, a membership
# record, and a usage record (host and ~20 VMs, ~1.2 KB) put every USAGE s
# under the lease. Measured from the members' own /metrics: puts,
# lease renewals, raft proposals, bytes between members, CPU of the etcd
# processes, database size. Then:
#   phase 2: the same N hosts at 10x the rates (= 10 N hosts' load);
#   peer:    the same cluster saturated by 8 writers putting 1.2 KB values
#            back to back (its capacity here), and the ratio capacity /
#            the put rate 1,000 hosts need.
#   scripts/bench/etcd-scale.sh [HOSTS=50] [SECONDS=30]
# Env: TTL (6), KEEPALIVE (2), USAGE (10) seconds; DATA_DIR parent of the
# members' data dirs (default: a private dir under /tmp).
set -euo pipefail
HOSTS=${1:-50}
SECS=${2:-30}
TTL=${TTL:-6}
KEEPALIVE=${KEEPALIVE:-2}
USAGE=${USAGE:-10}
command -v etcd >/dev/null || { echo "etcd not installed (apt-get install etcd-server etcd-client)" >&2; exit 2; }
tmp=$(mktemp -d "${DATA_DIR:-/tmp}/qv-bench-etcd.XXXXXX")
. "$(dirname "$0")/../etcd.sh"
cleanup() {
	etcd_down
	rm -rf "$tmp"
}
trap cleanup EXIT

# three members on free ports of 127.0.0.1
endpoints=""
for c in $(etcd_free_ports 3); do endpoints+="${endpoints:+,}http://127.0.0.1:$c"; done
ETCD_ARGS="--auto-compaction-mode periodic --auto-compaction-retention 5m" \
	etcd_up "$tmp" "$endpoints" || exit 1
echo "== etcd $(etcd --version | head -1 | awk '{print $3}'), 3 members on 127.0.0.1, data in $tmp ($(df --output=fstype "$tmp" | tail -1))"
echo "   hosts=$HOSTS lease TTL=${TTL}s keepalive every ${KEEPALIVE}s usage put every ${USAGE}s; ${SECS}s per phase"

python3 - "$endpoints" "$HOSTS" "$SECS" "$TTL" "$KEEPALIVE" "$USAGE" <<'PY'
import base64, heapq, http.client, json, re, sys, threading, time
eps = [e.replace("http://", "") for e in sys.argv[1].split(",")]
H, SECS, TTL, KA, US = int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5]), float(sys.argv[6])
b64 = lambda s: base64.b64encode(s.encode() if isinstance(s, str) else s).decode()
usage_blob = json.dumps({"cpu_milli": 3200, "mem_mib": 50000, "hist": [0.71] * 30,
    "vms": [{"n": "vm%05d" % i, "cpu": 150.5, "mem": 2048, "dirty": 12.5} for i in range(20)]})[:1200]
member_blob = json.dumps({"addr": "10.0.0.1:7443", "cpu_milli": 64000, "mem_mib": 262144,
    "labels": ["zone=a", "ssd"], "schedulable": True, "version": "0.x"}).ljust(300)

def metrics():
    out = []
    for ep in eps:
        c = http.client.HTTPConnection(ep, timeout=10); c.request("GET", "/metrics")
        txt = c.getresponse().read().decode(); c.close()
        m = {}
        for name in ("etcd_mvcc_put_total", "etcd_server_proposals_committed_total", "process_cpu_seconds_total",
                     "etcd_debugging_lease_renewed_total", "etcd_mvcc_db_total_size_in_bytes",
                     "etcd_disk_wal_fsync_duration_seconds_count", "etcd_server_is_leader"):
            v = re.search("^" + name + r" (\S+)$", txt, re.M)
            m[name] = float(v.group(1)) if v else 0.0
        m["peer_bytes"] = sum(float(x) for x in re.findall(r"^etcd_network_peer_sent_bytes_total\{[^}]*\} (\S+)$", txt, re.M))
        out.append(m)
    return out

class Client:
    def __init__(self, ep): self.c = http.client.HTTPConnection(ep, timeout=10); self.n = 0; self.err = 0
    def post(self, path, body):
        try:
            self.c.request("POST", path, json.dumps(body)); r = self.c.getresponse(); d = r.read()
            self.n += 1
            if r.status != 200: self.err += 1
            return json.loads(d) if d else {}
        except Exception:
            self.err += 1; self.c.close(); return {}

def host_loop(ep, hosts, ka, us, secs, stats, bar):
    cl = Client(ep); leases = {}
    for h in hosts:
        lid = cl.post("/v3/lease/grant", {"TTL": TTL}).get("ID")
        leases[h] = lid
        cl.post("/v3/kv/put", {"key": b64("/qvisor/hosts/%s" % h), "value": b64(member_blob), "lease": lid})
    bar.wait()  # registration is not part of the steady state
    t0 = time.monotonic(); q = []
    for i, h in enumerate(hosts):
        heapq.heappush(q, (t0 + ka * i / len(hosts), "ka", h))
        heapq.heappush(q, (t0 + us * i / len(hosts), "us", h))
    puts = kas = 0; late = 0.0
    while q:
        t, kind, h = heapq.heappop(q)
        if t - t0 >= secs: continue
        now = time.monotonic()
        if t > now: time.sleep(t - now)
        else: late = max(late, now - t)
        if kind == "ka":
            cl.post("/v3/lease/keepalive", {"ID": leases[h]}); kas += 1; heapq.heappush(q, (t + ka, kind, h))
        else:
            cl.post("/v3/kv/put", {"key": b64("/qvisor/usage/%s" % h), "value": b64(usage_blob), "lease": leases[h]})
            puts += 1; heapq.heappush(q, (t + us, kind, h))
    stats.append((puts, kas, cl.err, late))
    bar.wait()
    bar.wait()
    for h in hosts: cl.post("/v3/lease/revoke", {"ID": leases[h]})

def phase(name, tag, ka, us, secs):
    stats = []; bar = threading.Barrier(4)
    ths = [threading.Thread(target=host_loop, args=(eps[i % 3], ["%s-h%04d" % (tag, j) for j in range(H) if j % 3 == i], ka, us, secs, stats, bar)) for i in range(3)]
    for t in ths: t.start()
    bar.wait(); before = metrics(); t0 = time.monotonic()
    bar.wait(); el = time.monotonic() - t0; after = metrics()
    bar.wait()
    for t in ths: t.join()
    d = lambda k, agg=sum: agg(a[k] - b[k] for a, b in zip(after, before))
    puts = sum(s[0] for s in stats); kas = sum(s[1] for s in stats); errs = sum(s[2] for s in stats)
    late = max(s[3] for s in stats)
    cpu = d("process_cpu_seconds_total") - idle_cpu * el; props = d("etcd_server_proposals_committed_total", max)
    r = dict(name=name, el=el, puts=puts / el, kas=kas / el, errs=errs, late=late, cpu=cpu / el,
             props=props / el, renewed=d("etcd_debugging_lease_renewed_total") / el,
             peer=d("peer_bytes") / el, fsync=d("etcd_disk_wal_fsync_duration_seconds_count", max) / el,
             db=max(a["etcd_mvcc_db_total_size_in_bytes"] for a in after))
    print("%-30s %6.1f puts/s %6.1f keepalives/s  raft %6.1f proposals/s  %5.1f fsyncs/s/member  etcd CPU %5.1f%% above idle  peers %6.1f KB/s  db %.1f MB  errors %d  max lateness %.2f s"
          % (name, r["puts"], r["kas"], r["props"], r["fsync"], 100 * r["cpu"], r["peer"] / 1024, r["db"] / 1e6, errs, late))
    sys.stdout.flush()
    return r

def saturate(secs, writers=8):
    before = metrics(); t0 = time.monotonic(); counts = []
    def w(i):
        cl = Client(eps[i % 3]); n = 0
        while time.monotonic() - t0 < secs:
            cl.post("/v3/kv/put", {"key": b64("/bench/sat/%d/%d" % (i, n % 100)), "value": b64(usage_blob)}); n += 1
        counts.append((n, cl.err))
    ths = [threading.Thread(target=w, args=(i,)) for i in range(writers)]
    for t in ths: t.start()
    for t in ths: t.join()
    el = time.monotonic() - t0; after = metrics()
    cpu = sum(a["process_cpu_seconds_total"] - b["process_cpu_seconds_total"] for a, b in zip(after, before)) - idle_cpu * el
    n = sum(c[0] for c in counts)
    print("%-30s %6.0f puts/s (%d writers, %d errors)  etcd CPU %5.1f%% (3 members)" % ("peer: saturated", n / el, writers, sum(c[1] for c in counts), 100 * cpu / el))
    return n / el, cpu / el

# the members' own CPU with no clients (raft heartbeats, timers)
m0 = metrics(); time.sleep(5); m1 = metrics()
idle_cpu = sum(x["process_cpu_seconds_total"] - y["process_cpu_seconds_total"] for x, y in zip(m1, m0)) / 5
print("%-30s etcd CPU %5.1f%% (3 members; subtracted below)" % ("idle", 100 * idle_cpu))
a = phase("steady, %d hosts" % H, "s", KA, US, SECS)
b = phase("10x rates (= %d hosts)" % (10 * H), "f", KA / 10, US / 10, SECS / 2)
cap, cap_cpu = saturate(10)

N = 1000
need_puts = N / US
need_kas = N / KA
# CPU per operation from the 10x phase (more operations, less noise)
ops_b = b["puts"] + b["kas"]
cpu_per_op = b["cpu"] / ops_b if ops_b else 0
print()
print("per host (steady): %.3f puts/s, %.3f keepalives/s, %.3f raft proposals/s, %.2f KB/s between members"
      % (a["puts"] / H, a["kas"] / H, a["props"] / H, a["peer"] / H / 1024))
print("1,000 hosts need: %.0f puts/s + %.0f keepalives/s; etcd CPU ~%.0f%% of one core over 3 members (%.2f ms CPU/op, from the 10x phase)"
      % (need_puts, need_kas, 100 * cpu_per_op * (need_puts + need_kas), 1000 * cpu_per_op))
print("ratio: saturated put capacity / puts 1,000 hosts need = %.0f / %.0f = %.1fx" % (cap, need_puts, cap / need_puts))
PY
