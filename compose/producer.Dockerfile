# The Node producer example (Express: /missing, /jobs/:id, Bull Board at /admin/queues,
# /health). Build context: the repository root (see ../.dockerignore).
FROM node:20.20.2-bookworm-slim
ENV NODE_ENV=production
WORKDIR /app
# Dependencies first, so a code change does not reinstall them.
COPY node-producer-example/package.json node-producer-example/package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund --loglevel=error
COPY node-producer-example/ ./
USER node
ENV PORT=3000
EXPOSE 3000
CMD ["node", "src/server.js"]
