#!/usr/bin/env bash
# Runs every kind of client against HOST:PORT (IPv4 and IPv6) and prints one TSV line per client:
#   NAME  EXIT-CODE  MILLISECONDS  LAST-LINE-OF-OUTPUT
# Used inside a sandbox, once fenced and once with the fence removed (the negative control).
set -u
H4=$1 H6=$2 PORT=$3 UDPPORT=$4
try() {
  local name=$1; shift
  local s e out rc
  s=$(date +%s%N)
  out=$(timeout 10 "$@" 2>&1); rc=$?
  e=$(( ($(date +%s%N) - s) / 1000000 ))
  printf '%s\t%s\t%s\t%s\n' "$name" "$rc" "$e" "$(printf '%s\n' "$out" | grep -v '^$' | tail -n 1 | tr '\t' ' ' | cut -c1-200)"
}
for fam in 4 6; do
  if [ "$fam" = 4 ]; then H=$H4; U="$H4"; else H=$H6; U="[$H6]"; fi
  try "bash-devtcp-v$fam" bash -c "exec 3<>/dev/tcp/$H/$PORT"
  try "python-blocking-v$fam" python3 -c "import socket; socket.create_connection(('$H', $PORT))"
  try "python-timeout-v$fam" python3 -c "import socket; socket.create_connection(('$H', $PORT), timeout=5)"
  try "curl-v$fam" curl -sS --noproxy '*' -m 5 -o /dev/null "http://$U:$PORT/"
  try "node-v$fam" node -e "require('net').connect($PORT, '$H').on('connect', () => process.exit(0)).on('error', (e) => { console.log(e.code); process.exit(1) })"
  try "python-udp-v$fam" python3 -c "import socket; s = socket.socket(socket.AF_INET$([ "$fam" = 6 ] && echo 6), socket.SOCK_DGRAM); s.sendto(b'x', ('$H', $UDPPORT))"
done
