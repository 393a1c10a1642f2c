#!/bin/sh
# Entrypoint of the test node's stand-in for percona/percona-xtradb-cluster images: Debian's
# MariaDB + galera-4 (the same filesystem as the node's mysql image), started the way Percona's
# entrypoint starts a cluster node. The provisioner's args carry the cluster (name, peers, TLS);
# this script adds what belongs to the image: the Galera library, the state-transfer method, and
# the bootstrap decision.
#   - ordinal 0 with an empty data directory initialises it (root from MYSQL_ROOT_PASSWORD) and
#     bootstraps a new cluster;
#   - ordinal 0 whose grastate says safe_to_bootstrap (it left the cluster last) bootstraps again;
#   - every other start joins the peers and receives a state transfer if it needs one.
set -e
case "$1" in -*|"") set -- mysqld "$@";; esac
case "$1" in mysqld|mariadbd) ;; *) exec "$@";; esac
shift
D=/var/lib/mysql
mkdir -p /run/mysqld && chown mysql:mysql /run/mysqld "$D"
ordinal=${HOSTNAME##*-}
bootstrap=""
if [ "$ordinal" = 0 ] && [ ! -d "$D/mysql" ]; then
  mariadb-install-db --user=mysql --datadir="$D" --auth-root-authentication-method=normal >/dev/null
  mariadbd --user=mysql --datadir="$D" --skip-networking --wsrep-on=OFF --socket=/run/mysqld/init.sock & pid=$!
  for i in $(seq 1 60); do mariadb --socket=/run/mysqld/init.sock -e 'select 1' >/dev/null 2>&1 && break; sleep 1; done
  mariadb --socket=/run/mysqld/init.sock <<SQL
ALTER USER 'root'@'localhost' IDENTIFIED BY '${MYSQL_ROOT_PASSWORD}';
CREATE USER 'root'@'%' IDENTIFIED BY '${MYSQL_ROOT_PASSWORD}';
GRANT ALL ON *.* TO 'root'@'%' WITH GRANT OPTION;
SQL
  kill "$pid"; wait "$pid" || true
  bootstrap=--wsrep-new-cluster
elif [ "$ordinal" = 0 ] && grep -q '^safe_to_bootstrap: *1' "$D/grastate.dat" 2>/dev/null; then
  bootstrap=--wsrep-new-cluster
fi
exec mariadbd --user=mysql --datadir="$D" --bind-address=0.0.0.0 \
  --wsrep-provider=/usr/lib/galera/libgalera_smm.so --wsrep-sst-method=rsync \
  "$@" $bootstrap
