// The published package, tested as a user gets it: `npm pack` the root
// package and this platform's binary package into tarballs, install them into
// an empty project offline with no cargo on PATH, and use ctfs from there.
import { spawnSync, type SpawnSyncOptions } from 'node:child_process'
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, realpathSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { tmpdir } from 'node:os'
import { delimiter, dirname, join, posix, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

import test from 'ava'

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..')
const require = createRequire(import.meta.url)
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'))
const { platformTag } = require('../scripts/build-native.cjs') as { platformTag: () => string }
const tag = platformTag()
const binary = join(root, 'native', `ctfs.${tag}.node`)
// The install tests build a PATH of symlinks and run sh: POSIX only (CI's
// Windows job runs the rest of the suite against its binary).
const serial = process.platform === 'win32' ? test.serial.skip : test.serial

/** npm's own script (bin/npm-cli.js), found through the npm on PATH. */
function npmCli() {
  const onPath = (process.env.PATH ?? '').split(delimiter).map((d) => join(d, 'npm')).find((f) => existsSync(f))
  if (!onPath) throw new Error('npm is not on PATH')
  return realpathSync(onPath)
}

interface PackResult {
  filename: string
  size: number
  unpackedSize: number
  entryCount: number
  files: { path: string; size: number }[]
}

const work = mkdtempSync(join(tmpdir(), 'ctfs-package-'))
test.after.always(() => rmSync(work, { recursive: true, force: true }))

function run(cmd: string, args: string[], opts: SpawnSyncOptions = {}) {
  const started = performance.now()
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 120_000, ...opts })
  return { status: r.status, stdout: String(r.stdout), stderr: String(r.stderr), error: r.error, ms: performance.now() - started }
}

/** `npm pack` in `dir`, tarball into `work`; the JSON report of the one package. */
function pack(dir: string, dryRun = false): PackResult {
  const r = run(process.execPath, [npmCli(), 'pack', '--json', '--ignore-scripts', '--pack-destination', work, ...(dryRun ? ['--dry-run'] : [])], { cwd: dir })
  if (r.status !== 0) throw new Error(`npm pack in ${dir} failed: ${r.stderr}`)
  return (JSON.parse(r.stdout) as PackResult[])[0]!
}

const bin = join(work, 'bin')
let env: Record<string, string> | undefined
/** A user's environment: a PATH holding node, npm, npx and sh only (no cargo, rustc or cc), an empty npm cache. */
function userEnv() {
  if (env) return env
  const npm = npmCli()
  mkdirSync(bin)
  symlinkSync(process.execPath, join(bin, 'node'))
  symlinkSync(npm, join(bin, 'npm'))
  symlinkSync(join(dirname(npm), 'npx-cli.js'), join(bin, 'npx'))
  symlinkSync('/bin/sh', join(bin, 'sh'))
  env = {
    PATH: bin,
    HOME: process.env.HOME ?? work,
    TMPDIR: tmpdir(),
    // An empty cache and --offline: nothing can come from a registry.
    npm_config_cache: join(work, 'npm-cache'),
    npm_config_userconfig: join(work, 'npmrc'),
    npm_config_update_notifier: 'false',
    npm_config_fund: 'false',
    npm_config_audit: 'false',
  }
  writeFileSync(env.npm_config_userconfig!, '')
  return env
}

/** An empty project at work/<name>, with `npm install --offline <args>` run in it as a user would. */
function userProject(name: string, args: string[]) {
  const dir = join(work, name)
  mkdirSync(dir)
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ name, version: '0.0.0', private: true }))
  const r = run('npm', ['install', '--offline', '--no-audit', '--no-fund', ...args], { cwd: dir, env: userEnv() })
  return { dir, ...r }
}

let tarballs: { main: PackResult; platform: PackResult } | undefined
function packed() {
  if (tarballs) return tarballs
  if (!existsSync(binary)) throw new Error(`${binary} is missing: run \`npm run build\` first`)
  const main = pack(root)
  // The platform package as CI assembles it (napi artifacts): its package.json, README and the .node.
  const platDir = join(work, `platform-${tag}`)
  mkdirSync(platDir)
  for (const f of readdirSync(join(root, 'npm', tag))) copyFileSync(join(root, 'npm', tag, f), join(platDir, f))
  copyFileSync(binary, join(platDir, `ctfs.${tag}.node`))
  tarballs = { main, platform: pack(platDir) }
  return tarballs
}

const kb = (n: number) => `${(n / 1024).toFixed(0)} KiB`

serial('npm pack --dry-run: the package ships what a user needs and no Rust benches, tests or stray source maps', (t) => {
  const report = pack(root, true)
  const files = new Set(report.files.map((f) => f.path))
  t.log(`ctfs: ${report.entryCount} files, ${kb(report.size)} packed, ${kb(report.unpackedSize)} unpacked`)

  for (const f of [
    'package.json', 'README.md', 'LICENSE', 'CHANGELOG.md',
    'dist/index.js', 'dist/index.d.ts', 'dist/cli/main.js',
    'native/binding.cjs', 'native/loader.cjs', 'native/binding.d.cts',
    'scripts/install.cjs', 'scripts/build-native.cjs',
    // what a build from source needs
    'Cargo.toml', 'Cargo.lock', 'crates/ctfs-core/Cargo.toml', 'crates/ctfs-core/src/lib.rs',
    'crates/ctfs-wal/Cargo.toml', 'crates/ctfs-wal/src/lib.rs',
    'bindings/node/Cargo.toml', 'bindings/node/build.rs', 'bindings/node/src/lib.rs',
  ]) t.true(files.has(f), `${f} is packed`)

  const unwanted = [...files].filter((f) =>
    /(^|\/)(benches|tests|__test__|target|node_modules|\.github|\.ci)\//.test(f) ||
    /^(npm|benches)\//.test(f) || f.endsWith('.node') || /^tsconfig/.test(f) || f === 'native/install-state.json')
  t.deepEqual(unwanted, [], 'no tests, benches, binaries, CI or build config')

  t.true(readFileSync(join(root, 'LICENSE'), 'utf8').startsWith('MIT License'))
  t.is(pkg.license, 'MIT')

  // Every source map and every reference to one points at a packed file.
  let maps = 0
  for (const f of files) {
    if (f.endsWith('.js')) {
      const url = /\/\/# sourceMappingURL=(\S+)\s*$/.exec(readFileSync(join(root, f), 'utf8'))?.[1]
      if (url) t.true(files.has(posix.join(posix.dirname(f), url)), `${f} -> ${url}`)
    }
    if (!f.endsWith('.map')) continue
    maps++
    const map = JSON.parse(readFileSync(join(root, f), 'utf8')) as { sources: string[]; sourceRoot?: string }
    for (const s of map.sources) {
      const target = posix.normalize(posix.join(posix.dirname(f), map.sourceRoot ?? '', s))
      t.true(files.has(target), `${f}: source ${s} is packed`)
    }
  }
  t.true(maps > 0)
})

serial('optional dependencies: one ctfs-<platform> package per napi target, same version, holding only the .node', (t) => {
  const targets: string[] = pkg.napi.targets
  const optional: Record<string, string> = pkg.optionalDependencies
  t.is(Object.keys(optional).length, targets.length)
  for (const [name, version] of Object.entries(optional)) {
    t.is(version, pkg.version, name)
    const dir = join(root, 'npm', name.replace(/^ctfs-/, ''))
    const sub = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'))
    t.is(sub.name, name)
    t.is(sub.version, pkg.version)
    t.deepEqual(sub.files, [`ctfs.${name.replace(/^ctfs-/, '')}.node`])
    t.is(sub.main, sub.files[0])
    t.is(sub.license, 'MIT')
    t.true(Array.isArray(sub.os) && Array.isArray(sub.cpu), `${name} declares os and cpu`)
  }
  const { platform } = packed()
  t.log(`ctfs-${tag}: ${platform.entryCount} files, ${kb(platform.size)} packed, ${kb(platform.unpackedSize)} unpacked`)
  t.deepEqual(platform.files.map((f) => f.path).sort(), ['README.md', `ctfs.${tag}.node`, 'package.json'])
})

serial('installed from the two tarballs, offline, with no cargo on PATH: ESM, CommonJS, a durable kernel and the CLI work', (t) => {
  t.truthy(run('cargo', ['--version'], { env: userEnv() }).error, 'cargo is not reachable on the PATH used')
  const { main, platform } = packed()
  const app = userProject('app', [join(work, main.filename), join(work, platform.filename)])
  t.is(app.status, 0, app.stderr)
  // A figure, not a pass/fail criterion (target: 5 s from local tarballs).
  t.log(`npm install --offline of ctfs + ctfs-${tag} tarballs: ${(app.ms / 1000).toFixed(2)} s`)

  const installed = join(app.dir, 'node_modules', 'ctfs')
  t.deepEqual(readdirSync(join(installed, 'native')).filter((f) => f.endsWith('.node')), [], 'the binary comes from the platform package')
  t.true(existsSync(join(app.dir, 'node_modules', `ctfs-${tag}`, `ctfs.${tag}.node`)))
  t.false(existsSync(join(installed, 'target')))
  t.is(JSON.parse(readFileSync(join(installed, 'native', 'install-state.json'), 'utf8')).result, 'prebuilt')

  writeFileSync(
    join(app.dir, 'smoke.mjs'),
    `import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { DurableKernel, Kernel, invariants } from 'ctfs'

const supply = invariants.totalSupply({ initial: 1000n, min: 0n, max: 1_000_000n })
const k = new Kernel({ invariant: supply, causality: 'exact' })
const a = k.admit(supply.delta(500n))
k.admit(supply.delta(-200n), { deps: [a] })
const balance = supply.read(k.state).balance

const dir = mkdtempSync(join(tmpdir(), 'ctfs-smoke-'))
const s = invariants.totalSupply({ initial: 0n })
let d = await DurableKernel.open({ dir, invariant: s })
const backend = d.durability.backend
const backendNote = d.durability.backendNote
const id = await d.admitDurable(s.delta(20n))
await d.close()
d = await DurableKernel.open({ dir, invariant: s })
const reopened = { balance: String(d.read().balance), contains: d.contains(id) }
await d.close()
rmSync(dir, { recursive: true })
console.log(JSON.stringify({ balance: String(balance), reopened, backend, backendNote }))
`,
  )
  const esm = run('node', ['smoke.mjs'], { cwd: app.dir, env: userEnv() })
  t.is(esm.status, 0, esm.stderr)
  const out = JSON.parse(esm.stdout)
  t.is(out.balance, '1300')
  t.deepEqual(out.reopened, { balance: '20', contains: 'yes' })
  t.true(['io_uring', 'portable'].includes(out.backend))
  t.log(`durable backend chosen at run time: ${out.backend}${out.backendNote ? ` (${out.backendNote})` : ''}`)

  writeFileSync(
    join(app.dir, 'smoke.cjs'),
    `const { Kernel, invariants } = require('ctfs')
const supply = invariants.totalSupply({ initial: 0n })
const k = new Kernel({ invariant: supply })
k.admit(supply.delta(7n))
console.log(String(supply.read(k.state).balance))
`,
  )
  const cjs = run('node', ['smoke.cjs'], { cwd: app.dir, env: userEnv() })
  t.is(cjs.status, 0, cjs.stderr)
  t.is(cjs.stdout.trim(), '7')

  const version = run('npx', ['--offline', 'ctfs', '--version'], { cwd: app.dir, env: userEnv() })
  t.is(version.status, 0, version.stderr)
  t.is(version.stdout.trim(), pkg.version)
})

serial('types resolve under moduleResolution node16, nodenext and bundler, for ESM and CommonJS consumers', (t) => {
  const dir = join(work, 'app')
  t.true(existsSync(join(dir, 'node_modules', 'ctfs')), 'the install test ran')
  const use = (idType: string) => `const s = invariants.totalSupply({ initial: 0n })
const k = new Kernel({ invariant: s })
const id: ${idType} = k.admit(s.delta(1n))
const b: bigint = s.read(k.state).balance`
  const files: Record<string, string> = {
    'esm.mts': `import { Kernel, invariants, type FactId } from 'ctfs'\n${use('FactId')}\nexport { id, b }\n`,
    // CommonJS code reaches an ES module package with import() under node16 ...
    'cjs-import.cts': `export async function f() {\n  const { Kernel, invariants } = await import('ctfs')\n${use("import('ctfs', { with: { 'resolution-mode': 'import' } }).FactId")}\n  return [id, b]\n}\n`,
    // ... and with require() under nodenext (TypeScript >= 5.8 models Node's require(esm)).
    'cjs-require.cts': `import ctfs = require('ctfs')\nconst { Kernel, invariants } = ctfs\n${use('ctfs.FactId')}\nexport = [id, b]\n`,
    'bundled.ts': `import { Kernel, invariants, type FactId } from 'ctfs'\n${use('FactId')}\nexport { id, b }\n`,
  }
  for (const [f, src] of Object.entries(files)) writeFileSync(join(dir, f), src)
  // One TypeScript instance and a shared parse cache for the three programs. The
  // semantic check covers the consumer files and every ctfs declaration file they
  // reach (an unresolved import inside ctfs would surface there), not @types/node.
  const ts = require('typescript') as typeof import('typescript')
  const parsed = new Map<string, import('typescript').SourceFile | undefined>()
  const modes: [string, import('typescript').ModuleKind, import('typescript').ModuleResolutionKind, string[]][] = [
    ['node16', ts.ModuleKind.Node16, ts.ModuleResolutionKind.Node16, ['esm.mts', 'cjs-import.cts']],
    ['nodenext', ts.ModuleKind.NodeNext, ts.ModuleResolutionKind.NodeNext, ['esm.mts', 'cjs-import.cts', 'cjs-require.cts']],
    ['bundler', ts.ModuleKind.ESNext, ts.ModuleResolutionKind.Bundler, ['bundled.ts']],
  ]
  for (const [name, module, moduleResolution, include] of modes) {
    const options: import('typescript').CompilerOptions = {
      module, moduleResolution, target: ts.ScriptTarget.ES2022, lib: ['lib.es2022.d.ts'], strict: true, noEmit: true,
      // ctfs's declarations use Buffer: like any Node project, the consumer has @types/node.
      types: ['node'], typeRoots: [join(root, 'node_modules', '@types')],
    }
    const host = ts.createCompilerHost(options)
    const getSourceFile = host.getSourceFile.bind(host)
    host.getSourceFile = (file, lang, ...rest) => {
      const key = `${file}\0${JSON.stringify(lang)}`
      if (!parsed.has(key)) parsed.set(key, getSourceFile(file, lang, ...rest))
      return parsed.get(key)
    }
    const program = ts.createProgram(include.map((f) => join(dir, f)), options, host)
    const checked = program.getSourceFiles().filter((sf) => !sf.fileName.includes('/node_modules/@types/') && !sf.fileName.includes('/typescript/lib/'))
    t.true(checked.some((sf) => sf.fileName.endsWith('/node_modules/ctfs/dist/index.d.ts')), `${name}: ctfs's types are the ones used`)
    t.true(checked.some((sf) => sf.fileName.endsWith('/node_modules/ctfs/native/binding.d.cts')), `${name}: the binding's types resolve`)
    const diagnostics = [
      ...program.getOptionsDiagnostics(),
      ...program.getGlobalDiagnostics(),
      ...program.getSyntacticDiagnostics(),
      ...checked.flatMap((sf) => program.getSemanticDiagnostics(sf)),
    ]
    const text = ts.formatDiagnostics(diagnostics, { getCanonicalFileName: (f) => f, getCurrentDirectory: () => dir, getNewLine: () => '\n' })
    t.is(diagnostics.length, 0, `${name}:\n${text}`)
  }
})

serial('--ignore-scripts and no prebuilt binary: loading ctfs says exactly what is missing', (t) => {
  const { main } = packed()
  const app = userProject('no-scripts', ['--ignore-scripts', join(work, main.filename)])
  t.is(app.status, 0, app.stderr)
  const r = run('node', ['-e', "require('ctfs')"], { cwd: app.dir, env: userEnv() })
  t.not(r.status, 0)
  t.regex(r.stderr, new RegExp(`ctfs: no native addon for ${tag}: the prebuilt binary package ctfs-${tag} is not installed`))
  t.regex(r.stderr, /install script, which builds the addon from source when no prebuilt binary loads, did not run \(the install used --ignore-scripts/)
  t.regex(r.stderr, /npm rebuild ctfs/)
  t.notRegex(r.stderr, /npm has a bug/)
})

serial('no prebuilt binary and no cargo: the install fails with one paragraph naming what is missing and the retry command', (t) => {
  const { main } = packed()
  const app = userProject('no-cargo', [join(work, main.filename)])
  t.not(app.status, 0)
  const out = app.stdout + app.stderr
  t.regex(out, new RegExp(`ctfs: could not install the native addon for ${tag}\\. No prebuilt binary is used \\(the prebuilt package ctfs-${tag}, an optional dependency, is not installed\\)`))
  t.regex(out, /Rust's cargo was not found on PATH\. Install Rust 1\.88 or newer/)
  t.regex(out, /run `npm rebuild ctfs`/)
})

// A full release build from source takes minutes on two cores, so this one
// runs on request: CTFS_TEST_SOURCE_BUILD=1 npx ava __test__/package.spec.ts
const sourceBuild = process.env.CTFS_TEST_SOURCE_BUILD === '1' ? serial : test.serial.skip
sourceBuild('CTFS_BUILD_FROM_SOURCE=1: the install builds with cargo into a cache outside node_modules, with progress', (t) => {
  const { main } = packed()
  const cargoDir = dirname(run('sh', ['-c', 'command -v cargo']).stdout.trim())
  const cache = process.env.CTFS_CACHE_DIR ?? join(work, 'cache')
  const dir = join(work, 'from-source')
  mkdirSync(dir)
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: 'from-source', version: '0.0.0', private: true }))
  const env = { ...userEnv(), PATH: [bin, cargoDir, '/usr/bin', '/bin'].join(delimiter), CTFS_BUILD_FROM_SOURCE: '1', CTFS_CACHE_DIR: cache, npm_config_foreground_scripts: 'true' }
  const r = run('npm', ['install', '--offline', '--no-audit', '--no-fund', join(work, main.filename)], { cwd: dir, env, timeout: 900_000 })
  t.is(r.status, 0, r.stderr)
  t.log(`source build install: ${(r.ms / 1000).toFixed(0)} s`)
  t.regex(r.stderr, /ctfs: building from source: \d+s, \d+ crates compiled/)
  const installed = join(dir, 'node_modules', 'ctfs')
  t.true(existsSync(join(installed, 'native', `ctfs.${tag}.node`)))
  t.false(existsSync(join(installed, 'target')))
  t.true(existsSync(join(cache, `build-${pkg.version}`, 'target')))
  const use = run('node', ['-e', "const { Kernel, invariants } = require('ctfs'); const s = invariants.totalSupply({ initial: 0n }); new Kernel({ invariant: s }).admit(s.delta(1n))"], { cwd: dir, env })
  t.is(use.status, 0, use.stderr)
})
