#!/usr/bin/env node
// npm install hook: use a prebuilt binary when one loads for this platform
// (the ctfs-<platform> optional package or native/ctfs.<platform>.node),
// otherwise build the addon from source with cargo.
'use strict'
const { spawnSync } = require('node:child_process')
const path = require('node:path')

const root = path.resolve(__dirname, '..')

function loads() {
  if (process.env.CTFS_BUILD_FROM_SOURCE) return false
  const r = spawnSync(process.execPath, ['-e', "require('./native/binding.cjs')"], { cwd: root, stdio: 'ignore' })
  return r.status === 0
}

if (loads()) {
  console.log('ctfs: native addon present')
  process.exit(0)
}

const cargo = spawnSync('cargo', ['--version'], { stdio: 'ignore', shell: process.platform === 'win32' })
if (cargo.error || cargo.status !== 0) {
  console.error(
    'ctfs: no prebuilt binary for ' + process.platform + '-' + process.arch +
      ' and no Rust toolchain to build one.\n' +
      'Install Rust (https://rustup.rs, 1.88 or newer) and run `npm rebuild ctfs`.',
  )
  process.exit(1)
}
console.log('ctfs: no prebuilt binary for this platform; building from source (cargo, release)...')
const r = spawnSync(process.execPath, [path.join(__dirname, 'build-native.cjs')], { cwd: root, stdio: 'inherit' })
process.exit(r.status ?? 1)
