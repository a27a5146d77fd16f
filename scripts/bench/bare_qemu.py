#!/usr/bin/env python3
"""The bare-QEMU side of the start benchmarks (spawn.sh, start.sh, batch.sh).

Starts one qemu-system-x86_64 per RUN_DIR at once, each with the argv in
RUN_DIR/argv (NUL-separated, as /proc/PID/cmdline; its QMP socket is
RUN_DIR/qmp.sock), waits until every one answers QMP query-status
"running" (connect, greeting, qmp_capabilities), prints the milliseconds
from the first spawn to the last "running", then kills them.
  usage: bare_qemu.py [--pids FILE] RUN_DIR [RUN_DIR ...]
--pids writes the QEMU pids (one per line) so a caller's cleanup can kill
them if this script is interrupted.

An argv captured from a qvisord-started QEMU refers to descriptors the
daemon passed (listening sockets `fd=N`, the serial log through
`-add-fd`/`/dev/fdset/K`); they are turned into paths in RUN_DIR
(ID.sock, serial.log) so that QEMU opens them itself, as a script would."""
import json, os, re, socket, subprocess, sys, threading, time

def bare_argv(argv, d):
    out, skip = [], False
    for i, a in enumerate(argv):
        if skip:
            skip = False
            continue
        if a == b'-add-fd':
            skip = True
            continue
        m = re.match(rb'socket,id=([\w.-]+),fd=\d+(,.*)?$', a)
        if i and argv[i - 1] == b'-chardev' and m:
            a = b'socket,id=' + m.group(1) + b',path=' + os.path.join(d, m.group(1).decode()).encode() \
                + b'.sock' + (m.group(2) or b'')
        a = re.sub(rb'logfile=/dev/fdset/\d+', b'logfile=' + os.path.join(d, 'serial.log').encode(), a)
        out.append(a)
    return out

args = sys.argv[1:]
pids_file = None
if args[:1] == ['--pids']:
    pids_file, args = args[1], args[2:]
if not args:
    sys.exit(__doc__)

t0 = time.monotonic()
procs = []
for d in args:
    argv = bare_argv(open(os.path.join(d, 'argv'), 'rb').read().split(b'\0')[:-1], d)
    log = open(os.path.join(d, 'qemu.log'), 'ab')
    procs.append(subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                  start_new_session=True))
if pids_file:
    with open(pids_file, 'w') as f:
        f.write('\n'.join(str(p.pid) for p in procs) + '\n')

errors = []
def wait_running(d, p):
    path = os.path.join(d, 'qmp.sock')
    while True:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            s.connect(path)
            break
        except (FileNotFoundError, ConnectionRefusedError):
            s.close()
            if p.poll() is not None:
                errors.append('qemu died: ' + d)
                return
            time.sleep(0.001)
    f = s.makefile('rwb')
    def recv():
        while True:
            m = json.loads(f.readline())
            if 'event' not in m:
                return m
    recv()  # greeting
    f.write(b'{"execute":"qmp_capabilities"}\n'); f.flush(); recv()
    f.write(b'{"execute":"query-status"}\n'); f.flush()
    st = recv()['return']['status']
    if st != 'running':
        errors.append(d + ': ' + st)
    s.close()

ts = [threading.Thread(target=wait_running, args=(d, p)) for d, p in zip(args, procs)]
for t in ts: t.start()
for t in ts: t.join()
t1 = time.monotonic()
for p in procs: p.kill()
for p in procs: p.wait()
if errors:
    sys.exit('; '.join(errors))
print('%.2f' % ((t1 - t0) * 1000))
