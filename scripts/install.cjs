#!/usr/bin/env node
// npm install hook.
//
// Installed as a dependency: when the prebuilt binary (the optional package
// ctfs-<platform>) loads, there is nothing to do. Otherwise, or with
// CTFS_BUILD_FROM_SOURCE=1, build the addon with cargo into a cache directory
// outside node_modules and copy only the .node file into native/. npm hides
// install-script output unless it fails, so progress goes to the terminal
// (/dev/tty) every few seconds as well as to stderr.
//
// In a clone of the repository: build with `napi build` (scripts/build-native.cjs,
// the repository's target/) unless native/ctfs.<platform>.node is already there.
//
// Either way the outcome is written to native/install-state.json, which the
// loader (native/binding.cjs) reads to explain a missing addon.
'use strict'
const { spawn, spawnSync } = require('node:child_process')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const { platformTag, libraryFile } = require('./build-native.cjs')

const root = path.resolve(__dirname, '..')
const nativeDir = path.join(root, 'native')
const tag = platformTag()
const nodeFile = path.join(nativeDir, `ctfs.${tag}.node`)
const version = require(path.join(root, 'package.json')).version
const devCheckout = !root.split(path.sep).includes('node_modules')
const forced = !!process.env.CTFS_BUILD_FROM_SOURCE && process.env.CTFS_BUILD_FROM_SOURCE !== '0'
const retry = 'npm rebuild ctfs'

function writeState(result, detail) {
  try {
    fs.writeFileSync(path.join(nativeDir, 'install-state.json'), JSON.stringify({ result, detail, version, platform: tag }) + '\n')
  } catch {}
}

/** Whether `node -e "require(file)"` succeeds, and its error output if not. */
function tryLoad(file) {
  const r = spawnSync(process.execPath, ['-e', 'require(process.argv[1])', file], { cwd: root, encoding: 'utf8' })
  const lines = String(r.stderr || '').split('\n')
  return { ok: r.status === 0, error: lines.find((l) => /^\w*Error\b/.test(l)) || lines[0] || '' }
}

// ---------------------------------------------------------------- progress
let tty = null
if (!process.stderr.isTTY && process.platform !== 'win32') {
  try {
    tty = fs.openSync('/dev/tty', 'w')
  } catch {}
}
/** A line for the person installing: on the terminal even when npm captures the script's output. */
function say(line) {
  process.stderr.write(line + '\n')
  if (tty !== null) {
    try {
      fs.writeSync(tty, '\r\x1b[2K' + line + '\n')
    } catch {}
  }
}

// ---------------------------------------------------------------- development checkout
function devBuild() {
  if (!forced && fs.existsSync(nodeFile) && tryLoad(nodeFile).ok) {
    writeState('present', `native/ctfs.${tag}.node`)
    console.log(`ctfs: native/ctfs.${tag}.node present (npm run build:native rebuilds it)`)
    return 0
  }
  console.log('ctfs: building the native addon from source (napi build --release)...')
  const r = spawnSync(process.execPath, [path.join(__dirname, 'build-native.cjs')], { cwd: root, stdio: 'inherit' })
  const ok = r.status === 0
  writeState(ok ? 'built' : 'failed', ok ? `native/ctfs.${tag}.node` : `scripts/build-native.cjs exited with ${r.status}`)
  return r.status ?? 1
}

// ---------------------------------------------------------------- installed as a dependency
function cacheRoot() {
  if (process.env.CTFS_CACHE_DIR) return process.env.CTFS_CACHE_DIR
  const home = os.homedir()
  if (process.platform === 'win32') return path.join(process.env.LOCALAPPDATA || path.join(home, 'AppData', 'Local'), 'ctfs', 'Cache')
  if (process.platform === 'darwin') return path.join(home, 'Library', 'Caches', 'ctfs')
  return path.join(process.env.XDG_CACHE_HOME || path.join(home, '.cache'), 'ctfs')
}

function workDir() {
  for (const base of [cacheRoot(), path.join(os.tmpdir(), 'ctfs-cache')]) {
    const dir = path.join(base, `build-${version}`)
    try {
      fs.mkdirSync(dir, { recursive: true })
      fs.accessSync(dir, fs.constants.W_OK)
      return dir
    } catch {}
  }
  return null
}

function copyTree(from, to) {
  fs.mkdirSync(to, { recursive: true })
  for (const e of fs.readdirSync(from, { withFileTypes: true })) {
    const a = path.join(from, e.name)
    const b = path.join(to, e.name)
    if (e.isDirectory()) copyTree(a, b)
    else fs.copyFileSync(a, b)
  }
}

// The package ships no Rust benches or tests, so drop the [[bench]] / [[test]]
// targets a crate manifest names (cargo refuses a manifest whose target file is missing).
function stripTargets(toml) {
  const out = []
  let skip = false
  for (const line of toml.split('\n')) {
    if (/^\s*\[/.test(line)) skip = /^\s*\[\[(bench|test)\]\]/.test(line)
    if (!skip) out.push(line)
  }
  return out.join('\n')
}

/** Copies the Rust workspace that the package ships into `dir`. */
function stageSources(dir) {
  fs.rmSync(dir, { recursive: true, force: true })
  fs.mkdirSync(dir, { recursive: true })
  for (const f of ['Cargo.toml', 'Cargo.lock']) fs.copyFileSync(path.join(root, f), path.join(dir, f))
  const crates = fs.readdirSync(path.join(root, 'crates')).map((c) => path.join('crates', c))
  for (const c of [...crates, path.join('bindings', 'node')]) {
    const from = path.join(root, c)
    const to = path.join(dir, c)
    copyTree(path.join(from, 'src'), path.join(to, 'src'))
    fs.writeFileSync(path.join(to, 'Cargo.toml'), stripTargets(fs.readFileSync(path.join(from, 'Cargo.toml'), 'utf8')))
    if (fs.existsSync(path.join(from, 'build.rs'))) fs.copyFileSync(path.join(from, 'build.rs'), path.join(to, 'build.rs'))
  }
}

// The prebuilt packages ctfs lists as optional dependencies, by platform.
const PUBLISHED = Object.keys(require(path.join(root, 'package.json')).optionalDependencies || {}).map((n) => n.replace(/^ctfs-/, ''))

/** Why no prebuilt binary is used, in a few words. */
function whyNoPrebuilt() {
  if (forced) return 'CTFS_BUILD_FROM_SOURCE is set'
  const pkg = `ctfs-${tag}`
  let main = null
  try {
    main = require.resolve(pkg, { paths: [root] })
  } catch {}
  if (main) return `the prebuilt package ${pkg} is installed but does not load: ${tryLoad(main).error}`
  if (PUBLISHED.includes(tag)) return `the prebuilt package ${pkg}, an optional dependency, is not installed`
  return `ctfs publishes no prebuilt binary for ${tag}`
}

function failure(what, detail) {
  writeState('failed', detail)
  say(
    `ctfs: could not install the native addon for ${tag}. No prebuilt binary is used (${whyNoPrebuilt()}), ` +
      `so it must be built from source, and ${what} ` +
      `Fix that and run \`${retry}\` (or reinstall ctfs); set CTFS_BUILD_FROM_SOURCE=1 to build from source even when a prebuilt binary is available.`,
  )
  return 1
}

function sourceBuild() {
  const cargo = spawnSync('cargo', ['--version'], { encoding: 'utf8' })
  if (cargo.error || cargo.status !== 0) {
    return Promise.resolve(
      failure(
        "Rust's cargo was not found on PATH. Install Rust 1.88 or newer (https://rustup.rs) and a C compiler (cc).",
        'cargo not found on PATH',
      ),
    )
  }
  const work = workDir()
  if (work === null) {
    return Promise.resolve(failure('no writable build directory was found (set CTFS_CACHE_DIR to one).', 'no writable build directory'))
  }
  const srcDir = path.join(work, 'src')
  const targetDir = path.join(work, 'target')
  const logFile = path.join(work, 'build.log')
  stageSources(srcDir)
  const log = fs.openSync(logFile, 'w')

  const started = Date.now()
  const args = ['build', '--release', '--manifest-path', path.join(srcDir, 'bindings', 'node', 'Cargo.toml'), '--target-dir', targetDir]
  say(`ctfs: no prebuilt binary used (${whyNoPrebuilt()}); building the addon from source with ${cargo.stdout.trim()}, about a minute...`)
  say(`ctfs: cargo ${args.join(' ')}`)
  let compiled = 0
  let current = ''
  const child = spawn('cargo', args, { cwd: srcDir, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, CARGO_TERM_PROGRESS_WHEN: 'never' } })
  const onData = (chunk) => {
    process.stderr.write(chunk)
    fs.writeSync(log, chunk)
    for (const m of String(chunk).matchAll(/^\s*Compiling (\S+)/gm)) {
      compiled++
      current = m[1]
    }
  }
  child.stdout.on('data', onData)
  child.stderr.on('data', onData)
  const timer = setInterval(() => {
    const s = Math.round((Date.now() - started) / 1000)
    say(`ctfs: building from source: ${s}s, ${compiled} crates compiled${current ? `, last ${current}` : ''}`)
  }, 3000)

  return new Promise((resolve) => {
    child.on('error', (err) => {
      clearInterval(timer)
      resolve(failure(`cargo could not be started (${err.message}).`, `cargo: ${err.message}`))
    })
    child.on('close', (code) => {
      clearInterval(timer)
      fs.closeSync(log)
      if (code !== 0) {
        return resolve(
          failure(
            `cargo build failed (exit code ${code}; its output is above and in ${logFile}). ` +
              'The usual causes are a missing C compiler (cc), Rust older than 1.88 (check `rustc --version`), or no network access to crates.io.',
            `cargo build exited with ${code}; log: ${logFile}`,
          ),
        )
      }
      fs.mkdirSync(nativeDir, { recursive: true })
      fs.copyFileSync(libraryFile(path.join(targetDir, 'release')), nodeFile)
      const check = tryLoad(nodeFile)
      if (!check.ok) return resolve(failure(`the freshly built binary does not load (${check.error}).`, `built binary does not load: ${check.error}`))
      writeState('built', `native/ctfs.${tag}.node, built from source`)
      say(
        `ctfs: built native/ctfs.${tag}.node from source in ${Math.round((Date.now() - started) / 1000)}s ` +
          `(cargo's build cache: ${work}, about 100 MB; it speeds up a reinstall and may be deleted)`,
      )
      resolve(0)
    })
  })
}

async function main() {
  if (devCheckout) return devBuild()
  if (!forced) {
    const r = tryLoad(path.join(nativeDir, 'loader.cjs'))
    if (r.ok) {
      writeState('prebuilt', `ctfs-${tag}`)
      return 0
    }
  }
  return sourceBuild()
}

main().then(
  (code) => process.exit(code),
  (err) => {
    writeState('failed', String(err && err.message))
    say(`ctfs: install script failed: ${err && err.stack}`)
    process.exit(1)
  },
)
