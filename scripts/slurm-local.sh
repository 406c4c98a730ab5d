#!/usr/bin/env bash
# Start (or stop) a real single-node Slurm cluster on this machine, for the Slurm executor's test.
#   scripts/slurm-local.sh start   # installs slurm-wlm and munge from Debian if missing (root)
#   scripts/slurm-local.sh stop
# State lives under $SLURM_LOCAL_DIR (default /tmp/mem2gen-slurm). Prints "slurm ready" on success.
set -euo pipefail
DIR=${SLURM_LOCAL_DIR:-/tmp/mem2gen-slurm}
cmd=${1:-start}

stop() {
  for f in "$DIR"/slurmd.pid "$DIR"/slurmctld.pid; do
    [ -f "$f" ] && kill "$(cat "$f")" 2>/dev/null || true
  done
  pkill -u munge munged 2>/dev/null || true
}

if [ "$cmd" = stop ]; then stop; exit 0; fi

if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurm-wlm munge >/dev/null
fi
stop
mkdir -p "$DIR"/{state,spool,log} /etc/slurm /run/munge /var/log/munge /var/lib/munge /etc/munge
if [ ! -s /etc/munge/munge.key ]; then
  dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
fi
chown -R munge:munge /etc/munge /run/munge /var/log/munge /var/lib/munge
chmod 400 /etc/munge/munge.key
su -s /bin/sh munge -c "munged --force" 2>/dev/null || runuser -u munge -- munged --force
munge -n | unmunge | grep -q "STATUS: *Success"

host=$(hostname -s)
mem=$(awk '/MemTotal/ {print int($2/1024*0.8)}' /proc/meminfo)
cat > /etc/slurm/slurm.conf <<CONF
ClusterName=mem2gen
SlurmctldHost=$host
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SlurmUser=root
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU_Memory
ReturnToService=2
JobAcctGatherType=jobacct_gather/none
NodeName=$host CPUs=$(nproc) RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
CONF
rm -f /etc/slurm/cgroup.conf
slurmctld
slurmd
for _ in $(seq 1 30); do
  if sinfo -h -o %T 2>/dev/null | grep -q idle; then echo "slurm ready"; exit 0; fi
  sleep 1
done
echo "slurm did not become idle; see $DIR/log" >&2
exit 1
