#!/usr/bin/env bash
# slurm.sh: a real single-node Slurm cluster on 127.0.0.1 for tests (Debian's slurm-wlm).
#
#   scripts/slurm.sh install [--accounting]          install slurmctld, slurmd, slurm-client and
#                                                     munge (apt); with --accounting also
#                                                     mariadb-server and slurmdbd
#   scripts/slurm.sh start [--accounting] DIR [ENV]  start munged, slurmctld and slurmd with
#                                     everything under DIR (own munge key and socket, own ports,
#                                     own state), wait until the node is idle, and write ENV
#                                     (default DIR/slurm.env); with --accounting, MariaDB and
#                                     slurmdbd first (data under DIR/mysql), so that sacct works
#   scripts/slurm.sh stop DIR|ENV     stop every daemon started for DIR and wait for them to exit;
#                                     succeeds if none is running
#
# The env file sets SLURM_CONF (which sbatch, squeue, scontrol, scancel and sacct read),
# FLIGHTBATCH_TEST_SLURM=1 and, with accounting, FLIGHTBATCH_TEST_SLURM_ACCOUNTING=1, one
# `export NAME=value` a line. `start` prints the env file's path on stdout and logs on stderr;
# the daemons log to DIR/log (MariaDB to DIR/mysql/error.log).
#
# The daemons run as root (slurmd must, to start jobs): as root directly, otherwise with sudo.
# The scheduler is tuned for tests: tasks start at once (batch_sched_delay=0,
# sched_min_interval=0), a requeued task waits about cred_expire (5 s, its least; default 120 s) before it
# runs again, and finished tasks stay visible to squeue/scontrol for MinJobAge: 1 h, or with
# accounting 10 s (then sacct alone knows them; slurmctld purges them at its next purge, so 10 to
# 20 s after they end: 50 polls of a test's executor at 200 ms, slack enough on a loaded machine).
set -euo pipefail

PACKAGES=(slurmctld slurmd slurm-client munge)
ACCOUNTING_PACKAGES=(mariadb-server slurmdbd)
ACCOUNTING=0

log() { echo "slurm: $*" >&2; }
die() { log "$*"; exit 1; }

SUDO=()
[[ "$(id -u)" -eq 0 ]] || SUDO=(sudo -n)

have_all() {
	command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v sbatch >/dev/null &&
		command -v munged >/dev/null
}

have_accounting() {
	command -v slurmdbd >/dev/null && command -v mariadbd >/dev/null &&
		command -v mariadb-install-db >/dev/null && command -v sacctmgr >/dev/null
}

install() {
	local want=()
	have_all || want+=("${PACKAGES[@]}")
	if [[ "$ACCOUNTING" == 1 ]] && ! have_accounting; then want+=("${ACCOUNTING_PACKAGES[@]}"); fi
	[[ ${#want[@]} -gt 0 ]] || return 0
	log "installing ${want[*]}"
	"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
	"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${want[@]}" >&2
	have_all || die "the Slurm packages are still missing after apt-get"
	if [[ "$ACCOUNTING" == 1 ]] && ! have_accounting; then die "MariaDB or slurmdbd is still missing after apt-get"; fi
	return 0
}

free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

write_conf() {
	local dir="$1" host="$2" ctld_port="$3" slurmd_port="$4" dbd_port="${5:-}"
	local cpus mem acct="AccountingStorageType=accounting_storage/none" min_job_age=3600
	cpus="$(nproc)"
	mem=$(($(awk '/^MemTotal:/ {print $2}' /proc/meminfo) / 1024 / 2))
	if [[ -n "$dbd_port" ]]; then
		acct="AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
AccountingStoragePort=$dbd_port
# the munge socket of connections to slurmdbd (default: the system's)
AccountingStoragePass=$dir/munge/munge.socket"
		# sacct keeps what the controller forgets: forgetting soon lets tests see it read.
		min_job_age=10
	fi
	cat >"$dir/slurm.conf" <<EOF
# A single-node test cluster written by scripts/slurm.sh; loopback only.
ClusterName=flightbatch
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$ctld_port
SlurmdPort=$slurmd_port
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
# cred_expire also delays a requeued task (default 120 s)
AuthInfo=socket=$dir/munge/munge.socket,cred_expire=5
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/run/slurmctld.pid
SlurmdPidFile=$dir/run/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
$acct
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
# start queued tasks at once (defaults: batch_sched_delay=3 s, one wave every 3 s)
SchedulerParameters=batch_sched_delay=0,sched_min_interval=0,sched_interval=2
MpiDefault=none
ReturnToService=2
# finished tasks stay visible to squeue/scontrol this long (seconds), and then up to ~10 s more
MinJobAge=$min_job_age
KillWait=2
SlurmdTimeout=30
InactiveLimit=0
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
}

# as_root runs a command as root with the cluster's SLURM_CONF.
as_root() { "${SUDO[@]}" env SLURM_CONF="$SLURM_CONF" "$@"; }

# start_accounting starts MariaDB (its data under DIR/mysql, on a free port of 127.0.0.1) and
# slurmdbd on 127.0.0.1:DBD_PORT, and registers the cluster and the invoking user. munged runs.
start_accounting() {
	local dir="$1" dbd_port="$2" m="$1/mysql" db_port i
	db_port="$(free_port)"
	# MariaDB's temporary files go under DIR too: two clusters installing their databases at
	# once in the same tmpdir collide on temporary table names ("Unknown table
	# 'mysql.tmp_proxies_priv'"), and scripts/test.sh starts two clusters at once.
	"${SUDO[@]}" mkdir -p "$m/tmp"
	"${SUDO[@]}" chown mysql:mysql "$m" "$m/tmp"
	if ! "${SUDO[@]}" test -d "$m/data/mysql"; then
		"${SUDO[@]}" mariadb-install-db --user=mysql --datadir="$m/data" --tmpdir="$m/tmp" --skip-test-db \
			--auth-root-authentication-method=socket >"$dir/log/mariadb-install.log" 2>&1 ||
			{ tail -n 5 "$dir/log/mariadb-install.log" >&2; die "mariadb-install-db failed"; }
	fi
	# Durability traded for speed: the database lives as long as the test cluster.
	"${SUDO[@]}" setsid mariadbd --user=mysql --datadir="$m/data" --tmpdir="$m/tmp" --socket="$m/mysqld.sock" \
		--pid-file="$m/mysqld.pid" --port="$db_port" --bind-address=127.0.0.1 --log-error="$m/error.log" \
		--innodb-buffer-pool-size=64M --innodb-log-file-size=16M --innodb-flush-log-at-trx-commit=0 \
		--innodb-doublewrite=0 --skip-log-bin --performance-schema=0 \
		</dev/null >/dev/null 2>&1 &
	for i in $(seq 1 300); do
		"${SUDO[@]}" mariadb -S "$m/mysqld.sock" -e 'select 1' >/dev/null 2>&1 && break
		sleep 0.1
	done
	"${SUDO[@]}" mariadb -S "$m/mysqld.sock" -e "CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY 'slurm';
		GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1'; FLUSH PRIVILEGES;" ||
		{ tail -n 5 "$m/error.log" >&2; die "MariaDB did not start; see $m/error.log"; }
	local tmp="$dir/slurmdbd.conf.tmp.$$"
	cat >"$tmp" <<EOF
# The slurmdbd of the test cluster, written by scripts/slurm.sh; loopback only.
AuthType=auth/munge
AuthInfo=socket=$dir/munge/munge.socket
DbdAddr=127.0.0.1
DbdHost=localhost
DbdPort=$dbd_port
SlurmUser=root
LogFile=$dir/log/slurmdbd.log
PidFile=$dir/run/slurmdbd.pid
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$db_port
StorageUser=slurm
StoragePass=slurm
StorageLoc=slurm_acct_db
EOF
	# slurmdbd wants its file private to SlurmUser, next to slurm.conf.
	"${SUDO[@]}" env install -m 0600 -o root "$tmp" "$dir/slurmdbd.conf" # the program, not the function
	rm -f "$tmp"
	as_root /usr/sbin/slurmdbd # daemonizes; pid file in DIR/run
	for i in $(seq 1 300); do
		sacctmgr -n list cluster >/dev/null 2>&1 && break
		sleep 0.1
	done
	sacctmgr -n list cluster >/dev/null 2>&1 ||
		{ tail -n 5 "$dir/log/slurmdbd.log" >&2; die "slurmdbd did not start; see $dir/log/slurmdbd.log"; }
	as_root sacctmgr -i add cluster flightbatch >/dev/null
	if [[ "$(id -u)" -ne 0 ]]; then
		as_root sacctmgr -i add user "$(id -un)" account=root >/dev/null
	fi
}

# pids prints the pids recorded for DIR, one a line, in the order to stop them.
pids() {
	local dir="$1" f
	for f in "$dir/run/slurmd.pid" "$dir/run/slurmctld.pid" "$dir/run/slurmdbd.pid" \
		"$dir/mysql/mysqld.pid" "$dir/munge/munged.pid"; do
		"${SUDO[@]}" test -s "$f" && "${SUDO[@]}" cat "$f"
	done
	return 0
}

start() {
	if [[ "${1:-}" == --accounting ]]; then
		ACCOUNTING=1
		shift
	fi
	local dir="${1:?usage: slurm.sh start [--accounting] DIR [ENV]}"
	mkdir -p "$dir"
	dir="$(cd "$dir" && pwd)"
	local env_file="${2:-$dir/slurm.env}"
	local p
	for p in $(pids "$dir"); do
		kill -0 "$p" 2>/dev/null && die "a daemon (pid $p) is already running for $dir; stop it first"
	done
	install
	local t0=$SECONDS host ctld_port slurmd_port dbd_port=""
	host="$(hostname -s)"
	ctld_port="$(free_port)"
	slurmd_port="$(free_port)"
	[[ "$ctld_port" != "$slurmd_port" ]] || slurmd_port="$(free_port)"
	if [[ "$ACCOUNTING" == 1 ]]; then
		dbd_port="$(free_port)"
		while [[ "$dbd_port" == "$ctld_port" || "$dbd_port" == "$slurmd_port" ]]; do dbd_port="$(free_port)"; done
	fi
	# A start that fails half-way stops what it started.
	# shellcheck disable=SC2064
	trap "stop '$dir' >/dev/null 2>&1 || true" EXIT
	"${SUDO[@]}" mkdir -p "$dir"/{state,spool,log,run,munge}
	"${SUDO[@]}" chown munge:munge "$dir/munge"
	"${SUDO[@]}" chmod 0755 "$dir" "$dir/munge" # munged wants the socket's directory searchable by all
	if ! "${SUDO[@]}" test -s "$dir/munge/munge.key"; then
		"${SUDO[@]}" dd if=/dev/urandom of="$dir/munge/munge.key" bs=1024 count=1 status=none
		"${SUDO[@]}" chown munge:munge "$dir/munge/munge.key"
		"${SUDO[@]}" chmod 0400 "$dir/munge/munge.key"
	fi
	write_conf "$dir" "$host" "$ctld_port" "$slurmd_port" "$dbd_port"
	export SLURM_CONF="$dir/slurm.conf"
	"${SUDO[@]}" runuser -u munge -- /usr/sbin/munged --key-file="$dir/munge/munge.key" \
		--socket="$dir/munge/munge.socket" --pid-file="$dir/munge/munged.pid" \
		--log-file="$dir/munge/munged.log" --seed-file="$dir/munge/munged.seed"
	if [[ "$ACCOUNTING" == 1 ]]; then start_accounting "$dir" "$dbd_port"; fi
	"${SUDO[@]}" /usr/sbin/slurmctld -f "$SLURM_CONF" # daemonizes; pid file in DIR/run
	"${SUDO[@]}" /usr/sbin/slurmd -f "$SLURM_CONF"
	local state="" i
	for i in $(seq 1 200); do
		state="$(sinfo -h -n "$host" -o %t 2>/dev/null || true)"
		[[ "$state" == idle ]] && break
		sleep 0.1
	done
	if [[ "$state" != idle ]]; then
		log "node state '$state' after 20 s; see $dir/log"
		tail -n 5 "$dir"/log/*.log >&2 || true
		exit 1
	fi
	trap - EXIT
	local tmp="$env_file.tmp.$$"
	cat >"$tmp" <<ENV
export SLURM_CONF=$SLURM_CONF
export FLIGHTBATCH_TEST_SLURM=1
ENV
	if [[ "$ACCOUNTING" == 1 ]]; then echo "export FLIGHTBATCH_TEST_SLURM_ACCOUNTING=1" >>"$tmp"; fi
	mv "$tmp" "$env_file"
	log "up in $((SECONDS - t0)) s: slurmctld on 127.0.0.1:$ctld_port, slurmd on :$slurmd_port${dbd_port:+, slurmdbd on :$dbd_port}, state in $dir"
	echo "$env_file"
}

stop() {
	local arg="${1:?usage: slurm.sh stop DIR|ENV}" dir
	dir="$arg"
	[[ -f "$arg" ]] && dir="$(dirname "$(sed -n 's/^export SLURM_CONF=//p' "$arg")")"
	[[ -d "$dir" ]] || { log "no directory $dir: nothing to stop"; return 0; }
	local p i
	# Jobs first, so that no slurmstepd outlives the cluster.
	if [[ -f "$dir/slurm.conf" && -s "$dir/run/slurmctld.pid" ]]; then
		SLURM_CONF="$dir/slurm.conf" timeout 5 scancel --full --quiet --user="$(id -un)" 2>/dev/null || true
	fi
	for p in $(pids "$dir"); do
		"${SUDO[@]}" kill "$p" 2>/dev/null || continue
		for i in $(seq 1 100); do
			kill -0 "$p" 2>/dev/null || break
			sleep 0.05
		done
		if kill -0 "$p" 2>/dev/null; then
			log "pid $p still running after 5 s; killing it"
			"${SUDO[@]}" kill -9 "$p" 2>/dev/null || true
			while kill -0 "$p" 2>/dev/null; do sleep 0.05; done
		fi
		log "stopped pid $p"
	done
	"${SUDO[@]}" rm -f "$dir/run/slurmd.pid" "$dir/run/slurmctld.pid" "$dir/run/slurmdbd.pid" \
		"$dir/mysql/mysqld.pid" "$dir/munge/munged.pid"
}

case "${1:-}" in
install)
	[[ "${2:-}" == --accounting ]] && ACCOUNTING=1
	install
	;;
start) shift; start "$@" ;;
stop) shift; stop "$@" ;;
*) die "usage: $0 install [--accounting] | start [--accounting] DIR [ENV] | stop DIR|ENV" ;;
esac
