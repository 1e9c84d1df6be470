#!/usr/bin/env bash
# slurm.sh: a real single-node Slurm cluster on 127.0.0.1 for tests (Debian's slurm-wlm).
#
#   scripts/slurm.sh install          install slurmctld, slurmd, slurm-client and munge (apt)
#   scripts/slurm.sh start DIR [ENV]  start munged, slurmctld and slurmd with everything under DIR
#                                     (own munge key and socket, own ports, own state), wait until
#                                     the node is idle, and write ENV (default DIR/slurm.env)
#   scripts/slurm.sh stop DIR|ENV     stop every daemon started for DIR and wait for them to exit;
#                                     succeeds if none is running
#
# The env file sets SLURM_CONF (which sbatch, squeue, scontrol and scancel read) and
# FLIGHTBATCH_TEST_SLURM=1, one `export NAME=value` a line. `start` prints the env file's path
# on stdout and logs on stderr; the daemons log to DIR/log.
#
# The daemons run as root (slurmd must, to start jobs): as root directly, otherwise with sudo.
# The scheduler is tuned for tests: tasks start at once (batch_sched_delay=0,
# sched_min_interval=0), a requeued task waits about cred_expire (5 s, its least; default 120 s) before it
# runs again, and finished tasks stay visible to squeue/scontrol for MinJobAge (1 h).
set -euo pipefail

PACKAGES=(slurmctld slurmd slurm-client munge)

log() { echo "slurm: $*" >&2; }
die() { log "$*"; exit 1; }

SUDO=()
[[ "$(id -u)" -eq 0 ]] || SUDO=(sudo -n)

have_all() {
	command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v sbatch >/dev/null &&
		command -v munged >/dev/null
}

install() {
	have_all && return 0
	log "installing ${PACKAGES[*]}"
	"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
	"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${PACKAGES[@]}" >&2
	have_all || die "the Slurm packages are still missing after apt-get"
}

free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

write_conf() {
	local dir="$1" host="$2" ctld_port="$3" slurmd_port="$4"
	local cpus mem
	cpus="$(nproc)"
	mem=$(($(awk '/^MemTotal:/ {print $2}' /proc/meminfo) / 1024 / 2))
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
AccountingStorageType=accounting_storage/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
# start queued tasks at once (defaults: batch_sched_delay=3 s, one wave every 3 s)
SchedulerParameters=batch_sched_delay=0,sched_min_interval=0,sched_interval=2
MpiDefault=none
ReturnToService=2
MinJobAge=3600
KillWait=2
SlurmdTimeout=30
InactiveLimit=0
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
}

# pids prints the pids recorded for DIR, one a line.
pids() {
	local dir="$1" f
	for f in "$dir/run/slurmd.pid" "$dir/run/slurmctld.pid" "$dir/munge/munged.pid"; do
		[[ -s "$f" ]] && cat "$f"
	done
	return 0
}

start() {
	local dir="${1:?usage: slurm.sh start DIR [ENV]}"
	mkdir -p "$dir"
	dir="$(cd "$dir" && pwd)"
	local env_file="${2:-$dir/slurm.env}"
	local p
	for p in $(pids "$dir"); do
		kill -0 "$p" 2>/dev/null && die "a daemon (pid $p) is already running for $dir; stop it first"
	done
	install
	local t0=$SECONDS host ctld_port slurmd_port
	host="$(hostname -s)"
	ctld_port="$(free_port)"
	slurmd_port="$(free_port)"
	[[ "$ctld_port" != "$slurmd_port" ]] || slurmd_port="$(free_port)"
	"${SUDO[@]}" mkdir -p "$dir"/{state,spool,log,run,munge}
	"${SUDO[@]}" chown munge:munge "$dir/munge"
	"${SUDO[@]}" chmod 0755 "$dir" "$dir/munge" # munged wants the socket's directory searchable by all
	if ! "${SUDO[@]}" test -s "$dir/munge/munge.key"; then
		"${SUDO[@]}" dd if=/dev/urandom of="$dir/munge/munge.key" bs=1024 count=1 status=none
		"${SUDO[@]}" chown munge:munge "$dir/munge/munge.key"
		"${SUDO[@]}" chmod 0400 "$dir/munge/munge.key"
	fi
	write_conf "$dir" "$host" "$ctld_port" "$slurmd_port"
	export SLURM_CONF="$dir/slurm.conf"
	"${SUDO[@]}" runuser -u munge -- /usr/sbin/munged --key-file="$dir/munge/munge.key" \
		--socket="$dir/munge/munge.socket" --pid-file="$dir/munge/munged.pid" \
		--log-file="$dir/munge/munged.log" --seed-file="$dir/munge/munged.seed"
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
		stop "$dir" >/dev/null 2>&1 || true
		exit 1
	fi
	local tmp="$env_file.tmp.$$"
	cat >"$tmp" <<ENV
export SLURM_CONF=$SLURM_CONF
export FLIGHTBATCH_TEST_SLURM=1
ENV
	mv "$tmp" "$env_file"
	log "up in $((SECONDS - t0)) s: slurmctld on 127.0.0.1:$ctld_port, slurmd on :$slurmd_port, state in $dir"
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
	"${SUDO[@]}" rm -f "$dir/run/slurmd.pid" "$dir/run/slurmctld.pid" "$dir/munge/munged.pid"
}

case "${1:-}" in
install) install ;;
start) shift; start "$@" ;;
stop) shift; stop "$@" ;;
*) die "usage: $0 install | start DIR [ENV] | stop DIR|ENV" ;;
esac
