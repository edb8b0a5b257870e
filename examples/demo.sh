#!/usr/bin/env bash
# What an untrusted program can and cannot do in a stockade jail, one line per attempt.
# Every verdict is read from what really happened in the jail, not assumed: ✔ means stockade
# behaved as intended, ✘ means it did not (and the script exits 1).
# Needs root and a built stockade: scripts/demo.sh builds it, then runs this.
set -u
cd "$(dirname "$0")/.."
stockade=$(realpath -m "${BUILD_DIR:-build}/stockade")
if [ "$(id -u)" -ne 0 ]; then
  echo "demo: run it as root (it shows host uid leases and port binding, which need root)" >&2
  exit 1
fi
if [ ! -x "$stockade" ]; then
  echo "demo: $stockade not found: build first (scripts/build.sh) or run scripts/demo.sh" >&2
  exit 1
fi

secret=/tmp/demo-secret-$$
# Section 9's lab: a "server" namespace behind the host, and a bridge, both the demo's own.
lab_ns=skdemo-srv$$ lab_up=skdemou$$ lab_br=skdemob$$ lab_pid=
# Section 10's watcher.
watchdir=
watcher=
passer=
cleanup() {
  rm -f "$secret"
  [ -n "$lab_pid" ] && kill "$lab_pid" 2>/dev/null && wait "$lab_pid" 2>/dev/null
  ip netns del "$lab_ns" 2>/dev/null
  ip link del "$lab_up" 2>/dev/null
  "$stockade" gc --bridge "$lab_br" >/dev/null 2>&1
  # By pid only: the watcher removes its audit rules (and switches audit off again if it had to
  # switch it on) when it gets SIGTERM.
  [ -n "$passer" ] && kill "$passer" 2>/dev/null
  if [ -n "$watcher" ]; then kill -TERM "$watcher" 2>/dev/null; wait "$watcher" 2>/dev/null; fi
  [ -n "$watchdir" ] && rm -rf "$watchdir"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

failures=0
# line MARK VERDICT WHAT DETAIL
line() { printf '  %s %-8s %-40s %s\n' "$1" "$2" "$3" "$4"; }
# check EXPECTED ACTUAL WHAT DETAIL: ✔ when the jail did what stockade promises.
check() {
  local mark=✔
  if [ "$1" != "$2" ]; then mark=✘; failures=$((failures + 1)); fi
  line "$mark" "$2" "$3" "$4"
}
jail() { "$stockade" run -q "$@" 2>&1; }

# A jail that cannot start would make every "blocked" below meaningless: stop here instead.
if ! out=$(jail -- /bin/true); then
  echo "demo: stockade could not start a jail: $out" >&2
  exit 1
fi

echo "stockade demo: an untrusted program (sh, python3) in a jail tries to reach the host"
echo

# 1. Who am I? root inside, a host uid of the jail's own outside.
out=$(jail -- sh -c 'id -un; id -u; cat /proc/self/uid_map')
set -- $out
name=${1:-?} inside=${2:-?} host_uid=${4:-?}
account=$(getent passwd "$host_uid" | cut -d: -f1)
verdict=blocked
{ [ "$inside" = 0 ] && [ "$host_uid" -ge 65536 ] 2>/dev/null && [ -z "$account" ]; } || verdict=allowed
check blocked "$verdict" "be root on the host (who am I?)" \
  "inside: uid $inside ($name); on the host: uid $host_uid (uid_map '${*:3}'), ${account:-no account}"

# 2. Host processes.
host_procs=$(ls -d /proc/[0-9]* | wc -l)
out=$(jail -- sh -c 'cd /proc && echo [0-9]*')
n=$(echo "$out" | wc -w)
verdict=blocked; [ "$n" -le 2 ] || verdict=allowed  # its init (pid 1) and sh
check blocked "$verdict" "see the host's processes" "sees $n (pids $out: the jail's own); the host has $host_procs"

# 3. A host file that was not bound in.
echo "host secret $$" >"$secret"
chmod 600 "$secret"
out=$(jail -- cat "$secret")
verdict=unclear
case $out in "host secret $$") verdict=allowed ;; *"No such file or directory"*) verdict=blocked ;; esac
check blocked "$verdict" "read a host file not bound in" "cat $secret: ${out##*: }"

# 4. Write to /usr, as root inside.
target=/usr/stockade-demo-$$
verdict=unclear
out=$(jail -- touch "$target") && { verdict=allowed; out="created it"; }
case $out in *"Read-only file system"*) verdict=blocked ;; esac
[ -e "$target" ] && { verdict=allowed; rm -f "$target"; }
check blocked "$verdict" "write to /usr (as root inside)" "touch $target: ${out##*: }"

# 5. The host's network interfaces.
host_ifs=$(ls /sys/class/net | tr '\n' ' ')
out=$(jail -- python3 -c 'import socket; print(" ".join(n for _, n in socket.if_nameindex()))')
verdict=blocked; [ "$out" = lo ] || verdict=allowed
check blocked "$verdict" "see the host's network interfaces" "sees: $out; the host has: ${host_ifs% }"

# 6. Port 80 as uid 1000: allowed with CAP_NET_BIND_SERVICE, refused without.
bind80='import socket, errno
s = socket.socket()
try:
    s.bind(("127.0.0.1", 80)); print("bound 127.0.0.1:80")
except OSError as e:
    print("refused:", e.strerror, "(" + errno.errorcode[e.errno] + ")")'
out=$(jail --user 1000 --cap NET_BIND_SERVICE -- python3 -c "$bind80")
verdict=blocked; [ "$out" = "bound 127.0.0.1:80" ] && verdict=allowed
check allowed "$verdict" "bind port 80 as uid 1000 with the cap" "--cap NET_BIND_SERVICE: $out"
out=$(jail --user 1000 -- python3 -c "$bind80")
verdict=blocked; [ "$out" = "bound 127.0.0.1:80" ] && verdict=allowed
check blocked "$verdict" "bind port 80 as uid 1000 without it" "$out"

# 7. setns into the host's network namespace, with a real fd of it: stockade refuses to bind
# an nsfs file (--ro-bind /proc/self/ns/net:/hostns), so the fd is passed in as stdin instead.
setns='import ctypes, errno, os
libc = ctypes.CDLL(None, use_errno=True)
host = os.fstat(0).st_ino
mine = os.stat("/proc/self/ns/net").st_ino
uid = open("/proc/self/uid_map").read().split()[1]
if libc.setns(0, 0x40000000) == 0:  # CLONE_NEWNET
    print(host, mine, uid, "joined")
else:
    print(host, mine, uid, errno.errorcode[ctypes.get_errno()])'
host_ns=$(stat -L -c %i /proc/self/ns/net)
out=$(jail -- python3 -c "$setns" </proc/self/ns/net)
set -- $out
fd_ns=${1:-?} jail_ns=${2:-?} uid=${3:-?} result=${4:-$out}
verdict=blocked; [ "$result" = joined ] && verdict=allowed
detail="fd 0 is the host's netns ($fd_ns, the jail's is $jail_ns): $result"
[ "$fd_ns" = "$host_ns" ] || detail="$detail (but fd 0 was not the host's netns: $host_ns)"
logged=$(dmesg 2>/dev/null | grep 'type=1326' | grep "uid=$uid " | grep -c 'syscall=308 ')
[ "$logged" -gt 0 ] && detail="$detail; seccomp denial in the kernel log"
check blocked "$verdict" "setns into the host's network ns" "$detail"

# 8. Capabilities.
caps() {
  local hex names
  hex=$(echo ${1#*:})
  names=$(capsh --decode="$hex" 2>/dev/null | cut -d= -f2) || { echo "$hex"; return; }
  echo "$hex = ${names:-none}"
}
root_caps=$(jail -- grep CapEff /proc/self/status)
user_caps=$(jail --user 1000 --cap NET_BIND_SERVICE -- grep CapEff /proc/self/status)
host_caps=$(grep CapEff /proc/self/status)
verdict=blocked; [ "$(echo ${root_caps#*:})" = 0000000000000000 ] || verdict=allowed
check blocked "$verdict" "capabilities, root inside" "CapEff $(caps "$root_caps") (host root: ${host_caps##*[[:space:]]})"
verdict=allowed; [ "$(echo ${user_caps#*:})" = 0000000000000400 ] || verdict=blocked
check allowed "$verdict" "capabilities, uid 1000 with the cap" "CapEff $(caps "$user_caps") (--cap NET_BIND_SERVICE)"

# 9. Networking: a bridged jail whose egress policy allows one service of a "server" namespace
# (standing in for the internet; the demo creates it behind the host, 10.220.0.0/24).
if ip netns add "$lab_ns" 2>/dev/null; then
  ip link add "$lab_up" type veth peer name up0 netns "$lab_ns"
  ip addr add 10.220.0.254/24 dev "$lab_up" && ip link set "$lab_up" up
  echo 1 >"/proc/sys/net/ipv4/conf/$lab_up/forwarding"  # this link only, not host-wide
  ip -n "$lab_ns" addr add 10.220.0.1/24 dev up0
  ip -n "$lab_ns" link set up0 up && ip -n "$lab_ns" link set lo up
  ip -n "$lab_ns" route add default via 10.220.0.254
  ip netns exec "$lab_ns" python3 -c 'import socket, threading
def serve(port):
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", port)); s.listen(16)
    while True: s.accept()[0].close()
for p in (8443, 9000): threading.Thread(target=serve, args=(p,), daemon=True).start()
threading.Event().wait()' &
  lab_pid=$!
  sleep 0.3
  probe='import socket, sys
for port in (8443, 9000):
    try:
        socket.create_connection(("10.220.0.1", port), timeout=2).close(); print(port, "connected")
    except OSError as e:
        print(port, "no answer" if isinstance(e, socket.timeout) else e.strerror)
sys.stdout.flush()
import time; time.sleep(3)'
  "$stockade" run -q --net bridge --bridge "$lab_br" --subnet 10.219.0.0/24 \
    --egress 10.220.0.1/32,tcp,8443 -- python3 -c "$probe" >"$secret.net" 2>&1 &
  jail_pid=$!
  for _ in $(seq 50); do [ "$(wc -l <"$secret.net")" -ge 2 ] && break; sleep 0.1; done
  id=$("$stockade" ps --json | python3 -c 'import json, sys
for j in json.load(sys.stdin):
    if j.get("network", {}).get("bridge") == sys.argv[1]: print(j["id"])' "$lab_br")
  counters=$("$stockade" inspect --json "$id" 2>/dev/null | python3 -c 'import json, sys
c = {x["rule"]: x["packets"] for x in json.load(sys.stdin)["network"]["egress_counters"]}
allowed = sum(v for k, v in c.items() if k.startswith("egress 1"))
print("allow rule", allowed, "packets, denied", c.get("denied", 0), "packets")')
  wait "$jail_pid"
  out=$(cat "$secret.net"); rm -f "$secret.net"
  verdict=blocked; echo "$out" | grep -q "^8443 connected" && verdict=allowed
  check allowed "$verdict" "connect to the allowed 10.220.0.1:8443" "egress 10.220.0.1/32,tcp,8443"
  verdict=blocked; echo "$out" | grep -q "^9000 connected" && verdict=allowed
  check blocked "$verdict" "connect to 10.220.0.1:9000" "$(echo "$out" | grep ^9000); nftables: ${counters:-no counters}"
else
  line "-" skipped "bridged networking" "cannot create a network namespace here"
fi

# 10. A namespace fd passed in from outside (SCM_RIGHTS over a bound unix socket) and setns on
# it, with `stockade watch` running: the attempt fails, and the security team gets an alert.
watchdir=$(mktemp -d /tmp/stockade-demo-watch-XXXXXX)
chmod 755 "$watchdir"
mkdir -m 755 "$watchdir/pass"
alerts=$watchdir/alerts.jsonl
"$stockade" watch --key "stockade-demo-$$" -o "$alerts" 2>"$watchdir/watch.err" &
watcher=$!
for _ in $(seq 100); do grep -q watching "$watchdir/watch.err" && break; sleep 0.1; done
python3 - "$watchdir/pass/sock" <<'PY' &
import array, os, socket, sys
s = socket.socket(socket.AF_UNIX)
s.bind(sys.argv[1])
os.chmod(sys.argv[1], 0o777)
s.listen(1)
c, _ = s.accept()
fd = os.open("/proc/self/ns/net", os.O_RDONLY)
c.sendmsg([b"x"], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [fd]))])
PY
passer=$!
for _ in $(seq 50); do [ -S "$watchdir/pass/sock" ] && break; sleep 0.1; done
recv_setns='import array, ctypes, errno, socket, time
s = socket.socket(socket.AF_UNIX)
s.connect("/pass/sock")
_, anc, _, _ = s.recvmsg(1, socket.CMSG_SPACE(4))
fd = array.array("i", anc[0][2])[0]
libc = ctypes.CDLL(None, use_errno=True)
print("joined" if libc.setns(fd, 0) == 0 else errno.errorcode[ctypes.get_errno()])
time.sleep(1)  # an attacker would retry; the watcher looks at the fd meanwhile'
out=$(jail --bind "$watchdir/pass:/pass" -- python3 -c "$recv_setns")
sleep 0.5
kill -TERM "$watcher" 2>/dev/null
wait "$watcher" 2>/dev/null
watcher=
verdict=blocked; [ "$out" = joined ] && verdict=allowed
raised=$(grep -c '"rule":"Stockade namespace fd passed into jail"' "$alerts" 2>/dev/null)
detail="setns on a host netns fd received over a unix socket: $out; alerts raised: ${raised:-0}"
[ "${raised:-0}" -ge 1 ] || { verdict="$verdict, no alert"; }
check blocked "$verdict" "setns on a namespace fd passed in" "$detail"
if grep -q "switched it on" "$watchdir/watch.err"; then
  echo "    (audit was off: stockade watch switched it on for the demo and off again)"
fi
echo
echo "What the security team sees (stockade alerts $alerts):"
"$stockade" alerts "$alerts" | sed 's/^/    /'

echo
if [ "$failures" -eq 0 ]; then
  echo "every attempt ended as stockade intends"
else
  echo "$failures attempt(s) did not end as stockade intends (✘ above)"
  exit 1
fi
