# syntax=docker/dockerfile:1
# The driver image: built with Node 24 and a C toolchain, shipped with Node 24
# and only the runtime files (compiled JS, production node_modules, the addon).
# The last stage is the driver (the default target); `--target operator`
# builds the operator's image instead.

FROM node:24-bookworm AS build
WORKDIR /app
# node-gyp must use this image's Node headers, not download them.
ENV npm_config_nodedir=/usr/local
COPY package.json package-lock.json ./
COPY native ./native
# devDependencies include node@24 (for hosts without it) and the TypeScript toolchain.
RUN npm ci --no-audit --no-fund
COPY tsconfig.json ./
COPY proto ./proto
COPY src ./src
COPY bench ./bench
COPY testkit ./testkit
RUN npx tsc -p . && npm prune --omit=dev --no-audit --no-fund

# The operator: no addon, no mount tools, no root. It makes the driver's
# objects from the deploy/ manifests it ships with, so the two never differ.
FROM node:24-bookworm-slim AS operator
WORKDIR /app
ENV NODE_ENV=production
COPY --from=build /app/package.json ./
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist/src ./dist/src
COPY deploy ./deploy
USER 65532:65532
ENTRYPOINT ["node", "dist/src/bin/operator.js"]

FROM node:24-bookworm-slim AS driver
# The driver mounts by syscall (native addon); it runs mount/umount, unshare
# and sh only to abort a FUSE connection when fusectl is not mounted, and
# mount/umount for its mounts only with an addon built without mount_ops.c.
RUN apt-get update && apt-get install -y --no-install-recommends util-linux mount \
  && rm -rf /var/lib/apt/lists/*
WORKDIR /app
# A daemon with little garbage: a 1 MiB semi-space (V8's default grows to
# 16 MiB) keeps young garbage from inflating RSS between scavenges (measured:
# 250 volumes 103 -> 95 MiB, 40 volumes 88 -> 83 MiB, before a full GC).
ENV NODE_ENV=production UV_THREADPOOL_SIZE=16 NODE_OPTIONS=--max-semi-space-size=1
COPY --from=build /app/package.json ./
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/native/build/Release/csi_native.node ./native/build/Release/csi_native.node
COPY --from=build /app/dist/src ./dist/src
# Needs: privileged (or CAP_SYS_ADMIN), /dev/fuse, CAP_IPC_LOCK, the kubelet
# directory with Bidirectional mount propagation. No core dumps, ever.
ENTRYPOINT ["node", "dist/src/bin/driver.js"]
