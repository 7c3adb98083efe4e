#!/usr/bin/env node
// Builds the N-API addon from source into native/.
// With @napi-rs/cli present (a clone of the repo) it runs `napi build`, which
// also regenerates native/binding.cjs and native/binding.d.cts. Without it
// (an install from the registry, where dev tools are absent) it runs cargo
// directly and copies the library under the name the loader looks for.
'use strict'
const { spawnSync } = require('node:child_process')
const fs = require('node:fs')
const path = require('node:path')

const root = path.resolve(__dirname, '..')
const nativeDir = path.join(root, 'native')
const manifest = path.join('bindings', 'node', 'Cargo.toml')

function run(cmd, args) {
  const r = spawnSync(cmd, args, { cwd: root, stdio: 'inherit', shell: process.platform === 'win32' })
  if (r.error) throw r.error
  if (r.status !== 0) process.exit(r.status ?? 1)
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

function libraryFile(profileDir) {
  const base = 'ctfs_node'
  if (process.platform === 'win32') return path.join(profileDir, `${base}.dll`)
  if (process.platform === 'darwin') return path.join(profileDir, `lib${base}.dylib`)
  return path.join(profileDir, `lib${base}.so`)
}

const napiBin = path.join(root, 'node_modules', '.bin', process.platform === 'win32' ? 'napi.cmd' : 'napi')
fs.mkdirSync(nativeDir, { recursive: true })
if (fs.existsSync(napiBin) && !process.env.CTFS_BUILD_WITH_CARGO) {
  run(napiBin, [
    'build', '--platform', '--release',
    '--manifest-path', manifest,
    '--package-json-path', 'package.json',
    '--output-dir', 'native',
    '--js', 'binding.cjs',
    '--dts', 'binding.d.cts',
  ])
} else {
  run('cargo', ['build', '--release', '--manifest-path', manifest])
  const targetDir = process.env.CARGO_TARGET_DIR || path.join(root, 'target')
  const out = path.join(nativeDir, `ctfs.${platformTag()}.node`)
  fs.copyFileSync(libraryFile(path.join(targetDir, 'release')), out)
  console.log(`ctfs: built ${path.relative(root, out)} from source`)
}
