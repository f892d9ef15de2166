// Builds the web app into one directory the server serves (its web_root):
//   OUT/index.html, OUT/app.js, OUT/app.css          the demo at /
//   OUT/admin/index.html, OUT/admin/app.js, ...      the console at /admin
// Usage: node build.mjs OUT   (default ../build/web). The SDK is bundled
// from its TypeScript sources, so the app always ships the SDK of this tree.
import { build } from 'esbuild';
import { cpSync, mkdirSync, rmSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const out = resolve(process.argv[2] || join(here, '..', 'build', 'web'));
const sdk = join(here, '..', 'sdk', 'js', 'src', 'index.ts');

/** Resolves @parley/client to the SDK's sources. */
const sdkPlugin = {
  name: 'parley-sdk',
  setup(b) {
    b.onResolve({ filter: /^@parley\/client$/ }, () => ({ path: sdk }));
  },
};

rmSync(out, { recursive: true, force: true });
mkdirSync(out, { recursive: true });
cpSync(join(here, 'static'), out, { recursive: true });
await build({
  entryPoints: { app: join(here, 'src', 'demo', 'main.ts'), 'admin/app': join(here, 'src', 'admin', 'main.ts') },
  outdir: out,
  bundle: true,
  format: 'esm',
  minify: true,
  sourcemap: false,
  target: ['es2020'],
  platform: 'browser',
  external: ['ws'],
  plugins: [sdkPlugin],
  logLevel: 'warning',
});
console.log(`web: built into ${out}`);
