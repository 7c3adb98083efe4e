// Entry point to the native addon (src/native.ts requires this file).
//
// The napi-rs generated loader, ./loader.cjs, loads native/ctfs.<platform>.node
// (a development checkout, or a build from source during install) or else the
// prebuilt optional package ctfs-<platform>. When nothing loads, its message
// blames an npm bug; this file replaces it with one that says what is missing
// here and how to get it (the loader's errors stay attached as `cause`).
'use strict'

try {
  module.exports = require('./loader.cjs')
} catch (err) {
  throw missingAddonError(err)
}

function missingAddonError(loaderError) {
  const fs = require('node:fs')
  const path = require('node:path')
  // The platforms ctfs publishes a prebuilt package for: its optional dependencies.
  let published = []
  try {
    published = Object.keys(require('../package.json').optionalDependencies || {}).map((n) => n.replace(/^ctfs-/, ''))
  } catch {}
  const tag = platformTag()
  const pkg = `ctfs-${tag}`
  const localFile = path.join(__dirname, `ctfs.${tag}.node`)
  const build = 'build it from source with `npm rebuild ctfs` (needs Rust 1.88 or newer with cargo on PATH, and a C compiler)'
  let state = null
  try {
    state = JSON.parse(fs.readFileSync(path.join(__dirname, 'install-state.json'), 'utf8'))
  } catch {}

  let msg
  const failure = loadFailure(loaderError)
  const installed = fs.existsSync(localFile) ? path.relative(path.join(__dirname, '..'), localFile) : resolves(`${pkg}/package.json`) ? pkg : null
  if (installed && failure) {
    msg = `ctfs: the native addon for ${tag} is installed (${installed}) but does not load: ${failure}. ` +
      `Reinstall ctfs, or ${build}.`
  } else {
    const noPrebuilt = published.includes(tag)
      ? `the prebuilt binary package ${pkg} is not installed (an optional dependency, which npm skips when it cannot be downloaded, with --omit=optional or --no-optional, or with a lockfile made without it)`
      : `ctfs publishes no prebuilt binary for ${tag}`
    let noSource
    if (state === null) {
      noSource = "ctfs's install script, which builds the addon from source when no prebuilt binary loads, did not run " +
        '(the install used --ignore-scripts, or a package manager that runs no install scripts of dependencies unless they are allowed)'
    } else if (state.result === 'failed') {
      noSource = `building it from source during install failed (${state.detail})`
    } else {
      noSource = `the install script reported "${state.result}" but no binary is there now (native/ was changed after install)`
    }
    msg = `ctfs: no native addon for ${tag}: ${noPrebuilt}, and ${noSource}. ` +
      (published.includes(tag)
        ? `Reinstall ctfs with optional dependencies and install scripts enabled, or ${build}.`
        : `To use ctfs here, ${build}.`)
  }
  const error = new Error(msg)
  // The loader's own top-level message is the misleading part; keep what it tried.
  error.cause = (loaderError && loaderError.cause) || loaderError
  return error
}

// The first error in the loader's chain that is not "module not found":
// a binary that exists but cannot be loaded (wrong glibc, wrong architecture).
function loadFailure(err) {
  for (let e = err && err.cause; e; e = e.cause) {
    const m = String(e.message || e)
    if (!/Cannot find module|MODULE_NOT_FOUND/.test(m)) return m.split('\n')[0]
  }
  return null
}

function resolves(id) {
  try {
    require.resolve(id)
    return true
  } catch {
    return false
  }
}

function platformTag() {
  const { platform, arch } = process
  if (platform === 'linux') {
    const report = process.report && process.report.getReport()
    const glibc = report && report.header && report.header.glibcVersionRuntime
    return `linux-${arch}-${glibc ? 'gnu' : 'musl'}`
  }
  if (platform === 'win32') return `win32-${arch}-msvc`
  return `${platform}-${arch}`
}
