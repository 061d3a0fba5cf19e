#!/usr/bin/env bash
# bench/run.sh: latch next to HAProxy and nginx on this machine, in one run.
#
#   bench/run.sh                 load rounds, then idle-connection memory
#   bench/run.sh load            load rounds only
#   bench/run.sh idle            idle-connection memory only
#   ROUNDS=5 bench/run.sh        (or --rounds 5) more rounds
#   SCENARIOS="h1 h2" bench/run.sh load   (or --scenarios h1,h2) a subset
#
# Scenarios (SCENARIOS, --scenarios; default all, in this order):
#   h1           HTTP/1.1 cleartext, SESSIONS sticky sessions (wrk, closedloop)
#   h1-busy      h1 with bench/burn spinning BUSY_THREADS threads beside it
#   https        HTTP/1.1 over TLS, one sticky session (wrk -cCONNS)
#   https-new    HTTP/1.1 over TLS, no cookie kept: a new session per request
#   https-close  HTTPS with Connection: close: a full handshake per request
#                (wrk -cCLOSE_CONNS)
#   h2           HTTP/2 over TLS, one sticky session (h2load -cH2_CONNS -mH2_STREAMS)
#   h2c          HTTP/2 cleartext, prior knowledge, one sticky session (h2load)
#
# Settings (environment variable, or the flag in brackets):
#   ROUNDS=3 (--rounds)  DURATION=10s (--duration)  CONNS=64 (--conns)
#   THREADS=2 (--threads, wrk's and h2load's)  SESSIONS=64 (--sessions)
#   CLOSE_CONNS=32 (--close-conns)  H2_CONNS=16 (--h2-conns)
#   H2_STREAMS=16 (--h2-streams)  BUSY_THREADS=<CPUs> (--busy-threads)
#   FRONTENDS="direct haproxy nginx latch" (--frontends direct,latch);
#     latch-nometrics is latch with its admin listener off, so no metrics
#     are counted (latch counts them whenever the admin listener is on);
#     direct (no proxy) runs in the cleartext HTTP/1.1 scenarios only;
#     haproxy-again is a second HAProxy, configured as the first, measured
#     in its own turn of each round: its ratios to HAProxy are what this
#     host's noise alone moves a ratio by, in this run; haproxy-indirect
#     is HAProxy with its cookie set on a session's first response only
#     (the bench's HAProxy before 2026-12-08; see haproxy_cookie)
#   CLIENTS="wrk closedloop" (--clients wrk): the HTTP/1.1 cleartext load
#     generators, each measuring every front end (closedloop is
#     bench/closedloop, in Go); HTTPS is wrk's, HTTP/2 h2load's
#   IDLE_CONNS=10000 (--idle-conns)  IDLE_FRONTENDS="haproxy latch" (--idle-frontends)
#   IDLE_PROTOS="h1 https h2" (--idle-protos; also h2c)
#   KEEP_TMP=0 (--keep): keep the temp dir with every config, log and load output
#
# Everything runs on 127.0.0.1 in a temp dir; everything started is stopped
# on exit, Ctrl-C or failure. Exit status: 0, or 1 if a front end failed to
# start or stickiness broke for any front end. See bench/README.md.
set -euo pipefail

usage() { sed -n '2,43p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10s}
CONNS=${CONNS:-64}
THREADS=${THREADS:-2}
SESSIONS=${SESSIONS:-64}
FRONTENDS=${FRONTENDS:-"direct haproxy nginx latch"}
CLIENTS=${CLIENTS:-"wrk closedloop"}
IDLE_CONNS=${IDLE_CONNS:-10000}
IDLE_FRONTENDS=${IDLE_FRONTENDS:-"haproxy latch"}
IDLE_PROTOS=${IDLE_PROTOS:-"h1 https h2"}
SCENARIOS=${SCENARIOS:-"h1 h1-busy https https-new https-close h2 h2c"}
CLOSE_CONNS=${CLOSE_CONNS:-32}
H2_CONNS=${H2_CONNS:-16}
H2_STREAMS=${H2_STREAMS:-16}
BUSY_THREADS=${BUSY_THREADS:-$(nproc)}
KEEP_TMP=${KEEP_TMP:-0}
MODE=all

while (($#)); do
	arg=$1
	shift
	val=
	case $arg in
	--*=*) val=${arg#*=} arg=${arg%%=*} ;;
	--rounds | --duration | --conns | --threads | --sessions | --frontends | --clients | --idle-conns | --idle-frontends | \
		--idle-protos | --scenarios | --close-conns | --h2-conns | --h2-streams | --busy-threads)
		(($#)) || { echo "run.sh: $arg needs a value" >&2; exit 2; }
		val=$1
		shift
		;;
	esac
	case $arg in
	all | load | idle) MODE=$arg ;;
	--rounds) ROUNDS=$val ;;
	--duration) DURATION=$val ;;
	--conns) CONNS=$val ;;
	--threads) THREADS=$val ;;
	--sessions) SESSIONS=$val ;;
	--frontends) FRONTENDS=${val//,/ } ;;
	--clients) CLIENTS=${val//,/ } ;;
	--idle-conns) IDLE_CONNS=$val ;;
	--idle-frontends) IDLE_FRONTENDS=${val//,/ } ;;
	--idle-protos) IDLE_PROTOS=${val//,/ } ;;
	--scenarios) SCENARIOS=${val//,/ } ;;
	--close-conns) CLOSE_CONNS=$val ;;
	--h2-conns) H2_CONNS=$val ;;
	--h2-streams) H2_STREAMS=$val ;;
	--busy-threads) BUSY_THREADS=$val ;;
	--keep) KEEP_TMP=1 ;;
	-h | --help) usage; exit 0 ;;
	*) echo "run.sh: unknown argument $arg (try --help)" >&2; exit 2 ;;
	esac
done
read -ra FES <<<"$FRONTENDS"
read -ra CLS <<<"$CLIENTS"
read -ra IDLE_FES <<<"$IDLE_FRONTENDS"
read -ra IDLE_PRS <<<"$IDLE_PROTOS"
read -ra SCENS <<<"$SCENARIOS"
for sc in "${SCENS[@]}"; do
	case $sc in h1 | h1-busy | https | https-new | https-close | h2 | h2c) ;; *) echo "run.sh: unknown scenario $sc (h1, h1-busy, https, https-new, https-close, h2, h2c)" >&2; exit 2 ;; esac
done
((${#SCENS[@]})) || { echo "run.sh: SCENARIOS is empty (h1, h1-busy, https, https-new, https-close, h2, h2c)" >&2; exit 2; }
for pr in "${IDLE_PRS[@]}"; do
	case $pr in h1 | https | h2 | h2c) ;; *) echo "run.sh: unknown idle protocol $pr (h1, https, h2, h2c)" >&2; exit 2 ;; esac
done
for fe in "${FES[@]}"; do
	case $fe in direct | haproxy | haproxy-again | haproxy-indirect | nginx | latch | latch-nometrics) ;; *) echo "run.sh: unknown front end $fe (direct, haproxy, haproxy-again, haproxy-indirect, nginx, latch, latch-nometrics)" >&2; exit 2 ;; esac
done
for cl in "${CLS[@]}"; do
	case $cl in wrk | closedloop) ;; *) echo "run.sh: unknown client $cl (wrk, closedloop)" >&2; exit 2 ;; esac
done
((${#CLS[@]})) || { echo "run.sh: CLIENTS is empty (wrk, closedloop)" >&2; exit 2; }
for fe in "${IDLE_FES[@]}"; do
	case $fe in haproxy | nginx | latch) ;; *) echo "run.sh: unknown idle front end $fe (haproxy, nginx, latch)" >&2; exit 2 ;; esac
done
for v in ROUNDS CONNS THREADS SESSIONS IDLE_CONNS CLOSE_CONNS H2_CONNS H2_STREAMS BUSY_THREADS; do
	[[ ${!v} =~ ^[1-9][0-9]*$ ]] || { echo "run.sh: $v must be a positive integer, got '${!v}'" >&2; exit 2; }
done
[[ $DURATION =~ ^[0-9]+[smh]?$ ]] || { echo "run.sh: DURATION must look like 10s, got '$DURATION'" >&2; exit 2; }

BENCH=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(dirname "$BENCH")
export PATH=$PATH:/usr/sbin:/sbin
HOST=127.0.0.1
BACKENDS=(b1 b2 b3)

say() { printf '%s\n' "$*"; }
warn() { printf 'run.sh: %s\n' "$*" >&2; }
die() { warn "$*"; exit 1; }

# ---------------------------------------------------------------- packages
need_pkgs=()
declare -A PKG_OF=([wrk]=wrk [haproxy]=haproxy [nginx]=nginx [curl]=curl [h2load]=nghttp2-client [openssl]=openssl)
for c in wrk haproxy nginx curl h2load openssl; do
	command -v "$c" >/dev/null 2>&1 || need_pkgs+=("${PKG_OF[$c]}")
done
if ((${#need_pkgs[@]})); then
	if [[ $(id -u) == 0 ]]; then
		say "installing ${need_pkgs[*]} from Debian"
		export DEBIAN_FRONTEND=noninteractive
		apt-get install -y wrk haproxy nginx curl nghttp2-client openssl >/dev/null 2>&1 ||
			{ apt-get update -qq && apt-get install -y wrk haproxy nginx curl nghttp2-client openssl; }
	else
		die "missing ${need_pkgs[*]}: run  sudo apt-get install -y wrk haproxy nginx curl nghttp2-client openssl  (or run this script as root)"
	fi
fi
command -v go >/dev/null 2>&1 || die "go is not on PATH (needed to build latch)"

# Many connections need many file descriptors: for wrk, the idle tool and
# every proxy (HAProxy refuses to start if it cannot get what maxconn needs).
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
NOFILE=$(ulimit -n)
[[ $NOFILE == unlimited ]] && NOFILE=1048576
CLK_TCK=$(getconf CLK_TCK)

TMP=$(mktemp -d "${TMPDIR:-/tmp}/latch-bench.XXXXXX")
chmod 755 "$TMP"
mkdir -p "$TMP/bin"

# ------------------------------------------------------- process handling
STARTED=()      # every pid started in the background, in order
declare -A LIVE # those of them not yet reaped (a reaped pid may be reused)
declare -A PID  # front end or instance name -> pid

# children PID: the direct children of PID.
children() {
	local f line rest st pp
	for f in /proc/[0-9]*/stat; do
		read -r line 2>/dev/null <"$f" || continue
		rest=${line##*) }
		read -r st pp _ <<<"$rest"
		[[ $pp == "$1" ]] && printf '%s\n' "${line%% *}"
	done
	return 0
}

# tree PID: PID and all its descendants.
tree() {
	local p
	[[ -e /proc/$1 ]] || return 0
	printf '%s\n' "$1"
	for p in $(children "$1"); do tree "$p"; done
}

alive() {
	local line st
	read -r line 2>/dev/null <"/proc/$1/stat" || return 1
	read -r st _ <<<"${line##*) }"
	[[ $st != Z ]]
}

# kill_trees PID...: SIGTERM each process tree, then SIGKILL what is left
# after 5 s, and reap our own children.
kill_trees() {
	local all=() p i
	for p in "$@"; do mapfile -t -O "${#all[@]}" all < <(tree "$p"); done
	((${#all[@]})) || return 0
	kill -TERM "${all[@]}" 2>/dev/null || true
	for i in $(seq 50); do
		local left=0
		for p in "${all[@]}"; do alive "$p" && left=1; done
		((left)) || break
		sleep 0.1
	done
	for p in "${all[@]}"; do alive "$p" && kill -KILL "$p" 2>/dev/null; done
	for p in "$@"; do
		wait "$p" 2>/dev/null || true
		unset "LIVE[$p]"
	done
}

# shellcheck disable=SC2317 # cleanup is called by the EXIT trap
cleanup() {
	local rc=$?
	set +e
	trap - EXIT INT TERM
	local rev=() i
	for ((i = ${#STARTED[@]} - 1; i >= 0; i--)); do
		[[ -n ${LIVE[${STARTED[i]}]:-} ]] && rev+=("${STARTED[i]}")
	done
	((${#rev[@]})) && kill_trees "${rev[@]}"
	if [[ $KEEP_TMP == 1 ]]; then
		warn "kept $TMP"
	else
		rm -rf "$TMP"
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'warn interrupted; exit 130' INT
trap 'warn terminated; exit 143' TERM

# start NAME LOG CMD...: run CMD in the background, record its pid.
start() {
	local name=$1 log=$2
	shift 2
	"$@" >"$log" 2>&1 &
	PID[$name]=$!
	STARTED+=("$!")
	LIVE[$!]=1
}

# run_fg CMD...: run CMD to completion. It runs in the background and is
# waited for, so that Ctrl-C stops the script at once: bash defers its
# trap while a foreground child that catches SIGINT (wrk does) runs.
run_fg() {
	"$@" &
	local p=$! rc=0
	STARTED+=("$p")
	LIVE[$p]=1
	wait "$p" || rc=$?
	unset "LIVE[$p]"
	return "$rc"
}

stop() {
	local name=$1 p=${PID[$1]:-}
	[[ -n $p ]] || return 0
	kill_trees "$p"
	unset "PID[$name]"
}

cpu_ticks() { # utime+stime of every process in the tree of $1
	local p line f sum=0
	for p in $(tree "$1"); do
		read -r line 2>/dev/null <"/proc/$p/stat" || continue
		read -ra f <<<"${line##*) }"
		sum=$((sum + f[11] + f[12]))
	done
	echo "$sum"
}

rss_kib() { # VmRSS summed over the tree of $1
	local p k v sum=0
	for p in $(tree "$1"); do
		while read -r k v _; do
			[[ $k == VmRSS: ]] && sum=$((sum + v))
		done 2>/dev/null <"/proc/$p/status" || true
	done
	echo "$sum"
}

# ----------------------------------------------------------------- ports
PICKED=" "
PORT=
# pick_port: a free TCP port on 127.0.0.1 in $PORT, below the ephemeral
# range so that no client socket (wrk, the idle tool) can take it later.
pick_port() {
	local lo=10000 hi elo ehi p hex i
	read -r elo ehi </proc/sys/net/ipv4/ip_local_port_range
	if ((elo - lo >= 2000)); then
		hi=$elo
	elif ((65535 - ehi >= 2000)); then
		lo=$((ehi + 1)) hi=65535
	else
		hi=65535
	fi
	for i in $(seq 500); do
		p=$((lo + (RANDOM * 32768 + RANDOM) % (hi - lo)))
		[[ $PICKED == *" $p "* ]] && continue
		hex=$(printf '%04X' "$p")
		if ! grep -qs ":$hex " /proc/net/tcp /proc/net/tcp6; then
			PICKED+="$p "
			PORT=$p
			return 0
		fi
	done
	die "no free port found"
}

# ------------------------------------------------------------ HTTP checks
# probe URL [CURL ARGS...]: one GET; prints "STATUS BACKEND COOKIELINES..."
# where cookie lines are the Set-Cookie name=value pairs, space separated.
probe() {
	local url=$1
	shift
	curl -sS -m 5 -o /dev/null -D - "$@" "$url" 2>/dev/null | tr -d '\r' | awk '
		NR == 1 { status = $2 }
		tolower($1) == "x-backend:" { backend = $2 }
		tolower($1) == "set-cookie:" { c = $2; sub(/;.*/, "", c); cookies = cookies " " c }
		END { if (status == "") status = "000"; if (backend == "") backend = "-"; print status, backend cookies }'
}

# wait_up NAME URL SECONDS: until URL answers 200 (and NAME is still running).
wait_up() {
	local name=$1 url=$2 secs=$3 t0=$SECONDS st
	while ((SECONDS - t0 < secs)); do
		[[ -n ${PID[$name]:-} ]] && ! alive "${PID[$name]}" && return 1
		read -r st _ <<<"$(probe "$url")"
		[[ $st == 200 ]] && return 0
		sleep 0.2
	done
	return 1
}

# wait_spread NAME URL SECONDS: until 6 requests in a row answer 200 and
# reach all three backends (latch: its health checks have passed).
wait_spread() {
	local name=$1 url=$2 secs=$3 t0=$SECONDS st be i ok seen
	while ((SECONDS - t0 < secs)); do
		alive "${PID[$name]}" || return 1
		ok=1 seen=" "
		for i in 1 2 3 4 5 6; do
			read -r st be _ <<<"$(probe "$url")"
			[[ $st == 200 ]] || { ok=0; break; }
			[[ $seen == *" $be "* ]] || seen+="$be "
		done
		((ok)) && [[ $(wc -w <<<"$seen") == 3 ]] && return 0
		sleep 0.5
	done
	return 1
}

# ----------------------------------------------------------- certificate
# make_cert: an ECDSA P-256 certificate for 127.0.0.1 and localhost, made
# for this run and valid for two days; bench.pem is the certificate and
# key in one file, as HAProxy's crt wants them.
CERT=$TMP/cert
make_cert() {
	mkdir -p "$CERT"
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
		-subj /CN=localhost -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
		-keyout "$CERT/bench.key" -out "$CERT/bench.crt" >"$CERT/openssl.log" 2>&1 ||
		die "openssl could not make the bench certificate: $(cat "$CERT/openssl.log")"
	cat "$CERT/bench.crt" "$CERT/bench.key" >"$CERT/bench.pem"
	say "certificate: ECDSA P-256, self-signed for 127.0.0.1 and localhost, made for this run"
}

# ---------------------------------------------------------------- configs
NGINX_USER=
if [[ $(id -u) == 0 ]]; then
	if getent passwd www-data >/dev/null; then NGINX_USER="user www-data;"; else NGINX_USER="user nobody nogroup;"; fi
fi

nginx_common() { # DIR WORKER_CONNECTIONS
	mkdir -p "$1/tmp"
	cat <<EOF
worker_processes auto;
worker_rlimit_nofile $NOFILE;
pid $1/nginx.pid;
error_log $1/error.log warn;
$NGINX_USER
events { worker_connections $2; }
EOF
}

nginx_temp_paths() {
	cat <<EOF
    client_body_temp_path $1/tmp/body;
    proxy_temp_path $1/tmp/proxy;
    fastcgi_temp_path $1/tmp/fastcgi;
    uwsgi_temp_path $1/tmp/uwsgi;
    scgi_temp_path $1/tmp/scgi;
EOF
}

start_nginx() { # NAME DIR
	nginx -t -q -p "$2/" -c "$2/nginx.conf" -e "$2/error.log" >"$2/check.log" 2>&1 || {
		cat "$2/check.log" >&2
		return 1
	}
	start "$1" "$2/stderr.log" nginx -p "$2/" -c "$2/nginx.conf" -e "$2/error.log" -g 'daemon off;'
}

declare -A BPORT
start_backends() {
	local d=$TMP/backends b
	mkdir -p "$d"
	for b in "${BACKENDS[@]}"; do
		pick_port
		BPORT[$b]=$PORT
	done
	{
		nginx_common "$d" 4096
		echo "http {"
		echo "    access_log off;"
		echo "    default_type text/plain;"
		echo "    keepalive_requests 100000000;"
		echo "    keepalive_timeout 300s;"
		nginx_temp_paths "$d"
		for b in "${BACKENDS[@]}"; do
			cat <<EOF
    server {
        listen $HOST:${BPORT[$b]};
        add_header X-Backend $b always;
        location / {
            if (\$http_x_expect_backend !~ "^($b)?\$") { return 409 "wrong backend: this is $b\n"; }
            return 200 "hello from $b\n";
        }
    }
EOF
		done
		echo "}"
	} >"$d/nginx.conf"
	start_nginx backends "$d" || die "the nginx backends did not start (see above)"
	for b in "${BACKENDS[@]}"; do
		wait_up backends "http://$HOST:${BPORT[$b]}/" 10 || die "backend $b did not start: $(cat "$d/error.log" "$d/stderr.log" 2>/dev/null)"
	done
	# The stickiness check is only as good as the backends' 409: test it.
	local st be other
	for b in "${BACKENDS[@]}"; do
		read -r st be _ <<<"$(probe "http://$HOST:${BPORT[$b]}/" -H "X-Expect-Backend: $b")"
		[[ $st == 200 && $be == "$b" ]] || die "backend $b: expected 200 from $b, got $st from $be"
		other=b1
		[[ $b == b1 ]] && other=b2
		read -r st _ <<<"$(probe "http://$HOST:${BPORT[$b]}/" -H "X-Expect-Backend: $other")"
		[[ $st == 409 ]] || die "backend $b answered $st, not 409, to a request expecting $other"
	done
	say "backends: nginx on ports ${BPORT[b1]} ${BPORT[b2]} ${BPORT[b3]} (b1 b2 b3), 409 on a wrong X-Expect-Backend: ok"
}


# HAProxy's sticky cookie, set as latch sets AWSALB and AWSALBCORS (ALB's
# way), so that both proxies do the same job and the client and the kernel
# carry as many bytes for each: AWSALB on every response, not only a
# session's first (HAProxy's maxidle: the cookie carries its last date and
# is set again whenever that moved on, a sliding window as ALB's), passed on
# to the target (no "indirect"), with an Expires a week on, its value as long
# as latch's for the same target, and AWSALBCORS beside it whenever AWSALB is
# set (SameSite=None, plus Secure over TLS), with the same value: added after
# HAProxy has inserted its cookie (http-after-response), so that it is there
# on a session's first answer too. Set as before 2026-12-08 (haproxy-indirect),
# HAProxy's response heads were 139 bytes against latch's 572 and the
# requests' cookie 11 characters against 143, and wrk spent about a quarter
# more CPU on each latch answer, on the two CPUs it shares with the proxies.
# haproxy-indirect keeps that lighter setup: SERVERID, set on a session's
# first response only and taken off the requests to the targets.
haproxy_cookie() { # NAME
	if [[ $1 == *haproxy-indirect ]]; then
		echo "    cookie SERVERID insert indirect nocache"
		return
	fi
	local exp
	exp=$(LC_ALL=C date -u -d '+7 days' '+%a, %d %b %Y %H:%M:%S GMT')
	cat <<EOF
    cookie AWSALB insert nocache maxidle 7d attr "Expires=$exp"
    http-after-response add-header Set-Cookie "AWSALBCORS=%[res.cook(AWSALB)]; Expires=$exp; Path=/; SameSite=None; Secure" if { res.cook(AWSALB) -m found } { ssl_fc }
    http-after-response add-header Set-Cookie "AWSALBCORS=%[res.cook(AWSALB)]; Expires=$exp; Path=/; SameSite=None" if { res.cook(AWSALB) -m found } !{ ssl_fc }
EOF
}

# latch_cookie_len TARGET_ID: the length of latch's AWSALB value for a
# target (internal/sticky's wire format, version 2: 86 bytes and the id,
# in padded base64).
latch_cookie_len() { echo $(((86 + ${#1} + 2) / 3 * 4)); }

# haproxy_cookie_value NAME BACKEND: the server's cookie value, its name
# padded so that with HAProxy's "|" and 5-character date it is as long as
# latch's value for the same target.
haproxy_cookie_value() {
	if [[ $1 == *haproxy-indirect ]]; then
		echo "$2"
		return
	fi
	local n
	n=$(($(latch_cookie_len "$HOST:${BPORT[$2]}") - 6 - ${#2}))
	echo "$2$(printf '%*s' "$n" '' | tr ' ' 0)"
}

start_haproxy() { # NAME MAXCONN
	local name=$1 maxconn=$2 d=$TMP/$1 strict='' port=${P_H1[$1]}
	mkdir -p "$d"
	# HAProxy wants 2 FDs per maxconn (client and server side) and, by
	# default, refuses to start if it cannot raise its limit that far. Idle
	# client connections need only one each, so where the hard limit is
	# lower, let it start anyway.
	if ((2 * maxconn + 200 > NOFILE)); then
		strict="no strict-limits  # ulimit -n is $NOFILE: enough for idle client connections"
	fi
	cat >"$d/haproxy.cfg" <<EOF
global
    maxconn $maxconn
    $strict
    # default nbthread: one thread per CPU
    # TLS as latch's default policy: 1.2 and 1.3, AES-128-GCM first
    # (Go's choice; OpenSSL's client would otherwise get AES-256-GCM).
    ssl-default-bind-options ssl-min-ver TLSv1.2
    ssl-default-bind-ciphersuites TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256

defaults
    mode http
    maxconn $maxconn
    option http-keep-alive
    timeout connect 5s
    timeout client 300s
    timeout server 30s
    timeout http-request 30s
    timeout http-keep-alive 300s

frontend bench
    bind $HOST:$port
    bind $HOST:${P_TLS[$name]} ssl crt $CERT/bench.pem alpn h2,http/1.1
    bind $HOST:${P_H2C[$name]} proto h2
    default_backend web

backend web
    balance roundrobin
$(haproxy_cookie "$name")
    http-reuse always
    option httpchk GET /
    server b1 $HOST:${BPORT[b1]} cookie $(haproxy_cookie_value "$name" b1) check inter 5s
    server b2 $HOST:${BPORT[b2]} cookie $(haproxy_cookie_value "$name" b2) check inter 5s
    server b3 $HOST:${BPORT[b3]} cookie $(haproxy_cookie_value "$name" b3) check inter 5s
EOF
	haproxy -c -q -f "$d/haproxy.cfg" >"$d/check.log" 2>&1 || { cat "$d/check.log" >&2; return 1; }
	start "$name" "$d/haproxy.log" haproxy -db -f "$d/haproxy.cfg"
	wait_up "$name" "http://$HOST:$port/" 15 || { cat "$d/haproxy.log" >&2; return 1; }
}

start_nginx_proxy() { # NAME WORKER_CONNECTIONS
	local name=$1 wc=$2 d=$TMP/$1 port=${P_H1[$1]}
	mkdir -p "$d"
	{
		nginx_common "$d" "$wc"
		cat <<EOF
http {
    access_log off;
    keepalive_requests 100000000;
    keepalive_timeout 300s;
$(nginx_temp_paths "$d")
    upstream web {
        hash \$cookie_sid consistent;
        server $HOST:${BPORT[b1]};
        server $HOST:${BPORT[b2]};
        server $HOST:${BPORT[b3]};
        keepalive 64;
        keepalive_requests 100000000;
    }
    server {
        listen $HOST:$port;
        # HTTPS: ALPN offers h2 and http/1.1. The plain http2 listen is
        # h2c with prior knowledge only (nginx before 1.25.1).
        listen $HOST:${P_TLS[$name]} ssl http2;
        listen $HOST:${P_H2C[$name]} http2;
        ssl_certificate $CERT/bench.crt;
        ssl_certificate_key $CERT/bench.key;
        # TLS as latch's default policy: 1.2 and 1.3, AES-128-GCM first.
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_prefer_server_ciphers on;
        ssl_conf_command Ciphersuites TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256;
        location / {
            proxy_pass http://web;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }
}
EOF
	} >"$d/nginx.conf"
	start_nginx "$name" "$d" || return 1
	wait_up "$name" "http://$HOST:$port/" 15 || { cat "$d/error.log" "$d/stderr.log" >&2; return 1; }
}

LATCH_BUILT=0
build_latch() {
	((LATCH_BUILT)) && return 0
	say "building latch: go build -o \$tmp/latch ./cmd/latch"
	if ! (cd "$REPO" && go build -o "$TMP/bin/latch" ./cmd/latch) >"$TMP/latch-build.log" 2>&1; then
		cat "$TMP/latch-build.log" >&2
		warn "latch did not build"
		return 1
	fi
	LATCH_BUILT=1
}

start_latch() { # NAME
	local name=$1 port=${P_H1[$1]} d=$TMP/$1
	build_latch || return 1
	mkdir -p "$d"
	local admin="admin: { address: $HOST:0 }"
	[[ $name == latch-nometrics ]] && admin="admin: { enabled: false }"
	cat >"$d/latch.yaml" <<EOF
listeners:
  - name: bench
    address: $HOST:$port
    protocol: HTTP
    attributes: { idle_timeout.timeout_seconds: 300 }
    default_action:
      type: forward
      forward: { target_group: web }
  - name: bench-tls
    address: $HOST:${P_TLS[$name]}
    protocol: HTTPS
    certificates:
      - { cert_file: $CERT/bench.crt, key_file: $CERT/bench.key }
    attributes: { idle_timeout.timeout_seconds: 300, routing.http2.enabled: true }
    default_action:
      type: forward
      forward: { target_group: web }
  - name: bench-h2c
    address: $HOST:${P_H2C[$name]}
    protocol: HTTP
    attributes: { idle_timeout.timeout_seconds: 300, routing.http2.h2c.enabled: true }
    default_action:
      type: forward
      forward: { target_group: web }
target_groups:
  - name: web
    targets:
      - id: $HOST:${BPORT[b1]}
      - id: $HOST:${BPORT[b2]}
      - id: $HOST:${BPORT[b3]}
    health_check:
      path: /
      interval_seconds: 5
      timeout_seconds: 2
      healthy_threshold_count: 2
    attributes:
      stickiness.enabled: "true"
      stickiness.type: lb_cookie
      load_balancing.algorithm.type: round_robin
$admin
state_dir: $TMP/latch-state
EOF
	"$TMP/bin/latch" validate -config "$d/latch.yaml" >"$d/check.log" 2>&1 || { cat "$d/check.log" >&2; return 1; }
	start "$name" "$d/latch.log" "$TMP/bin/latch" serve -config "$d/latch.yaml" -shutdown-timeout 2s
	# Wait for latch to report all three targets healthy. Until the first
	# is, latch fails open and spreads requests over all three, so a spread
	# alone proves nothing: a session made then would later move.
	local t0=$SECONDS
	local healthy
	while healthy=$(latch_healthy "$d/latch.log") && ((${healthy:-0} < 3)); do
		alive "${PID[$name]}" || { cat "$d/latch.log" >&2; return 1; }
		if ((SECONDS - t0 >= 30)); then
			warn "latch did not log 3 healthy targets in 30 s; going on when requests reach all three"
			break
		fi
		sleep 0.2
	done
	wait_spread "$name" "http://$HOST:$port/" 60 || { cat "$d/latch.log" >&2; return 1; }
}

latch_healthy() { # LOG: how many targets latch last reported healthy
	[[ -f $1 ]] || { echo 0; return 0; }
	awk '/msg="target health changed"/ {
		t = ""; s = ""
		for (i = 1; i <= NF; i++) {
			if ($i ~ /^target=/) t = substr($i, 8)
			if ($i ~ /^to=/) s = substr($i, 4)
		}
		if (t != "") st[t] = s
	}
	END { n = 0; for (t in st) if (st[t] == "healthy") n++; print n }' "$1"
}

# start_frontend FE NAME MODE: MODE is load or idle (more connections).
# Every front end listens on three ports: HTTP/1.1 (P_H1), HTTPS offering
# h2 and http/1.1 by ALPN (P_TLS), and h2c with prior knowledge (P_H2C).
declare -A P_H1 P_TLS P_H2C
start_frontend() {
	local fe=$1 name=$2 mode=$3
	pick_port
	P_H1[$name]=$PORT
	pick_port
	P_TLS[$name]=$PORT
	pick_port
	P_H2C[$name]=$PORT
	case $fe in
	haproxy | haproxy-again | haproxy-indirect)
		local mc=4096
		[[ $mode == idle ]] && mc=$((IDLE_CONNS + 2048))
		start_haproxy "$name" "$mc"
		;;
	nginx)
		local wc=4096
		[[ $mode == idle ]] && wc=$((IDLE_CONNS + 2048))
		start_nginx_proxy "$name" "$wc"
		;;
	latch | latch-nometrics) start_latch "$name" ;;
	esac
}

# -------------------------------------------------------------- sessions
# collect_sessions FE URL FILE: SESSIONS sticky sessions, one
# "<backend> <Cookie header value>" per line, spread over all backends,
# and each replayed once to check that it comes back to its backend.
collect_sessions() {
	local fe=$1 url=$2 file=$3 i st be cookies cookie name c
	: >"$file"
	case $fe in haproxy | haproxy-again | latch | latch-nometrics) name=AWSALB ;; haproxy-indirect) name=SERVERID ;; esac
	for ((i = 0; i < SESSIONS; i++)); do
		if [[ $fe == nginx ]]; then
			read -r st be _ <<<"$(probe "$url" -H "Cookie: sid=$i")"
			cookie="sid=$i"
		else
			read -r st be cookies <<<"$(probe "$url")"
			cookie=
			for c in $cookies; do [[ $c == "$name="* ]] && cookie=$c; done
		fi
		[[ $st == 200 ]] || { warn "$fe: session $i: status $st"; return 1; }
		[[ -n $cookie ]] || { warn "$fe: session $i: no $name cookie in the response"; return 1; }
		printf '%s %s\n' "$be" "$cookie" >>"$file"
	done
	local spread
	spread=$(awk '{n[$1]++} END {for (b in n) print b ":" n[b]}' "$file" | sort | paste -sd' ')
	if [[ $(awk '{print $1}' "$file" | sort -u | wc -l) != 3 ]]; then
		warn "$fe: sessions do not spread over the three backends: $spread"
		return 1
	fi
	local bad=0
	while read -r be cookie; do
		read -r st _ <<<"$(probe "$url" -H "Cookie: $cookie" -H "X-Expect-Backend: $be")"
		[[ $st == 200 ]] || bad=$((bad + 1))
	done <"$file"
	# The cookies' lengths, to show that HAProxy's are as long as latch's.
	local lens
	lens=$(awk '{sub(/^[^=]*=/, "", $2); print length($2)}' "$file" | sort -un | paste -sd/)
	say "  $fe: $SESSIONS sessions, spread $spread, cookie values of $lens characters, replayed once: $((SESSIONS - bad))/$SESSIONS back on their backend"
	((bad == 0)) || { warn "$fe: $bad sessions did not come back to their backend"; return 1; }
}

# ------------------------------------------------------------ wrk parsing
to_ms() { # 1.23ms, 456.00us, 1.02s, 1.00m -> milliseconds
	awk -v v="$1" 'BEGIN {
		if (v ~ /us$/) { sub(/us$/, "", v); printf "%.3f", v / 1000 }
		else if (v ~ /ms$/) { sub(/ms$/, "", v); printf "%.3f", v }
		else if (v ~ /m$/) { sub(/m$/, "", v); printf "%.3f", v * 60000 }
		else if (v ~ /h$/) { sub(/h$/, "", v); printf "%.3f", v * 3600000 }
		else if (v ~ /s$/) { sub(/s$/, "", v); printf "%.3f", v * 1000 }
		else printf "nan" }'
}

# ----------------------------------------------------------- machine info
print_header() {
	local model
	model=$(awk -F': *' '/^model name/ {print $2; exit}' /proc/cpuinfo)
	say "date:      $(date -u '+%Y-%m-%d %H:%M UTC')"
	say "machine:   $(nproc) vCPU, ${model:-unknown CPU}, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), Linux $(uname -r)"
	say "versions:  $(haproxy -v 2>&1 | head -1 | awk '{print "HAProxy", $3}'), $(nginx -v 2>&1 | sed 's/^nginx version: //'), $(go version | awk '{print $3}'), $(wrk -v 2>&1 | head -1 | awk '{print "wrk", $2}'), $(h2load --version 2>&1 | head -1 | awk '{print "h2load", $2}'), $(openssl version | awk '{print "OpenSSL", $2}'), $(if ((LATCH_BUILT)); then "$TMP/bin/latch" version; else echo "latch (not built)"; fi)$(c=$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null) && echo " (work tree at commit $c)")"
}

FAILED=()  # front ends that failed to start or died
BROKEN=()  # front ends whose stickiness broke

# ============================================================= load rounds
declare -A SESSFILE ONE SKIP

# scen_clients SCEN: the load generators of a scenario.
scen_clients() {
	case $1 in
	h1 | h1-busy) echo "${CLS[*]}" ;;
	https | https-new | https-close) echo wrk ;;
	h2 | h2c) echo h2load ;;
	esac
}

# url_for SCEN FE
url_for() {
	local sc=$1 fe=$2
	case $sc in
	h1 | h1-busy) if [[ $fe == direct ]]; then echo "http://$HOST:${BPORT[b1]}/"; else echo "http://$HOST:${P_H1[$fe]}/"; fi ;;
	https | https-new | https-close | h2) echo "https://$HOST:${P_TLS[$fe]}/" ;;
	h2c) echo "http://$HOST:${P_H2C[$fe]}/" ;;
	esac
}

# client_cmd SCEN FE CLIENT DURATION: the load command of one run, in CMD.
CMD=()
client_cmd() {
	local sc=$1 fe=$2 cl=$3 dur=$4 url
	url=$(url_for "$sc" "$fe")
	case $cl in
	wrk)
		local c=$CONNS largs=()
		case $sc in
		h1 | h1-busy) [[ $fe != direct ]] && largs=(-- "${SESSFILE[$fe]}") ;;
		https) largs=(-- "${ONE[$fe]}") ;;
		https-close) c=$CLOSE_CONNS largs=(-- "${ONE[$fe]}" close) ;;
		esac
		CMD=(wrk -t"$THREADS" -c"$c" -d"$dur" --latency -s "$BENCH/sessions.lua" "$url" "${largs[@]}")
		;;
	closedloop)
		CMD=("$TMP/bin/closedloop" -url "$url" -c "$CONNS" -d "$dur")
		if [[ $fe != direct ]]; then CMD+=(-sessions "${SESSFILE[$fe]}"); fi
		;;
	h2load)
		local be cookie
		read -r be cookie <"${ONE[$fe]}"
		CMD=(h2load -t"$((THREADS < H2_CONNS ? THREADS : H2_CONNS))" -c"$H2_CONNS" -m"$H2_STREAMS" -D "$dur"
			-H "cookie: $cookie" -H "x-expect-backend: $be" "$url")
		;;
	esac
}

# check_protocols FE: the front end speaks, on each port the scenarios use,
# the protocol their rows name, and the one session stays on its backend.
check_protocols() {
	local fe=$1 be cookie got sc need_tls=0 need_h2=0 need_h2c=0 tlsinfo expect other=b2
	read -r be cookie <"${ONE[$fe]}"
	[[ $be == b2 ]] && other=b3
	expect=$be
	for sc in "${SCENS[@]}"; do
		case $sc in https | https-new | https-close) need_tls=1 ;; h2) need_h2=1 ;; h2c) need_h2c=1 ;; esac
	done
	# proto_ok SCENARIOS WANT CURL ARGS...: curl prints "<status> <HTTP version>".
	proto_ok() {
		local scs=$1 want=$2
		shift 2
		got=$(curl -sS -m 5 -o /dev/null -w '%{http_code} %{http_version}' -H "Cookie: $cookie" -H "X-Expect-Backend: $expect" "$@" 2>&1) || true
		if [[ $got != "$want" ]]; then
			warn "$fe: expected '$want' (status, HTTP version) from curl $*, got '$got': no $scs for $fe"
			for sc in $scs; do SKIP["$sc $fe"]=1; done
			FAILED+=("$fe")
			return 1
		fi
	}
	local line="  $fe:"
	if ((need_tls)) && proto_ok "https https-new https-close" "200 1.1" -k --http1.1 "https://$HOST:${P_TLS[$fe]}/"; then
		tlsinfo=$(openssl s_client -connect "$HOST:${P_TLS[$fe]}" -alpn http/1.1 -brief </dev/null 2>&1 |
			awk -F': *' '/^Protocol version/ {v = $2} /^Ciphersuite/ {c = $2} /^(Server|Peer) Temp Key/ {k = $2; sub(/,.*/, "", k)}
				/^Signature type/ {t = $2} END {print v, c, k, t}') || true
		line+=" HTTPS HTTP/1.1 ok ($tlsinfo);"
	fi
	((need_h2)) && proto_ok h2 "200 2" -k --http2 "https://$HOST:${P_TLS[$fe]}/" && line+=" HTTP/2 over TLS (ALPN h2) ok;"
	((need_h2c)) && proto_ok h2c "200 2" --http2-prior-knowledge "http://$HOST:${P_H2C[$fe]}/" && line+=" h2c (prior knowledge) ok;"
	# X-Expect-Backend must reach the backend over HTTP/2 as well, or the
	# 409 check would miss a broken session there: name another backend.
	expect=$other
	((need_h2)) && [[ -z ${SKIP["h2 $fe"]:-} ]] && proto_ok h2 "409 2" -k --http2 "https://$HOST:${P_TLS[$fe]}/" && line+=" 409 over h2 ok;"
	((need_h2c)) && [[ -z ${SKIP["h2c $fe"]:-} ]] && proto_ok h2c "409 2" --http2-prior-knowledge "http://$HOST:${P_H2C[$fe]}/" && line+=" 409 over h2c ok;"
	[[ $line != "  $fe:" ]] && say "$line session on $be"
	return 0
}

# scen_fes SCEN: the front ends of a scenario, among those started.
scen_fes() {
	local sc=$1 fe list=()
	for fe in "${OK_FES[@]}"; do
		[[ $fe == direct && $sc != h1 && $sc != h1-busy ]] && continue
		[[ -n ${SKIP["$sc $fe"]:-} ]] && continue
		list+=("$fe")
	done
	echo "${list[*]}"
}

OK_FES=()
load_phase() {
	local fe sc cl
	say "== load: scenarios ${SCENS[*]}; $ROUNDS interleaved rounds of $DURATION"
	if [[ " ${SCENS[*]} " == *" h1"* && " ${CLS[*]} " == *" closedloop "* ]]; then
		(cd "$REPO" && go build -o "$TMP/bin/closedloop" ./bench/closedloop) || die "bench/closedloop did not build"
	fi
	if [[ " ${SCENS[*]} " == *" h1-busy "* ]]; then
		(cd "$REPO" && go build -o "$TMP/bin/burn" ./bench/burn) || die "bench/burn did not build"
	fi
	say "starting front ends, collecting sessions, checking protocols:"
	for fe in "${FES[@]}"; do
		if [[ $fe == direct ]]; then
			OK_FES+=(direct)
			say "  direct: the load straight at backend b1 (no proxy, no cookie; cleartext HTTP/1.1 only)"
			continue
		fi
		SESSFILE[$fe]=$TMP/sessions-$fe.txt
		ONE[$fe]=$TMP/session-one-$fe.txt
		backends_alive
		if ! start_frontend "$fe" "$fe" load; then
			warn "$fe failed to start"
			FAILED+=("$fe")
			stop "$fe"
			continue
		fi
		if ! collect_sessions "$fe" "http://$HOST:${P_H1[$fe]}/" "${SESSFILE[$fe]}"; then
			FAILED+=("$fe")
			stop "$fe"
			continue
		fi
		# The one-session scenarios use the first session on b1, so that
		# every front end sends them to the same backend.
		{ awk '$1 == "b1" {print; f = 1; exit} END {exit !f}' "${SESSFILE[$fe]}" || head -1 "${SESSFILE[$fe]}"; } >"${ONE[$fe]}"
		check_protocols "$fe"
		OK_FES+=("$fe")
	done
	((${#OK_FES[@]})) || die "no front end started"
	RESULTS=$TMP/results.txt
	: >"$RESULTS"

	# One second of each scenario's load on each front end, unrecorded:
	# pools, buffers, TLS session state, backend connections and Go's heap
	# are in place before round 1.
	local fes
	for sc in "${SCENS[@]}"; do
		[[ $sc == h1-busy ]] && continue
		read -ra fes <<<"$(scen_fes "$sc")"
		read -r cl _ <<<"$(scen_clients "$sc")"
		[[ $cl == closedloop ]] && cl=wrk
		for fe in "${fes[@]}"; do
			client_cmd "$sc" "$fe" "$cl" 1s
			run_fg "${CMD[@]}" >"$TMP/warmup-$sc-$fe.txt" 2>&1 || true
		done
	done

	local round n k i
	for ((round = 1; round <= ROUNDS; round++)); do
		for sc in "${SCENS[@]}"; do
			read -ra fes <<<"$(scen_fes "$sc")"
			n=${#fes[@]}
			for ((k = 0; k < n; k++)); do
				i=$(((k + round - 1) % n))
				fe=${fes[i]}
				# A front end that died is not measured again; one that
				# failed a protocol check is left out of that scenario only.
				[[ $fe != direct ]] && ! alive "${PID[$fe]}" && continue
				for cl in $(scen_clients "$sc"); do run_one "$round" "$sc" "$fe" "$cl"; done
			done
		done
	done

	# The load instances go away before the idle measurements.
	for fe in "${OK_FES[@]}"; do [[ $fe == direct ]] || stop "$fe"; done
}

backends_alive() {
	alive "${PID[backends]}" || die "the nginx backends died: $(tail -5 "$TMP/backends/error.log" "$TMP/backends/stderr.log" 2>/dev/null)"
}

# start_burn: bench/burn beside the proxies, until stop burn.
start_burn() {
	local log=$TMP/burn.log i
	start burn "$log" "$TMP/bin/burn" -threads "$BUSY_THREADS" -d 1h
	for ((i = 0; i < 100; i++)); do
		grep -qs '^burning:' "$log" && return 0
		alive "${PID[burn]}" || break
		sleep 0.05
	done
	die "bench/burn did not start: $(cat "$log")"
}

run_one() { # ROUND SCEN FE CLIENT
	local round=$1 sc=$2 fe=$3 cl=$4 out=$TMP/$2-$4-$3-$1.txt pid='' t0=0 t1=0 rss=- cpu=- busy=
	[[ $fe != direct ]] && pid=${PID[$fe]}
	client_cmd "$sc" "$fe" "$cl" "$DURATION"
	[[ $sc == h1-busy ]] && start_burn
	[[ -n $pid ]] && t0=$(cpu_ticks "$pid")
	local rps reqs p50 p99 non2xx sockerr
	run_fg "${CMD[@]}" >"$out" 2>&1 || warn "$sc $fe: $cl failed: $(tail -3 "$out")"
	if [[ -n $pid ]]; then
		t1=$(cpu_ticks "$pid")
		rss=$(awk -v k="$(rss_kib "$pid")" 'BEGIN {printf "%.1f", k / 1024}')
	fi
	if [[ $sc == h1-busy ]]; then
		stop burn
		busy=$(sed -n 's/.*(\([0-9.]*\) CPUs).*/\1/p' "$TMP/burn.log")
		cp "$TMP/burn.log" "$out.burn"
	fi
	case $cl in
	wrk)
		rps=$(awk '/^Requests\/sec:/ {print $2}' "$out")
		reqs=$(awk '/ requests in / {print $1}' "$out")
		p50=$(to_ms "$(awk '$1 == "50%" {print $2}' "$out")")
		p99=$(to_ms "$(awk '$1 == "99%" {print $2}' "$out")")
		non2xx=$(awk -F': *' '/Non-2xx or 3xx responses/ {print $2}' "$out")
		sockerr=$(awk '/Socket errors:/ {gsub(/,/, ""); print $4 + $6 + $8 + $10}' "$out")
		;;
	closedloop)
		# "N requests, X req/s, p50 a ms, p90 b ms, p99 c ms, p99.9 d ms, non-2xx e, errors f"
		read -r reqs rps p50 p99 non2xx sockerr < <(awk '/ requests, / {
			gsub(/,/, "")
			for (i = 1; i < NF; i++) {
				if ($(i + 1) == "requests") n = $i
				if ($(i + 1) == "req/s") r = $i
				if ($i == "p50") a = $(i + 1)
				if ($i == "p99") c = $(i + 1)
				if ($i == "non-2xx") e = $(i + 1)
				if ($i == "errors") f = $(i + 1)
			}
			print n, r, a, c, e, f
		}' "$out") || true
		;;
	h2load)
		# h2load gives no percentiles: the p50 and p99 columns hold the
		# mean and the max of "time for request".
		local proto want=h2
		[[ $sc == h2c ]] && want=h2c
		# h2load's threads print their own lines ("Main benchmark duration
		# is started for thread #1.") into the main thread's, even between
		# "Application protocol:" and the protocol: joined and without them.
		proto=$(tr '\n' ' ' <"$out" | sed -E 's/(Warm-up|Main benchmark|Stopped)[^#]*#[0-9]+\.( Stopping all clients\.)?//g' |
			grep -oE 'Application protocol: *[^ ]+' | head -1 | awk '{print $3}') || true
		if [[ $proto != "$want" ]]; then
			warn "round $round $sc $fe: h2load negotiated '${proto:-nothing}', not $want: $(tail -3 "$out")"
			FAILED+=("$fe")
			return 0
		fi
		rps=$(awk '/^finished in/ {gsub(/,/, ""); print $4}' "$out")
		# "requests: T total, S started, D done, OK succeeded, F failed, E errored, T timeout";
		# status codes count a few streams still open at the end as well.
		reqs=$(awk '/^requests:/ {gsub(/,/, ""); print $6}' "$out")
		non2xx=$(awk '/^status codes:/ {gsub(/,/, ""); print $5 + $7 + $9}' "$out")
		# h2load counts a 4xx or 5xx answer as failed: errors are the rest.
		sockerr=$(awk '/^status codes:/ {gsub(/,/, ""); bad = $7 + $9} /^requests:/ {gsub(/,/, ""); f = $10; e = $12 + $14}
			END {f -= bad; print (f > 0 ? f : 0) + e}' "$out")
		p50=$(to_ms "$(awk '/^time for request:/ {print $6}' "$out")")
		p99=$(to_ms "$(awk '/^time for request:/ {print $5}' "$out")")
		;;
	esac
	rps=${rps:-0} reqs=${reqs:-0} p50=${p50:-nan} p99=${p99:-nan} non2xx=${non2xx:-0} sockerr=${sockerr:-0}
	if [[ -n $pid && $reqs -gt 0 ]]; then
		cpu=$(awk -v d=$((t1 - t0)) -v hz="$CLK_TCK" -v n="$reqs" 'BEGIN {printf "%.1f", d / hz * 1e6 / n}')
	fi
	if [[ $reqs == 0 ]]; then
		warn "round $round/$ROUNDS $sc $fe ($cl): no requests completed: $(tail -5 "$out")"
		FAILED+=("$fe")
	else
		printf '%s %s %s %s %s %s %s %s %s %s %s\n' "$round" "$fe" "$rps" "$p50" "$p99" "$non2xx" "$sockerr" "$reqs" "$cpu" "$rss" "$sc/$cl" >>"$RESULTS"
		local l1=p50 l2=p99
		[[ $cl == h2load ]] && l1=mean l2=max
		printf 'round %d/%d  %-11s %-10s %-8s %9.0f req/s  %-4s %7.2f ms  %-4s %7.2f ms  non-2xx %-6s errors %-4s CPU %6s µs/req  RSS %6s MiB%s\n' \
			"$round" "$ROUNDS" "$sc" "$cl" "$fe" "$rps" "$l1" "$p50" "$l2" "$p99" "$non2xx" "$sockerr" "$cpu" "$rss" "${busy:+  burn ${busy} CPUs}"
	fi
	if [[ -n $pid ]] && ! alive "$pid"; then
		warn "$fe died during the run"
		FAILED+=("$fe")
	fi
	backends_alive
}

median() { # KEY FE COLUMN: median over rounds, "-" when there is no value
	awk -v k="$1" -v fe="$2" -v c="$3" '$11 == k && $2 == fe && $c != "-" && $c != "nan" {print $c}' "$RESULTS" | sort -g | awk '
		{ a[NR] = $1 }
		END { if (NR == 0) print "-"; else if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2 }'
}

ratio() { # A B -> A/B as 0.93×
	awk -v a="$1" -v b="$2" 'BEGIN { if (a == "-" || b == "-" || b + 0 == 0) print "-"; else printf "%.2f×", a / b }'
}

fmt() { # FORMAT VALUE, "-" stays "-"
	if [[ $2 == - ]]; then echo -; else awk -v f="$1" -v v="$2" 'BEGIN {printf f, v}'; fi
}

has_run() { # KEY FE
	awk -v k="$1" -v fe="$2" '$11 == k && $2 == fe {f = 1} END {exit !f}' "$RESULTS"
}

# scen_title SCEN CLIENT: the line above a scenario's table.
scen_title() {
	local sc=$1 cl=$2 load what
	case $cl in
	wrk)
		local c=$CONNS
		[[ $sc == https-close ]] && c=$CLOSE_CONNS
		load="wrk -t$THREADS -c$c -d$DURATION --latency"
		;;
	closedloop) load="bench/closedloop -c $CONNS -d $DURATION" ;;
	h2load) load="h2load -t$((THREADS < H2_CONNS ? THREADS : H2_CONNS)) -c$H2_CONNS -m$H2_STREAMS -D $DURATION" ;;
	esac
	case $sc in
	h1) what="HTTP/1.1 cleartext, $SESSIONS sticky sessions" ;;
	h1-busy) what="HTTP/1.1 cleartext, $SESSIONS sticky sessions, beside bench/burn spinning $BUSY_THREADS threads" ;;
	https) what="HTTPS HTTP/1.1, one sticky session" ;;
	https-new) what="HTTPS HTTP/1.1, no cookie kept: a new session per request" ;;
	https-close) what="HTTPS HTTP/1.1, Connection: close: a full TLS handshake per request, one sticky session" ;;
	h2) what="HTTP/2 over TLS (ALPN h2), one sticky session" ;;
	h2c) what="h2c (prior knowledge), one sticky session" ;;
	esac
	echo "Load $sc: $load, $what, 3 backends; median of $ROUNDS interleaved rounds"
}

print_load_table() {
	local sc cl fe key hrps hp99 hcpu rps p50 p99 cpu rss l1=p50 l2=p99
	for sc in "${SCENS[@]}"; do
		for cl in $(scen_clients "$sc"); do
			key=$sc/$cl
			hrps=- hp99=- hcpu=-
			if has_run "$key" haproxy; then
				hrps=$(median "$key" haproxy 3) hp99=$(median "$key" haproxy 5) hcpu=$(median "$key" haproxy 9)
			fi
			l1=p50 l2=p99
			[[ $cl == h2load ]] && l1=mean l2=max
			say
			say "$(scen_title "$sc" "$cl")"
			say
			say "| front end | req/s | $l1 ms | $l2 ms | CPU µs/req | RSS MiB | req/s vs HAProxy | $l2 vs HAProxy | CPU vs HAProxy |"
			say "|---|--:|--:|--:|--:|--:|--:|--:|--:|"
			for fe in "${FES[@]}"; do
				[[ $fe == direct && $sc != h1 && $sc != h1-busy ]] && continue
				has_run "$key" "$fe" || { say "| $fe | failed | | | | | | | |"; continue; }
				rps=$(median "$key" "$fe" 3) p50=$(median "$key" "$fe" 4) p99=$(median "$key" "$fe" 5) cpu=$(median "$key" "$fe" 9) rss=$(median "$key" "$fe" 10)
				say "| $fe | $(fmt %.0f "$rps") | $(fmt %.2f "$p50") | $(fmt %.2f "$p99") | $(fmt %.1f "$cpu") | $(fmt %.1f "$rss") | $(ratio "$rps" "$hrps") | $(ratio "$p99" "$hp99") | $(ratio "$cpu" "$hcpu") |"
			done
		done
	done
	print_summary
	say
	local n s held
	for fe in "${FES[@]}"; do
		[[ $fe == direct ]] && continue
		if ! grep -q " $fe " "$RESULTS"; then
			say "$fe: failed to start"
			continue
		fi
		# https-new carries no session: its answers say nothing of stickiness.
		n=$(awk -v fe="$fe" '$2 == fe && $11 !~ /^https-new\// {s += $6} END {print s + 0}' "$RESULTS")
		s=$(awk -v fe="$fe" '$2 == fe && $11 !~ /^https-new\// {s += $7} END {print s + 0}' "$RESULTS")
		held=yes
		if ((n > 0)); then
			held=no
			BROKEN+=("$fe")
		fi
		say "$fe: stickiness held: $held ($n non-2xx, $s socket errors, all sticky scenarios, clients and rounds)"
	done
}

# print_summary: one row per scenario and load generator, the proxies'
# req/s and CPU per request side by side, as issue tables give them.
print_summary() {
	local pxs=() vs=() fe sc cl key row hdr sep rps cpu
	for fe in "${FES[@]}"; do [[ $fe == direct ]] || pxs+=("$fe"); done
	((${#pxs[@]})) || return 0
	# The front ends whose req/s is also given as a ratio to HAProxy's.
	if [[ " ${pxs[*]} " == *" haproxy "* ]]; then
		for fe in latch haproxy-again haproxy-indirect; do
			[[ " ${pxs[*]} " == *" $fe "* ]] && vs+=("$fe")
		done
	fi
	say
	say "Summary: median req/s and proxy CPU µs per request, each scenario"
	say
	hdr="| scenario | client |" sep="|---|---|"
	for fe in "${pxs[@]}"; do hdr+=" $fe req/s |" sep+="--:|"; done
	for fe in "${vs[@]}"; do
		case $fe in haproxy-again) hdr+=" HAProxy again/HAProxy |" ;; *) hdr+=" $fe/HAProxy |" ;; esac
		sep+="--:|"
	done
	for fe in "${pxs[@]}"; do hdr+=" $fe CPU µs/req |" sep+="--:|"; done
	[[ " ${pxs[*]} " == *" haproxy "* && " ${pxs[*]} " == *" latch "* ]] && hdr+=" latch/HAProxy CPU |" sep+="--:|"
	say "$hdr"
	say "$sep"
	for sc in "${SCENS[@]}"; do
		for cl in $(scen_clients "$sc"); do
			key=$sc/$cl
			row="| $sc | $cl |"
			for fe in "${pxs[@]}"; do row+=" $(fmt %.0f "$(median "$key" "$fe" 3)") |"; done
			for fe in "${vs[@]}"; do row+=" $(ratio "$(median "$key" "$fe" 3)" "$(median "$key" haproxy 3)") |"; done
			for fe in "${pxs[@]}"; do row+=" $(fmt %.1f "$(median "$key" "$fe" 9)") |"; done
			[[ " ${pxs[*]} " == *" haproxy "* && " ${pxs[*]} " == *" latch "* ]] && row+=" $(ratio "$(median "$key" latch 9)" "$(median "$key" haproxy 9)") |"
			say "$row"
		done
	done
}

# ========================================================= idle connections
IDLE_TABLE=()

# idle_url PROTO NAME: where idleconns connects for PROTO.
idle_url() {
	case $1 in
	h1) echo "http://$HOST:${P_H1[$2]}/" ;;
	https | h2) echo "https://$HOST:${P_TLS[$2]}/" ;;
	h2c) echo "http://$HOST:${P_H2C[$2]}/" ;;
	esac
}

idle_phase() {
	say
	say "== idle: memory of each proxy with $IDLE_CONNS idle client connections (one GET each), protocols ${IDLE_PRS[*]}"
	(cd "$REPO" && go build -o "$TMP/bin/idleconns" ./bench/idleconns) || die "bench/idleconns did not build"
	if ((IDLE_CONNS + 1000 > NOFILE)); then
		warn "ulimit -n is $NOFILE (raise it to $((IDLE_CONNS + 1000)) or more for $IDLE_CONNS connections): measuring $((NOFILE - 1000))"
		IDLE_CONNS=$((NOFILE - 1000))
	fi
	local pr fe name before with log opened closed i ready url iproto
	for pr in "${IDLE_PRS[@]}"; do
		for fe in "${IDLE_FES[@]}"; do
			backends_alive
			name=idle-$pr-$fe
			if ! start_frontend "$fe" "$name" idle; then
				warn "$fe failed to start for the idle measurement"
				FAILED+=("$fe")
				stop "$name"
				IDLE_TABLE+=("| $pr | $fe | failed | | | |")
				continue
			fi
			url=$(idle_url "$pr" "$name")
			# Warm up: a short load of the same protocol, so pools, buffers,
			# TLS state and the backend connections exist.
			case $pr in
			h1 | https) run_fg wrk -t1 -c8 -d1s "$url" >"$TMP/$name-warm.txt" 2>&1 || true ;;
			h2 | h2c) run_fg h2load -t1 -c8 -m8 -D 1s "$url" >"$TMP/$name-warm.txt" 2>&1 || true ;;
			esac
			sleep 1
			before=$(rss_kib "${PID[$name]}")
			log=$TMP/$name-idleconns.log
			iproto=h1
			[[ $pr == h2 || $pr == h2c ]] && iproto=h2
			start "idleconns-$name" "$log" "$TMP/bin/idleconns" -n "$IDLE_CONNS" -url "$url" -proto "$iproto" -hold 10m
			ready=0
			for ((i = 0; i < 1800; i++)); do
				grep -qs 'ready:' "$log" && { ready=1; break; }
				alive "${PID[idleconns-$name]}" || break
				sleep 0.1
			done
			if ((!ready)); then
				cat "$log" >&2
				warn "$fe: the idle $pr connections were not opened"
				FAILED+=("$fe")
				stop "idleconns-$name"
				stop "$name"
				IDLE_TABLE+=("| $pr | $fe | failed | | | |")
				continue
			fi
			sleep 2 # let the proxy settle (Go's GC, HAProxy's pools)
			with=$(rss_kib "${PID[$name]}")
			say "  $pr $fe: $(grep 'ready:' "$log" | sed 's/^idleconns: //')"
			opened=$(awk '/ready:/ {print $3}' "$log")
			stop "idleconns-$name"
			closed=$(sed -n 's/.*done: .*, \([0-9]*\) had been closed by the server.*/\1/p' "$log")
			((${closed:-0} == 0)) || warn "$fe closed $closed idle $pr connections before the tool did"
			stop "$name"
			say "  $pr $fe: RSS $(fmt %.1f "$(awk -v k="$before" 'BEGIN {print k / 1024}')") MiB before, $(fmt %.1f "$(awk -v k="$with" 'BEGIN {print k / 1024}')") MiB with $opened idle connections"
			IDLE_TABLE+=("| $pr | $fe | $(awk -v k="$before" 'BEGIN {printf "%.1f", k / 1024}') | $(awk -v k="$with" 'BEGIN {printf "%.1f", k / 1024}') | $(awk -v a="$before" -v b="$with" 'BEGIN {printf "%.1f", (b - a) / 1024}') | $(awk -v a="$before" -v b="$with" -v n="$opened" 'BEGIN {printf "%.1f", (b - a) / n}') |")
		done
	done
}

print_idle_table() {
	say
	say "Idle: $IDLE_CONNS client connections, each used for one GET, then held open (h1: HTTP/1.1; https: HTTP/1.1 over TLS; h2: HTTP/2 over TLS; h2c: HTTP/2 cleartext)"
	say
	say "| protocol | proxy | RSS before MiB | RSS with $IDLE_CONNS idle MiB | growth MiB | KiB per connection |"
	say "|---|---|--:|--:|--:|--:|"
	local row
	for row in "${IDLE_TABLE[@]}"; do say "$row"; done
}

# ================================================================== main
# Everything is in functions, read before any runs: editing this file
# while it runs does not break the run.
main() {
	say "latch benchmark kit: temp dir $TMP, ulimit -n $NOFILE"
	make_cert
	start_backends
	if [[ $MODE != idle ]]; then
		load_phase
	fi
	if [[ $MODE != load ]]; then
		idle_phase
	fi

	say
	say "## Results"
	say
	print_header
	say "setup:     the load generator, the proxy and 3 nginx backends share the same $(nproc) vCPUs; everything on 127.0.0.1"
	[[ $MODE != idle ]] && print_load_table
	[[ $MODE != load ]] && print_idle_table

	status=0
	if ((${#FAILED[@]})); then
		say
		say "FAILED to start or died: $(printf '%s\n' "${FAILED[@]}" | sort -u | tr '\n' ' ')"
		status=1
	fi
	if ((${#BROKEN[@]})); then
		say "STICKINESS BROKE: ${BROKEN[*]}"
		status=1
	fi
	exit "$status"
}

main
