# qsfs image: the whole stack under zinit, as PID 1 (docs/CONTAINER.md).
#   docker build -t qsfs .
#   docker run -d --name qsfs --device /dev/fuse --cap-add SYS_ADMIN \
#     -v qsfs-data:/data -e QSFS_QUICKSTART=1 -e QSFS_FORMAT=1 --stop-timeout 1800 qsfs
# zinit starts prepare -> stor -> wait-hooks -> fs (/etc/zinit/*.yaml) and on
# SIGTERM stops them in reverse: stor uploads everything queued before it
# exits. Configuration, key, cache and stor's state all live in /data.

# ---- build ----
FROM debian:bookworm AS build
RUN apt-get update -qq \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      gcc libc6-dev meson ninja-build pkg-config \
      libfuse3-dev liberasurecode-dev libsodium-dev libhiredis-dev libzstd-dev \
      libyaml-dev libxxhash-dev libjson-c-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# Only the sources the build reads (no build directories from the host).
COPY meson.build meson_options.txt ./
COPY common common
COPY cache cache
COPY stor stor
COPY fs fs
COPY hooks hooks
COPY zinit zinit
COPY config config
COPY bench bench
# --prefix=/usr: binaries in /usr/bin, qsfs-hook in /usr/libexec/qsfs (where
# qsfs-service's quick start looks for it), service files in /etc/zinit.
RUN meson setup /build --buildtype=release --prefix=/usr -Dtests=false \
 && ninja -C /build \
 && DESTDIR=/stage meson install -C /build \
 && for f in usr/bin/zinit usr/bin/qsfs-service usr/bin/qsfs-stor usr/bin/qsfs-ctl \
             usr/bin/qsfs-fs usr/bin/qsfs-cache usr/bin/qsfs-wait-hooks \
             usr/libexec/qsfs/qsfs-hook; do \
      test -x "/stage/$f" || { echo "missing /stage/$f" >&2; exit 1; }; \
    done

# ---- run ----
FROM debian:bookworm-slim
# The shared libraries of the binaries; libisal2 is loaded by liberasurecode
# at run time (the isa_l_rs_cauchy code); fuse3 brings fusermount3; zinit
# needs libyaml-0-2. qsfs-service and qsfs-hook are /bin/sh scripts.
RUN apt-get update -qq \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      fuse3 libfuse3-3 liberasurecode1 libisal2 libsodium23 libhiredis0.14 libzstd1 \
      libyaml-0-2 libxxhash0 libjson-c5 \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /stage/ /
# The services zinit runs (meson install put them there too; this keeps
# the image's services exactly the repository's).
COPY zinit/qsfs/prepare.yaml zinit/qsfs/stor.yaml zinit/qsfs/wait-hooks.yaml \
     zinit/qsfs/fs.yaml /etc/zinit/
# qsfs-ctl reads /etc/qsfs/qsfs.yaml unless given -c: point it at /data so
# `docker exec qsfs qsfs-ctl status` works as is.
RUN mkdir -p /etc/qsfs /data && ln -sf /data/qsfs.yaml /etc/qsfs/qsfs.yaml
ENV QSFS_CONFIG=/data/qsfs.yaml
VOLUME /data
# zinit stops fs, then wait-hooks, then stor, which drains its upload queue:
# give it time (docker run --stop-timeout 1800, compose stop_grace_period: 30m).
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=5s --timeout=10s --start-period=60s \
  CMD ["qsfs-ctl", "-c", "/data/qsfs.yaml", "ready"]
# -c /etc/zinit and -s /var/run/zinit.sock are zinit's defaults, so
# `docker exec qsfs zinit list` needs no options.
ENTRYPOINT ["zinit", "init", "--container"]
