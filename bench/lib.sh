# Shared by the benchmark scripts; source it from the repository root. Gives
# a work directory and a `pids` list that are cleaned up on exit (the
# processes a script started, killed by PID), and small helpers.
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
# A loopback port free right now.
free_port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
# Waits (up to 10 s) until FILE has content, as servers that print their address write it.
wait_file() { for _ in $(seq 100); do [ -s "$1" ] && return; sleep 0.1; done; echo "no $1" >&2; exit 1; }
# Waits (up to 10 s) until something accepts connections on 127.0.0.1:PORT.
wait_port() { for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return; sleep 0.1; done; echo "nothing on :$1" >&2; exit 1; }
# CPU ticks (user + system) and RSS (KiB) of a process and its children
# (nginx's workers); ticks per second in `hz`.
tree() { echo "$1"; pgrep -P "$1" || true; }
ticks() { local t=0; for p in $(tree "$1"); do [ -r "/proc/$p/stat" ] && t=$((t + $(awk '{print $14+$15}' "/proc/$p/stat"))); done; echo $t; }
rss() { local k=0; for p in $(tree "$1"); do [ -r "/proc/$p/status" ] && k=$((k + $(awk '/VmRSS/ {print $2}' "/proc/$p/status"))); done; echo $k; }
hz=$(getconf CLK_TCK)
