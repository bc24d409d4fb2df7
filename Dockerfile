# One image for every role; the command picks it:
#   docker run IMAGE start | worker | dashboard | migrate | simulate ... | sweep --wait
ARG NODE_IMAGE=node:26-bookworm-slim

# ---- build: every dependency, TypeScript compiled to dist/ -------------------------------------
FROM ${NODE_IMAGE} AS build
# On both stages, so a build's leftovers can be found: docker image ls --filter label=...
LABEL org.opencontainers.image.title="audit-sweeper"
WORKDIR /app
COPY package.json package-lock.json ./
# `prepare` would build before the sources are here: install first, build once they are.
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY . .
RUN npm run build

# ---- runtime: production dependencies only, non-root ----------------------------------------
FROM ${NODE_IMAGE} AS runtime
LABEL org.opencontainers.image.title="audit-sweeper"
ENV NODE_ENV=production
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund && npm cache clean --force
COPY --from=build /app/dist ./dist
COPY bin ./bin
COPY deploy/docker/healthcheck.mjs ./deploy/docker/healthcheck.mjs
# The files stay root's and read-only to the process; it needs no writable path.
USER node
# 3000: dashboard (DASHBOARD_PORT); 9464: worker probes and metrics (WORKER_METRICS_PORT).
EXPOSE 3000 9464
# Probes /healthz on HEALTHCHECK_PORT, else WORKER_METRICS_PORT, else 9464: set
# HEALTHCHECK_PORT=3000 for a dashboard container. Kubernetes ignores this and uses its probes.
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
  CMD ["node", "deploy/docker/healthcheck.mjs"]
ENTRYPOINT ["node", "bin/audit-sweeper.js"]
CMD ["start"]
