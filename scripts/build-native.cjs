#!/usr/bin/env node
// Builds the N-API addon from source into native/ctfs.<platform>.node.
//
// In a clone of the repository (@napi-rs/cli installed) it runs `napi build`,
// which also regenerates the loader native/loader.cjs and the types
// native/binding.d.cts. Arguments are passed on to `napi build`, so CI builds
// every release target through this same script, e.g.
//   node scripts/build-native.cjs --target aarch64-unknown-linux-gnu --use-napi-cross
//   node scripts/build-native.cjs --target x86_64-unknown-linux-musl -x
// Without the napi CLI (or with CTFS_BUILD_WITH_CARGO=1) it runs cargo itself
// and copies the library under the name the loader looks for.
//
// Also a module: scripts/install.cjs uses platformTag() and libraryFile().
'use strict'
const { spawnSync } = require('node:child_process')
const fs = require('node:fs')
const path = require('node:path')

const root = path.resolve(__dirname, '..')
const manifest = path.join('bindings', 'node', 'Cargo.toml')

/** The loader's name for this machine: linux-x64-gnu, darwin-arm64, win32-x64-msvc, … */
function platformTag(platform = process.platform, arch = process.arch) {
  if (platform === 'linux') return `linux-${arch}-${isMusl() ? 'musl' : 'gnu'}`
  if (platform === 'win32') return `win32-${arch}-msvc`
  return `${platform}-${arch}`
}

function isMusl() {
  if (process.platform !== 'linux') return false
  const report = process.report && process.report.getReport()
  return !(report && report.header && report.header.glibcVersionRuntime)
}

/** What cargo names the cdylib in `profileDir`. */
function libraryFile(profileDir, platform = process.platform) {
  const base = 'ctfs_node'
  if (platform === 'win32') return path.join(profileDir, `${base}.dll`)
  if (platform === 'darwin') return path.join(profileDir, `lib${base}.dylib`)
  return path.join(profileDir, `lib${base}.so`)
}

function run(cmd, args) {
  const r = spawnSync(cmd, args, { cwd: root, stdio: 'inherit', shell: process.platform === 'win32' })
  if (r.error) throw r.error
  if (r.status !== 0) process.exit(r.status ?? 1)
}

function main(extra) {
  const nativeDir = path.join(root, 'native')
  const napiBin = path.join(root, 'node_modules', '.bin', process.platform === 'win32' ? 'napi.cmd' : 'napi')
  fs.mkdirSync(nativeDir, { recursive: true })
  if (fs.existsSync(napiBin) && !process.env.CTFS_BUILD_WITH_CARGO) {
    run(napiBin, [
      'build', '--platform', '--release',
      '--manifest-path', manifest,
      '--package-json-path', 'package.json',
      '--output-dir', 'native',
      '--js', 'loader.cjs',
      '--dts', 'binding.d.cts',
      ...extra,
    ])
    return
  }
  if (extra.length > 0) {
    console.error('ctfs: build options (' + extra.join(' ') + ') need @napi-rs/cli; run `npm install` first')
    process.exit(2)
  }
  run('cargo', ['build', '--release', '--manifest-path', manifest])
  const targetDir = process.env.CARGO_TARGET_DIR || path.join(root, 'target')
  const out = path.join(nativeDir, `ctfs.${platformTag()}.node`)
  fs.copyFileSync(libraryFile(path.join(targetDir, 'release')), out)
  console.log(`ctfs: built ${path.relative(root, out)} from source`)
}

module.exports = { platformTag, libraryFile, isMusl }

if (require.main === module) main(process.argv.slice(2))
