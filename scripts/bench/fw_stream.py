#!/usr/bin/env python3
"""The guest side of scripts/bench/firewall-throughput.sh (run inside its
netns): talks to the two guests' control channels (DIR/a.sock, DIR/b.sock),
switches the firewall mode between measurements and prints the results.
  fw_stream.py DIR ROUNDS SECS VMS RULES DRIVER PID_A PID_B NSPID_0 NSPID_1 TCPSTREAM NIC...
(NSPID_*: processes holding the two host-side namespaces, 10.0.0.10/11)"""
import os, resource, socket, statistics, subprocess, sys, time

d, rounds, secs, vms, rules, driver = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), \
    sys.argv[4], sys.argv[5], sys.argv[6]
pids, nspids, tcpstream, nics = sys.argv[7:9], sys.argv[9:11], sys.argv[11], sys.argv[12:]
PORT = 5001


class Guest:
    def __init__(self, path):
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        for _ in range(100):
            try:
                self.s.connect(path)
                break
            except OSError:
                time.sleep(0.2)
        self.s.settimeout(1.0)
        self.buf, self.seq = b"", 0

    def cmd(self, line, timeout=600):
        self.seq += 1
        want = ("QVISOR-CTL t%d " % self.seq).encode()
        self.s.sendall(("t%d %s\n" % (self.seq, line)).encode())
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout:
            try:
                chunk = self.s.recv(65536)
            except socket.timeout:
                continue
            if not chunk:
                raise SystemExit("console closed")
            self.buf += chunk
            while b"\n" in self.buf:
                l, self.buf = self.buf.split(b"\n", 1)
                if want in l:
                    rest = l[l.index(want) + len(want):].decode(errors="replace").strip()
                    if not rest.startswith("OK"):
                        raise SystemExit("%s: %s" % (line, rest))
                    return rest[3:]
        raise SystemExit("timeout: " + line)

    def ready(self):
        deadline = time.monotonic() + 900
        while True:
            try:
                return self.cmd("ping", timeout=5)
            except SystemExit:
                if time.monotonic() > deadline:
                    raise


def cpu(pid):
    f = open("/proc/%s/stat" % pid).read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / 100.0  # utime + stime, clock ticks


def setmode(mode):
    subprocess.run(["nft", "delete", "table", "bridge", "qvisor"], stderr=subprocess.DEVNULL)
    if mode == "spoof":
        subprocess.run([driver, str(len(nics)), "0", d, "load"] + nics, check=True)
    elif mode == "rules":
        subprocess.run([driver, vms, rules, d, "load"] + nics, check=True)


def nft_rules():
    out = subprocess.run(["nft", "-a", "list", "ruleset"], capture_output=True, text=True).stdout
    return sum(1 for l in out.splitlines() if "# handle" in l and not l.strip().startswith(
        ("table", "chain", "set", "map")))


def in_ns(pid, argv, **kw):
    return subprocess.Popen(["nsenter", "--net=/proc/%s/ns/net" % pid] + argv, **kw)


def host_stream():
    """One host-path measurement: (MB/s, MB per CPU s of sender + receiver)."""
    out = os.path.join(d, "host.recv")
    if os.path.exists(out):
        os.unlink(out)
    rx = in_ns(nspids[1], [tcpstream, "recv", str(PORT), out])
    time.sleep(0.3)
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    tx = in_ns(nspids[0], [tcpstream, "send", "10.0.0.11", str(PORT), "%g" % secs],
               stdout=subprocess.PIPE, text=True)
    tx.communicate()
    for _ in range(100):
        if os.path.exists(out) and open(out).read().strip():
            break
        time.sleep(0.05)
    rxcpu = cpu(rx.pid)  # nsenter execs tcpstream: same pid
    rx.kill()
    rx.wait()
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    nbytes, dt = open(out).read().split()[:2]
    txcpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    mb = int(nbytes) / 1e6
    return mb / float(dt), mb / max(txcpu + rxcpu, 0.01)


a, b = Guest(d + "/a.sock"), Guest(d + "/b.sock")
a.ready(), b.ready()
b.cmd("tcprecv %d" % PORT)
a.cmd("pingto 10.0.0.3")
modes = ["none", "spoof", "rules"]
res = {m: [] for m in modes}
hres = {m: [] for m in modes}
done = 0
for r in range(-1, rounds):  # round -1 warms up, not counted
    order = modes if r % 2 == 0 else list(reversed(modes))
    for m in order:
        setmode(m)
        n = nft_rules()
        c0 = sum(cpu(p) for p in pids)
        sent = a.cmd("tcpsend 10.0.0.3 %d %g" % (PORT, secs), timeout=secs + 600)
        c1 = sum(cpu(p) for p in pids)
        done += 1
        for _ in range(600):
            got = b.cmd("tcpgot %d" % PORT).split()
            if int(got[0]) >= done:
                break
            time.sleep(0.1)
        else:
            raise SystemExit("the receiver never saw the connection end")
        nbytes, dt = int(got[1]), float(got[2])
        h = host_stream()
        if r >= 0:
            res[m].append((nbytes / dt / 1e6, nbytes / 1e6 / max(c1 - c0, 0.01), n))
            hres[m].append(h + (n,))
        print("round %d %-5s %5d rules: guests %7.2f MB/s (receiver), %7.2f MB per QEMU CPU s "
              "(sender: %s); host veths %8.1f MB/s, %8.1f MB per CPU s" % (
                  r, m, n, nbytes / dt / 1e6, nbytes / 1e6 / max(c1 - c0, 0.01), sent, h[0], h[1]),
              flush=True)
setmode("none")


def table(title, data):
    print(title)
    print("%-6s %6s %12s %12s %16s %22s %22s" % ("mode", "rules", "MB/s median", "MB/s best",
                                                 "MB/CPU-s median", "ratio/none MB/s", "ratio/none MB/CPU-s"))
    for m in modes:
        mbs = [x[0] for x in data[m]]
        eff = [x[1] for x in data[m]]
        ratio = [x[0] / y[0] for x, y in zip(data[m], data["none"])]
        eratio = [x[1] / y[1] for x, y in zip(data[m], data["none"])]
        print("%-6s %6d %12.2f %12.2f %16.2f %22.3f %22.3f" % (
            m, data[m][0][2], statistics.median(mbs), max(mbs), statistics.median(eff),
            statistics.median(ratio), statistics.median(eratio)))
        if m != "none":
            print("       per round MB/s %s; MB/CPU-s %s" % (
                " ".join("%.2f" % x for x in ratio), " ".join("%.2f" % x for x in eratio)))


table("guest-to-guest TCP (TCG guests, 1 vCPU each), %g s per measurement, %d rounds" %
      (secs, rounds), res)
table("host path: netns-to-netns TCP through the same bridge (veths), %g s each" % secs, hres)
