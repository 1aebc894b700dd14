# qsfs image: builds and installs qsfs on Debian 12.
# (The zinit entrypoint and the services come with issue 6.)
FROM debian:12-slim AS build
WORKDIR /src
COPY . .
RUN scripts/install-deps.sh \
 && meson setup /build --buildtype=release --prefix=/usr/local -Dtests=false \
 && ninja -C /build && DESTDIR=/stage meson install -C /build

FROM debian:12-slim
RUN apt-get update -qq && apt-get install -y -qq --no-install-recommends \
      fuse3 libfuse3-3 liberasurecode1 libsodium23 libhiredis0.14 libzstd1 \
      libbtrfsutil1 libyaml-0-2 libxxhash0 libisal2 libjson-c5 \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /stage/ /
ENTRYPOINT ["/usr/local/bin/qsfs-cache"]
