# Entry point of the postgres:16 stand-in (make_standins.sh): honours POSTGRES_USER,
# POSTGRES_PASSWORD and POSTGRES_DB as the official image does. UTF8: psycopg returns bytes
# from a SQL_ASCII database, which SQLAlchemy cannot read (a traceback at the first query).
set -e
mkdir -p "$PGDATA" /var/run/postgresql && chown -R postgres:postgres "$PGDATA" /var/run/postgresql
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  echo "$POSTGRES_PASSWORD" > /tmp/pw && chown postgres /tmp/pw
  su postgres -c "initdb -D $PGDATA -E UTF8 --locale=C.UTF-8 -U $POSTGRES_USER --pwfile=/tmp/pw --auth-host=scram-sha-256 --auth-local=trust" >/dev/null
  rm /tmp/pw
  echo "host all all 0.0.0.0/0 scram-sha-256" >> "$PGDATA/pg_hba.conf"
  su postgres -c "pg_ctl -D $PGDATA -w start -o '-c listen_addresses='" >/dev/null
  su postgres -c "createdb -U $POSTGRES_USER $POSTGRES_DB"
  su postgres -c "pg_ctl -D $PGDATA -w stop" >/dev/null
fi
exec su postgres -c "postgres -D $PGDATA -c listen_addresses=*"
