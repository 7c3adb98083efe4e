// Loads the N-API addon through the loader napi-rs generates
// (native/binding.cjs), which picks native/ctfs.<platform>.node or the
// ctfs-<platform> package. Everything else imports the addon from here.
import { createRequire } from 'node:module'

import type * as Binding from '../native/binding.cjs'

const require = createRequire(import.meta.url)

export const native: typeof Binding = require('../native/binding.cjs')
export type {
  FastPath,
  NativeKernel,
  NativeKernelConfig,
  NativeInvariantConfig,
  NativeError,
  NativeFrontier,
  NativeStats,
  NativeView,
  NativeDurability,
  NativeDurableConfig,
  NativeInspect,
  NativeRecovery,
  NativeEscrow,
  NativeEscrowOptions,
} from '../native/binding.cjs'
