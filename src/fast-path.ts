// The thread's raw N-API functions (bindings/node/src/fast.rs), created once
// per module instance and shared by the kernels (src/kernel.ts) and the
// batch builder (src/batch.ts).
import { native, type FastPath } from './native.ts'

/**
 * The native admission functions: one set for every kernel of this thread,
 * each call naming its kernel and domain by a target handle
 * (`NativeKernel.fastTarget`). A call site that only ever sees one native
 * function gets V8's fast API call; one function per kernel fell back to the
 * generic path as soon as two kernels existed (bindings/node/src/fast.rs).
 * @internal
 */
export const FAST: FastPath = native.fastPath()
